import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// The devmap: BPF_MAP_TYPE_DEVMAP (and, in the modern profile, BPF_MAP_TYPE_DEVMAP_HASH: DevMap+Hash.swift).
//
// Who runs what, and when:
// - The control plane (map commands, scheduled map events, the unregister notifier) runs on any thread. It
//   swaps a slot with one atomic exchange (update, delete) or compare-and-exchange (unregister), so a worker
//   always reads either the old entry or the new one, never a torn value. The old entry is *retired*, not
//   freed: workers may still hold it inside their current poll, and its per-worker bulk queues may still hold
//   frames.
// - Workers (one per simulated CPU) read slots inside a NAPI poll, enqueue into the entry's bulk queue for their
//   own CPU, and set the key's bit in their own flush bitmap of the map (a worker that started one bulk since
//   its last flush only remembers its key; see Worker+BulkQueue.swift). At the end of the poll they flush
//   (`xdp_do_flush_map`): every marked key whose slot still holds an entry gets its queue transmitted and its
//   bit cleared. A key whose slot is empty at flush time is skipped and keeps its bit; the frames queued in the
//   old entry are sent by the deferred free below.
// - Deferred free (`dev_map_flush_old` after the RCU grace period): right after its flush each worker passes a
//   quiescent point. A worker that sees an entry retired since its previous quiescent point knows it will never
//   touch that entry again, so it transmits its own queue of the entry (XDP_XMIT_FLUSH), clears its own bit for
//   the key, moves its counters of the entry into the map, and says so. Once every worker has done so the control
//   plane releases the entry and keeps its (now clean) block for the next new entry. Every worker only
//   ever touches its own per-CPU parts, and learns of retired entries through epochs (RetireLog.swift), so none of
//   this takes a lock on the datapath.
// Together: a queued frame is sent exactly once, by the flush or by the deferred free, and never lost.

/// Creation flags of a map (`map_flags`).
public struct MapFlags: OptionSet, Sendable {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let numaNode = MapFlags(rawValue: 1 << 2)
    /// BPF_F_RDONLY: the control plane may not write (update, delete: EPERM).
    public static let readOnly = MapFlags(rawValue: 1 << 3)
    /// BPF_F_WRONLY: the control plane may not read (lookup, get_next_key: EPERM).
    public static let writeOnly = MapFlags(rawValue: 1 << 4)
    /// The flags a devmap accepts (DEV_CREATE_FLAG_MASK); others give EINVAL.
    public static let devmapMask: MapFlags = [.numaNode, .readOnly, .writeOnly]
}

/// The two kinds of devmap. They share the entries, the slots and the datapath; they differ only in how a key
/// finds its slot (the key itself, or the hash index of DevMap+Hash.swift), as in devmap.c.
public enum DevMapType: Sendable {
    /// BPF_MAP_TYPE_DEVMAP: an array, keys `0..<maxEntries`.
    case array
    /// BPF_MAP_TYPE_DEVMAP_HASH (Linux 5.4+, modern profile only): any 32-bit key, at most `maxEntries` of them.
    case hash
}

/// Update flags (BPF_ANY, BPF_NOEXIST, BPF_EXIST).
public enum UpdateFlag: UInt64, Sendable {
    case any = 0
    case noExist = 1
    case exist = 2
}

/// One per-CPU bulk queue (`struct xdp_bulk_queue`) plus that CPU's transmit counters for the entry, on 128 bytes
/// of its own. Its transmit leaves it empty (count, dev_rx and bytes 0), and the worker's quiescent point moves
/// the counters of a retired entry into its map (`DevMap.foldTransmitCounters`), which is what lets a released
/// entry's block serve a new entry untouched (see `DevMapEntry`).
@usableFromInline
enum BulkQueueLayout {
    /// DEV_MAP_BULK_SIZE.
    @usableFromInline static let capacity = 16
    /// The count and dev_rx are adjacent 32-bit words: the transmit clears both with one 8-byte store.
    @usableFromInline static let countOffset = 0
    @usableFromInline static let devRxOffset = 4
    @usableFromInline static let framesOffset = 8
    @usableFromInline static let sentOffset = 72
    @usableFromInline static let dropsOffset = 80
    @usableFromInline static let flushesOffset = 88
    /// Bytes of the queued frames (summed at enqueue, so the transmit does not walk the frames' records).
    @usableFromInline static let bytesOffset = 96
    @usableFromInline static let stride = 128
}

