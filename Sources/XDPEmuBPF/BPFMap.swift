// The maps of an eBPF object. One class per kind, sharing one interface: the helpers call `lookup`, `update`
// and `delete` with pointers the interpreter has already checked (key and value sizes included); the control
// plane (topology contents, --maps-out) uses the byte-array forms. Results are the kernel's: 0 or a negated
// errno. Values live in one block per map (`ZeroedMemory`), which is the map's region of the virtual address
// space: a value pointer stays valid as long as the map, as in the kernel (a deleted element's value may be
// reused by a later insert).

import XDPEmuCore

/// Sizes xdpemu allocates at once, where the kernel would allocate lazily or not at all.
enum MapLimits {
    /// Slots of a prog_array (an array of program indexes, allocated whole).
    static let progArraySlots: UInt32 = 1 << 20
}

/// The kernel's update flags.
enum UpdateFlags {
    static let any: UInt64 = 0
    static let noExist: UInt64 = 1
    static let exist: UInt64 = 2
    static let lock: UInt64 = 4
}

/// A map shared by the programs of one object file.
public class BPFMap: @unchecked Sendable {
    // @unchecked Sendable: used by the worker running the programs, and by the control plane between runs.
    public let definition: BPFMapDefinition
    /// Emulated CPUs (the number of values per key of a per-CPU map).
    public let cpus: Int
    /// Bytes per CPU value, rounded up to 8 as the kernel does for per-CPU maps.
    let valueStride: Int
    /// How far apart the values of two CPUs are in a slot: `valueStride` for a per-CPU map, 0 for the others
    /// (every CPU sees the one value). A program's lookup and update go to offset `cpu * cpuStride`.
    let cpuStride: Int
    /// `definition.keySize` and whether this is a `DevMapReference`, read on every helper call.
    let keySize: Int
    let isDevMap: Bool
    /// Whether programs may look up, update and delete its elements (not a devmap, not a prog_array).
    let holdsData: Bool

    init(base definition: BPFMapDefinition, cpus: Int) {
        self.definition = definition
        self.cpus = definition.type.isPerCPU ? cpus : 1
        valueStride = definition.type.isPerCPU ? (definition.valueSize + 7) & ~7 : definition.valueSize
        cpuStride = definition.type.isPerCPU ? valueStride : 0
        keySize = definition.keySize
        isDevMap = definition.type.isDevMap
        holdsData = !definition.type.isDevMap && definition.type != .progArray
    }

    /// The map's values as a region (`Region.empty` when it has none the program may address).
    var region: Region { .empty }

    /// `bpf_map_lookup_elem` from a program: the value's offset in the map's region, or nil.
    func lookup(key: UnsafeRawPointer, cpu: Int) -> UInt64? { nil }
    /// `bpf_map_update_elem` from a program (per-CPU maps: this CPU's value).
    func update(key: UnsafeRawPointer, value: UnsafeRawPointer, flags: UInt64, cpu: Int) -> Int64 {
        -Int64(KernelErrno.EINVAL.rawValue)
    }
    /// `bpf_map_delete_elem`.
    func delete(key: UnsafeRawPointer) -> Int64 { -Int64(KernelErrno.EINVAL.rawValue) }

    /// Every entry: key bytes and the value bytes of each CPU (one for a map that is not per CPU).
    public func entries() -> [(key: [UInt8], values: [[UInt8]])] { [] }

    /// Writes an entry from the control plane (every CPU gets `value`). 0 or a negated errno.
    public func set(key: [UInt8], value: [UInt8]) -> Int64 {
        guard key.count == definition.keySize, value.count == definition.valueSize else {
            return -Int64(KernelErrno.EINVAL.rawValue)
        }
        return key.withUnsafeBytes { k in
            value.withUnsafeBytes { v in
                var result: Int64 = 0
                for cpu in 0..<cpus {
                    result = update(key: k.baseAddress!, value: v.baseAddress!, flags: UpdateFlags.any, cpu: cpu)
                    if result != 0 { break }
                }
                return result
            }
        }
    }

