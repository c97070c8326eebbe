import Foundation
import XDPEmuCore
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
//   A port whose ring still holds frames is polled again (appended to the poll list, so ports take turns).
// - Scheduled map operations run at their time, before frames arriving at the same time.
// Nothing reads a clock: the same inputs give byte-identical outputs.

/// What to replay and where to write.
public struct ReplayOptions {
    public enum Timing: String, CaseIterable, Sendable {
        case recorded
        case topspeed
    }

    public struct Input: Equatable, Sendable {
        public var port: String
        public var path: String
        public init(port: String, path: String) {
            self.port = port
            self.path = path
        }
    }

    public var topology: Topology
    public var inputs: [Input]
    public var outputDirectory: String
    public var timing: Timing = .recorded
    public var eventsPath: String?
    public var statsPath: String?
    public var mapEvents: MapEventSchedule?
    /// Called about every 64k frames with the frames read so far and the fraction of input bytes consumed.
    public var progress: ((UInt64, Double) -> Void)?
    /// Polled now and then: true stops reading (SIGINT); what was read is still processed and written.
    public var shouldStop: () -> Bool = { false }

    public init(topology: Topology, inputs: [Input], outputDirectory: String) {
        self.topology = topology
        self.inputs = inputs
        self.outputDirectory = outputDirectory
    }
}

/// The outcome of a replay: statistics, and the input problems met on the way (a bad trace stops only itself).
public struct ReplayResult {
    public var statistics: RunStatistics
    /// Messages naming file, record and offset; non-empty means exit code 2.
    public var inputErrors: [String]
    public var interrupted: Bool
}

public enum Replay {
    /// Runs a replay to the end of every input (or until `shouldStop`), then closes every output.
    public static func run(_ options: ReplayOptions) throws(RuntimeError) -> ReplayResult {
        let topology = options.topology
        for input in options.inputs where topology.port(named: input.port) == nil {
            throw .badInput("--in \(input.port)=\(input.path): no port named \(input.port) in \(topology.source) "
                + "(ports: \(topology.ports.map(\.name).joined(separator: ", ")))")
        }
        var inputErrors = [String]()
        var readers = [(ReplayOptions.Input, PcapReader)]()
        for input in options.inputs {
            do {
                readers.append((input, try PcapReader(path: input.path)))
            } catch {
                inputErrors.append("\(error)")
            }
        }
        let largestSnap = readers.map { Int($0.1.snapLength == 0 ? 262_144 : min($0.1.snapLength, 262_144)) }.max() ?? 0
        let bufferSize = KernelConstants.xdpPacketHeadroom + max(largestSnap, 2048) + KernelConstants.sharedInfoReserve
        let captures = try CaptureSet(directory: options.outputDirectory,
                                      ports: topology.ports.map { ($0.name, $0.capture.ingress, $0.capture.egress) })
        let emulation: Emulation
        do {
            let napi = topology.napi
            let wanted = topology.ports.count * napi.ringSize + readers.count + 4 * napi.budget + 1024
            emulation = try Emulation(topology: topology, captures: captures,
                                      poolCapacity: max(256, min(wanted, (1 << 32) / bufferSize)), bufferSize: bufferSize)
        } catch {
            try? captures.close()
            throw error
        }
        let log = try options.eventsPath.map { path throws(RuntimeError) in
            try EventLog(path: path, mapNames: emulation.mapNames)
        }
        var engine = ReplayEngine(emulation: emulation, captures: captures, log: log, options: options,
                                  readers: readers)
        engine.run()
        inputErrors += engine.inputErrors
        emulation.network.quiesceAll()
        engine.drainEvents()
        let statistics = RunStatistics(emulation: emulation, ingress: engine.ingressCountsByName, polls: engine.polls,
                                       framesIn: engine.sequence, errors: inputErrors)
        if let closeError = closeOutputs(captures: captures, log: log, statistics: statistics,
                                         statsPath: options.statsPath) {
            throw closeError
        }
        return ReplayResult(statistics: statistics, inputErrors: inputErrors, interrupted: engine.interrupted)
    }
}

/// The virtual-time loop of one replay (one worker).
struct ReplayEngine {
    /// One input trace. A class, so the per-frame paths touch it through one reference instead of copying it.
    final class Source {
        let input: ReplayOptions.Input
        let reader: PcapReader
        let device: NetDevice
        let portIndex: Int
        let ingress: PcapWriter?
        let fileSize: Int64
        var staged: FrameID?
        var stagedTime: Nanos = 0

        init(input: ReplayOptions.Input, reader: PcapReader, device: NetDevice, portIndex: Int, ingress: PcapWriter?,
             fileSize: Int64) {
            self.input = input
            self.reader = reader
            self.device = device
            self.portIndex = portIndex
            self.ingress = ingress
            self.fileSize = fileSize
        }
    }

