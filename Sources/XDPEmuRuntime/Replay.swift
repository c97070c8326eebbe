import Foundation
import XDPEmuCore
import XDPEmuOS
import XDPEmuPcap
import XDPEmuTopology

// Offline replay in virtual time.
//
// The model (README, "How replay keeps time"):
// - Every trace frame arrives at its port at a virtual time: its recorded timestamp (`recorded`), or, with
//   `topspeed`, as soon as the port's RX ring has room, the clock advancing only by the frames' processing cost.
//   An arriving frame is captured at ingress and put on the port's RX ring (ring size from the topology); a frame
//   that finds the ring full is dropped (`rx_ring_full`), as a NIC without free RX descriptors drops it.
// - A frame arriving at an idle ring schedules a NAPI poll of its port `poll_delay_ns` later. There is one CPU:
//   polls run one at a time, in the order they were scheduled, each no earlier than the previous one ended.
// - A poll takes up to `budget` frames present in the ring when it starts, runs the program on each, costing
//   `frame_cost_ns` of virtual time per frame, and flushes at its end: transmitted frames are stamped with the
//   virtual time at which they are sent (the flush time, or the time a full bulk queue was sent).
//   A port whose ring still holds frames is polled again (appended to the poll queue, so ports take turns).
// - Scheduled map operations run at their time, before frames arriving at the same time.
// Nothing reads a clock: the same inputs give byte-identical outputs. The scheduling above is the core's
// `NAPIScheduler` (the same as live mode's); `ReplayEngine` reads the traces and drives it in virtual time.

/// What to replay and where to write.
public struct ReplayOptions {
    public enum Timing: String, CaseIterable, Sendable {
        case recorded
        case topspeed
    }

    /// A trace fed into a port: `PORT=TRACE[,dst=MAC][,src=MAC]` on the command line (`replay --in`, `run
    /// --replay`). The MACs are those `EthernetFraming` gives the frames of a trace that is not Ethernet.
    public struct Input: Equatable, Sendable {
        public var port: String
        public var path: String
        /// The destination MAC of converted frames (default: see `EthernetFraming`).
        public var destination: MACAddress?
        /// The source MAC of converted frames (default: see `EthernetFraming`).
        public var source: MACAddress?

        public init(port: String, path: String, destination: MACAddress? = nil, source: MACAddress? = nil) {
            self.port = port
            self.path = path
            self.destination = destination
            self.source = source
        }

        /// Parses `PORT=TRACE[,dst=MAC][,src=MAC]`. The options are the trailing comma-separated fields that
        /// start with `dst=` or `src=`; the trace's path is everything before them (commas included). Throws a
        /// message for the command line when the argument has no `=`, no path, or a malformed MAC.
        public init(argument: String) throws(RuntimeError) {
            let parts = argument.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw .badInput("\(argument): expected PORT=TRACE[,dst=MAC][,src=MAC]")
            }
            var fields = parts[1].split(separator: ",", omittingEmptySubsequences: false)
            var destination: MACAddress?
            var source: MACAddress?
            while let last = fields.last, fields.count > 1, last.hasPrefix("dst=") || last.hasPrefix("src=") {
                let text = String(last.dropFirst(4))
                guard let mac = MACAddress(text), !mac.isMulticast else {
                    throw .badInput(
                        "\(argument): \(last.prefix(3)): \"\(text)\" is not a unicast MAC (like 02:00:00:00:00:01)")
                }
                if last.hasPrefix("dst=") {
                    if destination == nil { destination = mac }
                } else if source == nil {
                    source = mac
                }
                fields.removeLast()
            }
            let path = fields.joined(separator: ",")
            guard !path.isEmpty else { throw .badInput("\(argument): expected PORT=TRACE[,dst=MAC][,src=MAC]") }
            self.init(port: String(parts[0]), path: path, destination: destination, source: source)
        }

