import Foundation
import Testing
import XDPEmuCore
import XDPEmuPrograms

@testable import XDPEmuTopology

@Suite("Loader errors in the document's form: the file, JSON, fields, types and ranges")
struct LoaderErrorTests {
    @Test("an unreadable file is one problem at $ naming the OS error")
    func unreadableFile() {
        #expect(
            throws: TopologyError(
                source: "/nonexistent/x.json",
                problems: [
                    .init(path: "$", message: "cannot open the file: No such file or directory (errno 2)")
                ]
            )
        ) {
            try Topology.load(path: "/nonexistent/x.json")
        }
        do {
            _ = try Topology.load(path: packageRoot.appendingPathComponent("topologies").path)
            Issue.record("a directory loaded")
        } catch {
            #expect(error.problems.map(\.message) == ["cannot read the file: it is a directory"])
        }
    }

    @Test("invalid JSON reports line and column")
    func invalidJSON() {
        expectProblem(
            "{\n  \"name\": \"x\",\n  \"ports\": [,]\n}",
            at: "$",
            "invalid JSON at line 3, column 13: expected a value, got ','"
        )
        expectProblem(#"{"name": "x", "ports": [],}"#, at: "$", "line 1, column 27: trailing comma before '}'")
        expectProblem(#"{"name": "x""#, at: "$", "line 1, column 13: expected ',' or '}' after an object member")
        expectProblem(#"{"name": "x"} {}"#, at: "$", "line 1, column 15: unexpected '{' after the end")
        expectProblem(#"{"mtu": 0150}"#, at: "$", "line 1, column 10: numbers must not have leading zeros")
        expectProblem("{\"name\": \"ü\n\"}", at: "$", "line 1, column 12: control character (byte 0x0A)")
        expectProblem("", at: "$", "the document is empty")
        expectProblem(#"{"name": "\q"}"#, at: "$", #"line 1, column 11: invalid escape '\q'"#)
        expectProblem(#"{"name": "\ud800"}"#, at: "$", "lone surrogate")
        expectProblem(#"{"name": nul}"#, at: "$", "line 1, column 10: expected 'null'")
        let invalidUTF8: [UInt8] = Array(#"{"name": ""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        do {
            _ = try Topology.parse(data: invalidUTF8, source: "bytes")
            Issue.record("invalid UTF-8 loaded")
        } catch {
            #expect(error.problems.first?.message == "invalid JSON at line 1, column 10: the string is not valid UTF-8")
            #expect(error.problems.first?.position == SourcePosition(line: 1, column: 10))
        }
        let deep = String(repeating: "[", count: 200) + String(repeating: "]", count: 200)
        expectProblem(deep, at: "$", "nested deeper than 128 levels")
    }

    @Test("the top level must be an object")
    func topLevelNotObject() {
        expectProblem("[1, 2]", at: "$", "a topology must be a JSON object, got an array")
        expectProblem("\"two-hosts\"", at: "$", "a topology must be a JSON object, got a string")
    }

    @Test("unknown fields are named, with the allowed ones, at any level")
    func unknownFields() {
        expectProblem(
            document(extra: #""nmae": "x""#),
            at: "$.nmae",
            #"unknown field "nmae" (did you mean "name"?); allowed: name, description, semantics, napi, ports, maps"#
        )
        expectProblem(
            document(ports: #"{"name": "p0", "mtus": 1500}"#),
            at: "$.ports[0].mtus",
            #"unknown field "mtus" (did you mean "mtu"?); allowed: name, ifindex, mac, mtu, up"#
        )
        expectProblem(
            document(ports: #"{"name": "p0", "capture": {"ingress": true, "both": false}}"#),
            at: "$.ports[0].capture.both",
            #"unknown field "both"; allowed: ingress, egress"#
        )
        expectProblem(
            document(extra: #""napi": {"budget": 8, "weight": 64}"#),
            at: "$.napi.weight",
            "allowed: budget, ring_size, poll_delay_ns, frame_cost_ns, cpus"
        )
        expectProblem(
            document(ports: #"{"name": "p0", "host": {"namespace": "n", "ipv4_addr": []}}"#),
            at: "$.ports[0].host.ipv4_addr",
            #"unknown field "ipv4_addr""#
        )
        expectProblem(
            programDocument(
                #"{"type": "redirect_map", "map": "m", "key": {"kind": "constant", "value": 1, "mask": 3}}"#
            ),
            at: "$.ports[0].program.key.mask",
            #"unknown field "mask"; allowed: kind, value"#
        )
        expectProblem(
            programDocument(#"{"type": "drop", "map": "m"}"#),
            at: "$.ports[0].program.map",
            #"unknown field "map"; allowed: type"#
        )
        expectProblem(
            document(maps: #"{"name": "m", "type": "devmap", "max_entries": 1, "size": 3}"#),
            at: "$.maps[0].size",
            "allowed: name, type, max_entries, entries"
        )
    }

    @Test("a member given twice is reported")
    func duplicateMember() {
        expectProblem(
            document(ports: #"{"name": "p0", "mtu": 1500, "mtu": 9000}"#),
            at: "$.ports[0].mtu",
            #"duplicate member "mtu""#
        )
    }

    @Test("wrong types name the expected type and show the value")
    func wrongTypes() {
        expectProblem(
            document(ports: #"{"name": "p0", "mtu": "abc"}"#),
            at: "$.ports[0].mtu",
            #"must be an integer 68...65535, got "abc""#
        )
        expectProblem(
            document(ports: #"{"name": "p0", "up": "yes"}"#),
            at: "$.ports[0].up",
            #"expected true or false, got "yes""#
        )
        expectProblem(document(ports: #"{"name": 5}"#), at: "$.ports[0].name", "expected a string, got 5")
        expectProblem(#"{"name": "t", "ports": {"p0": {}}}"#, at: "$.ports", #"expected an array, got {"p0":{}}"#)
        expectProblem(document(ports: #""p0""#), at: "$.ports[0]", #"expected an object, got "p0""#)
        expectProblem(
            document(ports: #"{"name": "p0", "host": {"namespace": "n", "ipv4": "10.0.0.1/24"}}"#),
            at: "$.ports[0].host.ipv4",
            #"expected an array of strings, got "10.0.0.1/24""#
        )
        expectProblem(
            document(ports: #"{"name": "p0", "program": "pass"}"#),
            at: "$.ports[0].program",
            #"expected an object, got "pass""#
        )
        expectProblem(
            document(maps: #"{"name": "m", "type": "devmap", "max_entries": 1, "entries": "p0"}"#),
            at: "$.maps[0].entries",
            #"expected an object like {"0": "p1"} or an array like"#
        )
        let long = String(repeating: "x", count: 100)
        let found = problems(document(ports: #"{"name": "p0", "mtu": "\#(long)"}"#))
        #expect(found.first?.message.hasSuffix("…") == true, "long values are cut: \(found)")
    }

    @Test("missing required fields are reported at their own path")
    func missingRequired() {
        expectProblem(#"{"ports": [{"name": "p0"}]}"#, at: "$.name", #"missing required field "name""#)
        expectProblem(#"{"name": "t"}"#, at: "$.ports", #"missing required field "ports""#)
        expectProblem(#"{"name": "t", "ports": []}"#, at: "$.ports", "must list at least one port")
        expectProblem(document(ports: #"{"mtu": 1500}"#), at: "$.ports[0].name", #"missing required field "name""#)
        expectProblem(
            document(ports: #"{"name": "p0", "host": {}}"#),
            at: "$.ports[0].host.namespace",
            #"missing required field "namespace""#
        )
        expectProblem(
            document(maps: #"{"name": "m", "type": "devmap"}"#),
            at: "$.maps[0].max_entries",
            #"missing required field "max_entries""#
        )
        expectProblem(
            document(ports: #"{"name": "p0", "program": {"map": "m"}}"#),
            at: "$.ports[0].program.type",
            #"missing required field "type""#
        )
        expectProblem(
            programDocument(#"{"type": "redirect_map", "map": "m"}"#),
            at: "$.ports[0].program.key",
            #"missing required field "key""#
        )
        expectProblem(
            programDocument(#"{"type": "return"}"#),
            at: "$.ports[0].program.value",
            #"missing required field "value""#
        )
    }

    @Test("out-of-range values give the range")
    func outOfRange() {
        expectProblem(
            document(ports: #"{"name": "p0", "mtu": 67}"#),
            at: "$.ports[0].mtu",
            "must be an integer 68...65535, got 67"
        )
        expectProblem(document(ports: #"{"name": "p0", "mtu": 65536}"#), at: "$.ports[0].mtu", "got 65536")
        expectProblem(
            document(ports: #"{"name": "p0", "headroom": 257}"#),
            at: "$.ports[0].headroom",
            "must be an integer 0...256, got 257"
        )
        expectProblem(
            document(ports: #"{"name": "p0", "ifindex": 0}"#),
            at: "$.ports[0].ifindex",
            "must be an integer 1...2147483647, got 0"
        )
        expectProblem(
            document(ports: #"{"name": "p0", "ifindex": 2147483648}"#),
            at: "$.ports[0].ifindex",
            "got 2147483648"
        )
        expectProblem(document(extra: #""napi": {"budget": 0}"#), at: "$.napi.budget", "must be an integer 1...1024")
        expectProblem(document(extra: #""napi": {"cpus": 65}"#), at: "$.napi.cpus", "must be an integer 1...64")
        expectProblem(
            document(ports: #"{"name": "p0", "cpu": 1}"#), at: "$.ports[0].cpu",
            "cpu 1 is not below napi.cpus (1): CPUs count from 0")
        expectProblem(
            document(ports: #"{"name": "p0", "cpu": 64}"#, extra: #""napi": {"cpus": 64}"#), at: "$.ports[0].cpu",
            "must be an integer 0...63, got 64")
        expectProblem(
            document(extra: #""napi": {"ring_size": 1048577}"#),
            at: "$.napi.ring_size",
            "must be an integer 1...1048576, got 1048577"
        )
        expectProblem(
            document(maps: #"{"name": "m", "type": "devmap", "max_entries": 0}"#),
            at: "$.maps[0].max_entries",
            "must be an integer 1...1048576, got 0"
        )
        expectProblem(
            programDocument(#"{"type": "l2_switch", "map": "m", "table_size": 0}"#),
            at: "$.ports[0].program.table_size",
            "must be an integer 1...1048576"
        )
        expectProblem(
            programDocument(#"{"type": "return", "value": 4294967296}"#),
            at: "$.ports[0].program.value",
            "must be an integer 0...4294967295, got 4294967296"
        )
        expectProblem(
            document(ports: #"{"name": "p0", "host": {"namespace": "n", "mtu": 20}}"#),
            at: "$.ports[0].host.mtu",
            "must be an integer 68...65535"
        )
    }

    @Test("numbers that are not integers are refused where integers are required")
    func nonIntegral() {
        expectProblem(
            document(ports: #"{"name": "p0", "mtu": 1500.5}"#),
            at: "$.ports[0].mtu",
            "must be an integer 68...65535, got 1500.5"
        )
        expectProblem(document(ports: #"{"name": "p0", "mtu": 15e-1}"#), at: "$.ports[0].mtu", "got 15e-1")
        expectProblem(document(ports: #"{"name": "p0", "mtu": 1e400}"#), at: "$.ports[0].mtu", "got 1e400")
    }

    @Test("negative values are refused for unsigned fields")
    func negativeUnsigned() {
        expectProblem(
            programDocument(
                #"{"type": "redirect_map", "map": "m", "key": {"kind": "constant", "value": 0}, "flags": -1}"#
            ),
            at: "$.ports[0].program.flags",
            "must be an integer 0...18446744073709551615, got -1"
        )
        expectProblem(document(ports: #"{"name": "p0", "ifindex": -3}"#), at: "$.ports[0].ifindex", "got -3")
        expectProblem(
            document(extra: #""napi": {"poll_delay_ns": -1}"#),
            at: "$.napi.poll_delay_ns",
            "must be an integer 0...18446744073709551615, got -1"
        )
        expectProblem(
            document(
                maps: #"{"name": "m", "type": "devmap", "max_entries": 2, "entries": [{"key": -1, "port": "p0"}]}"#
            ),
            at: "$.maps[0].entries[0].key",
            "must be an integer 0...4294967295, got -1"
        )
    }
}
