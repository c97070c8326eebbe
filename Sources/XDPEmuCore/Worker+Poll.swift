import Synchronization

// The NAPI poll: the one loop that takes frames off a device's RX ring, runs the program on each and carries out
// its verdict at once, then ends the poll in the kernel's order (flush of map_to_flush, XDP_TX, quiescent point).
// `poll` and `pollSeries` are its two entry points; both run `pollOnce`, specialised per program type (through
// `ProgramRunner`), per `PollClock` and per `PollFrameCount` (a series' polls of one or two frames).
//
// Within a batch of frames taken off the ring, `runUsualFrames` runs the program and finishes the usual verdicts
// (a redirect the fast path takes, a drop nothing watches) in a loop with no call in it, and hands any other
// verdict to `carryOut`, which carries out every verdict. A batch of one or two frames, and every batch while
// the fast path is off, runs the program beside `carryOut` instead: the call would cost more than it saves.
//
// Phase 1 runs with no lock and no allocation. What it relies on:
// - the RX ring, the pool, the redirect info, the XDP_TX queue and the event ring are this worker's alone, and
//   nobody changes whether events are recorded during a poll (the control plane does it between polls);
// - map_to_flush changes during a poll only in a redirect carried out by `xdpDoRedirect`; the fast path
//   (`queueIntoMapToFlush`, Worker+Redirect.swift) is valid only while that map is known, so the loop renews its
//   `FastMap` after every such redirect and drops it when a request is left behind.

extension Worker {
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

    /// `poll` for a program of type `P` (`ProgramRunner` calls it, specialised).
    @inlinable
    public func run<P: XDPProgram>(_ program: inout P, programID: UInt32, device: NetDevice, budget: Int) -> Int {
        precondition(budget > 0 && budget <= maxBudget, "budget out of range")
        var counts = PollCounts()
        let processed =
            semantics == .v4_18
            ? run(
                &program, programID: programID, device: device, budget: budget, counts: &counts, profile: Linux418.self)
            : run(
                &program, programID: programID, device: device, budget: budget, counts: &counts,
                profile: LinuxModern.self)
        addPollCounts(counts, processed: processed, device: device)
        return processed
    }

    /// `run` for the profile `Profile`.
    @inlinable
    func run<P: XDPProgram, Profile: KernelProfile>(
        _ program: inout P, programID: UInt32, device: NetDevice, budget: Int, counts: inout PollCounts,
        profile: Profile.Type
    ) -> Int {
        let ring = device.rxRing.consumer
        let frames = pool.storage
        let setup = PollSetup(self)
        var fast = fastMapAtPollStart(setup: setup)
        var context = XDPContext(frames: frames, programID: programID, profile: profile)
        return frameCost == 0
            ? pollOnce(
                &program, programID: programID, device: device, ring: ring, frames: frames, budget: budget,
                counts: &counts, setup: setup, fast: &fast, context: &context, clock: FixedClock.self,
                frameCount: UpToBudget.self, profile: profile)
            : pollOnce(
                &program, programID: programID, device: device, ring: ring, frames: frames, budget: budget,
                counts: &counts, setup: setup, fast: &fast, context: &context, clock: AdvancingClock.self,
                frameCount: UpToBudget.self, profile: profile)
    }

    /// `pollSeries` for a program of type `P` (`ProgramRunner` calls it, specialised).
    @inlinable
    public func runSeries<P: XDPProgram>(
        _ program: inout P, programID: UInt32, device: NetDevice,
        times: UnsafePointer<Nanos>, sizes: UnsafePointer<Int>, count: Int
    ) {
        switch (frameCost == 0, semantics == .v4_18) {
        case (true, true):
            runSeries(
                &program, programID: programID, device: device, times: times, sizes: sizes, count: count,
                clock: FixedClock.self, profile: Linux418.self)
        case (false, true):
            runSeries(
                &program, programID: programID, device: device, times: times, sizes: sizes, count: count,
                clock: AdvancingClock.self, profile: Linux418.self)
        case (true, false):
            runSeries(
                &program, programID: programID, device: device, times: times, sizes: sizes, count: count,
                clock: FixedClock.self, profile: LinuxModern.self)
        case (false, false):
            runSeries(
                &program, programID: programID, device: device, times: times, sizes: sizes, count: count,
                clock: AdvancingClock.self, profile: LinuxModern.self)
        }
    }

