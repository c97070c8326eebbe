import Foundation
import Testing
import XDPEmuCore
import XDPEmuPrograms

@testable import XDPEmuTopology

@Suite("Loader errors in what the document means: names, references, programs, routes")
struct LoaderMeaningErrorTests {
    @Test("duplicate port names, map names, ifindexes, MACs and namespaces")
    func duplicates() {
        expectProblem(
            document(ports: #"{"name": "p0"}, {"name": "p0"}"#),
            at: "$.ports[1].name",
            #"duplicate port name "p0" (first used at $.ports[0].name)"#
        )
        expectProblem(
            document(
                maps:
                    #"""
                    {"name": "m", "type": "devmap", "max_entries": 1}, {"name": "m", "type": "devmap", "max_entries": 2}
                    """#
            ),
            at: "$.maps[1].name",
            #"duplicate map name "m" (first used at $.maps[0].name)"#
        )
        expectProblem(
            document(ports: #"{"name": "p0", "ifindex": 7}, {"name": "p1", "ifindex": 7}"#),
            at: "$.ports[1].ifindex",
            "duplicate ifindex 7 (first used at $.ports[0].ifindex)"
        )
        expectProblem(
            document(ports: #"{"name": "p0", "mac": "02:00:00:00:00:aa"}, {"name": "p1", "mac": "02:00:00:00:00:AA"}"#),
            at: "$.ports[1].mac",
            "duplicate MAC 02:00:00:00:00:aa (first used at $.ports[0].mac)"
        )
        expectProblem(
            document(
                ports: #"{"name": "p0", "host": {"namespace": "ns"}}, {"name": "p1", "host": {"namespace": "ns"}}"#
            ),
            at: "$.ports[1].host.namespace",
            #"duplicate namespace "ns" (first used at $.ports[0].host.namespace)"#
        )
        expectProblem(
            document(ports: #"{"name": "p0", "stack": "st"}, {"name": "p1", "stack": "st"}"#),
            at: "$.ports[1].stack",
            #"duplicate stack "st""#
        )
        expectProblem(
            document(
                ports:
                    #"""
                    {"name": "p0", "host": {"namespace": "a", "mac": "02:00:00:00:09:01"}}, {"name": "p1",
                    "host": {"namespace": "b", "mac": "02:00:00:00:09:01"}}
                    """#
            ),
            at: "$.ports[1].host.mac",
            "duplicate host MAC 02:00:00:00:09:01"
        )
        expectProblem(
            document(
                maps:
                    #"""
                    {"name": "m", "type": "devmap", "max_entries": 4, "entries": [{"key": 1, "port": "p0"}, {"key": 1,
                    "port": "p0"}]}
                    """#
            ),
            at: "$.maps[0].entries[1].key",
            "duplicate key 1 (first used at $.maps[0].entries[0].key)"
        )
        expectProblem(
            document(maps: #"{"name": "m", "type": "devmap", "max_entries": 4, "entries": {"1": "p0", "1": "p0"}}"#),
            at: #"$.maps[0].entries["1"]"#,
            #"duplicate member "1""#
        )
    }

    @Test("names that refer to nothing")
    func missingReferences() {
        expectProblem(
            document(maps: #"{"name": "m", "type": "devmap", "max_entries": 2, "entries": {"0": "p9"}}"#),
            at: #"$.maps[0].entries["0"]"#,
            #"map entry names no port: "p9"; ports: p0"#
        )
        expectProblem(
            document(
                maps: #"{"name": "m", "type": "devmap", "max_entries": 2, "entries": [{"key": 0, "port": "p9"}]}"#
            ),
            at: "$.maps[0].entries[0].port",
            #"map entry names no port: "p9""#
        )
        expectProblem(
            programDocument(#"{"type": "redirect_map", "map": "fwd", "key": {"kind": "ingress_ifindex"}}"#),
            at: "$.ports[0].program.map",
            #"redirect_map names no map: "fwd"; maps: m"#
        )
        expectProblem(
            programDocument(#"{"type": "l2_switch", "map": "m", "ports": {"p0": 0, "p7": 1}}"#),
            at: "$.ports[0].program.ports.p7",
            #"l2_switch port names no port: "p7"; ports: p0, p1"#
        )
        expectProblem(
            programDocument(
                #"""
                {"type": "acl", "then": {"type": "redirect_map", "map": "x", "key": {"kind": "constant", "value": 0}}}
                """#
            ),
            at: "$.ports[0].program.then.map",
            #"redirect_map names no map: "x""#
        )
        expectProblem(
            document(ports: #"{"name": "p0", "stack": "p1"}, {"name": "p1"}"#),
            at: "$.ports[0].stack",
            #""p1" is the name of the port at $.ports[1].name; the stack TAP needs a name of its own"#
        )
    }

    @Test("invalid MAC, CIDR and port range syntax")
    func addressSyntax() {
        expectProblem(
            document(ports: #"{"name": "p0", "mac": "02:00:00:00:00"}"#),
            at: "$.ports[0].mac",
            #"invalid MAC address "02:00:00:00:00"; expected six hex pairs like 02:00:00:00:00:01"#
        )
        expectProblem(
            document(ports: #"{"name": "p0", "mac": "0200.0000.0001"}"#),
            at: "$.ports[0].mac",
            "invalid MAC address"
        )
        expectProblem(
            document(ports: #"{"name": "p0", "mac": "ff:ff:ff:ff:ff:ff"}"#),
            at: "$.ports[0].mac",
            "ff:ff:ff:ff:ff:ff is a multicast address; a device needs a unicast MAC"
        )
        expectProblem(
            document(ports: #"{"name": "p0", "host": {"namespace": "n", "ipv4": ["10.0.0.1"]}}"#),
            at: "$.ports[0].host.ipv4[0]",
            #"invalid IPv4 address "10.0.0.1"; expected an address with prefix length"#
        )
        expectProblem(
            document(ports: #"{"name": "p0", "host": {"namespace": "n", "ipv4": ["10.0.0.256/24"]}}"#),
            at: "$.ports[0].host.ipv4[0]",
            "invalid IPv4 address"
        )
        expectProblem(
            document(ports: #"{"name": "p0", "host": {"namespace": "n", "ipv6": ["fd00::1::2/64"]}}"#),
            at: "$.ports[0].host.ipv6[0]",
            #"invalid IPv6 address "fd00::1::2/64""#
        )
        expectProblem(
            document(ports: #"{"name": "p0", "host": {"namespace": "n", "ipv6": ["fd00::1/129"]}}"#),
            at: "$.ports[0].host.ipv6[0]",
            "invalid IPv6 address"
        )
        expectProblem(
            programDocument(#"{"type": "acl", "rules": [{"action": "drop", "src": "10.0.0/8"}]}"#),
            at: "$.ports[0].program.rules[0].src",
            #"invalid IP prefix "10.0.0/8""#
        )
        expectProblem(
            programDocument(#"{"type": "acl", "rules": [{"action": "drop", "dst": "10.0.0.1/8"}]}"#),
            at: "$.ports[0].program.rules[0].dst",
            "host bits set in 10.0.0.1/8; the network is 10.0.0.0/8"
        )
        expectProblem(
            programDocument(#"{"type": "acl", "rules": [{"action": "drop", "proto": "udp", "dport": "2000-1000"}]}"#),
            at: "$.ports[0].program.rules[0].dport",
            #"invalid port range "2000-1000""#
        )
        expectProblem(
            programDocument(#"{"type": "acl", "rules": [{"action": "drop", "proto": "udp", "sport": 65536}]}"#),
            at: "$.ports[0].program.rules[0].sport",
            "must be an integer 0...65535, got 65536"
        )
        expectProblem(
            programDocument(
                #"{"type": "redirect_map", "map": "m", "key": {"kind": "dst_mac", "table": {"02:00:00:00:00:0g": 1}}}"#
            ),
            at: #"$.ports[0].program.key.table["02:00:00:00:00:0g"]"#,
            "invalid MAC address"
        )
        expectProblem(
            document(
                ports:
                    #"""
                    {"name": "p0", "host": {"namespace": "n", "ipv4": ["10.0.0.1/24"], "routes": [{"to": "10.1.0.0/33",
                    "via": "10.0.0.254"}]}}
                    """#
            ),
            at: "$.ports[0].host.routes[0].to",
            #"invalid route destination "10.1.0.0/33""#
        )
        expectProblem(
            document(
                ports:
                    #"""
                    {"name": "p0", "host": {"namespace": "n", "ipv4": ["10.0.0.1/24"], "routes": [{"to": "default",
                    "via": "10.0.0.300"}]}}
                    """#
            ),
            at: "$.ports[0].host.routes[0].via",
            #"invalid gateway address "10.0.0.300""#
        )
    }

    @Test("map names: the whole names of an object's maps (longer than the kernel's 15 bytes), up to 255")
    func mapNames() {
        let long = "mac_to_port_table_of_the_lab"
        let loaded = load(document(maps: #"{"name": "\#(long)", "type": "devmap", "max_entries": 1}"#))
        #expect(loaded?.maps.first?.name == long)
        let tooLong = String(repeating: "m", count: 256)
        expectProblem(
            document(maps: #"{"name": "\#(tooLong)", "type": "devmap", "max_entries": 1}"#),
            at: "$.maps[0].name",
            "is 256 bytes long; map names have at most 255"
        )
        expectProblem(
            document(maps: #"{"name": "a-b", "type": "devmap", "max_entries": 1}"#),
            at: "$.maps[0].name",
            "map names use only A-Z a-z 0-9 _ ."
        )
    }

    @Test("interface-name rules for port names, host interfaces, stacks and namespaces")
    func interfaceNames() {
        expectProblem(
            document(ports: #"{"name": "a-very-long-name0"}"#),
            at: "$.ports[0].name",
            #""a-very-long-name0" is 17 bytes long; interface names have at most 15"#
        )
        expectProblem(
            document(ports: #"{"name": "p 0"}"#),
            at: "$.ports[0].name",
            #""p 0" contains a space; interface names use only A-Z a-z 0-9 _ . -"#
        )
        expectProblem(
            document(ports: #"{"name": ".."}"#),
            at: "$.ports[0].name",
            #"".." is not a valid interface name"#
        )
        expectProblem(document(ports: #"{"name": ""}"#), at: "$.ports[0].name", "must not be empty")
        expectProblem(
            document(ports: #"{"name": "p0", "host": {"namespace": "n", "interface": "eth/0"}}"#),
            at: "$.ports[0].host.interface",
            "contains '/'"
        )
        expectProblem(
            document(ports: #"{"name": "p0", "host": {"namespace": "ns:1"}}"#),
            at: "$.ports[0].host.namespace",
            "contains ':'"
        )
        expectProblem(
            document(ports: #"{"name": "p0", "stack": "."}"#),
            at: "$.ports[0].stack",
            #""." is not a valid interface name"#
        )
        expectProblem(document(ports: #"{"name": "pé"}"#), at: "$.ports[0].name", #"contains '\u{00E9}'"#)
        // 15 bytes and every allowed character are fine.
        _ = load(document(ports: #"{"name": "Az09_.-abcdefgh"}"#))
        expectProblem(
            document(maps: #"{"name": "my-map", "type": "devmap", "max_entries": 1}"#),
            at: "$.maps[0].name",
            "map names use only A-Z a-z 0-9 _ ."
        )
    }

    @Test("semantics must be 4.18 or modern")
    func semantics() {
        expectProblem(
            document(extra: #""semantics": "5.10""#),
            at: "$.semantics",
            #"unknown semantics "5.10"; allowed: "4.18", "modern""#
        )
        expectProblem(document(extra: #""semantics": 4.18"#), at: "$.semantics", "expected a string, got 4.18")
    }

    @Test("devmap keys must be below max_entries")
    func mapKeyOutOfRange() {
        expectProblem(
            document(maps: #"{"name": "m", "type": "devmap", "max_entries": 8, "entries": {"8": "p0"}}"#),
            at: #"$.maps[0].entries["8"]"#,
            "key 8 is out of range: max_entries is 8, so keys are 0...7"
        )
        expectProblem(
            document(maps: #"{"name": "m", "type": "devmap", "max_entries": 8, "entries": {"01": "p0"}}"#),
            at: #"$.maps[0].entries["01"]"#,
            "must be a decimal integer 0...4294967295 without sign or leading zeros"
        )
        expectProblem(
            document(maps: #"{"name": "m", "type": "cpumap", "max_entries": 8}"#),
            at: "$.maps[0].type",
            #"unknown map type "cpumap"; allowed: "devmap", "devmap_hash", "array", "percpu_array", "hash", "#
                + #""percpu_hash", "lru_hash", "lru_percpu_hash", "lpm_trie""#
        )
    }

    @Test("devmap_hash needs modern semantics and holds at most max_entries")
    func devmapHash() {
        let map = #"{"name": "h", "type": "devmap_hash", "max_entries": 2, "entries": {"100": "p0", "7000": "p0"}}"#
        expectProblem(
            document(maps: map),
            at: "$.maps[0].type",
            #""devmap_hash" needs "semantics": "modern""#
        )
        let topology = load(document(maps: map, extra: #""semantics": "modern""#))
        #expect(topology?.maps.first?.type == .devmapHash)
        #expect(topology?.maps.first?.entries.map(\.key) == [100, 7000])
        expectProblem(
            document(
                maps: #"{"name": "h", "type": "devmap_hash", "max_entries": 1, "entries": {"5": "p0", "6": "p0"}}"#,
                extra: #""semantics": "modern""#
            ),
            at: "$.maps[0].entries",
            "2 entries exceed max_entries 1"
        )
    }

    @Test("an egress program on a map entry needs modern semantics")
    func egressProgram() {
        let map =
            #"{"name": "m", "type": "devmap", "max_entries": 2, "entries": [{"key": 0, "port": "p0", "program": {"type": "drop"}}]}"#
        expectProblem(document(maps: map), at: "$.maps[0].entries[0].program", "an egress program needs")
        let topology = load(document(maps: map, extra: #""semantics": "modern""#))
        #expect(topology?.maps.first?.entries.first?.program == .drop)
    }

    @Test("a hash key needs a modulo of at least 1")
    func hashModuloZero() {
        expectProblem(
            programDocument(#"{"type": "redirect_map", "map": "m", "key": {"kind": "hash", "modulo": 0}}"#),
            at: "$.ports[0].program.key.modulo",
            "must be at least 1: a hash modulo 0 divides by zero"
        )
        expectProblem(
            programDocument(
                #"{"type": "redirect_map", "map": "m", "key": {"kind": "hash", "modulo": 2, "base": 4294967295}}"#
            ),
            at: "$.ports[0].program.key.base",
            "does not fit in a 32-bit key"
        )
    }

    @Test("program and key kinds must be known")
    func unknownKinds() {
        expectProblem(
            programDocument(#"{"type": "redirect"}"#),
            at: "$.ports[0].program.type",
            #"unknown program type "redirect" (did you mean "redirect_map"?); built-in: pass, drop, abort, return"#
        )
        expectProblem(
            programDocument(#"{"type": "redirect_map", "map": "m", "key": {"kind": "src_mac"}}"#),
            at: "$.ports[0].program.key.kind",
            #"unknown key kind "src_mac"; allowed: "constant""#
        )
        expectProblem(
            programDocument(
                #"{"type": "redirect_map", "map": "m", "key": {"kind": "dst_mac", "table": {}, "miss": "flood"}}"#
            ),
            at: "$.ports[0].program.key.miss",
            #"expected "drop", "pass", "abort" or {"key": N}, got "flood""#
        )
    }

    @Test("ACL rules that could never match, and what may follow an ACL")
    func aclConsistency() {
        expectProblem(
            programDocument(#"{"type": "acl", "rules": [{"action": "drop", "dport": 22}]}"#),
            at: "$.ports[0].program.rules[0].dport",
            #"port ranges only match with "proto": "tcp" or "udp""#
        )
        expectProblem(
            programDocument(#"{"type": "acl", "rules": [{"action": "drop", "proto": "icmp", "sport": 1}]}"#),
            at: "$.ports[0].program.rules[0].sport",
            #"not "icmp""#
        )
        expectProblem(
            programDocument(#"{"type": "acl", "rules": [{"action": "drop", "src": "10.0.0.0/8", "dst": "fd00::/8"}]}"#),
            at: "$.ports[0].program.rules[0].dst",
            "dst fd00::/8 and src 10.0.0.0/8 are of different IP families"
        )
        expectProblem(
            programDocument(#"{"type": "acl", "rules": [{"action": "drop", "proto": "icmp", "dst": "fd00::/8"}]}"#),
            at: "$.ports[0].program.rules[0].dst",
            "proto icmp is IPv4 only"
        )
        // A rule with both mistakes reports both.
        let both = problems(
            programDocument(
                #"{"type": "acl", "rules": [{"action": "drop", "proto": "icmp", "src": "10.0.0.0/8", "#
                    + #""dst": "fd00::/8"}]}"#
            )
        )
        #expect(both.map(\.path) == ["$.ports[0].program.rules[0].dst", "$.ports[0].program.rules[0].dst"])
        #expect(both.count == 2 && both[0].message.contains("different IP families"))
        #expect(both.count == 2 && both[1].message.contains("proto icmp is IPv4 only"))
        expectProblem(
            programDocument(#"{"type": "acl", "rules": [{"action": "drop", "proto": "sctp"}]}"#),
            at: "$.ports[0].program.rules[0].proto",
            #"unknown protocol "sctp"; use tcp, udp, icmp, icmpv6 or a number"#
        )
        expectProblem(
            programDocument(#"{"type": "acl", "rules": [{"action": "deny"}]}"#),
            at: "$.ports[0].program.rules[0].action",
            #"unknown ACL action "deny"; allowed: "drop", "pass", "allow""#
        )
        expectProblem(
            programDocument(#"{"type": "acl", "then": {"type": "l2_switch", "map": "m"}}"#),
            at: "$.ports[0].program.then.type",
            #"an ACL's "then" program must be pass, drop or redirect_map, got "l2_switch""#
        )
        let acl = load(
            programDocument(
                #"{"type": "acl", "rules": [{"action": "pass", "proto": 132, "src": "fd00::1"}], "default": "drop"}"#
            )
        )
        #expect(
            acl?.ports[0].program
                == .acl(
                    ACLConfiguration(
                        rules: [ACLRule(action: .pass, ipProtocol: 132, source: IPPrefix("fd00::1/128"))],
                        defaultAction: .drop,
                        then: .pass
                    )
                )
        )
    }

    @Test("a gateway must be reachable from the host")
    func routes() {
        expectProblem(
            document(
                ports:
                    #"""
                    {"name": "p0", "host": {"namespace": "n", "ipv4": ["10.0.0.1/24"], "routes": [{"to": "default",
                    "via": "10.9.0.1"}]}}
                    """#
            ),
            at: "$.ports[0].host.routes[0].via",
            "gateway 10.9.0.1 is not on any of the host's IPv4 networks (10.0.0.1/24)"
        )
        expectProblem(
            document(
                ports:
                    #"""
                    {"name": "p0", "host": {"namespace": "n", "ipv4": ["10.0.0.1/24"], "routes": [{"to": "fd00::/8",
                    "via": "10.0.0.9"}]}}
                    """#
            ),
            at: "$.ports[0].host.routes[0].via",
            "gateway 10.0.0.9 is IPv4 but the destination fd00::/8 is IPv6"
        )
        expectProblem(
            document(
                ports: #"{"name": "p0", "host": {"namespace": "n", "routes": [{"to": "default", "via": "fd00::1"}]}}"#
            ),
            at: "$.ports[0].host.routes[0].via",
            "is not link-local and not on any of the host's IPv6 networks (none)"
        )
        let topology = load(
            document(
                ports:
                    #"""
                    {"name": "p0", "host": {"namespace": "n", "ipv6": ["fd00::2/64"], "routes": [{"to": "default",
                    "via": "fe80::1"}, {"to": "fd01::/64", "via": "fd00::1"}]}}
                    """#
            )
        )
        #expect(
            topology?.ports[0].host?.routes == [
                RouteSpec(to: .default, via: IPAddress("fe80::1")!),
                RouteSpec(to: .prefix(IPPrefix("fd01::/64")!), via: IPAddress("fd00::1")!),
            ]
        )
    }

    @Test("custom program types load only when registered")
    func customPrograms() {
        let doc = programDocument(#"{"type": "sampler", "rate": 10, "to": [1, 2]}"#)
        expectProblem(doc, at: "$.ports[0].program.type", #"unknown program type "sampler""#)
        let topology = load(doc, custom: ["sampler"])
        #expect(
            topology?.ports[0].program
                == .custom(
                    type: "sampler",
                    config: .object([
                        ("rate", .number(10)), ("to", .array([.number(1), .number(2)])),
                    ])
                )
        )
        expectProblem(
            programDocument(#"{"type": "sampel"}"#),
            at: "$.ports[0].program.type",
            #"(did you mean "sampler"?); built-in: pass, drop, abort, return, redirect_map, l2_switch, acl, "#
                + "reflector, ebpf; registered: sampler",
            custom: ["sampler"]
        )
        expectProblem(
            programDocument(#"{"type": "sampler", "rate": 1, "rate": 2}"#),
            at: "$.ports[0].program.rate",
            #"duplicate member "rate""#,
            custom: ["sampler"]
        )
        // A built-in name keeps its meaning even when registered.
        #expect(load(programDocument(#"{"type": "drop"}"#), custom: ["drop"])?.ports[0].program == .drop)
    }

    @Test("all problems are reported at once, in document order")
    func allProblemsAtOnce() {
        let json = """
            {
                "name": "broken",
                "semantics": "4.19",
                "ports": [
                    {"name": "xe0", "mtu": 9001000, "program": {"type": "redirect_map", "map": "nope",
                        "key": {"kind": "constant", "value": 0}}},
                    {"name": "xe0", "colour": "blue"}
                ],
                "maps": [{"name": "fwd", "type": "devmap", "max_entries": 2, "entries": {"0": "xe0"}}]
            }
            """
        do {
            _ = try Topology.parse(data: json, source: "topologies/broken.json")
            Issue.record("loaded")
        } catch {
            #expect(
                error.problems.map(\.path) == [
                    "$.semantics", "$.ports[0].mtu", "$.ports[0].program.map", "$.ports[1].name", "$.ports[1].colour",
                ]
            )
            #expect(
                error.description == """
                    topologies/broken.json: $.semantics: unknown semantics "4.19"; allowed: "4.18", "modern"
                    topologies/broken.json: $.ports[0].mtu: must be an integer 68...65535, got 9001000
                    topologies/broken.json: $.ports[0].program.map: redirect_map names no map: "nope"; maps: fwd
                    topologies/broken.json: $.ports[1].name: duplicate port name "xe0" (first used at $.ports[0].name)
                    topologies/broken.json: $.ports[1].colour: unknown field "colour"; allowed: name, ifindex, \
                    mac, mtu, up, xmit, headroom, capture, program, host, stack, vnet_hdr, cpu
                    """
            )
            #expect(error.problems[1].position == SourcePosition(line: 5, column: 32))
        }
    }
}
