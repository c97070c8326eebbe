import Foundation
import Testing
import XDPEmuTesting
import XDPEmuTopology

@testable import XDPEmuRuntime

/// Replay's outputs, byte for byte, against digests recorded from an earlier build: every pcap, the event log and
/// the statistics of the sample topologies on generated traces (ties, short and long gaps; small rings, small
/// budgets, per-frame cost; map operations during the trace), with both timings. A change to the datapath or the
/// scheduler that changes any output byte fails here; re-record only on purpose with `XDPEMU_RECORD_GOLDEN=1`.
@Suite struct ReplayDigestTests {
    static let digestsPath = "\(repositoryRoot)/Tests/XDPEmuRuntimeTests/Golden/replay-digests.txt"

    /// (poll delay, frame cost, ring size, budget)
    static let settings: [(UInt64, UInt64, Int, Int)] = [(0, 0, 1024, 64), (2_000, 700, 8, 64), (3_000, 0, 1024, 2)]

    @Test func everyOutputMatchesItsRecordedDigest() throws {
        var lines = [String]()
        let scratch = makeTemporaryDirectory()
        defer { removeDirectory(scratch) }
        for (c, testCase) in ReplayStretchTests.cases.enumerated() {
            let inputs = try writeGeneratedTraces(testCase, into: scratch, prefix: "case\(c)", seed: 0xd16e57)
            for (delay, cost, ring, budget) in Self.settings {
                let (topology, schedule) = try testCase.topology(
                    pollDelay: delay, frameCost: cost, ringSize: ring,
                    budget: budget)
                // An event log turns recorded timing's stretches of polls off: both ways are held to their digests.
                for timing in ReplayOptions.Timing.allCases {
                    for events in [false, true] {
                        let label =
                            "\(c):\(testCase.topology):\(delay),\(cost),\(ring),\(budget):\(timing.rawValue)"
                            + (events ? ":events" : "")
                        lines += try Self.digests(
                            topology, inputs: inputs, timing: timing, events: events,
                            mapEvents: schedule, label: label)
                    }
                }
            }
        }
        let text = lines.joined(separator: "\n") + "\n"
        if ProcessInfo.processInfo.environment["XDPEMU_RECORD_GOLDEN"] == "1" {
            try text.write(toFile: Self.digestsPath, atomically: true, encoding: .utf8)
            return
        }
        let recorded = try String(contentsOfFile: Self.digestsPath, encoding: .utf8)
        let expected = recorded.split(separator: "\n").map(String.init)
        // Not vacuous: every case wrote captures and statistics, half of them an event log too.
        #expect(lines.count > 500)
        #expect(lines.count == expected.count, "\(lines.count) outputs, \(expected.count) recorded")
        for (line, want) in zip(lines, expected) where line != want {
            Issue.record("replay output differs: got \(line), recorded \(want)")
        }
    }

    /// One line per output file of a replay: label, file name, size and digest.
    static func digests(
        _ topology: Topology, inputs: [(String, String)], timing: ReplayOptions.Timing, events: Bool,
        mapEvents: MapEventSchedule?, label: String
    ) throws -> [String] {
        let (result, out) = try replay(topology, inputs: inputs, timing: timing, events: events, mapEvents: mapEvents)
        defer { removeDirectory(out) }
        #expect(result.inputErrors.isEmpty)
        expectConservation(result.statistics)
        return try FileManager.default.contentsOfDirectory(atPath: out).sorted().map { name in
            let bytes = try Data(contentsOf: URL(fileURLWithPath: "\(out)/\(name)"))
            return "\(label) \(name) \(bytes.count) \(digest(bytes))"
        }
    }

    /// 64-bit FNV-1a: enough to tell any changed byte from the recorded output (not an adversarial setting).
    static func digest(_ bytes: Data) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        return String(hash, radix: 16)
    }
}
