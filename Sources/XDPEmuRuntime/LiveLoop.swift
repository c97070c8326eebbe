import Glibc
import SystemPackage
import XDPEmuCore
import XDPEmuOS
import XDPEmuPcap
import XDPEmuTopology

// The live event loop of one worker (simulated CPU): one thread, one level-triggered epoll. With `--workers N`
// there are N loops, each on a thread of its own, each reading the TAPs of the ports assigned to its CPU
// (`CPUAssignment`) and transmitting through wires of its own (`PerCPUTransmitter`); the first loop (the
// primary, on the run's main thread) also watches the signals, the stop request, the 1 s timer, `--duration` and
// the scheduled map events, and stops the others (LiveWorkers.swift). What the loops share is the control plane
// (devmaps, device registration: their own locks and atomics), the captures and the event log (entered under the
// run's `OutputLock`).
//
// The scheduling is the worker's `NAPIScheduler`, the same as replay's; this loop does the I/O around it, with
// the wall clock as the scheduler's time:
// - epoll watches every port's TAP, every stack TAP, a 1 s timerfd (capture and log flush), the signalfd and
//   the stop eventfd. Its timeout is the next due map event, replay frame or the end of `--duration`, or zero
//   while ports wait for a poll.
// - A readable TAP lists its port for a poll (`NAPIScheduler.schedule`, as the interrupt's napi_schedule). After
//   each wait the loop runs one round (`NAPIScheduler.pollRound`): every listed port is polled once; as the poll
//   starts, the loop (the scheduler's `NAPIReceiver`) reads up to `budget` frames from the TAP straight into
//   pool frames and makes them arrive (capture, RX ring), then the worker runs the program and flushes. A port
//   whose read hit the budget (or whose ring still holds frames) is listed again, behind the others; the loop
//   then polls epoll without waiting, so signals and timers are seen between rounds even under full load.
// - `--replay` frames arrive at a port through the same door as TAP frames (`NAPIScheduler.arrive`), at their
//   recorded offsets or as fast as the ring takes them, and schedule the port's poll.
// - Scheduled map operations run between rounds (`MapEventPlayer`), on this thread, through the same devmap
//   calls as any control plane, so a redirect in flight sees the old or the new entry (DevMap.swift).
// - A TAP that disappears (read or write says EBADFD, or epoll reports only an error) is unregistered after the
//   poll that noticed it: its devmap slots are cleared, the frames in its ring dropped as `device_gone`, its fd
//   removed from epoll and closed. The other ports keep forwarding.
// - Stopping: reading stops, every ring is polled empty, the quiescent point flushes retired entries' queues,
//   then the caller closes outputs and tears down.
// - Before each wait the worker passes a quiescent point, so devmap entries retired by the control socket while
//   the worker is idle are not held back.

final class LiveLoop: NAPIReceiver {
    /// One port's live parts.
    struct Port {
        let device: NetDevice
        let tap: TapDevice
        let wire: TapWire
        /// The TAP into which XDP_PASS frames are written, if the port has a `stack`.
        let stackTap: TapDevice?
        let stackWire: TapWire?
        /// What sees the frames of the port (`Emulation.Port.tap`); here only for the stack's frames, which leave
        /// through the port without passing the core.
        let portTap: PortTap?
        var alive = true
        var stackAlive = true

        init(
            device: NetDevice, tap: TapDevice, wire: TapWire, stackTap: TapDevice?, stackWire: TapWire?,
            portTap: PortTap?
        ) {
            self.device = device
            self.tap = tap
            self.wire = wire
            self.stackTap = stackTap
            self.stackWire = stackWire
            self.portTap = portTap.flatMap { $0.directions.contains(.egress) ? $0 : nil }
        }
    }

    /// A trace injected into a port.
    struct ReplaySource {
        /// Its place among the run's `--replay` options.
        let order: Int
        let input: ReplayOptions.Input
        let reader: PcapReader
        let port: Int
        /// How the trace's records become Ethernet frames; nil for an Ethernet trace.
        let framing: EthernetFraming?
        /// The next record, read but not yet injected (its bytes stay valid until the next read).
        var staged: PcapRecord?
        var done = false
        var injected: UInt64 = 0
        /// Records given an Ethernet header, and records skipped because they could not be (or were longer than
        /// a frame buffer once converted).
        var converted: UInt64 = 0
        var skipped: UInt64 = 0

