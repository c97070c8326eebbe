import Testing
import XDPEmuCore
import XDPEmuPrograms
import XDPEmuTesting

/// The learning switch on four ports p0...p3 (map keys 0...3), one program value attached to all of them.
@Suite struct L2SwitchProgramTests {
    static func host(_ n: UInt8) -> MACAddress { MACAddress(0x02, 0, 0, 0, 0x11, n) }
    let broadcast = Packet.broadcast

    func frame(from source: MACAddress, to destination: MACAddress) -> [UInt8] {
        Packet.ipv4Frame("10.0.0.1", "10.0.0.2", .udp(source: 1, destination: 2), dst: destination, src: source)
    }

    func makeSwitch(
        _ f: Ports, tableSize: Int = 4096, ageingTime: Nanos? = L2SwitchProgram.defaultAgeingTime,
        floodExcludeIngress: Bool = true
    ) -> L2SwitchProgram {
        var portKeys: [IfIndex: UInt32] = [:]
        for (i, device) in f.devices.enumerated() { portKeys[device.ifindex] = UInt32(i) }
        let program = L2SwitchProgram(
            map: f.map, portKeys: portKeys, tableSize: tableSize, ageingTime: ageingTime,
            floodExcludeIngress: floodExcludeIngress)
        f.attachEverywhere(program)
        return program
    }

    @Test func floodThenLearnThenUnicast() throws {
        let f = try Ports()
        let sw = makeSwitch(f)
        let (a, b) = (Self.host(0xA), Self.host(0xB))
        // A on p0 talks to B, unknown yet: flooded to every other port.
        #expect(f.fate(f.send(frame(from: a, to: b), on: 0)) == .sent([1, 2, 3]))
        #expect(sw.fdb.lookup(a, now: 0)! == (key: 0, ifindex: f.devices[0].ifindex))
        // B answers from p1: A was learned on p0 (by the copy attached to p0, seen by the copy on p1).
        #expect(f.fate(f.send(frame(from: b, to: a), on: 1)) == .sent([0]))
        // And now B is known too.
        #expect(f.fate(f.send(frame(from: a, to: b), on: 0)) == .sent([1]))
        #expect(sw.fdb.entries(now: 0).map(\.mac) == [a, b])
        #expect(f.devices[0].statistics.cloned == 2)
        f.expectConservation()
    }

    @Test func broadcastAndMulticastAreAlwaysFlooded() throws {
        let f = try Ports()
        _ = makeSwitch(f)
        let a = Self.host(0xA)
        f.send(frame(from: Self.host(0xB), to: a), on: 2)
        f.send(frame(from: a, to: Self.host(0xB)), on: 0)
        #expect(f.fate(f.send(frame(from: a, to: broadcast), on: 0)) == .sent([1, 2, 3]))
        #expect(f.fate(f.send(frame(from: a, to: MACAddress(0x01, 0, 0x5E, 0, 0, 1)), on: 0)) == .sent([1, 2, 3]))
        #expect(f.fate(f.send(Packet.arp(src: a), on: 0)) == .sent([1, 2, 3]))
        f.expectConservation()
    }

    @Test func floodingBackToTheIngressWhenAsked() throws {
        let f = try Ports()
        _ = makeSwitch(f, floodExcludeIngress: false)
        #expect(f.fate(f.send(frame(from: Self.host(1), to: broadcast), on: 3)) == .sent([0, 1, 2, 3]))
        f.expectConservation()
    }

    @Test func destinationOnTheIngressPortIsDropped() throws {
        let f = try Ports()
        _ = makeSwitch(f)
        let (a, c) = (Self.host(0xA), Self.host(0xC))
        f.send(frame(from: a, to: broadcast), on: 0)
        // C sits on the same segment as A: the frame already reached A; the bridge must not send it back.
        #expect(f.fate(f.send(frame(from: c, to: a), on: 0)) == .dropped)
        #expect(f.devices[0].statistics.drops == [.programDrop: 1])
        f.expectConservation()
    }

    @Test func aStationThatMovesIsFollowed() throws {
        let f = try Ports()
        let sw = makeSwitch(f)
        let (a, b) = (Self.host(0xA), Self.host(0xB))
        f.send(frame(from: a, to: broadcast), on: 0)
        f.send(frame(from: a, to: broadcast), on: 2)
        #expect(sw.fdb.lookup(a, now: 0)?.key == 2)
        #expect(f.fate(f.send(frame(from: b, to: a), on: 1)) == .sent([2]))
        f.expectConservation()
    }

