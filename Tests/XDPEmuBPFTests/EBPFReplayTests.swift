import Foundation
import Testing
import XDPEmuCore
import XDPEmuRuntime

/// C programs compiled with clang, replayed through topologies: frames out of each port, final map contents and
/// the event log are compared with what the programs must do.
@Suite(.enabled(if: Clang.available, Clang.reason))
struct EBPFReplayTests {
    @Test func redirectByHashLookupOfTheSourceMAC() throws {
        let object = try Clang.bpf("redirect_mac")
        let topology = """
            {"name": "ebpf-redirect",
             "ports": [{"name": "p1", "program": {"type": "ebpf", "object": "redirect_mac.o"}}, {"name": "p2"}, {"name": "p3"}],
             "maps": [
               {"name": "tx_port", "type": "devmap", "max_entries": 8, "entries": {"0": "p2", "1": "p3"}},
               {"name": "mac_to_port", "type": "hash", "max_entries": 64, "key_size": 6,
                "entries": [{"key": "02:00:00:00:00:aa", "value": 0}, {"key": "02 00 00 00 00 bb", "value": 1}]}]}
            """
        let frames = [0xAA, 0xBB, 0xCC, 0xAA, 0xAA].map { ethernetFrame(dst: mac(0xFF), src: mac($0), type: 0x0800) }
        let run = try replayEBPF(
            topology: topology, objects: ["redirect_mac.o": object], inputs: ["p1": frames])
        #expect(run.frames("p2", "egress") == [frames[0], frames[3], frames[4]])
        #expect(run.frames("p3", "egress") == [frames[1]])
        #expect(run.frames("p1", "pass") == [frames[2]])
        #expect(run.value("redirect_counts_per_port", 0) == 3)
        #expect(run.value("redirect_counts_per_port", 1) == 1)
        #expect(run.value(".bss", 0) == 1)
        let total = run.entries("total").first?["values"] as? [NSNumber]
        #expect(total == [5])
        #expect(run.events("xdp_redirect_map").count == 4)
        #expect(run.reports.isEmpty)
    }

    /// A broadcast redirect: under the modern profile each frame reaches every other port; under 4.18 the
    /// helper returns XDP_ABORTED, and a note says once which profile takes the flags.
    @Test func broadcastRedirectNeedsTheModernProfile() throws {
        let object = try Clang.bpf("broadcast")
        func topology(_ semantics: String) -> String {
            """
            {"name": "bc", "semantics": "\(semantics)",
             "ports": [{"name": "p1", "program": {"type": "ebpf", "object": "bc.o"}}, {"name": "p2"}, {"name": "p3"}],
             "maps": [{"name": "every_port_of_the_lab", "type": "devmap", "max_entries": 8,
                       "entries": {"1": "p1", "2": "p2", "3": "p3"}}]}
            """
        }
        let frames = [0xAA, 0xBB].map { ethernetFrame(dst: mac(0xFF), src: mac($0), type: 0x0800) }
        let modern = try replayEBPF(topology: topology("modern"), objects: ["bc.o": object], inputs: ["p1": frames])
        #expect(modern.frames("p2", "egress") == frames)
        #expect(modern.frames("p3", "egress") == frames)
        #expect(modern.frames("p1", "egress").isEmpty)
        #expect(modern.reports.isEmpty)
        let old = try replayEBPF(topology: topology("4.18"), objects: ["bc.o": object], inputs: ["p1": frames])
        #expect(old.frames("p2", "egress").isEmpty && old.frames("p3", "egress").isEmpty)
        #expect(old.reports.count == 1)
        #expect(old.reports.first?.contains("flags 0x18 returns XDP_ABORTED under \"semantics\": \"4.18\"") == true)
    }