        init(order: Int, input: ReplayOptions.Input, reader: PcapReader, port: Int, framing: EthernetFraming?) {
            self.order = order
            self.input = input
            self.reader = reader
            self.port = port
            self.framing = framing
        }
    }

    private enum Source {
        case port(Int)
        case stack(Int)
        case timer
        case signals
        case stop
    }

    let emulation: Emulation
    let captures: CaptureSet?
    let log: EventLog
    let options: LiveOptions
    /// Whether this loop is the primary one (signals, timer, stop request, duration, map events).
    let primary: Bool
    /// Whether this loop reads each port (its CPU's ports).
    let owned: [Bool]
    /// Taken around the log and the captures when several loops share them; nil with one loop.
    let outputLock: OutputLock?
    let worker: Worker
    let pool: FramePool
    let budget: Int
    /// The worker's NAPI scheduler, with the loop as its receiver.
    let scheduler: NAPIScheduler
    // The loop's state below is touched only by the loop's thread, one access at a time, so its `var`s opt out of
    // Swift's dynamic exclusivity checks: each check is a runtime call and a thread-local lookup (swift_beginAccess,
    // ~90 instructions), and a round made a few dozen of them (about 35 instructions per forwarded frame).
    @exclusivity(unchecked) private var ports: [Port]
    @exclusivity(unchecked) fileprivate var replays: [ReplaySource]
    private let eventLoop: EventLoop
    private let timer: PeriodicTimer?
    private let signals: SignalWatcher?
    private let stopRequest: EventNotifier
    @exclusivity(unchecked) private var sources: [Int32: Source] = [:]
    @exclusivity(unchecked) private var ready: [ReadyEvent]
    /// Ports whose TAP was found deleted during a poll, handled right after it.
    @exclusivity(unchecked) private var goneQueue: [Int] = []
    @exclusivity(unchecked) private var reading = true
    @exclusivity(unchecked) private var startMonotonic: UInt64 = 0
    @exclusivity(unchecked) private var deadline: UInt64?
    @exclusivity(unchecked) private var mapEvents: MapEventPlayer
    /// Replay: the earliest first timestamp of the traces, which is due at the start of the run.
    @exclusivity(unchecked) private var replayBase: UInt64 = 0
    /// Problems of the `--replay` traces (bad input: exit code 2).
    private(set) var inputErrors: [String] = []
    /// Captures or the event log that could not be written (exit code 1).
    private(set) var outputErrors: [String] = []
    private var reportedReadErrors = Set<Int>()
    private let stackBuffer: UnsafeMutableRawBufferPointer
    private let vnetHeader = UnsafeMutableRawBufferPointer.allocate(byteCount: VirtioNetHeader.length, alignment: 8)
    /// Frames read from virtio-net TAPs whose header could not be honoured (an offload never offered).
    fileprivate var refusedVirtioFrames: UInt64 = 0

    /// - Parameters:
    ///   - worker: the loop's worker (CPU); `owned` the ports it reads; `primary` whether it also handles
    ///     `timer`, `signals`, the duration and the map events (secondary loops get neither timer nor signals).
    ///   - stopRequest: ends the loop when notified (the run's for the primary, one of its own for the others).
    init(
        emulation: Emulation, worker: Worker, ports: [Port], owned: [Bool], primary: Bool, captures: CaptureSet?,
        log: EventLog, outputLock: OutputLock?, options: LiveOptions, replays: [ReplaySource], eventLoop: EventLoop,
        timer: PeriodicTimer?, signals: SignalWatcher?, stopRequest: EventNotifier
    ) {
        self.emulation = emulation
        self.owned = owned
        self.primary = primary
        self.outputLock = outputLock
        self.ports = ports
        self.captures = captures
        self.log = log
        self.options = options
        self.replays = replays
        self.eventLoop = eventLoop
        self.timer = timer
        self.signals = signals
        self.stopRequest = stopRequest
        self.worker = worker
        pool = worker.pool
        budget = emulation.topology.napi.budget
        // Live time is the clock's: a readable TAP is polled in the next round, and a frame costs what it costs.
        scheduler = emulation.makeScheduler(worker: worker, budget: budget, pollDelay: 0, frameCost: 0)
        worker.events.isEnabled = log.wantsEvents
        mapEvents = MapEventPlayer(primary ? options.mapEvents : nil, maps: emulation.maps, log: log)
        ready = eventLoop.makeReadyBuffer()
        goneQueue.reserveCapacity(ports.count)
        stackBuffer = .allocate(byteCount: pool.bufferSize, alignment: 64)
    }