    @Test func invalidSourcesAreDroppedAndNotLearned() throws {
        let f = try Ports()
        let sw = makeSwitch(f)
        let multicastSource = MACAddress(0x03, 0, 0, 0, 0, 1)
        let zero = MACAddress(rawValue: 0)
        #expect(f.fate(f.send(frame(from: multicastSource, to: broadcast))) == .dropped)
        #expect(f.fate(f.send(frame(from: zero, to: broadcast))) == .dropped)
        #expect(sw.fdb.entries(now: 0).isEmpty)
        f.expectConservation()
    }

    /// A four-entry table probes all four slots, so which entry goes does not depend on where the MACs hash: it is
    /// the one seen least recently.
    @Test func fullTableEvictsTheLeastRecentlySeen() throws {
        let f = try Ports()
        let sw = makeSwitch(f, tableSize: 4)
        for n: UInt8 in 1...4 { f.send(frame(from: Self.host(n), to: broadcast), on: Int(n) % 4, now: Nanos(n) * 1000) }
        #expect(sw.fdb.entries(now: 5000).count == 4)
        // Host 1 speaks again, so host 2 is now the least recently seen; host 5 takes its slot.
        f.send(frame(from: Self.host(1), to: broadcast), on: 1, now: 5000)
        f.send(frame(from: Self.host(5), to: broadcast), on: 1, now: 6000)
        #expect(sw.fdb.entries(now: 6000).map(\.mac) == [1, 3, 4, 5].map(Self.host))
        #expect(sw.fdb.lookup(Self.host(2), now: 6000) == nil)
        // So a frame to host 2 is flooded, and one to host 3 goes to its port.
        #expect(f.fate(f.send(frame(from: Self.host(4), to: Self.host(2)), on: 0, now: 7000)) == .sent([1, 2, 3]))
        #expect(f.fate(f.send(frame(from: Self.host(4), to: Self.host(3)), on: 0, now: 7000)) == .sent([3]))
        f.expectConservation()
    }

    @Test func tableOfOneEntry() throws {
        let f = try Ports()
        let sw = makeSwitch(f, tableSize: 1)
        f.send(frame(from: Self.host(1), to: broadcast), on: 1)
        f.send(frame(from: Self.host(2), to: broadcast), on: 2, now: 1)
        #expect(sw.fdb.entries(now: 1).map(\.mac) == [Self.host(2)])
        f.expectConservation()
    }

    @Test func entriesAgeAfterThreeHundredSeconds() throws {
        let f = try Ports()
        let sw = makeSwitch(f)
        let (a, b) = (Self.host(0xA), Self.host(0xB))
        let second: Nanos = 1_000_000_000
        f.send(frame(from: a, to: broadcast), on: 0, now: 10 * second)
        // Exactly 300 s later the entry still lives (ageing is "longer than").
        #expect(f.fate(f.send(frame(from: b, to: a), on: 1, now: 310 * second)) == .sent([0]))
        #expect(f.fate(f.send(frame(from: b, to: a), on: 1, now: 310 * second + 1)) == .sent([0, 2, 3]))
        #expect(sw.fdb.lookup(a, now: 310 * second + 1) == nil)
        // Relearned, and refreshed by each frame A sends.
        f.send(frame(from: a, to: b), on: 0, now: 400 * second)
        f.send(frame(from: a, to: b), on: 0, now: 650 * second)
        #expect(f.fate(f.send(frame(from: b, to: a), on: 1, now: 900 * second)) == .sent([0]))
        f.expectConservation()
    }

    @Test func withoutAgeingEntriesLiveUntilEvicted() throws {
        let f = try Ports()
        _ = makeSwitch(f, ageingTime: nil)
        let (a, b) = (Self.host(0xA), Self.host(0xB))
        f.send(frame(from: a, to: broadcast), on: 0, now: 0)
        #expect(f.fate(f.send(frame(from: b, to: a), on: 1, now: 1_000_000 * 1_000_000_000)) == .sent([0]))
        f.expectConservation()
    }

    @Test func aDeviceThatIsNotAPortIsNotLearned() throws {
        let f = try Ports()
        var portKeys: [IfIndex: UInt32] = [:]
        for i in 0..<3 { portKeys[f.devices[i].ifindex] = UInt32(i) }
        let sw = L2SwitchProgram(map: f.map, portKeys: portKeys)
        f.attachEverywhere(sw)
        #expect(f.fate(f.send(frame(from: Self.host(9), to: Self.host(1)), on: 3)) == .sent([0, 1, 2]))
        #expect(sw.fdb.entries(now: 0).isEmpty)
        #expect(sw.fdb.ports.map(\.key) == [0, 1, 2])
        f.expectConservation()
    }
}
