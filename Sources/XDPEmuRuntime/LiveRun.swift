import Foundation
import Glibc
import SystemPackage
import XDPEmuCore
import XDPEmuOS
import XDPEmuPcap
import XDPEmuTopology

// Live mode: a topology made of real TAP interfaces (docs/live.md).
//
// A run goes through four phases, and everything it creates is undone whichever way it ends:
//   1. Preflight (`LiveRun.preflight`): privileges, every name, nothing of that name exists yet, enough file
//      descriptors (the soft limit raised if need be). Creates nothing.
//   2. Setup: the capture directory's lock (one run per directory), the run-state file (so a crash leaves a record
//      for `xdpemu cleanup`), then hosts (namespace, TAP moved in and renamed, configured), then root-namespace
//      port TAPs, then stack TAPs, each recorded as it is created;
//      then captures, the emulation with a `TapWire` behind every port, the event log, the epoll loop. Between
//      steps the signal fd and the stop request are checked, so a signal during setup tears down what exists.
//   3. The loop (LiveLoop.swift) until a signal, a stop request or the end of `--duration`.
//   4. Finish and teardown: a last poll of every port and the quiescent point, captures and log flushed and
//      closed, the lock released; then every fd is closed *before* any namespace is deleted (deleting a
//      namespace under an open TAP fd leaves the fd in permanent error), namespaces deleted, the state file
//      removed; only then the summary, as printing can fail (a closed pipe). A teardown step that fails is
//      reported and the state file kept, for `xdpemu cleanup`.

/// What to run live and where to write.
public struct LiveOptions {
    public var topology: Topology
    /// Directory for the capture files (created if needed); nil writes no captures.
    public var captureDirectory: String? = LiveOptions.defaultCaptureDirectory
    /// Stop after this many nanoseconds; nil runs until a signal or a stop request.
    public var durationNanos: UInt64?
    /// Traces injected into ports as if their TAPs had received them.
    public var replays: [ReplayOptions.Input] = []
    public var timing: ReplayOptions.Timing = .recorded
    /// Scheduled map operations; offsets count from the end of setup.
    public var mapEvents: MapEventSchedule?
    public var eventsPath: String?
    public var statsPath: String?
    /// Where to write every map's final contents (`--maps-out`).
    public var mapsOutPath: String?
    /// Where the run-state file and the control socket (NAME.sock) go.
    public var stateDirectory: String = RunState.defaultDirectory
    /// The instance's name for `xdpemu map|stats|ports|port|events --instance` (its control socket); nil: the
    /// topology's name.
    public var instanceName: String?
    /// The instance's name: `instanceName`, else the topology's.
    public var instance: String { instanceName ?? topology.name }
    /// Workers (simulated CPUs), each polling its ports on a thread of its own; nil: the number of cores, at most
    /// the number of ports.
    public var workers: Int?
    /// The workers the run uses: `workers`, else the cores, at most the ports (at least 1).
    public var workerCount: Int {
        workers ?? max(1, min(ProcessInfo.processInfo.activeProcessorCount, topology.ports.count))
    }
    /// Write each batch of frames to a TAP with one io_uring_enter (`TapWriteRing`) where the kernel allows it;
    /// false, or without io_uring, one write(2) per frame.
    public var ioUring = true
    /// Receives what the user can do next (stdout in the CLI), once setup is done.
    public var announce: (String) -> Void = { Console.standardOutput.writeLine($0) }
    /// Receives diagnostics and the summary table (stderr in the CLI).
    public var report: (String) -> Void = { Console.standardError.writeLine($0) }

    public static let defaultCaptureDirectory = "xdpemu-capture"

    public init(topology: Topology) { self.topology = topology }
}

/// How a live run ended.
public struct LiveResult {
    public enum Ending: Equatable, Sendable {
        /// SIGINT, SIGTERM or SIGHUP (the number).
        case signal(Int32)
        /// `stopRequest.notify()` from another thread.
        case stopRequested
        /// The `--duration` elapsed.
        case duration
    }

    public var ending: Ending
    /// True when the run was stopped before setup finished: nothing was forwarded.
    public var stoppedDuringSetup: Bool
    /// Counters of the run; nil when it was stopped during setup.
    public var statistics: RunStatistics?
    /// Teardown steps that failed (the state file is then kept for `xdpemu cleanup`).
    public var teardownErrors: [String]
    /// Problems of the `--replay` traces met during the run (a truncated record...): bad input, exit code 2.
    public var inputErrors: [String] = []
    /// Captures or the event log that could not be written during the run: exit code 1.
    public var outputErrors: [String] = []
}

