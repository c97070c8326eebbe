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

/// Whether a poll loop advances the worker's virtual time per frame (`Worker.frameCost`); see `Worker.run`.
@usableFromInline protocol PollClock { static var advances: Bool { get } }
/// `frameCost` is 0: the clock stands still during the poll.
@usableFromInline enum FixedClock: PollClock { @inlinable static var advances: Bool { false } }
/// `frameCost` is not 0: the clock advances by it per frame.
@usableFromInline enum AdvancingClock: PollClock { @inlinable static var advances: Bool { true } }

/// A device's attached program as a worker runs it: one NAPI poll at a time. `ProgramRunner` is the one
/// subclass. A class rather than a protocol, so that a worker can call it through an unretained reference
/// (`NetDevice.polledProgram`, an `Unmanaged`), without a retain and a release around every poll.
public class AttachedProgram: @unchecked Sendable {
    // @unchecked Sendable: handed to the worker thread that polls the device, and used only there.

    /// The program id events report.
    public let programID: UInt32

    @usableFromInline
    init(programID: UInt32) { self.programID = programID }

    /// Runs the program on up to `budget` frames of `device`'s RX ring (see `Worker.run`).
    public func poll(device: NetDevice, worker: Worker, budget: Int) -> Int {
        preconditionFailure("AttachedProgram.poll is implemented by ProgramRunner")
    }

    /// `count` polls one after the other, the i-th at `times[i]` taking `sizes[i]` frames (see `Worker.pollSeries`).
    public func pollSeries(device: NetDevice, worker: Worker, times: UnsafePointer<Nanos>, sizes: UnsafePointer<Int>,
                           count: Int) {
        preconditionFailure("AttachedProgram.pollSeries is implemented by ProgramRunner")
    }
}

/// Holds a program of a concrete type so that `Worker.poll` is specialised (and the program inlined) for it.
///
/// An override in a generic class is compiled once for every `Program`, so calling `Worker.run` from `poll`
/// directly would run the unspecialised loop (every program call through a witness table, ARC on each frame:
/// about 4x slower). Instead the initialiser, inlinable like `Network.attach`, forms `specialisedPoll` in the
/// module that knows the concrete type, where the compiler specialises `Worker.run` and inlines the program;
/// `poll` only calls it, once per NAPI poll.
public final class ProgramRunner<Program: XDPProgram>: AttachedProgram, @unchecked Sendable {
    /// The program's value, on cache lines of its own (`allocateOnOwnCacheLines`): a program may change its state
    /// with every frame, and the runners of two ports polled by two workers, allocated one after the other, would
    /// otherwise share a line (about 1 ns more per frame for each worker, and one worker alone also ran faster
    /// with it). Only the worker polling the device touches it (see `Worker`).
    @usableFromInline let storage: UnsafeMutablePointer<Program>
    @usableFromInline let specialisedPoll: (ProgramRunner<Program>, NetDevice, Worker, Int) -> Int
    @usableFromInline let specialisedPollSeries: (ProgramRunner<Program>, NetDevice, Worker, UnsafePointer<Nanos>,
                                                  UnsafePointer<Int>, Int) -> Void

    @inlinable
    public init(_ program: Program, programID: UInt32) {
        storage = allocateOnOwnCacheLines(Program.self)
        storage.initialize(to: program)
        specialisedPoll = { runner, device, worker, budget in
            worker.run(&runner.storage.pointee, programID: runner.programID, device: device, budget: budget)
        }
        specialisedPollSeries = { runner, device, worker, times, sizes, count in
            worker.runSeries(&runner.storage.pointee, programID: runner.programID, device: device, times: times,
                             sizes: sizes, count: count)
        }
        super.init(programID: programID)
    }

    deinit {
        storage.deinitialize(count: 1)
        storage.deallocate()
    }

    /// The attached program (read or changed between polls, on the thread that polls the device).
    public var program: Program {
        get { storage.pointee }
        set { storage.pointee = newValue }
    }

    override public func poll(device: NetDevice, worker: Worker, budget: Int) -> Int {
        specialisedPoll(self, device, worker, budget)
    }

    override public func pollSeries(device: NetDevice, worker: Worker, times: UnsafePointer<Nanos>,
                                    sizes: UnsafePointer<Int>, count: Int) {
        specialisedPollSeries(self, device, worker, times, sizes, count)
    }
}

/// Observes frames just before a worker frees them as drops (e.g. to capture them). Must not keep the frame.
public protocol DropObserver: AnyObject {
    func dropped(_ frame: FrameID, reason: DropReason, device: NetDevice, worker: Worker)
}

public final class Worker: @unchecked Sendable {
    // @unchecked Sendable: a worker is driven by exactly one thread at a time; shared state is reached only
    // through atomics (map slots, the retire epochs and the log they guard) or the network's control lock.
    // The same contract is why its `var`s opt out of dynamic exclusivity checks: a check is a runtime call of
    // ~90 instructions (swift_beginAccess), made per frame for `now`, `frameCost` and `dropObserver`.

