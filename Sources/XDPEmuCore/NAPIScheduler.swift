// The NAPI scheduler of one worker (one simulated CPU): which port is polled when, for replay and live mode alike.
//
// The model (README, "How replay keeps time"), as Linux's NAPI runs it on one CPU:
// - A frame arrives at a port's RX ring at a time (`arrive`). A frame that finds the ring full is dropped
//   (`rx_ring_full`, stamped with the arrival time), as a NIC without free RX descriptors drops it. A frame
//   arriving at an idle port schedules a poll of the port `pollDelay` later (napi_schedule after the interrupt).
// - The poll list is a FIFO in which a port stands at most once, from its first arrival at an idle ring until a
//   poll leaves its ring empty; each entry has the time it becomes ready.
// - There is one CPU: polls run one at a time, in list order, each no earlier than the previous one ended
//   (`cpuFree`). A poll takes up to `budget` frames of the ring; the worker runs the program on each, costing
//   `frameCost` per frame, and flushes before the poll returns (`Worker.poll`). A port whose ring still holds frames
//   (or whose device still has frames waiting, see `NAPIReceiver`) goes to the back of the list, so ports take
//   turns (round robin).
// - A port's ingress tap (`PortTap`) sees the frames that arrived before a poll (or a drop) takes them: one
//   call per poll, not per frame.
// - `pollAt` says when the next poll can run: the caller (replay's virtual clock, live mode's epoll loop) comes
//   back then, or earlier with an arrival.
//
// Nothing here reads a clock or does I/O: time is an argument (replay passes virtual time from the traces, live
// mode the wall clock). Every method runs on the worker's thread, between polls; `arrive` is the per-frame path,
// inlinable with its state behind pointers, so it costs no exclusivity check, retain or release.

/// Frames waiting at a port's device that a poll fetches itself, as a driver's poll reads its RX descriptors: live
/// mode reads a port's TAP at poll time. Replay has none: its frames arrive at their times through `arrive`.
public protocol NAPIReceiver: AnyObject {
    /// A poll of `port` starts at `now`: moves up to `budget` frames waiting at the port onto its RX ring, through
    /// `scheduler.arrive`. Returns whether frames may still be waiting (the poll then comes back, behind the other
    /// ports, even if the ring is empty).
    func receive(port: Int, budget: Int, now: Nanos, scheduler: NAPIScheduler) -> Bool
    /// The worker has polled `port` (its flush done): a moment outside any poll, e.g. to drain the event ring.
    func polled(port: Int)
}

public final class NAPIScheduler {
    /// The worker whose CPU the polls share.
    public let worker: Worker
    /// Frames a poll takes at most (NAPI weight).
    public let budget: Int
    /// From the first arrival at an idle ring to the poll it schedules.
    public let pollDelay: Nanos
    /// Fetches frames at poll time (live mode); nil when frames only `arrive` (replay).
    public var receiver: (any NAPIReceiver)? {
        get { receiverStorage }
        set { receiverStorage = newValue }
    }
    @exclusivity(unchecked) private var receiverStorage: (any NAPIReceiver)?
    /// The number of ports; a port is its index in the devices given to `init`.
    public let portCount: Int
    /// Polls of a series (`runSeries`) at most.
    public static let seriesCapacity = 64
    /// The times and sizes (frames) of the polls `runSeries` runs; the caller fills them.
    public let seriesTimes: UnsafeMutablePointer<Nanos>
    public let seriesSizes: UnsafeMutablePointer<Int>

    /// The scheduler's counters and clock, behind a pointer (see the header).
    @usableFromInline struct State {
        /// When the CPU has finished the last poll.
        @usableFromInline var cpuFree: Nanos = 0
        @usableFromInline var polls: UInt64 = 0
        /// Frames arrived so far; the last one's sequence number.
        @usableFromInline var arrivals: UInt64 = 0
        /// The poll list: index of its first entry, and its length.
        @usableFromInline var head = 0
        @usableFromInline var count = 0
    }