/// One live run. Create it, then call `run` once, on the thread that is to be the datapath's.
public final class LiveRun {
    public let options: LiveOptions
    /// Notify it from any thread to stop the run as SIGINT would.
    public let stopRequest: EventNotifier

    private var created = Created()

    public init(options: LiveOptions) throws(RuntimeError) {
        self.options = options
        do {
            stopRequest = try EventNotifier()
        } catch {
            throw .failure("cannot create an eventfd: \(error)")
        }
    }

    // MARK: Run

    /// Runs preflight, setup, the loop and teardown. `signals` (created on the main thread before any other
    /// thread, see `SignalWatcher`) ends the run on the signals it watches, also during setup.
    ///
    /// Throws `.notPermitted` or `.badInput` from preflight (nothing was created), `.badInput` if a name turns
    /// out taken during setup, `.failure` for anything else; everything created is removed before it throws.
    public func run(signals: SignalWatcher?) throws(RuntimeError) -> LiveResult {
        try Self.preflight(options)
        let engine: LiveWorkers
        do {
            switch try setUp(signals: signals) {
            case .ready(let ready):
                engine = ready
            case .stopped(let ending):
                return LiveResult(
                    ending: ending, stoppedDuringSetup: true, statistics: nil,
                    teardownErrors: teardown())
            }
        } catch {
            _ = teardown()
            throw error
        }
        for line in Self.nextSteps(topology: options.topology, captureDirectory: options.captureDirectory) {
            options.announce(line)
        }
        var failure: RuntimeError?
        let ending: LiveResult.Ending
        created.control?.start()
        do {
            ending = try engine.run()
        } catch {
            failure = error
            ending = .stopRequested
        }
        created.control?.stop()
        var statistics = engine.finish()
        var outputErrors = closeOutputs(
            captures: created.captures, log: created.log, statistics: &statistics, statsPath: options.statsPath)
        if let path = options.mapsOutPath, let error = MapsOut.write(engine.loops[0].emulation, to: path) {
            outputErrors.append(error)
        }
        if !outputErrors.isEmpty { failure = failure ?? .failure(outputErrors.joined(separator: "\nxdpemu: ")) }
        // Teardown comes before the summary: printing may fail (a closed pipe, a hung-up terminal), the
        // namespaces and the state file must not depend on it.
        let errors = teardown()
        options.report(statistics.table)
        if let failure { throw failure }
        return LiveResult(
            ending: ending, stoppedDuringSetup: false, statistics: statistics, teardownErrors: errors,
            inputErrors: engine.inputErrors, outputErrors: engine.outputErrors)
    }

    // MARK: Setup

    /// Everything the run has created, in creation order, for teardown.
    private struct Created {
        var captureLock: DirectoryLock?
        var runState: RunState?
        var hosts: [HostSetup] = []
        /// Root-namespace TAPs: ports without a host, then stack TAPs.
        var rootTaps: [TapDevice] = []
        var captures: CaptureSet?
        var log: EventLog?
        var eventLoop: EventLoop?
        var timer: PeriodicTimer?
        var writeRings: [TapWriteRing] = []
        var eventLoops: [EventLoop] = []
        /// The secondary loops' stop notifiers.
        var stops: [EventNotifier] = []
        var control: ControlServer?
    }

    private enum SetupOutcome {
        case ready(LiveWorkers)
        case stopped(LiveResult.Ending)
    }

    private struct Stopped: Error {
        let ending: LiveResult.Ending
    }

    private func setUp(signals: SignalWatcher?) throws(RuntimeError) -> SetupOutcome {
        do {
            return .ready(try performSetUp(signals: signals))
        } catch let stopped as Stopped {
            return .stopped(stopped.ending)
        } catch let error as RuntimeError {
            // A signal that killed an `ip` child mid-step shows as that step failing: report the stop instead.
            if let ending = pendingStop(signals) { return .stopped(ending) }
            throw error
        } catch {
            if let ending = pendingStop(signals) { return .stopped(ending) }
            throw .failure("\(error)")
        }
    }

    private func pendingStop(_ signals: SignalWatcher?) -> LiveResult.Ending? {
        if let signal = (try? signals?.next()) ?? nil { return .signal(signal) }
        if stopRequest.consume() { return .stopRequested }
        return nil
    }

    private func checkStop(_ signals: SignalWatcher?) throws {
        if let ending = pendingStop(signals) { throw Stopped(ending: ending) }
    }