    deinit {
        stackBuffer.deallocate()
        vnetHeader.deallocate()
    }

    /// Adds every fd to epoll and hooks the wires' gone notifications.
    func register() throws(RuntimeError) {
        do {
            for (i, port) in ports.enumerated() where owned[i] {
                try add(port.tap.fd!, .port(i))
                port.wire.onGone = { [unowned self] in goneQueue.append(i) }
                if let stack = port.stackTap {
                    try add(stack.fd!, .stack(i))
                    port.stackWire!.onGone = { [unowned self] in stackGone(i) }
                }
            }
            if let timer { try add(timer.fd, .timer) }
            if let signals { try add(signals.fd, .signals) }
            try add(stopRequest.fd, .stop)
        } catch {
            throw .failure("epoll_ctl: \(error)")
        }
    }

    private func add(_ fd: FileDescriptor, _ source: Source) throws(Errno) {
        try eventLoop.add(fd)
        sources[fd.rawValue] = source
    }

    // MARK: The loop

    /// Runs until a signal, a stop request or the deadline.
    func run() throws(RuntimeError) -> LiveResult.Ending {
        startMonotonic = MonotonicClock.now()
        deadline = primary ? options.durationNanos.map { startMonotonic &+ $0 } : nil
        mapEvents.start(at: startMonotonic)
        startReplays()
        flushOutputs()
        scheduler.receiver = self
        defer { scheduler.receiver = nil }
        while true {
            worker.quiescentPoint()
            do {
                try eventLoop.wait(timeoutMillis: timeout(), into: &ready)
            } catch {
                throw .failure("epoll_wait: \(error)")
            }
            for event in ready {
                guard let source = sources[event.fd.rawValue] else { continue }
                switch source {
                case .port(let i):
                    if event.flags.contains(.readable) {
                        scheduler.schedule(i, ready: 0)
                    } else if !event.flags.isDisjoint(with: [.error, .hangup]) {
                        portGone(i, how: "epoll reports an error on its fd")
                    }
                case .stack(let i):
                    if event.flags.contains(.readable) {
                        forwardFromStack(i)
                    } else if !event.flags.isDisjoint(with: [.error, .hangup]) {
                        stackGone(i)
                    }
                case .timer:
                    _ = try? timer?.expirations()
                    flushOutputs()
                case .signals:
                    if let signal = (try? signals?.next()) ?? nil { return .signal(signal) }
                case .stop:
                    if stopRequest.consume() { return .stopRequested }
                }
            }
            let now = MonotonicClock.now()
            if let deadline, now >= deadline { return .duration }
            applyMapEvents(upTo: now)
            let wallNow = WallClock.nowNanos()
            injectReplays(now: now, at: wallNow)
            // Events are recorded while a file is written or a control client follows them.
            worker.events.isEnabled = log.wantsEvents
            scheduler.pollRound(at: wallNow)
        }
    }

    /// Milliseconds epoll may sleep: 0 while ports wait for a poll or a topspeed replay has frames, else until
    /// the next map event, replay frame or the deadline (rounded up), else until the timer.
    private func timeout() -> Int32 {
        if scheduler.pendingPolls > 0 { return 0 }
        var next: UInt64 = .max
        for source in replays where !source.done {
            guard let record = source.staged else { continue }
            if options.timing == .topspeed { return 0 }
            next = min(next, replayDue(record))
        }
        next = min(next, mapEvents.nextTime)
        if let deadline { next = min(next, deadline) }
        guard next != .max else { return -1 }
        let now = MonotonicClock.now()
        guard next > now else { return 0 }
        return Int32(min((next - now + 999_999) / 1_000_000, 1000))
    }

    // MARK: Polls (NAPIReceiver)

