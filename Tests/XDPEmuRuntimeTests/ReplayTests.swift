import Foundation
import Testing
import XDPEmuCore
import XDPEmuPcap
import XDPEmuRuntime
import XDPEmuTopology

/// Splits a sample trace by source MAC into one trace per port (the host behind each port sends its frames).
func splitTrace(_ path: String, bySource hosts: [String: String], into directory: String) throws -> [(String, String)] {
    var perPort = [String: [(UInt64, [UInt8])]]()
    for frame in try readCapture(path) {
        let port = try #require(hosts[frame.source], "no port for source \(frame.source)")
        perPort[port, default: []].append((frame.time, frame.bytes))
    }
    return try perPort.keys.sorted().map { port in
        let file = "\(directory)/\(port).in.pcap"
        try writeTrace(file, perPort[port]!.map { (time: $0.0, bytes: $0.1) })
        return (port, file)
    }
}

@Suite struct ReplayTests {
    struct Sample: CustomTestStringConvertible, Sendable {
        var topology: String
        var trace: String
        var hosts: [String: String]
        var testDescription: String { topology }
    }

    static let samples = [
        Sample(
            topology: "two-hosts", trace: "two-hosts-icmp",
            hosts: ["02:00:00:00:01:01": "xe0", "02:00:00:00:01:02": "xe1"]),
        Sample(topology: "star4", trace: "star4-mixed", hosts: ["02:00:00:00:02:01": "p1"]),
        Sample(topology: "acl-firewall", trace: "acl-mixed", hosts: ["02:00:00:00:04:01": "fw0"]),
        Sample(
            topology: "l2-switch", trace: "l2-switch",
            hosts: ["02:00:00:00:03:01": "sw1", "02:00:00:00:03:02": "sw2", "02:00:00:00:03:03": "sw3"]),
        Sample(topology: "reflector", trace: "reflector-udp", hosts: ["02:00:00:00:05:01": "refl0"]),
        // The modern twins (reflector has none: it only uses XDP_TX, which the profiles do alike).
        Sample(
            topology: "two-hosts-modern", trace: "two-hosts-icmp",
            hosts: ["02:00:00:00:01:01": "xe0", "02:00:00:00:01:02": "xe1"]),
        Sample(topology: "star4-modern", trace: "star4-mixed", hosts: ["02:00:00:00:02:01": "p1"]),
        Sample(topology: "acl-firewall-modern", trace: "acl-mixed", hosts: ["02:00:00:00:04:01": "fw0"]),
        Sample(
            topology: "l2-switch-modern", trace: "l2-switch",
            hosts: ["02:00:00:00:03:01": "sw1", "02:00:00:00:03:02": "sw2", "02:00:00:00:03:03": "sw3"]),
    ]

    /// Every sample replays to the recorded golden summary (exact egress port, order, time and length of each
    /// frame). Re-record on purpose with XDPEMU_RECORD_GOLDEN=1.
    @Test(arguments: samples)
    func goldenOutputs(sample: Sample) throws {
        let scratch = makeTemporaryDirectory()
        defer { removeDirectory(scratch) }
        let inputs = try splitTrace(
            "\(repositoryRoot)/pcaps/\(sample.trace).pcap", bySource: sample.hosts,
            into: scratch)
        let (result, out) = try replay(try sampleTopology(sample.topology), inputs: inputs)
        defer { removeDirectory(out) }
        #expect(result.inputErrors.isEmpty)
        expectConservation(result.statistics)
        let summary = try summarize(directory: out)
        let golden = "\(repositoryRoot)/Tests/XDPEmuRuntimeTests/Golden/\(sample.topology).txt"
        if ProcessInfo.processInfo.environment["XDPEMU_RECORD_GOLDEN"] == "1" {
            try summary.write(toFile: golden, atomically: true, encoding: .utf8)
        }
        #expect(summary == (try String(contentsOfFile: golden, encoding: .utf8)))
    }

