import Synchronization

// A worker is one simulated CPU: it owns a frame pool, its `bpf_redirect_info`, its per-CPU bulk queues and flush
// bitmaps (inside each map and entry), its XDP_TX queue and its event ring. Everything a worker touches on the
// per-frame path is its own, so the datapath takes no lock and does no atomic read-modify-write.
//
// A NAPI poll (`poll`) runs in three phases, in this order, and the order is the contract:
//   1. up to `budget` frames are taken from the device's RX ring; for each the program runs and its action is
//      carried out at once (DROP/ABORTED free the frame, PASS hands it to the local stack, TX queues it on the
//      ingress device, REDIRECT enqueues it into a devmap bulk queue, which is transmitted first if already full);
//   2. the flush (`xdp_do_flush_map`): the marked entries of the map last redirected into are transmitted, then
//      the XDP_TX queue is sent back out of the ingress device, as a driver rings its TX doorbell;
//   3. the quiescent point: the worker no longer holds any devmap entry, so entries retired since its previous
//      quiescent point can have their queues of this worker sent (deferred free, see DevMap.swift).
// Time is injected: `poll(now:)` stamps the frames it transmits with `now`, advanced by `frameCost` per frame.
//
// The worker's code, by concern:
// - Worker+Poll.swift: the poll loop (phase 1, then 2 and 3 in order) and the carrying out of each verdict;
// - Worker+Redirect.swift: `xdp_do_redirect` (map, plain ifindex, flood), the one place a redirect is carried out,
//   and its one fast path;
// - Worker+BulkQueue.swift: enqueue into the per-CPU bulk queues, their transmit, the flush and XDP_TX;
// - Worker+Reclamation.swift: the quiescent point (deferred free of retired entries);
// - Worker+DeviceQueue.swift: the modern profile's redirect, broadcast, per-device bulk queues and egress programs.
//
// Invariants the phases keep (each file says which of its functions rely on which):
// - every bulk started (first frame into an empty queue) since the last flush is in map_to_flush; the first two's
//   keys are in `flushPlan`, and from the third on every one of them is marked in this worker's flush bitmap of
//   the map, so the flush finds every queued frame (Worker+BulkQueue.swift);
// - map_to_flush names the map of the last successful redirect, or nil before the first (maps live as long as the
//   network, so the reference cannot dangle); a redirect into another map flushes it first, and the end of the
//   poll flushes it, so no frame waits in a queue past its poll;
// - a redirect consumes the per-CPU redirect info (index 0, no map), whether it succeeds or not.

/// Observes frames just before a worker frees them as drops (e.g. to capture them). Must not keep the frame.
public protocol DropObserver: AnyObject {
    func dropped(_ frame: FrameID, reason: DropReason, device: NetDevice, worker: Worker)
}

public final class Worker: @unchecked Sendable {
    // @unchecked Sendable: a worker is driven by exactly one thread at a time; shared state is reached only
    // through atomics (map slots, the retire epochs and the log they guard) or the network's control lock.
    // The same contract is why its `var`s opt out of dynamic exclusivity checks: a check is a runtime call
    // (swift_beginAccess), made per frame for `now`, `frameCost` and `dropObserver`.

