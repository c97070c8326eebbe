import Testing
import XDPEmuCore
import XDPEmuPrograms
import XDPEmuTesting

/// `RedirectMapProgram`: each key selector, its misses, and the 4.18 flags rule. Ports p0...p3 are map keys 0...3;
/// frames come in on p0 unless said otherwise.
@Suite struct RedirectMapProgramTests {
    let udp = Packet.ipv4Frame("10.0.0.1", "10.0.0.2", .udp(source: 1, destination: 2))

    @Test func constantKey() throws {
        let f = try Ports()
        f.network.attach(RedirectMapProgram(map: f.map, selector: .constant(2)), to: f.devices[0])
        let sequences = (0..<3).map { _ in f.send(udp) }
        #expect(sequences.map(f.fate) == Array(repeating: .sent([2]), count: 3))
        #expect(f.bytesSent(sequences[0], on: 2) == udp)
        f.expectConservation()
    }

    @Test func nonZeroFlagsAbortIn418() throws {
        let f = try Ports()
        f.network.attach(RedirectMapProgram(map: f.map, selector: .constant(2), flags: 1), to: f.devices[0])
        #expect(f.fate(f.send(udp)) == .dropped)
        #expect(f.events(.exception).map(\.action) == [XDPAction.aborted.rawValue])
        #expect(f.drops == [.aborted: 1])
        f.expectConservation()
    }

    @Test func keyWithoutADeviceIsDroppedByTheRedirect() throws {
        let f = try Ports()
        f.network.attach(RedirectMapProgram(map: f.map, selector: .constant(6)), to: f.devices[0])
        #expect(f.fate(f.send(udp)) == .dropped)
        #expect(f.drops == [.redirectInvalid: 1])
        f.expectConservation()
    }

    @Test func ingressIfindexKey() throws {
        let f = try Ports(mapSize: 16)
        // Lay the map out by ifindex: each port's own ifindex reaches the next port round the ring.
        for (i, device) in f.devices.enumerated() {
            try f.map.update(key: MapKey(device.ifindex.rawValue), ifindex: f.devices[(i + 1) % 4].ifindex)
        }
        f.attachEverywhere(RedirectMapProgram(map: f.map, selector: .ingressIfindex))
        #expect((0..<4).map { f.fate(f.send(udp, on: $0)) } == [.sent([1]), .sent([2]), .sent([3]), .sent([0])])
        f.expectConservation()
    }

    @Test func destinationMACHitsAndEveryMissAction() throws {
        let macC = MACAddress(0x02, 0, 0, 0, 0, 0x0C)
        let table = MACTable([(Packet.macB, 1), (macC, 3), (Packet.macB, 2)])  // the later macB wins
        #expect(table.count == 2 && table.lookup(Packet.macB) == 2 && table.lookup(Packet.macA) == nil)
        // Tables are equal when they map the same MACs to the same keys, in whatever order they were built.
        #expect(table == MACTable([(macC, 3), (Packet.macB, 2)]))
        #expect(table != MACTable([(macC, 3), (Packet.macB, 1)]) && table != MACTable([(Packet.macB, 2)]))
        let unknown = Packet.ipv4Frame(
            "10.0.0.1", "10.0.0.9", .udp(source: 1, destination: 2),
            dst: MACAddress(0x02, 0, 0, 0, 0, 0xEE))
        let expectations: [(MissAction, Ports.Fate, [DropReason: UInt64])] = [
            (.drop, .dropped, [.programDrop: 1]),
            (.pass, .passed(0), [:]),
            (.abort, .dropped, [.aborted: 1]),
            (.key(1), .sent([1]), [:]),
        ]
        for (miss, fate, drops) in expectations {
            let f = try Ports()
            f.network.attach(
                RedirectMapProgram(map: f.map, selector: .destinationMAC(table: table, miss: miss)),
                to: f.devices[0])
            #expect(f.fate(f.send(udp)) == .sent([2]))
            #expect(
                f.fate(f.send(Packet.ipv4Frame("10.0.0.1", "10.0.0.3", .udp(source: 1, destination: 2), dst: macC)))
                    == .sent([3]))
            #expect(f.fate(f.send(unknown)) == fate, "miss \(miss)")
            #expect(f.drops == drops, "miss \(miss)")
            f.expectConservation()
        }
    }

    /// Keys worked out with the reference hash (see FlowHashTests): 10.0.0.1:1000...1007 -> 10.0.0.2:80 over TCP
    /// hash to 0x3C274358, 0xB132141E, 0x514FE0ED, 0x24EB5B74, 0xD3892C22, 0x26BEC19B, 0x02A9B72A, 0x13E89A7C.
    @Test func hashKeySpreadsFlowsAndKeepsEachOnOnePort() throws {
        let f = try Ports()
        f.network.attach(
            RedirectMapProgram(map: f.map, selector: .hash(modulo: 4, base: 0, nonIP: .drop)),
            to: f.devices[0])
        let expectedKeys = [0, 2, 1, 0, 2, 3, 2, 0]
        for round in 0..<2 {
            for (i, key) in expectedKeys.enumerated() {
                let frame = Packet.ipv4Frame("10.0.0.1", "10.0.0.2", .tcp(source: UInt16(1000 + i), destination: 80))
                #expect(referenceHash(tupleBytes(frame)) % 4 == UInt32(key))
                #expect(f.fate(f.send(frame)) == .sent([key]), "flow \(i), round \(round)")
            }
        }
        f.expectConservation()
    }

    @Test func hashKeyWithBaseAndAnIPv6Flow() throws {
        let f = try Ports(count: 8, mapSize: 8)
        // 0xF889CEC0 % 4 == 0 and, for the reverse direction, 0xE926EE22 % 4 == 2.
        f.network.attach(
            RedirectMapProgram(map: f.map, selector: .hash(modulo: 4, base: 4, nonIP: .drop)),
            to: f.devices[0])
        let forward = Packet.ipv6Frame("2001:db8::1", "2001:db8::2", .tcp(source: 1234, destination: 80))
        let backward = Packet.ipv6Frame("2001:db8::2", "2001:db8::1", .tcp(source: 80, destination: 1234))
        #expect(f.fate(f.send(forward)) == .sent([4]))
        #expect(f.fate(f.send(backward)) == .sent([6]))
        f.expectConservation()
    }

    @Test func hashKeyNonIPAndMalformedFramesTakeTheNonIPAction() throws {
        var malformed = udp
        malformed[14] = 0x44  // IHL 4
        let expectations: [(MissAction, Ports.Fate)] = [
            (.drop, .dropped), (.pass, .passed(0)), (.abort, .dropped),
            (.key(3), .sent([3])),
        ]
        for (nonIP, fate) in expectations {
            let f = try Ports()
            f.network.attach(
                RedirectMapProgram(map: f.map, selector: .hash(modulo: 2, base: 0, nonIP: nonIP)),
                to: f.devices[0])
            #expect(f.fate(f.send(Packet.arp())) == fate, "\(nonIP)")
            #expect(f.fate(f.send(malformed)) == fate, "\(nonIP)")
            f.expectConservation()
        }
    }
}