    /// `count` polls of `pollOnce`. The device's counters are added once at the end: nothing reads them in between.
    @inlinable
    func runSeries<P: XDPProgram, Clock: PollClock, Profile: KernelProfile>(
        _ program: inout P, programID: UInt32, device: NetDevice,
        times: UnsafePointer<Nanos>, sizes: UnsafePointer<Int>,
        count: Int, clock: Clock.Type, profile: Profile.Type
    ) {
        var counts = PollCounts()
        var processed = 0
        let ring = device.rxRing.consumer
        let frames = pool.storage
        // Nothing runs between the polls of a series: what they read of the worker's settings is read once, and
        // each poll starts with the fast map the one before it ended with (see `pollOnce`).
        let setup = PollSetup(self)
        var fast = fastMapAtPollStart(setup: setup)
        var context = XDPContext(frames: frames, programID: programID, profile: profile)
        for i in 0..<count {
            let size = sizes[i]
            precondition(
                UInt(bitPattern: size &- 1) < UInt(maxBudget) && ring.count >= size,
                "poll size out of range, or fewer frames in the RX ring than the poll takes")
            nowStorage = times[i]
            if size == 1 {
                processed &+= pollOnce(
                    &program, programID: programID, device: device, ring: ring, frames: frames,
                    budget: 1, counts: &counts, setup: setup, fast: &fast, context: &context, clock: clock,
                    frameCount: OneAtATime.self, profile: profile)
            } else {
                processed &+= pollOutOfLine(
                    &program, programID: programID, device: device, ring: ring, frames: frames,
                    budget: size, counts: &counts, setup: setup, fast: &fast, context: &context, clock: clock,
                    profile: profile)
            }
        }
        addPollCounts(counts, processed: processed, device: device)
    }

    /// `pollOnce` for a series' polls of two frames or more (those of two one frame at a time, the rest in
    /// batches): out of line, so that the series' loop keeps the state of its usual polls, of one frame, in
    /// registers.
    @inlinable @inline(never)
    func pollOutOfLine<P: XDPProgram, Clock: PollClock, Profile: KernelProfile>(
        _ program: inout P, programID: UInt32, device: NetDevice, ring: FrameRing.Consumer,
        frames: FramePool.Storage, budget: Int, counts: inout PollCounts, setup: PollSetup, fast: inout FastMap,
        context: inout XDPContext, clock: Clock.Type, profile: Profile.Type
    ) -> Int {
        if budget == 2 {
            return pollOnce(
                &program, programID: programID, device: device, ring: ring, frames: frames, budget: 2,
                counts: &counts, setup: setup, fast: &fast, context: &context, clock: clock,
                frameCount: OneAtATime.self, profile: profile)
        }
        return pollOnce(
            &program, programID: programID, device: device, ring: ring, frames: frames, budget: budget,
            counts: &counts, setup: setup, fast: &fast, context: &context, clock: clock, frameCount: UpToBudget.self,
            profile: profile)
    }