        /// Whether the argument set a MAC.
        var setsMACs: Bool { destination != nil || source != nil }
    }

    public var topology: Topology
    public var inputs: [Input]
    public var outputDirectory: String
    public var timing: Timing = .recorded
    public var eventsPath: String?
    public var statsPath: String?
    public var mapEvents: MapEventSchedule?
    /// Where to write every map's final contents (`--maps-out`).
    public var mapsOutPath: String?
    /// Called about every 64k frames with the frames read so far and the fraction of input bytes consumed.
    public var progress: ((UInt64, Double) -> Void)?
    /// Polled now and then: true stops reading (SIGINT); what was read is still processed and written.
    public var shouldStop: () -> Bool = { false }
    /// Receives notices before the run starts (stderr by default): which old captures were removed.
    public var report: (String) -> Void = { FileHandle.standardError.write(Data(("xdpemu: " + $0 + "\n").utf8)) }
    /// Recorded timing one arrival, poll or map operation per step, never a stretch of polls at once
    /// (`ReplayEngine.stepRecordedStretch`): the reference the tests hold the stretches to.
    var oneEventPerStep = false

    public init(topology: Topology, inputs: [Input], outputDirectory: String) {
        self.topology = topology
        self.inputs = inputs
        self.outputDirectory = outputDirectory
    }
}

/// The outcome of a replay: statistics, and the problems met on the way (a trace that goes bad part way stops only
/// itself; an output that cannot be written is cut back to its last whole record).
public struct ReplayResult {
    public var statistics: RunStatistics
    /// Messages naming file, record and offset; non-empty means exit code 2.
    public var inputErrors: [String]
    /// Outputs that could not be written in full, each named with what is missing; non-empty means exit code 1.
    public var outputErrors: [String] = []
    public var interrupted: Bool
}

public enum Replay {
    /// Runs a replay to the end of every input (or until `shouldStop`), then closes every output.
    ///
    /// Every input is opened and checked (each trace's header read) and every output checked (`OutputPlan`) before
    /// any output is created, truncated or removed: a trace that cannot be opened throws `.badInput`, an output
    /// that cannot be written `.failure`, and the output directory is left as it was.
    public static func run(_ options: ReplayOptions) throws(RuntimeError) -> ReplayResult {
        let topology = options.topology
        for input in options.inputs where topology.port(named: input.port) == nil {
            throw .badInput(
                "--in \(quotedForMessage(input.port)): no port of that name in \(topology.source) "
                    + "(ports: \(topology.ports.map(\.name).joined(separator: ", ")))")
        }
        var inputErrors = [String]()
        var readers = [(input: ReplayOptions.Input, reader: PcapReader, framing: EthernetFraming?)]()
        for input in options.inputs {
            let reader: PcapReader
            do {
                reader = try PcapReader(path: input.path)
            } catch {
                inputErrors.append("\(error)")
                continue
            }
            let framing = EthernetFraming(
                linkType: reader.linkType, input: input, port: topology.port(named: input.port)!)
            if framing == nil && input.setsMACs {
                inputErrors.append(
                    "--in \(input.port)=\(input.path): the trace is Ethernet and its frames keep their MACs "
                        + "(dst= and src= are for traces of other link types)")
                continue
            }
            readers.append((input, reader, framing))
        }
        if !inputErrors.isEmpty {
            throw .badInput(inputErrors.joined(separator: "\nxdpemu: ") + "\nxdpemu: nothing was created or changed")
        }
        var inputs = [OutputPlan.Input(what: "the topology", path: topology.source)]
        inputs += options.inputs.map { OutputPlan.Input(what: "--in \($0.port)", path: $0.path) }
        if let path = options.mapEvents?.path { inputs.append(OutputPlan.Input(what: "--map-events", path: path)) }
        let plan = try OutputPlan(
            topology: topology, captureDirectory: options.outputDirectory, eventsPath: options.eventsPath,
            statsPath: options.statsPath, inputs: inputs)
        try plan.prepare()
        if let message = plan.staleCapturesMessage { options.report(message) }
        // A converted frame is longer than its record by the Ethernet header less the header it loses.
        let largestFrame = readers.map { $0.reader.largestCapturedLength + max(0, $0.framing?.growth ?? 0) }.max() ?? 0
        let captures = try CaptureSet(
            directory: options.outputDirectory,
            ports: topology.ports.map { ($0.name, $0.capture.ingress, $0.capture.egress) })
        let emulation: Emulation
        do {
            let sizing = FrameSizing(
                topology: topology,
                source: .traces(largestCapturedLength: largestFrame, count: readers.count))
            emulation = try Emulation(
                topology: topology, captures: captures, workers: topology.napi.cpus, sizing: sizing)
        } catch {
            _ = captures.close()
            throw error
        }
        let log: EventLog?
        do {
            log = try options.eventsPath.map { path throws(RuntimeError) in
                try EventLog(
                    path: path, mapNames: emulation.mapNames, semantics: emulation.topology.semantics)
            }
        } catch {
            _ = captures.close()
            throw error
        }
        let outcome =
            readers.contains { $0.framing != nil }
            ? drive(ConvertedTraces.self, emulation: emulation, log: log, options: options, readers: readers)
            : drive(EthernetTraces.self, emulation: emulation, log: log, options: options, readers: readers)
        inputErrors += outcome.inputErrors
        var statistics = RunStatistics(
            emulation: emulation, ingress: outcome.ingress, polls: outcome.polls,
            framesIn: outcome.framesIn, errors: inputErrors)
        statistics.inputs = outcome.inputs
        var outputErrors = closeOutputs(
            captures: captures, log: log, statistics: &statistics, statsPath: options.statsPath)
        if let path = options.mapsOutPath, let error = MapsOut.write(emulation, to: path) { outputErrors.append(error) }
        return ReplayResult(
            statistics: statistics, inputErrors: inputErrors, outputErrors: outputErrors,
            interrupted: outcome.interrupted)
    }