    private func performSetUp(signals: SignalWatcher?) throws -> LiveWorkers {
        let topology = options.topology
        if let directory = options.captureDirectory { created.captureLock = try lockCaptureDirectory(directory) }
        let runState: RunState
        do {
            runState = try RunState(directory: options.stateDirectory)
        } catch {
            throw RuntimeError.failure("\(error)")
        }
        created.runState = runState
        if let directory = options.captureDirectory {
            try wrap { () throws(RunStateError) in try runState.recordCaptureDirectory(absolutePath(directory)) }
        }
        var taps = [String: TapDevice]()
        var stackTaps = [String: TapDevice]()
        let hostAddresses = Set(topology.ports.compactMap(\.host).flatMap { ($0.ipv4 + $0.ipv6).map(\.address) })
        for port in topology.ports {
            guard let host = port.host else { continue }
            try checkStop(signals)
            var spec = host
            spec.mtu = host.mtu ?? port.mtu
            let setup = HostSetup(spec: spec, runState: runState)
            created.hosts.append(setup)
            let tap: TapDevice
            do {
                tap = try setup.setUp(virtioNetHeader: port.vnetHdr)
            } catch {
                throw setupError("port \(port.name): host \(host.namespace)", error)
            }
            taps[port.name] = tap
            // A gateway no host of the topology owns stands for the port itself (the reflector's case): the host
            // reaches it at the port's MAC, as ARP or neighbour discovery through the emulator may never answer.
            for route in host.routes where !hostAddresses.contains(route.via) {
                try wrap { () throws(NetworkConfigError) in
                    try Link.addNeighbor(in: host.namespace, address: route.via, mac: port.mac, dev: host.interface)
                }
            }
        }
        for port in topology.ports where port.host == nil {
            try checkStop(signals)
            taps[port.name] = try createRootTap(port.name, mtu: port.mtu, vnet: port.vnetHdr, stack: false)
        }
        for port in topology.ports {
            guard let stack = port.stack else { continue }
            try checkStop(signals)
            stackTaps[port.name] = try createRootTap(stack, mtu: port.mtu, vnet: false, stack: true)
        }
        try checkStop(signals)

        let plan = try Self.outputPlan(options)
        try plan.prepare()
        if let message = plan.staleCapturesMessage { options.report("xdpemu: " + message) }
        let captures = try options.captureDirectory.map { directory throws(RuntimeError) in
            try CaptureSet(
                directory: directory,
                ports: topology.ports.map { ($0.name, $0.capture.ingress, $0.capture.egress) })
        }
        created.captures = captures
        // Each worker transmits through wires of its own (its io_uring, its segmenter); a stack TAP is written by
        // the worker that polls its port.
        let workerCount = options.workerCount
        let cpus = CPUAssignment.cpus(of: topology.ports, cpuCount: workerCount)
        var wires = [[String: TapWire]](repeating: [:], count: workerCount)
        var stackWires = [String: TapWire]()
        for cpu in 0..<workerCount {
            let segmenter = TCPSegmenter()
            let ring = openWriteRing(budget: topology.napi.budget)
            for (name, tap) in taps { wires[cpu][name] = TapWire(tap: tap, segmenter: segmenter, ring: ring) }
            for (index, port) in topology.ports.enumerated() where cpus[index] == cpu {
                if let tap = stackTaps[port.name] {
                    stackWires[port.name] = TapWire(tap: tap, segmenter: segmenter, ring: ring)
                }
            }
        }
        let wiring = Emulation.Wiring(
            wire: { wires[0][$0.name]! }, stackWire: { stackWires[$0.name] },
            workerWire: workerCount > 1 ? { spec, cpu in wires[cpu][spec.name]! } : nil)
        let outputLock = workerCount > 1 ? OutputLock() : nil
        let emulation = try Emulation(
            topology: topology, wiring: wiring, captures: captures, workers: workerCount,
            sizing: FrameSizing(topology: topology, source: .taps), outputLock: outputLock)
        // Always a log: without --events it writes no file and only feeds the control socket's event followers.
        let feed = EventFeed()
        let log = try EventLog(
            path: options.eventsPath, mapNames: emulation.mapNames, semantics: emulation.topology.semantics,
            feed: feed)
        created.log = log
        var replays = [LiveLoop.ReplaySource]()
        for (order, input) in options.replays.enumerated() {
            let (reader, framing) = try Self.openReplay(input, topology: topology)
            let index = emulation.ports.firstIndex { $0.spec.name == input.port }!
            replays.append(
                LiveLoop.ReplaySource(order: order, input: input, reader: reader, port: index, framing: framing))
        }
        let timer = try wrap { () throws(Errno) in try PeriodicTimer(intervalNanos: 1_000_000_000) }
        created.timer = timer
        var loops = [LiveLoop]()
        for cpu in 0..<workerCount {
            let eventLoop = try wrap { () throws(Errno) in try EventLoop(capacity: 64) }
            created.eventLoops.append(eventLoop)
            let stop: EventNotifier
            if cpu == 0 {
                stop = stopRequest
            } else {
                stop = try wrap { () throws(Errno) in try EventNotifier() }
                created.stops.append(stop)
            }
            let ports = emulation.ports.map { port in
                LiveLoop.Port(
                    device: port.device, tap: taps[port.spec.name]!, wire: wires[cpu][port.spec.name]!,
                    stackTap: stackTaps[port.spec.name], stackWire: stackWires[port.spec.name],
                    portTap: port.tap)
            }
            let loop = LiveLoop(
                emulation: emulation, worker: emulation.network.workers[cpu], ports: ports,
                owned: cpus.map { $0 == cpu }, primary: cpu == 0, captures: captures, log: log,
                outputLock: outputLock, options: options, replays: replays.filter { cpus[$0.port] == cpu },
                eventLoop: eventLoop, timer: cpu == 0 ? timer : nil, signals: cpu == 0 ? signals : nil,
                stopRequest: stop)
            try loop.register()
            loops.append(loop)
        }
        let engine = LiveWorkers(loops: loops, stops: created.stops, primaryStop: stopRequest)
        let commands = ControlCommands(
            instance: options.instance, emulation: emulation, workers: workerCount,
            snapshot: { [unowned engine] in engine.snapshot() })
        created.control = try ControlServer(
            path: ControlSocketFiles.path(instance: options.instance, directory: options.stateDirectory),
            handler: commands, feed: feed)
        return engine
    }

