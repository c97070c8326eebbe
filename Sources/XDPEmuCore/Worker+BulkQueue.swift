// The per-CPU bulk queues of devmap entries (`struct xdp_bulk_queue`, DEV_MAP_BULK_SIZE = 16 frames), their
// transmit, and the two transmits at the end of a poll: the flush of map_to_flush and the XDP_TX queue.
//
// - `enqueue` (`dev_map_enqueue` + `bq_enqueue`) runs inside a poll (phase 1): the forwarding check, then, when the
//   queue is full, its transmit without XDP_XMIT_FLUSH, then `append`.
// - `append` is the only place a frame enters a queue. The first frame of a bulk records dev_rx and makes its key
//   one the flush sends (`flushPlan`): the keys of the first two bulks since the last flush are only remembered,
//   and the flush sends their queues in key order, which is all a scan of the marks would send (polls of one or
//   two frames, as replay with recorded timing makes, are mostly that); from the third bulk on, the keys are
//   marked in this worker's flush bitmap (the first two too) and the flush scans the marks. Later frames of a
//   bulk need none of this.
// - `transmitBulk` (`bq_xmit_all`) runs from the enqueue (full queue), the flush (`DevMap.flush`, with it compiled
//   in as `sendQueue`) and the quiescent point (a retired entry's queue); it leaves the queue empty. It makes one
//   call, of the target transmitter's `XDPTransmitter.transmitBulk`, whose only implementation is the worker's
//   `send` compiled for the transmitter's type: ndo_xdp_xmit and the accounting in one function, so that a bulk
//   of one frame (recorded timing's usual poll) costs one call to its capture writer.
// - `flushRedirects` (`xdp_do_flush_map`) runs at the end of every poll (phase 2) and when a redirect goes into
//   another map than map_to_flush.

extension Worker {
    /// `dev_map_enqueue`: the forwarding check, then `frame` into this worker's queue of `entry`, which is sent
    /// first if already full. Returns nil or the errno of the forwarding check. `map` is `entry.map`, passed in
    /// because the caller holds it.
    @inlinable @inline(__always)
    func enqueue(
        _ frame: FrameID, info: UnsafeMutablePointer<FrameInfo>, into entry: EntryBlock, of map: DevMap,
        from ingress: NetDevice
    ) -> DatapathErrno? {
        if let error = entry.device._withUnsafeGuaranteedRef({ forwardCheck(info: info, target: $0) }) {
            return error
        }
        let queue = entry.queue(cpu: cpu)
        var count = Int(queue.load(fromByteOffset: BulkQueueLayout.countOffset, as: UInt32.self))
        if _slowPath(count == BulkQueueLayout.capacity) {
            transmitBulk(entry, flags: [])
            count = 0
        }
        append(frame, length: info.pointee.length, to: queue, holding: count, of: entry, in: map, from: ingress)
        return nil
    }

    /// `bq_enqueue` once there is room: appends `frame` (`length` bytes) to `queue`, this worker's bulk queue of
    /// `entry` in `map`, which holds `count` frames, fewer than 16.
    @inlinable @inline(__always)
    func append(
        _ frame: FrameID, length: UInt32, to queue: UnsafeMutableRawPointer, holding count: Int,
        of entry: EntryBlock, in map: DevMap, from ingress: NetDevice
    ) {
        if _slowPath(count == 0) {
            // The first frame since the queue was last sent records dev_rx and makes the key one the flush sends
            // (`__dev_map_insert_ctx`). Later frames need neither: dev_rx is set exactly while the queue holds
            // frames (`transmitBulk` resets both), and a queue of a published entry that holds frames is one the
            // next flush sends (only a flush empties the queue of a published entry other than by a transmit of
            // a full queue, which the append of a new bulk follows).
            queue.storeBytes(of: ingress.ifindex.rawValue, toByteOffset: BulkQueueLayout.devRxOffset, as: UInt32.self)
            let key = entry.key
            let plan = flushPlan
            if _fastPath(plan == FlushPlan.nothing) {
                flushPlan = FlushPlan.queue(of: key)
            } else {
                flushPlan = FlushPlan.adding(key, to: plan, marking: map, cpu: cpu)
            }
        }
        queue.storeBytes(of: frame.rawValue, toByteOffset: BulkQueueLayout.framesOffset &+ count &* 4, as: UInt32.self)
        queue.storeBytes(
            of: UInt32(truncatingIfNeeded: count &+ 1), toByteOffset: BulkQueueLayout.countOffset,
            as: UInt32.self)
        addToQueueCounter(queue, BulkQueueLayout.bytesOffset, UInt64(length))
    }

