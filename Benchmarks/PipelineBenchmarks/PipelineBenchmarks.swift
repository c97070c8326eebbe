import Benchmark
import BenchSupport
import CBenchPcap
#if canImport(Glibc)
import Glibc
#endif
import MallocInterposerSwift
import PipelineSupport
import XDPEmuPcap
import XDPEmuRuntime

// The pipeline around the core (README.md, "Pipeline benchmarks"):
//   pcap/...    XDPEmuPcap's reader and writer on a 1,000,000-frame trace on tmpfs, and libpcap's for comparison;
//   replay/...  `Replay.run` end to end (scripts/bench/hash4.json, topspeed and recorded timing, egress capture
//               to tmpfs);
//   live/...    `LiveRun` forwarding 60-byte UDP frames between two host namespaces (root only).
// Iterations of 1,000,000 frames use `scalingFactor: .mega`, so wall clock, CPU time, throughput and mallocs read
// per frame. Work that is not per frame (opening the reader or writer, closing it, removing outputs, checking them)
// stays outside the measured region (`startMeasurement`/`stopMeasurement`), except in `replay/...`, where a run's
// setup is part of what is measured. The custom metric "mallocs per iteration" is the same count as the framework's,
// unscaled.
let benchmarks: @Sendable () -> Void = {
    let threadCPU = BenchmarkMetric.custom("thread CPU ps/frame", useScalingFactor: false)
    // The framework's malloc count is scaled like the rest (per frame, an integer), so a few mallocs per iteration
    // would show as 0: this one is the same count over the measured region, per iteration and unscaled.
    let mallocsPerIteration = BenchmarkMetric.custom("mallocs per iteration", useScalingFactor: false)
    let perFrame: [BenchmarkMetric] = [.throughput, .wallClock, threadCPU, .mallocCountTotal, mallocsPerIteration]
    let noMallocs: [BenchmarkMetric: BenchmarkThresholds] = [
        .mallocCountTotal: BenchmarkThresholds(absolute: [.p0: 0, .p50: 0, .p90: 0, .p100: 0]),
    ]
    let frames = PcapScenario.frames

    // MARK: pcap

    final class PcapHolder { var scenario: PcapScenario? }
    func pcapBenchmark(_ name: String, zeroMallocs: Bool, pcapng: Bool = false,
                       _ body: @escaping (Benchmark, PcapScenario) throws -> String?) {
        let holder = PcapHolder()
        Benchmark(
            name,
            configuration: .init(
                metrics: perFrame, units: [threadCPU: .count, mallocsPerIteration: .count], warmupIterations: 1,
                scalingFactor: .mega,
                maxDuration: .seconds(6), maxIterations: 20, thresholds: zeroMallocs ? noMallocs : nil,
                setup: { holder.scenario = try PcapScenario(pcapng: pcapng) },
                teardown: { holder.scenario = nil }
            )
        ) { benchmark in
            do {
                if let problem = try body(benchmark, holder.scenario!) { benchmark.error("\(name): \(problem)") }
            } catch {
                benchmark.error("\(name): \(error)")
            }
        }
    }
    /// Runs `work` between startMeasurement and stopMeasurement; records its thread CPU time per frame and its
    /// mallocs, unscaled.
    func measured<T>(_ benchmark: Benchmark, _ work: () throws -> T) rethrows -> T {
        benchmark.startMeasurement()
        let mallocs = MallocInterposerSwift.getStatistics().mallocCount
        let start = BenchClock.threadCPUNanos()
        let result = try work()
        let cpu = BenchClock.threadCPUNanos() - start
        let allocated = MallocInterposerSwift.getStatistics().mallocCount - mallocs
        benchmark.stopMeasurement()
        benchmark.measurement(threadCPU, Int(cpu * 1000 / UInt64(frames)))
        benchmark.measurement(mallocsPerIteration, Int(allocated))
        return result
    }

    pcapBenchmark("pcap/read/XDPEmuPcap/1M-frames", zeroMallocs: true) { benchmark, scenario in
        let reader = try PcapReader(path: scenario.tracePath)
        let (records, bytes) = try measured(benchmark) { try PcapScenario.readAll(reader) }
        return records == frames && 24 + 16 * records + bytes == scenario.fileSize
            ? nil : "read \(records) records, \(bytes) bytes"
    }
    pcapBenchmark("pcap/read/libpcap/1M-frames", zeroMallocs: false) { benchmark, scenario in
        var bytes: UInt64 = 0
        let records = measured(benchmark) { bench_pcap_read_all(scenario.tracePath, &bytes) }
        return records == frames ? nil : "libpcap read \(records) records"
    }
    // The same trace as pcapng (what Wireshark and dumpcap write): our PcapngParser against libpcap.
    pcapBenchmark("pcap/read-pcapng/XDPEmuPcap/1M-frames", zeroMallocs: true, pcapng: true) { benchmark, scenario in
        let reader = try PcapReader(path: scenario.tracePath)
        let (records, bytes) = try measured(benchmark) { try PcapScenario.readAll(reader) }
        return records == frames && bytes == scenario.frameBytes && !reader.isReadByLibpcap
            ? nil : "read \(records) records, \(bytes) bytes, libpcap: \(reader.isReadByLibpcap)"
    }
    pcapBenchmark("pcap/read-pcapng/libpcap/1M-frames", zeroMallocs: false, pcapng: true) { benchmark, scenario in
        var bytes: UInt64 = 0
        let records = measured(benchmark) { bench_pcap_read_all(scenario.tracePath, &bytes) }
        return records == frames && Int(bytes) == scenario.frameBytes ? nil : "libpcap read \(records) records"
    }
    pcapBenchmark("pcap/write/XDPEmuPcap/1M-frames", zeroMallocs: true) { benchmark, scenario in
        let path = scenario.directory.path + "/written.pcap"
        defer { unlink(path) }
        let writer = try PcapWriter(path: path)
        try measured(benchmark) { try scenario.writeAll(writer) }
        try writer.close()
        return scenario.checkOutput(path)
    }
    pcapBenchmark("pcap/write/libpcap/1M-frames", zeroMallocs: false) { benchmark, scenario in
        let path = scenario.directory.path + "/dumped.pcap"
        defer { unlink(path) }
        guard let dumper = bench_pcap_dump_open(path) else { return "pcap_dump_open failed" }
        let closed = measured(benchmark) {
            scenario.writeAllWithLibpcap(dumper)
            return bench_pcap_dump_close(dumper)  // the final fflush is part of the work
        }
        return closed == 0 ? scenario.checkOutput(path) : "pcap_dump_close failed"
    }

    // MARK: replay

    // Two sizes: mallocs per iteration (one run, unscaled) at 1M and at 100k frames; their difference over 900k
    // frames is what replay allocates per frame, the rest is the run's setup and teardown (README.md).
    final class ReplayHolder { var scenario: ReplayScenario?; var problems: [String] = [] }
    func replayBenchmark(_ name: String, frames: Int, timing: ReplayOptions.Timing = .topspeed,
                         scalingFactor: BenchmarkScalingFactor) {
        let holder = ReplayHolder()
        Benchmark(
            name,
            configuration: .init(
                metrics: [.throughput, .wallClock, threadCPU, .mallocCountTotal, mallocsPerIteration],
                units: [threadCPU: .count, mallocsPerIteration: .count], warmupIterations: 1,
                scalingFactor: scalingFactor, maxDuration: .seconds(10), maxIterations: 10,
                setup: { holder.scenario = try ReplayScenario(frames: frames, timing: timing) },
                teardown: {
                    // Every run's conservation and outputs were checked after it; fail here if any did not add up.
                    let problems = holder.problems
                    holder.scenario = nil
                    if !problems.isEmpty { throw BenchError("\(name): \(problems.joined(separator: " | "))") }
                }
            )
        ) { benchmark in
            let scenario = holder.scenario!
            let options = scenario.nextOptions()
            do {
                benchmark.startMeasurement()
                let mallocs = MallocInterposerSwift.getStatistics().mallocCount
                let start = BenchClock.threadCPUNanos()
                let result = try Replay.run(options)
                let cpu = BenchClock.threadCPUNanos() - start
                let allocated = MallocInterposerSwift.getStatistics().mallocCount - mallocs
                benchmark.stopMeasurement()
                benchmark.measurement(threadCPU, Int(cpu * 1000 / UInt64(frames)))
                benchmark.measurement(mallocsPerIteration, Int(allocated))
                if let problem = scenario.checkAndRemoveOutputs(result, options) {
                    holder.problems.append(problem)
                    benchmark.error("\(name): \(problem)")
                }
            } catch {
                ScratchDirectory.removeTree(options.outputDirectory)
                holder.problems.append("\(error)")
                benchmark.error("\(name): \(error)")
            }
        }
    }
    replayBenchmark("replay/hash4-topspeed/1M-frames", frames: 1_000_000, scalingFactor: .mega)
    replayBenchmark("replay/hash4-topspeed/100k-frames", frames: 100_000, scalingFactor: .one)
    // Replay's default timing: with the trace's frames 1 µs apart, a NAPI poll, flush and bulk per frame.
    replayBenchmark("replay/hash4-recorded/1M-frames", frames: 1_000_000, timing: .recorded, scalingFactor: .mega)

    // MARK: live

    if let reason = LiveScenario.unavailableReason() {
        print("live/udp-60B/a-to-b: skipped (\(reason)); live forwarding needs root, /dev/net/tun and `ip netns`")
        return
    }
    // Each iteration is a 250 ms window of forwarding in steady state; frames are counted by the kernel in the
    // receiving namespace, so the figures are custom metrics rather than scaled ones.
    let forwarded = BenchmarkMetric.custom("forwarded frames/s", polarity: .prefersLarger, useScalingFactor: false)
    let mallocsPerMillion = BenchmarkMetric.custom("mallocs per 1M forwarded frames", useScalingFactor: false)
    let windowFrames = BenchmarkMetric.custom("frames per window", polarity: .prefersLarger, useScalingFactor: false)
    final class LiveHolder { var scenario: LiveScenario? }
    let live = LiveHolder()
    Benchmark(
        "live/udp-60B/a-to-b",
        configuration: .init(
            metrics: [.mallocCountTotal, forwarded, mallocsPerMillion, windowFrames],
            units: [forwarded: .count, mallocsPerMillion: .count, windowFrames: .count],
            warmupIterations: 2, maxDuration: .seconds(10), maxIterations: 24,
            setup: { live.scenario = try LiveScenario() },
            teardown: {
                let problems = live.scenario?.stop() ?? []
                live.scenario = nil
                if !problems.isEmpty { throw BenchError("live/udp-60B/a-to-b: \(problems.joined(separator: "; "))") }
            }
        )
    ) { benchmark in
        let scenario = live.scenario!
        let before = scenario.sample()
        benchmark.startMeasurement()
        let mallocs = MallocInterposerSwift.getStatistics().mallocCount
        var window = timespec(tv_sec: 0, tv_nsec: 250_000_000)
        var left = timespec()
        while nanosleep(&window, &left) != 0 && errno == EINTR { window = left }
        let allocated = MallocInterposerSwift.getStatistics().mallocCount - mallocs
        benchmark.stopMeasurement()
        let after = scenario.sample()
        let frames = after.frames - before.frames
        benchmark.measurement(forwarded, Int(Double(frames) * 1e9 / Double(after.nanos - before.nanos)))
        benchmark.measurement(windowFrames, Int(frames))
        benchmark.measurement(mallocsPerMillion, frames == 0 ? 0 : Int(allocated) * 1_000_000 / Int(frames))
        if let failure = scenario.failure() { benchmark.error("live/udp-60B/a-to-b: \(failure)") }
    }
}
