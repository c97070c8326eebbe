import Synchronization

// `xdp_do_redirect`: carrying out an XDP_REDIRECT verdict, written once in `xdpDoRedirect`. It consumes the
// per-CPU redirect info, then by the request's kind:
// - `bpf_redirect_map` (`redirectMap`): looks the key up (EINVAL when the slot is empty), flushes map_to_flush
//   first when it is another map (4.18), enqueues into the entry's bulk queue (Worker+BulkQueue.swift), and only
//   when that worked makes the map map_to_flush;
// - plain `bpf_redirect` (`redirectToDevice`): looks the device up and transmits at once, without a bulk queue;
// - the flood (`flood`, an emulator extension): a copy into the bulk queue of every usable entry of the map.
// A failure is traced (`xdp_redirect_map_err`, `xdp_redirect_err`) and drops the frame at the ingress device.
// Runs inside a poll only (phase 1), on the worker that polls the ingress device.
//
// The fast path, `queueIntoMapToFlush`, is `redirectMap` for the common case in which every step but the append
// is known to do nothing: a `bpf_redirect_map` into the map that is map_to_flush already, with the redirect info
// empty, into a queue that is not full, of a target the frame passes the forwarding check for, with no events
// recorded. Anything else goes to `xdpDoRedirect`. Tests/XDPEmuCoreTests/ReferenceModelTests.swift runs random
// programs through both this worker and a plain model of the kernel's poll and redirect, and compares them.

extension Worker {
    /// The one fast path of a redirect: a `bpf_redirect_map` into `fast`'s map, which is map_to_flush with the
    /// redirect info empty (see `FastMap`), whose slot holds an entry whose queue has room and whose device the
    /// frame passes the forwarding check for. Then `redirectMap` would consume nothing, flush nothing, enqueue
    /// without a transmit and leave map_to_flush as it is: the frame is appended (its key marked if it is the
    /// bulk's first) and true returned. Otherwise false, having changed nothing. Leaves out the headroom check,
    /// which no frame fails while the fast path is on (`pollOnce`).
    @inlinable @inline(__always)
    func queueIntoMapToFlush(_ verdict: FrameVerdict, fast: FastMap, cpu: Int, from ingress: NetDevice) -> Bool {
        guard verdict.requestBits == fast.bits,
            let entry = DevMap.block(at: verdict.index, slots: fast.slots, maxEntries: fast.maxEntries)
        else { return false }
        let info = verdict.info
        let length = info.pointee.length
        guard
            entry.device._withUnsafeGuaranteedRef({
                $0.passesForwardLimit(length: length, missingBytes: info.pointee.missingBytes)
            })
        else { return false }
        let queue = entry.queue(cpu: cpu)
        let count = Int(queue.load(fromByteOffset: BulkQueueLayout.countOffset, as: UInt32.self))
        guard count < BulkQueueLayout.capacity else { return false }
        fast.map._withUnsafeGuaranteedRef {
            append(verdict.frame, length: length, to: queue, holding: count, of: entry, in: $0, from: ingress)
        }
        return true
    }

    /// `xdp_do_redirect`: carries out the redirect the program asked for, whatever it is. `requestBits` and
    /// `index` are what the run's helpers asked for (`FrameVerdict`; `RedirectInfo.noRequest` when it called
    /// none: then the request left in the redirect info is carried out). Returns true when the frame was queued or
    /// sent, false when it was dropped (the reason is counted at the ingress device).
    @usableFromInline @inline(never)
    func xdpDoRedirect(
        _ frame: FrameID, info: UnsafeMutablePointer<FrameInfo>, requestBits: UInt, index: UInt32,
        from ingress: NetDevice, programID: UInt32
    ) -> Bool {
        // Either way the request is consumed (ri->ifindex = 0, ri->map = NULL).
        var request = redirectInfo.pointee
        if requestBits != RedirectInfo.noRequest {
            request.mapBits = requestBits
            request.index = index
        }
        redirectInfo.pointee.mapBits = 0
        redirectInfo.pointee.index = 0
        if semantics == .modern {
            return modernRedirect(frame, info: info, request: request, from: ingress, programID: programID)
        }
        guard let map = request.map else {
            return redirectToDevice(frame, ifindex: request.index, from: ingress, programID: programID)
        }
        if request.mapBits & RedirectInfo.floodBits != 0 {
            let excludeIngress = request.mapBits & RedirectInfo.floodBits == RedirectInfo.floodExcludingIngress
            return map._withUnsafeGuaranteedRef {
                flood(frame, map: $0, excludeIngress: excludeIngress, from: ingress, programID: programID)
            }
        }
        return redirectMap(frame, info: info, map: map, index: request.index, from: ingress, programID: programID)
    }