    /// What a replay engine leaves for the statistics.
    private struct Outcome {
        var inputErrors: [String]
        var ingress: [String: UInt64]
        var polls: UInt64
        var framesIn: UInt64
        var interrupted: Bool
        var inputs: [InputFraming]
    }

    /// Runs the engine specialised for `framing` to the end and quiesces the network.
    private static func drive<Framing: ReplayFraming>(
        _ framing: Framing.Type, emulation: Emulation, log: EventLog?, options: ReplayOptions,
        readers: [(input: ReplayOptions.Input, reader: PcapReader, framing: EthernetFraming?)]
    ) -> Outcome {
        var engine = ReplayEngine<Framing>(emulation: emulation, log: log, options: options, readers: readers)
        engine.run()
        emulation.network.quiesceAll()
        engine.drainEvents()
        return Outcome(
            inputErrors: engine.inputErrors, ingress: engine.ingressCountsByName, polls: engine.polls,
            framesIn: engine.sequence, interrupted: engine.interrupted, inputs: engine.inputFramings)
    }
}

/// Moves the events `worker` recorded into `log`, or discards them when there is no log.
func drainEvents(of worker: Worker, into log: EventLog?) {
    guard let log else {
        _ = worker.events.takeAll()
        return
    }
    worker.events.drain { log.append($0) }
}

/// The end of a run (replay or live): closes the captures and the event log, records in `statistics` every one
/// a failed write left incomplete, and writes the statistics file. Returns a message for every output that is
/// not complete (each names the file and what is missing); empty when everything was written.
func closeOutputs(
    captures: CaptureSet?, log: EventLog?, statistics: inout RunStatistics, statsPath: String?
) -> [String] {
    var incomplete = captures?.close() ?? []
    if let failure = log?.close() { incomplete.append(failure) }
    statistics.incompleteOutputs = incomplete
    var messages = incomplete.map(\.description)
    if let statsPath {
        do {
            try writeOutputFile(statsPath, Array(statistics.json.utf8))
        } catch {
            // A statistics file cut short is not JSON: remove what was written of it (never what a refusal names).
            if case .failed(step: "write", _) = error.reason { try? removeOutputFile(statsPath) }
            messages.append("\(error)")
        }
    }
    return messages
}
