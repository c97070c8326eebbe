/// A program's return code. Any value other than the five actions counts as ABORTED and raises an
/// `xdp_exception` event, as bpf_warn_invalid_xdp_action does.
public struct XDPAction: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }

    // Computed and inlinable rather than `static let`: a stored static of another module is read through its
    // lazy-initialising addressor, a call on every use in the poll loop.
    @inlinable public static var aborted: XDPAction { XDPAction(rawValue: 0) }
    @inlinable public static var drop: XDPAction { XDPAction(rawValue: 1) }
    @inlinable public static var pass: XDPAction { XDPAction(rawValue: 2) }
    @inlinable public static var tx: XDPAction { XDPAction(rawValue: 3) }
    @inlinable public static var redirect: XDPAction { XDPAction(rawValue: 4) }

    public var description: String {
        switch rawValue {
        case 0: "XDP_ABORTED"
        case 1: "XDP_DROP"
        case 2: "XDP_PASS"
        case 3: "XDP_TX"
        case 4: "XDP_REDIRECT"
        default: "XDP_UNKNOWN(\(rawValue))"
        }
    }
}

/// An XDP program: runs once per received frame and returns an action.
///
/// Programs are value types dispatched through generics: the poll loop is specialised for each program type,
/// so a program's `run` is inlined into the loop. Write your own by conforming a struct (see README).
/// A program may keep state (e.g. a learning table) in its own properties; `run` may mutate it.
///
/// Implement `run` as `mutating` even when the program changes nothing: the poll loop holds the program in place,
/// and a program too large to inline whose `run` is non-mutating is called on a copy of itself, made for every
/// frame (a 56-byte program: 7 instructions per frame in replay).
public protocol XDPProgram {
    /// Called for each frame inside a NAPI poll. `context` is valid only during the call.
    mutating func run(_ context: inout XDPContext) -> XDPAction
}

/// The `struct xdp_md` a program sees, with the helpers that act on the frame.
///
/// The packet lives in the frame's buffer: `hardStart` is `data_hard_start`; `dataOffset`, `dataEndOffset` and
/// `metaOffset` are `data`, `data_end` and `data_meta` relative to it. Helpers enforce the kernel's bounds and
/// return 0 or a negative errno, as the BPF helpers do. The bounds are read from and written to the frame's
/// record directly (nothing is copied in or back), as `xdp_buff` points into the driver's buffer.
public struct XDPContext {
    /// `data_hard_start`.
    public var hardStart: UnsafeMutableRawPointer { @inlinable get { frameStart } }
    /// End of the usable buffer (modern adjust_tail may grow up to `bufferSize - 320`).
    public let bufferSize: Int
    /// `data - data_hard_start`.
    @inlinable public var dataOffset: Int { Int(record.pointee.dataOffset) }
    /// `data_end - data_hard_start`.
    @inlinable public var dataEndOffset: Int { Int(record.pointee.dataOffset) &+ Int(record.pointee.length) }
    /// `data_meta - data_hard_start`.
    @inlinable public var metaOffset: Int { Int(record.pointee.dataOffset) &- Int(record.pointee.metaLength) }
    /// The frame's record, which holds the bounds.
    @usableFromInline var record: UnsafeMutablePointer<FrameInfo>
    /// `ingress_ifindex`.
    public var ingressIfindex: IfIndex { @inlinable get { frameIngress } }
    /// `rx_queue_index`.
    public let rxQueueIndex: UInt32
    /// `egress_ifindex` (5.8+; 0 for an ingress program and always 0 in the 4.18 profile).
    public let egressIfindex: IfIndex
    /// Virtual time of the poll (what `bpf_ktime_get_ns` returns).
    public var now: Nanos { @inlinable get { frameTime } }
    /// The id the network gave the running program (for events).
    public let programID: UInt32
    /// What the redirect helpers called during this run asked for (`ri->map` and `ri->ifindex` as they write
    /// them); `RedirectInfo.noRequest` in `requestBits` while none was called. The poll loop reads it when the
    /// program returns and keeps the per-CPU redirect info (`RedirectInfo`) from it: the helpers write into the
    /// context, which the optimiser keeps in registers, rather than into the worker's memory.
    @usableFromInline var requestBits: UInt
    @usableFromInline var requestIndex: UInt32
    /// The profile of the emulated kernel (a program may act as the kernel it runs on allows).
    public let semantics: Semantics
    /// What changes from one frame to the next (`nextFrame`): `hardStart`, `ingressIfindex` and `now`.
    @usableFromInline var frameStart: UnsafeMutableRawPointer
    @usableFromInline var frameIngress: IfIndex
    @usableFromInline var frameTime: Nanos

