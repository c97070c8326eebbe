/// A frame: an index into a `FramePool`. Frames are never objects, so the datapath moves 4-byte values and
/// does no reference counting.
public struct FrameID: Hashable, Sendable {
    public var rawValue: UInt32
    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
}

/// Copies `count` frames (4-byte IDs) from `source` to `destination`, which do not overlap, in the sizes the
/// datapath moves them: a full bulk queue as one 64-byte vector, and one or two frames (a poll or a bulk of one
/// or two, as replay with recorded timing makes) as one store, rather than a call to memmove. The RX ring's batch pop and the
/// pool's batch give use it.
@inlinable @inline(__always)
func copyFrames(from source: UnsafeRawPointer, to destination: UnsafeMutableRawPointer, count: Int) {
    if count == 1 {
        destination.storeBytes(of: source.load(as: UInt32.self), as: UInt32.self)
    } else if count == 2 {
        destination.storeBytes(of: source.loadUnaligned(as: UInt64.self), as: UInt64.self)
    } else if count == 16 {
        destination.storeBytes(of: source.loadUnaligned(as: SIMD16<UInt32>.self), as: SIMD16<UInt32>.self)
    } else {
        destination.copyMemory(from: source, byteCount: count &* MemoryLayout<FrameID>.stride)
    }
}

/// Per-frame bookkeeping kept beside the buffers (one cache-friendly record per frame). The fields the RX path
/// and the forwarding checks touch come first, as six adjacent 4-byte words; `arrival` and `sequence` last.
public struct FrameInfo: Sendable {
    /// Offset of the packet's first byte from the buffer start (`data - data_hard_start`). Set by the pool and
    /// moved only by the helpers, which keep the headroom the pool's `mayHoldShortHeadroom` relies on: writing it
    /// (or `metaLength`) elsewhere may break that.
    public var dataOffset: UInt32
    /// Packet length in bytes (`data_end - data`).
    public var length: UInt32
    /// Metadata bytes in front of the packet (`data - data_meta`).
    public var metaLength: UInt32
    /// Bytes of the frame that are not in the buffer because the capture it came from was truncated (pcap
    /// `len - caplen`). The frame's length on the wire is `length + missingBytes`; size checks use that.
    public var missingBytes: UInt32
    /// Segment size when the frame is a GSO super-frame (a virtio-net header said so), else 0.
    public var gsoSize: UInt32
    /// Ingress device.
    public var ingress: IfIndex
    /// Virtual time at which the frame entered its port's RX ring.
    public var arrival: Nanos
    /// Ingress sequence number, used to name the frame in event logs.
    public var sequence: UInt64

    /// Whether the six leading words sit at offsets 0, 4, ... 20 of a little-endian record, as the batch refill
    /// (`FramePool.take(_:onto:length:ingress:)`) writes them.
    /// Checked once, when a pool is created.
    static let hotWordsAdjacent: Bool = {
        1.littleEndian == 1 && MemoryLayout<FrameInfo>.offset(of: \.dataOffset) == 0
            && MemoryLayout<FrameInfo>.offset(of: \.length) == 4
            && MemoryLayout<FrameInfo>.offset(of: \.metaLength) == 8
            && MemoryLayout<FrameInfo>.offset(of: \.missingBytes) == 12
            && MemoryLayout<FrameInfo>.offset(of: \.gsoSize) == 16
            && MemoryLayout<FrameInfo>.offset(of: \.ingress) == 20
    }()

    @usableFromInline
    init(
        dataOffset: UInt32, length: UInt32, metaLength: UInt32, ingress: IfIndex, arrival: Nanos,
        sequence: UInt64, missingBytes: UInt32, gsoSize: UInt32
    ) {
        self.dataOffset = dataOffset
        self.length = length
        self.metaLength = metaLength
        self.missingBytes = missingBytes
        self.gsoSize = gsoSize
        self.ingress = ingress
        self.arrival = arrival
        self.sequence = sequence
    }
}

/// Fixed frame buffers allocated once, each with XDP_PACKET_HEADROOM (or a port's own headroom) in front of the
/// packet. The pool is the only allocator on the per-packet path: `take` and `give` are a stack pop and push.
///
/// A pool belongs to one worker (one simulated CPU) and is not thread-safe: every frame is taken and returned
/// on the worker that polls its ingress port (redirect, flush and deferred free all run on that worker).
/// `outstanding` lets tests prove conservation: every frame taken is returned exactly once.
public final class FramePool: @unchecked Sendable {
    // @unchecked Sendable: the pool is handed to the thread of its worker and used only there.