    @usableFromInline let state: UnsafeMutablePointer<State>
    /// The pool's frame records, unretained: the worker owns the pool and outlives the scheduler.
    @usableFromInline let pool: Unmanaged<FramePool>
    /// The ports' devices and their rings, unretained: the network owns them and outlives the scheduler.
    @usableFromInline let devices: UnsafeMutablePointer<Unmanaged<NetDevice>>
    @usableFromInline let rings: UnsafeMutablePointer<Unmanaged<FrameRing>>
    /// Per port: frames arrived, and whether it stands in the poll list.
    @usableFromInline let arrivedByPort: UnsafeMutablePointer<UInt64>
    @usableFromInline let queued: UnsafeMutablePointer<Bool>
    /// The poll list, a ring of `portCount` entries: ports and the times they become ready.
    @usableFromInline let listPorts: UnsafeMutablePointer<Int>
    @usableFromInline let listReady: UnsafeMutablePointer<Nanos>
    /// Per port: the tap that sees its arrivals, unretained (nil: none), and how many of the port's arrivals it has
    /// seen (`showArrivals`): the others are the last frames of its ring.
    @usableFromInline let ingressTaps: UnsafeMutablePointer<Unmanaged<PortTap>?>
    @usableFromInline let shownArrivals: UnsafeMutablePointer<UInt64>
    /// Keeps the devices and the taps alive as long as the pointers to them.
    private let owners: ([NetDevice], [PortTap?])

    /// A scheduler for `devices` (port `i` is `devices[i]`) polled by `worker`; sets the worker's per-frame cost.
    /// `ingressTaps[i]` (if given) is port `i`'s tap; it sees the port's arrivals if its directions include
    /// ingress.
    public init(
        worker: Worker, devices: [NetDevice], ingressTaps: [PortTap?] = [], budget: Int, pollDelay: Nanos,
        frameCost: Nanos
    ) {
        precondition(ingressTaps.isEmpty || ingressTaps.count == devices.count, "a tap per port, or none")
        precondition(budget >= 1, "a poll takes at least one frame")
        self.worker = worker
        self.budget = budget
        self.pollDelay = pollDelay
        worker.frameCost = frameCost
        pool = .passUnretained(worker.pool)
        owners = (devices, ingressTaps)
        portCount = devices.count
        let capacity = max(devices.count, 1)
        state = .allocate(capacity: 1)
        state.initialize(to: State())
        self.devices = .allocate(capacity: capacity)
        rings = .allocate(capacity: capacity)
        for (i, device) in devices.enumerated() {
            (self.devices + i).initialize(to: .passUnretained(device))
            (rings + i).initialize(to: .passUnretained(device.rxRing))
        }
        arrivedByPort = .allocate(capacity: capacity)
        arrivedByPort.initialize(repeating: 0, count: capacity)
        queued = .allocate(capacity: capacity)
        queued.initialize(repeating: false, count: capacity)
        listPorts = .allocate(capacity: capacity)
        listReady = .allocate(capacity: capacity)
        self.ingressTaps = .allocate(capacity: capacity)
        self.ingressTaps.initialize(repeating: nil, count: capacity)
        shownArrivals = .allocate(capacity: capacity)
        shownArrivals.initialize(repeating: 0, count: capacity)
        for (i, tap) in ingressTaps.enumerated() where tap?.directions.contains(.ingress) == true {
            self.ingressTaps[i] = .passUnretained(tap!)
        }
        seriesTimes = .allocate(capacity: Self.seriesCapacity)
        seriesSizes = .allocate(capacity: Self.seriesCapacity)
    }

    deinit {
        state.deallocate()
        devices.deallocate()
        rings.deallocate()
        arrivedByPort.deallocate()
        queued.deallocate()
        listPorts.deallocate()
        listReady.deallocate()
        ingressTaps.deallocate()
        shownArrivals.deallocate()
        seriesTimes.deallocate()
        seriesSizes.deallocate()
    }

    // MARK: State

    /// When the CPU has finished the last poll; set it once to the time the run starts.
    public var cpuFree: Nanos {
        @inlinable get { state.pointee.cpuFree }
        @inlinable set { state.pointee.cpuFree = newValue }
    }

    /// Polls run so far.
    public var polls: UInt64 { @inlinable get { state.pointee.polls } }