    /// `bq_xmit_all`: hands this worker's queue of `entry` to the target's ndo_xdp_xmit and accounts the result:
    /// on an errno every frame is dropped; on a partial send the unsent ones are. Traces `xdp_devmap_xmit`.
    @usableFromInline @inline(never)
    func transmitBulk(_ entry: EntryBlock, flags: XmitFlags) { sendQueue(of: entry, flags: flags) }

    /// `transmitBulk` compiled in place (the flush of one bulk, `DevMap.flush(key:worker:)`): one call, of the
    /// target's transmitter's `XDPTransmitter.transmitBulk`, which does the rest (`send`).
    @inlinable @inline(__always)
    func sendQueue(of entry: EntryBlock, flags: XmitFlags) {
        let queue = entry.queue(cpu: cpu)
        let count = Int(queue.load(fromByteOffset: BulkQueueLayout.countOffset, as: UInt32.self))
        guard count > 0 else { return }
        // The device through the block's unretained reference (the entry holds it): no retain and release per bulk.
        entry.device._withUnsafeGuaranteedRef { device in
            device.transmitter!.transmitBulk(
                DevMapBulk(entry: entry, queue: queue, count: count), device: device, flags: flags, worker: self)
        }
    }

    /// `transmitBulk` from the target's transmitter (`XDPTransmitter.transmitBulk`), once the queue is known to
    /// hold frames: ndo_xdp_xmit, then the accounting.
    @inlinable @inline(__always)
    func send<Transmitter: XDPTransmitter>(
        _ bulk: DevMapBulk, through transmitter: Transmitter, to device: NetDevice, flags: XmitFlags
    ) {
        let queue = bulk.queue
        let count = bulk.count
        let frames = UnsafeMutableBufferPointer(
            start: (queue + BulkQueueLayout.framesOffset).assumingMemoryBound(to: FrameID.self), count: count)
        let result = transmitter.xdpXmit(frames, flags: flags, device: device, worker: self)
        // Summed at enqueue time (a queued frame's record does not change until it is sent).
        var sentBytes = queue.load(fromByteOffset: BulkQueueLayout.bytesOffset, as: UInt64.self)
        var sent = count
        if _slowPath(Int(result) != count) {
            sent = dropUnsent(frames, result: result, bytes: &sentBytes, device: device)
            addToQueueCounter(queue, BulkQueueLayout.dropsOffset, UInt64(truncatingIfNeeded: count &- sent))
        }
        // 0...count frames sent (`dropUnsent` checks a transmitter's count).
        addToQueueCounter(queue, BulkQueueLayout.sentOffset, UInt64(truncatingIfNeeded: sent))
        addToQueueCounter(queue, BulkQueueLayout.flushesOffset, 1)
        device.count(DeviceCounter.txPackets, cpu: cpu, UInt64(truncatingIfNeeded: sent))
        device.count(DeviceCounter.txBytes, cpu: cpu, sentBytes)
        if events.isRecording {
            recordDevmapXmit(
                bulk.entry, queue: queue, device: device, error: DatapathErrno(xmitResult: result),
                sent: sent, drops: count &- sent)
        }
        // The queue is empty again: count and dev_rx (adjacent words) cleared with one store, and the bytes.
        queue.storeBytes(of: 0, toByteOffset: BulkQueueLayout.countOffset, as: UInt64.self)
        queue.storeBytes(of: 0, toByteOffset: BulkQueueLayout.bytesOffset, as: UInt64.self)
    }

    /// Traces `xdp_devmap_xmit` (out of line, so that the flush keeps `transmitBulk` inlined).
    @usableFromInline @inline(never)
    func recordDevmapXmit(
        _ entry: EntryBlock, queue: UnsafeMutableRawPointer, device: NetDevice,
        error: DatapathErrno?, sent: Int, drops: Int
    ) {
        events.record(
            XDPEvent(
                kind: .devmapXmit, time: now, cpu: UInt32(cpu), action: XDPAction.redirect.rawValue,
                ifindex: 0, error: error?.negated ?? 0, toIfindex: device.ifindex.rawValue,
                fromIfindex: queue.load(fromByteOffset: BulkQueueLayout.devRxOffset, as: UInt32.self),
                mapID: entry.map.takeUnretainedValue().id, mapIndex: entry.key, sent: Int32(sent),
                drops: Int32(drops)))
    }

