import Testing
import XDPEmuCore
import XDPEmuPrograms
import XDPEmuTesting

/// The reflector: each frame leaves by XDP_TX through the transmitter of the port it came in on, and its bytes are
/// exactly those of the packet built with the fields swapped.
@Suite struct ReflectorProgramTests {
    func reflect(_ frame: [UInt8], _ program: ReflectorProgram, on port: Int = 2) throws -> [UInt8] {
        let f = try Ports()
        f.network.attach(program, to: f.devices[port])
        let sequence = f.send(frame, on: port)
        #expect(f.fate(sequence) == .sent([port]))
        #expect(f.devices[port].statistics.xdpTx == 1)
        f.expectConservation()
        return try #require(f.bytesSent(sequence, on: port))
    }

    @Test func ipv4TCPWithAddressesAndPorts() throws {
        let frame = Packet.ipv4Frame("10.0.0.1", "192.0.2.7", .tcp(source: 40000, destination: 443), payload: [1, 2])
        let expected = Packet.ipv4Frame(
            "192.0.2.7", "10.0.0.1", .tcp(source: 443, destination: 40000), payload: [1, 2],
            dst: Packet.macA, src: Packet.macB)
        let reflected = try reflect(frame, ReflectorProgram(swapIP: true, swapPorts: true))
        #expect(reflected == expected)
        // The checksums were not touched and still verify.
        #expect(Packet.checksumsVerify(reflected))
    }

    @Test func ipv4UDPAddressesOnly() throws {
        let udp = Packet.Transport.udp(source: 1111, destination: 2222)
        let frame = Packet.ipv4Frame("10.0.0.1", "10.0.0.2", udp, payload: [7, 7, 7])
        // Built anew with the addresses swapped, so with freshly computed checksums: equal bytes show that the swap
        // left the checksums right.
        let expected = Packet.ipv4Frame(
            "10.0.0.2", "10.0.0.1", udp, payload: [7, 7, 7], dst: Packet.macA,
            src: Packet.macB)
        #expect(try reflect(frame, ReflectorProgram(swapIP: true, swapPorts: false)) == expected)
    }

    @Test func taggedIPv6UDPWithExtensionHeaders() throws {
        let vlans: Packet.Tags = [(0x8100, 42)]
        let frame = Packet.ipv6Frame(
            "2001:db8::1", "2001:db8:ffff::2", .udp(source: 5000, destination: 6000),
            vlans: vlans, extensionHeaders: [.destinationOptions], payload: [9, 8, 7, 6])
        let expected = Packet.ipv6Frame(
            "2001:db8:ffff::2", "2001:db8::1", .udp(source: 6000, destination: 5000),
            vlans: vlans, extensionHeaders: [.destinationOptions], payload: [9, 8, 7, 6],
            dst: Packet.macA, src: Packet.macB)
        #expect(try reflect(frame, ReflectorProgram(swapIP: true, swapPorts: true)) == expected)
    }

    @Test func nonIPFramesOnlySwapMACs() throws {
        let frame = Packet.arp(src: Packet.macA, dst: Packet.macB)
        var expected = frame
        expected.replaceSubrange(0..<12, with: Packet.macBytes(Packet.macA) + Packet.macBytes(Packet.macB))
        #expect(try reflect(frame, ReflectorProgram(swapIP: true, swapPorts: true)) == expected)
    }

    @Test func macsOnlyWhenAskedForNothingElse() throws {
        let frame = Packet.ipv4Frame("10.0.0.1", "10.0.0.2", .tcp(source: 1, destination: 2))
        let expected = Packet.ipv4Frame(
            "10.0.0.1", "10.0.0.2", .tcp(source: 1, destination: 2), dst: Packet.macA,
            src: Packet.macB)
        #expect(try reflect(frame, ReflectorProgram(swapIP: false, swapPorts: false)) == expected)
        // Ports without addresses, too.
        let portsOnly = Packet.ipv4Frame(
            "10.0.0.1", "10.0.0.2", .tcp(source: 2, destination: 1), dst: Packet.macA,
            src: Packet.macB)
        #expect(try reflect(frame, ReflectorProgram(swapIP: false, swapPorts: true)) == portsOnly)
    }

    @Test func aLaterFragmentHasNoPortsToSwap() throws {
        // A middle piece of a UDP datagram whose first bytes look like ports 1 -> 2.
        let payload: [UInt8] = [0, 1, 0, 2, 0xAA, 0xBB]
        let udp = Packet.Transport.udp(source: 0, destination: 0)
        let frame = Packet.ethernet(
            etherType: 0x0800,
            Packet.ipv4(
                "10.0.0.1", "10.0.0.2", udp, payload: payload,
                fragment: 10, transportHeader: false))
        let expected = Packet.ethernet(
            Packet.macA, Packet.macB, etherType: 0x0800,
            Packet.ipv4(
                "10.0.0.2", "10.0.0.1", udp, payload: payload, fragment: 10, transportHeader: false))
        #expect(try reflect(frame, ReflectorProgram(swapIP: true, swapPorts: true)) == expected)
    }

    @Test func malformedIPOnlySwapsMACs() throws {
        var frame = Packet.ipv4Frame("10.0.0.1", "10.0.0.2", .tcp(source: 1, destination: 2))
        frame[14] = 0x44
        var expected = frame
        expected.replaceSubrange(0..<12, with: Packet.macBytes(Packet.macA) + Packet.macBytes(Packet.macB))
        #expect(try reflect(frame, ReflectorProgram(swapIP: true, swapPorts: true)) == expected)
    }
}