/// A devmap entry (`struct bpf_dtab_netdev`): the target device and one bulk queue per worker. Immutable once
/// published; only the per-worker queue areas change, each by its own worker.
///
/// What the datapath touches lives in the entry's `block`, and a map slot holds the block's address rather than
/// the object's: the block starts with a header (the object's and the device's bits, the key) and the queues
/// follow at fixed offsets, so a worker finds its queue by arithmetic on what it loaded from the slot, not by a
/// further load (see `EntryBlock`). The slot still owns a reference to the object, which owns the block.
///
/// Blocks are recycled: once every worker is done with a retired entry its queues are empty (each worker sent
/// its own at its quiescent point), so the control plane hands the block to the next new entry and writes only
/// its header. The queues' lines then stay in the caches of the workers that used them; a new block written
/// by the updater's thread would cost each worker a miss per line after every map update.
@usableFromInline
final class DevMapEntry {
    @usableFromInline let device: NetDevice
    @usableFromInline let key: UInt32
    @usableFromInline unowned(unsafe) let map: DevMap
    @usableFromInline let block: EntryBlock
    /// The egress program of the entry (modern profile, value_size 8), run on its frames at flush.
    let program: AttachedProgram?
    /// When the entry was made, in its map's count of updates: a hash map lists its newest entry of a bucket
    /// first (hlist_add_head).
    let sequence: UInt64
    /// Set when the control plane takes the block back for another entry (`RetireLog.reclaim`); the object then
    /// leaves it alone when it goes.
    var blockRecycled = false

    /// `spare` is a block given back by a reclaimed entry of the same network (its queues empty), or nil.
    init(
        device: NetDevice, key: UInt32, map: DevMap, workers: Int, spare: UnsafeMutableRawPointer?,
        program: AttachedProgram? = nil, sequence: UInt64 = 0
    ) {
        self.device = device
        self.key = key
        self.map = map
        self.program = program
        self.sequence = sequence
        let base: UnsafeMutableRawPointer
        if let spare {
            base = spare
        } else {
            // 128-byte aligned, the header and each worker's queue on a pair of cache lines of its own (the
            // adjacent-line prefetcher fetches lines in aligned pairs).
            let bytes = EntryBlock.size(workers: workers)
            base = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 128)
            base.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        }
        block = EntryBlock(base: base)
        base.storeBytes(
            of: UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque()),
            toByteOffset: EntryBlock.entryOffset, as: UInt.self)
        base.storeBytes(
            of: UInt(bitPattern: Unmanaged.passUnretained(device).toOpaque()),
            toByteOffset: EntryBlock.deviceOffset, as: UInt.self)
        base.storeBytes(of: key, toByteOffset: EntryBlock.keyOffset, as: UInt32.self)
        base.storeBytes(
            of: UInt(bitPattern: Unmanaged.passUnretained(map).toOpaque()),
            toByteOffset: EntryBlock.mapOffset, as: UInt.self)
        base.storeBytes(of: sequence, toByteOffset: EntryBlock.sequenceOffset, as: UInt64.self)
        base.storeBytes(
            of: program.map { UInt(bitPattern: Unmanaged.passUnretained($0).toOpaque()) } ?? 0,
            toByteOffset: EntryBlock.programOffset, as: UInt.self)
    }

    deinit {
        if !blockRecycled { block.base.deallocate() }
    }

    /// The entry whose block is at `bits` (a slot's or the retire log's value, non-zero).
    @inlinable
    static func from(bits: UInt) -> Unmanaged<DevMapEntry> { EntryBlock(bits: bits).entry }

    /// This worker's bulk queue.
    @inlinable
    func queue(cpu: Int) -> UnsafeMutableRawPointer { block.queue(cpu: cpu) }

    /// Whether every worker's queue is empty and its counters moved to the map (what recycling the block requires).
    func queuesAreEmpty(workers: Int) -> Bool {
        (0..<workers).allSatisfy { cpu in
            let q = queue(cpu: cpu)
            return [
                BulkQueueLayout.countOffset, BulkQueueLayout.sentOffset, BulkQueueLayout.dropsOffset,
                BulkQueueLayout.flushesOffset, BulkQueueLayout.bytesOffset,
            ].allSatisfy {
                q.load(fromByteOffset: $0, as: UInt64.self) == 0
            }
        }
    }

    /// This worker's transmit counters for the entry (sent, drops, bulk transmits).
    func transmitCounters(cpu: Int) -> MapEntryStatistics {
        let q = queue(cpu: cpu)
        return MapEntryStatistics(
            sent: q.load(fromByteOffset: BulkQueueLayout.sentOffset, as: UInt64.self),
            drops: q.load(fromByteOffset: BulkQueueLayout.dropsOffset, as: UInt64.self),
            flushes: q.load(fromByteOffset: BulkQueueLayout.flushesOffset, as: UInt64.self))
    }
}