    /// Frames arrived so far (each got the next sequence number), dropped at a full ring or not.
    public var arrivals: UInt64 { @inlinable get { state.pointee.arrivals } }

    /// Frames arrived at `port` so far.
    public func arrivals(port: Int) -> UInt64 { arrivedByPort[port] }

    /// Ports in the poll list.
    public var pendingPolls: Int { @inlinable get { state.pointee.count } }

    /// The device of `port`.
    public func device(_ port: Int) -> NetDevice { devices[port].takeUnretainedValue() }

    /// Free slots of `port`'s RX ring.
    @inlinable
    public func room(_ port: Int) -> Int { rings[port]._withUnsafeGuaranteedRef { $0.capacity &- $0.count } }

    /// Whether `port`'s RX ring is full.
    @inlinable
    public func isFull(_ port: Int) -> Bool { rings[port]._withUnsafeGuaranteedRef { $0.isFull } }

    /// poll_at: when the next poll can run (its port ready and the CPU free), nil when no port waits for one.
    @inlinable
    public func pollAt() -> Nanos? {
        let state = self.state.pointee
        return state.count > 0 ? max(listReady[state.head], state.cpuFree) : nil
    }

    // MARK: Arrivals

    /// `frame` arrives at `port` at `time`: it gets the next sequence number and its arrival time and goes onto
    /// the port's RX ring (its ingress ifindex is the port's, set when it was read for the port); with
    /// `schedulingPoll`, an idle port is listed for a poll `pollDelay` later. A frame that finds the ring full is
    /// dropped (`rx_ring_full`, at `time`). Returns whether it went onto the ring. The port's ingress tap sees
    /// the frame before a poll takes it or it is dropped.
    ///
    /// Without `schedulingPoll`, the caller runs the port's polls itself (`runSeries`) or lists it (`schedule`).
    @inlinable @inline(__always) @discardableResult
    public func arrive(_ frame: FrameID, port: Int, at time: Nanos, schedulingPoll: Bool = true) -> Bool {
        let state = self.state
        let sequence = state.pointee.arrivals &+ 1
        state.pointee.arrivals = sequence
        arrivedByPort[port] &+= 1
        pool._withUnsafeGuaranteedRef { pool in
            let info = pool.info(frame)
            info.pointee.sequence = sequence
            info.pointee.arrival = time
        }
        // The port's ingress tap sees it before a poll takes it or it is dropped (`showArrivals`).
        if rings[port]._withUnsafeGuaranteedRef({ $0.push(frame) }) {
            if schedulingPoll { schedule(port, ready: time &+ pollDelay) }
            return true
        }
        dropAtFullRing(frame, port: port, at: time)
        return false
    }

    /// The drop of a frame that found its ring full, stamped with its arrival time (the only use of the worker's
    /// clock outside a poll).
    @usableFromInline @inline(never)
    func dropAtFullRing(_ frame: FrameID, port: Int, at time: Nanos) {
        if let tap = ingressTaps[port] {
            // The ring's unseen frames, then the dropped one (the last arrival).
            showArrivals(port, before: 1)
            withUnsafePointer(to: frame) {
                tap.takeUnretainedValue().ingress(UnsafeBufferPointer(start: $0, count: 1), pool: worker.pool)
            }
            shownArrivals[port] &+= 1
        }
        worker.now = time
        devices[port]._withUnsafeGuaranteedRef { worker.drop(frame, .rxRingFull, at: $0) }
    }

    /// Lists `port` for a poll, ready at `time`, unless it is listed already (napi_schedule).
    @inlinable
    public func schedule(_ port: Int, ready time: Nanos) {
        guard !queued[port] else { return }
        queued[port] = true
        append(port, ready: time)
    }

    @inlinable
    func append(_ port: Int, ready time: Nanos) {
        let count = state.pointee.count
        precondition(count < portCount, "a port listed twice for a poll")
        var tail = state.pointee.head &+ count
        if tail >= portCount { tail &-= portCount }
        listPorts[tail] = port
        listReady[tail] = time
        state.pointee.count = count &+ 1
    }

    // MARK: Polls