    /// A poll of `index` starts: up to a budget of frames from its TAP arrive at its RX ring. Returns whether the
    /// read hit the budget (more frames may wait).
    func receive(port index: Int, budget: Int, now: Nanos, scheduler: NAPIScheduler) -> Bool {
        guard ports[index].alive && reading else { return false }
        // The fields it needs, not a copy of the whole `Port` (a retain and a release for each of its references).
        let device = ports[index].device
        let tap = ports[index].tap
        let vnet = tap.hasVirtioNetHeader
        var received = 0
        while received < budget {
            guard let frame = pool.take(headroom: device.rxHeadroom) else { break }
            let result =
                vnet
                ? tap.read(header: vnetHeader, into: pool.writableSpace(frame))
                : tap.read(into: pool.writableSpace(frame))
            guard case .transferred(let count) = result else {
                pool.give(frame)
                if result == .gone {
                    portGone(index, how: "reading it fails with EBADFD")
                } else if case .failed(let errno) = result, reportedReadErrors.insert(index).inserted {
                    report("port \(device.name): reading TAP \(tap.name) failed: \(errno)")
                }
                break
            }
            received += 1
            pool.setLength(frame, vnet ? max(0, count - VirtioNetHeader.length) : count)
            if vnet {
                let header = VirtioNetHeader(loading: vnetHeader.baseAddress!)
                guard count >= VirtioNetHeader.length,
                    let gsoSize = VirtioNetHeader.accept(header, packet: pool.packet(frame))
                else {
                    pool.give(frame)
                    refusedVirtioFrames &+= 1
                    continue
                }
                pool.info(frame).pointee.gsoSize = gsoSize
            }
            arrive(frame, port: index, device: device, at: now)
        }
        return received == budget
    }

    /// The worker has polled `port`.
    func polled(port: Int) { afterPoll() }

    /// A frame read for a port arrives there (`NAPIScheduler.arrive`: ingress tap, RX ring or a drop if it is
    /// full).
    @inline(__always)
    private func arrive(_ frame: FrameID, port: Int, device: NetDevice, at time: Nanos) {
        pool.info(frame).pointee.ingress = device.ifindex
        scheduler.arrive(frame, port: port, at: time)
    }

    /// Drains the event ring into the log and handles TAPs found gone during the poll.
    private func afterPoll() {
        if worker.events.count > 0 { drainEvents() }
        while let index = goneQueue.popLast() { portGone(index, how: "writing to it fails with EBADFD") }
    }

    // MARK: Stack TAPs

    /// Frames the kernel sends out of a stack TAP are the port's local stack transmitting: they leave through
    /// the port's TAP (and its egress capture) without passing XDP, as a kernel's own transmit does.
    private func forwardFromStack(_ index: Int) {
        guard let stack = ports[index].stackTap, ports[index].stackAlive else { return }
        for _ in 0..<budget {
            switch stack.read(into: stackBuffer) {
            case .transferred(let length):
                guard ports[index].alive else { continue }
                let packet = UnsafeRawBufferPointer(rebasing: stackBuffer[0..<length])
                let time = WallClock.nowNanos()
                if ports[index].wire.send(packet, missingBytes: 0, time: time) {
                    ports[index].portTap?.egress(packet: packet, originalLength: length, time: time)
                }
            case .gone:
                stackGone(index)
                return
            case .wouldBlock, .failed:
                return
            }
        }
        afterPoll()
    }

    private func stackGone(_ index: Int) {
        guard ports[index].stackAlive, let stack = ports[index].stackTap else { return }
        ports[index].stackAlive = false
        if let fd = stack.fd {
            try? eventLoop.remove(fd)
            sources[fd.rawValue] = nil
        }
        stack.close()
        ports[index].stackWire?.markDead()
        report(
            "port \(ports[index].device.name): stack TAP \(stack.name) was deleted; XDP_PASS frames of the port "
                + "are now only counted")
    }

    // MARK: Ports that disappear

