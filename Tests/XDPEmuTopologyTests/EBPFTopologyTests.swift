import Testing

@testable import XDPEmuTopology

/// `"type": "ebpf"` programs and the maps of eBPF objects, as the loader reads them (the object itself is read
/// when the emulation is built; see XDPEmuBPFTests).
@Suite struct EBPFTopologyTests {
    @Test func objectPathsAreRelativeToTheTopologyFile() throws {
        let text =
            #"{"name": "t", "ports": [{"name": "p0", "program": {"type": "ebpf", "object": "obj/prog.o", "section": "xdp"}}]}"#
        let topology = try Topology.parse(data: text, source: "/srv/topologies/t.json")
        #expect(
            topology.ports[0].program
                == .ebpf(EBPFProgramConfiguration(object: "/srv/topologies/obj/prog.o", section: "xdp")))
        let absolute = try Topology.parse(
            data:
                #"{"name": "t", "ports": [{"name": "p0", "program": {"type": "ebpf", "object": "/x/p.o", "instruction_budget": 7}}]}"#,
            source: "t.json")
        #expect(absolute.ports[0].program == .ebpf(EBPFProgramConfiguration(object: "/x/p.o", instructionBudget: 7)))
    }

    @Test func dataMapEntriesKeepWhatWasWritten() throws {
        let topology = try Topology.parse(
            data: document(
                maps:
                    #"{"name": "macs", "type": "hash", "max_entries": 9, "key_size": 6, "entries": [{"key": "02:00:00:00:00:AA", "value": 3}]}"#
            ),
            source: "t.json")
        #expect(topology.maps[0].type == .hash)
        #expect(topology.maps[0].keySize == 6)
        #expect(
            topology.maps[0].dataEntries == [
                DataMapEntry(key: .bytes([2, 0, 0, 0, 0, 0xAA]), value: .integer(3), path: "$.maps[0].entries[0]")
            ])
        #expect(try MapBytes.integer(3).encoded(size: 4).get() == [3, 0, 0, 0])
        #expect((try? MapBytes.integer(1 << 40).encoded(size: 4).get()) == nil)
        #expect((try? MapBytes.bytes([1, 2]).encoded(size: 4).get()) == nil)
        #expect(MapBytes.hex("0a 0B:0c") == [10, 11, 12])
        #expect(MapBytes.hex("+1") == nil)
        #expect(MapBytes.hex("abc") == nil)
    }

    @Test func badEBPFMembersAreReportedWithTheirPaths() {
        expectProblem(
            programDocument(#"{"type": "ebpf"}"#), at: "$.ports[0].program.object", "missing required field \"object\"")
        expectProblem(
            programDocument(#"{"type": "ebpf", "object": "p.o", "budget": 3}"#), at: "$.ports[0].program.budget",
            "unknown field")
        expectProblem(
            document(
                maps: #"{"name": "a", "type": "array", "max_entries": 1, "entries": [{"key": 0, "value": "xyz"}]}"#),
            at: "$.maps[0].entries[0].value", "is not hex bytes")
        expectProblem(
            document(maps: #"{"name": "a", "type": "devmap", "max_entries": 1, "key_size": 4}"#),
            at: "$.maps[0].key_size", "a devmap has 4-byte keys and values")
    }
}