    /// Runs the poll at the head of the list at `time` (`pollAt`, or later): the receiver's frames first, then
    /// the worker's poll, if the ring holds frames; the port goes to the back of the list, ready when the poll
    /// ends, if it has frames left, else leaves the list.
    public func pollNext(at time: Nanos) {
        let state = self.state
        let head = state.pointee.head
        let port = listPorts[head]
        state.pointee.head = head &+ 1 == portCount ? 0 : head &+ 1
        state.pointee.count &-= 1
        var waiting = false
        if let receiver = receiverStorage {
            waiting = receiver.receive(port: port, budget: budget, now: time, scheduler: self)
        }
        let ring = rings[port]
        if !ring._withUnsafeGuaranteedRef({ $0.isEmpty }) {
            showArrivals(port)
            devices[port]._withUnsafeGuaranteedRef { _ = worker.poll($0, budget: budget, now: time) }
            state.pointee.polls &+= 1
            state.pointee.cpuFree = worker.now
            receiverStorage?.polled(port: port)
        }
        if waiting || !ring._withUnsafeGuaranteedRef({ $0.isEmpty }) {
            append(port, ready: state.pointee.cpuFree)
        } else {
            queued[port] = false
        }
    }

    /// One round at `now`, as live mode runs them: each port listed when it starts is polled once, at `now`,
    /// whatever its ready time (the clock, not the scheduler, says what is due); ports with frames left are
    /// listed again, behind the others, for the next round.
    public func pollRound(at now: Nanos) {
        for _ in 0..<state.pointee.count { pollNext(at: now) }
    }

    /// `count` polls of `port`, one after the other, the i-th at `seriesTimes[i]` taking exactly `seriesSizes[i]`
    /// frames, which have arrived (without scheduling a poll); the port is not listed and its ring is empty after
    /// them (`Worker.pollSeries`). Replay's recorded timing delivers the frames of a stretch of polls that each
    /// leave the ring empty and share the CPU with no other port's, then runs them this way.
    public func runSeries(port: Int, count: Int) {
        guard count > 0 else { return }
        showArrivals(port)
        devices[port]._withUnsafeGuaranteedRef {
            worker.pollSeries($0, times: seriesTimes, sizes: seriesSizes, count: count)
        }
        state.pointee.polls &+= UInt64(count)
        state.pointee.cpuFree = worker.now
    }

    /// Drops every frame in `port`'s RX ring for `reason` at `time` (its device is gone, say), after its ingress
    /// tap has seen them.
    public func dropQueued(port: Int, reason: DropReason, at time: Nanos) {
        showArrivals(port)
        worker.now = time
        let device = devices[port].takeUnretainedValue()
        while let frame = device.rxRing.pop() { worker.drop(frame, reason, at: device) }
    }

    // MARK: Ingress tap

    /// Shows `port`'s ingress tap, if it has one, the frames it has not seen, which are the last ones of its ring
    /// but `before` (the arrivals after them, shown by the caller): in arrival order, at most two runs as the ring
    /// wraps. Runs before anything takes frames off the ring.
    @inlinable @inline(__always)
    func showArrivals(_ port: Int, before: UInt64 = 0) {
        guard ingressTaps[port] != nil, shownArrivals[port] &+ before != arrivedByPort[port] else { return }
        showUnseenArrivals(port, count: Int(truncatingIfNeeded: arrivedByPort[port] &- before &- shownArrivals[port]))
    }

    @usableFromInline
    func showUnseenArrivals(_ port: Int, count unseen: Int) {
        shownArrivals[port] &+= UInt64(unseen)
        let tap = ingressTaps[port].unsafelyUnwrapped
        let ring = rings[port].takeUnretainedValue().consumer
        let pool = worker.pool
        var start = ring.indices[0] &+ ring.indices[1] &- unseen
        if start >= ring.capacity { start &-= ring.capacity }
        let first = min(unseen, ring.capacity &- start)
        tap._withUnsafeGuaranteedRef { tap in
            tap.ingress(UnsafeBufferPointer(start: ring.slots + start, count: first), pool: pool)
            if first < unseen {
                tap.ingress(UnsafeBufferPointer(start: ring.slots, count: unseen &- first), pool: pool)
            }
        }
    }
}