    /// Frames in the pool.
    public let capacity: Int
    /// Bytes per buffer, headroom included.
    public let bufferSize: Int
    /// Headroom in front of a freshly received packet.
    public let headroom: Int

    @usableFromInline let defaultDataOffset: UInt32
    @usableFromInline let base: UnsafeMutableRawPointer
    /// Distance between two buffers: `bufferSize`, plus one cache line when that is an even number of lines.
    /// With a power-of-two stride (2048) the first lines of all buffers fall into the same few sets of the L1
    /// cache (64 sets of 64 B: a 2 KB stride reaches 2 of them), so a poll's packet headers evicted each other
    /// and every header read missed L1; an odd number of lines spreads them over every set.
    @usableFromInline let stride: Int
    @usableFromInline let infos: UnsafeMutablePointer<FrameInfo>
    @usableFromInline let freeStack: UnsafeMutablePointer<UInt32>
    /// Which frames are out of the pool, for the double-return check. Kept only in debug builds (the tests): it
    /// costs about 7 instructions per frame on the datapath, and release builds trust their callers, as the
    /// kernel's page pool does.
    @usableFromInline let inUse: UnsafeMutablePointer<Bool>
    @usableFromInline let freeCount: UnsafeMutablePointer<Int>
    /// Whether a frame may have been given less headroom than `struct xdp_frame` needs (32 bytes), so that a
    /// redirect of it can fail with EOVERFLOW. Sticky: set when the pool's headroom is that small or when `take`
    /// is asked for such a headroom. Frames taken with enough keep it: the helpers never move `data_meta` into the
    /// reserve (see `XDPContext.adjustHead`/`adjustMeta`), and nothing else moves `data` or `data_meta`. While it
    /// is false the poll loop's fast path leaves out the headroom check.
    /// Unchecked exclusivity: the pool is used by one thread (see above).
    @exclusivity(unchecked) @usableFromInline var shortHeadroomTaken: Bool
    /// See `shortHeadroomTaken`.
    public var mayHoldShortHeadroom: Bool { shortHeadroomTaken }

    /// - Parameters:
    ///   - capacity: number of frames.
    ///   - bufferSize: bytes per frame buffer including the headroom (rounded up to 64).
    ///   - headroom: bytes left in front of each received packet.
    public init(capacity: Int, bufferSize: Int = 2048, headroom: Int = KernelConstants.xdpPacketHeadroom) {
        precondition(capacity > 0 && capacity < Int(UInt32.max), "frame pool capacity out of range")
        precondition(headroom >= 0 && headroom < bufferSize, "headroom must be smaller than the buffer")
        precondition(FrameInfo.hotWordsAdjacent, "FrameInfo layout changed")
        precondition(MemoryLayout<FrameID>.stride == MemoryLayout<UInt32>.stride, "FrameID is no longer a bare UInt32")
        self.capacity = capacity
        self.bufferSize = (bufferSize + 63) & ~63
        self.headroom = headroom
        defaultDataOffset = UInt32(headroom)
        shortHeadroomTaken = headroom < KernelConstants.xdpFrameSize
        stride = (self.bufferSize / 64) % 2 == 0 ? self.bufferSize + 64 : self.bufferSize
        base = UnsafeMutableRawPointer.allocate(byteCount: capacity * stride, alignment: 4096)
        infos = allocateOnOwnCacheLines(FrameInfo.self, count: capacity)
        infos.initialize(
            repeating: FrameInfo(
                dataOffset: 0, length: 0, metaLength: 0, ingress: .none, arrival: 0,
                sequence: 0, missingBytes: 0, gsoSize: 0), count: capacity)
        freeStack = allocateOnOwnCacheLines(UInt32.self, count: capacity)
        inUse = .allocate(capacity: capacity)
        inUse.initialize(repeating: false, count: capacity)
        // Lowest indices on top, so a lightly loaded run touches few pages.
        for i in 0..<capacity { freeStack[i] = UInt32(capacity - 1 - i) }
        freeCount = allocateOnOwnCacheLines(Int.self)
        freeCount.initialize(to: capacity)
    }

    deinit {
        base.deallocate()
        infos.deallocate()
        freeStack.deallocate()
        inUse.deallocate()
        freeCount.deallocate()
    }

    /// Frames currently taken and not yet returned.
    public var outstanding: Int { capacity - freeCount.pointee }
    /// Frames available.
    public var available: Int { freeCount.pointee }

