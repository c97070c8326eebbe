import Testing
import XDPEmuCore
import XDPEmuPrograms
import XDPEmuTesting

/// Every built-in program, on every prefix (0 bytes to the whole frame) of a double-tagged IPv6 TCP frame with
/// extension headers and of an IPv4 TCP frame: nothing traps, nothing reads past the end, every frame is accounted
/// for, and the programs that classify see a complete packet only when the whole TCP header is there.
@Suite struct TruncationTests {
    static let ipv6 = Packet.ipv6Frame(
        "2001:db8::1", "2001:db8::2", .tcp(source: 1234, destination: 80),
        vlans: [(0x88A8, 10), (0x8100, 20)],
        extensionHeaders: [.hopByHop, .routing, .fragment(offset: 0, more: false)],
        payload: [1, 2, 3])
    static let ipv4 = Packet.ipv4Frame("10.0.0.1", "10.0.0.2", .tcp(source: 1, destination: 2), payload: [1, 2, 3])

    /// Sends every prefix of `frame` through `program` on p0; returns the fates by length.
    func fates<P: XDPProgram>(_ frame: [UInt8], _ program: (Ports) -> P) throws -> [Ports.Fate] {
        let f = try Ports()
        f.attachEverywhere(program(f))
        let result = (0...frame.count).map { f.fate(f.send(Array(frame[0..<$0]))) }
        f.expectConservation()
        return result
    }

    @Test(arguments: [ipv6, ipv4])
    func aclSeesOnlyCompletePackets(frame: [UInt8]) throws {
        let complete = frame.count - 3  // the payload is optional
        let result = try fates(frame) { f in
            ACLProgram(
                rules: [ACLRule(action: .drop, destinationPorts: 22...22)], defaultAction: .allow,
                then: RedirectMapProgram(map: f.map, selector: .constant(1)))
        }
        #expect(result == (0...frame.count).map { $0 >= complete ? .sent([1]) : .dropped })
    }

    @Test(arguments: [ipv6, ipv4])
    func hashRedirectUsesTheNonIPActionUntilTheTupleIsComplete(frame: [UInt8]) throws {
        let complete = frame.count - 3
        let result = try fates(frame) { f in
            RedirectMapProgram(map: f.map, selector: .hash(modulo: 1, base: 2, nonIP: .pass))
        }
        #expect(result == (0...frame.count).map { $0 >= complete ? .sent([2]) : .passed(0) })
    }

    @Test(arguments: [ipv6, ipv4])
    func reflectorSendsBackEverythingWithAnEthernetHeader(frame: [UInt8]) throws {
        let result = try fates(frame) { _ in ReflectorProgram(swapIP: true, swapPorts: true) }
        #expect(result == (0...frame.count).map { $0 >= 14 ? .sent([0]) : .dropped })
    }

    @Test(arguments: [ipv6, ipv4])
    func switchAndMACRedirectNeedOnlyTheEthernetHeader(frame: [UInt8]) throws {
        let flooded = try fates(frame) { f in
            L2SwitchProgram(map: f.map, portKeys: [f.devices[0].ifindex: 0, f.devices[1].ifindex: 1])
        }
        #expect(flooded == (0...frame.count).map { $0 >= 14 ? .sent([1, 2, 3]) : .dropped })
        let byMAC = try fates(frame) { f in
            RedirectMapProgram(map: f.map, selector: .destinationMAC(table: MACTable([(Packet.macB, 3)]), miss: .drop))
        }
        #expect(byMAC == (0...frame.count).map { $0 >= 14 ? .sent([3]) : .dropped })
    }
}
