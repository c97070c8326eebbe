import Foundation
import XDPEmuCore
import XDPEmuPcap

/// Whether a replay's traces need Ethernet headers (`EthernetFraming`), as a type the engine is specialised for.
protocol ReplayFraming {
    static var converts: Bool { get }
}

/// Every trace is Ethernet: records are copied into frames as they are.
enum EthernetTraces: ReplayFraming {
    static var converts: Bool { false }
}

/// Some trace is not Ethernet: each lane's records go through its `EthernetFraming`, if it has one.
enum ConvertedTraces: ReplayFraming {
    static var converts: Bool { true }
}

/// The virtual-time driver of one replay (one worker): reads the traces, makes their frames arrive at their times
/// through the worker's `NAPIScheduler`, and runs the scheduler's polls when they are due. The scheduling itself
/// (poll list, rings, budgets, the CPU) is the scheduler's; this decides only what happens next in virtual time:
/// a map operation, an arrival or a poll.
///
/// The per-frame path (`stage`, `deliver`, the ring-filling loop of `stepTopspeed`) touches only values: the
/// engine's own fields (a struct, mutated in place) and the sources' lanes, which sit behind a pointer. Reading a
/// class's stored `var` costs a run-time exclusivity check, and a class reference loaded from memory that a call
/// might change (an array, `self` in a mutating method) is retained and released around its use; per frame,
/// either costs more than the work it guards. So the lanes and the scheduler are held as `Unmanaged` references
/// used through `_withUnsafeGuaranteedRef`, and the pool is loaded once per round of deliveries and passed down.
///
/// `Framing` says whether a trace needs an Ethernet header (`EthernetFraming`): the engine is specialised for
/// Ethernet-only replays, whose records are copied as they are with no test of the link type per frame.
struct ReplayEngine<Framing: ReplayFraming> {
    /// One input trace: what it reads, where its frames arrive, and its staged frame. Lanes are laid out in a
    /// `Lanes` buffer; the references are unretained because `Lanes` keeps the objects alive.
    struct Lane {
        let reader: Unmanaged<PcapReader>
        let ring: Unmanaged<FrameRing>
        let ifindex: IfIndex
        let headroom: Int
        let portIndex: Int
        /// The next frame of the trace, read and copied into a frame, waiting for its arrival time.
        var staged: FrameID?
        var stagedTime: Nanos = 0
    }

    /// How a lane's records become Ethernet frames, and what became of them: apart from `Lane`, which the
    /// per-frame path of Ethernet traces reads, so that it stays as small as it was.
    struct LaneFraming {
        /// nil for an Ethernet trace.
        let framing: EthernetFraming?
        /// Records given an Ethernet header, and records skipped because they could not be (`EthernetFraming`).
        var converted: UInt64 = 0
        var skipped: UInt64 = 0
    }

    /// Owns the lanes and the objects they point at.
    final class Lanes {
        let inputs: [ReplayOptions.Input]
        let fileSizes: [Int64]
        let owners: [(PcapReader, FrameRing)]
        let base: UnsafeMutablePointer<Lane>
        let framings: UnsafeMutablePointer<LaneFraming>
        let count: Int

        init(
            _ sources: [(
                input: ReplayOptions.Input, reader: PcapReader, framing: EthernetFraming?, device: NetDevice,
                portIndex: Int, fileSize: Int64
            )]
        ) {
            inputs = sources.map(\.input)
            fileSizes = sources.map(\.fileSize)
            owners = sources.map { ($0.reader, $0.device.rxRing) }
            count = sources.count
            base = .allocate(capacity: max(count, 1))
            framings = .allocate(capacity: max(count, 1))
            for (i, source) in sources.enumerated() {
                (framings + i).initialize(to: LaneFraming(framing: source.framing))
                (base + i).initialize(
                    to: Lane(
                        reader: .passUnretained(source.reader),
                        ring: .passUnretained(source.device.rxRing),
                        ifindex: source.device.ifindex, headroom: source.device.rxHeadroom,
                        portIndex: source.portIndex))
            }
        }

        deinit {
            base.deinitialize(count: count)
            base.deallocate()
            framings.deinitialize(count: count)
            framings.deallocate()
        }
    }