    /// `xdp_do_redirect_map`: the lookup, the flush of the previous map, the enqueue, then map_to_flush.
    @inlinable @inline(__always)
    func redirectMap(
        _ frame: FrameID, info: UnsafeMutablePointer<FrameInfo>, map mapRef: Unmanaged<DevMap>,
        index: UInt32, from ingress: NetDevice, programID: UInt32
    ) -> Bool {
        mapRef._withUnsafeGuaranteedRef { map in
            guard let entry = map.block(at: index) else {
                return redirectMapFailed(
                    frame, info: info, map: map, index: index, to: 0, error: .EINVAL,
                    from: ingress, programID: programID)
            }
            // A redirect into a different map first flushes the one redirected into before (4.18)...
            flushRedirects(unless: mapRef)
            if let error = enqueue(frame, info: info, into: entry, of: map, from: ingress) {
                return redirectMapFailed(
                    frame, info: info, map: map, index: index,
                    to: entry.device.takeUnretainedValue().ifindex.rawValue, error: error,
                    from: ingress, programID: programID)
            }
            // ...and only a successful one makes its map the one to flush.
            redirectInfo.pointee.mapToFlush = mapRef
            if events.isRecording {
                recordRedirect(
                    .redirectMap, mapID: map.id, index: index,
                    to: entry.device.takeUnretainedValue().ifindex.rawValue, err: 0, from: ingress,
                    programID: programID, frame: info.pointee.sequence)
            }
            return true
        }
    }

    /// A `bpf_redirect_map` that failed with `error`: traced as `xdp_redirect_map_err`, the frame dropped at the
    /// ingress device. Returns false.
    @usableFromInline @inline(never)
    func redirectMapFailed(
        _ frame: FrameID, info: UnsafeMutablePointer<FrameInfo>, map: DevMap, index: UInt32,
        to: UInt32, error: DatapathErrno, from ingress: NetDevice, programID: UInt32
    ) -> Bool {
        if events.isRecording {
            recordRedirect(
                .redirectMapErr, mapID: map.id, index: index, to: to, err: error.negated, from: ingress,
                programID: programID, frame: info.pointee.sequence)
        }
        drop(frame, error.dropReason, at: ingress)
        return false
    }

    /// Traces a redirect event (`xdp_redirect*`): `mapID` and `index` 0 for a plain `bpf_redirect`; `err` is the
    /// tracepoint's field, the negated errno or 0.
    @usableFromInline @inline(never)
    func recordRedirect(
        _ kind: XDPEventKind, mapID: UInt32, index: UInt32, to: UInt32, err: Int32,
        from ingress: NetDevice, programID: UInt32, frame: UInt64
    ) {
        events.record(
            XDPEvent(
                kind: kind, time: now, cpu: UInt32(cpu), programID: programID,
                action: XDPAction.redirect.rawValue, ifindex: ingress.ifindex.rawValue, error: err,
                toIfindex: to, mapID: mapID, mapIndex: index, frame: frame))
    }

    /// Plain `bpf_redirect(ifindex)`: looked up at redirect time and sent at once with XDP_XMIT_FLUSH (no bulk
    /// queue). Traces `xdp_redirect` or `xdp_redirect_err` with to_ifindex = the requested index.
    @usableFromInline
    func redirectToDevice(_ frame: FrameID, ifindex: UInt32, from ingress: NetDevice, programID: UInt32) -> Bool {
        let info = pool.info(frame)
        var error: DatapathErrno?
        if let target = network.device(ifindex: IfIndex(ifindex)) {
            error = forwardCheck(info: info, target: target)
            if error == nil {
                var one = frame
                let bytes = UInt64(info.pointee.length)
                let result = withUnsafeMutablePointer(to: &one) {
                    target.transmitter!.xdpXmit(
                        UnsafeMutableBufferPointer(start: $0, count: 1), flags: .flush,
                        device: target, worker: self)
                }
                error = DatapathErrno(xmitResult: result)
                if result == 0 {
                    drop(frame, .xmitUnsent, at: target)
                } else if result > 0 {
                    target.count(DeviceCounter.txPackets, cpu: cpu)
                    target.count(DeviceCounter.txBytes, cpu: cpu, bytes)
                }
            }
        } else {
            error = .EINVAL
        }
        if events.isRecording {
            recordRedirect(
                error == nil ? .redirect : .redirectErr, mapID: 0, index: 0, to: ifindex,
                err: error?.negated ?? 0, from: ingress, programID: programID, frame: info.pointee.sequence)
        }
        if let error {
            drop(frame, error.dropReason, at: ingress)
            return false
        }
        return true
    }