    @inlinable
    init(
        hardStart: UnsafeMutableRawPointer, bufferSize: Int, record: UnsafeMutablePointer<FrameInfo>,
        rxQueueIndex: UInt32, now: Nanos, programID: UInt32, semantics: Semantics, egressIfindex: IfIndex = .none
    ) {
        frameStart = hardStart
        self.bufferSize = bufferSize
        self.record = record
        frameIngress = record.pointee.ingress
        self.rxQueueIndex = rxQueueIndex
        self.egressIfindex = egressIfindex
        frameTime = now
        self.programID = programID
        requestBits = RedirectInfo.noRequest
        requestIndex = 0
        self.semantics = semantics
    }

    /// The context of the next frame the same program runs on in the same poll (a poll keeps one context for its
    /// frames): that frame's `hardStart`, record, ingress and time, and no helper request yet; the rest as it is.
    @inlinable @inline(__always)
    mutating func nextFrame(hardStart: UnsafeMutableRawPointer, record: UnsafeMutablePointer<FrameInfo>, now: Nanos) {
        frameStart = hardStart
        self.record = record
        frameIngress = record.pointee.ingress
        frameTime = now
        requestBits = RedirectInfo.noRequest
        requestIndex = 0
    }

    /// Packet length (`data_end - data`).
    @inlinable public var length: Int { Int(record.pointee.length) }
    /// Metadata length (`data - data_meta`).
    @inlinable public var metaLength: Int { Int(record.pointee.metaLength) }
    /// `data`.
    @inlinable public var data: UnsafeMutableRawPointer { hardStart + dataOffset }
    /// The packet as bytes.
    @inlinable public var packet: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: data, count: length)
    }
    /// The metadata area in front of the packet.
    @inlinable public var metadata: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: hardStart + metaOffset, count: metaLength)
    }

    /// Reads a big-endian (network order) integer at `offset` from `data`; nil when it would read past
    /// `data_end` (the verifier's bounds check).
    @inlinable
    public func loadBigEndian<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T? {
        guard offset >= 0, offset + MemoryLayout<T>.size <= length else { return nil }
        return T(bigEndian: data.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    /// Writes a big-endian integer at `offset`; false when out of bounds.
    @inlinable @discardableResult
    public func storeBigEndian<T: FixedWidthInteger>(_ value: T, at offset: Int) -> Bool {
        guard offset >= 0, offset + MemoryLayout<T>.size <= length else { return false }
        data.storeBytes(of: value.bigEndian, toByteOffset: offset, as: T.self)
        return true
    }

    /// Lowest `data_meta` the helpers allow: the kernel keeps room for `struct xdp_frame` at the buffer start.
    @inlinable var frameReserve: Int { KernelConstants.xdpFrameSize }

    /// `bpf_xdp_adjust_head`: moves `data` by `delta` (negative grows the packet at the front). The metadata
    /// moves with it. EINVAL when `data` would enter the xdp_frame reserve plus metadata, or leave fewer than
    /// ETH_HLEN bytes.
    @inlinable
    public mutating func adjustHead(_ delta: Int) -> Int32 {
        let metaBytes = metaLength
        let newData = dataOffset + delta
        guard newData >= frameReserve + metaBytes, newData <= dataEndOffset - KernelConstants.ethHeaderLength else {
            return -KernelErrno.EINVAL.rawValue
        }
        if metaBytes > 0 {
            (hardStart + metaOffset + delta).copyMemory(from: hardStart + metaOffset, byteCount: metaBytes)
        }
        record.pointee.length = UInt32(dataEndOffset - newData)
        record.pointee.dataOffset = UInt32(newData)
        return 0
    }

    /// `bpf_xdp_adjust_meta`: moves `data_meta` by `delta` (negative grows the metadata). EINVAL when it would
    /// enter the xdp_frame reserve or pass `data`; EACCES when the result is not a multiple of 4 or over 32 bytes.
    @inlinable
    public mutating func adjustMeta(_ delta: Int) -> Int32 {
        let newMeta = metaOffset + delta
        guard newMeta >= frameReserve, newMeta <= dataOffset else { return -KernelErrno.EINVAL.rawValue }
        let newLength = dataOffset - newMeta
        guard newLength & 3 == 0, newLength <= KernelConstants.maxMetadataLength else {
            return -KernelErrno.EACCES.rawValue
        }
        record.pointee.metaLength = UInt32(newLength)
        return 0
    }

    /// `bpf_xdp_adjust_tail`: moves `data_end` by `delta`. 4.18 only shrinks (delta >= 0 is EINVAL); modern also
    /// grows up to the buffer end less the skb_shared_info reserve, zeroing the new bytes. EINVAL when fewer than
    /// ETH_HLEN bytes would remain.
    @inlinable
    public mutating func adjustTail(_ delta: Int) -> Int32 {
        let newEnd = dataEndOffset + delta
        switch semantics {
        case .v4_18:
            guard delta < 0 else { return -KernelErrno.EINVAL.rawValue }
        case .modern:
            guard newEnd <= bufferSize - KernelConstants.sharedInfoReserve else { return -KernelErrno.EINVAL.rawValue }
        }
        guard newEnd >= dataOffset + KernelConstants.ethHeaderLength else { return -KernelErrno.EINVAL.rawValue }
        if newEnd > dataEndOffset {
            (hardStart + dataEndOffset).initializeMemory(as: UInt8.self, repeating: 0, count: newEnd - dataEndOffset)
        }
        record.pointee.length = UInt32(newEnd - dataOffset)
        return 0
    }

    /// `bpf_redirect_map(map, key, flags)`. 4.18: non-zero flags return ABORTED; otherwise the target is only
    /// remembered and looked up when the redirect is carried out (a missing entry then drops the frame with
    /// EINVAL). Modern: see `redirectMapModern`. Always inlined: in a program compiled apart from the poll loop (a
    /// built-in's `run`), where the profile is not a constant, the test of it then costs a compare and a branch
    /// rather than a call (12 instructions per frame in replay).
    @inlinable @inline(__always)
    public mutating func redirectMap(_ map: DevMap, key: UInt32, flags: UInt64 = 0) -> XDPAction {
        // One test for the usual case (flags 0 under 4.18); the rest out of line.
        if _slowPath(flags != 0 || semantics != .v4_18) { return redirectMapWithFlags(map, key: key, flags: flags) }
        requestBits = UInt(bitPattern: Unmanaged.passUnretained(map).toOpaque())
        requestIndex = key
        return .redirect
    }

    /// Floods the frame to every entry of `map` (optionally not back to the ingress device), like the modern
    /// kernel's `BPF_F_BROADCAST`. This is an emulator extension, not a 4.18 helper: a real 4.18 program cannot
    /// clone. Targets that are down, cannot transmit or whose MTU is too small are skipped silently.
    @inlinable
    public mutating func floodMap(_ map: DevMap, excludeIngress: Bool) -> XDPAction {
        let bits = UInt(bitPattern: Unmanaged.passUnretained(map).toOpaque())
        precondition(bits & RedirectInfo.floodBits == 0, "map reference not aligned")
        requestBits = bits | (excludeIngress ? RedirectInfo.floodExcludingIngress : RedirectInfo.flood)
        requestIndex = 0
        return .redirect
    }

    /// `redirectMap` with non-zero flags (4.18: ABORTED) or under the modern profile (`redirectMapModern`).
    @usableFromInline @inline(never)
    mutating func redirectMapWithFlags(_ map: DevMap, key: UInt32, flags: UInt64) -> XDPAction {
        guard semantics == .v4_18 else { return redirectMapModern(map, key: key, flags: flags) }
        return .aborted
    }

    /// `bpf_redirect(ifindex, flags)`: non-zero flags return ABORTED; the device is looked up when the redirect
    /// is carried out, and the frame is sent at once (no bulking), as the 4.18 kernel does.
    @inlinable
    public mutating func redirect(ifindex: IfIndex, flags: UInt64 = 0) -> XDPAction {
        guard flags == 0 else { return .aborted }
        requestBits = 0
        requestIndex = ifindex.rawValue
        return .redirect
    }
}

/// The per-CPU `bpf_redirect_info`: what the last redirect helper asked for. It persists between frames, as in
/// the kernel: a program that returns XDP_REDIRECT without calling a helper uses whatever is left here (after a
/// carried-out redirect, nothing: index 0, no map, which fails with EINVAL). During a run the helpers write into
/// the context (`XDPContext.requestBits`); the poll loop moves a request here only when the program returns
/// another action, and a redirect consumes what is here.
public struct RedirectInfo {
    /// `ri->map`: the bits of an unretained `DevMap` reference, 0 for none. `ri->flags` is not kept: the 4.18
    /// helpers store only 0 (other flags return XDP_ABORTED first). The emulator's flood request (the modern
    /// kernel's BPF_F_BROADCAST and BPF_F_EXCLUDE_INGRESS) is tagged into the two low bits, which an object
    /// reference (16-byte aligned) leaves 0: the helpers write two words, as bpf_redirect_map does, and a
    /// flood never compares equal to a plain redirect into the same map.
    @usableFromInline var mapBits: UInt
    /// `ri->ifindex`: the key, or the ifindex of `bpf_redirect`.
    @usableFromInline var index: UInt32
    /// The map whose marked entries the next flush transmits (`map_to_flush`).
    @usableFromInline var mapToFlush: Unmanaged<DevMap>?

    @inlinable
    init(mapBits: UInt, index: UInt32, mapToFlush: Unmanaged<DevMap>?) {
        self.mapBits = mapBits
        self.index = index
        self.mapToFlush = mapToFlush
    }

    /// `floodMap` asked for a copy to every entry (tag in `mapBits`).
    @inlinable static var flood: UInt { 1 }
    /// ...to every entry but the ingress device.
    @inlinable static var floodExcludingIngress: UInt { 2 }
    @inlinable static var floodBits: UInt { 3 }
    /// `XDPContext.requestBits` while the program has called no redirect helper: both tag bits and no map, a
    /// value no helper writes (and never equal to a map's bits or `FastMap.none`'s).
    @inlinable static var noRequest: UInt { 3 }

    /// The map of `mapBits`, without the flood tag.
    @inlinable var map: Unmanaged<DevMap>? {
        guard let pointer = UnsafeRawPointer(bitPattern: mapBits & ~Self.floodBits) else { return nil }
        return Unmanaged.fromOpaque(pointer)
    }
}

/// Programs that need nothing but a fixed action.
public struct ConstantProgram: XDPProgram {
    public let action: XDPAction
    public init(_ action: XDPAction) { self.action = action }
    @inlinable public func run(_ context: inout XDPContext) -> XDPAction { action }
}
