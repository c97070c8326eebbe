import Benchmark
import BenchSupport

// Every benchmark runs 1,000,000 frames per iteration (15,625 full 64-frame polls, each preceded by the RX refill)
// with `scalingFactor: .mega`, so each metric reads per frame: wall clock and CPU time in ns per frame,
// throughput in frames per second, mallocs per frame (asserted 0: see the thresholds).
// CPU time is the custom "thread CPU ps/frame" (CLOCK_THREAD_CPUTIME_ID around the iteration, in picoseconds).
// Two of the framework's metrics are left out because measuring them allocates 16 times per iteration inside the
// measured region (seen with `--metric mallocCountTotal --metric X --scale`), which would hide our 0:
// `cpuTotal` (also only 10 ms resolution) and `instructions` (hardware counters, absent in this VM anyway;
// callgrind.sh counts instructions instead).
let benchmarks: @Sendable () -> Void = {
    let threadCPU = BenchmarkMetric.custom("thread CPU ps/frame", useScalingFactor: false)
    let perFrame: [BenchmarkMetric] = [.throughput, .wallClock, threadCPU, .mallocCountTotal]
    // Steady state allocates nothing: mallocs per iteration must be exactly 0. `swift package benchmark thresholds
    // check` compares a run's p90 with Thresholds/ (0 for every benchmark) within these tolerances (README.md).
    let noMallocs: [BenchmarkMetric: BenchmarkThresholds] = [
        .mallocCountTotal: BenchmarkThresholds(absolute: [.p0: 0, .p50: 0, .p90: 0, .p100: 0]),
    ]

    func coreBenchmark(_ name: String, _ kind: ScenarioKind, frameLength: Int = 64, events: Bool = false) {
        final class Holder { var scenario: CoreScenario? }
        let holder = Holder()
        Benchmark(
            name,
            configuration: .init(
                metrics: perFrame, units: [threadCPU: .count], warmupIterations: 3, scalingFactor: .mega,
                maxDuration: .seconds(3),
                maxIterations: 1_000, thresholds: noMallocs,
                setup: {
                    let scenario = try CoreScenario(kind, frameLength: frameLength, events: events)
                    if kind == .largeMap || kind == .largeMapFixedKeys {
                        print("\(name): setup of \(CoreScenario.largeMapEntries) entries over "
                            + "\(CoreScenario.largeMapPorts) ports took \(Int(scenario.setupSeconds * 1000)) ms")
                    }
                    holder.scenario = scenario
                },
                teardown: {
                    if let error = holder.scenario?.conservationError() { fatalError("\(name): \(error)") }
                    holder.scenario = nil
                }
            )
        ) { benchmark in
            let start = BenchClock.threadCPUNanos()
            holder.scenario.unsafelyUnwrapped.run(frames: CoreScenario.framesPerIteration)
            let cpu = BenchClock.threadCPUNanos() - start
            benchmark.measurement(threadCPU, Int(cpu * 1000 / UInt64(CoreScenario.framesPerIteration)))
        }
    }

    coreBenchmark("core/redirect/4targets/64B", .redirect4)
    coreBenchmark("core/redirect/4targets/1500B", .redirect4, frameLength: 1500)
    coreBenchmark("core/redirect/4targets/64B/events", .redirect4, events: true)
    coreBenchmark("core/redirect/4targets/1500B/events", .redirect4, frameLength: 1500, events: true)
    coreBenchmark("core/redirect/65536entries-1024ports/64B", .largeMap)
    coreBenchmark("core/redirect/65536entries-1024ports/4fixedkeys/64B", .largeMapFixedKeys)
    coreBenchmark("core/drop/64B", .drop)

    // Two workers on their own threads into one map, a third thread rewriting an entry every ~5 µs. The custom
    // metrics are each worker's thread CPU time per frame (CLOCK_THREAD_CPUTIME_ID), in picoseconds (integers).
    let worker0 = BenchmarkMetric.custom("worker0 CPU ps/frame", useScalingFactor: false)
    let worker1 = BenchmarkMetric.custom("worker1 CPU ps/frame", useScalingFactor: false)
    let updateInterval = BenchmarkMetric.custom("ns between map updates", useScalingFactor: false)
    Benchmark(
        "core/redirect/2workers+map-updates/64B",
        configuration: .init(metrics: [.wallClock, worker0, worker1, updateInterval],
                             units: [worker0: .count, worker1: .count, updateInterval: .count], warmupIterations: 1,
                             maxDuration: .seconds(5), maxIterations: 20)
    ) { benchmark in
        do {
            let scenario = try TwoWorkerScenario()
            benchmark.startMeasurement()
            let result = scenario.run(framesPerWorker: 4 * CoreScenario.framesPerIteration)
            benchmark.stopMeasurement()
            if let error = scenario.conservationError() { benchmark.error(error) }
            benchmark.measurement(worker0, Int((result.cpuNanosPerFrame[0] * 1000).rounded()))
            benchmark.measurement(worker1, Int((result.cpuNanosPerFrame[1] * 1000).rounded()))
            benchmark.measurement(updateInterval, Int(result.meanUpdateInterval.rounded()))
        } catch {
            benchmark.error("\(error)")
        }
    }
}