    /// The poll: phase 1 on up to `budget` frames, then the flush, XDP_TX and the quiescent point. Adds what it
    /// counts per frame to `counts` (the caller adds those to the device). Returns the number of frames processed.
    /// `ring` and `frames` are `device.rxRing.consumer` and `pool.storage`, read by the caller once for all its
    /// polls: the optimiser cannot tell that the stores through raw pointers in the loop leave the objects'
    /// fields alone, so it would reload them for every frame. With `OneAtATime` the ring holds `budget`
    /// frames.
    ///
    /// `fast` is the fast map at the poll's start (`fastMapAtPollStart`); the poll leaves in it the fast map the
    /// next poll starts with, if nothing changes the redirect info in between (as in a series): the loop keeps
    /// it equal to what `fastMapAtPollStart` would make of the redirect info (a redirect through `xdpDoRedirect`
    /// consumes the info, and the fast map follows map_to_flush; a request left behind makes it `none`; the
    /// flush, XDP_TX and the quiescent point change neither), but for a frame with a short headroom taken during
    /// the poll's last frame, which the next poll's test of the pool catches. `context` is the program context
    /// that the frames of `OneAtATime` polls share, a series' polls of one frame or two (`XDPContext.nextFrame`);
    /// the frames of longer polls each get one made whole.
    @inlinable @inline(__always)
    func pollOnce<P: XDPProgram, Clock: PollClock, Count: PollFrameCount, Profile: KernelProfile>(
        _ program: inout P, programID: UInt32, device: NetDevice, ring: FrameRing.Consumer,
        frames: FramePool.Storage, budget: Int, counts: inout PollCounts, setup: PollSetup,
        fast: inout FastMap, context: inout XDPContext, clock: Clock.Type, frameCount: Count.Type,
        profile: Profile.Type
    ) -> Int {
        let rxBatch = setup.rxBatch
        let plainDrops = setup.plainDrops
        // Every redirect after the pool has handed out a frame with less headroom than the xdp_frame needs takes
        // `xdpDoRedirect`: the fast path leaves out the headroom check (EOVERFLOW), which only such a frame can fail.
        var fastPathOff = setup.slowRedirects || pool.shortHeadroomTaken
        if fastPathOff { fast = .none }
        var txCount = 0
        var processed = 0
        // The ring is drained in batches: every frame it holds (up to the budget) is copied into `rxBatch` and
        // processed in ring order; then the ring is looked at again, so frames pushed during the poll are still
        // processed in this poll, in the order of one pop per frame.
        while processed < budget {
            let taken: Int
            if Count.oneAtATime {
                rxBatch.pointee = ring.removeFirst()
                taken = 1
            } else {
                taken = ring.pop(upTo: budget &- processed, into: rxBatch)
                if taken == 0 { break }
            }
            processed &+= taken
            var next = rxBatch
            let end = rxBatch + taken
            // With the fast path off every redirect needs `carryOut`, and a batch of one or two frames (a poll of
            // one or two, as replay with recorded timing and a lightly loaded port make) is cheaper without the
            // call: then each frame is run here and carried out by `carryOut` alone.
            let oneAtATime = fastPathOff || taken <= 2
            while next != end {
                let verdict: FrameVerdict
                if oneAtATime {
                    if Count.oneAtATime {
                        verdict = runProgram(
                            &program, on: next.pointee, frames: frames, context: &context,
                            rxBytes: &counts.rxBytes)
                    } else {
                        var frameContext = XDPContext(
                            frame: next.pointee, frames: frames, now: now, programID: programID, profile: profile)
                        verdict = runProgram(
                            &program, on: next.pointee, frames: frames, context: &frameContext,
                            rxBytes: &counts.rxBytes)
                    }
                    next += 1
                } else {
                    guard
                        let stop = runUsualFrames(
                            &program, next: &next, end: end, frames: frames, fast: fast,
                            plainDrops: plainDrops, programID: programID, device: device,
                            counts: &counts, clock: clock, profile: profile)
                    else { break }
                    verdict = stop
                }
                carryOut(
                    verdict, fast: &fast, fastPathOff: fastPathOff, device: device, programID: programID,
                    counts: &counts, txCount: &txCount)
                if Clock.advances { nowStorage &+= frameCost }
            }
            // A frame pushed during the poll, which a later batch takes, may be one with a short headroom.
            if processed < budget && _slowPath(pool.shortHeadroomTaken) && !fastPathOff {
                fastPathOff = true
                fast = .none
            }
        }
        // Phases 2 and 3, in the kernel's order.
        if Count.oneAtATime { flushRedirectsInPlace() } else { flushRedirects() }
        if txCount > 0 { transmitXDPTx(count: txCount, device: device, programID: programID) }
        quiescentPoint()
        return processed
    }

    /// The fast map a poll starts with (see `FastMap`): map_to_flush, which still names the map the previous poll
    /// flushed (see `flushRedirects`), so that the poll's first redirect into it takes the fast path too. A request
    /// left in the redirect info by an earlier frame must be consumed by the next redirect, which the full path
    /// does; the fast path is taken only while the redirect info is empty.
    @inlinable @inline(__always)
    func fastMapAtPollStart(setup: PollSetup) -> FastMap {
        let info = redirectInfo
        guard !setup.slowRedirects && !pool.shortHeadroomTaken && info.pointee.mapBits == 0 && info.pointee.index == 0
        else { return .none }
        return FastMap(info.pointee.mapToFlush)
    }