    let emulation: Emulation
    let log: EventLog?
    let options: ReplayOptions
    let worker: Worker
    let pool: FramePool
    /// The scheduler's budget and poll delay, copied here for the stretches' per-poll arithmetic.
    let budget: Int
    let pollDelay: Nanos
    let sources: Lanes
    /// `sources.base`, copied here so the per-frame path reaches the lanes without going through the object.
    let lanes: UnsafeMutablePointer<Lane>
    let laneCount: Int
    /// The worker's NAPI scheduler: `schedulerOwner` keeps it alive, the per-frame path uses it unretained (as
    /// the lanes, above).
    let schedulerOwner: NAPIScheduler
    let scheduler: Unmanaged<NAPIScheduler>
    /// With `napi.cpus` > 1 (ReplayEngine+CPUs.swift): every CPU's scheduler (`schedulerOwner` first) and the CPU
    /// of each lane's port; empty with one CPU.
    let cpuSchedulers: [NAPIScheduler]
    let laneCPU: [Int]
    /// Frames arrived over every CPU (the last sequence number), with several CPUs.
    var arrivalCount: UInt64 = 0
    /// The scheduled map operations (`mapEvents.nextTime`: when the next one is due).
    var mapEvents: MapEventPlayer
    var startTime: Nanos?
    /// Time of the latest arrival (recorded timing never goes back).
    var lastArrival: Nanos = 0
    var inputErrors: [String] = []
    var interrupted = false
    var totalBytes: Int64 = 0

    init(
        emulation: Emulation, log: EventLog?, options: ReplayOptions,
        readers: [(input: ReplayOptions.Input, reader: PcapReader, framing: EthernetFraming?)]
    ) {
        self.emulation = emulation
        self.log = log
        self.options = options
        worker = emulation.network.workers[0]
        pool = worker.pool
        let napi = emulation.topology.napi
        schedulerOwner = emulation.makeScheduler(
            worker: worker, budget: napi.budget, pollDelay: napi.pollDelayNanos,
            frameCost: napi.frameCostNanos)
        scheduler = .passUnretained(schedulerOwner)
        budget = schedulerOwner.budget
        pollDelay = schedulerOwner.pollDelay
        worker.events.isEnabled = log != nil
        let cpus = emulation.network.workerCount
        let schedulerOwner = schedulerOwner
        cpuSchedulers =
            cpus == 1
            ? []
            : [schedulerOwner]
                + emulation.network.workers.dropFirst().map { worker in
                    worker.events.isEnabled = log != nil
                    return emulation.makeScheduler(
                        worker: worker, budget: napi.budget, pollDelay: napi.pollDelayNanos,
                        frameCost: napi.frameCostNanos)
                }
        let portCPU = CPUAssignment.cpus(of: emulation.topology.ports, cpuCount: cpus)
        mapEvents = MapEventPlayer(options.mapEvents, maps: emulation.maps, log: log)
        var sources = [
            (
                input: ReplayOptions.Input, reader: PcapReader, framing: EthernetFraming?, device: NetDevice,
                portIndex: Int, fileSize: Int64
            )
        ]()
        for (input, reader, framing) in readers {
            let index = emulation.ports.firstIndex { $0.spec.name == input.port }!
            let size = ((try? FileManager.default.attributesOfItem(atPath: input.path))?[.size] as? Int64) ?? 0
            totalBytes += size
            sources.append((input, reader, framing, emulation.ports[index].device, index, size))
        }
        laneCPU = cpus == 1 ? [] : sources.map { portCPU[$0.portIndex] }
        self.sources = Lanes(sources)
        lanes = self.sources.base
        laneCount = self.sources.count
    }

    /// Frames that arrived (the last sequence number).
    var sequence: UInt64 { cpuSchedulers.isEmpty ? schedulerOwner.arrivals : arrivalCount }
    var polls: UInt64 { cpuSchedulers.isEmpty ? schedulerOwner.polls : cpuSchedulers.reduce(0) { $0 + $1.polls } }

    mutating func run() {
        guard cpuSchedulers.isEmpty else { return runOnCPUs() }
        for i in 0..<laneCount { stage(i, pool: pool) }
        startTime = (0..<laneCount).compactMap { lanes[$0].staged == nil ? nil : lanes[$0].stagedTime }.min() ?? 0
        schedulerOwner.cpuFree = startTime!
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
        let pollTime = scheduler._withUnsafeGuaranteedRef { $0.pollAt() }
        guard arrivalTime != nil || pollTime != nil else { return false }
        let next = min(arrivalTime ?? .max, pollTime ?? .max)
        if mapEvents.nextTime <= next {
            mapEvents.apply(dueBy: mapEvents.nextTime)
            return true
        }
        if let arrival, let arrivalTime, arrivalTime <= (pollTime ?? .max) {
            deliverOne(arrival, at: arrivalTime)
        } else {
            let time = pollTime.unsafelyUnwrapped
            scheduler._withUnsafeGuaranteedRef { $0.pollNext(at: time) }
        }
        return true
    }

