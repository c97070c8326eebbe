import ArgumentParser
import Foundation
import XDPEmuOS
import XDPEmuRuntime
import XDPEmuTopology

struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Replay pcap traces through a topology's programs and devmaps, offline, in virtual time.",
        discussion: """
            Writes DIR/PORT.ingress.pcap, DIR/PORT.egress.pcap and DIR/PORT.pass.pcap for every port and \
            DIR/drops.pcap, prints a summary on stderr, and is deterministic: the same inputs give byte-identical \
            outputs. Every input and output is checked before any output is created; capture files of an earlier \
            run in DIR that this run does not write are removed. Exit codes: 0 done; 1 an output cannot be \
            created or written (each file named; a file whose write failed ends at its last whole record); 2 bad \
            input (topology, trace or map-events file; outputs written so far stay valid); 130 interrupted \
            (outputs valid).
            """)

    @Argument(help: "The topology file (JSON).")
    var topology: String

    @Option(
        name: .customLong("in"),
        help: ArgumentHelp(
            "A trace to feed into a port; dst and src set the MACs given to frames of a trace that is not Ethernet.",
            valueName: "PORT=TRACE[,dst=MAC][,src=MAC]"))
    var inputs: [String]

    @Option(name: .customLong("out"), help: ArgumentHelp("Directory for the captures.", valueName: "DIR"))
    var output: String

    @OptionGroup var shared: TimingAndOutputOptions

    @Flag(help: "Print neither the summary table nor the progress bar.")
    var quiet = false

    func validate() throws {
        try validateTraceInputs(inputs, option: "--in", timing: shared.timing)
    }

    func run() throws {
        // A closed stdout or stderr (`... 2>&1 | head -1`) stops the printing, not the replay.
        Console.ignoreBrokenPipes()
        let loaded = try loadTopology(topology)
        var options = ReplayOptions(topology: loaded, inputs: traceInputs(inputs), outputDirectory: output)
        options.timing = ReplayOptions.Timing(rawValue: shared.timing)!
        options.eventsPath = shared.events
        options.statsPath = shared.stats
        options.mapsOutPath = shared.mapsOut
        options.mapEvents = loadMapEvents(shared.mapEvents, topology: loaded)
        // SIGINT and SIGTERM stop the reading; what was read is still processed and every output closed.
        let signals = try? SignalWatcher()
        defer { signals?.close() }
        var stopRequested = false
        options.shouldStop = {
            if !stopRequested, let signals, (try? signals.next()) ?? nil != nil { stopRequested = true }
            return stopRequested
        }
        let totalBytes = options.inputs.reduce(Int64(0)) { $0 + (fileSize($1.path) ?? 0) }
        if !quiet && isTerminal(.standardError) && totalBytes > 32 << 20 { options.progress = ProgressBar().update }
        let result: ReplayResult
        do {
            result = try Replay.run(options)
        } catch {
            fail("\(error)", code: error.exitCode)
        }
        if options.progress != nil { Console.standardError.write("\r\u{1b}[K") }
        if !quiet { Console.standardError.writeLine(result.statistics.table) }
        for error in result.inputErrors + result.outputErrors { Console.standardError.writeLine("xdpemu: \(error)") }
        if !result.outputErrors.isEmpty { throw ExitCode(ExitStatus.failure) }
        if result.interrupted { throw ExitCode(130) }
        if !result.inputErrors.isEmpty { throw ExitCode(ExitStatus.badInput) }
    }
}

/// A one-line progress bar with the read rate, for large traces on a terminal.
final class ProgressBar {
    let start = MonotonicClock.now()
    var last: UInt64 = 0

    func update(frames: UInt64, fraction: Double) {
        let now = MonotonicClock.now()
        guard now - last > 200_000_000 else { return }
        last = now
        let seconds = Double(now - start) / 1e9
        let rate = seconds > 0 ? Double(frames) / seconds / 1e6 : 0
        let width = 30
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled)
        let line = "\r[\(bar)] \(Int(fraction * 100))%  \(frames) frames  \(String(format: "%.2f", rate)) M frames/s"
        Console.standardError.write(line)
    }
}

/// Loads a topology (accepting the registered program types), or exits 2 with every problem listed.
func loadTopology(_ path: String) throws -> Topology {
    do {
        return try Topology.load(path: path, customProgramTypes: ProgramRegistry.customTypes)
    } catch {
        fail("\(error)", code: ExitStatus.badInput)
    }
}

/// Checks PORT=TRACE[,dst=MAC][,src=MAC] arguments of `option` and a --timing value.
func validateTraceInputs(_ inputs: [String], option: String, timing: String) throws {
    for input in inputs {
        do {
            _ = try ReplayOptions.Input(argument: input)
        } catch {
            throw ValidationError("\(option) \(error)")
        }
    }
    guard ReplayOptions.Timing(rawValue: timing) != nil else {
        throw ValidationError("--timing must be recorded or topspeed")
    }
}

/// PORT=TRACE[,dst=MAC][,src=MAC] arguments, checked by `validateTraceInputs`, as inputs.
func traceInputs(_ inputs: [String]) -> [ReplayOptions.Input] {
    inputs.map { try! ReplayOptions.Input(argument: $0) }
}

/// Loads a --map-events file against `topology`, or exits 2 with every problem listed.
func loadMapEvents(_ path: String?, topology: Topology) -> MapEventSchedule? {
    guard let path else { return nil }
    do {
        return try MapEventSchedule.load(path: path, topology: topology)
    } catch {
        fail("\(error)", code: ExitStatus.badInput)
    }
}

/// Prints `message` to stderr and exits with `code`.
func fail(_ message: String, code: Int32) -> Never {
    Console.standardError.writeLine("xdpemu: \(message)")
    exit(code)
}

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate", abstract: "Check a topology file and print every problem (exit code 2 if any).")

    @Argument(help: "The topology file (JSON).")
    var topology: String

    func run() throws {
        let loaded = try loadTopology(topology)
        let problems = EBPFObjects.check(loaded)
        guard problems.isEmpty else { fail(problems.joined(separator: "\nxdpemu: "), code: ExitStatus.badInput) }
        print("\(topology): ok (\(loaded.ports.count) ports, \(loaded.maps.count) maps)")
    }
}
