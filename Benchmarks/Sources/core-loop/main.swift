// Runs N frames through one benchmark scenario and exits: the harness callgrind.sh runs under valgrind for two
// values of N and divides the difference of the instruction counts by the difference of N, which cancels the setup.
//
//   core-loop <scenario> <frames>
//   scenarios: redirect4-64 redirect4-1500 redirect4-64-events largemap-64 largemap-fixed-64 drop-64 two-workers
//   two-workers-sleep two-workers-noupdates two-workers-alone two-workers-serial (two-workers paces the map updates
//   by spinning on the clock; -sleep sleeps instead; -noupdates spins the same way without updating the map; -alone
//   has no updater; -serial runs both workers and the updates on one thread, an update every 4 polls of each, for
//   callgrind)
import BenchSupport

#if canImport(Glibc)
import Glibc
#endif

let scenarios = [
    "redirect4-64", "redirect4-1500", "redirect4-64-events", "largemap-64", "largemap-fixed-64", "drop-64",
    "two-workers", "two-workers-sleep", "two-workers-noupdates", "two-workers-alone",
    "two-workers-serial",
]
let arguments = CommandLine.arguments
guard arguments.count == 3, scenarios.contains(arguments[1]), let frames = Int(arguments[2]), frames > 0 else {
    print("usage: core-loop <\(scenarios.joined(separator: "|"))> <frames>")
    exit(2)
}
let name = arguments[1]

func fail(_ message: String) -> Never {
    print("core-loop: \(message)")
    exit(1)
}

if name == "two-workers-serial" {
    let scenario = try TwoWorkerScenario()
    let cpuStart = BenchClock.threadCPUNanos()
    let updates = scenario.runSerial(framesPerWorker: frames)
    let cpu = BenchClock.threadCPUNanos() - cpuStart
    if let error = scenario.conservationError() { fail(error) }
    print("\(name): \(frames) frames per worker, \(updates) map updates, "
        + "CPU \(format2(Double(cpu) / Double(2 * frames))) ns per frame (updates included)")
    exit(0)
}

if name.hasPrefix("two-workers") {
    let scenario = try TwoWorkerScenario()
    let pacing: TwoWorkerScenario.Pacing =
        name.hasSuffix("sleep") ? .sleep : name.hasSuffix("noupdates") ? .spinWithoutUpdates
        : name.hasSuffix("alone") ? .noUpdater : .spin
    let result = scenario.run(framesPerWorker: frames, pacing: pacing)
    if let error = scenario.conservationError() { fail(error) }
    let perFrame = result.cpuNanosPerFrame.map { String(format2($0)) }.joined(separator: " ")
    print("\(name): \(frames) frames per worker, CPU ns per frame per worker: \(perFrame), "
        + "\(result.updates) map updates, one every \(Int(result.meanUpdateInterval)) ns, "
        + "wall \(format2(result.wallSeconds)) s")
    for (cpu, usage) in result.usage.enumerated() {
        print("  worker \(cpu): user \(usage.userNanos / 1_000_000) ms, system \(usage.systemNanos / 1_000_000) ms, "
            + "\(usage.voluntarySwitches) voluntary and \(usage.involuntarySwitches) involuntary context switches")
    }
    exit(0)
}

let kind: ScenarioKind =
    name.hasPrefix("largemap-fixed") ? .largeMapFixedKeys
    : name.hasPrefix("largemap") ? .largeMap : name.hasPrefix("drop") ? .drop : .redirect4
let scenario = try CoreScenario(kind, frameLength: name.contains("1500") ? 1500 : 64, events: name.hasSuffix("events"))
let start = BenchClock.monotonicNanos()
let cpuStart = BenchClock.threadCPUNanos()
scenario.run(frames: frames)
let cpu = BenchClock.threadCPUNanos() - cpuStart
let elapsed = BenchClock.monotonicNanos() - start
if let error = scenario.conservationError() { fail(error) }
let nanosPerFrame = Double(elapsed) / Double(frames)
print("\(name): setup \(format2(scenario.setupSeconds * 1000)) ms, \(frames) frames, "
    + "\(format2(nanosPerFrame)) ns/frame "
    + "(CPU \(format2(Double(cpu) / Double(frames))) ns), \(format2(1000 / nanosPerFrame)) M frames/s")

func format2(_ value: Double) -> String {
    let scaled = (value * 100).rounded()
    let whole = Int(scaled) / 100
    let cents = Int(scaled) % 100
    return "\(whole).\(cents < 10 ? "0" : "")\(cents)"
}