    /// Runs the program on `frame` (adding its length to `rxBytes` first) in `context`, the poll's, and returns
    /// its verdict.
    @inlinable @inline(__always)
    func runProgram<P: XDPProgram>(
        _ program: inout P, on frame: FrameID, frames: FramePool.Storage, context: inout XDPContext,
        rxBytes: inout UInt64
    ) -> FrameVerdict {
        let info = frames.info(frame)
        rxBytes &+= UInt64(info.pointee.length)
        context.nextFrame(hardStart: frames.bufferStart(frame), record: info, now: now)
        let action = program.run(&context)
        return FrameVerdict(
            frame: frame, info: info, action: action, requestBits: context.requestBits,
            index: context.requestIndex)
    }

    /// Runs the program on the frames from `next` up to `end` (the only place it runs) and finishes the usual
    /// verdicts: a `bpf_redirect_map` the fast path takes (`queueIntoMapToFlush`), and an XDP_DROP while nothing
    /// watches drops (`plainDrops`: no drop observer, no events), whose frame goes back to the pool. Returns at
    /// the first frame it does not finish, with its verdict for `carryOut` (`next` is past it), or nil when it
    /// finished them all.
    ///
    /// A function of its own, not inlined, with no call in its loop but the program's: what the loop carries from
    /// frame to frame (the batch, the pool's storage, the fast map, the program's state, moved into a local) then
    /// stays in registers, whereas a call anywhere in the loop (`carryOut` makes several) puts it in the stack.
    @inlinable @inline(never)
    func runUsualFrames<P: XDPProgram, Clock: PollClock, Profile: KernelProfile>(
        _ program: inout P, next: inout UnsafeMutablePointer<FrameID>, end: UnsafeMutablePointer<FrameID>,
        frames: FramePool.Storage, fast: FastMap, plainDrops: Bool, programID: UInt32, device: NetDevice,
        counts: inout PollCounts, clock: Clock.Type, profile: Profile.Type
    ) -> FrameVerdict? {
        var position = next
        let cpu = self.cpu
        var rxBytes = counts.rxBytes
        var local = consume program
        defer {
            next = position
            counts.rxBytes = rxBytes
            program = local
        }
        while position != end {
            var frameContext = XDPContext(
                frame: position.pointee, frames: frames, now: now, programID: programID, profile: profile)
            let verdict = runProgram(
                &local, on: position.pointee, frames: frames, context: &frameContext, rxBytes: &rxBytes)
            position += 1
            if _fastPath(verdict.action.rawValue == XDPAction.redirect.rawValue) {
                guard queueIntoMapToFlush(verdict, fast: fast, cpu: cpu, from: device) else { return verdict }
            } else if verdict.action.rawValue == XDPAction.drop.rawValue && plainDrops
                && verdict.requestBits == RedirectInfo.noRequest
            {
                // `carryOut`'s DROP when nothing watches drops: the frame goes back to the pool.
                counts.notRedirected &+= 1
                counts.programDrops &+= 1
                pool.give(verdict.frame)
            } else {
                return verdict
            }
            if Clock.advances { nowStorage &+= frameCost }
        }
        return nil
    }

