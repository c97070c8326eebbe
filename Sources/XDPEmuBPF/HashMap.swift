// BPF_MAP_TYPE_HASH, PERCPU_HASH, LRU_HASH and LRU_PERCPU_HASH: open addressing with linear probing over a
// power-of-two index of slot numbers, backward-shift deletion (no tombstones), keys and values in slot arrays
// allocated once for max_entries (touched lazily, see ZeroedMemory). Update follows htab_map_update_elem: flags
// (EINVAL), then BPF_NOEXIST on an existing key (EEXIST), BPF_EXIST on a missing one (ENOENT), then a full map:
// E2BIG, or for an LRU map the least recently used element is evicted. Delete of a missing key is ENOENT.
// Updating an existing key copies the new value over the old in place (the kernel swaps in a new element; a
// program holding the old value pointer sees the new value here). The LRU order is exact (every lookup and
// update moves the element to the front), where the kernel's is approximate.

import XDPEmuCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

final class HashMap: BPFMap, @unchecked Sendable {
    let keys: ZeroedMemory
    let values: ZeroedMemory
    /// `keys.pointer` and `values.pointer`, read without touching the objects.
    let keyBase: UnsafeMutableRawPointer
    let valueBase: UnsafeMutableRawPointer
    /// Index table: slot + 1, 0 for empty.
    let index: UnsafeMutablePointer<UInt32>
    let indexMask: Int
    /// Slots never used yet start at `fresh`; freed slots are pushed on `freeList`.
    @exclusivity(unchecked) var fresh = 0
    @exclusivity(unchecked) var freeList: [UInt32] = []
    @exclusivity(unchecked) var count = 0
    let slotSize: Int
    /// Keys are stored zero-padded to whole words: `keyWords` words, `keyStride` bytes a slot.
    let keyWords: Int
    let keyStride: Int
    /// The key being looked up, padded the same way.
    let probe: UnsafeMutablePointer<UInt64>
    let isLRU: Bool
    /// LRU list (slot numbers, UInt32.max for none).
    @exclusivity(unchecked) var previous: [UInt32] = []
    @exclusivity(unchecked) var next: [UInt32] = []
    @exclusivity(unchecked) var head = UInt32.max
    @exclusivity(unchecked) var tail = UInt32.max

    init?(definition: BPFMapDefinition, cpus: Int) {
        let capacity = Int(definition.maxEntries)
        let perCPU = definition.type.isPerCPU
        slotSize = (perCPU ? (definition.valueSize + 7) & ~7 : definition.valueSize) * (perCPU ? cpus : 1)
        keyWords = (definition.keySize + 7) / 8
        keyStride = keyWords * 8
        guard let keys = ZeroedMemory(count: capacity * keyStride),
            let values = ZeroedMemory(count: capacity * slotSize)
        else { return nil }
        self.keys = keys
        self.values = values
        keyBase = keys.pointer
        valueBase = values.pointer
        var size = 2
        while size < capacity * 2 { size <<= 1 }
        probe = .allocate(capacity: keyWords)
        probe.initialize(repeating: 0, count: keyWords)
        index = .allocate(capacity: size)
        index.initialize(repeating: 0, count: size)
        indexMask = size - 1
        isLRU = definition.type == .lruHash || definition.type == .lruPercpuHash
        freeList.reserveCapacity(min(capacity, 1 << 16))
        if isLRU {
            previous = [UInt32](repeating: .max, count: capacity)
            next = [UInt32](repeating: .max, count: capacity)
        }
        super.init(base: definition, cpus: cpus)
    }

    deinit {
        index.deallocate()
        probe.deallocate()
    }

    override var region: Region {
        Region(bias: UInt(bitPattern: values.pointer), lo: 0, hi: UInt64(values.count), writable: true)
    }

    /// The key copied into `probe`, zero-padded to whole words, as keys are stored; returns its hash.
    @inline(__always)
    private func prepare(_ key: UnsafeRawPointer) -> Int {
        if keyWords == 1 {
            probe[0] = word(key)
            return Self.hash(probe[0])
        }
        probe[keyWords - 1] = 0
        UnsafeMutableRawPointer(probe).copyMemory(from: key, byteCount: keySize)
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15
        for i in 0..<keyWords {
            h = (h ^ probe[i]) &* 0xBF58_476D_1CE4_E5B9
            h ^= h >> 31
        }
        return Int(truncatingIfNeeded: h ^ h >> 29)
    }

    /// A key of at most 8 bytes as the word it is stored as (zero-padded).
    @inline(__always)
    private func word(_ key: UnsafeRawPointer) -> UInt64 {
        switch keySize {
        case 4: return UInt64(key.loadUnaligned(as: UInt32.self))
        case 6:
            return UInt64(key.loadUnaligned(as: UInt32.self))
                | UInt64(key.loadUnaligned(fromByteOffset: 4, as: UInt16.self)) << 32
        case 8: return key.loadUnaligned(as: UInt64.self)
        default: return Self.word(key, keySize)
        }
    }

    @inline(never)
    private static func word(_ key: UnsafeRawPointer, _ size: Int) -> UInt64 {
        var w: UInt64 = 0
        for i in 0..<size { w |= UInt64(key.load(fromByteOffset: i, as: UInt8.self)) << (8 * i) }
        return w
    }

    /// The hash of a one-word key (the same as `prepare`'s for one word).
    @inline(__always)
    private static func hash(_ word: UInt64) -> Int {
        var h = (0x9E37_79B9_7F4A_7C15 ^ word) &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 31
        return Int(truncatingIfNeeded: h ^ h >> 29)
    }

