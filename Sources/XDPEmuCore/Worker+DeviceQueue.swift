// The modern profile's redirect (Linux 5.14 and later), on the same poll loop as the 4.18 one: the profile is the
// worker's `semantics` value, and `xdpDoRedirect` hands every redirect to `modernRedirect` when it is modern (the
// poll keeps the 4.18 fast path off, PollSetup). What differs from 4.18, and lives here:
// - the helper looked the entry up already (XDPContext+Modern.swift); the redirect converts the frame first
//   (no headroom for struct xdp_frame: EOVERFLOW, before anything else), then `__xdp_enqueue` checks the target
//   (EOPNOTSUPP, ENETDOWN, EMSGSIZE) and queues the frame;
// - bulk queues belong to the target device, one per CPU (`struct xdp_dev_bulk_queue`, `DeviceQueueLayout`), not
//   to the map entry: a device's first frame since the last flush records dev_rx and the entry's egress program
//   and puts the device on this worker's flush list (`flushList`); a full queue is sent before the 17th frame;
// - the flush (`flushDeviceQueues`, `__dev_flush`) sends every listed device's queue, newest listed first (the
//   kernel adds to the head of its list), at the end of the poll; redirects into another map do not flush;
// - the send (`transmitDeviceQueue`, `bq_xmit_all`) runs the egress program on each frame first (PASS keeps it,
//   DROP frees it, anything else traces xdp_exception and frees it), then ndo_xdp_xmit; the devmap frees what was
//   not sent, and `xdp_devmap_xmit` reports drops = frames queued - frames sent (no map fields any more);
// - BPF_F_BROADCAST (`broadcast`, `dev_map_enqueue_multi`): a copy from the frame pool to every entry that is
//   up, can transmit and fits the frame (others are skipped silently), in key order (hash map: bucket order),
//   the original to the last; EXCLUDE_INGRESS skips the ingress device; no target at all frees the frame;
// - plain `bpf_redirect` queues into the same device queues (`dev_xdp_enqueue`) instead of sending at once.
// Everything here runs inside a poll, on the worker that polls the ingress device (the flush at its end).

/// A device's per-CPU bulk queue (modern profile), on 128 bytes of its own in `NetDevice.deviceQueues`.
enum DeviceQueueLayout {
    /// DEV_MAP_BULK_SIZE.
    static let capacity = 16
    /// Frames queued (UInt32).
    static let countOffset = 0
    /// dev_rx's ifindex (UInt32): non-zero while the device is on the flush list.
    static let devRxOffset = 4
    /// The unretained egress program of the first frame's entry (UInt; 0: none).
    static let programOffset = 8
    /// The frames (16 FrameIDs).
    static let framesOffset = 16
    static let stride = 128
}

extension Worker {
    /// `xdp_do_redirect` of the modern profile, for `xdpDoRedirect` (which consumed the redirect info into
    /// `request`). Returns true when the frame was queued, false when it was dropped at the ingress device.
    @usableFromInline
    func modernRedirect(
        _ frame: FrameID, info: UnsafeMutablePointer<FrameInfo>, request: RedirectInfo, from ingress: NetDevice,
        programID: UInt32
    ) -> Bool {
        let index = request.index
        let roomForFrame = Int(info.pointee.dataOffset) &- Int(info.pointee.metaLength) >= KernelConstants.xdpFrameSize
        guard let mapRef = request.map else {
            // Plain bpf_redirect: the device by ifindex, then dev_xdp_enqueue.
            var error: DatapathErrno? = roomForFrame ? nil : .EOVERFLOW
            let target = error == nil ? network.device(ifindex: IfIndex(index)) : nil
            if error == nil {
                if let target { error = forwardCheck(info: info, target: target) } else { error = .EINVAL }
            }
            if events.isRecording {
                recordRedirect(
                    error == nil ? .redirect : .redirectErr, mapID: 0, index: 0, to: index, err: error?.negated ?? 0,
                    from: ingress, programID: programID, frame: info.pointee.sequence)
            }
            if let error {
                drop(frame, error.dropReason, at: ingress)
                return false
            }
            enqueue(frame, to: target.unsafelyUnwrapped, program: 0, from: ingress)
            return true
        }
        return mapRef._withUnsafeGuaranteedRef { map in
            if request.mapBits & RedirectInfo.floodBits != 0 {
                let excludeIngress = request.mapBits & RedirectInfo.floodBits == RedirectInfo.floodExcludingIngress
                return broadcast(
                    frame, info: info, map: map, key: index, excludeIngress: excludeIngress, roomForFrame: roomForFrame,
                    from: ingress, programID: programID)
            }
            // The entry the helper found (a delete since then leaves none: EINVAL, as a bare XDP_REDIRECT gets).
            guard let entry = map.lookupBlock(key: index) else {
                return redirectMapFailed(
                    frame, info: info, map: map, index: index, to: 0, error: .EINVAL, from: ingress,
                    programID: programID)
            }
            let target = entry.device.takeUnretainedValue()
            if let error = roomForFrame ? forwardCheck(info: info, target: target) : .EOVERFLOW {
                return redirectMapFailed(
                    frame, info: info, map: map, index: index, to: target.ifindex.rawValue, error: error,
                    from: ingress, programID: programID)
            }
            enqueue(frame, to: target, program: entry.programBits, from: ingress)
            if events.isRecording {
                recordRedirect(
                    .redirectMap, mapID: map.id, index: index, to: target.ifindex.rawValue, err: 0, from: ingress,
                    programID: programID, frame: info.pointee.sequence)
            }
            return true
        }
    }

