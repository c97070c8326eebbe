import Foundation
import Testing

@testable import XDPEmuTopology

/// topologies/schema.json and the loader must agree: every sample and a few more valid documents pass both, and
/// each invalid document below fails both. Needs python3 with the jsonschema module; skipped without.
@Suite("JSON Schema")
struct SchemaTests {
    static let jsonschemaAvailable = (try? runPython(["-c", "import jsonschema"]))??.status == 0

    /// Validates each document against the schema with Draft 2020-12; returns one Bool per document.
    static func schemaAccepts(_ documents: [String]) throws -> [Bool] {
        let script = """
            import json, sys, jsonschema
            schema = json.load(open(sys.argv[1]))
            jsonschema.Draft202012Validator.check_schema(schema)
            validator = jsonschema.Draft202012Validator(schema)
            documents = json.load(sys.stdin)
            print(json.dumps([validator.is_valid(json.loads(text)) for text in documents]))
            """
        let input = String(decoding: try JSONSerialization.data(withJSONObject: documents), as: UTF8.self)
        let schema = packageRoot.appendingPathComponent("topologies/schema.json").path
        let result = try #require(try runPython(["-c", script, schema], input: input))
        try #require(result.status == 0, "python failed: \(result.output)")
        let verdicts = try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [Bool]
        return try #require(verdicts)
    }