    /// Takes a frame, its packet empty and starting at `headroom`; nil when the pool is exhausted.
    @inlinable @inline(__always)
    public func take(headroom: Int? = nil) -> FrameID? {
        let n = freeCount.pointee
        guard n > 0 else { return nil }
        freeCount.pointee = n &- 1
        let index = freeStack[n &- 1]
        #if DEBUG
        inUse[Int(index)] = true
        #endif
        let info = infos + Int(index)
        if let headroom, headroom < KernelConstants.xdpFrameSize { shortHeadroomTaken = true }
        info.pointee.dataOffset = headroom.map { UInt32($0) } ?? defaultDataOffset
        info.pointee.length = 0
        info.pointee.metaLength = 0
        info.pointee.missingBytes = 0
        info.pointee.gsoSize = 0
        return FrameID(index)
    }

    /// Takes up to `frames.count` frames into `frames`, as `take()` would one by one (a driver refilling its RX
    /// ring in a batch). Returns how many were taken; fewer when the pool runs out.
    @inlinable
    public func take(into frames: UnsafeMutableBufferPointer<FrameID>) -> Int {
        let freeStack = self.freeStack
        let inUse = self.inUse
        let infos = self.infos
        let dataOffset = defaultDataOffset
        let n = freeCount.pointee
        let count = min(n, frames.count)
        for i in 0..<count {
            let index = freeStack[n &- 1 &- i]
            #if DEBUG
            inUse[Int(index)] = true
            #endif
            let info = infos + Int(index)
            info.pointee.dataOffset = dataOffset
            info.pointee.length = 0
            info.pointee.metaLength = 0
            info.pointee.missingBytes = 0
            info.pointee.gsoSize = 0
            frames[i] = FrameID(index)
        }
        freeCount.pointee = n &- count
        return count
    }

    /// A driver's RX refill: takes up to `count` frames straight onto `ring`, in one pass, each with `length`
    /// bytes at the pool's headroom and `ingress` as its ingress device (as `take()`, then setting length and
    /// ingress, then `ring.push`, frame by frame). Returns how many; fewer when the pool or the ring runs out.
    @inlinable
    public func take(_ count: Int, onto ring: FrameRing, length: UInt32, ingress: IfIndex) -> Int {
        let freeStack = self.freeStack
        let inUse = self.inUse
        let infos = self.infos
        let dataOffset = defaultDataOffset
        let slots = ring.slots
        let ringCapacity = ring.capacity
        let indices = ring.indices
        let available = freeCount.pointee
        let queued = indices[1]
        let total = min(available, count, ringCapacity &- queued)
        guard total > 0 else { return 0 }
        var tail = indices[0] &+ queued
        if tail >= ringCapacity { tail &-= ringCapacity }
        // dataOffset, length, metaLength 0, missingBytes 0 (little-endian words); then gsoSize 0, ingress.
        let leading = SIMD2<UInt64>(UInt64(dataOffset) | UInt64(length) << 32, 0)
        let third = UInt64(ingress.rawValue) << 32
        var done = 0
        while done < total {
            // One contiguous run of ring slots at a time: no wrap check per frame.
            let run = min(total &- done, ringCapacity &- tail)
            let source = freeStack + (available &- done &- run)
            let destination = slots + tail
            // Frames in the order `take()` pops them: the top of the free stack first.
            var from = source + run
            for i in 0..<run {
                from -= 1
                let index = from.pointee
                #if DEBUG
                inUse[Int(index)] = true
                #endif
                // The six leading words (dataOffset, length, metaLength, missingBytes, gsoSize, ingress) as a
                // 16-byte and an 8-byte store; `hotWordsAdjacent` (checked once, by `init`) guarantees the layout.
                let record = UnsafeMutableRawPointer(infos + Int(index))
                record.storeBytes(of: leading, as: SIMD2<UInt64>.self)
                record.storeBytes(of: third, toByteOffset: 16, as: UInt64.self)
                destination[i] = FrameID(index)
            }
            done &+= run
            tail &+= run
            if tail == ringCapacity { tail = 0 }
        }
        freeCount.pointee = available &- total
        indices[1] = queued &+ total
        return total
    }

    /// Returns a frame. Returning a frame twice is a bug in the caller; debug builds stop the process on it.
    @inlinable @inline(__always)
    public func give(_ frame: FrameID) {
        let index = Int(frame.rawValue)
        #if DEBUG
        precondition(index < capacity && inUse[index], "frame returned twice or not from this pool")
        inUse[index] = false
        #endif
        let n = freeCount.pointee
        // Without the debug check, a frame returned twice must at least not write past the free stack.
        precondition(n < capacity, "more frames returned than the pool holds")
        freeStack[n] = frame.rawValue
        freeCount.pointee = n &+ 1
    }

