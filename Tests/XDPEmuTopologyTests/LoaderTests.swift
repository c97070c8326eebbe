import Testing
import XDPEmuCore
import XDPEmuPrograms

@testable import XDPEmuTopology

@Suite("Loader: defaults, syntaxes and assignment")
struct LoaderTests {
    @Test("a minimal file gets every documented default")
    func defaults() throws {
        let topology = try #require(load(#"{"name": "min", "ports": [{"name": "p0"}]}"#))
        #expect(
            topology
                == Topology(
                    name: "min",
                    semantics: .v4_18,
                    napi: NAPISettings(
                        budget: 64,
                        ringSize: 1024,
                        pollDelayNanos: 0,
                        frameCostNanos: 0,
                        cpus: 1
                    ),
                    ports: [
                        PortSpec(
                            name: "p0",
                            ifindex: 1,
                            mac: MACAddress("02:00:00:00:00:01")!,
                            mtu: 1500,
                            up: true,
                            xmit: true,
                            headroom: 256,
                            capture: CaptureSpec(ingress: true, egress: true),
                            program: .pass,
                            host: nil,
                            stack: nil,
                            vnetHdr: false
                        )
                    ],
                    maps: [],
                    source: "test.json"
                )
        )
        #expect(topology.description == nil)
    }

    @Test("defaults inside hosts, programs and keys")
    func nestedDefaults() throws {
        let topology = try #require(
            load(
                document(
                    ports: #"""
                        {"name": "p0", "host": {"namespace": "ns0"},
                         "program": {"type": "redirect_map", "map": "m", "key": {"kind": "dst_mac", "table": {}}}},
                        {"name": "p1", "program": {"type": "redirect_map", "map": "m",
                        "key": {"kind": "hash", "modulo": 2}}},
                        {"name": "p2", "program": {"type": "reflector"}},
                        {"name": "p3", "program": {"type": "l2_switch", "map": "m"}},
                        {"name": "p4", "program": {"type": "acl"}}
                        """#,
                    maps: #"{"name": "m", "type": "devmap", "max_entries": 4}"#
                )
            )
        )
        #expect(topology.ports[0].host == HostSpec(namespace: "ns0", interface: "p0"))
        #expect(
            topology.ports[0].program
                == .redirectMap(
                    RedirectMapConfiguration(
                        map: "m",
                        selector: .destinationMAC(table: MACTable([]), miss: .drop),
                        flags: 0
                    )
                )
        )
        #expect(
            topology.ports[1].program
                == .redirectMap(
                    RedirectMapConfiguration(
                        map: "m",
                        selector: .hash(modulo: 2, base: 0, nonIP: .drop)
                    )
                )
        )
        #expect(topology.ports[2].program == .reflector(ReflectorProgram(swapIP: true, swapPorts: false)))
        #expect(
            topology.ports[3].program
                == .l2Switch(
                    L2SwitchConfiguration(
                        map: "m",
                        ports: [],
                        tableSize: 4096,
                        floodExcludeIngress: true
                    )
                )
        )
        #expect(topology.ports[4].program == .acl(ACLConfiguration(rules: [], defaultAction: .allow, then: .pass)))
    }

    @Test("every field can be set")
    func everyField() throws {
        let topology = try #require(
            load(
                #"""
                {
                    "name": "full", "description": "all of it", "semantics": "modern",
                    "napi": {"budget": 8, "ring_size": 16, "poll_delay_ns": 1000, "frame_cost_ns": 50, "cpus": 2},
                    "ports": [{
                        "name": "p0", "ifindex": 10, "mac": "02:AA:00:00:00:01", "mtu": 9000,
                        "up": false, "xmit": false,
                        "headroom": 0, "capture": {"ingress": false, "egress": true},
                        "stack": "p0-stack", "vnet_hdr": true,
                        "program": {"type": "redirect_map", "map": "m", "flags": 2,
                            "key": {"kind": "hash", "modulo": 4, "base": 1, "non_ip": {"key": 0}}},
                        "host": {"namespace": "ns", "interface": "eth0", "mac": "02:bb:00:00:00:01", "mtu": 1400,
                            "ipv4": ["10.0.0.1/24"], "ipv6": ["fd00::1/64"], "ipv6_autoconf": true,
                            "routes": [{"to": "10.1.0.0/16", "via": "10.0.0.254"}]}
                    }],
                    "maps": [{"name": "m", "type": "devmap_hash", "max_entries": 4, "entries": {"77": "p0"}}]
                }
                """#
            )
        )
        #expect(topology.description == "all of it")
        #expect(topology.semantics == .modern)
        #expect(
            topology.napi == NAPISettings(budget: 8, ringSize: 16, pollDelayNanos: 1000, frameCostNanos: 50, cpus: 2)
        )
        #expect(
            topology.ports == [
                PortSpec(
                    name: "p0",
                    ifindex: 10,
                    mac: MACAddress(0x02, 0xAA, 0, 0, 0, 1),
                    mtu: 9000,
                    up: false,
                    xmit: false,
                    headroom: 0,
                    capture: CaptureSpec(ingress: false, egress: true),
                    program: .redirectMap(
                        RedirectMapConfiguration(
                            map: "m",
                            selector: .hash(modulo: 4, base: 1, nonIP: .key(0)),
                            flags: 2
                        )
                    ),
                    host: HostSpec(
                        namespace: "ns",
                        interface: "eth0",
                        mac: MACAddress("02:bb:00:00:00:01"),
                        mtu: 1400,
                        ipv4: [InterfaceAddress("10.0.0.1/24")!],
                        ipv6: [InterfaceAddress("fd00::1/64")!],
                        routes: [RouteSpec(to: .prefix(IPPrefix("10.1.0.0/16")!), via: IPAddress("10.0.0.254")!)],
                        ipv6Autoconf: true
                    ),
                    stack: "p0-stack",
                    vnetHdr: true
                )
            ]
        )
        #expect(
            topology.maps == [
                MapSpec(name: "m", type: .devmapHash, maxEntries: 4, entries: [MapEntry(key: 77, port: "p0")])
            ]
        )
    }

    @Test("map entries as an object and as an array mean the same")
    func mapEntrySyntaxes() throws {
        let ports = #"{"name": "p1"}, {"name": "p2"}"#
        let object = try #require(
            load(
                document(
                    ports: ports,
                    maps: #"{"name": "fwd", "type": "devmap", "max_entries": 4, "entries": {"3": "p1", "0": "p2"}}"#
                )
            )
        )
        let array = try #require(
            load(
                document(
                    ports: ports,
                    maps:
                        #"""
                        {"name": "fwd", "type": "devmap", "max_entries": 4, "entries": [{"key": 3, "port": "p1"},
                        {"key": 0, "port": "p2"}]}
                        """#
                )
            )
        )
        #expect(object.maps == array.maps)
        #expect(object.maps[0].entries == [MapEntry(key: 3, port: "p1"), MapEntry(key: 0, port: "p2")])
    }

    @Test("64-bit integers are read exactly, integral spellings accepted")
    func exactIntegers() throws {
        func flags(_ literal: String) -> UInt64? {
            let program =
                #"{"type": "redirect_map", "map": "m", "key": {"kind": "constant", "value": 0}, "flags": \#(literal)}"#
            guard case .redirectMap(let spec) = load(programDocument(program))?.ports[0].program else { return nil }
            return spec.flags
        }
        #expect(flags("18446744073709551615") == UInt64.max)
        #expect(flags("9007199254740993") == 9_007_199_254_740_993)  // 2^53 + 1: not representable as a Double
        #expect(flags("18446744073709551614") == UInt64.max - 1)
        #expect(flags("1e19") == 10_000_000_000_000_000_000)
        #expect(flags("1.8446744073709551615e19") == UInt64.max)
        #expect(flags("0.0") == 0)
        #expect(flags("-0") == 0)
        expectProblem(
            programDocument(
                #"""
                {"type": "redirect_map", "map": "m", "key": {"kind": "constant", "value": 0},
                "flags": 18446744073709551616}
                """#
            ),
            at: "$.ports[0].program.flags",
            "must be an integer 0...18446744073709551615, got 18446744073709551616"
        )
        expectProblem(
            programDocument(
                #"{"type": "redirect_map", "map": "m", "key": {"kind": "constant", "value": 0}, "flags": 1e100}"#
            ),
            at: "$.ports[0].program.flags",
            "got 1e100"
        )
        let mtu = load(
            document(
                ports: #"{"name": "p0", "mtu": 1e3}, {"name": "p1", "mtu": 1500.0}, {"name": "p2", "mtu": 90.00e2}"#
            )
        )
        #expect(mtu?.ports.map(\.mtu) == [1000, 1500, 9000])
    }

    @Test("ifindexes count up from 1 around explicit ones")
    func ifindexAssignment() throws {
        let topology = try #require(
            load(
                document(
                    ports: #"""
                        {"name": "a"}, {"name": "b", "ifindex": 1}, {"name": "c"},
                        {"name": "d", "ifindex": 3}, {"name": "e"},
                        {"name": "f", "ifindex": 100}
                        """#
                )
            )
        )
        #expect(topology.ports.map(\.ifindex) == [2, 1, 4, 3, 5, 100])
    }

    @Test("default MACs follow the port index and never collide")
    func macDerivation() throws {
        let topology = try #require(
            load(
                document(
                    ports: #"""
                        {"name": "p0"}, {"name": "p1", "mac": "02:00:00:00:00:01"}, {"name": "p2"},
                        {"name": "p3", "host": {"namespace": "n3", "mac": "02:00:00:00:00:04"}}, {"name": "p4"}
                        """#
                )
            )
        )
        #expect(
            topology.ports.map(\.mac.description) == [
                "02:00:00:00:00:02", "02:00:00:00:00:01", "02:00:00:00:00:03", "02:00:00:00:00:05", "02:00:00:00:00:06",
            ]
        )
        #expect(PortSpec.defaultMAC(index: 0) == MACAddress("02:00:00:00:00:01"))
        #expect(PortSpec.defaultMAC(index: 299) == MACAddress("02:00:00:00:01:2c"))

        let many = (0..<300).map { #"{"name": "p\#($0)"}"# }.joined(separator: ", ")
        let big = try #require(load(document(ports: many)))
        #expect(Set(big.ports.map(\.mac)).count == 300)
        #expect(big.ports.allSatisfy { !$0.mac.isMulticast })
        #expect(big.ports.map(\.ifindex.rawValue) == Array(1...300))
        #expect(big.ports.map(\.mac) == (0..<300).map { PortSpec.defaultMAC(index: $0) })
    }

    @Test("l2_switch ports are given explicitly or derived from the map's first key per port")
    func l2SwitchPorts() throws {
        let maps = #"{"name": "m", "type": "devmap", "max_entries": 4, "entries": {"2": "p1", "0": "p0", "3": "p1"}}"#
        let derived = try #require(
            load(
                document(
                    ports: #"{"name": "p0", "program": {"type": "l2_switch", "map": "m"}}, {"name": "p1"}"#,
                    maps: maps
                )
            )
        )
        #expect(
            derived.ports[0].program
                == .l2Switch(
                    L2SwitchConfiguration(
                        map: "m",
                        ports: [PortKey(port: "p1", key: 2), PortKey(port: "p0", key: 0)]
                    )
                )
        )
        let explicit = try #require(
            load(
                document(
                    ports:
                        #"""
                        {"name": "p0", "program": {"type": "l2_switch", "map": "m", "ports": {"p1": 3},
                        "table_size": 16, "flood_exclude_ingress": false}}, {"name": "p1"}
                        """#,
                    maps: maps
                )
            )
        )
        #expect(
            explicit.ports[0].program
                == .l2Switch(
                    L2SwitchConfiguration(
                        map: "m",
                        ports: [PortKey(port: "p1", key: 3)],
                        tableSize: 16,
                        floodExcludeIngress: false
                    )
                )
        )
        expectProblem(
            document(
                ports:
                    #"""
                    {"name": "p0", "program": {"type": "l2_switch", "map": "m", "ports": {"p0": 1, "p1": 1}}},
                    {"name": "p1"}
                    """#,
                maps: maps
            ),
            at: "$.ports[0].program.ports.p1",
            "key 1 already reaches the port at $.ports[0].program.ports.p0"
        )
    }

    @Test("return and the plain actions")
    func simplePrograms() {
        let topology = load(
            document(
                ports: #"""
                    {"name": "a", "program": {"type": "pass"}}, {"name": "b", "program": {"type": "drop"}},
                    {"name": "c", "program": {"type": "abort"}},
                    {"name": "d", "program": {"type": "return", "value": 7}}
                    """#
            )
        )
        #expect(topology?.ports.map(\.program) == [.pass, .drop, .abort, .returnValue(7)])
        #expect(topology?.ports.map(\.program.typeName) == ["pass", "drop", "abort", "return"])
    }

    @Test("a UTF-8 byte order mark is skipped")
    func byteOrderMark() throws {
        let bytes: [UInt8] = [0xEF, 0xBB, 0xBF] + Array(#"{"name": "bom", "ports": [{"name": "p0"}]}"#.utf8)
        #expect(try Topology.parse(data: bytes, source: "bom").name == "bom")
    }
}