    @Test func twoHostsForwardsEveryFrameToThePeerInOrder() throws {
        let scratch = makeTemporaryDirectory()
        defer { removeDirectory(scratch) }
        let sample = Self.samples[0]
        let inputs = try splitTrace(
            "\(repositoryRoot)/pcaps/two-hosts-icmp.pcap", bySource: sample.hosts,
            into: scratch)
        let (result, out) = try replay(try sampleTopology("two-hosts"), inputs: inputs)
        defer { removeDirectory(out) }
        for (from, to) in [("xe0", "xe1"), ("xe1", "xe0")] {
            let ingress = try readCapture("\(out)/\(from).ingress.pcap")
            let egress = try readCapture("\(out)/\(to).egress.pcap")
            #expect(ingress.map(\.bytes) == egress.map(\.bytes))
            #expect(zip(ingress, egress).allSatisfy { $0.time == $1.time })  // no delay, no cost configured
            #expect(!ingress.isEmpty)
        }
        #expect(try readCapture("\(out)/drops.pcap").isEmpty)
        let stats = result.statistics
        #expect(stats.maps[0].entries.map(\.key) == [0, 1])
        #expect(stats.ports.map(\.device.redirected) == stats.ports.map(\.ingress))
    }

    @Test func replayIsByteIdenticalRunToRun() throws {
        let topology = try sampleTopology("l2-switch")
        let scratch = makeTemporaryDirectory()
        defer { removeDirectory(scratch) }
        let inputs = try splitTrace(
            "\(repositoryRoot)/pcaps/l2-switch.pcap", bySource: Self.samples[3].hosts,
            into: scratch)
        let (_, first) = try replay(topology, inputs: inputs, events: true)
        let (_, second) = try replay(topology, inputs: inputs, events: true)
        defer {
            removeDirectory(first)
            removeDirectory(second)
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: first).sorted()
        #expect(files == (try FileManager.default.contentsOfDirectory(atPath: second).sorted()))
        #expect(files.contains("events.jsonl") && files.contains("stats.json"))
        for file in files {
            let a = try Data(contentsOf: URL(fileURLWithPath: "\(first)/\(file)"))
            let b = try Data(contentsOf: URL(fileURLWithPath: "\(second)/\(file)"))
            #expect(a == b, "\(file) differs between runs")
        }
    }

    static let busyTopology = """
        {"name": "busy", "napi": {"budget": 64, "ring_size": 4096},
         "ports": [{"name": "in0", "program": {"type": "redirect_map", "map": "m", \
        "key": {"kind": "hash", "modulo": 4}}},
                   {"name": "o0"}, {"name": "o1"}, {"name": "o2"}, {"name": "o3"}],
         "maps": [{"name": "m", "type": "devmap", "max_entries": 4, \
        "entries": {"0": "o0", "1": "o1", "2": "o2", "3": "o3"}}]}
        """

    @Test func topspeedFillsPollsAndBulks() throws {
        let topology = try Topology.parse(data: Self.busyTopology, source: "busy.json")
        let scratch = makeTemporaryDirectory()
        defer { removeDirectory(scratch) }
        // 1000 frames of one flow: all hash to the same key.
        let frame = udpFrame(from: "02:00:00:00:00:01", to: "02:00:00:00:00:02")
        try writeTrace("\(scratch)/t.pcap", (0..<1000).map { (time: UInt64(1_000_000 + $0 * 1000), bytes: frame) })
        let (result, out) = try replay(
            topology, inputs: [("in0", "\(scratch)/t.pcap")], timing: .topspeed,
            events: true)
        defer { removeDirectory(out) }
        let stats = result.statistics
        expectConservation(stats)
        #expect(stats.polls == 16)  // 15 full polls of 64 and one of 40
        let entries = stats.maps[0].entries
        #expect(entries.count == 1 && entries[0].statistics.sent == 1000)
        // Per poll: four full queues of 16 (the fourth sent by the flush); the last poll 16, 16, 8.
        #expect(entries[0].statistics.flushes == 15 * 4 + 3)
        let xmits = try String(contentsOfFile: "\(out)/events.jsonl", encoding: .utf8)
            .split(separator: "\n").filter { $0.contains("\"xdp_devmap_xmit\"") }
        #expect(xmits.count == 63)
        #expect(xmits.last!.contains("\"sent\":8"))
    }