    /// Checks the kernel's flags rule shared by every map: only BPF_ANY, BPF_NOEXIST, BPF_EXIST (and BPF_F_LOCK).
    static func flagsValid(_ flags: UInt64) -> Bool { flags & ~UpdateFlags.lock <= UpdateFlags.exist }

    static func errno(_ e: KernelErrno) -> Int64 { -Int64(e.rawValue) }

    /// The object's map for `definition`, or a message saying why it cannot be created.
    static func make(
        _ definition: BPFMapDefinition, cpus: Int, programs: [BPFProgramInfo] = []
    ) -> Result<BPFMap, BPFObjectError> {
        let d = definition
        func fail(_ text: String) -> Result<BPFMap, BPFObjectError> {
            .failure(BPFObjectError("map \(d.name) (\(d.type)): \(text)"))
        }
        guard d.type.isSupported else { return fail("map type \(d.type.rawValue) is not supported by xdpemu") }
        guard d.maxEntries > 0 else { return fail("max_entries is 0") }
        if d.type.isDevMap {
            guard d.keySize == 4, d.valueSize == 4 || d.valueSize == 8 else {
                return fail("a devmap has 4-byte keys and 4- or 8-byte values, not \(d.keySize) and \(d.valueSize)")
            }
            return .success(DevMapReference(base: d, cpus: 1))
        }
        if d.type == .progArray {
            guard d.keySize == 4, d.valueSize == 4 else {
                return fail("a prog_array has 4-byte keys and values, not \(d.keySize) and \(d.valueSize)")
            }
            guard d.maxEntries <= MapLimits.progArraySlots else {
                return fail("max_entries \(d.maxEntries) is more than xdpemu's \(MapLimits.progArraySlots) slots")
            }
            return .success(ProgArrayMap(definition: d, programs: programs))
        }
        guard d.keySize > 0, d.valueSize > 0, d.keySize <= 512, d.valueSize <= 1 << 20 else {
            return fail("key size \(d.keySize) and value size \(d.valueSize) must be 1...512 and 1...1048576")
        }
        let stride = d.type.isPerCPU ? (d.valueSize + 7) & ~7 : d.valueSize
        let bytes = UInt64(d.maxEntries) * UInt64(stride) * UInt64(d.type.isPerCPU ? cpus : 1)
        guard bytes < 1 << 32 else { return fail("its values would take \(bytes) bytes, more than 4 GiB") }
        let made: BPFMap?
        switch d.type {
        case .array, .percpuArray:
            guard d.keySize == 4 else { return fail("an array has 4-byte keys, not \(d.keySize)") }
            made = ArrayMap(definition: d, cpus: cpus)
        case .hash, .percpuHash, .lruHash, .lruPercpuHash:
            made = HashMap(definition: d, cpus: cpus)
        case .lpmTrie:
            guard d.keySize > 4, d.keySize <= 4 + 256 else { return fail("an LPM trie key is 4 + 1...256 bytes") }
            guard d.flags & 1 != 0 else { return fail("an LPM trie needs map_flags BPF_F_NO_PREALLOC (1)") }
            made = LPMTrieMap(definition: d, cpus: cpus)
        default:
            return fail("map type is not supported")
        }
        guard let made else { return fail("cannot allocate \(bytes) bytes") }
        return .success(made)
    }
}

/// A devmap of the object, backed by a devmap of the core (attached by the runtime).
public final class DevMapReference: BPFMap, @unchecked Sendable {
    /// The core's devmap, set when the object's maps are created in a network.
    public var devMap: DevMap? {
        didSet { coreMap = devMap.map { Unmanaged.passUnretained($0) } }
    }
    /// The same, read by the redirect helper without a retain (`devMap` keeps it).
    var coreMap: Unmanaged<DevMap>?

    public override func entries() -> [(key: [UInt8], values: [[UInt8]])] {
        guard let devMap else { return [] }
        var out: [(key: [UInt8], values: [[UInt8]])] = []
        var key: MapKey? = nil
        while let next = try? devMap.nextKey(after: key) {
            if let ifindex = try? devMap.lookup(key: next) {
                out.append((littleEndian(next.rawValue), [littleEndian(ifindex.rawValue)]))
            }
            key = next
        }
        return out
    }
}

func littleEndian(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) } }