    /// The slot holding the one-word key `word`.
    @inline(__always)
    private func slot(ofWord word: UInt64) -> Int? {
        let keys = keyBase.assumingMemoryBound(to: UInt64.self)
        var position = Self.hash(word) & indexMask
        while true {
            let entry = index[position]
            if entry == 0 { return nil }
            if keys[Int(entry &- 1)] == word { return Int(entry &- 1) }
            position = (position &+ 1) & indexMask
        }
    }

    /// Whether slot `slot` holds the key in `probe`.
    @inline(__always)
    private func holdsProbe(_ slot: Int) -> Bool {
        let stored = (keyBase + slot * keyStride).assumingMemoryBound(to: UInt64.self)
        for i in 0..<keyWords where stored[i] != probe[i] { return false }
        return true
    }

    private func keyPointer(_ slot: Int) -> UnsafeMutableRawPointer { keyBase + slot * keyStride }

    /// The index position holding `key`'s slot, or the empty position where it would go.
    private func find(_ key: UnsafeRawPointer) -> (position: Int, slot: Int?) {
        var position = prepare(key) & indexMask
        while true {
            let entry = index[position]
            if entry == 0 { return (position, nil) }
            let slot = Int(entry &- 1)
            if holdsProbe(slot) { return (position, slot) }
            position = (position &+ 1) & indexMask
        }
    }

    @inline(__always)
    override func lookup(key: UnsafeRawPointer, cpu: Int) -> UInt64? {
        guard let slot = keyWords == 1 ? slot(ofWord: word(key)) : find(key).slot else { return nil }
        if isLRU { touch(slot) }
        return UInt64(truncatingIfNeeded: slot &* slotSize &+ cpu &* cpuStride)
    }

    override func update(key: UnsafeRawPointer, value: UnsafeRawPointer, flags: UInt64, cpu: Int) -> Int64 {
        guard Self.flagsValid(flags) else { return Self.errno(.EINVAL) }
        let found = find(key)
        if let slot = found.slot {
            guard flags & 3 != UpdateFlags.noExist else { return Self.errno(.EEXIST) }
            (valueBase + slot * slotSize + cpu * cpuStride).copyMemory(
                from: value, byteCount: definition.valueSize)
            if isLRU { touch(slot) }
            return 0
        }
        guard flags & 3 != UpdateFlags.exist else { return Self.errno(.ENOENT) }
        var position = found.position
        if count >= Int(definition.maxEntries) {
            guard isLRU, tail != .max else { return Self.errno(.E2BIG) }
            remove(slot: Int(tail))
            position = find(key).position
        }
        let slot: Int
        if let reused = freeList.popLast() {
            slot = Int(reused)
        } else {
            slot = fresh
            fresh += 1
        }
        keyPointer(slot).copyMemory(from: key, byteCount: definition.keySize)
        let base = values.pointer + slot * slotSize
        base.initializeMemory(as: UInt8.self, repeating: 0, count: slotSize)
        (base + cpu * cpuStride).copyMemory(from: value, byteCount: definition.valueSize)
        index[position] = UInt32(slot + 1)
        count += 1
        if isLRU { linkFront(slot) }
        return 0
    }

    override func delete(key: UnsafeRawPointer) -> Int64 {
        guard let slot = find(key).slot else { return Self.errno(.ENOENT) }
        remove(slot: slot)
        return 0
    }

    private func remove(slot: Int) {
        var position = find(keyPointer(slot)).position
        // Backward-shift deletion: move later members of the probe run into the hole.
        var hole = position
        while true {
            position = (position + 1) & indexMask
            let entry = index[position]
            if entry == 0 { break }
            let home = prepare(keyPointer(Int(entry - 1))) & indexMask
            let distanceHome = (position - home) & indexMask
            let distanceHole = (position - hole) & indexMask
            if distanceHome >= distanceHole {
                index[hole] = entry
                hole = position
            }
        }
        index[hole] = 0
        if isLRU { unlink(slot) }
        freeList.append(UInt32(slot))
        count -= 1
    }

    private func touch(_ slot: Int) {
        guard head != UInt32(slot) else { return }
        unlink(slot)
        linkFront(slot)
    }

    private func linkFront(_ slot: Int) {
        previous[slot] = .max
        next[slot] = head
        if head != .max { previous[Int(head)] = UInt32(slot) }
        head = UInt32(slot)
        if tail == .max { tail = UInt32(slot) }
    }

    private func unlink(_ slot: Int) {
        let p = previous[slot]
        let n = next[slot]
        if p != .max { next[Int(p)] = n } else if head == UInt32(slot) { head = n }
        if n != .max { previous[Int(n)] = p } else if tail == UInt32(slot) { tail = p }
        previous[slot] = .max
        next[slot] = .max
    }

    override func entries() -> [(key: [UInt8], values: [[UInt8]])] {
        var out: [(key: [UInt8], values: [[UInt8]])] = []
        for position in 0...indexMask where index[position] != 0 {
            let slot = Int(index[position] - 1)
            let key = Array(UnsafeRawBufferPointer(start: keyPointer(slot), count: definition.keySize))
            let base = values.pointer + slot * slotSize
            let perCPU = (0..<cpus).map { cpu in
                Array(UnsafeRawBufferPointer(start: base + cpu * valueStride, count: definition.valueSize))
            }
            out.append((key, perCPU))
        }
        return out.sorted { $0.key.lexicographicallyPrecedes($1.key) }
    }
}