    /// Returns a batch of frames, as a driver does at TX completion: the same checks as `give` for each frame (in
    /// debug builds), the free count updated once.
    @inlinable @inline(__always)
    public func give(_ frames: UnsafeMutableBufferPointer<FrameID>) {
        #if DEBUG
        let capacity = self.capacity
        let inUse = self.inUse  // read once, as in Storage
        #endif
        let n = freeCount.pointee
        precondition(n &+ frames.count <= self.capacity, "more frames returned than the pool holds")
        let top = freeStack + n
        guard let source = frames.baseAddress else { return }
        #if DEBUG
        for i in 0..<frames.count {
            let index = Int(source[i].rawValue)
            precondition(index < capacity && inUse[index], "frame returned twice or not from this pool")
            inUse[index] = false
        }
        #endif
        // A FrameID is its UInt32 (the free stack's element), so the batch goes onto the stack as one copy.
        copyFrames(from: source, to: top, count: frames.count)
        freeCount.pointee = n &+ frames.count
    }

    /// The frame's bookkeeping record.
    @inlinable
    public func info(_ frame: FrameID) -> UnsafeMutablePointer<FrameInfo> { storage.info(frame) }

    /// Start of the frame's buffer (`data_hard_start`).
    @inlinable
    public func bufferStart(_ frame: FrameID) -> UnsafeMutableRawPointer { storage.bufferStart(frame) }

    /// Where the frames live, for a loop that reaches many frames (the poll loop) without reloading the pool
    /// object's fields each time. Valid while the pool lives.
    @inlinable var storage: Storage { Storage(base: base, infos: infos, bufferSize: bufferSize, stride: stride) }

    @usableFromInline
    struct Storage {
        @usableFromInline let base: UnsafeMutableRawPointer
        @usableFromInline let infos: UnsafeMutablePointer<FrameInfo>
        @usableFromInline let bufferSize: Int
        @usableFromInline let stride: Int

        @inlinable
        init(base: UnsafeMutableRawPointer, infos: UnsafeMutablePointer<FrameInfo>, bufferSize: Int, stride: Int) {
            self.base = base
            self.infos = infos
            self.bufferSize = bufferSize
            self.stride = stride
        }

        @inlinable
        func info(_ frame: FrameID) -> UnsafeMutablePointer<FrameInfo> { infos + Int(frame.rawValue) }

        @inlinable
        func bufferStart(_ frame: FrameID) -> UnsafeMutableRawPointer { base + Int(frame.rawValue) &* stride }
    }

    /// The packet bytes (`data` ..< `data_end`).
    @inlinable
    public func packet(_ frame: FrameID) -> UnsafeMutableRawBufferPointer {
        let info = infos[Int(frame.rawValue)]
        return UnsafeMutableRawBufferPointer(start: bufferStart(frame) + Int(info.dataOffset), count: Int(info.length))
    }

    /// Room for a packet starting at the frame's data offset: write into it, then call `setLength`.
    @inlinable @inline(__always)
    public func writableSpace(_ frame: FrameID) -> UnsafeMutableRawBufferPointer {
        let offset = Int(infos[Int(frame.rawValue)].dataOffset)
        // The data offset is within the buffer (the helpers keep it there).
        return UnsafeMutableRawBufferPointer(start: bufferStart(frame) + offset, count: bufferSize &- offset)
    }

    @inlinable
    public func setLength(_ frame: FrameID, _ length: Int) {
        precondition(Int(infos[Int(frame.rawValue)].dataOffset) + length <= bufferSize, "packet exceeds its buffer")
        infos[Int(frame.rawValue)].length = UInt32(length)
    }

    /// Takes a frame and copies `bytes` into it: the convenience used by tests and replay.
    @inlinable
    public func take(copying bytes: UnsafeRawBufferPointer, headroom: Int? = nil) -> FrameID? {
        guard let frame = take(headroom: headroom) else { return nil }
        let space = writableSpace(frame)
        guard bytes.count <= space.count else {
            give(frame)
            return nil
        }
        if let source = bytes.baseAddress, bytes.count > 0 {
            space.baseAddress!.copyMemory(from: source, byteCount: bytes.count)
        }
        setLength(frame, bytes.count)
        return frame
    }

    /// Copies a frame into a new one (used for flooding); nil when the pool is exhausted.
    @inlinable
    public func clone(_ frame: FrameID) -> FrameID? {
        let source = infos[Int(frame.rawValue)]
        guard let copy = take(headroom: Int(source.dataOffset)) else { return nil }
        let start = Int(source.dataOffset) - Int(source.metaLength)
        (bufferStart(copy) + start).copyMemory(
            from: bufferStart(frame) + start,
            byteCount: Int(source.metaLength + source.length))
        infos[Int(copy.rawValue)] = source
        return copy
    }
}