/// An entry as the datapath sees it: the address of its block (`DevMapEntry.block`), which a slot holds. The
/// header's references are unretained: the entry object holds the device, the network the map, and the slot (or
/// the retire log) the object. Workers read only the block (lookup, enqueue, transmit, deferred free): the object
/// is the control plane's.
@usableFromInline
struct EntryBlock {
    @usableFromInline static let headerSize = 128
    @usableFromInline static let entryOffset = 0
    @usableFromInline static let deviceOffset = 8
    @usableFromInline static let keyOffset = 16
    @usableFromInline static let mapOffset = 24
    @usableFromInline static let sequenceOffset = 32
    @usableFromInline static let programOffset = 40

    /// Bytes of a block for `workers` workers.
    static func size(workers: Int) -> Int { headerSize + workers * BulkQueueLayout.stride }

    @usableFromInline let base: UnsafeMutableRawPointer

    @inlinable init(base: UnsafeMutableRawPointer) { self.base = base }

    /// The block at `bits` (non-zero).
    @inlinable init(bits: UInt) { base = UnsafeMutableRawPointer(bitPattern: bits).unsafelyUnwrapped }

    /// What a slot holds for this entry.
    @inlinable var bits: UInt { UInt(bitPattern: base) }

    @inlinable var entry: Unmanaged<DevMapEntry> {
        Unmanaged.fromOpaque(
            UnsafeRawPointer(bitPattern: base.load(fromByteOffset: Self.entryOffset, as: UInt.self))
                .unsafelyUnwrapped)
    }

    @inlinable var device: Unmanaged<NetDevice> {
        Unmanaged.fromOpaque(
            UnsafeRawPointer(bitPattern: base.load(fromByteOffset: Self.deviceOffset, as: UInt.self))
                .unsafelyUnwrapped)
    }

    @inlinable var key: UInt32 { base.load(fromByteOffset: Self.keyOffset, as: UInt32.self) }

    /// `DevMapEntry.sequence`.
    @inlinable var sequence: UInt64 { base.load(fromByteOffset: Self.sequenceOffset, as: UInt64.self) }

    /// The bits of the entry's unretained egress program (`AttachedProgram`), 0 for none.
    @inlinable var programBits: UInt { base.load(fromByteOffset: Self.programOffset, as: UInt.self) }

    @inlinable var map: Unmanaged<DevMap> {
        Unmanaged.fromOpaque(
            UnsafeRawPointer(bitPattern: base.load(fromByteOffset: Self.mapOffset, as: UInt.self))
                .unsafelyUnwrapped)
    }

    /// This worker's bulk queue.
    @inlinable
    func queue(cpu: Int) -> UnsafeMutableRawPointer {
        base + (Self.headerSize &+ cpu &* BulkQueueLayout.stride)
    }
}

/// A devmap: `maxEntries` slots, each empty or naming a device, used by `bpf_redirect_map`. In an array map the
/// key is the slot; in a hash map (DevMap+Hash.swift) a lock-free index finds the slot of a key. The
/// control-plane methods return the kernel's errno for the same conditions, checked in the kernel's order.
public final class DevMap: @unchecked Sendable {
    // @unchecked Sendable: slots are atomics; per-worker areas are touched only by their worker; the rest is
    // guarded by the network's control lock.