    let emulation: Emulation
    let captures: CaptureSet
    let log: EventLog?
    let options: ReplayOptions
    let worker: Worker
    let pool: FramePool
    let budget: Int
    let pollDelay: Nanos
    var sources: [Source] = []
    /// Ports waiting for a poll, in scheduling order, with the time they become ready.
    var pollList: [(port: Int, ready: Nanos)] = []
    var pollHead = 0
    var scheduled: [Bool]
    var cpuFree: Nanos = 0
    var mapEventIndex = 0
    var startTime: Nanos?
    /// Time of the latest arrival (recorded timing never goes back).
    var lastArrival: Nanos = 0
    var sequence: UInt64 = 0
    var polls: UInt64 = 0
    var ingressByPort: [UInt64]
    var inputErrors: [String] = []
    var interrupted = false
    var totalBytes: Int64 = 0

    init(emulation: Emulation, captures: CaptureSet, log: EventLog?, options: ReplayOptions,
         readers: [(ReplayOptions.Input, PcapReader)]) {
        self.emulation = emulation
        self.captures = captures
        self.log = log
        self.options = options
        worker = emulation.network.workers[0]
        pool = worker.pool
        budget = emulation.topology.napi.budget
        pollDelay = emulation.topology.napi.pollDelayNanos
        worker.frameCost = emulation.topology.napi.frameCostNanos
        worker.events.isEnabled = log != nil
        scheduled = Array(repeating: false, count: emulation.ports.count)
        ingressByPort = Array(repeating: 0, count: emulation.ports.count)
        for (input, reader) in readers {
            let index = emulation.ports.firstIndex { $0.spec.name == input.port }!
            let size = ((try? FileManager.default.attributesOfItem(atPath: input.path))?[.size] as? Int64) ?? 0
            totalBytes += size
            sources.append(Source(input: input, reader: reader, device: emulation.ports[index].device,
                                  portIndex: index, ingress: captures.ingress[input.port], fileSize: size))
        }
    }

    mutating func run() {
        for i in sources.indices { stage(i) }
        startTime = sources.compactMap { $0.staged == nil ? nil : $0.stagedTime }.min() ?? 0
        cpuFree = startTime!
        var iterations = 0
        while true {
            iterations &+= 1
            if iterations & 0xfff == 0 && !interrupted && options.shouldStop() {
                interrupted = true
                stopReading()
            }
            let step: Bool
            switch options.timing {
            case .recorded: step = stepRecorded()
            case .topspeed: step = stepTopspeed()
            }
            if worker.events.count > 0 { drainEvents() }
            if !step { break }
        }
        applyMapEvents(upTo: .max)
    }

    // MARK: Steps

    /// One event in recorded timing: a map operation, an arrival or a poll, whichever comes first.
    mutating func stepRecorded() -> Bool {
        let arrival = nextSource()
        // A trace whose timestamps go backwards cannot make a frame arrive in the past: it arrives with the
        // frame before it.
        let arrivalTime = arrival.map { max(sources[$0].stagedTime, lastArrival) }
        let pollTime = pollHead < pollList.count ? max(pollList[pollHead].ready, cpuFree) : nil
        let mapTime = nextMapEventTime()
        guard arrivalTime != nil || pollTime != nil else { return false }
        let next = min(arrivalTime ?? .max, pollTime ?? .max)
        if let mapTime, mapTime <= next {
            applyMapEvents(upTo: mapTime)
            return true
        }
        if let arrival, let arrivalTime, arrivalTime <= (pollTime ?? .max) {
            deliver(arrival, at: arrivalTime)
        } else {
            pollNext(at: pollTime!)
        }
        return true
    }

    /// One round in topspeed timing: fill the rings as far as they take frames, then run the next poll.
    mutating func stepTopspeed() -> Bool {
        applyMapEvents(upTo: cpuFree)
        while let next = nextSource() {
            guard !sources[next].device.rxRing.isFull else { break }
            deliver(next, at: cpuFree)
        }
        guard pollHead < pollList.count else { return nextSource() != nil }
        pollNext(at: max(pollList[pollHead].ready, cpuFree))
        return true
    }

    /// The source whose staged frame comes first (recorded time, then command-line order).
    func nextSource() -> Int? {
        var best: Int?
        for i in sources.indices where sources[i].staged != nil {
            if best == nil || sources[i].stagedTime < sources[best!].stagedTime { best = i }
        }
        return best
    }