    /// The simulated CPU number.
    public let cpu: Int
    public let pool: FramePool
    public let events: EventRing
    /// Virtual time now; during a poll it advances by `frameCost` per frame.
    ///
    /// Other modules (the replay engine, the live loop, transmitters and stacks) read and set it around every
    /// poll and bulk, so it is a computed property whose inlinable accessors reach the unchecked storage: their
    /// code, inlined, keeps the storage's unchecked access, whereas another module's direct access to a public
    /// stored property is checked at run time despite `@exclusivity(unchecked)`.
    public var now: Nanos {
        @inlinable get { nowStorage }
        @inlinable set { nowStorage = newValue }
    }
    @usableFromInline @exclusivity(unchecked) var nowStorage: Nanos = 0
    /// Virtual processing time per frame.
    @exclusivity(unchecked) public var frameCost: Nanos = 0
    /// Sees every dropped frame before it is freed.
    @exclusivity(unchecked) public var dropObserver: (any DropObserver)?
    /// Largest budget a poll may use (size of the XDP_TX queue).
    public let maxBudget: Int
    /// The network, for bpf_redirect's device lookup without a lock.
    @usableFromInline unowned(unsafe) let network: Network
    @usableFromInline let redirectInfo: UnsafeMutablePointer<RedirectInfo>
    @usableFromInline let txQueue: UnsafeMutablePointer<FrameID>
    /// The frames a poll has taken off the RX ring and not yet processed (at most `maxBudget`).
    @usableFromInline let rxBatch: UnsafeMutablePointer<FrameID>
    @usableFromInline let semantics: Semantics
    /// The retire log as the quiescent point sees it (plain pointers: no reference counting on shared objects).
    let retireLog: RetireLog.Reader
    /// The retire log's published epoch (`retireLog.published`), for the inlined test of `quiescentPoint`.
    @usableFromInline let publishedEpoch: UnsafeMutablePointer<Atomic<UInt64>>
    /// Retire epoch passed at the previous quiescent point.
    @exclusivity(unchecked) @usableFromInline var lastSeenEpoch: UInt64 = 0
    /// What the next flush sends, from the bulks started (a frame appended to an empty queue) since the last one,
    /// all in map_to_flush: `FlushPlan.nothing` when none was started, the keys of the first two (their queues),
    /// `FlushPlan.markedQueues` when more were (the queues of the keys marked in the flush bitmap). One word, so
    /// that the usual poll (one bulk) tests and sets it with one load and one store.
    @exclusivity(unchecked) @usableFromInline var flushPlan = FlushPlan.nothing
    /// The modern profile's per-CPU flush list: the devices whose bulk queue received a frame since the last flush,
    /// in the order they did (Worker+DeviceQueue.swift). Its capacity is reserved, so it grows without allocating
    /// until more devices than that are redirected to in one poll.
    @exclusivity(unchecked) var flushList: [Unmanaged<NetDevice>] = []

    init(cpu: Int, network: Network, pool: FramePool, eventCapacity: Int, maxBudget: Int) {
        self.cpu = cpu
        self.network = network
        self.pool = pool
        self.maxBudget = maxBudget
        semantics = network.semantics
        events = EventRing(capacity: eventCapacity)
        redirectInfo = allocateOnOwnCacheLines(RedirectInfo.self)
        redirectInfo.initialize(to: RedirectInfo(mapBits: 0, index: 0, mapToFlush: nil))
        txQueue = allocateOnOwnCacheLines(FrameID.self, count: maxBudget)
        rxBatch = allocateOnOwnCacheLines(FrameID.self, count: maxBudget)
        retireLog = network.retireLog.reader(cpu: cpu)
        publishedEpoch = retireLog.published
        lastSeenEpoch = retireLog.publishedEpoch()
        retireLog.pass(lastSeenEpoch)
        flushList.reserveCapacity(64)
    }

    deinit {
        redirectInfo.deallocate()
        txQueue.deallocate()
        rxBatch.deallocate()
    }

    // MARK: Drops

    /// Frees `frame` as a drop for `reason`, counted at `device`.
    @inlinable
    public func drop(_ frame: FrameID, _ reason: DropReason, at device: NetDevice) {
        device.countDrop(reason, cpu: cpu)
        release(frame, reason, at: device)
    }

    /// `drop` without the counting, for a caller that counts drops itself (the poll loop, once per poll).
    @inlinable @inline(__always)
    func release(_ frame: FrameID, _ reason: DropReason, at device: NetDevice) {
        if let observer = dropObserver { observer.dropped(frame, reason: reason, device: device, worker: self) }
        if events.isRecording { recordDrop(frame, reason, at: device) }
        pool.give(frame)
    }

    @usableFromInline @inline(never)
    func recordDrop(_ frame: FrameID, _ reason: DropReason, at device: NetDevice) {
        events.record(
            XDPEvent(
                kind: .drop, time: now, cpu: UInt32(cpu), ifindex: device.ifindex.rawValue,
                frame: pool.info(frame).pointee.sequence, reason: reason))
    }
}
