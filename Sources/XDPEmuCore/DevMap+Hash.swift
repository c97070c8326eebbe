import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// BPF_MAP_TYPE_DEVMAP_HASH (modern profile): the devmap whose keys are any 32-bit value, at most `maxEntries` of
// them. It shares everything with the array map (entries, slots, retirement, the datapath's enqueue and flush)
// except how a key finds its slot: through `HashIndex`, an open-addressing table of (key, slot) words.
//
// Who touches what:
// - The control plane (update, delete, unregister; control lock held) picks a free slot for a new key, publishes
//   the entry in the slot, then the key's word in the index; a delete empties the slot, then turns the word into a
//   tombstone. Each is one atomic store, so a worker sees the key either absent or naming its slot.
// - Workers (inside a poll) probe the index without a lock, load the slot, and keep the entry only when its key is
//   the one they looked for (a slot freed and reused for another key between the two loads reads as a miss).
// - The kernel's iteration order (get_next_key, broadcast) is by bucket, `key & (n_buckets - 1)` with n_buckets
//   = roundup_pow_of_two(max_entries), newest first within a bucket: every entry carries its map's update count
//   (`DevMapEntry.sequence`), and both sort by (bucket, newest first). A broadcast sorts in a scratch area of
//   its worker's own, allocated with the map.

/// The index of a hash map: `capacity` (a power of two, at least twice `maxEntries`) atomic words, each 0 (never
/// used), `tombstone` (deleted) or key << 32 | (slot + 1); plus the control plane's own view (key -> slot, free
/// slots) and each worker's broadcast scratch.
@usableFromInline
final class HashIndex: @unchecked Sendable {
    // @unchecked Sendable: the words are atomics; `slotOfKey` and `freeSlots` are guarded by the network's control
    // lock; worker i touches only its own scratch.
    @usableFromInline let words: UnsafeMutablePointer<Atomic<UInt64>>
    @usableFromInline let mask: Int
    /// n_buckets - 1, for the kernel's order.
    let bucketMask: UInt32
    var slotOfKey: [UInt32: Int] = [:]
    var freeSlots: [Int] = []
    var nextUnusedSlot = 0
    /// Per worker, `maxEntries` pairs (sort key, entry bits).
    @usableFromInline let scratch: UnsafeMutablePointer<(UInt64, UInt)>
    @usableFromInline let scratchStride: Int

    @inlinable static var tombstone: UInt64 { UInt64.max }

    init?(maxEntries: UInt32, workers: Int) {
        var buckets: UInt64 = 1
        while buckets < UInt64(maxEntries) { buckets <<= 1 }
        bucketMask = UInt32(truncatingIfNeeded: buckets - 1)
        let capacity = Int(max(buckets * 2, 8))
        mask = capacity - 1
        // calloc: zeroed words are unused ones, and pages are only had when touched.
        guard let memory = calloc(capacity, MemoryLayout<Atomic<UInt64>>.stride) else { return nil }
        scratchStride = Int(maxEntries)
        guard let scratchMemory = calloc(Int(maxEntries) * workers, MemoryLayout<(UInt64, UInt)>.stride) else {
            free(memory)
            return nil
        }
        words = memory.bindMemory(to: Atomic<UInt64>.self, capacity: capacity)
        scratch = scratchMemory.bindMemory(to: (UInt64, UInt).self, capacity: Int(maxEntries) * workers)
    }

    deinit {
        free(words)
        free(scratch)
    }

    /// Where probing for `key` starts.
    @inlinable func home(_ key: UInt32) -> Int {
        Int(truncatingIfNeeded: (UInt64(key) &* 0x9E37_79B9_7F4A_7C15) >> 32) & mask
    }

    /// The slot of `key`, or nil (any thread; the answer may be stale by the time the slot is read).
    @inlinable func slot(of key: UInt32) -> Int? {
        var i = home(key)
        for _ in 0...mask {
            let word = words[i].load(ordering: .acquiring)
            if word == 0 { return nil }
            if word != Self.tombstone && UInt32(truncatingIfNeeded: word >> 32) == key {
                return Int(UInt32(truncatingIfNeeded: word)) &- 1
            }
            i = (i &+ 1) & mask
        }
        return nil
    }

    /// Publishes `key` at `slot` (the key is absent). Control lock held.
    func insert(_ key: UInt32, slot: Int) {
        var i = home(key)
        while true {
            let word = words[i].load(ordering: .relaxed)
            if word == 0 || word == Self.tombstone {
                words[i].store(UInt64(key) << 32 | UInt64(slot + 1), ordering: .releasing)
                slotOfKey[key] = slot
                return
            }
            i = (i + 1) & mask
        }
    }

    /// Withdraws `key` (present). Control lock held.
    func remove(_ key: UInt32) {
        guard let slot = slotOfKey.removeValue(forKey: key) else { return }
        freeSlots.append(slot)
        var i = home(key)
        for _ in 0...mask {
            let word = words[i].load(ordering: .relaxed)
            if word == 0 { return }
            if word != Self.tombstone && UInt32(truncatingIfNeeded: word >> 32) == key {
                words[i].store(Self.tombstone, ordering: .releasing)
                return
            }
            i = (i + 1) & mask
        }
    }

    /// A slot for a new key. Control lock held; the map has room.
    func takeSlot() -> Int {
        if let slot = freeSlots.popLast() { return slot }
        defer { nextUnusedSlot += 1 }
        return nextUnusedSlot
    }

    /// The kernel's iteration order of entries: bucket, then newest first.
    func orderKey(key: UInt32, sequence: UInt64) -> UInt64 {
        UInt64(key & bucketMask) << 32 | UInt64(UInt32.max - UInt32(truncatingIfNeeded: sequence))
    }
}