    /// The map id (`map->id`), as events report it.
    public let id: UInt32
    public let maxEntries: UInt32
    public let flags: MapFlags
    public let type: DevMapType
    /// 4 (ifindex) or 8 (ifindex and program, modern profile only): what a lookup shows.
    public let valueSize: UInt32
    @usableFromInline unowned(unsafe) let network: Network
    @usableFromInline let slots: UnsafeMutablePointer<Atomic<UInt>>
    /// What calloc returned for the slots (`slots` is it rounded up to 128 bytes).
    private let slotAllocation: UnsafeMutableRawPointer
    @usableFromInline let workers: Int
    /// Words of one worker's flush bitmap, and of its summary (a bit per bitmap word that may be non-zero).
    @usableFromInline let words: Int
    @usableFromInline let summaryWords: Int
    @usableFromInline let bitmapStride: Int
    @usableFromInline let flushBits: UnsafeMutablePointer<UInt64>
    /// Transmit counters of released entries by key, per worker (sent, drops, bulk transmits: 3 words per key),
    /// moved here by each worker at its quiescent point; each worker's on 128-byte blocks of its own.
    @usableFromInline let transmitCounters: UnsafeMutablePointer<UInt64>
    @usableFromInline let transmitCounterStride: Int
    private let transmitCounterAllocation: UnsafeMutableRawPointer
    /// The hash map's index and the state its control plane keeps (nil for an array map).
    @usableFromInline let hash: HashIndex?
    /// Entries made so far (`DevMapEntry.sequence`); control lock held.
    var updates: UInt64 = 0

    /// Slots come from `calloc`: zeroed memory the system hands out page by page as it is touched, so a large,
    /// sparsely used map costs only what is used (as the kernel's vmalloc'ed slot array). Slots and flush bitmaps
    /// (a bit per key per worker) each sit on whole 128-byte blocks of their own (the adjacent-line prefetcher
    /// moves aligned pairs of 64-byte lines): every worker reads the slots for every frame, and each worker writes
    /// its own bitmap in every poll. calloc aligns to 16 bytes only: a small map's bitmaps came right after its
    /// slots, in the same pair of lines, and two workers alone cost 20-26 ns per frame instead of 15. Nil when the
    /// memory cannot be had (the caller answers ENOMEM).
    init?(
        id: UInt32, maxEntries: UInt32, flags: MapFlags, network: Network, type: DevMapType = .array,
        valueSize: UInt32 = 4
    ) {
        self.id = id
        self.maxEntries = maxEntries
        self.flags = flags
        self.type = type
        self.valueSize = valueSize
        self.network = network
        if type == .hash {
            guard let index = HashIndex(maxEntries: maxEntries, workers: network.workerCount) else { return nil }
            hash = index
        } else {
            hash = nil
        }
        workers = network.workerCount
        words = (Int(maxEntries) + 63) / 64
        summaryWords = (words + 63) / 64
        // Each worker's bitmap and summary, padded to whole 128-byte blocks so workers never share a line.
        bitmapStride = ((words + summaryWords + 15) / 16) * 16
        // An all-zero Atomic<UInt> is an empty slot, so zeroed memory is a fully initialized slot array. 128 bytes
        // more than the slots rounded up to 128, so that they can start on a 128-byte boundary.
        let slotBytes = (Int(maxEntries) * MemoryLayout<Atomic<UInt>>.stride + 127) & ~127
        guard let slotMemory = calloc(1, slotBytes + 128) else { return nil }
        let bitmapBytes = bitmapStride * workers * MemoryLayout<UInt64>.stride
        guard let bitmapMemory = aligned_alloc(128, bitmapBytes) else {
            free(slotMemory)
            return nil
        }
        memset(bitmapMemory, 0, bitmapBytes)
        // calloc, as the slots: a large map's counters cost only the pages its keys touch.
        transmitCounterStride = (Int(maxEntries) * 3 + 15) & ~15
        guard let counterMemory = calloc(1, transmitCounterStride * workers * MemoryLayout<UInt64>.stride + 128) else {
            free(slotMemory)
            free(bitmapMemory)
            return nil
        }
        transmitCounterAllocation = counterMemory
        transmitCounters = Self.first128ByteBoundary(in: counterMemory)
            .bindMemory(to: UInt64.self, capacity: transmitCounterStride * workers)
        slotAllocation = slotMemory
        slots = Self.first128ByteBoundary(in: slotMemory).bindMemory(to: Atomic<UInt>.self, capacity: Int(maxEntries))
        flushBits = bitmapMemory.bindMemory(to: UInt64.self, capacity: bitmapStride * workers)
    }