    /// The modern profile queues per device: its flushes and bulk sizes are counted there, and the summary's
    /// totals are the same as 4.18's per-entry ones for the same traffic.
    @Test func modernBulksAreCountedPerDevice() throws {
        var topology = try Topology.parse(data: Self.busyTopology, source: "busy.json")
        topology.semantics = .modern
        let scratch = makeTemporaryDirectory()
        defer { removeDirectory(scratch) }
        let frame = udpFrame(from: "02:00:00:00:00:01", to: "02:00:00:00:00:02")
        try writeTrace("\(scratch)/t.pcap", (0..<1000).map { (time: UInt64(1_000_000 + $0 * 1000), bytes: frame) })
        let (result, out) = try replay(topology, inputs: [("in0", "\(scratch)/t.pcap")], timing: .topspeed)
        defer { removeDirectory(out) }
        let stats = result.statistics
        let busy = try #require(stats.ports.first { $0.device.txPackets > 0 })
        #expect(busy.device.bulkTransmits == 15 * 4 + 3 && busy.device.bulkFrames == 1000)
        #expect(stats.flushes == 15 * 4 + 3)
        #expect(abs(stats.averageBulk - 1000.0 / 63) < 1e-9)
    }

    @Test func recordedTimingWithPollDelayBatchesCloseFrames() throws {
        var topology = try Topology.parse(data: Self.busyTopology, source: "busy.json")
        topology.napi.pollDelayNanos = 10_000
        let scratch = makeTemporaryDirectory()
        defer { removeDirectory(scratch) }
        let frame = udpFrame(from: "02:00:00:00:00:01", to: "02:00:00:00:00:02")
        // Three bursts of 20 frames 100 ns apart, 1 ms apart from each other.
        let times = (0..<3).flatMap { burst in (0..<20).map { UInt64(burst * 1_000_000 + $0 * 100) } }
        try writeTrace("\(scratch)/t.pcap", times.map { (time: 5_000_000 + $0, bytes: frame) })
        let (result, out) = try replay(topology, inputs: [("in0", "\(scratch)/t.pcap")])
        defer { removeDirectory(out) }
        // Each burst arrives within the 10 µs poll delay: one poll per burst, bulks 16 + 4.
        #expect(result.statistics.polls == 3)
        #expect(result.statistics.maps[0].entries[0].statistics.flushes == 6)
        let busy = try #require(result.statistics.ports.first { $0.name != "in0" && $0.device.txPackets > 0 })
        let egress = try readCapture("\(out)/\(busy.name).egress.pcap")
        // The first 16 leave when the 17th is queued, the rest at the flush, both at the poll time.
        #expect(egress.prefix(20).allSatisfy { $0.time == 5_010_000 })
    }

    @Test func fullRingDropsArrivals() throws {
        var topology = try Topology.parse(data: Self.busyTopology, source: "busy.json")
        topology.napi.ringSize = 4
        let scratch = makeTemporaryDirectory()
        defer { removeDirectory(scratch) }
        let frame = udpFrame(from: "02:00:00:00:00:01", to: "02:00:00:00:00:02")
        try writeTrace("\(scratch)/t.pcap", (0..<10).map { _ in (time: 1000, bytes: frame) })
        let (result, out) = try replay(topology, inputs: [("in0", "\(scratch)/t.pcap")], events: true)
        defer { removeDirectory(out) }
        let port = result.statistics.ports[0]
        #expect(port.ingress == 10 && port.device.rxPackets == 4)
        #expect(port.device.drops == [.rxRingFull: 6])
        #expect(try readCapture("\(out)/drops.pcap").count == 6)
        let log = try String(contentsOfFile: "\(out)/events.jsonl", encoding: .utf8)
        #expect(log.split(separator: "\n").filter { $0.contains("\"reason\":\"rx_ring_full\"") }.count == 6)
        #expect(log.contains("\"event\":\"drop\",\"cpu\":0,\"ifindex\":1,\"reason\":\"rx_ring_full\",\"frame\":5}"))
        expectConservation(result.statistics)
    }

