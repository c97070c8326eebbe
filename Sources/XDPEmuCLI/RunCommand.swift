import ArgumentParser
import Foundation
import XDPEmuOS
import XDPEmuRuntime
import XDPEmuTopology

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a topology live: a TAP per port, hosts in network namespaces, captures while it runs.",
        discussion: """
            Needs root (CAP_NET_ADMIN, and CAP_SYS_ADMIN for hosts) and /dev/net/tun. Every TAP, namespace and fd \
            the run creates is removed when it ends (SIGINT, SIGTERM, SIGHUP or --duration). A port's "stack" TAP in this \
            namespace receives the port's XDP_PASS frames. See docs/live.md. Exit codes: 0 stopped cleanly; \
            1 a failure, an output that could not be written, too low an open-file limit (nothing created), or a \
            teardown step failed (see `xdpemu cleanup`); 2 bad input, a name already in use or a capture \
            directory another run writes into (nothing created; the message names that run's pid); 77 missing \
            privileges (use `xdpemu replay` instead).
            """)

    @Argument(help: "The topology file (JSON), e.g. topologies/two-hosts.json.")
    var topology: String

    @Option(help: ArgumentHelp("Directory for the captures.", valueName: "DIR"))
    var capture: String = LiveOptions.defaultCaptureDirectory

    @Flag(name: .customLong("no-capture"), help: "Write no capture files.")
    var noCapture = false

    @Option(help: ArgumentHelp("Stop after this many seconds.", valueName: "SECONDS"))
    var duration: Double?

    @Option(
        name: .customLong("replay"),
        help: ArgumentHelp(
            "Inject a trace into a port as if its TAP had received it; dst and src as for replay --in.",
            valueName: "PORT=TRACE[,dst=MAC][,src=MAC]"))
    var replays: [String] = []

    @OptionGroup var shared: TimingAndOutputOptions

    @Option(
        name: .customLong("state-dir"),
        help: ArgumentHelp("Where the run-state file and the control socket go.", valueName: "DIR"))
    var stateDirectory: String = RunState.defaultDirectory

    @Option(
        help: ArgumentHelp(
            "The instance's name for the control commands (default: the topology's name).", valueName: "NAME"))
    var name: String?

    @Option(
        help: ArgumentHelp(
            "Workers (simulated CPUs), each polling its ports on a thread of its own (default: the cores, at most "
                + "the ports).", valueName: "N"))
    var workers: Int?

    @Flag(
        name: .customLong("no-io-uring"),
        help: "Write frames to TAPs with one write(2) each, not in batches through io_uring.")
    var noIOUring = false

    func validate() throws {
        try validateTraceInputs(replays, option: "--replay", timing: shared.timing)
        if let duration, !(duration > 0) {
            throw ValidationError("--duration must be a positive number of seconds")
        }
        if let workers, !(1...64).contains(workers) {
            throw ValidationError("--workers must be 1...64")
        }
        if let duration, duration >= 1e9 {
            throw ValidationError("--duration is too large: at most 999999999 seconds")
        }
    }

    func run() throws {
        // First, before any other thread exists and before anything is created: SIGINT, SIGTERM and SIGHUP (a
        // closed terminal or ssh session) become readable events, so a signal at any later point (setup included)
        // ends in a clean teardown; and a closed stdout or stderr only stops the printing (Console).
        Console.ignoreBrokenPipes()
        let signals: SignalWatcher
        do {
            signals = try SignalWatcher(signals: [SIGINT, SIGTERM, SIGHUP])
        } catch {
            fail("cannot watch signals: \(error)", code: ExitStatus.failure)
        }
        let loaded = try loadTopology(topology)
        var options = LiveOptions(topology: loaded)
        options.captureDirectory = noCapture ? nil : capture
        options.durationNanos = duration.map { UInt64($0 * 1e9) }
        options.replays = traceInputs(replays)
        options.timing = ReplayOptions.Timing(rawValue: shared.timing)!
        options.eventsPath = shared.events
        options.statsPath = shared.stats
        options.mapsOutPath = shared.mapsOut
        options.stateDirectory = stateDirectory
        options.instanceName = name
        options.workers = workers
        options.ioUring = !noIOUring
        options.mapEvents = loadMapEvents(shared.mapEvents, topology: loaded)
        options.announce = { Console.standardOutput.writeLine($0) }
        let result: LiveResult
        do {
            let live = try LiveRun(options: options)
            result = try live.run(signals: signals)
        } catch {
            fail("\(error)", code: error.exitCode)
        }
        signals.close()
        let how =
            switch result.ending {
            case .signal(let number): number == SIGTERM ? "SIGTERM" : number == SIGHUP ? "SIGHUP" : "SIGINT"
            case .stopRequested: "a stop request"
            case .duration: "the end of --duration"
            }
        let when = result.stoppedDuringSetup ? " during setup" : ""
        if !result.teardownErrors.isEmpty {
            fail(
                "stopped by \(how)\(when), but teardown was incomplete; `xdpemu cleanup` removes what is left",
                code: ExitStatus.failure)
        }
        Console.standardError.writeLine("xdpemu: stopped by \(how)\(when); everything removed")
        // Output errors (1) before input errors (2): results were lost. Both were reported as they happened.
        if let error = result.outputErrors.first {
            fail("the run's outputs are incomplete: \(error)", code: ExitStatus.failure)
        }
        if let error = result.inputErrors.first { fail(error, code: ExitStatus.badInput) }
    }
}

struct CleanupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cleanup",
        abstract: "Remove what crashed live runs left behind (namespaces and links recorded in their state files).",
        discussion: """
            Reads DIR/*.json (default /run/xdpemu); for each run whose process is dead, deletes the links and \
            namespaces it recorded that still exist, and the file (and its PID.json.tmp, if a kill left one); \
            removes control sockets (NAME.sock) nothing listens on. \
            Nothing else is touched, nor anything a live \
            run has recorded. Exit codes: 0 done; 1 something could not be removed (listed).
            """)

    @Flag(help: "Also clean up after runs whose process still seems alive (a recycled pid).")
    var force = false

    @Option(name: .customLong("state-dir"), help: ArgumentHelp("Where run-state files are.", valueName: "DIR"))
    var stateDirectory: String = RunState.defaultDirectory

    func run() throws {
        Console.ignoreBrokenPipes()
        let report = RunState.cleanupStale(directory: stateDirectory, force: force)
        let out = Console.standardOutput
        let sockets = ControlSocketFiles.removeStale(directory: stateDirectory)
        for path in sockets { out.writeLine("removed stale control socket \(path)") }
        for item in report.removed { out.writeLine("removed \(item)") }
        for item in report.alreadyGone {
            out.writeLine(item.contains("(now used by") ? "left \(item)" : "\(item): already gone")
        }
        for path in report.stateFilesRemoved { out.writeLine("removed state file \(path)") }
        for path in report.liveRuns {
            out.writeLine("left \(path): its run is still alive (--force to clean it anyway)")
        }
        for path in report.unreadable { out.writeLine("left \(path): not a state file xdpemu can read") }
        if report.removed.isEmpty && report.stateFilesRemoved.isEmpty && report.failures.isEmpty && sockets.isEmpty {
            out.writeLine("nothing to clean up")
        }
        for failure in report.failures { Console.standardError.writeLine("xdpemu: cannot remove \(failure)") }
        if !report.failures.isEmpty { throw ExitCode(ExitStatus.failure) }
    }
}
