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
//   A port whose ring still holds frames is polled again (appended to the poll queue, so ports take turns).
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
    /// Recorded timing one arrival, poll or map operation per step, never a stretch of polls at once
    /// (`ReplayEngine.stepRecordedStretch`): the reference the tests hold the stretches to.
    var oneEventPerStep = false

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
        let largestSnap = readers.map { $0.1.largestCapturedLength }.max() ?? 0
        let captures = try CaptureSet(directory: options.outputDirectory,
                                      ports: topology.ports.map { ($0.name, $0.capture.ingress, $0.capture.egress) })
        let emulation: Emulation
        do {
            let sizing = FrameSizing(topology: topology,
                                     source: .traces(largestCapturedLength: largestSnap, count: readers.count))
            emulation = try Emulation(topology: topology, captures: captures, sizing: sizing)
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

/// The ports waiting for a poll, in scheduling order, each with the time it becomes ready: a FIFO in which a port
/// stands at most once (from its first arrival at an idle ring until a poll leaves its ring empty), so its
/// capacity is the number of ports. Plain memory rather than arrays: with recorded timing every frame of a trace
/// is usually a poll of its own, and an array in the engine paid a copy-on-write check and a retain and release
/// per append.
final class PollQueue {
    private let ports: UnsafeMutablePointer<Int>
    private let readyTimes: UnsafeMutablePointer<Nanos>
    private let queued: UnsafeMutablePointer<Bool>
    /// The ports' devices (by port index), unretained: the emulation owns them and outlives the queue.
    private let devices: UnsafeMutablePointer<Unmanaged<NetDevice>>
    private let capacity: Int
    /// The times and sizes (frames) of a stretch's polls (`ReplayEngine.stepRecordedStretch`).
    let stretchTimes: UnsafeMutablePointer<Nanos>
    let stretchSizes: UnsafeMutablePointer<Int>
    /// Polls per stretch at most.
    static let stretchCapacity = 64
    @exclusivity(unchecked) private var head = 0
    @exclusivity(unchecked) private(set) var count = 0

    init(devices: [NetDevice]) {
        capacity = max(devices.count, 1)
        ports = .allocate(capacity: capacity)
        readyTimes = .allocate(capacity: capacity)
        queued = .allocate(capacity: capacity)
        queued.initialize(repeating: false, count: capacity)
        stretchTimes = .allocate(capacity: Self.stretchCapacity)
        stretchSizes = .allocate(capacity: Self.stretchCapacity)
        self.devices = .allocate(capacity: capacity)
        for (i, device) in devices.enumerated() { (self.devices + i).initialize(to: .passUnretained(device)) }
    }

    deinit {
        ports.deallocate()
        readyTimes.deallocate()
        queued.deallocate()
        devices.deallocate()
        stretchTimes.deallocate()
        stretchSizes.deallocate()
    }

    /// When the next poll can run: when the first port in the queue became ready, or `cpuFree` if later; nil
    /// when no port waits.
    func nextPollTime(notBefore cpuFree: Nanos) -> Nanos? {
        count > 0 ? max(readyTimes[head], cpuFree) : nil
    }

    /// Queues `port`, ready at `time`, unless it is queued already.
    func schedule(_ port: Int, ready time: Nanos) {
        guard !queued[port] else { return }
        queued[port] = true
        append(port, ready: time)
    }

    /// Takes the first port off the queue; it counts as queued until `requeue` or `finish` says what follows.
    func removeFirst() -> (port: Int, device: Unmanaged<NetDevice>) {
        let port = ports[head]
        head = head + 1 == capacity ? 0 : head + 1
        count -= 1
        return (port, devices[port])
    }

    /// Puts `port`, just polled, back at the end of the queue, ready at `time`.
    func requeue(_ port: Int, ready time: Nanos) { append(port, ready: time) }

    /// `port`, just polled, left its ring empty: the next arrival queues it again.
    func finish(_ port: Int) { queued[port] = false }

    private func append(_ port: Int, ready time: Nanos) {
        precondition(count < capacity, "a port queued twice for a poll")
        var tail = head + count
        if tail >= capacity { tail -= capacity }
        ports[tail] = port
        readyTimes[tail] = time
        count += 1
    }
}

/// The virtual-time loop of one replay (one worker).
///
/// The per-frame path (`stage`, `deliver`, the ring-filling loop of `stepTopspeed`) touches only values: the
/// engine's own fields (a struct, mutated in place) and the sources' lanes, which sit behind a pointer. Reading a
/// class's stored `var` costs a run-time exclusivity check, and a class reference loaded from memory that a call
/// might change (an array, `self` in a mutating method) is retained and released around its use; per frame,
/// either costs more than the work it guards. So the lanes hold `Unmanaged` references used through
/// `_withUnsafeGuaranteedRef`, and the pool is loaded once per round of deliveries and passed down.
struct ReplayEngine {
    /// One input trace: what it reads, where its frames arrive, and its staged frame. Lanes are laid out in a
    /// `Lanes` buffer; the references are unretained because `Lanes` keeps the objects alive.
    struct Lane {
        let reader: Unmanaged<PcapReader>
        let ring: Unmanaged<FrameRing>
        let ingress: Unmanaged<PcapWriter>?
        let ifindex: IfIndex
        let headroom: Int
        let portIndex: Int
        /// The next frame of the trace, read and copied into a frame, waiting for its arrival time.
        var staged: FrameID?
        var stagedTime: Nanos = 0
        /// Records read and frames delivered to the port so far.
        var recordsRead = 0
        var delivered: UInt64 = 0
    }

    /// Owns the lanes and the objects they point at.
    final class Lanes {
        let inputs: [ReplayOptions.Input]
        let fileSizes: [Int64]
        let owners: [(PcapReader, FrameRing, PcapWriter?)]
        let base: UnsafeMutablePointer<Lane>
        let count: Int

        init(_ sources: [(input: ReplayOptions.Input, reader: PcapReader, device: NetDevice, portIndex: Int,
                          ingress: PcapWriter?, fileSize: Int64)]) {
            inputs = sources.map(\.input)
            fileSizes = sources.map(\.fileSize)
            owners = sources.map { ($0.reader, $0.device.rxRing, $0.ingress) }
            count = sources.count
            base = .allocate(capacity: max(count, 1))
            for (i, source) in sources.enumerated() {
                (base + i).initialize(to: Lane(reader: .passUnretained(source.reader),
                                               ring: .passUnretained(source.device.rxRing),
                                               ingress: source.ingress.map { .passUnretained($0) },
                                               ifindex: source.device.ifindex,
                                               headroom: source.device.rxHeadroom, portIndex: source.portIndex))
            }
        }

        deinit {
            base.deinitialize(count: count)
            base.deallocate()
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
    let sources: Lanes
    /// `sources.base`, copied here so the per-frame path reaches the lanes without going through the object.
    let lanes: UnsafeMutablePointer<Lane>
    let laneCount: Int
    /// Ports waiting for a poll: `pollQueueOwner` keeps the queue alive, the per-frame path uses it unretained
    /// (as the lanes, above).
    let pollQueueOwner: PollQueue
    let pollQueue: Unmanaged<PollQueue>
    var cpuFree: Nanos = 0
    /// The scheduled map operations (`mapEvents.nextTime`: when the next one is due).
    var mapEvents: MapEventPlayer
    var startTime: Nanos?
    /// Time of the latest arrival (recorded timing never goes back).
    var lastArrival: Nanos = 0
    var sequence: UInt64 = 0
    var polls: UInt64 = 0
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
        mapEvents = MapEventPlayer(options.mapEvents, maps: emulation.maps, log: log)
        pollQueueOwner = PollQueue(devices: emulation.ports.map(\.device))
        pollQueue = .passUnretained(pollQueueOwner)
        var sources = [(input: ReplayOptions.Input, reader: PcapReader, device: NetDevice, portIndex: Int,
                        ingress: PcapWriter?, fileSize: Int64)]()
        for (input, reader) in readers {
            let index = emulation.ports.firstIndex { $0.spec.name == input.port }!
            let size = ((try? FileManager.default.attributesOfItem(atPath: input.path))?[.size] as? Int64) ?? 0
            totalBytes += size
            sources.append((input, reader, emulation.ports[index].device, index, captures.ingress[input.port], size))
        }
        self.sources = Lanes(sources)
        lanes = self.sources.base
        laneCount = self.sources.count
    }

    mutating func run() {
        for i in 0..<laneCount { stage(i, pool: pool) }
        startTime = (0..<laneCount).compactMap { lanes[$0].staged == nil ? nil : lanes[$0].stagedTime }.min() ?? 0
        cpuFree = startTime!
        mapEvents.start(at: startTime!)
        // Without an event log: stretches of polls that leave no frame behind (`stepRecordedStretch`).
        let stretches = !worker.events.isEnabled && !options.oneEventPerStep
        var iterations = 0
        while true {
            iterations &+= 1
            if iterations & 0xfff == 0 && !interrupted && options.shouldStop() {
                interrupted = true
                stopReading()
            }
            let step: Bool
            switch options.timing {
            case .recorded: step = stretches ? stepRecordedStretch() : stepRecorded()
            case .topspeed: step = stepTopspeed()
            }
            if worker.events.count > 0 { drainEvents() }
            if !step { break }
        }
        mapEvents.apply(dueBy: .max)
        withExtendedLifetime(sources) {}
    }

    // MARK: Steps

    /// One event in recorded timing: a map operation, an arrival or a poll, whichever comes first.
    mutating func stepRecorded() -> Bool {
        let arrival = nextLane()
        // A trace whose timestamps go backwards cannot make a frame arrive in the past: it arrives with the
        // frame before it.
        let arrivalTime = arrival.map { max(lanes[$0].stagedTime, lastArrival) }
        let cpuFree = self.cpuFree
        let pollTime = pollQueue._withUnsafeGuaranteedRef { $0.nextPollTime(notBefore: cpuFree) }
        guard arrivalTime != nil || pollTime != nil else { return false }
        let next = min(arrivalTime ?? .max, pollTime ?? .max)
        if mapEvents.nextTime <= next {
            mapEvents.apply(dueBy: mapEvents.nextTime)
            return true
        }
        if let arrival, let arrivalTime, arrivalTime <= (pollTime ?? .max) {
            deliverOne(arrival, at: arrivalTime)
        } else {
            pollNext(at: pollTime.unsafelyUnwrapped)
        }
        return true
    }

    /// `stepRecorded` while no port waits for a poll, the usual state of a trace whose frames come further apart
    /// than a poll takes: the frames that arrive by the time a poll runs are all in it (they are all for its
    /// port), and the next one arrives after it (so no poll leaves frames in the ring). Delivers the frames of up to
    /// `PollQueue.stretchCapacity` such polls and runs them with `Worker.pollSeries` (one call per run of polls of
    /// the same port), at the times `stepRecorded` would run them. Stops where `stepRecorded` has more to do (a
    /// map operation due, a poll that would leave frames in the ring or share the CPU with another port's, a full
    /// ring), leaving the state it would have then. Everything happens in the same order as one `stepRecorded` at
    /// a time (deliveries touch only the rings and the ingress captures, a poll takes just the frames that arrived
    /// by its time, and polls run in their order), so the outputs are the same.
    mutating func stepRecordedStretch() -> Bool {
        // Two copies: with one input (the usual case) there is no next lane to search for.
        laneCount == 1 ? stepRecordedStretch(oneLane: true) : stepRecordedStretch(oneLane: false)
    }

    @inline(__always)
    mutating func stepRecordedStretch(oneLane: Bool) -> Bool {
        guard pollQueue._withUnsafeGuaranteedRef({ $0.count }) == 0, let firstLane = nextLane(oneLane: oneLane) else {
            return stepRecorded()
        }
        let (times, sizes) = pollQueue._withUnsafeGuaranteedRef { ($0.stretchTimes, $0.stretchSizes) }
        let frameCost = worker.frameCost
        var port = lanes[firstLane].portIndex
        var room = lanes[firstLane].ring._withUnsafeGuaranteedRef { $0.capacity &- $0.count }
        var cpuFree = self.cpuFree
        var count = 0
        var delivered = false
        // The pool unretained (see `deliverOne`).
        Unmanaged.passUnretained(pool)._withUnsafeGuaranteedRef { pool in
            stretch: while count < PollQueue.stretchCapacity, let lane = nextLane(oneLane: oneLane) {
                let first = max(lanes[lane].stagedTime, lastArrival)
                let pollTime = max(first &+ pollDelay, cpuFree)
                // A map operation due by then runs before the poll: stepRecorded's business.
                if mapEvents.nextTime <= pollTime { break }
                if lanes[lane].portIndex != port {
                    // Another port's poll: the polls so far run first (each port's ring is empty after them).
                    runStretchPolls(count, port: port)
                    count = 0
                    port = lanes[lane].portIndex
                    room = lanes[lane].ring._withUnsafeGuaranteedRef { $0.capacity &- $0.count }
                }
                // A full ring drops the arrival: stepRecorded's business too.
                if room == 0 { break }
                deliver(lane, at: first, pool: pool, schedulingPoll: false)
                room &-= 1
                delivered = true
                var size = 1
                // The frames arriving by the poll's time join it.
                while let next = nextLane(oneLane: oneLane) {
                    let arrival = max(lanes[next].stagedTime, lastArrival)
                    guard arrival <= pollTime else { break }
                    guard lanes[next].portIndex == port && size < budget && room > 0 else {
                        // Another port's frame would make a second poll wait for the CPU, the poll would leave
                        // frames in the ring, or the ring fills: this poll waits for stepRecorded, scheduled as
                        // `deliver` schedules it, after the polls before it have run.
                        let ready = first &+ pollDelay
                        pollQueue._withUnsafeGuaranteedRef { $0.schedule(port, ready: ready) }
                        break stretch
                    }
                    deliver(next, at: arrival, pool: pool, schedulingPoll: false)
                    room &-= 1
                    size &+= 1
                }
                times[count] = pollTime
                sizes[count] = size
                count &+= 1
                cpuFree = pollTime &+ Nanos(size) &* frameCost
            }
        }
        runStretchPolls(count, port: port)
        assert(self.cpuFree == cpuFree, "a poll took other than frame_cost_ns per frame")
        return delivered || stepRecorded()
    }

    /// The lane whose staged frame arrives next (`nextSource`, without the search for one input).
    @inline(__always)
    func nextLane() -> Int? { nextLane(oneLane: laneCount == 1) }

    /// `nextLane` where the number of inputs is known to be one (`oneLane`) or more.
    @inline(__always)
    func nextLane(oneLane: Bool) -> Int? {
        oneLane ? (lanes[0].staged == nil ? nil : 0) : nextSource()
    }

    /// Runs the first `count` polls of the stretch buffers, all of `port`'s device.
    mutating func runStretchPolls(_ count: Int, port: Int) {
        guard count > 0 else { return }
        let (times, sizes) = pollQueue._withUnsafeGuaranteedRef { ($0.stretchTimes, $0.stretchSizes) }
        worker.pollSeries(emulation.ports[port].device, times: times, sizes: sizes, count: count)
        polls &+= UInt64(count)
        cpuFree = worker.now
    }

    /// One round in topspeed timing: fill the rings as far as they take frames, then run the next poll.
    mutating func stepTopspeed() -> Bool {
        if mapEvents.nextTime <= cpuFree { mapEvents.apply(dueBy: cpuFree) }
        fillRings(at: cpuFree)
        let cpuFree = self.cpuFree
        guard let pollTime = pollQueue._withUnsafeGuaranteedRef({ $0.nextPollTime(notBefore: cpuFree) }) else {
            return nextSource() != nil
        }
        pollNext(at: pollTime)
        return true
    }

    /// Delivers staged frames in arrival order at `time` until the next one finds its ring full.
    mutating func fillRings(at time: Nanos) {
        let pool = self.pool
        if laneCount == 1 {
            // One input: no arrival order between sources to keep, so no search for the earliest.
            let ring = lanes[0].ring
            while lanes[0].staged != nil && !ring._withUnsafeGuaranteedRef({ $0.isFull }) {
                deliver(0, at: time, pool: pool)
            }
            return
        }
        while let next = nextSource() {
            guard !lanes[next].ring._withUnsafeGuaranteedRef({ $0.isFull }) else { break }
            deliverOne(next, at: time)
        }
    }

    /// The source whose staged frame comes first (recorded time, then command-line order).
    func nextSource() -> Int? {
        var best: Int?
        var bestTime = Nanos.max
        for i in 0..<laneCount where lanes[i].staged != nil {
            if best == nil || lanes[i].stagedTime < bestTime {
                best = i
                bestTime = lanes[i].stagedTime
            }
        }
        return best
    }

    /// Reads the next record of source `i` into a frame (its time is the recorded timestamp).
    @inline(__always)
    mutating func stage(_ i: Int, pool: FramePool) {
        let lane = lanes + i
        do {
            guard let record = try lane.pointee.reader._withUnsafeGuaranteedRef({ try $0.next() }) else { return }
            // FramePool.take(copying:) in three steps: it is not inlined across modules, and costs as much again.
            guard let frame = pool.take(headroom: lane.pointee.headroom) else {
                inputErrors.append("\(sources.inputs[i].path): record \(record.index + 1): no frame buffer left "
                    + "(pool of \(pool.capacity) exhausted)")
                return
            }
            let space = pool.writableSpace(frame)
            precondition(record.capturedLength <= space.count, "frame buffers are sized for the largest record")
            if record.capturedLength > 0 {
                space.baseAddress.unsafelyUnwrapped.copyMemory(from: record.bytes.baseAddress.unsafelyUnwrapped,
                                                               byteCount: record.capturedLength)
            }
            let info = pool.info(frame)
            info.pointee.length = UInt32(truncatingIfNeeded: record.capturedLength)
            info.pointee.ingress = lane.pointee.ifindex
            info.pointee.arrival = record.timestampNanos
            info.pointee.missingBytes = UInt32(clamping: max(0, record.originalLength - record.capturedLength))
            lane.pointee.staged = frame
            lane.pointee.stagedTime = record.timestampNanos
            lane.pointee.recordsRead &+= 1
            if lane.pointee.recordsRead & 0xffff == 0, let progress = options.progress {
                progress(sequence, fractionRead(lastOffset: record.fileOffset, of: i))
            }
        } catch {
            inputErrors.append("\(error)")
        }
    }

    func fractionRead(lastOffset: Int64, of i: Int) -> Double {
        guard totalBytes > 0 else { return 0 }
        return min(1, Double(lastOffset) / Double(max(sources.fileSizes[i], 1)))
    }

    /// `deliver` outside the one-input loop, kept out of line so that loop gets `deliver` compiled in place.
    @inline(never)
    mutating func deliverOne(_ i: Int, at time: Nanos) {
        // The pool through an unretained reference: loaded from `self` in a mutating method and passed on, it was
        // retained and released for every frame.
        Unmanaged.passUnretained(pool)._withUnsafeGuaranteedRef { deliver(i, at: time, pool: $0) }
    }

    /// The staged frame of source `i` arrives at its port at `time`.
    @inline(__always)
    mutating func deliver(_ i: Int, at time: Nanos, pool: FramePool, schedulingPoll: Bool = true) {
        let lane = lanes + i
        guard let frame = lane.pointee.staged else { return }
        lane.pointee.staged = nil
        let port = lane.pointee.portIndex
        lastArrival = time
        sequence &+= 1
        let info = pool.info(frame)
        info.pointee.sequence = sequence
        info.pointee.arrival = time
        lane.pointee.delivered &+= 1
        lane.pointee.ingress?._withUnsafeGuaranteedRef {
            $0.write(timestampNanos: time, bytes: UnsafeRawBufferPointer(pool.packet(frame)),
                     originalLength: Int(info.pointee.length + info.pointee.missingBytes))
        }
        if lane.pointee.ring._withUnsafeGuaranteedRef({ $0.push(frame) }) {
            if schedulingPoll {
                let ready = time + pollDelay
                pollQueue._withUnsafeGuaranteedRef { $0.schedule(port, ready: ready) }
            }
        } else {
            // The only use of the worker's clock outside a poll: the drop is stamped with the arrival time.
            worker.now = time
            worker.drop(frame, .rxRingFull, at: emulation.ports[port].device)
        }
        stage(i, pool: pool)
    }

    /// Runs the poll at the head of the poll queue at `time`.
    mutating func pollNext(at time: Nanos) {
        let (port, device) = pollQueue._withUnsafeGuaranteedRef { $0.removeFirst() }
        _ = device._withUnsafeGuaranteedRef { worker.poll($0, budget: budget, now: time) }
        polls += 1
        cpuFree = worker.now
        if device._withUnsafeGuaranteedRef({ $0.rxRing.isEmpty }) {
            pollQueue._withUnsafeGuaranteedRef { $0.finish(port) }
        } else {
            let ready = cpuFree
            pollQueue._withUnsafeGuaranteedRef { $0.requeue(port, ready: ready) }
        }
    }

    /// Stops reading every input (SIGINT): staged frames are freed unseen.
    mutating func stopReading() {
        for i in 0..<laneCount {
            if let frame = lanes[i].staged { pool.give(frame) }
            lanes[i].staged = nil
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
        for port in emulation.ports { counts[port.spec.name] = 0 }
        for i in 0..<laneCount { counts[emulation.ports[lanes[i].portIndex].spec.name]! += lanes[i].delivered }
        return counts
    }
}
