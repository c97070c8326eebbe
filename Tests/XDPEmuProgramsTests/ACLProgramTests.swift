import Testing
import XDPEmuCore
import XDPEmuPrograms
import XDPEmuTesting

/// The ACL in front of a constant-key redirect to p1 (so "allowed" shows as `.sent([1])`), unless said otherwise.
@Suite struct ACLProgramTests {
    func tcp(_ source: String, _ sport: UInt16, _ destination: String, _ dport: UInt16) -> [UInt8] {
        source.contains(":")
            ? Packet.ipv6Frame(source, destination, .tcp(source: sport, destination: dport))
            : Packet.ipv4Frame(source, destination, .tcp(source: sport, destination: dport))
    }

    func udp(_ source: String, _ sport: UInt16, _ destination: String, _ dport: UInt16) -> [UInt8] {
        Packet.ipv4Frame(source, destination, .udp(source: sport, destination: dport))
    }

    func prefix(_ text: String) -> IPPrefix { IPPrefix(text)! }

    /// Builds the ACL with `then` = redirect to key 1 on port p0 and returns the fate of each frame.
    func fates(
        _ rules: [ACLRule], default defaultAction: ACLRule.Action = .drop, _ frames: [[UInt8]],
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> [Ports.Fate] {
        let f = try Ports()
        let acl = ACLProgram(
            rules: rules, defaultAction: defaultAction,
            then: RedirectMapProgram(map: f.map, selector: .constant(1)))
        f.network.attach(acl, to: f.devices[0])
        let result = frames.map { f.fate(f.send($0)) }
        f.expectConservation(sourceLocation: sourceLocation)
        return result
    }

    @Test func firstMatchWins() throws {
        let rules = [
            ACLRule(action: .drop, ipProtocol: 6, source: prefix("10.0.0.0/8"), destinationPorts: 22...22),
            ACLRule(action: .allow, source: prefix("10.0.0.0/8")),
            ACLRule(action: .drop, destinationPorts: 80...80),  // never reached for 10/8
        ]
        let result = try fates(
            rules,
            [
                tcp("10.1.1.1", 5000, "192.0.2.1", 22), tcp("10.1.1.1", 5000, "192.0.2.1", 80),
                tcp("11.1.1.1", 5000, "192.0.2.1", 80), tcp("11.1.1.1", 5000, "192.0.2.1", 443),
            ])
        #expect(result == [.dropped, .sent([1]), .dropped, .dropped])
    }

    @Test func ipv4Prefixes() throws {
        let rules = [
            ACLRule(action: .allow, source: prefix("192.168.1.0/24"), destination: prefix("10.0.0.7")),
            ACLRule(action: .allow, source: prefix("172.16.0.0/12")),
        ]
        let result = try fates(
            rules,
            [
                tcp("192.168.1.0", 1, "10.0.0.7", 2), tcp("192.168.1.255", 1, "10.0.0.7", 2),
                tcp("192.168.2.0", 1, "10.0.0.7", 2), tcp("192.168.1.9", 1, "10.0.0.8", 2),
                tcp("172.31.255.255", 1, "1.1.1.1", 2), tcp("172.32.0.0", 1, "1.1.1.1", 2),
            ])
        #expect(result == [.sent([1]), .sent([1]), .dropped, .dropped, .sent([1]), .dropped])
    }

    @Test func ipv6PrefixesAndFamilies() throws {
        let rules = [
            ACLRule(action: .allow, source: prefix("2001:db8:ab00::/40")),
            ACLRule(action: .allow, destination: prefix("0.0.0.0/0")),
        ]
        let result = try fates(
            rules,
            [
                tcp("2001:db8:abff::1", 1, "::1", 2), tcp("2001:db8:ac00::1", 1, "::1", 2),
                // 0.0.0.0/0 matches every IPv4 packet and no IPv6 one.
                tcp("9.9.9.9", 1, "8.8.8.8", 2), tcp("fd00::1", 1, "fd00::2", 2),
            ])
        #expect(result == [.sent([1]), .dropped, .sent([1]), .dropped])
        #expect(prefix("2001:db8:abcd::/40").description == "2001:db8:ab00::/40")
        #expect(prefix("10.1.2.3/8").description == "10.0.0.0/8")
        #expect(IPPrefix("10.0.0.0/33") == nil && IPPrefix("::/129") == nil && IPPrefix("10.0.0.0/") == nil)
        #expect(IPPrefix("fe80::1")?.length == 128)
        #expect(prefix("::/0").contains(IPAddress("2001:db8::1")!) && !prefix("::/0").contains(IPAddress("1.2.3.4")!))
    }

    @Test func portRangesAreInclusiveAndNeedPorts() throws {
        let rules = [ACLRule(action: .allow, sourcePorts: 1024...65535, destinationPorts: 8000...8080)]
        let laterFragment = Packet.ethernet(
            etherType: 0x0800,
            Packet.ipv4(
                "10.0.0.1", "10.0.0.2", .udp(source: 2000, destination: 8000), payload: [0x07, 0xD0, 0x1F, 0x40],
                fragment: 100, transportHeader: false))
        let result = try fates(
            rules,
            [
                udp("10.0.0.1", 1024, "10.0.0.2", 8000), udp("10.0.0.1", 65535, "10.0.0.2", 8080),
                udp("10.0.0.1", 1023, "10.0.0.2", 8000), udp("10.0.0.1", 2000, "10.0.0.2", 8081),
                tcp("10.0.0.1", 2000, "10.0.0.2", 7999),
                // No ports: ICMP, and a non-first fragment (whose payload happens to look like ports 2000 -> 8000).
                Packet.ipv4Frame("10.0.0.1", "10.0.0.2", .icmp(type: 8, code: 0)), laterFragment,
            ])
        #expect(result == [.sent([1]), .sent([1]), .dropped, .dropped, .dropped, .dropped, .dropped])
    }

    @Test func protocolNumbers() throws {
        let rules = [ACLRule(action: .allow, ipProtocol: 17), ACLRule(action: .pass, ipProtocol: 58)]
        let result = try fates(
            rules,
            [
                udp("10.0.0.1", 1, "10.0.0.2", 2), tcp("10.0.0.1", 1, "10.0.0.2", 2),
                Packet.ipv6Frame("::1", "::2", .icmp(type: 128, code: 0)),
                // The protocol after the IPv6 extension headers counts, not the first next-header.
                Packet.ipv6Frame(
                    "::1", "::2", .udp(source: 1, destination: 2), extensionHeaders: [.hopByHop, .routing]),
            ])
        #expect(result == [.sent([1]), .dropped, .passed(0), .sent([1])])
    }

    @Test func defaultActionAppliesWhenNoRuleMatches() throws {
        let rules = [ACLRule(action: .drop, ipProtocol: 6)]
        let frames = [tcp("10.0.0.1", 1, "10.0.0.2", 2), udp("10.0.0.1", 1, "10.0.0.2", 2)]
        #expect(try fates(rules, default: .drop, frames) == [.dropped, .dropped])
        #expect(try fates(rules, default: .pass, frames) == [.dropped, .passed(0)])
        #expect(try fates(rules, default: .allow, frames) == [.dropped, .sent([1])])
        #expect(try fates([], default: .allow, frames) == [.sent([1]), .sent([1])])
    }

    @Test func nonIPSkipsTheRulesAndMalformedIsDropped() throws {
        var truncatedTCP = tcp("10.0.0.1", 1, "10.0.0.2", 2)
        truncatedTCP.removeLast(1)
        let tooShort = Array(Packet.arp()[0..<13])
        let result = try fates([ACLRule(action: .drop)], default: .drop, [Packet.arp(), truncatedTCP, tooShort])
        #expect(result == [.sent([1]), .dropped, .dropped])
    }

    @Test func thenRedirectsByHash() throws {
        let f = try Ports()
        let acl = ACLProgram(
            rules: [ACLRule(action: .drop, destinationPorts: 22...22)], defaultAction: .allow,
            then: RedirectMapProgram(map: f.map, selector: .hash(modulo: 4, base: 0, nonIP: .key(0))))
        f.network.attach(acl, to: f.devices[0])
        // Sources ports 1000...1007 to port 80 hash to keys 0 2 1 0 2 3 2 0 (see RedirectMapProgramTests).
        let keys = (0..<8).map { f.fate(f.send(tcp("10.0.0.1", UInt16(1000 + $0), "10.0.0.2", 80))) }
        #expect(keys == [0, 2, 1, 0, 2, 3, 2, 0].map { .sent([$0]) })
        #expect(f.fate(f.send(tcp("10.0.0.1", 1005, "10.0.0.2", 22))) == .dropped)
        #expect(f.fate(f.send(Packet.arp())) == .sent([0]))
        f.expectConservation()
    }

    @Test func thenConstantPrograms() throws {
        for (then, fate) in [(ConstantProgram(.pass), Ports.Fate.passed(0)), (ConstantProgram(.drop), .dropped)] {
            let f = try Ports()
            f.network.attach(ACLProgram(rules: [], then: then), to: f.devices[0])
            #expect(f.fate(f.send(udp("10.0.0.1", 1, "10.0.0.2", 2))) == fate)
            f.expectConservation()
        }
    }

    /// An ACL in front of the learning switch: the switch's table still learns, through the ACL's copy.
    @Test func thenAnL2Switch() throws {
        let f = try Ports()
        var portKeys: [IfIndex: UInt32] = [:]
        for (i, device) in f.devices.enumerated() { portKeys[device.ifindex] = UInt32(i) }
        let sw = L2SwitchProgram(map: f.map, portKeys: portKeys)
        f.attachEverywhere(ACLProgram(rules: [ACLRule(action: .drop, ipProtocol: 6)], then: sw))
        let a = Packet.macA
        let b = Packet.macB
        #expect(f.fate(f.send(udp("10.0.0.1", 1, "10.0.0.2", 2), on: 0)) == .sent([1, 2, 3]))
        #expect(
            f.fate(
                f.send(
                    Packet.ipv4Frame("10.0.0.2", "10.0.0.1", .udp(source: 2, destination: 1), dst: a, src: b),
                    on: 2)) == .sent([0]))
        #expect(f.fate(f.send(tcp("10.0.0.1", 1, "10.0.0.2", 2), on: 0)) == .dropped)
        #expect(sw.fdb.entries(now: 0).map(\.key) == [0, 2])
        f.expectConservation()
    }
}
