import Testing
import XDPEmuCore
import XDPEmuTesting

// The example of "Writing your own program" (Sources/XDPEmuPrograms/XDPEmuPrograms.docc/XDPEmuPrograms.md), verbatim,
// so that the documentation keeps compiling and doing what it says.

/// Redirects tagged frames through `map` with their VLAN id as the key; untagged frames go to the local stack.
struct VLANRedirectProgram: XDPProgram {
    let map: DevMap

    // `mutating` although it changes nothing: the poll loop then runs it in place rather than on a copy.
    mutating func run(_ context: inout XDPContext) -> XDPAction {
        // nil past data_end: a frame too short for a tag is simply "untagged".
        guard let tpid = context.loadBigEndian(UInt16.self, at: 12),
            tpid == 0x8100 || tpid == 0x88A8,
            let tci = context.loadBigEndian(UInt16.self, at: 14)
        else { return .pass }
        return context.redirectMap(map, key: UInt32(tci & 0x0FFF))
    }
}

@Suite struct CustomProgramExampleTests {
    @Test func vlanRedirectExample() throws {
        let f = try Ports()
        f.network.attach(VLANRedirectProgram(map: f.map), to: f.devices[0])
        let udp = Packet.Transport.udp(source: 1, destination: 2)
        #expect(f.fate(f.send(Packet.ipv4Frame("10.0.0.1", "10.0.0.2", udp, vlans: [(0x8100, 0xE003)]))) == .sent([3]))
        #expect(
            f.fate(f.send(Packet.ipv4Frame("10.0.0.1", "10.0.0.2", udp, vlans: [(0x88A8, 2), (0x8100, 1)])))
                == .sent([2]))
        #expect(f.fate(f.send(Packet.ipv4Frame("10.0.0.1", "10.0.0.2", udp))) == .passed(0))
        #expect(f.fate(f.send(Array(Packet.arp()[0..<15]))) == .passed(0))
        f.expectConservation()
    }
}