    /// The simulated CPU number.
    public let cpu: Int
    public let pool: FramePool
    public let events: EventRing
    /// Virtual time now; during a poll it advances by `frameCost` per frame.
    ///
    /// Other modules (the replay engine, the live loop, transmitters and stacks) read and set it around every
    /// poll and bulk, so it is a computed property whose inlinable accessors reach the unchecked storage: their
    /// code, inlined, keeps the storage's unchecked access, whereas another module's direct access to a public
    /// stored property was checked at run time despite `@exclusivity(unchecked)` (a `swift_beginAccess` call,
    /// 70-120 instructions with its thread-local lookup).
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
    /// Inverse of `NetDevice.isRegistered`-style lookups without locks: the network, for bpf_redirect and
    /// the control plane.
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
    /// The map the last flush flushed (maps live as long as the network, so the reference cannot dangle).
    @exclusivity(unchecked) @usableFromInline var lastFlushedMap: Unmanaged<DevMap>?

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
    }

    deinit {
        redirectInfo.deallocate()
        txQueue.deallocate()
        rxBatch.deallocate()
    }

    // MARK: NAPI poll

    /// One NAPI poll of `device` at virtual time `now`: runs the attached program (or passes every frame when
    /// none is attached) on up to `budget` frames of its RX ring, then flushes, then passes the quiescent point.
    /// Returns the number of frames processed; less than `budget` means the ring is empty (NAPI completes).
    @discardableResult
    public func poll(_ device: NetDevice, budget: Int, now: Nanos) -> Int {
        self.now = now
        if let program = device.polledProgram {
            return program._withUnsafeGuaranteedRef { $0.poll(device: device, worker: self, budget: budget) }
        }
        var passAll = ConstantProgram(.pass)
        return run(&passAll, programID: 0, device: device, budget: budget)
    }

    /// `count` NAPI polls of `device` one after the other: the i-th runs at virtual time `times[i]`
    /// (non-decreasing) and takes exactly `sizes[i]` frames (`1...maxBudget`) of its RX ring, which holds at least
    /// their sum. The same as `count` calls of `poll(device, budget: sizes[i], now: times[i])`, each with just its
    /// frames in the ring: replay with recorded timing delivers a stretch of polls' frames, then runs the polls
    /// this way rather than a poll per call (with distinct timestamps, a poll is mostly one frame).
    public func pollSeries(_ device: NetDevice, times: UnsafePointer<Nanos>, sizes: UnsafePointer<Int>, count: Int) {
        if let program = device.polledProgram {
            program._withUnsafeGuaranteedRef {
                $0.pollSeries(device: device, worker: self, times: times, sizes: sizes, count: count)
            }
            return
        }
        var passAll = ConstantProgram(.pass)
        runSeries(&passAll, programID: 0, device: device, times: times, sizes: sizes, count: count)
    }

    /// `pollSeries`' loop, specialised per program type.
    @inlinable
    public func runSeries<P: XDPProgram>(_ program: inout P, programID: UInt32, device: NetDevice,
                                         times: UnsafePointer<Nanos>, sizes: UnsafePointer<Int>, count: Int) {
        guard frameCost == 0 else {
            // The clock advances per frame: poll by poll (not what replay's defaults make).
            for i in 0..<count {
                precondition(device.rxRing.count >= sizes[i], "fewer frames in the RX ring than the poll takes")
                nowStorage = times[i]
                _ = run(&program, programID: programID, device: device, budget: sizes[i], clock: AdvancingClock.self)
            }
            return
        }
        // `run` for polls that know their frames: no batch taken off the ring, no `runUsual` (a poll here is
        // mostly one frame), and the device's counters added once at the end (nothing reads them in between).
        let ring = device.rxRing.consumer
        let frames = pool.storage
        let recording = events.isRecording
        let cpu = self.cpu
        var counts = PollCounts()
        var tally = PollTally()
        var processed = 0
        for i in 0..<count {
            let size = sizes[i]
            precondition(UInt(bitPattern: size &- 1) < UInt(maxBudget) && ring.count >= size, "poll size out of range")
            processed &+= size
            nowStorage = times[i]
            let fastPathOff = recording || pool.shortHeadroomTaken
            var fast = fastMapAtPollStart(fastPathOff: fastPathOff)
            if size == 1 {
                // The usual poll. When its frame is queued without a transmit, its queue is the only one of a
                // published entry holding frames (every poll's flush sends all of those), so the flush would
                // send that queue and nothing else; the frame is queued without marking its key for the flush,
                // as the mark would be cleared again before anything could see it.
                if let queue = runAndQueue(&program, ring: ring, frames: frames, fast: &fast, fastPathOff: fastPathOff,
                                           device: device, programID: programID, cpu: cpu, counts: &counts,
                                           tally: &tally, markForFlush: false) {
                    flushOnly(queue)
                    quiescentPoint()
                    continue
                }
            } else {
                for _ in 0..<size {
                    _ = runAndQueue(&program, ring: ring, frames: frames, fast: &fast, fastPathOff: fastPathOff,
                                    device: device, programID: programID, cpu: cpu, counts: &counts, tally: &tally,
                                    markForFlush: true)
                }
            }
            flushAndSendXDPTx(txCount: tally.txCount, device: device, programID: programID)
            tally.txCount = 0
            quiescentPoint()
        }
        addPollCounts(counts, tally: tally, processed: processed, device: device)
    }

    /// `runSeries`' handling of the next frame of the RX ring: runs the program and carries out its verdict.
    /// Returns the entry whose queue took the frame when it was the usual frame, a `bpf_redirect_map` into the map
    /// to flush queued without a transmit (as in `runUsual`; its key marked for the flush if `markForFlush`, see
    /// `flushOnly`); nil when it took the full handling.
    @inlinable @inline(__always)
    func runAndQueue<P: XDPProgram>(_ program: inout P, ring: FrameRing.Consumer, frames: FramePool.Storage,
                                    fast: inout FastMap, fastPathOff: Bool, device: NetDevice, programID: UInt32,
                                    cpu: Int, counts: inout PollCounts, tally: inout PollTally,
                                    markForFlush: Bool) -> EntryBlock? {
        let frame = ring.pop().unsafelyUnwrapped
        let stop = runProgram(&program, on: frame, frames: frames, programID: programID, rxBytes: &counts.rxBytes)
        if stop.action.rawValue == XDPAction.redirect.rawValue,
           let entry = queueIntoFastMap(stop, fast: fast, cpu: cpu, from: device, markForFlush: markForFlush) {
            return entry
        }
        handle(stop, fast: &fast, fastPathOff: fastPathOff, device: device, programID: programID, counts: &counts,
               tally: &tally, clock: FixedClock.self)
        return nil
    }

    /// The usual redirect's whole handling, with no call: when the program's `bpf_redirect_map` went into the fast
    /// map (the map to flush, with nothing left in the redirect info, so carrying it out consumes the request this
    /// run made and the redirect info stays empty), its slot holds an entry, and `enqueueWithoutTransmit` takes the
    /// frame, returns that entry; nil, having changed nothing, otherwise. The caller has checked the action.
    /// `markForFlush` false leaves the key unmarked (only for `flushOnly`, which sends the queue at once).
    @inlinable @inline(__always)
    func queueIntoFastMap(_ verdict: FrameVerdict, fast: FastMap, cpu: Int, from device: NetDevice,
                          markForFlush: Bool = true) -> EntryBlock? {
        guard verdict.requestBits == fast.bits,
              let entry = DevMap.block(at: verdict.index, slots: fast.slots, maxEntries: fast.maxEntries),
              enqueueWithoutTransmit(verdict.frame, info: verdict.info, into: entry, map: verdict.requestBits,
                                     cpu: cpu, from: device, markForFlush: markForFlush)
        else { return nil }
        return entry
    }

    /// `flushRedirects` when `entry`'s queue, of the map to flush, is the only queue of a published entry that
    /// holds frames: the flush's scan of the marks would find this one to send, and keys whose slot is empty
    /// to keep; it sends the queue. The frame was queued without marking its key (`runAndQueue`), so there is no
    /// mark to clear. (A mark already on the key, left when its slot was emptied and filled again, stays until
    /// the next full flush, which finds the queue empty: sending an empty queue does nothing.)
    @inlinable @inline(__always)
    func flushOnly(_ entry: EntryBlock) {
        lastFlushedMap = redirectInfo.pointee.mapToFlush.unsafelyUnwrapped
        redirectInfo.pointee.mapToFlush = nil
        transmitBulk(entry, flags: .flush)
    }

    /// The poll loop, specialised per program type. Call through `poll`.
    @inlinable
    public func run<P: XDPProgram>(_ program: inout P, programID: UInt32, device: NetDevice, budget: Int) -> Int {
        precondition(budget > 0 && budget <= maxBudget, "budget out of range")
        // Two copies of the loop, so that the usual case (no virtual cost per frame) spends nothing on the clock.
        // The choice is a type, not a Bool argument: the optimiser may keep one shared copy of a function called
        // with two constants (it did, and tested the flag from the stack for every frame), but it specialises a
        // generic function per type.
        if frameCost == 0 {
            return run(&program, programID: programID, device: device, budget: budget, clock: FixedClock.self)
        }
        return run(&program, programID: programID, device: device, budget: budget, clock: AdvancingClock.self)
    }

    /// The poll loop, one specialisation per program type and per `PollClock`.
    @inlinable
    func run<P: XDPProgram, Clock: PollClock>(_ program: inout P, programID: UInt32, device: NetDevice, budget: Int,
                                              clock: Clock.Type) -> Int {
        let pool = self.pool
        // The ring's and the pool's storage pointers, read once: the optimiser cannot tell that the stores through
        // raw pointers in the loop leave the objects' fields alone, so it would reload them for every frame.
        let ring = device.rxRing.consumer
        let frames = pool.storage
        let rxBatch = self.rxBatch
        // Read once per poll: only the control plane sets it, between polls.
        let recording = events.isRecording
        // A dropped frame goes straight back to the pool unless something watches drops.
        let plainDrops = dropObserver == nil && !recording
        var processed = 0
        // The ingress device's per-frame counters, added to its counters once per poll, before the flush.
        // `redirected` is derived at the end from the frames that took another way (rare paths count those).
        var counts = PollCounts()
        // What the rarer actions count (`otherAction`), in memory, out of the loop's registers.
        var tally = PollTally()
        // The map of the poll's fast path (`FastMap.none` for none): a `bpf_redirect_map` into it needs no
        // map_to_flush work, because it is the map to flush already. Kept only while that is known to hold: it is
        // set from map_to_flush after every redirect that took the full path, the only redirects that change
        // map_to_flush during a poll. With events recording, every redirect takes the full path.
        //
        // The fast path also leaves out the headroom check (EOVERFLOW), which only a frame taken with less than
        // 32 bytes of headroom can fail: while the pool has handed out none (`mayHoldShortHeadroom`, read again
        // for each batch, as a frame pushed during the poll may be one), every frame passes it.
        var fastPathOff = recording || pool.shortHeadroomTaken
        var fast = fastMapAtPollStart(fastPathOff: fastPathOff)
        // The RX ring is drained in batches: every frame the ring holds (up to the budget) is taken off it and
        // copied into `rxBatch`, then processed one by one in ring order; then the ring is looked at again, so
        // frames pushed during the poll are still processed in this poll, in the same order as one pop per frame.
        while processed < budget {
            let run = ring.pop(upTo: budget &- processed, into: rxBatch)
            if run == 0 { break }
            if _slowPath(pool.shortHeadroomTaken) && !fastPathOff {
                fastPathOff = true
                fast = .none
            }
            processed &+= run
            var next = rxBatch
            let end = rxBatch + run
            let oneAtATime = fastPathOff || run == 1
            while next != end {
                // The usual frames run in a function of their own with no call in it (`runUsual`), so that the
                // values it carries stay in registers; a call anywhere in the loop forces them into the few
                // callee-saved registers or the stack. It returns at the first frame it cannot finish alone, with
                // its program's verdict, for the full handling below. With the fast path off (events recording,
                // a short headroom) every redirect needs the full handling, so the program runs here, one frame at
                // a time; so does a batch of one frame (a poll of one, as replay with recorded timing and a lightly
                // loaded live port make), for which the call with its eleven arguments costs more than the full
                // handling.
                let stop: FrameVerdict
                if oneAtATime {
                    let frame = next.pointee
                    next += 1
                    stop = runProgram(&program, on: frame, frames: frames, programID: programID,
                                      rxBytes: &counts.rxBytes)
                } else {
                    guard let other = runUsual(&program, next: &next, end: end, frames: frames, fast: fast,
                                               plainDrops: plainDrops, programID: programID, device: device,
                                               counts: &counts, clock: clock) else { break }
                    stop = other
                }
                handle(stop, fast: &fast, fastPathOff: fastPathOff, device: device, programID: programID,
                       counts: &counts, tally: &tally, clock: clock)
            }
        }
        addPollCounts(counts, tally: tally, processed: processed, device: device)
        flushAndSendXDPTx(txCount: tally.txCount, device: device, programID: programID)
        quiescentPoint()
        return processed
    }

    /// The fast map a poll starts with (see `run`), making the map the previous poll flushed the map to flush.
    ///
    /// A poll starts with no map to flush, so its first redirect would take the full path. Making the map the
    /// previous poll flushed the map to flush changes nothing that can be observed (at worst that map is flushed
    /// once more with nothing marked: no transmit, no event; see `DevMap.flush`), and lets the first redirect into
    /// it take the fast path too. A request left in the redirect info by an earlier frame must be consumed by the
    /// next redirect, which the full path does; the fast path is taken only while the redirect info is empty.
    @inlinable @inline(__always)
    func fastMapAtPollStart(fastPathOff: Bool) -> FastMap {
        if !fastPathOff && redirectInfo.pointee.mapToFlush == nil {
            redirectInfo.pointee.mapToFlush = lastFlushedMap
        }
        return fastPathOff || redirectInfo.pointee.mapBits != 0 || redirectInfo.pointee.index != 0
            ? FastMap.none : FastMap(redirectInfo.pointee.mapToFlush)
    }

    /// The poll loop's full handling of a frame whose program has run (`stop`): every action, every redirect.
    @inlinable @inline(__always)
    func handle<Clock: PollClock>(_ stop: FrameVerdict, fast: inout FastMap, fastPathOff: Bool, device: NetDevice,
                                  programID: UInt32, counts: inout PollCounts, tally: inout PollTally,
                                  clock: Clock.Type) {
        let frame = stop.frame, info = stop.info, action = stop.action
        let requestBits = stop.requestBits, index = stop.index
        if action.rawValue == XDPAction.redirect.rawValue {
            let done: Bool
            if requestBits == fast.bits {
                let map = Unmanaged<DevMap>.fromOpaque(UnsafeRawPointer(bitPattern: requestBits).unsafelyUnwrapped)
                done = redirectIntoMapToFlush(frame, info: info, map: map, slots: fast.slots,
                                              maxEntries: fast.maxEntries, index: index, from: device,
                                              programID: programID)
            } else {
                done = carryOutRedirect(frame, requestBits: requestBits, index: index, info: info, from: device,
                                        programID: programID)
                fast = fastPathOff ? .none : FastMap(redirectInfo.pointee.mapToFlush)
            }
            if !done { counts.notRedirected &+= 1 }
            if Clock.advances { now &+= frameCost }
            return
        }
        counts.notRedirected &+= 1
        if _slowPath(requestBits != RedirectInfo.noRequest) {
            // A helper was called but the program returned another action: the request stays in the per-CPU
            // redirect info for a later bare XDP_REDIRECT, which then takes the full path.
            redirectInfo.pointee.mapBits = requestBits
            redirectInfo.pointee.index = index
            fast = .none
        }
        if action.rawValue == XDPAction.drop.rawValue {
            counts.programDrops &+= 1
            release(frame, .programDrop, at: device)
        } else {
            otherAction(action, frame: frame, device: device, programID: programID, tally: &tally)
        }
        if Clock.advances { now &+= frameCost }
    }

    /// Adds what polls of `device` counted (`processed` frames) to its counters.
    @inlinable @inline(__always)
    func addPollCounts(_ counts: PollCounts, tally: PollTally, processed: Int, device: NetDevice) {
        let redirected = UInt64(processed &- counts.notRedirected)
        device.count(DeviceCounter.rxPackets, cpu: cpu, UInt64(processed))
        device.count(DeviceCounter.rxBytes, cpu: cpu, counts.rxBytes)
        device.count(DeviceCounter.redirected, cpu: cpu, redirected)
        device.count(DeviceCounter.passed, cpu: cpu, tally.passed)
        device.countDrop(.programDrop, cpu: cpu, counts.programDrops)
    }

    /// A poll's transmits at its end, in the kernel's order: the redirect flush, then the XDP_TX frames (the
    /// quiescent point follows).
    @inlinable @inline(__always)
    func flushAndSendXDPTx(txCount: Int, device: NetDevice, programID: UInt32) {
        flushRedirects()
        if txCount > 0 { transmitXDPTx(count: txCount, device: device, programID: programID) }
    }

    /// The poll loop's usual frames, from `next` up to `end`: runs the program on each and finishes the frame when
    /// that needs no call (a `bpf_redirect_map` into the fast map whose enqueue transmits nothing, a plain
    /// XDP_DROP). Returns at the first frame it does not finish, with the program's verdict (`next` is past it),
    /// or nil when it finished them all.
    @inlinable @inline(never)
    func runUsual<P: XDPProgram, Clock: PollClock>(
        _ program: inout P, next: inout UnsafeMutablePointer<FrameID>, end: UnsafeMutablePointer<FrameID>,
        frames: FramePool.Storage, fast: FastMap, plainDrops: Bool, programID: UInt32, device: NetDevice,
        counts: inout PollCounts, clock: Clock.Type
    ) -> FrameVerdict? {
        var position = next
        var rxBytes = counts.rxBytes
        let cpu = self.cpu
        // The program's value moved into a local for the loop: its state can then live in registers rather than
        // be loaded and stored through the runner's storage for every frame.
        var local = consume program
        defer {
            next = position
            counts.rxBytes = rxBytes
            program = local
        }
        while position != end {
            let frame = position.pointee
            position += 1
            let ran = runProgram(&local, on: frame, frames: frames, programID: programID, rxBytes: &rxBytes)
            let info = ran.info, action = ran.action, requestBits = ran.requestBits, index = ran.index
            if _fastPath(action.rawValue == XDPAction.redirect.rawValue) {
                // A `bpf_redirect_map` into map_to_flush, finished here (see `queueIntoFastMap`).
                if queueIntoFastMap(ran, fast: fast, cpu: cpu, from: device) != nil {
                    if Clock.advances { now &+= frameCost }
                    continue
                }
                // A return of its own with the action spelled out: sharing the one below, whose action merges the
                // constants of the program's returns, made the optimiser load those constants into registers
                // ahead of the program's branches for every frame (3 instructions).
                return FrameVerdict(frame: frame, info: info, action: .redirect, requestBits: requestBits, index: index)
            } else if action.rawValue == XDPAction.drop.rawValue && plainDrops
                        && requestBits == RedirectInfo.noRequest {
                counts.notRedirected &+= 1
                counts.programDrops &+= 1
                pool.give(frame)
                if Clock.advances { now &+= frameCost }
                continue
            }
            return ran
        }
        return nil
    }

    /// Runs the program on `frame` (adding its length to `rxBytes` first) and returns its verdict.
    @inlinable @inline(__always)
    func runProgram<P: XDPProgram>(_ program: inout P, on frame: FrameID, frames: FramePool.Storage,
                                   programID: UInt32, rxBytes: inout UInt64) -> FrameVerdict {
        let info = frames.info(frame)
        rxBytes &+= UInt64(info.pointee.length)
        var context = XDPContext(hardStart: frames.bufferStart(frame), bufferSize: frames.bufferSize, record: info,
                                 rxQueueIndex: 0, now: now, programID: programID, semantics: semantics)
        let action = program.run(&context)
        return FrameVerdict(frame: frame, info: info, action: action, requestBits: context.requestBits,
                            index: context.requestIndex)
    }

    /// XDP_PASS, XDP_TX, XDP_ABORTED and unknown actions, carried out for the poll loop's full handling (a plain
    /// XDP_DROP, the one other action a filtering program returns for most frames, is finished in `runUsual`).
    @usableFromInline @inline(never)
    func otherAction(_ action: XDPAction, frame: FrameID, device: NetDevice, programID: UInt32,
                     tally: inout PollTally) {
        switch action.rawValue {
        case XDPAction.pass.rawValue:
            tally.passed &+= 1
            device.stack.receive(frame, device: device, worker: self)
        case XDPAction.tx.rawValue:
            txQueue[tally.txCount] = frame
            tally.txCount &+= 1
        default:
            // XDP_ABORTED, and any unknown code (bpf_warn_invalid_xdp_action), trace xdp_exception and drop.
            if events.isRecording {
                events.record(XDPEvent(kind: .exception, time: now, cpu: UInt32(cpu), programID: programID,
                                       action: action.rawValue, ifindex: device.ifindex.rawValue,
                                       frame: pool.info(frame).pointee.sequence))
            }
            drop(frame, .aborted, at: device)
        }
    }

    // MARK: Redirect (xdp_do_redirect)

    /// `bpf_redirect_map`'s redirect into the map that is map_to_flush already (the usual case, forced inline into
    /// the poll loop): the lookup in `slots` (the map's, read once per poll) and the enqueue; map_to_flush stays as
    /// it is, whether the redirect succeeds or fails. Returns true when the frame was queued or sent, false when it
    /// was dropped.
    @inlinable @inline(__always)
    func redirectIntoMapToFlush(_ frame: FrameID, info: UnsafeMutablePointer<FrameInfo>, map mapRef: Unmanaged<DevMap>,
                                slots: UnsafeMutablePointer<Atomic<UInt>>, maxEntries: UInt32, index: UInt32,
                                from ingress: NetDevice, programID: UInt32) -> Bool {
        redirect(frame, info: info, map: mapRef,
                 entry: DevMap.block(at: index, slots: slots, maxEntries: maxEntries), index: index, from: ingress,
                 programID: programID, headroomAssured: true, beforeEnqueue: {}, onQueued: { _, _ in })
    }

    /// Carries out the redirect the program asked for (`xdp_do_redirect`), whatever it is; the poll loop takes
    /// `redirectIntoMapToFlush` instead when it can. `requestBits` and `index` are what the run's helpers asked for
    /// (`XDPContext.requestBits`, `noRequest` when it called none). Returns true when the frame was queued or sent;
    /// false when it was dropped (the reason is counted at the ingress device).
    @usableFromInline @inline(never)
    func carryOutRedirect(_ frame: FrameID, requestBits: UInt, index: UInt32, info: UnsafeMutablePointer<FrameInfo>,
                          from ingress: NetDevice, programID: UInt32) -> Bool {
        // A run that called no helper carries out what the redirect info holds; either way the request is consumed
        // (ri->ifindex = 0, ri->map = NULL).
        var request = redirectInfo.pointee
        if requestBits != RedirectInfo.noRequest {
            request.mapBits = requestBits
            request.index = index
        }
        redirectInfo.pointee.mapBits = 0
        redirectInfo.pointee.index = 0
        guard let mapRef = request.map, request.mapBits & RedirectInfo.floodBits == 0 else {
            return carryOutOtherRedirect(frame, request: request, from: ingress, programID: programID)
        }
        let index = request.index
        let entry = mapRef._withUnsafeGuaranteedRef { $0.block(at: index) }
        return redirect(frame, info: info, map: mapRef, entry: entry, index: index, from: ingress,
                        programID: programID, headroomAssured: false, beforeEnqueue: {
                            // A redirect into a different map first flushes the one redirected into before (4.18)...
                            if let previous = redirectInfo.pointee.mapToFlush,
                               previous.toOpaque() != mapRef.toOpaque() {
                                flushRedirects()
                            }
                        },
                        onQueued: { map, entry in
                            // ...and only a successful one makes its map the one to flush.
                            redirectInfo.pointee.mapToFlush = mapRef
                            if events.isRecording {
                                recordRedirectMap(.redirectMap, map: map, index: index,
                                                  to: entry.device.takeUnretainedValue().ifindex.rawValue, error: 0,
                                                  from: ingress,
                                                  programID: programID, frame: info.pointee.sequence)
                            }
                        })
    }

    /// `bpf_redirect_map` carried out: looks `index` up in the map (EINVAL when the slot is empty), runs
    /// `beforeEnqueue`, enqueues the frame into the entry's bulk queue and runs `onQueued` when that worked. A
    /// failure traces `xdp_redirect_map_err` and drops the frame. Forced inline, so that the closures are too.
    @inlinable @inline(__always)
    func redirect(_ frame: FrameID, info: UnsafeMutablePointer<FrameInfo>, map mapRef: Unmanaged<DevMap>,
                  entry entryOrNil: EntryBlock?, index: UInt32, from ingress: NetDevice, programID: UInt32,
                  headroomAssured: Bool, beforeEnqueue: () -> Void, onQueued: (DevMap, EntryBlock) -> Void) -> Bool {
        mapRef._withUnsafeGuaranteedRef { map in
            guard let entry = entryOrNil else {
                return redirectMapFailed(frame, info: info, map: map, index: index, to: 0,
                                         error: KernelErrno.EINVAL.rawValue, from: ingress, programID: programID)
            }
            beforeEnqueue()
            let error = enqueue(frame, info: info, into: entry, of: map, from: ingress,
                                headroomAssured: headroomAssured)
            guard error == 0 else {
                return redirectMapFailed(frame, info: info, map: map, index: index,
                                         to: entry.device.takeUnretainedValue().ifindex.rawValue, error: error,
                                         from: ingress, programID: programID)
            }
            onQueued(map, entry)
            return true
        }
    }

    /// The redirects other than `bpf_redirect_map`: plain `bpf_redirect` (no map) and the flood.
    @usableFromInline @inline(never)
    func carryOutOtherRedirect(_ frame: FrameID, request: RedirectInfo, from ingress: NetDevice,
                               programID: UInt32) -> Bool {
        guard let mapRef = request.map else {
            return redirectToDevice(frame, ifindex: request.index, from: ingress, programID: programID)
        }
        let excludeIngress = request.mapBits & RedirectInfo.floodBits == RedirectInfo.floodExcludingIngress
        return mapRef._withUnsafeGuaranteedRef {
            flood(frame, map: $0, excludeIngress: excludeIngress, from: ingress, programID: programID)
        }
    }

    /// A `bpf_redirect_map` that failed with `error` (positive errno): traced as `xdp_redirect_map_err`, the frame
    /// dropped at the ingress device. Returns false.
    @usableFromInline @inline(never)
    func redirectMapFailed(_ frame: FrameID, info: UnsafeMutablePointer<FrameInfo>, map: DevMap, index: UInt32,
                           to: UInt32, error: Int32, from ingress: NetDevice, programID: UInt32) -> Bool {
        traceRedirectMap(.redirectMapErr, map: map, index: index, to: to, error: -error, from: ingress,
                         programID: programID, frame: info.pointee.sequence)
        drop(frame, DropReason.redirect(errno: error), at: ingress)
        return false
    }

    @inlinable
    func traceRedirectMap(_ kind: XDPEventKind, map: DevMap, index: UInt32, to: UInt32, error: Int32,
                          from ingress: NetDevice, programID: UInt32, frame: UInt64) {
        guard events.isRecording else { return }
        recordRedirectMap(kind, map: map, index: index, to: to, error: error, from: ingress, programID: programID,
                          frame: frame)
    }

    @usableFromInline @inline(never)
    func recordRedirectMap(_ kind: XDPEventKind, map: DevMap, index: UInt32, to: UInt32, error: Int32,
                           from ingress: NetDevice, programID: UInt32, frame: UInt64) {
        events.record(XDPEvent(kind: kind, time: now, cpu: UInt32(cpu), programID: programID,
                               action: XDPAction.redirect.rawValue, ifindex: ingress.ifindex.rawValue, error: error,
                               toIfindex: to, mapID: map.id, mapIndex: index, frame: frame))
    }

    /// `dev_map_enqueue`: returns 0 or a positive errno. Checks in the kernel's order: no ndo_xdp_xmit
    /// (EOPNOTSUPP), target down (ENETDOWN), longer than mtu + 18 (EMSGSIZE; GSO super-frames are exempt, as
    /// `is_skb_forwardable` exempts them), no headroom for struct xdp_frame plus metadata (EOVERFLOW).
    /// `map` is `entry.map`, passed in because the caller holds it (reading it from the block's header would be
    /// one more load per frame).
    @inlinable @inline(__always)
    func enqueue(_ frame: FrameID, info: UnsafeMutablePointer<FrameInfo>, into entry: EntryBlock, of map: DevMap,
                 from ingress: NetDevice, headroomAssured: Bool = false) -> Int32 {
        let error = entry.device._withUnsafeGuaranteedRef {
            forwardCheck(info: info, target: $0, headroomAssured: headroomAssured)
        }
        guard error == 0 else { return error }
        let queue = entry.queue(cpu: cpu)
        var count = Int(queue.load(fromByteOffset: BulkQueueLayout.countOffset, as: UInt32.self))
        if _slowPath(count == BulkQueueLayout.capacity) {
            transmitBulk(entry, flags: [])
            count = 0
        }
        append(frame, length: info.pointee.length, to: queue, holding: count, of: entry, in: map, from: ingress,
               cpu: cpu)
        return 0
    }

    /// `enqueue` for the poll loop's usual frames (`runUsual`), with no call: the same work when the frame passes
    /// the forwarding check (with the headroom assured) and the queue is not full; returns false, having changed
    /// nothing, when either does not hold (the full path then finds the errno, or transmits the full queue first).
    /// `mapBits` is the bits of `entry`'s map. `markForFlush`: see `append`.
    @inlinable @inline(__always)
    func enqueueWithoutTransmit(_ frame: FrameID, info: UnsafeMutablePointer<FrameInfo>, into entry: EntryBlock,
                                map mapBits: UInt, cpu: Int, from ingress: NetDevice, markForFlush: Bool) -> Bool {
        let length = info.pointee.length
        guard entry.device._withUnsafeGuaranteedRef({
            $0.passesForwardLimit(length: length, missingBytes: info.pointee.missingBytes)
        }) else { return false }
        let queue = entry.queue(cpu: cpu)
        let count = Int(queue.load(fromByteOffset: BulkQueueLayout.countOffset, as: UInt32.self))
        guard count < BulkQueueLayout.capacity else { return false }
        Unmanaged<DevMap>.fromOpaque(UnsafeRawPointer(bitPattern: mapBits).unsafelyUnwrapped)._withUnsafeGuaranteedRef {
            append(frame, length: length, to: queue, holding: count, of: entry, in: $0, from: ingress, cpu: cpu,
                   markForFlush: markForFlush)
        }
        return true
    }

    /// Appends `frame` (`length` bytes) to `queue`, this worker's bulk queue of `entry` in `map`, which holds
    /// `count` frames, fewer than 16. `markForFlush` false leaves the key unmarked: only for a queue the caller
    /// sends before the poll ends (`Worker.flushOnly`), so that no flush, quiescent point or other frame sees it
    /// unmarked.
    @inlinable @inline(__always)
    func append(_ frame: FrameID, length: UInt32, to queue: UnsafeMutableRawPointer, holding count: Int,
                of entry: EntryBlock, in map: DevMap, from ingress: NetDevice, cpu: Int, markForFlush: Bool = true) {
        if _slowPath(count == 0) {
            // The first frame since the queue was last sent records dev_rx and marks the key for the flush. Later
            // frames need neither: dev_rx is set exactly while the queue holds frames (transmitBulk resets both),
            // and the queue of a published entry that holds frames is always marked (only the flush clears the
            // mark of a published entry, and it sends the queue first; the quiescent point clears marks after the
            // flush, when every published entry's queue is empty). The one exception is a queue appended to
            // unmarked, which `runSeries` sends (`flushOnly`) before anything else runs.
            queue.storeBytes(of: ingress.ifindex.rawValue, toByteOffset: BulkQueueLayout.devRxOffset, as: UInt32.self)
            if markForFlush { map.markForFlush(entry.key, cpu: cpu) }
        }
        queue.storeBytes(of: frame.rawValue, toByteOffset: BulkQueueLayout.framesOffset &+ count &* 4, as: UInt32.self)
        queue.storeBytes(of: UInt32(truncatingIfNeeded: count &+ 1), toByteOffset: BulkQueueLayout.countOffset,
                         as: UInt32.self)
        addToQueueCounter(queue, BulkQueueLayout.bytesOffset, UInt64(length))
    }

    /// The checks a frame passes before it may be handed to `target`'s ndo_xdp_xmit; 0 or a positive errno.
    /// The usual case, an up device with a transmitter, a frame within its MTU and the headroom for the
    /// xdp_frame, is two comparisons (`NetDevice.forwardLimit` folds the device's state into one number);
    /// anything else takes `forwardError`, which finds the errno in the kernel's order. `headroomAssured` (the poll
    /// loop's fast path, see `FramePool.mayHoldShortHeadroom`) leaves the headroom comparison out.
    @inlinable @inline(__always)
    func forwardCheck(info: UnsafeMutablePointer<FrameInfo>, target: NetDevice,
                      headroomAssured: Bool = false) -> Int32 {
        let record = info.pointee
        if _fastPath(target.passesForwardLimit(length: record.length, missingBytes: record.missingBytes)
            && (headroomAssured || Int(record.dataOffset) &- Int(record.metaLength) >= KernelConstants.xdpFrameSize)) {
            return 0
        }
        return forwardError(info: info, target: target)
    }

    /// `forwardCheck`'s rare path: 0 (a GSO super-frame above the MTU) or the errno of the first failing check.
    @usableFromInline @inline(never)
    func forwardError(info: UnsafeMutablePointer<FrameInfo>, target: NetDevice) -> Int32 {
        guard target.transmitter != nil else { return KernelErrno.EOPNOTSUPP.rawValue }
        guard target.isUp else { return KernelErrno.ENETDOWN.rawValue }
        if info.pointee.length &+ info.pointee.missingBytes > target.maxForwardLength && info.pointee.gsoSize == 0 {
            return KernelErrno.EMSGSIZE.rawValue
        }
        if Int(info.pointee.dataOffset) &- Int(info.pointee.metaLength) < KernelConstants.xdpFrameSize {
            return KernelErrno.EOVERFLOW.rawValue
        }
        return 0
    }

    /// `bq_xmit_all`: hands this worker's queue of `entry` to the target's ndo_xdp_xmit and accounts the result:
    /// on an errno every frame is dropped; on a partial send the unsent ones are. Traces `xdp_devmap_xmit`.
    @usableFromInline
    func transmitBulk(_ entry: EntryBlock, flags: XmitFlags) {
        let queue = entry.queue(cpu: cpu)
        let count = Int(queue.load(fromByteOffset: BulkQueueLayout.countOffset, as: UInt32.self))
        guard count > 0 else { return }
        // The device through the block's unretained reference (the entry holds it): no retain and release per bulk.
        entry.device._withUnsafeGuaranteedRef { device in
            transmit(queue, count: count, of: entry, to: device, flags: flags)
        }
    }

    /// `transmitBulk` once the queue is known to hold `count` frames.
    @inline(__always)
    private func transmit(_ queue: UnsafeMutableRawPointer, count: Int, of entry: EntryBlock, to device: NetDevice,
                          flags: XmitFlags) {
        let frames = UnsafeMutableBufferPointer(
            start: (queue + BulkQueueLayout.framesOffset).assumingMemoryBound(to: FrameID.self), count: count)
        let result = device.transmitter!.xdpXmit(frames, flags: flags, device: device, worker: self)
        // Summed at enqueue time (a queued frame's record does not change until it is sent).
        var sentBytes = queue.load(fromByteOffset: BulkQueueLayout.bytesOffset, as: UInt64.self)
        var sent = count
        if _slowPath(Int(result) != count) {
            sent = dropUnsent(frames, result: result, bytes: &sentBytes, device: device)
            addToQueueCounter(queue, BulkQueueLayout.dropsOffset, UInt64(count &- sent))
        }
        let drops = count &- sent
        addToQueueCounter(queue, BulkQueueLayout.sentOffset, UInt64(sent))
        addToQueueCounter(queue, BulkQueueLayout.flushesOffset, 1)
        device.count(DeviceCounter.txPackets, cpu: cpu, UInt64(sent))
        device.count(DeviceCounter.txBytes, cpu: cpu, sentBytes)
        if events.isRecording {
            recordDevmapXmit(entry, queue: queue, device: device, result: result, sent: sent, drops: drops)
        }
        // The queue is empty again: count and dev_rx (adjacent words) cleared with one store, and the bytes.
        queue.storeBytes(of: 0, toByteOffset: BulkQueueLayout.countOffset, as: UInt64.self)
        queue.storeBytes(of: 0, toByteOffset: BulkQueueLayout.bytesOffset, as: UInt64.self)
    }

    /// Traces `xdp_devmap_xmit` (out of line, so that the flush keeps `transmitBulk` inlined).
    @inline(never)
    private func recordDevmapXmit(_ entry: EntryBlock, queue: UnsafeMutableRawPointer, device: NetDevice,
                                  result: Int32, sent: Int, drops: Int) {
        events.record(XDPEvent(kind: .devmapXmit, time: now, cpu: UInt32(cpu), action: XDPAction.redirect.rawValue,
                               ifindex: 0, error: min(result, 0), toIfindex: device.ifindex.rawValue,
                               fromIfindex: queue.load(fromByteOffset: BulkQueueLayout.devRxOffset, as: UInt32.self),
                               mapID: entry.map.takeUnretainedValue().id, mapIndex: entry.key, sent: Int32(sent),
                               drops: Int32(drops)))
    }

    /// `transmitBulk`'s rare path: ndo_xdp_xmit returned an errno (`result` < 0: every frame is dropped) or sent
    /// fewer frames than it was given (the rest are dropped). Returns how many were sent and takes the dropped
    /// frames' bytes off `bytes`.
    @usableFromInline @inline(never)
    func dropUnsent(_ frames: UnsafeMutableBufferPointer<FrameID>, result: Int32, bytes: inout UInt64,
                    device: NetDevice) -> Int {
        if result < 0 {
            bytes = 0
            for frame in frames { drop(frame, .xmitError, at: device) }
            return 0
        }
        precondition(Int(result) <= frames.count, "ndo_xdp_xmit reported more frames sent than it was given")
        for i in Int(result)..<frames.count {
            bytes &-= UInt64(pool.info(frames[i]).pointee.length)
            drop(frames[i], .xmitUnsent, at: device)
        }
        return Int(result)
    }

    @inlinable
    func bytesOf(_ frames: UnsafeMutableBufferPointer<FrameID>) -> UInt64 {
        var total: UInt64 = 0
        for frame in frames { total &+= UInt64(pool.info(frame).pointee.length) }
        return total
    }

    @inlinable
    func addToQueueCounter(_ queue: UnsafeMutableRawPointer, _ offset: Int, _ amount: UInt64) {
        queue.storeBytes(of: queue.load(fromByteOffset: offset, as: UInt64.self) &+ amount, toByteOffset: offset,
                         as: UInt64.self)
    }

    /// `xdp_do_flush_map`: flushes the map last redirected into, if any. Must run before a poll returns. Only the
    /// poll and the redirect paths call it: the poll loop's fast path relies on map_to_flush not changing behind it.
    @inlinable
    func flushRedirects() {
        guard let map = redirectInfo.pointee.mapToFlush else { return }
        redirectInfo.pointee.mapToFlush = nil
        lastFlushedMap = map
        map._withUnsafeGuaranteedRef { $0.flush(worker: self) }
    }

    /// Sends the poll's XDP_TX frames back out of the ingress device, after the redirect flush.
    @usableFromInline
    func transmitXDPTx(count: Int, device: NetDevice, programID: UInt32) {
        let frames = UnsafeMutableBufferPointer(start: txQueue, count: count)
        var sent: Int32 = -KernelErrno.EOPNOTSUPP.rawValue
        let bytes = bytesOf(frames)
        if let transmitter = device.transmitter {
            sent = transmitter.xdpXmit(frames, flags: .flush, device: device, worker: self)
        }
        let first = max(0, Int(sent))
        var sentBytes = bytes
        for i in first..<count {
            sentBytes &-= UInt64(pool.info(frames[i]).pointee.length)
            if events.isRecording {
                events.record(XDPEvent(kind: .exception, time: now, cpu: UInt32(cpu), programID: programID,
                                       action: XDPAction.tx.rawValue, ifindex: device.ifindex.rawValue,
                                       frame: pool.info(frames[i]).pointee.sequence))
            }
            drop(frames[i], .txError, at: device)
        }
        device.count(DeviceCounter.xdpTx, cpu: cpu, UInt64(first))
        device.count(DeviceCounter.txPackets, cpu: cpu, UInt64(first))
        device.count(DeviceCounter.txBytes, cpu: cpu, sentBytes)
    }

    /// Plain `bpf_redirect(ifindex)`: looked up at redirect time and sent at once with XDP_XMIT_FLUSH (no bulk
    /// queue). Traces `xdp_redirect` or `xdp_redirect_err` with to_ifindex = the requested index.
    @usableFromInline
    func redirectToDevice(_ frame: FrameID, ifindex: UInt32, from ingress: NetDevice, programID: UInt32) -> Bool {
        let info = pool.info(frame)
        var error: Int32 = 0
        if let target = network.device(ifindex: IfIndex(ifindex)) {
            error = forwardCheck(info: info, target: target)
            if error == 0 {
                var one = frame
                let bytes = UInt64(info.pointee.length)
                let sent = withUnsafeMutablePointer(to: &one) {
                    target.transmitter!.xdpXmit(UnsafeMutableBufferPointer(start: $0, count: 1),
                                                                flags: .flush, device: target, worker: self)
                }
                if sent < 0 {
                    error = -sent
                } else {
                    if sent == 0 { drop(frame, .xmitUnsent, at: target) } else {
                        target.count(DeviceCounter.txPackets, cpu: cpu)
                        target.count(DeviceCounter.txBytes, cpu: cpu, bytes)
                    }
                }
            }
        } else {
            error = KernelErrno.EINVAL.rawValue
        }
        if events.isRecording {
            events.record(XDPEvent(kind: error == 0 ? .redirect : .redirectErr, time: now, cpu: UInt32(cpu),
                                   programID: programID, action: XDPAction.redirect.rawValue,
                                   ifindex: ingress.ifindex.rawValue, error: -error, toIfindex: ifindex,
                                   frame: info.pointee.sequence))
        }
        guard error == 0 else {
            drop(frame, DropReason.redirect(errno: error), at: ingress)
            return false
        }
        return true
    }

    /// The emulator's flood (a `BPF_F_BROADCAST`-style clone to every entry of `map`, optionally skipping the
    /// ingress device; targets that are down, cannot transmit or are too small are skipped silently). Not a 4.18
    /// helper: built-in programs such as the L2 switch use it to flood unknown destinations.
    @usableFromInline
    func flood(_ frame: FrameID, map: DevMap, excludeIngress: Bool, from ingress: NetDevice,
               programID: UInt32) -> Bool {
        let info = pool.info(frame)
        if let previous = redirectInfo.pointee.mapToFlush,
           previous.toOpaque() != Unmanaged.passUnretained(map).toOpaque() {
            flushRedirects()
        }
        var pending: EntryBlock?
        for key in 0..<map.maxEntries {
            guard let entry = map.block(at: key) else { continue }
            let usable = entry.device._withUnsafeGuaranteedRef { device in
                !(excludeIngress && device === ingress) && forwardCheck(info: info, target: device) == 0
            }
            guard usable else { continue }
            if let previousTarget = pending {
                guard let copy = pool.clone(frame) else { break }
                ingress.count(DeviceCounter.cloned, cpu: cpu)
                _ = enqueue(copy, info: pool.info(copy), into: previousTarget, of: map, from: ingress)
            }
            pending = entry
        }
        if events.isRecording {
            events.record(XDPEvent(kind: .redirectMap, time: now, cpu: UInt32(cpu), programID: programID,
                                   action: XDPAction.redirect.rawValue, ifindex: ingress.ifindex.rawValue,
                                   toIfindex: pending?.device.takeUnretainedValue().ifindex.rawValue ?? 0,
                                   mapID: map.id,
                                   frame: info.pointee.sequence))
        }
        guard let last = pending else {
            drop(frame, .redirectInvalid, at: ingress)
            return false
        }
        _ = enqueue(frame, info: info, into: last, of: map, from: ingress)
        redirectInfo.pointee.mapToFlush = Unmanaged.passUnretained(map)
        return true
    }

    // MARK: Drops and reclamation

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
        events.record(XDPEvent(kind: .drop, time: now, cpu: UInt32(cpu), ifindex: device.ifindex.rawValue,
                               frame: pool.info(frame).pointee.sequence, reason: reason))
    }

    /// The quiescent point (end of a poll): sends this worker's queues of the entries retired since the previous
    /// one (`dev_map_flush_old`) and tells the control plane, which releases an entry once every worker is done
    /// with it. Takes no lock and allocates nothing (see RetireLog.swift). Call it also when a worker goes idle, so
    /// retired entries do not wait for its next poll.
    ///
    /// Inlinable, so that a poll compiled in another module tests for retired entries without a call (there are
    /// none at nearly every poll).
    @inlinable
    public func quiescentPoint() {
        let latest = publishedEpoch.pointee.load(ordering: .acquiring)
        if _slowPath(latest != lastSeenEpoch) { passQuiescentPoint(latest) }
    }

    /// `quiescentPoint` when entries were retired since the previous one (`latest` is the published epoch).
    @usableFromInline @inline(never)
    func passQuiescentPoint(_ latest: UInt64) {
        retireLog.forEachRetired(after: lastSeenEpoch, upTo: latest) { entry in
            entry.map._withUnsafeGuaranteedRef { map in
                if entry.device._withUnsafeGuaranteedRef({ $0.transmitter != nil }) {
                    map.clearFlushMark(entry.key, cpu: cpu)
                    transmitBulk(entry, flags: .flush)
                }
                // This worker is done with the entry: its counters go to the map, leaving the block clean.
                map.foldTransmitCounters(of: entry, cpu: cpu)
            }
        }
        lastSeenEpoch = latest
        retireLog.pass(latest)
    }
}