    /// `transmitBulk`'s rare path: ndo_xdp_xmit returned an errno (every frame is dropped) or sent fewer frames
    /// than it was given (the rest are dropped). Returns how many were sent and takes the dropped frames' bytes
    /// off `bytes`.
    @usableFromInline @inline(never)
    func dropUnsent(
        _ frames: UnsafeMutableBufferPointer<FrameID>, result: Int32, bytes: inout UInt64,
        device: NetDevice
    ) -> Int {
        if DatapathErrno(xmitResult: result) != nil {
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
    func addToQueueCounter(_ queue: UnsafeMutableRawPointer, _ offset: Int, _ amount: UInt64) {
        queue.storeBytes(
            of: queue.load(fromByteOffset: offset, as: UInt64.self) &+ amount, toByteOffset: offset,
            as: UInt64.self)
    }

    /// `xdp_do_flush_map`: flushes the map last redirected into, if any. Must run before a poll returns. Only the
    /// poll and the redirect paths call it: the fast path relies on map_to_flush not changing behind it.
    ///
    /// Every bulk started since the previous flush is in map_to_flush: a frame is appended only by a redirect into
    /// it, or into a map that then becomes it, after the flush of the one before. Queues that no bulk started
    /// since then are empty, whether their keys are marked or not (marks are also left on keys whose slot was
    /// empty at an earlier flush). So with no bulk started there is nothing to send; with one, its key's queue
    /// alone (`DevMap.flush(key:worker:)`); with more, the marked keys' in key order (`DevMap.flush(worker:)`).
    ///
    /// map_to_flush keeps naming the flushed map, where the kernel sets it to NULL: until a bulk is started in it,
    /// a flush of it sends nothing, as one of no map does, so nothing can tell the two apart; and the next
    /// poll's first redirect into that map, the usual one, takes the fast path (`fastMapAtPollStart`).
    @inlinable
    func flushRedirects() { flushRedirectsInPlace() }

    /// `flushRedirects` compiled in place, for the polls of one or two frames a frame at a time (`OneAtATime`):
    /// there the call would cost more than its code does. Longer polls' loops keep their registers better
    /// without it.
    @inlinable @inline(__always)
    func flushRedirectsInPlace() {
        let plan = flushPlan
        guard plan != FlushPlan.nothing else { return }
        flushPlan = FlushPlan.nothing
        if _fastPath(plan < FlushPlan.markedQueues) {
            // A bulk was started, so there is a map to flush.
            redirectInfo.pointee.mapToFlush.unsafelyUnwrapped._withUnsafeGuaranteedRef {
                $0.flush(key: FlushPlan.firstKey(plan), worker: self)
            }
        } else {
            flush(plan: plan)
        }
    }

    /// `flushRedirects` after two bulks or more, or after frames queued to devices (modern profile).
    @usableFromInline @inline(never)
    func flush(plan: UInt) {
        if plan == FlushPlan.deviceQueues {
            flushDeviceQueues()
            return
        }
        redirectInfo.pointee.mapToFlush.unsafelyUnwrapped._withUnsafeGuaranteedRef { map in
            guard plan != FlushPlan.markedQueues, let second = FlushPlan.secondKey(plan) else {
                map.flush(worker: self)
                return
            }
            // In key order, as the scan of the marks sends them.
            let first = FlushPlan.firstKey(plan)
            map.flush(key: min(first, second), worker: self)
            map.flush(key: max(first, second), worker: self)
        }
    }

    /// `flushRedirects` when map_to_flush is another map than `map`: a redirect into `map` is about to be queued.
    @inlinable @inline(__always)
    func flushRedirects(unless map: Unmanaged<DevMap>) {
        if let previous = redirectInfo.pointee.mapToFlush, previous.toOpaque() != map.toOpaque() {
            flushRedirects()
        }
    }

    /// Sends the poll's XDP_TX frames back out of the ingress device, after the redirect flush. Frames the device
    /// does not take (it has no transmitter, its ndo_xdp_xmit failed or sent fewer) raise `xdp_exception` and are
    /// dropped.
    @usableFromInline
    func transmitXDPTx(count: Int, device: NetDevice, programID: UInt32) {
        let frames = UnsafeMutableBufferPointer(start: txQueue, count: count)
        var sentBytes: UInt64 = 0
        for frame in frames { sentBytes &+= UInt64(pool.info(frame).pointee.length) }
        var sent = 0
        if let transmitter = device.transmitter {
            sent = max(0, Int(transmitter.xdpXmit(frames, flags: .flush, device: device, worker: self)))
        }
        for i in sent..<count {
            sentBytes &-= UInt64(pool.info(frames[i]).pointee.length)
            if events.isRecording {
                events.record(
                    XDPEvent(
                        kind: .exception, time: now, cpu: UInt32(cpu), programID: programID,
                        action: XDPAction.tx.rawValue, ifindex: device.ifindex.rawValue,
                        frame: pool.info(frames[i]).pointee.sequence))
            }
            drop(frames[i], .txError, at: device)
        }
        device.count(DeviceCounter.xdpTx, cpu: cpu, UInt64(sent))
        device.count(DeviceCounter.txPackets, cpu: cpu, UInt64(sent))
        device.count(DeviceCounter.txBytes, cpu: cpu, sentBytes)
    }
}

/// A worker's bulk queue of a devmap entry that holds frames, as `transmitBulk` hands it to the target's
/// transmitter (`XDPTransmitter.transmitBulk`).
public struct DevMapBulk {
    @usableFromInline let entry: EntryBlock
    @usableFromInline let queue: UnsafeMutableRawPointer
    /// Frames in the queue (1...16).
    @usableFromInline let count: Int

    @inlinable
    init(entry: EntryBlock, queue: UnsafeMutableRawPointer, count: Int) {
        self.entry = entry
        self.queue = queue
        self.count = count
    }
}

extension XDPTransmitter {
    /// `XDPTransmitter.transmitBulk`: the worker's (`Worker.send`), for this transmitter's type.
    @inlinable
    public func transmitBulk(_ bulk: DevMapBulk, device: NetDevice, flags: XmitFlags, worker: Worker) {
        worker.send(bulk, through: self, to: device, flags: flags)
    }
}

/// The values of `Worker.flushPlan`: what the next flush sends, from the bulks started since the last one. The
/// keys of the first two bulks are kept in the plan (key + 1 in the low half, then in the high half); from the
/// third on, every started key is marked in the map's flush bitmap, and the flush scans the marks.
@usableFromInline
enum FlushPlan {
    /// No bulk started: the flush sends nothing.
    @inlinable static var nothing: UInt { 0 }
    /// Three bulks or more: the flush sends the queues of the marked keys. (A plan of keys has a low half, and
    /// one of one key is below this value.)
    @inlinable static var markedQueues: UInt { 1 << 32 }
    /// Frames were queued to devices (modern profile): the flush sends the worker's flush list. (No plan of keys
    /// has this value: its two keys would be equal.)
    @inlinable static var deviceQueues: UInt { UInt.max }
    /// One bulk, in the queue of `key`: the flush sends that queue.
    @inlinable static func queue(of key: UInt32) -> UInt { UInt(key) &+ 1 }
    /// The key of the first bulk of a plan of keys.
    @inlinable static func firstKey(_ plan: UInt) -> UInt32 { UInt32(truncatingIfNeeded: plan) &- 1 }
    /// The key of the second bulk of a plan of keys, if there was one.
    @inlinable static func secondKey(_ plan: UInt) -> UInt32? {
        let high = UInt32(truncatingIfNeeded: plan >> 32)
        return high == 0 ? nil : high &- 1
    }

    /// `plan` (not `nothing`) once a bulk is started in the queue of `key` of `map`: a key already in the plan
    /// changes nothing; a second key joins the plan; a third marks all three in `cpu`'s flush bitmap, as is every
    /// key from then on.
    @usableFromInline @inline(never)
    static func adding(_ key: UInt32, to plan: UInt, marking map: DevMap, cpu: Int) -> UInt {
        if plan == markedQueues {
            map.markForFlush(key, cpu: cpu)
            return plan
        }
        let first = firstKey(plan)
        guard let second = secondKey(plan) else {
            return key == first ? plan : plan | (UInt(key) &+ 1) << 32
        }
        if key == first || key == second { return plan }
        map.markForFlush(first, cpu: cpu)
        map.markForFlush(second, cpu: cpu)
        map.markForFlush(key, cpu: cpu)
        return markedQueues
    }
}