    /// Creates the capture directory if needed and locks it (`DirectoryLock`): one run per capture directory.
    private func lockCaptureDirectory(_ directory: String) throws(RuntimeError) -> DirectoryLock {
        do throws(OutputFileError) {
            try makeDirectories(directory)
        } catch {
            throw .failure("cannot create the capture directory \(directory): \(error)")
        }
        do throws(DirectoryLockError) {
            return try DirectoryLock(directory: directory)
        } catch {
            guard case .held(_, let pid) = error else { throw .failure("--capture \(directory): \(error)") }
            let owner = pid.map { "the running xdpemu run \($0)" } ?? "another xdpemu run"
            throw .badInput(
                "--capture \(directory): the directory is in use by \(owner) (lock file \(DirectoryLock.fileName)); "
                    + "give this run a directory of its own")
        }
    }

    /// The ring for batched TAP writes, unless `--no-io-uring`; without io_uring (too old a kernel, or
    /// kernel.io_uring_disabled) says why and returns nil: frames are then written with write(2).
    private func openWriteRing(budget: Int) -> SharedWriteRing? {
        guard options.ioUring else { return nil }
        do {
            // A batch is a bulk queue (16 frames) or a poll's XDP_TX frames (up to the budget).
            let ring = try TapWriteRing(capacity: max(budget, 16))
            created.writeRings.append(ring)
            return SharedWriteRing(ring, report: options.report)
        } catch {
            options.report("xdpemu: io_uring is not available (\(error)); writing frames to TAPs with write(2)")
            return nil
        }
    }

    /// Creates a TAP in this namespace for a port without a host (`stack: false`) or a stack, records it, turns
    /// IPv6 off on it (so it sends nothing of its own) and brings it up.
    private func createRootTap(_ name: String, mtu: Int, vnet: Bool, stack: Bool) throws -> TapDevice {
        let tap: TapDevice
        do {
            tap = try TapDevice(name: name, virtioNetHeader: vnet)
        } catch {
            throw setupError(stack ? "stack TAP \(name)" : "port \(name)", error)
        }
        created.rootTaps.append(tap)
        let runState = created.runState!
        try wrap { () throws(RunStateError) in
            if stack { try runState.recordStackTap(name) } else { try runState.recordTap(name, namespace: nil) }
        }
        try wrap { () throws(NetworkConfigError) in
            if access("/proc/sys/net/ipv6/conf/\(name)", F_OK) == 0 { try Link.disableIPv6(onLocalLink: name) }
            try Link.configure(name, in: nil, mtu: mtu, up: true)
        }
        return tap
    }

