// BPF_MAP_TYPE_ARRAY and BPF_MAP_TYPE_PERCPU_ARRAY: every key 0..<max_entries exists, zeroed at creation;
// update checks flags, then the index (E2BIG), then BPF_NOEXIST (EEXIST, as every element exists); delete is
// EINVAL (array_map_update_elem, array_map_delete_elem).

import XDPEmuCore

final class ArrayMap: BPFMap, @unchecked Sendable {
    let values: ZeroedMemory
    let valueBase: UnsafeMutableRawPointer
    /// Bytes per key (every CPU's value).
    let slotSize: Int

    init?(definition: BPFMapDefinition, cpus: Int) {
        let perCPU = definition.type.isPerCPU
        let stride = perCPU ? (definition.valueSize + 7) & ~7 : definition.valueSize
        slotSize = stride * (perCPU ? cpus : 1)
        guard let values = ZeroedMemory(count: slotSize * Int(definition.maxEntries)) else { return nil }
        self.values = values
        valueBase = values.pointer
        super.init(base: definition, cpus: cpus)
        if let initial = definition.initialValue {
            initial.withUnsafeBytes {
                values.pointer.copyMemory(from: $0.baseAddress!, byteCount: min($0.count, slotSize))
            }
        }
    }

    override var region: Region {
        Region(
            bias: UInt(bitPattern: values.pointer), lo: 0, hi: UInt64(values.count),
            writable: !definition.readOnly)
    }

    @inline(__always)
    override func lookup(key: UnsafeRawPointer, cpu: Int) -> UInt64? {
        let index = key.loadUnaligned(as: UInt32.self)
        guard index < definition.maxEntries else { return nil }
        return UInt64(Int(index) * slotSize + cpu * cpuStride)
    }

    override func update(key: UnsafeRawPointer, value: UnsafeRawPointer, flags: UInt64, cpu: Int) -> Int64 {
        guard Self.flagsValid(flags) else { return Self.errno(.EINVAL) }
        let index = key.loadUnaligned(as: UInt32.self)
        guard index < definition.maxEntries else { return Self.errno(.E2BIG) }
        guard flags & 3 != UpdateFlags.noExist else { return Self.errno(.EEXIST) }
        (valueBase + Int(index) * slotSize + cpu * cpuStride).copyMemory(
            from: value, byteCount: definition.valueSize)
        return 0
    }

    override func delete(key: UnsafeRawPointer) -> Int64 { Self.errno(.EINVAL) }

    override func entries() -> [(key: [UInt8], values: [[UInt8]])] {
        (0..<definition.maxEntries).map { index in
            let base = values.pointer + Int(index) * slotSize
            let perCPU = (0..<cpus).map { cpu in
                Array(UnsafeRawBufferPointer(start: base + cpu * valueStride, count: definition.valueSize))
            }
            return (littleEndian(index), perCPU)
        }
    }
}
