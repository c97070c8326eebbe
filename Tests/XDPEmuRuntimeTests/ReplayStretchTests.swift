import Foundation
import Testing
import XDPEmuTesting
import XDPEmuTopology

@testable import XDPEmuRuntime

/// Replay with recorded timing runs a stretch of polls that leave no frame behind in one step and one call
/// (`ReplayEngine.stepRecordedStretch`, `Worker.pollSeries`). These tests hold it to
/// the step-by-step engine, one arrival, poll or map operation per step: every output file must be
/// byte-identical, statistics included, whatever the gaps between frames, the NAPI settings and what the
/// programs do.
@Suite struct ReplayStretchTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var topology: String
        var trace: String
        /// (port, source MAC of the sample trace's frames it receives): one input each.
        var inputs: [Input]
        var mapEvents: String?
        var testDescription: String { "\(topology), \(inputs.count) input(s)" }

        /// The case's sample topology with these NAPI settings, and its map-event schedule parsed against it.
        func topology(
            pollDelay: UInt64, frameCost: UInt64, ringSize: Int,
            budget: Int
        ) throws -> (Topology, MapEventSchedule?) {
            var loaded = try sampleTopology(topology)
            loaded.napi.pollDelayNanos = pollDelay
            loaded.napi.frameCostNanos = frameCost
            loaded.napi.ringSize = ringSize
            loaded.napi.budget = budget
            let schedule = try mapEvents.map {
                try MapEventSchedule.parse(data: Array($0.utf8), source: "events.json", topology: loaded)
            }
            return (loaded, schedule)
        }
    }

    struct Input: Sendable {
        var port: String
        var source: String
    }

    static let cases = [
        // Redirects into a devmap (bulk queues, the flush per poll); map updates and deletes land inside stretches.
        Case(
            topology: "two-hosts", trace: "two-hosts-icmp", inputs: [Input(port: "xe0", source: "02:00:00:00:01:01")],
            mapEvents: """
                {"events": [{"at_ns": 2500000, "op": "delete", "map": "fwd", "key": 0},
                            {"at_ns": 2500000, "op": "update", "map": "fwd", "key": 0, "port": "xe1"},
                            {"at_ns": 7000000, "op": "delete", "map": "fwd", "key": 0},
                            {"at_ns": 9000300, "op": "update", "map": "fwd", "key": 0, "port": "xe1"}]}
                """),
        // XDP_DROP and XDP_PASS besides redirects.
        Case(topology: "acl-firewall", trace: "acl-mixed", inputs: [Input(port: "fw0", source: "02:00:00:00:04:01")]),
        // XDP_TX.
        Case(
            topology: "reflector", trace: "reflector-udp",
            inputs: [Input(port: "refl0", source: "02:00:00:00:05:01")]),
        // Redirects to four ports by a flow hash.
        Case(topology: "star4", trace: "star4-mixed", inputs: [Input(port: "p1", source: "02:00:00:00:02:01")]),
        // Two inputs, one per host: polls of both ports, in turn and overlapping.
        Case(
            topology: "two-hosts", trace: "two-hosts-icmp",
            inputs: [
                Input(port: "xe0", source: "02:00:00:00:01:01"),
                Input(port: "xe1", source: "02:00:00:00:01:02"),
            ]),
        // Two inputs into the same port.
        Case(
            topology: "acl-firewall", trace: "acl-mixed",
            inputs: [
                Input(port: "fw0", source: "02:00:00:00:04:01"),
                Input(port: "fw0", source: "02:00:00:00:04:01"),
            ]),
    ]

    /// (poll delay, frame cost, ring size, budget)
    static let settings: [(UInt64, UInt64, Int, Int)] = [
        (0, 0, 1024, 64), (2_000, 0, 1024, 64), (0, 700, 1024, 64), (2_000, 700, 8, 64), (0, 0, 8, 64),
        (50_000, 0, 16, 64), (3_000, 0, 1024, 2), (0, 300, 1024, 3),
    ]

    @Test(arguments: cases)
    func stretchesOfPollsMatchStepByStep(testCase: Case) throws {
        let scratch = makeTemporaryDirectory()
        defer { removeDirectory(scratch) }
        let inputs = try writeGeneratedTraces(testCase, into: scratch, prefix: "in", seed: 0x5eed)
        for (delay, cost, ring, budget) in Self.settings {
            let (topology, schedule) = try testCase.topology(
                pollDelay: delay, frameCost: cost, ringSize: ring,
                budget: budget)
            let (stretches, polls) = try replayOutputs(
                topology, inputs: inputs, mapEvents: schedule,
                oneEventPerStep: false)
            let (steps, _) = try replayOutputs(topology, inputs: inputs, mapEvents: schedule, oneEventPerStep: true)
            #expect(stretches.keys.sorted() == steps.keys.sorted())
            let setting = "poll delay \(delay), frame cost \(cost), ring \(ring), budget \(budget)"
            for (name, bytes) in steps {
                #expect(stretches[name] == bytes, "\(testCase.topology), \(setting): \(name) differs")
            }
            // Not vacuous: with a poll delay shorter than most gaps, most frames are polls of their own.
            if delay <= 2_000 { #expect(polls > 200 * UInt64(inputs.count)) }
        }
    }

    /// Every output file of a replay, by name.
    func replayOutputs(
        _ topology: Topology, inputs: [(String, String)], mapEvents: MapEventSchedule?,
        oneEventPerStep: Bool
    ) throws -> (files: [String: Data], polls: UInt64) {
        let out = makeTemporaryDirectory()
        defer { removeDirectory(out) }
        var options = ReplayOptions(
            topology: topology, inputs: inputs.map { .init(port: $0.0, path: $0.1) },
            outputDirectory: out)
        options.mapEvents = mapEvents
        options.statsPath = out + "/stats.json"
        options.oneEventPerStep = oneEventPerStep
        let result = try Replay.run(options)
        #expect(result.inputErrors.isEmpty)
        expectConservation(result.statistics)
        var files = [String: Data]()
        for name in try FileManager.default.contentsOfDirectory(atPath: out) {
            files[name] = try Data(contentsOf: URL(fileURLWithPath: "\(out)/\(name)"))
        }
        return (files, result.statistics.polls)
    }
}

/// Traces made from the sample trace of `testCase`, one per input (the sample's frames of the input's source MAC):
/// 400 frames each, with gaps drawn from ties, short gaps (a few frames share a poll) and long ones (a poll each).
/// Returns (port, path) per input.
func writeGeneratedTraces(
    _ testCase: ReplayStretchTests.Case, into directory: String, prefix: String,
    seed: UInt64
) throws -> [(String, String)] {
    let sample = try readCapture("\(repositoryRoot)/pcaps/\(testCase.trace).pcap")
    var inputs = [(String, String)]()
    for (n, input) in testCase.inputs.enumerated() {
        let frames = sample.filter { $0.source == input.source }
        try #require(!frames.isEmpty)
        var random = SplitMix64(seed: seed &+ UInt64(n))
        let gaps: [UInt64] = [0, 40, 900, 3_000, 20_000, 1_000_000]
        var time: UInt64 = 1_000_000_000
        var trace = [(time: UInt64, bytes: [UInt8])]()
        for i in 0..<400 {
            time += gaps[Int(random.next() % UInt64(gaps.count))]
            trace.append((time: time, bytes: frames[i % frames.count].bytes))
        }
        let path = "\(directory)/\(prefix)\(n).pcap"
        try writeTrace(path, trace)
        inputs.append((input.port, path))
    }
    return inputs
}