    /// A name taken between preflight and setup (two runs started together) is bad input, named with its owner.
    private func setupError(_ what: String, _ error: any Error) -> RuntimeError {
        switch error {
        case HostSetupError.namespaceExists(let namespace):
            return .badInput(
                "\(what): namespace \(namespace) already exists"
                    + Self.owner(namespace: namespace, options: options, justCreated: true))
        case TapError.nameInUse(let name, _):
            return .badInput("\(what): \(error)" + Self.owner(link: name, options: options, justCreated: true))
        default:
            return .failure("\(what): \(error)")
        }
    }

    private func wrap<T, E: Error>(_ body: () throws(E) -> T) throws(RuntimeError) -> T {
        do {
            return try body()
        } catch {
            throw .failure("\(error)")
        }
    }

    // MARK: Finish and teardown

    /// Closes every fd, then deletes the namespaces, then removes the state file (kept if a step failed).
    /// Reports and returns the failed steps. Idempotent.
    private func teardown() -> [String] {
        var errors = [String]()
        created.control?.stop()
        _ = created.captures?.close()
        created.captureLock?.release()
        _ = created.log?.close()
        for loop in created.eventLoops { loop.close() }
        for stop in created.stops { stop.close() }
        created.timer?.close()
        for ring in created.writeRings { ring.close() }
        for host in created.hosts { host.tap?.close() }
        for tap in created.rootTaps { tap.close() }
        for host in created.hosts.reversed() {
            errors += host.teardown().map { "host \(host.spec.namespace): \($0)" }
        }
        if let runState = created.runState {
            for tap in created.rootTaps {
                if if_nametoindex(tap.name) != 0 {
                    errors.append("TAP \(tap.name) still exists after its fd was closed")
                    continue
                }
                do { try runState.forgetTap(tap.name) } catch { errors.append("\(error)") }
            }
            if errors.isEmpty { runState.finish() }
        }
        created = Created()
        for message in errors { options.report("xdpemu: teardown: \(message)") }
        return errors
    }
}

/// `path` made absolute against the current directory.
func absolutePath(_ path: String) -> String {
    path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
}

extension LiveRun {
    /// What the user can do once the run is up, derived from the topology: ping between the first two hosts with
    /// IPv4 (or, with a single host, its gateway), the root-namespace and stack TAPs, where the captures are.
    public static func nextSteps(topology: Topology, captureDirectory: String?) -> [String] {
        var lines = [
            "xdpemu: \(topology.name) is live: "
                + topology.ports.map { port in
                    port.host.map { "\(port.name) (host \($0.namespace))" } ?? "\(port.name) (TAP here)"
                }.joined(separator: ", ")
        ]
        let hosts = topology.ports.compactMap { port -> (port: PortSpec, host: HostSpec)? in
            guard let host = port.host, !host.ipv4.isEmpty else { return nil }
            return (port, host)
        }
        var target: PortSpec?
        if hosts.count >= 2 {
            lines.append("  ip netns exec \(hosts[0].host.namespace) ping \(hosts[1].host.ipv4[0].address)")
            target = hosts[1].port
        } else if let only = hosts.first {
            if let gateway = only.host.routes.first?.via {
                lines.append("  ip netns exec \(only.host.namespace) ping \(gateway)")
            } else {
                lines.append("  ip netns exec \(only.host.namespace) ip address show")
            }
            target = only.port
        }
        for port in topology.ports where port.host == nil {
            lines.append(
                "  port \(port.name) is TAP \(port.name) in this namespace: tcpdump -ni \(port.name), "
                    + "tcpreplay -i \(port.name) TRACE.pcap")
        }
        for port in topology.ports {
            guard let stack = port.stack else { continue }
            lines.append("  XDP_PASS frames of \(port.name) come out of TAP \(stack): tcpdump -ni \(stack)")
        }
        if let directory = captureDirectory {
            let shown =
                [target].compactMap { $0 }.filter(\.capture.egress).first
                ?? topology.ports.first { $0.capture.egress }
            lines.append("Captures in \(directory)/ (flushed every second):")
            if let shown {
                lines.append("  tcpdump -nn --nano -r \(directory)/\(shown.name).egress.pcap")
            } else {
                lines.append("  tcpdump -nn --nano -r \(directory)/drops.pcap")
            }
        }
        lines.append("Ctrl-C to stop.")
        return lines
    }
}