    deinit {
        for i in 0..<Int(maxEntries) {
            let bits = slots[i].load(ordering: .acquiring)
            if bits != 0 { DevMapEntry.from(bits: bits).release() }
        }
        free(slotAllocation)
        free(flushBits)
        free(transmitCounterAllocation)
    }

    /// The first address at or after `memory` on a 128-byte boundary (allocations get 128 bytes more for it).
    private static func first128ByteBoundary(in memory: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer {
        memory.advanced(by: (128 - Int(bitPattern: memory) & 127) & 127)
    }

    /// `cpu`'s counters of released entries under `key`: sent, drops, bulk transmits.
    private func releasedCounters(key: UInt32, cpu: Int) -> UnsafeMutablePointer<UInt64> {
        transmitCounters + (cpu * transmitCounterStride + Int(key) * 3)
    }

    /// Moves `cpu`'s transmit counters of the retired `entry` (one of this map's) into the map's, under its key,
    /// and zeroes them: the worker's last act on a retired entry, at its quiescent point.
    func foldTransmitCounters(of entry: EntryBlock, cpu: Int) {
        // A hash map's keys are no indexes; its entries never queue (the modern profile queues per device).
        guard type == .array else { return }
        let queue = entry.queue(cpu: cpu)
        let counters = releasedCounters(key: entry.key, cpu: cpu)
        for (i, offset) in [
            BulkQueueLayout.sentOffset, BulkQueueLayout.dropsOffset,
            BulkQueueLayout.flushesOffset,
        ].enumerated() {
            counters[i] &+= queue.load(fromByteOffset: offset, as: UInt64.self)
            queue.storeBytes(of: 0, toByteOffset: offset, as: UInt64.self)
        }
    }

    // MARK: Datapath (runs inside a poll, on a worker)

    /// `__dev_map_lookup_elem`: the entry at `key`, without taking a reference (valid until the worker's next
    /// quiescent point).
    @inlinable @inline(__always)
    func entry(at key: UInt32) -> Unmanaged<DevMapEntry>? { block(at: key)?.entry }

    /// `entry(at:)` as the datapath wants it: the entry's block.
    @inlinable @inline(__always)
    func block(at key: UInt32) -> EntryBlock? { Self.block(at: key, slots: slots, maxEntries: maxEntries) }

    /// `block(at:)` with the map's slots and size read beforehand (the poll loop's fast path keeps them).
    @inlinable @inline(__always)
    static func block(at key: UInt32, slots: UnsafeMutablePointer<Atomic<UInt>>, maxEntries: UInt32) -> EntryBlock? {
        guard key < maxEntries else { return nil }
        let bits = slots[Int(key)].load(ordering: .acquiring)
        guard bits != 0 else { return nil }
        return EntryBlock(bits: bits)
    }

    /// `__dev_map_insert_ctx`: marks `key` for this worker's next flush (its bit and its word's summary bit).
    /// Runs for the first frame of a bulk (`Worker.append`), inline. The key may be marked already (a slot
    /// emptied and filled again before the flush): both bits are set without a test, which changes nothing then
    /// and costs less than the test.
    @inlinable @inline(__always)
    func markForFlush(_ key: UInt32, cpu: Int) {
        let bitmap = flushBits + cpu &* bitmapStride
        let word = Int(key >> 6)
        let bit: UInt64 = 1 << UInt64(key & 63)
        bitmap[word] |= bit
        bitmap[words &+ (word >> 6)] |= 1 << UInt64(word & 63)
    }

    @inlinable @inline(__always)
    func clearFlushMark(_ key: UInt32, cpu: Int) {
        guard key < maxEntries else { return }
        let bitmap = flushBits + cpu &* bitmapStride
        bitmap[Int(key >> 6)] &= ~(1 << UInt64(key & 63))
    }

    /// Whether `key` is marked in `cpu`'s flush bitmap (for tests and diagnostics).
    public func isMarkedForFlush(_ key: MapKey, cpu: Int = 0) -> Bool {
        let key = key.rawValue
        guard key < maxEntries else { return false }
        return (flushBits + cpu * bitmapStride)[Int(key >> 6)] & (1 << UInt64(key & 63)) != 0
    }

    /// `__dev_map_flush`: transmits the queue of every marked key whose slot holds an entry, in key order, and
    /// clears its mark. Keys whose slot is empty keep their mark (their frames wait for the deferred free).
    @inlinable
    func flush(worker: Worker) {
        let cpu = worker.cpu
        let bitmap = flushBits + cpu &* bitmapStride
        let summary = bitmap + words
        for s in 0..<summaryWords {
            var pending = summary[s]
            while pending != 0 {
                let w = s &* 64 &+ pending.trailingZeroBitCount
                pending &= pending &- 1
                var bits = bitmap[w]
                // The marks that stay: keys whose slot is empty. (Sending a queue marks nothing.)
                var kept: UInt64 = 0
                while bits != 0 {
                    let bit = bits & (0 &- bits)
                    // Below maxEntries, as every marked key is.
                    let slot = slots[w &* 64 &+ bits.trailingZeroBitCount].load(ordering: .acquiring)
                    bits &= bits &- 1
                    guard slot != 0 else {
                        kept |= bit
                        continue
                    }
                    worker.sendQueue(of: EntryBlock(bits: slot), flags: .flush)
                }
                bitmap[w] = kept
                if kept == 0 { summary[s] &= ~(1 << UInt64(w & 63)) }
            }
        }
    }

    /// `flush` when `key` is the only key whose queue may hold frames, one bulk started since the previous flush
    /// and left unmarked (`Worker.append`): sends its queue when its slot holds an entry. When the slot is empty,
    /// the entry's frames wait for the deferred free, as `flush` leaves them. Marks on other keys, whose queues
    /// are empty, stay until a full flush clears them, which sends nothing for them.
    @inlinable @inline(__always)
    func flush(key: UInt32, worker: Worker) {
        let slot = slots[Int(key)].load(ordering: .acquiring)
        guard slot != 0 else { return }
        worker.sendQueue(of: EntryBlock(bits: slot), flags: .flush)
    }

    // MARK: Control plane (any thread)

    /// `map_update_elem`. Checks, in the kernel's order: read-only map (EPERM), flags > BPF_EXIST (EINVAL), key out
    /// of range (E2BIG), BPF_NOEXIST (EEXIST: an array slot always exists), then the ifindex (EINVAL when no such
    /// device; the slot is left as it was). `IfIndex.none` (0) empties the slot (with a program: EINVAL).
    /// `program` is the entry's egress program (modern profile, value_size 8). A hash map has its own order
    /// (`hashUpdate`).
    public func update(
        key: MapKey, ifindex: IfIndex, flags: UInt64 = UpdateFlag.any.rawValue, program: AttachedProgram? = nil
    ) throws(KernelErrno) {
        if type == .hash {
            try hashUpdate(key: key.rawValue, ifindex: ifindex, flags: flags, program: program)
            return
        }
        let key = key.rawValue
        if self.flags.contains(.readOnly) { throw .EPERM }
        guard flags <= UpdateFlag.exist.rawValue else { throw .EINVAL }
        guard key < maxEntries else { throw .E2BIG }
        guard flags != UpdateFlag.noExist.rawValue else { throw .EEXIST }
        if ifindex == .none && program != nil { throw .EINVAL }
        try network.withControlLock { () throws(KernelErrno) in
            var newBits: UInt = 0
            if ifindex != .none {
                newBits = try makeEntryLocked(key: key, ifindex: ifindex, program: program).block.bits
            }
            let old = slots[Int(key)].exchange(newBits, ordering: .acquiringAndReleasing)
            network.retireLocked(bits: old)
        }
    }

    /// `__dev_map_alloc_node`: a new entry for `key` naming the device `ifindex` (EINVAL when there is none), its
    /// reference owned by the slot it goes into. Control lock held.
    func makeEntryLocked(key: UInt32, ifindex: IfIndex, program: AttachedProgram?) throws(KernelErrno) -> DevMapEntry {
        guard let device = network.deviceLocked(ifindex: ifindex) else { throw .EINVAL }
        updates += 1
        let entry = DevMapEntry(
            device: device, key: key, map: self, workers: workers, spare: network.retireLog.takeSpareBlock(),
            program: program, sequence: updates)
        // The slot's reference: released when the entry is reclaimed (or with the map).
        _ = Unmanaged.passRetained(entry)
        return entry
    }

    /// `map_delete_elem`: EPERM on a read-only map, EINVAL for a key out of range; an empty slot is fine.
    public func delete(key: MapKey) throws(KernelErrno) {
        if type == .hash { return try hashDelete(key: key.rawValue) }
        let key = key.rawValue
        if flags.contains(.readOnly) { throw .EPERM }
        guard key < maxEntries else { throw .EINVAL }
        network.withControlLock {
            let old = slots[Int(key)].exchange(0, ordering: .acquiringAndReleasing)
            network.retireLocked(bits: old)
        }
    }

    /// `map_lookup_elem`: the ifindex at `key`. EPERM on a write-only map; ENOENT when out of range or empty.
    public func lookup(key: MapKey) throws(KernelErrno) -> IfIndex { try lookupValue(key: key).ifindex }

    /// `map_lookup_elem` with the whole value: the ifindex and the id of the entry's egress program (0 when none;
    /// what a value_size 8 lookup shows).
    public func lookupValue(key: MapKey) throws(KernelErrno) -> (ifindex: IfIndex, programID: UInt32) {
        if flags.contains(.writeOnly) { throw .EPERM }
        return try network.withControlLock { () throws(KernelErrno) -> (IfIndex, UInt32) in
            guard let entry = entryLocked(key: key.rawValue) else { throw .ENOENT }
            return (entry.device.ifindex, entry.program?.programID ?? 0)
        }
    }

    /// The entry at `key` (either kind of map), or nil. Control lock held.
    func entryLocked(key: UInt32) -> DevMapEntry? {
        guard let block = type == .hash ? hashBlock(key: key) : block(at: key) else { return nil }
        return block.entry.takeUnretainedValue()
    }

    /// The device at `key`, or nil (control plane).
    public func device(at key: MapKey) -> NetDevice? {
        network.withControlLock { entryLocked(key: key.rawValue)?.device }
    }

    /// `map_get_next_key`: nil key or a key out of range gives 0; the last key gives ENOENT; otherwise key + 1
    /// (empty slots are not skipped). EPERM on a write-only map.
    public func nextKey(after key: MapKey?) throws(KernelErrno) -> MapKey {
        if flags.contains(.writeOnly) { throw .EPERM }
        if type == .hash { return try hashNextKey(after: key?.rawValue) }
        guard let key = key?.rawValue, key < maxEntries else { return 0 }
        guard key != maxEntries - 1 else { throw .ENOENT }
        return MapKey(key + 1)
    }

    /// Per-key transmit counters, over every entry the key has held. Exact when the workers are stopped (and have
    /// passed their quiescent points).
    public func statistics() -> [MapKey: MapEntryStatistics] {
        // A hash map's entries never queue: the modern profile queues per device.
        guard type == .array else { return [:] }
        return network.withControlLock {
            var result: [MapKey: MapEntryStatistics] = [:]
            for key in 0..<maxEntries {
                var s = MapEntryStatistics()
                let live = entry(at: key)?.takeUnretainedValue()
                for cpu in 0..<workers {
                    let counters = releasedCounters(key: key, cpu: cpu)
                    s.add(MapEntryStatistics(sent: counters[0], drops: counters[1], flushes: counters[2]))
                    if let live { s.add(live.transmitCounters(cpu: cpu)) }
                }
                if s.flushes > 0 || s.sent > 0 || s.drops > 0 { result[MapKey(key)] = s }
            }
            return result
        }
    }

    /// Clears every slot pointing at `device` with compare-and-exchange, so a concurrent update wins (the
    /// NETDEV_UNREGISTER notifier). Called with the control lock held.
    func unregisterLocked(_ device: NetDevice) {
        if type == .hash { return hashUnregisterLocked(device) }
        for i in 0..<Int(maxEntries) {
            let bits = slots[i].load(ordering: .acquiring)
            guard bits != 0 else { continue }
            guard DevMapEntry.from(bits: bits).takeUnretainedValue().device === device else { continue }
            let (exchanged, _) = slots[i].compareExchange(expected: bits, desired: 0, ordering: .acquiringAndReleasing)
            if exchanged { network.retireLocked(bits: bits) }
        }
    }
}

extension MapEntryStatistics {
    mutating func add(_ other: MapEntryStatistics) {
        sent += other.sent
        drops += other.drops
        flushes += other.flushes
    }
}