extension DevMap {
    /// The entry of `key` in a hash map, as the datapath sees it (no lock), or nil.
    @inlinable
    func hashBlock(key: UInt32) -> EntryBlock? {
        guard let slot = hash.unsafelyUnwrapped.slot(of: key) else { return nil }
        let bits = slots[slot].load(ordering: .acquiring)
        guard bits != 0 else { return nil }
        let block = EntryBlock(bits: bits)
        return block.key == key ? block : nil
    }

    /// `__dev_map_lookup_elem` or `__dev_map_hash_lookup_elem`, by the map's type (datapath).
    @inlinable
    func lookupBlock(key: UInt32) -> EntryBlock? {
        type == .hash ? hashBlock(key: key) : block(at: key)
    }

    /// `__dev_map_hash_update_elem`. Checks, in the kernel's order: read-only map (EPERM); flags > BPF_EXIST or
    /// ifindex 0 (EINVAL); BPF_NOEXIST on a present key (EEXIST); no device with that ifindex (EINVAL); a new key
    /// in a full map (E2BIG, even with BPF_EXIST, which on a missing key still inserts). A replaced key becomes
    /// the newest of its bucket.
    func hashUpdate(key: UInt32, ifindex: IfIndex, flags: UInt64, program: AttachedProgram?) throws(KernelErrno) {
        if self.flags.contains(.readOnly) { throw .EPERM }
        guard flags <= UpdateFlag.exist.rawValue, ifindex != .none else { throw .EINVAL }
        let index = hash.unsafelyUnwrapped
        try network.withControlLock { () throws(KernelErrno) in
            let present = index.slotOfKey[key]
            if present != nil && flags == UpdateFlag.noExist.rawValue { throw .EEXIST }
            guard network.deviceLocked(ifindex: ifindex) != nil else { throw .EINVAL }
            if present == nil && index.slotOfKey.count >= Int(maxEntries) { throw .E2BIG }
            let entry = try makeEntryLocked(key: key, ifindex: ifindex, program: program)
            let slot = present ?? index.takeSlot()
            let old = slots[slot].exchange(entry.block.bits, ordering: .acquiringAndReleasing)
            network.retireLocked(bits: old)
            if present == nil { index.insert(key, slot: slot) }
        }
    }

    /// `dev_map_hash_delete_elem`: EPERM on a read-only map, ENOENT for a missing key.
    func hashDelete(key: UInt32) throws(KernelErrno) {
        if flags.contains(.readOnly) { throw .EPERM }
        let index = hash.unsafelyUnwrapped
        try network.withControlLock { () throws(KernelErrno) in
            guard let slot = index.slotOfKey[key] else { throw .ENOENT }
            let old = slots[slot].exchange(0, ordering: .acquiringAndReleasing)
            index.remove(key)
            network.retireLocked(bits: old)
        }
    }

    /// `dev_map_hash_get_next_key`: the key after `key` in the kernel's order (bucket, newest first); the first
    /// key when `key` is nil or missing; ENOENT after the last key or in an empty map.
    func hashNextKey(after key: UInt32?) throws(KernelErrno) -> MapKey {
        let index = hash.unsafelyUnwrapped
        let ordered = network.withControlLock { () -> [UInt32] in
            index.slotOfKey.keys.compactMap { key -> (UInt64, UInt32)? in
                guard let entry = entryLocked(key: key) else { return nil }
                return (index.orderKey(key: key, sequence: entry.sequence), key)
            }.sorted { $0.0 < $1.0 }.map(\.1)
        }
        guard let key, let position = ordered.firstIndex(of: key) else {
            guard let first = ordered.first else { throw .ENOENT }
            return MapKey(first)
        }
        guard position + 1 < ordered.count else { throw .ENOENT }
        return MapKey(ordered[position + 1])
    }

    /// NETDEV_UNREGISTER for a hash map: every entry naming `device` leaves the map (its key with it).
    func hashUnregisterLocked(_ device: NetDevice) {
        let index = hash.unsafelyUnwrapped
        for (key, slot) in index.slotOfKey {
            let bits = slots[slot].load(ordering: .acquiring)
            guard bits != 0, DevMapEntry.from(bits: bits).takeUnretainedValue().device === device else { continue }
            let (exchanged, _) = slots[slot].compareExchange(
                expected: bits, desired: 0, ordering: .acquiringAndReleasing)
            if exchanged {
                index.remove(key)
                network.retireLocked(bits: bits)
            }
        }
    }

    /// The map's entries in the kernel's broadcast order (`dev_map_enqueue_multi`): an array map's by key, a hash
    /// map's by bucket, newest first, sorted in `cpu`'s scratch area. Datapath; the buffer is valid until this
    /// worker's next broadcast.
    func broadcastTargets(cpu: Int) -> UnsafeMutableBufferPointer<(UInt64, UInt)>? {
        guard let index = hash else { return nil }
        let scratch = index.scratch + cpu * index.scratchStride
        var count = 0
        for slot in 0..<Int(maxEntries) where count < index.scratchStride {
            let bits = slots[slot].load(ordering: .acquiring)
            guard bits != 0 else { continue }
            let block = EntryBlock(bits: bits)
            let item = (index.orderKey(key: block.key, sequence: block.sequence), bits)
            // Insertion sort: maps are small, and the scratch is this worker's (no allocation).
            var i = count
            while i > 0 && scratch[i - 1].0 > item.0 {
                scratch[i] = scratch[i - 1]
                i -= 1
            }
            scratch[i] = item
            count += 1
        }
        return UnsafeMutableBufferPointer(start: scratch, count: count)
    }
}