    @Test func mapEventsChangeTheRedirectTableInVirtualTime() throws {
        let topology = try sampleTopology("two-hosts")
        let scratch = makeTemporaryDirectory()
        defer { removeDirectory(scratch) }
        let frame = udpFrame(from: "02:00:00:00:01:01", to: "02:00:00:00:01:02")
        // Frames every 10 µs from t0; key 0 is deleted at +25 µs and restored at +55 µs.
        try writeTrace("\(scratch)/t.pcap", (0..<8).map { (time: UInt64(1_000_000_000 + $0 * 10_000), bytes: frame) })
        let schedule = try MapEventSchedule.parse(
            data: Array(
                """
                {"events": [{"at_ns": 25000, "op": "delete", "map": "fwd", "key": 0},
                            {"at": 0.000055, "op": "update", "map": "fwd", "key": 0, "port": "xe1"}]}
                """.utf8), source: "ev.json", topology: topology)
        let (result, out) = try replay(
            topology, inputs: [("xe0", "\(scratch)/t.pcap")], events: true,
            mapEvents: schedule)
        defer { removeDirectory(out) }
        let egress = try readCapture("\(out)/xe1.egress.pcap").map(\.time)
        #expect(egress == [0, 10, 20, 60, 70].map { 1_000_000_000 + UInt64($0) * 1000 })
        #expect(result.statistics.ports[0].device.drops == [.redirectInvalid: 3])
        let log = try String(contentsOfFile: "\(out)/events.jsonl", encoding: .utf8)
        #expect(
            log.contains(
                "{\"time\":1000025000,\"event\":\"map_delete\",\"map\":\"fwd\","
                    + "\"map_id\":1,\"key\":0,\"result\":\"ok\"}"))
        #expect(log.contains("\"event\":\"map_update\""))
        expectConservation(result.statistics)
    }

    @Test func aMapEventBeyondTheClockRunsAfterEveryFrameNotBeforeTheFirst() throws {
        let topology = try sampleTopology("two-hosts")
        let scratch = makeTemporaryDirectory()
        defer { removeDirectory(scratch) }
        let frame = udpFrame(from: "02:00:00:00:01:01", to: "02:00:00:00:01:02")
        try writeTrace("\(scratch)/t.pcap", (0..<4).map { (time: UInt64(1_000_000_000 + $0 * 10_000), bytes: frame) })
        // 2^64 - 1 ns after the first frame's timestamp is past the end of the 64-bit clock: it saturates.
        let schedule = try MapEventSchedule.parse(
            data: Array(#"{"events": [{"at_ns": 18446744073709551615, "op": "delete", "map": "fwd", "key": 0}]}"#.utf8),
            source: "ev.json", topology: topology)
        let (result, out) = try replay(
            topology, inputs: [("xe0", "\(scratch)/t.pcap")], events: true, mapEvents: schedule)
        defer { removeDirectory(out) }
        #expect(try readCapture("\(out)/xe1.egress.pcap").count == 4)
        #expect(result.statistics.ports[0].device.drops.isEmpty)
        let log = try String(contentsOfFile: "\(out)/events.jsonl", encoding: .utf8)
        #expect(
            log.hasSuffix(
                "{\"time\":18446744073709551615,\"event\":\"map_delete\",\"map\":\"fwd\",\"map_id\":1,\"key\":0,\"result\":\"ok\"}\n"
            ))
    }

    @Test func secondsBeyondTheClockAreTooLarge() throws {
        let topology = try sampleTopology("two-hosts")
        #expect {
            try MapEventSchedule.parse(
                data: Array(#"{"events": [{"at": 1e300, "op": "delete", "map": "fwd", "key": 0}]}"#.utf8),
                source: "ev.json", topology: topology)
        } throws: { error in
            "\(error)" == "ev.json: $.events[0].at: too large: at most 18000000000 seconds, got 1e300"
        }
    }

    @Test func truncatedTraceKeepsWhatWasReadAndNamesTheOffset() throws {
        let scratch = makeTemporaryDirectory()
        defer { removeDirectory(scratch) }
        let frame = udpFrame(from: "02:00:00:00:01:01", to: "02:00:00:00:01:02")  // 60 bytes
        try writeTrace("\(scratch)/t.pcap", (0..<5).map { (time: UInt64(1000 + $0), bytes: frame) })
        var bytes = try Data(contentsOf: URL(fileURLWithPath: "\(scratch)/t.pcap"))
        bytes = bytes.prefix(24 + 3 * (16 + 60) + 20)  // three whole records, then part of the fourth
        try bytes.write(to: URL(fileURLWithPath: "\(scratch)/cut.pcap"))
        let (result, out) = try replay(try sampleTopology("two-hosts"), inputs: [("xe0", "\(scratch)/cut.pcap")])
        defer { removeDirectory(out) }
        #expect(result.inputErrors.count == 1)
        let message = try #require(result.inputErrors.first)
        #expect(message.contains("cut.pcap") && message.contains("record 4") && message.contains("offset 252"))
        #expect(try readCapture("\(out)/xe1.egress.pcap").count == 3)
        #expect(result.statistics.errors == result.inputErrors)
    }

    @Test func foreignLinkTypeIsRefusedBeforeAnyOutputIsCreated() throws {
        let scratch = makeTemporaryDirectory()
        defer { removeDirectory(scratch) }
        var header = [UInt8]()
        for v: UInt32 in [0xa1b2_c3d4] { withUnsafeBytes(of: v.littleEndian) { header += $0 } }
        header += [2, 0, 4, 0] + [UInt8](repeating: 0, count: 8)
        // IEEE802_11_RADIOTAP: no Ethernet header can be made for it.
        for v: UInt32 in [65535, 127] { withUnsafeBytes(of: v.littleEndian) { header += $0 } }
        try Data(header).write(to: URL(fileURLWithPath: "\(scratch)/radio.pcap"))
        let out = "\(scratch)/out"
        var options = ReplayOptions(
            topology: try sampleTopology("two-hosts"), inputs: [.init(port: "xe0", path: "\(scratch)/radio.pcap")],
            outputDirectory: out)
        options.statsPath = "\(scratch)/stats.json"
        #expect {
            try Replay.run(options)
        } throws: { error in
            (error as? RuntimeError)?.exitCode == 2 && "\(error)".contains("radio.pcap")
                && "\(error)".contains("(127)")
        }
        #expect(!FileManager.default.fileExists(atPath: out))
        #expect(!FileManager.default.fileExists(atPath: "\(scratch)/stats.json"))
    }

    @Test func unknownInputPortIsBadInput() throws {
        #expect(throws: RuntimeError.self) {
            try replay(try sampleTopology("two-hosts"), inputs: [("nope", "/dev/null")])
        }
    }

    @Test func truncatedCaptureKeepsTheOriginalLength() throws {
        let scratch = makeTemporaryDirectory()
        defer { removeDirectory(scratch) }
        // A 1400-byte frame captured with a 96-byte snap length, into a port with MTU 1000: the size check uses
        // the frame's length on the wire, so it is dropped with EMSGSIZE.
        var topology = try sampleTopology("two-hosts")
        topology.ports[1].mtu = 1000
        let frame = udpFrame(from: "02:00:00:00:01:01", to: "02:00:00:00:01:02", payload: 1400 - 42)
        let writer = try PcapWriter(path: "\(scratch)/snap.pcap", snapLength: 96)
        frame.withUnsafeBytes { writer.write(timestampNanos: 5, bytes: $0, originalLength: frame.count) }
        let small = udpFrame(from: "02:00:00:00:01:01", to: "02:00:00:00:01:02", payload: 500)
        small.withUnsafeBytes { writer.write(timestampNanos: 6, bytes: $0, originalLength: small.count) }
        try writer.close()
        let (result, out) = try replay(topology, inputs: [("xe0", "\(scratch)/snap.pcap")])
        defer { removeDirectory(out) }
        #expect(result.statistics.ports[0].device.drops == [.redirectTooBig: 1])
        let egress = try readCapture("\(out)/xe1.egress.pcap")
        #expect(egress.count == 1 && egress[0].bytes.count == 96 && egress[0].originalLength == small.count)
        let drops = try readCapture("\(out)/drops.pcap")
        #expect(drops.count == 1 && drops[0].originalLength == 1400)
    }

    @Test func tcpdumpReadsEveryOutput() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/tcpdump") else {
            print("skipped: /usr/bin/tcpdump is not installed (apt-get install tcpdump)")
            return
        }
        let scratch = makeTemporaryDirectory()
        defer { removeDirectory(scratch) }
        let inputs = try splitTrace(
            "\(repositoryRoot)/pcaps/l2-switch.pcap", bySource: Self.samples[3].hosts,
            into: scratch)
        let (_, out) = try replay(try sampleTopology("l2-switch"), inputs: inputs)
        defer { removeDirectory(out) }
        for file in try FileManager.default.contentsOfDirectory(atPath: out) where file.hasSuffix(".pcap") {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/tcpdump")
            process.arguments = ["-nn", "--nano", "-r", "\(out)/\(file)"]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = Pipe()
            try process.run()
            let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "tcpdump failed on \(file)")
            #expect(text.split(separator: "\n").count == (try readCapture("\(out)/\(file)")).count)
        }
    }
}