    /// `dev_map_enqueue_multi`: a copy of `frame` to every usable entry of `map` in its order, the original to the
    /// last. A copy the pool cannot give fails the redirect with ENOMEM (copies queued so far stay queued). Traced
    /// as `xdp_redirect_map` with to_ifindex 0 (the kernel has no single target) and map_index `key`.
    func broadcast(
        _ frame: FrameID, info: UnsafeMutablePointer<FrameInfo>, map: DevMap, key: UInt32, excludeIngress: Bool,
        roomForFrame: Bool, from ingress: NetDevice, programID: UInt32
    ) -> Bool {
        guard roomForFrame else {
            return redirectMapFailed(
                frame, info: info, map: map, index: key, to: 0, error: .EOVERFLOW, from: ingress, programID: programID)
        }
        var last: EntryBlock?
        var outOfFrames = false
        func offer(_ entry: EntryBlock) {
            let device = entry.device.takeUnretainedValue()
            guard !(excludeIngress && device.ifindex == ingress.ifindex),
                forwardCheck(info: info, target: device) == nil
            else { return }
            if let previous = last {
                guard let copy = pool.clone(frame) else {
                    outOfFrames = true
                    return
                }
                ingress.count(DeviceCounter.cloned, cpu: cpu)
                enqueue(copy, to: previous.device.takeUnretainedValue(), program: previous.programBits, from: ingress)
            }
            last = entry
        }
        if let ordered = map.broadcastTargets(cpu: cpu) {
            for (_, bits) in ordered where !outOfFrames { offer(EntryBlock(bits: bits)) }
        } else {
            for slot in 0..<map.maxEntries where !outOfFrames {
                if let entry = map.block(at: slot) { offer(entry) }
            }
        }
        if outOfFrames {
            return redirectMapFailed(
                frame, info: info, map: map, index: key, to: 0, error: DatapathErrno(.ENOMEM), from: ingress,
                programID: programID)
        }
        if events.isRecording {
            recordRedirect(
                .redirectMap, mapID: map.id, index: key, to: 0, err: 0, from: ingress, programID: programID,
                frame: info.pointee.sequence)
        }
        if let last {
            enqueue(frame, to: last.device.takeUnretainedValue(), program: last.programBits, from: ingress)
        } else {
            // No target: the kernel frees the frame and reports success.
            drop(frame, .noBroadcastTarget, at: ingress)
        }
        return true
    }

    /// `bq_enqueue`: `frame` into this worker's queue of `device` (sent first when full); the first frame since
    /// the last flush records dev_rx and `program` (the entry's egress program, 0 for none: the queue keeps the
    /// first frame's, as the kernel does) and lists the device for the flush.
    func enqueue(_ frame: FrameID, to device: NetDevice, program: UInt, from ingress: NetDevice) {
        let queue = device.deviceQueue(cpu: cpu)
        var count = Int(queue.load(fromByteOffset: DeviceQueueLayout.countOffset, as: UInt32.self))
        if count == DeviceQueueLayout.capacity {
            transmitDeviceQueue(device, flags: [])
            count = 0
        }
        if queue.load(fromByteOffset: DeviceQueueLayout.devRxOffset, as: UInt32.self) == 0 {
            queue.storeBytes(of: ingress.ifindex.rawValue, toByteOffset: DeviceQueueLayout.devRxOffset, as: UInt32.self)
            queue.storeBytes(of: program, toByteOffset: DeviceQueueLayout.programOffset, as: UInt.self)
            flushList.append(Unmanaged.passUnretained(device))
            flushPlan = FlushPlan.deviceQueues
        }
        queue.storeBytes(
            of: frame.rawValue, toByteOffset: DeviceQueueLayout.framesOffset + count * 4, as: UInt32.self)
        queue.storeBytes(of: UInt32(count + 1), toByteOffset: DeviceQueueLayout.countOffset, as: UInt32.self)
    }

    /// `__dev_flush`: sends the queue of every listed device, newest listed first, with XDP_XMIT_FLUSH, and takes
    /// it off the list (dev_rx and program cleared).
    func flushDeviceQueues() {
        for device in flushList.reversed() {
            device._withUnsafeGuaranteedRef { device in
                transmitDeviceQueue(device, flags: .flush)
                let queue = device.deviceQueue(cpu: cpu)
                queue.storeBytes(of: 0, toByteOffset: DeviceQueueLayout.devRxOffset, as: UInt32.self)
                queue.storeBytes(of: 0, toByteOffset: DeviceQueueLayout.programOffset, as: UInt.self)
            }
        }
        flushList.removeAll(keepingCapacity: true)
    }