    /// Carries out a verdict at once (phase 1): a redirect through the fast path when it takes it, else through
    /// `xdpDoRedirect` (a verdict `runUsualFrames` returned has failed the fast path already: trying it again
    /// changes nothing); a request the program made but did not act on is kept in the redirect info for a later
    /// bare XDP_REDIRECT; DROP frees the frame; the rest go to `otherAction`. Inside a poll only.
    @inlinable @inline(__always)
    func carryOut(
        _ verdict: FrameVerdict, fast: inout FastMap, fastPathOff: Bool, device: NetDevice,
        programID: UInt32, counts: inout PollCounts, txCount: inout Int
    ) {
        if _fastPath(verdict.action.rawValue == XDPAction.redirect.rawValue) {
            if queueIntoMapToFlush(verdict, fast: fast, cpu: cpu, from: device) { return }
            if !xdpDoRedirect(
                verdict.frame, info: verdict.info, requestBits: verdict.requestBits,
                index: verdict.index, from: device, programID: programID)
            {
                counts.notRedirected &+= 1
            }
            // The redirect may have changed map_to_flush: the fast path follows it.
            fast = fastPathOff ? .none : FastMap(redirectInfo.pointee.mapToFlush)
            return
        }
        counts.notRedirected &+= 1
        if _slowPath(verdict.requestBits != RedirectInfo.noRequest) {
            // A helper was called but the program returned another action: the request stays in the per-CPU
            // redirect info for a later bare XDP_REDIRECT, which then takes the full path.
            redirectInfo.pointee.mapBits = verdict.requestBits
            redirectInfo.pointee.index = verdict.index
            fast = .none
        }
        if verdict.action.rawValue == XDPAction.drop.rawValue {
            counts.programDrops &+= 1
            release(verdict.frame, .programDrop, at: device)
        } else {
            otherAction(
                verdict.action, frame: verdict.frame, device: device, programID: programID,
                passed: &counts.passed, txCount: &txCount)
        }
    }

    /// XDP_PASS, XDP_TX, XDP_ABORTED and unknown actions, carried out for `carryOut`.
    @usableFromInline @inline(never)
    func otherAction(
        _ action: XDPAction, frame: FrameID, device: NetDevice, programID: UInt32, passed: inout UInt64,
        txCount: inout Int
    ) {
        switch action.rawValue {
        case XDPAction.pass.rawValue:
            passed &+= 1
            device.stack.receive(frame, device: device, worker: self)
        case XDPAction.tx.rawValue:
            txQueue[txCount] = frame
            txCount &+= 1
        default:
            // XDP_ABORTED, and any unknown code (bpf_warn_invalid_xdp_action), trace xdp_exception and drop.
            if events.isRecording {
                events.record(
                    XDPEvent(
                        kind: .exception, time: now, cpu: UInt32(cpu), programID: programID,
                        action: action.rawValue, ifindex: device.ifindex.rawValue,
                        frame: pool.info(frame).pointee.sequence))
            }
            drop(frame, .aborted, at: device)
        }
    }

    /// Adds what polls of `device` counted (`processed` frames) to its counters.
    @inlinable @inline(__always)
    func addPollCounts(_ counts: PollCounts, processed: Int, device: NetDevice) {
        let redirected = UInt64(processed &- counts.notRedirected)
        device.count(DeviceCounter.rxPackets, cpu: cpu, UInt64(processed))
        device.count(DeviceCounter.rxBytes, cpu: cpu, counts.rxBytes)
        device.count(DeviceCounter.redirected, cpu: cpu, redirected)
        device.count(DeviceCounter.passed, cpu: cpu, counts.passed)
        device.countDrop(.programDrop, cpu: cpu, counts.programDrops)
    }
}

extension XDPContext {
    /// The context a series of polls of one frame or two of `programID`, a program of the profile `Profile`,
    /// starts with; `nextFrame` makes it the context of each frame (`runProgram`), which spares the stores of
    /// the fields that stay.
    @inlinable @inline(__always)
    init<Profile: KernelProfile>(frames: FramePool.Storage, programID: UInt32, profile: Profile.Type) {
        self.init(
            hardStart: frames.base, bufferSize: frames.bufferSize, record: frames.infos, rxQueueIndex: 0, now: 0,
            programID: programID, semantics: Profile.semantics)
    }

    /// A context made whole for `frame` at `now`, for the loops that run a batch of frames: with the program
    /// compiled in, one of its own per frame stays in registers, which one context for the whole loop, in memory
    /// from one frame to the next, defeats (`runProgram` sets the frame's fields again, which the optimiser drops).
    @inlinable @inline(__always)
    init<Profile: KernelProfile>(
        frame: FrameID, frames: FramePool.Storage, now: Nanos, programID: UInt32, profile: Profile.Type
    ) {
        self.init(
            hardStart: frames.bufferStart(frame), bufferSize: frames.bufferSize, record: frames.info(frame),
            rxQueueIndex: 0, now: now, programID: programID, semantics: Profile.semantics)
    }
}