    /// The port's TAP was deleted behind our back (NETDEV_UNREGISTER): unregister the device (its devmap slots
    /// are cleared), drop what waits in its ring, stop watching and close its fd. Never inside a poll.
    private func portGone(_ index: Int, how: String) {
        guard ports[index].alive else { return }
        ports[index].alive = false
        let port = ports[index]
        if let fd = port.tap.fd {
            try? eventLoop.remove(fd)
            sources[fd.rawValue] = nil
        }
        // The fd stays open until teardown: other workers may still be writing to it (and fail with EBADFD),
        // and a closed fd's number could be reused by another file under their writes.
        port.wire.markDead()
        emulation.network.unregister(port.device)
        scheduler.dropQueued(port: index, reason: .deviceGone, at: WallClock.nowNanos())
        if worker.events.count > 0 { drainEvents() }
        let alive = ports.filter(\.alive).map(\.device.name)
        report(
            "port \(port.device.name): TAP \(port.tap.name) was deleted (\(how)); the port is unregistered and "
                + (alive.isEmpty ? "no port is left" : "forwarding continues on \(alive.joined(separator: ", "))"))
    }

    // MARK: Replay into live ports

    private func startReplays() {
        for i in replays.indices { stage(i) }
        replayBase = replays.compactMap { $0.staged?.timestampNanos }.min() ?? 0
    }

    private func replayDue(_ record: PcapRecord) -> UInt64 {
        startMonotonic &+ (record.timestampNanos &- min(record.timestampNanos, replayBase))
    }

    private func stage(_ i: Int) {
        do {
            replays[i].staged = try replays[i].reader.next()
            if replays[i].staged == nil { finishReplay(i) }
        } catch {
            inputErrors.append("--replay \(replays[i].input.port)=\(replays[i].input.path): \(error)")
            report(inputErrors.last!)
            finishReplay(i)
        }
    }

    private func finishReplay(_ i: Int) {
        guard !replays[i].done else { return }
        replays[i].done = true
        replays[i].staged = nil
        let replay = replays[i]
        let converted =
            replay.framing == nil
            ? "" : " (\(replay.converted) given an Ethernet header from \(replay.reader.linkType))"
        let skipped = replay.skipped == 0 ? "" : ", \(replay.skipped) skipped"
        report(
            "replay of \(replay.input.path) into \(replay.input.port) done: \(replay.injected) frames\(converted)\(skipped)"
        )
    }

    /// Injects the frames that are due (recorded timing) or that the ring has room for (topspeed, a budget per
    /// round). A frame that finds the ring full or the pool empty waits for the next round.
    private func injectReplays(now: UInt64, at wallNow: Nanos) {
        guard reading else { return }
        for i in replays.indices where !replays[i].done {
            let index = replays[i].port
            guard ports[index].alive else {
                report("replay of \(replays[i].input.path) stopped: port \(replays[i].input.port) is gone")
                finishReplay(i)
                continue
            }
            let device = ports[index].device
            var count = 0
            while let record = replays[i].staged, !device.rxRing.isFull {
                if options.timing == .topspeed {
                    guard count < budget else { break }
                } else {
                    guard replayDue(record) <= now else { break }
                }
                guard let frame = pool.take(headroom: device.rxHeadroom) else { break }
                guard place(record, of: i, into: frame) else {
                    pool.give(frame)
                    stage(i)
                    continue
                }
                pool.info(frame).pointee.missingBytes = UInt32(
                    clamping: max(
                        0,
                        record.originalLength
                            - record.capturedLength))
                arrive(frame, port: index, device: device, at: wallNow)
                replays[i].injected &+= 1
                count += 1
                stage(i)
            }
        }
    }

    /// Writes `record`, the staged record of replay `i`, into `frame`: as it is, or given an Ethernet header by the
    /// replay's `EthernetFraming`. False when it cannot be converted or does not fit the frame buffer (counted as
    /// skipped, as is an Ethernet record too long for it).
    private func place(_ record: PcapRecord, of i: Int, into frame: FrameID) -> Bool {
        let space = pool.writableSpace(frame)
        guard let framing = replays[i].framing else {
            guard record.capturedLength <= space.count else {
                replays[i].skipped &+= 1
                return false
            }
            if record.capturedLength > 0 {
                space.baseAddress!.copyMemory(from: record.bytes.baseAddress!, byteCount: record.capturedLength)
            }
            pool.setLength(frame, record.capturedLength)
            return true
        }
        guard record.capturedLength + framing.growth <= space.count,
            let length = framing.write(record.bytes, to: space.baseAddress!)
        else {
            replays[i].skipped &+= 1
            return false
        }
        replays[i].converted &+= 1
        pool.setLength(frame, length)
        return true
    }