    /// One round in topspeed timing: fill the rings as far as they take frames, then run the next poll.
    mutating func stepTopspeed() -> Bool {
        let cpuFree = scheduler._withUnsafeGuaranteedRef { $0.cpuFree }
        if mapEvents.nextTime <= cpuFree { mapEvents.apply(dueBy: cpuFree) }
        fillRings(at: cpuFree)
        guard let pollTime = scheduler._withUnsafeGuaranteedRef({ $0.pollAt() }) else {
            return nextSource() != nil
        }
        scheduler._withUnsafeGuaranteedRef { $0.pollNext(at: pollTime) }
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

    /// The lane whose staged frame arrives next (`nextSource`, without the search for one input).
    @inline(__always)
    func nextLane() -> Int? { nextLane(oneLane: laneCount == 1) }

    /// `nextLane` where the number of inputs is known to be one (`oneLane`) or more.
    @inline(__always)
    func nextLane(oneLane: Bool) -> Int? {
        oneLane ? (lanes[0].staged == nil ? nil : 0) : nextSource()
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

    // MARK: Frames

    /// Reads the next record of source `i` into a frame (its time is the recorded timestamp).
    @inline(__always)
    mutating func stage(_ i: Int, pool: FramePool) {
        if Framing.converts { return stageConverting(i, pool: pool) }
        let lane = lanes + i
        do {
            guard let record = try lane.pointee.reader._withUnsafeGuaranteedRef({ try $0.next() }) else { return }
            // FramePool.take(copying:) in three steps: it is not inlined across modules, and costs as much again.
            guard let frame = pool.take(headroom: lane.pointee.headroom) else {
                return poolExhausted(i, record: record.index)
            }
            let space = pool.writableSpace(frame)
            precondition(record.capturedLength <= space.count, "frame buffers are sized for the largest record")
            if record.capturedLength > 0 {
                space.baseAddress.unsafelyUnwrapped.copyMemory(
                    from: record.bytes.baseAddress.unsafelyUnwrapped,
                    byteCount: record.capturedLength)
            }
            staged(frame, length: record.capturedLength, of: record, in: i, pool: pool)
        } catch {
            failed(error)
        }
    }

    /// `stage` when some trace is not Ethernet: the record is written into the frame by `frameRecord`, which skips
    /// the records that cannot be converted.
    @inline(never)
    mutating func stageConverting(_ i: Int, pool: FramePool) {
        let lane = lanes + i
        do {
            guard var record = try lane.pointee.reader._withUnsafeGuaranteedRef({ try $0.next() }) else { return }
            guard let frame = pool.take(headroom: lane.pointee.headroom) else {
                return poolExhausted(i, record: record.index)
            }
            guard let length = frameRecord(i, &record, into: pool.writableSpace(frame)) else {
                pool.give(frame)
                return
            }
            staged(frame, length: length, of: record, in: i, pool: pool)
        } catch {
            failed(error)
        }
    }

    /// Makes `frame`, which holds `length` bytes made of `record`, lane `i`'s staged frame.
    @inline(__always)
    mutating func staged(_ frame: FrameID, length: Int, of record: PcapRecord, in i: Int, pool: FramePool) {
        let lane = lanes + i
        let info = pool.info(frame)
        info.pointee.length = UInt32(truncatingIfNeeded: length)
        info.pointee.ingress = lane.pointee.ifindex
        // Both lengths are a record's 32-bit fields.
        info.pointee.missingBytes = UInt32(truncatingIfNeeded: max(0, record.originalLength &- record.capturedLength))
        lane.pointee.staged = frame
        lane.pointee.stagedTime = record.timestampNanos
        // Every 65,536 records of the trace.
        if record.index & 0xffff == 0xffff { reportProgress(i, lastOffset: record.fileOffset) }
    }

    // The rare ends of `stage`, out of line: inlined, their code costs the per-frame path registers.

    @inline(never)
    mutating func poolExhausted(_ i: Int, record index: Int) {
        inputErrors.append(
            "\(sources.inputs[i].path): record \(index + 1): no frame buffer left (pool of \(pool.capacity) exhausted)")
    }

    @inline(never)
    mutating func failed(_ error: any Error) {
        inputErrors.append("\(error)")
    }

    /// Reports the frames arrived so far (within a stretch, those of the polls run before it: its arrival run is
    /// counted when its polls run) and the fraction of input `i` read.
    @inline(never)
    func reportProgress(_ i: Int, lastOffset: Int64) {
        options.progress?(sequence, fractionRead(lastOffset: lastOffset, of: i))
    }

    /// Writes the frame of `record`, a record of lane `i`, into `space`: as it is for an Ethernet trace, through
    /// the lane's `EthernetFraming` otherwise, skipping (and counting) the records that cannot be converted, so
    /// `record` may be a later one on return. nil when the trace ends or fails first (the error is recorded).
    @inline(never)
    mutating func frameRecord(_ i: Int, _ record: inout PcapRecord, into space: UnsafeMutableRawBufferPointer) -> Int? {
        let lane = lanes + i
        let outcome = sources.framings + i
        guard let framing = outcome.pointee.framing else {
            precondition(record.capturedLength <= space.count, "frame buffers are sized for the largest record")
            if record.capturedLength > 0 {
                space.baseAddress.unsafelyUnwrapped.copyMemory(
                    from: record.bytes.baseAddress.unsafelyUnwrapped, byteCount: record.capturedLength)
            }
            return record.capturedLength
        }
        while true {
            precondition(
                record.capturedLength + framing.growth <= space.count, "frame buffers are sized for the largest frame")
            if let length = framing.write(record.bytes, to: space.baseAddress.unsafelyUnwrapped) {
                outcome.pointee.converted &+= 1
                return length
            }
            outcome.pointee.skipped &+= 1
            do {
                guard let next = try lane.pointee.reader._withUnsafeGuaranteedRef({ try $0.next() }) else {
                    return nil
                }
                record = next
            } catch {
                inputErrors.append("\(error)")
                return nil
            }
        }
    }

    /// What became of each input's records.
    var inputFramings: [InputFraming] {
        (0..<laneCount).map { i in
            InputFraming(
                port: sources.inputs[i].port, path: sources.inputs[i].path,
                linkType: sources.owners[i].0.linkType, converted: sources.framings[i].converted,
                skipped: sources.framings[i].skipped)
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

    /// The staged frame of source `i` arrives at its port at `time` (`NAPIScheduler.arrive`); the next one is
    /// staged.
    @inline(__always)
    mutating func deliver(_ i: Int, at time: Nanos, pool: FramePool) {
        let scheduler = self.scheduler
        deliver(i, at: time, pool: pool) { frame, port in
            _ = scheduler._withUnsafeGuaranteedRef { $0.arrive(frame, port: port, at: time) }
        }
    }

    /// `deliver` in a run of arrivals at the lane's port (`NAPIScheduler.ArrivalRun`), which has room for the frame.
    @inline(__always)
    mutating func deliver(_ i: Int, at time: Nanos, pool: FramePool, into run: inout NAPIScheduler.ArrivalRun) {
        deliver(i, at: time, pool: pool) { frame, _ in run.arrive(frame, at: time) }
    }

    /// `deliver`, with the arrival of the frame at the lane's port made by `arrive`.
    @inline(__always)
    mutating func deliver(_ i: Int, at time: Nanos, pool: FramePool, arrive: (FrameID, _ port: Int) -> Void) {
        let lane = lanes + i
        guard let frame = lane.pointee.staged else { return }
        lane.pointee.staged = nil
        lastArrival = time
        arrive(frame, lane.pointee.portIndex)
        stage(i, pool: pool)
    }

    /// Stops reading every input (SIGINT): staged frames are freed unseen.
    mutating func stopReading() {
        for i in 0..<laneCount {
            if let frame = lanes[i].staged { lanePool(i).give(frame) }
            lanes[i].staged = nil
        }
    }

    /// Moves every worker's events into the log, CPU by CPU, then the eBPF programs' messages.
    func drainEvents() {
        for worker in emulation.network.workers { XDPEmuRuntime.drainEvents(of: worker, into: log) }
        emulation.ebpfObjects.drainMessages(into: log, report: options.report)
    }

    /// Frames that arrived at each port, by port name.
    var ingressCountsByName: [String: UInt64] {
        var counts = [String: UInt64]()
        for (i, port) in emulation.ports.enumerated() {
            counts[port.spec.name] =
                cpuSchedulers.isEmpty
                ? schedulerOwner.arrivals(port: i) : cpuSchedulers.reduce(0) { $0 + $1.arrivals(port: i) }
        }
        return counts
    }
}