    static let validDocuments: [String] = [
        #"{"name": "min", "ports": [{"name": "p0"}]}"#,
        #"""
        {"name": "e", "ports": [{"name": "p0", "program": {"type": "ebpf", "object": "prog.o", "function": "xdp_main",
            "instruction_budget": 5000}}],
         "maps": [{"name": "counts", "type": "percpu_array", "max_entries": 4, "key_size": 4, "value_size": 8,
            "entries": [{"key": 0, "value": "01 00 00 00 00 00 00 00"}, {"key": 1, "value": 7}]}]}
        """#,
        #"""
        {"name": "full", "description": "d", "semantics": "modern",
         "napi": {"budget": 8, "ring_size": 16, "poll_delay_ns": 18446744073709551615, "frame_cost_ns": 50, "cpus": 2},
         "ports": [{"name": "p0", "ifindex": 10, "mac": "02:AA:00:00:00:01", "mtu": 1e3, "up": false, "xmit": false,
            "headroom": 0, "capture": {"ingress": false}, "stack": "st0", "vnet_hdr": true,
            "program": {"type": "redirect_map", "map": "m", "flags": 18446744073709551615,
                "key": {"kind": "hash", "modulo": 4, "non_ip": {"key": 0}}},
            "host": {"namespace": "ns", "interface": "eth0", "ipv4": ["10.0.0.1/24"],
                "ipv6": ["fd00::1/64", "::ffff:10.0.0.1/128"], "ipv6_autoconf": true,
                "routes": [{"to": "default", "via": "10.0.0.254"}, {"to": "fd01::/64", "via": "fe80::1"}]}},
          {"name": "p1", "program": {"type": "acl", "default": "drop",
            "rules": [{"action": "pass", "proto": 6, "src": "fd00::/8", "sport": "1000-2000"}, {"action": "allow"}],
            "then": {"type": "drop"}}},
          {"name": "p2", "program": {"type": "return", "value": 4294967295}},
          {"name": "p3", "program": {"type": "l2_switch", "map": "m", "ports": {"p0": 77}, "table_size": 8}}],
         "maps": [{"name": "m", "type": "devmap_hash", "max_entries": 4, "entries": [{"key": 77, "port": "p0"}]}]}
        """#,
    ]

    /// Each is wrong in one way the schema can express.
    static let invalidDocuments: [String] = [
        #"{"name": "t", "ports": [{"name": "p0", "program": {"type": "ebpf"}}]}"#,
        #"{"name": "t", "ports": [{"name": "p0"}], "maps": [{"name": "a", "type": "array", "max_entries": 1, "entries": [{"key": 0, "port": "p0"}]}]}"#,
        #"{"ports": [{"name": "p0"}]}"#,
        #"{"name": "t", "ports": []}"#,
        #"{"name": "t", "ports": [{"name": "p0", "mtu": 67}]}"#,
        #"{"name": "t", "ports": [{"name": "p0", "mtu": 1500.5}]}"#,
        #"{"name": "t", "ports": [{"name": "p0", "colour": "blue"}]}"#,
        #"{"name": "t", "ports": [{"name": ".."}]}"#,
        #"{"name": "t", "ports": [{"name": "sixteen-bytes-xx"}]}"#,
        #"{"name": "t", "ports": [{"name": "p0", "mac": "01:00:5e:00:00:01"}]}"#,
        #"{"name": "t", "ports": [{"name": "p0", "host": {"namespace": "n", "ipv4": ["10.0.0.1"]}}]}"#,
        #"{"name": "t", "ports": [{"name": "p0", "host": {"namespace": "n", "ipv6": ["1::2::3/64"]}}]}"#,
        #"{"name": "t", "semantics": "5.10", "ports": [{"name": "p0"}]}"#,
        #"{"name": "t", "ports": [{"name": "p0"}], "maps": [{"name": "h", "type": "devmap_hash", "max_entries": 1}]}"#,
        #"{"name": "t", "ports": [{"name": "p0"}], "maps": [{"name": "m", "type": "devmap", "max_entries": 0}]}"#,
        #"""
        {"name": "t", "ports": [{"name": "p0"}], "maps": [{"name": "m", "type": "devmap", "max_entries": 2,
        "entries": {"01": "p0"}}]}
        """#,
        #"""
        {"name": "t", "ports": [{"name": "p0", "program": {"type": "redirect_map", "map": "m", "key": {"kind": "hash",
        "modulo": 0}}}]}
        """#,
        #"""
        {"name": "t", "ports": [{"name": "p0", "program": {"type": "redirect_map", "map": "m",
        "key": {"kind": "constant", "value": 0}, "flags": -1}}]}
        """#,
        #"""
        {"name": "t", "ports": [{"name": "p0", "program": {"type": "redirect_map", "map": "m",
        "key": {"kind": "constant", "value": 0}, "flags": 18446744073709551616}}]}
        """#,
        #"{"name": "t", "ports": [{"name": "p0", "program": {"type": "sampler"}}]}"#,
        #"""
        {"name": "t", "ports": [{"name": "p0", "program": {"type": "acl", "rules": [{"action": "drop", "dport": 22}]}}]}
        """#,
        #"""
        {"name": "t", "ports": [{"name": "p0", "program": {"type": "acl", "rules": [{"action": "drop", "proto": "udp",
        "dport": "1-2-3"}]}}]}
        """#,
        #"{"name": "t", "ports": [{"name": "p0", "program": {"type": "acl", "then": {"type": "reflector"}}}]}"#,
        #"""
        {"name": "t", "ports": [{"name": "p0", "program": {"type": "redirect_map", "map": "m",
        "key": {"kind": "dst_mac", "table": {}, "miss": "flood"}}}]}
        """#,
    ]

    @Test(
        "schema.json is valid Draft 2020-12 and accepts every sample topology",
        .enabled(if: jsonschemaAvailable, "python3 with the jsonschema module is not available")
    )
    func samplesValidate() throws {
        let directory = packageRoot.appendingPathComponent("topologies")
        let samples = try SampleTopologyTests.sampleFiles.map {
            try String(contentsOf: directory.appendingPathComponent($0), encoding: .utf8)
        }
        try #require(!samples.isEmpty)
        #expect(try Self.schemaAccepts(samples) == samples.map { _ in true })
    }

    @Test(
        "the schema and the loader accept the same valid documents",
        .enabled(if: jsonschemaAvailable, "python3 with the jsonschema module is not available")
    )
    func validDocuments() throws {
        #expect(try Self.schemaAccepts(Self.validDocuments) == Self.validDocuments.map { _ in true })
        for document in Self.validDocuments { _ = load(document) }
    }

    @Test(
        "the schema and the loader both reject each invalid document",
        .enabled(if: jsonschemaAvailable, "python3 with the jsonschema module is not available")
    )
    func invalidDocuments() throws {
        let verdicts = try Self.schemaAccepts(Self.invalidDocuments)
        for (document, accepted) in zip(Self.invalidDocuments, verdicts) {
            #expect(!accepted, "the schema accepts \(document)")
            #expect(problems(document).count >= 1)
        }
    }
}