/// The semantics profile as a type (like `PollClock`): the one poll loop is specialised per profile, and the
/// context it gives the program carries the profile as a constant, so that a helper's test of it
/// (`XDPContext.redirectMap`) folds away: the 4.18 loop carries nothing of the modern one (a test at run time cost
/// the 4.18 redirect 23 instructions per frame).
@usableFromInline protocol KernelProfile { static var semantics: Semantics { get } }
/// `Semantics.v4_18`.
@usableFromInline enum Linux418: KernelProfile { @inlinable static var semantics: Semantics { .v4_18 } }
/// `Semantics.modern`.
@usableFromInline enum LinuxModern: KernelProfile { @inlinable static var semantics: Semantics { .modern } }

/// How a poll takes its frames off the RX ring, as a type (like `PollClock`): the compiler specialises the one poll
/// loop per type, and with `OneAtATime` (the usual polls of replay with recorded timing, of one frame where
/// timestamps are distinct, two where they come in pairs) the loop's batch handling folds away to one pop per
/// frame.
@usableFromInline protocol PollFrameCount { static var oneAtATime: Bool { get } }
/// In batches of up to the budget, as many as the ring holds.
@usableFromInline enum UpToBudget: PollFrameCount { @inlinable static var oneAtATime: Bool { false } }
/// Exactly the budget, which the ring is known to hold, each frame popped by itself.
@usableFromInline enum OneAtATime: PollFrameCount { @inlinable static var oneAtATime: Bool { true } }

/// What a poll reads of its worker's settings, which nothing changes during a poll (the control plane changes
/// them between polls).
@usableFromInline
struct PollSetup {
    /// The worker's `rxBatch`.
    @usableFromInline let rxBatch: UnsafeMutablePointer<FrameID>
    /// Every redirect takes `xdpDoRedirect`: events are recorded (it records them), or the profile is the modern
    /// one (the fast path is 4.18's: Worker+DeviceQueue.swift).
    @usableFromInline let slowRedirects: Bool
    /// A dropped frame goes straight back to the pool: nothing watches drops (no drop observer, no events).
    @usableFromInline let plainDrops: Bool

    @inlinable @inline(__always)
    init(_ worker: Worker) {
        rxBatch = worker.rxBatch
        let recording = worker.events.isRecording
        slowRedirects = recording || worker.semantics != .v4_18
        plainDrops = worker.dropObserver == nil && !recording
    }
}

/// What polls count per frame, added to the ingress device's counters once (`Worker.addPollCounts`).
@usableFromInline
struct PollCounts {
    @usableFromInline var rxBytes: UInt64 = 0
    /// Frames that took another way than a redirect (the redirected count is derived from it).
    @usableFromInline var notRedirected = 0
    @usableFromInline var programDrops: UInt64 = 0
    @usableFromInline var passed: UInt64 = 0
    @inlinable init() {}
}

/// A frame with what its program decided: the action and the redirect request its helpers left in the context.
@usableFromInline
struct FrameVerdict {
    @usableFromInline let frame: FrameID
    @usableFromInline let info: UnsafeMutablePointer<FrameInfo>
    @usableFromInline let action: XDPAction
    /// `XDPContext.requestBits`: what the run's helpers asked for, `RedirectInfo.noRequest` when it called none.
    @usableFromInline let requestBits: UInt
    @usableFromInline let index: UInt32
    @inlinable init(
        frame: FrameID, info: UnsafeMutablePointer<FrameInfo>, action: XDPAction, requestBits: UInt,
        index: UInt32
    ) {
        self.frame = frame
        self.info = info
        self.action = action
        self.requestBits = requestBits
        self.index = index
    }
}

/// The map of the fast path (`Worker.queueIntoMapToFlush`): the bits a `bpf_redirect_map` into it leaves in
/// `XDPContext.requestBits`, and its slots, read once rather than through the map for every frame.
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
        FastMap(
            bits: UInt.max,
            slots: UnsafeMutablePointer(bitPattern: MemoryLayout<Atomic<UInt>>.alignment).unsafelyUnwrapped,
            maxEntries: 0)
    }

    /// The map (only when not `none`).
    @inlinable var map: Unmanaged<DevMap> {
        Unmanaged.fromOpaque(UnsafeRawPointer(bitPattern: bits).unsafelyUnwrapped)
    }
}