    /// Reads the next record of source `i` into a frame (its time is the recorded timestamp).
    mutating func stage(_ i: Int) {
        let source = sources[i]
        do {
            guard let record = try source.reader.next() else { return }
            guard let frame = pool.take(copying: UnsafeRawBufferPointer(rebasing: record.bytes[...]),
                                        headroom: source.device.rxHeadroom) else {
                inputErrors.append("\(source.input.path): record \(record.index + 1): no frame buffer left "
                    + "(pool of \(pool.capacity) exhausted)")
                return
            }
            let info = pool.info(frame)
            info.pointee.ingress = source.device.ifindex
            info.pointee.arrival = record.timestampNanos
            info.pointee.missingBytes = UInt32(clamping: max(0, record.originalLength - record.capturedLength))
            sources[i].staged = frame
            sources[i].stagedTime = record.timestampNanos
            if source.reader.recordsRead & 0xffff == 0, let progress = options.progress {
                progress(sequence, fractionRead(lastOffset: record.fileOffset, of: i))
            }
        } catch {
            inputErrors.append("\(error)")
        }
    }

    func fractionRead(lastOffset: Int64, of i: Int) -> Double {
        guard totalBytes > 0 else { return 0 }
        return min(1, Double(lastOffset) / Double(max(sources[i].fileSize, 1)))
    }

    /// The staged frame of source `i` arrives at its port at `time`.
    mutating func deliver(_ i: Int, at time: Nanos) {
        guard let frame = sources[i].staged else { return }
        sources[i].staged = nil
        let port = sources[i].portIndex
        let device = sources[i].device
        lastArrival = time
        sequence += 1
        let info = pool.info(frame)
        info.pointee.sequence = sequence
        info.pointee.arrival = time
        worker.now = time
        ingressByPort[port] += 1
        if let writer = sources[i].ingress {
            writer.write(timestampNanos: time, bytes: UnsafeRawBufferPointer(pool.packet(frame)),
                         originalLength: Int(info.pointee.length + info.pointee.missingBytes))
        }
        if device.rxRing.push(frame) {
            if !scheduled[port] {
                scheduled[port] = true
                pollList.append((port, time + pollDelay))
            }
        } else {
            worker.drop(frame, .rxRingFull, at: device)
        }
        stage(i)
    }

    /// Runs the poll at the head of the poll list at `time`.
    mutating func pollNext(at time: Nanos) {
        let port = pollList[pollHead].port
        pollHead += 1
        if pollHead > 4096 && pollHead * 2 > pollList.count {
            pollList.removeFirst(pollHead)
            pollHead = 0
        }
        let device = emulation.ports[port].device
        worker.poll(device, budget: budget, now: time)
        polls += 1
        cpuFree = worker.now
        if device.rxRing.isEmpty {
            scheduled[port] = false
        } else {
            pollList.append((port, cpuFree))
        }
    }

    func nextMapEventTime() -> Nanos? {
        guard let schedule = options.mapEvents, mapEventIndex < schedule.events.count else { return nil }
        return (startTime ?? 0) &+ schedule.events[mapEventIndex].offset
    }

    /// Applies every scheduled map operation due at or before `time`.
    mutating func applyMapEvents(upTo time: Nanos) {
        guard let schedule = options.mapEvents else { return }
        while mapEventIndex < schedule.events.count {
            let event = schedule.events[mapEventIndex]
            let at = (startTime ?? 0) &+ event.offset
            guard at <= time else { return }
            mapEventIndex += 1
            guard let map = emulation.maps[event.map] else { continue }
            let result = event.apply(to: map)
            log?.appendMapOperation(time: at, operation: event.operationName, map: event.map, mapID: map.id,
                                    key: event.key, ifindex: event.ifindex, result: result)
        }
    }

    /// Stops reading every input (SIGINT): staged frames are freed unseen.
    mutating func stopReading() {
        for i in sources.indices {
            if let frame = sources[i].staged { pool.give(frame) }
            sources[i].staged = nil
        }
    }

    func drainEvents() { XDPEmuRuntime.drainEvents(of: worker, into: log) }
}

/// Moves the events `worker` recorded into `log`, or discards them when there is no log.
func drainEvents(of worker: Worker, into log: EventLog?) {
    guard let log else {
        _ = worker.events.takeAll()
        return
    }
    worker.events.drain { log.append($0) }
}

/// The end of a run (replay or live): closes the captures and the event log and writes the statistics file.
/// Returns the first error, after trying every step.
func closeOutputs(captures: CaptureSet?, log: EventLog?, statistics: RunStatistics, statsPath: String?)
    -> RuntimeError?
{
    var failure: RuntimeError?
    do { try captures?.close() } catch { failure = error }
    do { try log?.close() } catch { failure = failure ?? error }
    if let statsPath {
        do {
            try Data(statistics.json.utf8).write(to: URL(fileURLWithPath: statsPath))
        } catch {
            failure = failure ?? .failure("\(statsPath): cannot write: \(error.localizedDescription)")
        }
    }
    return failure
}

extension ReplayEngine {
    var ingressCountsByName: [String: UInt64] {
        var counts = [String: UInt64]()
        for (i, port) in emulation.ports.enumerated() { counts[port.spec.name] = ingressByPort[i] }
        return counts
    }
}