    /// Tail calls: a slot the topology fills runs that program; an empty slot lets the caller go on; a program
    /// calling itself stops after the 33 tail calls a frame may make. The topology's slot errors name both places.
    @Test func tailCallsThroughAProgArray() throws {
        let object = try Clang.bpf("tail_call")
        func topology(_ slots: String) -> String {
            """
            {"name": "tail", "ports": [{"name": "p1", "program": {"type": "ebpf", "object": "tail.o", "function": "xdp_entry"}}],
             "maps": [{"name": "jump_table", "type": "prog_array", "max_entries": 4, "entries": [\(slots)]}]}
            """
        }
        let frames = [0x0800, 0x86DD, 0x88B5].map { ethernetFrame(dst: mac(0xFF), src: mac(1), type: UInt16($0)) }
        let run = try replayEBPF(
            topology: topology(#"{"key": 0, "program": "xdp_ipv4"}, {"key": 2, "program": "xdp_loop"}"#),
            objects: ["tail.o": object], inputs: ["p1": frames])
        #expect(run.value("hits", 0) == 3)
        #expect(run.value("hits", 1) == 1)
        #expect(run.value("hits", 2) == 33)
        #expect(run.frames("p1", "pass") == [frames[1]])
        #expect(run.frames("p1", "egress") == [frames[2]])
        #expect(run.reports.isEmpty)
        let slots = run.entries("jump_table").map { "\($0["key"] ?? "")=\($0["program"] ?? "")" }
        #expect(slots == ["0=xdp_ipv4", "2=xdp_loop"])
        for (slots, message) in [
            (#"{"key": 0, "program": "xdp_nothere"}"#, "the object has no function xdp_nothere"),
            (#"{"key": 4, "program": "xdp_ipv4"}"#, "key 4 is out of range: max_entries is 4"),
        ] {
            #expect(throws: (any Error).self) {
                try replayEBPF(topology: topology(slots), objects: ["tail.o": object], inputs: ["p1": frames])
            }
            do {
                _ = try replayEBPF(topology: topology(slots), objects: ["tail.o": object], inputs: ["p1": frames])
            } catch {
                #expect("\(error)".contains(message) && "\(error)".contains("$.maps[0].entries[0]"), "\(error)")
            }
        }
    }

    /// Replay on two CPUs: each port's program runs on its port's CPU (get_smp_processor_id) and counts in that
    /// CPU's value of a per-CPU map.
    @Test func programsRunOnTheirPortsCPUs() throws {
        let object = try Clang.bpf("per_cpu")
        let topology = """
            {"name": "cpus", "napi": {"cpus": 2},
             "ports": [{"name": "p1", "program": {"type": "ebpf", "object": "pc.o"}},
                       {"name": "p2", "program": {"type": "ebpf", "object": "pc.o"}}]}
            """
        let frame = ethernetFrame(dst: mac(0xFF), src: mac(1), type: 0x0800)
        let run = try replayEBPF(
            topology: topology, objects: ["pc.o": object],
            inputs: ["p1": Array(repeating: frame, count: 3), "p2": Array(repeating: frame, count: 5)])
        let values = run.entries("per_cpu_frames").first?["values"] as? [NSNumber]
        #expect(values == [3, 5])
        #expect(run.value("shared_counts", 0) == 8)
        #expect(run.value("shared_counts", 1) == 0)  // p1 (ifindex 1) on CPU 0
        #expect(run.value("shared_counts", 2) == 1)  // p2 (ifindex 2) on CPU 1
    }

    /// A section named as before libbpf 1.0 (`xdp_...`) holds an XDP program, found without `function`; a map
    /// name longer than the kernel's 15 bytes is matched whole.
    @Test func legacySectionNamesAndLongMapNames() throws {
        let object = try Clang.bpf("legacy_section")
        let topology = """
            {"name": "legacy", "ports": [{"name": "p1", "program": {"type": "ebpf", "object": "legacy.o"}}],
             "maps": [{"name": "frames_seen_by_the_legacy_program", "type": "array", "max_entries": 1,
                       "entries": [{"key": 0, "value": 10}]}]}
            """
        let frames = [0xAA, 0xBB, 0xCC].map { ethernetFrame(dst: mac(0xFF), src: mac($0), type: 0x0800) }
        let run = try replayEBPF(topology: topology, objects: ["legacy.o": object], inputs: ["p1": frames])
        #expect(run.frames("p1", "pass").isEmpty)
        #expect(run.value("frames_seen_by_the_legacy_program", 0) == 13)
    }

    /// Every ALU, jump, byte-swap, sign-extension, atomic and call instruction clang emits for `-mcpu=v4`,
    /// against the same C compiled for the host.
    @Test func arithmeticMatchesTheNativeBuild() throws {
        let object = try Clang.bpf("isa", cpu: "v4")
        let native = try Clang.native("isa_native")
        let pairs: [(UInt64, UInt64)] = [
            (5, 3), (0xFFFF_FFFF_FFFF_FFFB, 3), (0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF),
            (0x1234_5678_9ABC_DEF0, 0),
            (0x8000_0000, 0xFFFF_FFFF), (77, 77), (0xDEAD_BEEF, 0x4_0000_0021), (3, 0x7F), (0xFF80, 0xFFFF_FFF3),
        ]
        var frames: [[UInt8]] = []
        for (slot, (a, b)) in pairs.enumerated() {
            let payload =
                withUnsafeBytes(of: a.littleEndian, Array.init) + withUnsafeBytes(of: b.littleEndian, Array.init) + [
                    UInt8(slot)
                ]
            frames.append(ethernetFrame(dst: mac(1), src: mac(2), type: 0x88B5, payload: payload))
        }
        let topology = """
            {"name": "isa", "ports": [{"name": "p1", "program": {"type": "ebpf", "object": "isa.o", "function": "xdp_isa"}}]}
            """
        let run = try replayEBPF(topology: topology, objects: ["isa.o": object], inputs: ["p1": frames])
        #expect(run.frames("p1", "pass").count == pairs.count)
        let expected = try Clang.run(native, pairs.flatMap { [String($0.0), String($0.1)] })
            .split(separator: "\n").map { $0.split(separator: " ").map { UInt64($0)! } }
        let entries = run.entries("results")
        for slot in pairs.indices {
            guard let text = entries.first(where: { ($0["key"] as? NSNumber)?.intValue == slot })?["value"] as? String
            else {
                Issue.record("no result for slot \(slot)")
                continue
            }
            let bytes = text.split(separator: ":").map { UInt8($0, radix: 16)! }
            let values = stride(from: 0, to: bytes.count, by: 8).map { at in
                bytes[at..<at + 8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            }
            for (index, (got, want)) in zip(values, expected[slot]).enumerated() where got != want {
                Issue.record("a=\(pairs[slot].0) b=\(pairs[slot].1): result \(index) is \(got), native \(want)")
            }
        }
    }

    @Test func brokenProgramsAbortTheirFramesAndReportOncePerInstruction() throws {
        let object = try Clang.bpf("faults")
        let topology = """
            {"name": "faults", "ports": [
              {"name": "oob", "program": {"type": "ebpf", "object": "faults.o", "function": "xdp_oob"}},
              {"name": "loop", "program": {"type": "ebpf", "object": "faults.o", "section": "xdp/loop", "instruction_budget": 5000}},
              {"name": "helper", "program": {"type": "ebpf", "object": "faults.o", "function": "xdp_unknown_helper"}},
              {"name": "deep", "program": {"type": "ebpf", "object": "faults.o", "function": "xdp_deep"}},
              {"name": "rodata", "program": {"type": "ebpf", "object": "faults.o", "function": "xdp_rodata_write"}}]}
            """
        let short = ethernetFrame(dst: mac(1), src: mac(2), type: 0x0800)
        var long = ethernetFrame(dst: mac(1), src: mac(2), type: 0x0800, payload: [UInt8](repeating: 0, count: 100))
        long[100] = 0xFF
        let depth = { (n: UInt8) in ethernetFrame(dst: mac(1), src: mac(2), type: 0x0800, payload: [n]) }
        let run = try replayEBPF(
            topology: topology, objects: ["faults.o": object],
            inputs: [
                "oob": [short, long, short], "loop": [short, short], "helper": [short, short],
                "deep": [depth(3), depth(6), depth(7), depth(20)], "rodata": [short],
            ])
        func aborted(_ port: String) -> UInt64 {
            run.result.statistics.ports.first { $0.name == port }?.device.drops[.aborted] ?? 0
        }
        #expect(aborted("oob") == 2)
        #expect(run.frames("oob", "pass").isEmpty)
        #expect(aborted("loop") == 2)
        #expect(aborted("helper") == 2)  // the port is ifindex 3: only ifindex 2 would pass before the call
        #expect(aborted("deep") == 2)
        #expect(run.frames("deep", "pass") == [depth(3), depth(6)])
        #expect(aborted("rodata") == 1)
        #expect(run.events("xdp_exception").count == 9)
        let faults = run.events("ebpf_fault")
        #expect(faults.count == 5)
        #expect(run.reports.count == 5)
        #expect(
            run.reports.contains {
                $0.contains("xdp_oob (section xdp/oob, instruction") && $0.contains("load of 1 bytes")
            })
        #expect(run.reports.contains { $0.contains("more than 5000 instructions") })
        #expect(run.reports.contains { $0.contains("helper 1000 is not supported") })
        #expect(run.reports.contains { $0.contains("deeper than 8 frames") })
        #expect(run.reports.contains { $0.contains("store of 4 bytes") && $0.contains(".rodata, read only") })
    }

    @Test func helpersShareTheCoreImplementation() throws {
        let object = try Clang.bpf("helpers")
        let topology = """
            {"name": "helpers", "ports": [
              {"name": "vlan", "program": {"type": "ebpf", "object": "helpers.o", "section": "xdp/vlan"}},
              {"name": "trim", "program": {"type": "ebpf", "object": "helpers.o", "function": "xdp_trim"}},
              {"name": "out"},
              {"name": "misc", "program": {"type": "ebpf", "object": "helpers.o", "function": "xdp_misc"}},
              {"name": "maps", "program": {"type": "ebpf", "object": "helpers.o", "function": "xdp_maps"}}],
             "maps": [{"name": "routes", "type": "lpm_trie", "max_entries": 16,
                       "entries": [{"key": "08000000 0a000000", "value": 8}, {"key": "18000000 0a010200", "value": 24}]}]}
            """
        let tagged = mac(1) + mac(2) + [0x81, 0x00, 0x00, 0x05, 0x08, 0x00] + [UInt8](repeating: 0x42, count: 50)
        let untagged = ethernetFrame(dst: mac(1), src: mac(2), type: 0x0800)
        let big = ethernetFrame(dst: mac(1), src: mac(2), type: 0x0800, payload: [UInt8](repeating: 7, count: 186))
        let run = try replayEBPF(
            topology: topology, objects: ["helpers.o": object],
            inputs: ["vlan": [tagged, untagged], "trim": [big], "misc": [untagged], "maps": [untagged, untagged]])
        // VLAN pop: 4 bytes shorter, MACs kept, sent out of ifindex 3 ("out") by bpf_redirect.
        #expect(run.frames("out", "egress") == [mac(1) + mac(2) + [0x08, 0x00] + [UInt8](repeating: 0x42, count: 50)])
        #expect(run.frames("vlan", "pass") == [untagged])
        // Trim to 64 bytes, XDP_TX.
        #expect(run.frames("trim", "egress") == [Array(big.prefix(64))])
        #expect(run.value("results", 0) == 200)
        #expect(run.value("results", 1) == 200)
        #expect(run.value("results", 2) == -22)
        // Metadata, load/store bytes, csum_diff, clock, CPU.
        #expect(run.value("results", 3) == 0)
        #expect(run.value("results", 4) == 0x5566_7788)
        #expect(run.value("results", 5) == -13)
        #expect(run.value("results", 6) == 0)
        #expect(run.value("results", 7) == 0)
        #expect(run.value("results", 8) == 0x0000_0002)  // bytes 6...9: the source MAC 02:00:00:00
        #expect(run.value("results", 9) == 0)
        #expect(run.frames("misc", "pass").first.map { Array($0.prefix(2)) } == [0xAB, 0xCD])
        #expect(run.value("results", 10) == -22)
        #expect(
            run.value("results", 11) == Int64(Self.csumDiff([0x0102_0304, 0x0506_0708], [0x1112_1314, 0x1516_1718])))
        #expect(run.value("results", 12) == -22)
        #expect(run.value("results", 13) == 1_000_000_000)
        #expect(run.value("results", 14) == 0)
        #expect(run.value("results", 15) == 1)
        #expect(run.events("trace_printk").first?["text"] as? String == "misc len 60 ifindex 4")
        // Hash flags and errnos, LRU eviction, LPM, per-CPU.
        #expect((16...25).map { run.value("results", $0) } == [0, -17, -2, 0, -7, -22, -2, 0, 0, 1])
        #expect(run.value("results", 26) == 24)
        #expect(run.value("results", 27) == 0xFFFF_FFFF)  // no route: the program's (u32)-1
        #expect(run.entries("per_cpu").first?["values"] as? [NSNumber] == [2])
        #expect(run.frames("maps", "egress").isEmpty)
    }

    /// `const volatile` configuration in .rodata, set from the topology as a skeleton sets it before loading.
    @Test func rodataFromTheTopology() throws {
        let object = try Clang.bpf("helpers")
        // vlan_target (offset 0) = 2, then the printk format as compiled.
        let rodata =
            "02000000" + Array("misc len %d ifindex %u".utf8).map { String(format: "%02x", $0) }.joined() + "00"
        let topology = """
            {"name": "rodata", "ports": [
              {"name": "vlan", "program": {"type": "ebpf", "object": "helpers.o", "section": "xdp/vlan"}}, {"name": "out"}],
             "maps": [{"name": ".rodata", "type": "array", "max_entries": 1, "entries": [{"key": 0, "value": "\(rodata)"}]}]}
            """
        let tagged = mac(1) + mac(2) + [0x81, 0x00, 0x00, 0x05, 0x08, 0x00] + [UInt8](repeating: 0x42, count: 50)
        let run = try replayEBPF(topology: topology, objects: ["helpers.o": object], inputs: ["vlan": [tagged]])
        #expect(run.frames("out", "egress").count == 1)  // ifindex 2 instead of the compiled 3
    }

    @Test func fibLookupRoutesToTheTopologysHosts() throws {
        let object = try Clang.bpf("helpers")
        let topology = """
            {"name": "fib", "ports": [
              {"name": "in", "program": {"type": "ebpf", "object": "helpers.o", "function": "xdp_fib"}},
              {"name": "h2", "host": {"namespace": "n2", "mac": "02:00:00:00:09:02", "ipv4": ["10.9.0.2/24"]}},
              {"name": "h3", "host": {"namespace": "n3", "ipv4": ["10.9.1.3/24"]}}]}
            """
        func packet(_ last: UInt8, third: UInt8) -> [UInt8] {
            var frame = ethernetFrame(dst: mac(1), src: mac(9), type: 0x0800, payload: [UInt8](repeating: 0, count: 20))
            frame[14] = 0x45
            frame[30...33] = [10, 9, third, last]
            return frame
        }
        let toHost = packet(2, third: 0)  // slot 30: a host with a MAC
        let run = try replayEBPF(
            topology: topology, objects: ["helpers.o": object],
            inputs: ["in": [toHost, packet(5, third: 0), packet(3, third: 1), packet(4, third: 7)]])
        var expected = toHost
        expected[0..<6] = [2, 0, 0, 0, 9, 2]
        expected[6..<12] = [2, 0, 0, 0, 0, 2]  // h2's port MAC
        #expect(run.frames("h2", "egress") == [expected])
        #expect(run.value("results", 30) == 2)  // SUCCESS, ifindex 2
        #expect(run.value("results", 29) == 7002)  // 10.9.0.5: the subnet of h2, no neighbour
        #expect(run.value("results", 31) == 7003)  // 10.9.1.3: h3 has no MAC in the topology
        #expect(run.value("results", 28) == 4001)  // 10.9.7.4: not forwarded, ifindex as given
        #expect(run.frames("in", "pass").count == 3)
    }

    /// One's-complement sum of the negated `from` words and the `to` words, as x86-64's csum_partial.
    static func csumDiff(_ from: [UInt32], _ to: [UInt32]) -> UInt32 {
        var sum: UInt64 = 0
        for word in from { sum += UInt64(~word) }
        for word in to { sum += UInt64(word) }
        while sum >> 32 != 0 { sum = (sum & 0xFFFF_FFFF) + (sum >> 32) }
        return UInt32(sum)
    }
}