/// A poll's per-frame counts, added to the ingress device's counters once per poll.
@usableFromInline
struct PollCounts {
    @usableFromInline var rxBytes: UInt64 = 0
    /// Frames that took another way than a redirect (the redirected count is derived from it).
    @usableFromInline var notRedirected = 0
    @usableFromInline var programDrops: UInt64 = 0
    @inlinable init() {}
}

/// A frame with what its program decided: the action and the redirect request its helpers left in the context.
@usableFromInline
struct FrameVerdict {
    @usableFromInline let frame: FrameID
    @usableFromInline let info: UnsafeMutablePointer<FrameInfo>
    @usableFromInline let action: XDPAction
    @usableFromInline let requestBits: UInt
    @usableFromInline let index: UInt32
    @inlinable init(frame: FrameID, info: UnsafeMutablePointer<FrameInfo>, action: XDPAction, requestBits: UInt,
                    index: UInt32) {
        self.frame = frame
        self.info = info
        self.action = action
        self.requestBits = requestBits
        self.index = index
    }
}

/// The counts of a poll's rarer actions (see `Worker.otherAction`).
@usableFromInline
struct PollTally {
    @usableFromInline var passed: UInt64 = 0
    @usableFromInline var txCount = 0
    @inlinable init() {}
}

/// The map of the poll loop's fast path: the bits a `bpf_redirect_map` into it leaves in
/// `XDPContext.requestBits`, and its slots, read once rather than through the map for every frame (which puts two
/// more dependent loads in front of each frame's lookup).
@usableFromInline
struct FastMap {
    @usableFromInline let bits: UInt
    @usableFromInline let slots: UnsafeMutablePointer<Atomic<UInt>>
    @usableFromInline let maxEntries: UInt32

    /// `map`, or `none` when there is no map.
    @inlinable
    init(_ map: Unmanaged<DevMap>?) {
        guard let map else {
            self = .none
            return
        }
        bits = UInt(bitPattern: map.toOpaque())
        (slots, maxEntries) = map._withUnsafeGuaranteedRef { ($0.slots, $0.maxEntries) }
    }

    @inlinable
    init(bits: UInt, slots: UnsafeMutablePointer<Atomic<UInt>>, maxEntries: UInt32) {
        self.bits = bits
        self.slots = slots
        self.maxEntries = maxEntries
    }

    /// No fast path: bits that are never a map's, nil's (a plain `bpf_redirect`) or `RedirectInfo.noRequest`.
    @inlinable static var none: FastMap {
        FastMap(bits: UInt.max,
                slots: UnsafeMutablePointer(bitPattern: MemoryLayout<Atomic<UInt>>.alignment).unsafelyUnwrapped,
                maxEntries: 0)
    }
}