    /// `bq_xmit_all`: the egress program (if any) on each queued frame, then ndo_xdp_xmit of the frames it passed;
    /// the unsent ones are freed here. Traces `xdp_devmap_xmit` with sent and drops = queued - sent.
    func transmitDeviceQueue(_ device: NetDevice, flags: XmitFlags) {
        let queue = device.deviceQueue(cpu: cpu)
        let count = Int(queue.load(fromByteOffset: DeviceQueueLayout.countOffset, as: UInt32.self))
        guard count > 0 else { return }
        let frames = (queue + DeviceQueueLayout.framesOffset).assumingMemoryBound(to: FrameID.self)
        let devRx = queue.load(fromByteOffset: DeviceQueueLayout.devRxOffset, as: UInt32.self)
        var toSend = count
        let programBits = queue.load(fromByteOffset: DeviceQueueLayout.programOffset, as: UInt.self)
        if let pointer = UnsafeRawPointer(bitPattern: programBits) {
            toSend = Unmanaged<AttachedProgram>.fromOpaque(pointer)._withUnsafeGuaranteedRef {
                $0.runEgress(frames: frames, count: count, device: device, worker: self)
            }
        }
        var sent = 0
        var error: DatapathErrno?
        if toSend > 0 {
            var bytes: UInt64 = 0
            for i in 0..<toSend { bytes &+= UInt64(pool.info(frames[i]).pointee.length) }
            let batch = UnsafeMutableBufferPointer(start: frames, count: toSend)
            let result = device.transmitter!.xdpXmit(batch, flags: flags, device: device, worker: self)
            if result == Int32(toSend) {
                sent = toSend
            } else {
                sent = dropUnsent(batch, result: result, bytes: &bytes, device: device)
                error = DatapathErrno(xmitResult: result)
            }
            device.count(DeviceCounter.txPackets, cpu: cpu, UInt64(sent))
            device.count(DeviceCounter.txBytes, cpu: cpu, bytes)
            device.count(DeviceCounter.bulkTransmits, cpu: cpu)
            device.count(DeviceCounter.bulkFrames, cpu: cpu, UInt64(toSend))
        }
        if events.isRecording {
            events.record(
                XDPEvent(
                    kind: .devmapXmit, time: now, cpu: UInt32(cpu), action: XDPAction.redirect.rawValue,
                    error: error?.negated ?? 0, toIfindex: device.ifindex.rawValue, fromIfindex: devRx,
                    sent: Int32(sent), drops: Int32(count - sent)))
        }
        queue.storeBytes(of: 0, toByteOffset: DeviceQueueLayout.countOffset, as: UInt32.self)
    }

    /// `dev_map_bpf_prog_run`: runs `program` (an egress program, id `programID`) on each of `count` frames bound
    /// for `device`, with egress_ifindex set; keeps those it passes at the front of `frames`, in order, and returns
    /// their number. DROP frees a frame; ABORTED and any other action (TX and REDIRECT included) trace
    /// `xdp_exception` on `device` and free it. `ProgramRunner` calls it, specialised.
    @inlinable
    public func runEgress<P: XDPProgram>(
        _ program: inout P, programID: UInt32, frames: UnsafeMutablePointer<FrameID>, count: Int, device: NetDevice
    ) -> Int {
        let storage = pool.storage
        var kept = 0
        for i in 0..<count {
            let frame = frames[i]
            var context = XDPContext(
                hardStart: storage.bufferStart(frame), bufferSize: storage.bufferSize, record: storage.info(frame),
                rxQueueIndex: 0, now: now, programID: programID, semantics: semantics, egressIfindex: device.ifindex)
            let action = program.run(&context)
            if action.rawValue == XDPAction.pass.rawValue {
                frames[kept] = frame
                kept &+= 1
            } else {
                egressRefused(frame, action: action, device: device, programID: programID)
            }
        }
        return kept
    }

    /// A frame the egress program did not pass: freed, as a drop at `device` (after `xdp_exception` unless the
    /// program returned DROP).
    @usableFromInline
    func egressRefused(_ frame: FrameID, action: XDPAction, device: NetDevice, programID: UInt32) {
        if action.rawValue == XDPAction.drop.rawValue {
            drop(frame, .egressDrop, at: device)
            return
        }
        if events.isRecording {
            events.record(
                XDPEvent(
                    kind: .exception, time: now, cpu: UInt32(cpu), programID: programID, action: action.rawValue,
                    ifindex: device.ifindex.rawValue, frame: pool.info(frame).pointee.sequence))
        }
        drop(frame, .egressAborted, at: device)
    }
}
