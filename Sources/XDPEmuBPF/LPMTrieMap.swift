// BPF_MAP_TYPE_LPM_TRIE: keys are `struct bpf_lpm_trie_key { u32 prefixlen; u8 data[]; }`. A lookup finds the
// element with the longest prefix that matches the key's first `prefixlen` bits; update and delete act on the
// exact (prefixlen, masked data) element. As trie_update_elem: flags above BPF_EXIST or a prefixlen above the
// data's bits are EINVAL, BPF_NOEXIST on an existing element EEXIST, BPF_EXIST on a missing one ENOENT, a full
// map ENOSPC; delete of a missing element ENOENT. Elements are kept in slots and searched linearly: lookups cost
// O(entries), fine for the route tables of tests and samples.

import XDPEmuCore

final class LPMTrieMap: BPFMap, @unchecked Sendable {
    let values: ZeroedMemory
    let dataSize: Int
    /// Per slot: prefix length (UInt32.max for a free slot) and the masked data.
    @exclusivity(unchecked) var prefixLengths: [UInt32]
    @exclusivity(unchecked) var data: [UInt8]
    @exclusivity(unchecked) var used: [Int] = []

    init?(definition: BPFMapDefinition, cpus: Int) {
        dataSize = definition.keySize - 4
        guard let values = ZeroedMemory(count: Int(definition.maxEntries) * definition.valueSize) else { return nil }
        self.values = values
        prefixLengths = [UInt32](repeating: .max, count: Int(definition.maxEntries))
        data = [UInt8](repeating: 0, count: Int(definition.maxEntries) * (definition.keySize - 4))
        used.reserveCapacity(Int(definition.maxEntries))
        super.init(base: definition, cpus: cpus)
    }

    override var region: Region {
        Region(bias: UInt(bitPattern: values.pointer), lo: 0, hi: UInt64(values.count), writable: true)
    }

    /// Whether the first `bits` bits of slot `slot`'s data and `key`'s data agree.
    private func matches(_ slot: Int, _ key: UnsafeRawPointer, bits: Int) -> Bool {
        var remaining = bits
        var i = 0
        while remaining > 0 {
            let mask: UInt8 = remaining >= 8 ? 0xFF : ~(0xFF >> UInt8(remaining))
            if (data[slot * dataSize + i] ^ key.load(fromByteOffset: 4 + i, as: UInt8.self)) & mask != 0 {
                return false
            }
            remaining -= 8
            i += 1
        }
        return true
    }

    private func exact(_ key: UnsafeRawPointer, _ length: UInt32) -> Int? {
        used.first { prefixLengths[$0] == length && matches($0, key, bits: Int(length)) }
    }

    override func lookup(key: UnsafeRawPointer, cpu: Int) -> UInt64? {
        let length = min(key.loadUnaligned(as: UInt32.self), UInt32(dataSize * 8))
        var best: Int?
        for slot in used where prefixLengths[slot] <= length {
            if let b = best, prefixLengths[b] >= prefixLengths[slot] { continue }
            if matches(slot, key, bits: Int(prefixLengths[slot])) { best = slot }
        }
        return best.map { UInt64($0 * definition.valueSize) }
    }

    override func update(key: UnsafeRawPointer, value: UnsafeRawPointer, flags: UInt64, cpu: Int) -> Int64 {
        guard flags <= UpdateFlags.exist else { return Self.errno(.EINVAL) }
        let length = key.loadUnaligned(as: UInt32.self)
        guard length <= UInt32(dataSize * 8) else { return Self.errno(.EINVAL) }
        let slot: Int
        if let existing = exact(key, length) {
            guard flags != UpdateFlags.noExist else { return Self.errno(.EEXIST) }
            slot = existing
        } else {
            guard flags != UpdateFlags.exist else { return Self.errno(.ENOENT) }
            guard let free = prefixLengths.firstIndex(of: .max) else { return Self.errno(.ENOSPC) }
            slot = free
            prefixLengths[slot] = length
            for i in 0..<dataSize {
                let bits = Int(length) - i * 8
                let mask: UInt8 = bits >= 8 ? 0xFF : bits <= 0 ? 0 : ~(0xFF >> UInt8(bits))
                data[slot * dataSize + i] = key.load(fromByteOffset: 4 + i, as: UInt8.self) & mask
            }
            used.append(slot)
        }
        (values.pointer + slot * definition.valueSize).copyMemory(from: value, byteCount: definition.valueSize)
        return 0
    }

    override func delete(key: UnsafeRawPointer) -> Int64 {
        let length = key.loadUnaligned(as: UInt32.self)
        guard length <= UInt32(dataSize * 8), let slot = exact(key, length) else { return Self.errno(.ENOENT) }
        prefixLengths[slot] = .max
        used.removeAll { $0 == slot }
        return 0
    }

    override func entries() -> [(key: [UInt8], values: [[UInt8]])] {
        used.sorted().map { slot in
            let key = littleEndian(prefixLengths[slot]) + data[slot * dataSize..<(slot + 1) * dataSize]
            let value = Array(
                UnsafeRawBufferPointer(start: values.pointer + slot * definition.valueSize, count: definition.valueSize)
            )
            return (key, [value])
        }
    }
}