    // MARK: Map events

    private func applyMapEvents(upTo now: UInt64) {
        guard mapEvents.nextTime <= now else { return }
        withOutputLock { applyDueMapEvents(upTo: now) }
    }

    private func applyDueMapEvents(upTo now: UInt64) {
        mapEvents.apply(dueBy: now, logTime: { _ in WallClock.nowNanos() }) { event, result in
            let target = event.ifindex.map { " -> ifindex \($0)" } ?? ""
            self.report(
                "map event at +\(seconds(event.offset)) s: \(event.operationName) \(event.map)[\(event.key)]"
                    + "\(target): \(result)")
        }
    }

    // MARK: Outputs

    private func flushOutputs() {
        guard primary else { return }
        let failure = withOutputLock { () -> RuntimeError? in
            do throws(RuntimeError) {
                try captures?.flush()
                try log.flush()
                return nil
            } catch {
                return error
            }
        }
        if let error = failure {
            if !outputErrors.contains(error.description) {
                outputErrors.append(error.description)
                report("\(error)")
            }
        }
    }

    fileprivate func drainEvents() {
        withOutputLock {
            XDPEmuRuntime.drainEvents(of: worker, into: log)
            emulation.ebpfObjects.drainMessages(into: log) { self.report($0) }
            log.publishToFeed()
        }
    }

    /// Runs `body` under the run's output lock, if the log and captures are shared with other loops.
    private func withOutputLock<T>(_ body: () throws -> T) rethrows -> T {
        guard let outputLock else { return try body() }
        return try outputLock.withLock(body)
    }

    private func report(_ message: String) { options.report("xdpemu: " + message) }

    // MARK: Finish

    /// The run's counters now, for the control socket (read from another thread while the loop runs: a few
    /// counters may be a frame or a poll behind the others).
    static func snapshot(of loops: [LiveLoop], errors: [String] = []) -> RunStatistics {
        let emulation = loops[0].emulation
        var counts = [String: UInt64]()
        for (i, port) in emulation.ports.enumerated() {
            counts[port.spec.name] = loops.reduce(0) { $0 + $1.scheduler.arrivals(port: i) }
        }
        return RunStatistics(
            emulation: emulation, ingress: counts, polls: loops.reduce(0) { $0 + $1.scheduler.polls },
            framesIn: loops.reduce(0) { $0 + $1.scheduler.arrivals }, errors: errors)
    }

    /// Stops reading and polls every ring of the loop's ports empty (on the loop's thread).
    func drain() {
        reading = false
        let now = WallClock.nowNanos()
        scheduler.receiver = self
        while scheduler.pendingPolls > 0 { scheduler.pollRound(at: now) }
        scheduler.receiver = nil
        worker.now = now
        drainEvents()
    }

    /// Once every loop has drained (`drain`): passes every worker's quiescent point and gathers the statistics of
    /// all `loops` (this one first).
    func finish(loops: [LiveLoop]) -> RunStatistics {
        emulation.network.quiesceAll()
        for loop in loops { loop.drainEvents() }
        var errors = loops.flatMap(\.outputErrors) + loops.flatMap(\.inputErrors)
        let refusedVirtioFrames = loops.reduce(0) { $0 + $1.refusedVirtioFrames }
        if refusedVirtioFrames > 0 {
            errors.append("\(refusedVirtioFrames) frames read with a virtio-net header that could not be honoured")
        }
        var statistics = Self.snapshot(of: loops, errors: errors)
        statistics.inputs = loops.flatMap(\.replays).sorted { $0.order < $1.order }.map {
            InputFraming(
                port: $0.input.port, path: $0.input.path, linkType: $0.reader.linkType, converted: $0.converted,
                skipped: $0.skipped)
        }
        return statistics
    }
}

/// Nanoseconds as seconds with three decimals.
private func seconds(_ nanos: UInt64) -> String {
    let millis = nanos / 1_000_000
    let fraction = millis % 1000
    let padding = String(repeating: "0", count: fraction < 10 ? 2 : fraction < 100 ? 1 : 0)
    return "\(millis / 1000).\(padding)\(fraction)"
}