    /// The emulator's flood (a `BPF_F_BROADCAST`-style clone to every entry of `map`, optionally skipping the
    /// ingress device; targets that are down, cannot transmit or are too small are skipped silently). Not a 4.18
    /// helper: built-in programs such as the L2 switch use it to flood unknown destinations.
    @usableFromInline
    func flood(
        _ frame: FrameID, map: DevMap, excludeIngress: Bool, from ingress: NetDevice,
        programID: UInt32
    ) -> Bool {
        let info = pool.info(frame)
        let mapRef = Unmanaged.passUnretained(map)
        flushRedirects(unless: mapRef)
        var pending: EntryBlock?
        for key in 0..<map.maxEntries {
            guard let entry = map.block(at: key) else { continue }
            let usable = entry.device._withUnsafeGuaranteedRef { device in
                !(excludeIngress && device === ingress) && forwardCheck(info: info, target: device) == nil
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
            events.record(
                XDPEvent(
                    kind: .redirectMap, time: now, cpu: UInt32(cpu), programID: programID,
                    action: XDPAction.redirect.rawValue, ifindex: ingress.ifindex.rawValue,
                    toIfindex: pending?.device.takeUnretainedValue().ifindex.rawValue ?? 0,
                    mapID: map.id, frame: info.pointee.sequence))
        }
        guard let last = pending else {
            drop(frame, .redirectInvalid, at: ingress)
            return false
        }
        _ = enqueue(frame, info: info, into: last, of: map, from: ingress)
        redirectInfo.pointee.mapToFlush = mapRef
        return true
    }

    /// The checks a frame passes before it may be handed to `target`'s ndo_xdp_xmit; nil or the errno.
    /// The usual case, an up device with a transmitter, a frame within its MTU and the headroom for the
    /// xdp_frame, is two comparisons (`NetDevice.forwardLimit` folds the device's state into one number);
    /// anything else takes `forwardError`, which finds the errno in the kernel's order.
    @inlinable @inline(__always)
    func forwardCheck(info: UnsafeMutablePointer<FrameInfo>, target: NetDevice) -> DatapathErrno? {
        let record = info.pointee
        if _fastPath(
            target.passesForwardLimit(length: record.length, missingBytes: record.missingBytes)
                && Int(record.dataOffset) &- Int(record.metaLength) >= KernelConstants.xdpFrameSize)
        {
            return nil
        }
        return forwardError(info: info, target: target)
    }

    /// `forwardCheck`'s rare path: nil (a GSO super-frame above the MTU) or the errno of the first failing check:
    /// no ndo_xdp_xmit (EOPNOTSUPP), target down (ENETDOWN), longer than mtu + 18 (EMSGSIZE; GSO super-frames are
    /// exempt, as `is_skb_forwardable` exempts them), no headroom for struct xdp_frame plus metadata (EOVERFLOW).
    @usableFromInline @inline(never)
    func forwardError(info: UnsafeMutablePointer<FrameInfo>, target: NetDevice) -> DatapathErrno? {
        guard target.transmitter != nil else { return .EOPNOTSUPP }
        guard target.isUp else { return .ENETDOWN }
        if info.pointee.length &+ info.pointee.missingBytes > target.maxForwardLength && info.pointee.gsoSize == 0 {
            return .EMSGSIZE
        }
        if Int(info.pointee.dataOffset) &- Int(info.pointee.metaLength) < KernelConstants.xdpFrameSize {
            return .EOVERFLOW
        }
        return nil
    }
}
