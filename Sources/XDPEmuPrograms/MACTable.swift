import XDPEmuCore

/// A fixed table from MAC addresses to devmap keys, built once and read without allocating: what a BPF program would
/// keep in a hash map filled by its loader. Used by `KeySelector.destinationMAC`.
public struct MACTable: Equatable, Sendable {
    let table: StaticTable

    /// Builds the table; when a MAC appears twice the later pair wins.
    public init(_ entries: [(MACAddress, UInt32)]) {
        table = StaticTable(entries.map { ($0.0.rawValue, $0.1) })
    }

    /// The key for `mac`, or nil.
    @inline(__always)
    public func lookup(_ mac: MACAddress) -> UInt32? { table.lookup(mac.rawValue) }

    /// Distinct MACs in the table.
    public var count: Int { table.count }

    /// Equal when both map the same MACs to the same keys, whatever order they were given in.
    public static func == (lhs: MACTable, rhs: MACTable) -> Bool {
        lhs.count == rhs.count && lhs.table.pairs.allSatisfy { rhs.table.lookup($0.key) == $0.value }
    }
}

/// A read-only table from integer keys below 2^63 to UInt32 values.
///
/// Open addressing with linear probing over a power-of-two array at most half full: every probe sequence reaches an
/// empty slot, so a lookup ends without a separate bound. The slot is chosen by Fibonacci hashing (multiply by
/// 2^64 / golden ratio, keep the high bits), which is deterministic and spreads MACs that differ only in their last
/// byte. The arrays are `let` and never written after `init`, so reading them costs no exclusivity check and no
/// reference counting in the per-frame path.
struct StaticTable: Sendable {
    /// Bit 63 marks a used slot (keys are below 2^63); 0 is empty.
    private let slots: ContiguousArray<UInt64>
    private let values: ContiguousArray<UInt32>
    private let mask: Int
    let count: Int

    private static let used: UInt64 = 1 << 63

    init(_ pairs: [(UInt64, UInt32)]) {
        var capacity = 2
        while capacity < 2 * pairs.count { capacity *= 2 }
        var slots = ContiguousArray<UInt64>(repeating: 0, count: capacity)
        var values = ContiguousArray<UInt32>(repeating: 0, count: capacity)
        var count = 0
        for (key, value) in pairs {
            precondition(key < StaticTable.used, "key out of range")
            var i = StaticTable.home(key, mask: capacity - 1)
            while slots[i] != 0 && slots[i] != key | StaticTable.used { i = (i + 1) & (capacity - 1) }
            if slots[i] == 0 { count += 1 }
            slots[i] = key | StaticTable.used
            values[i] = value
        }
        self.slots = slots
        self.values = values
        mask = capacity - 1
        self.count = count
    }

    /// Every key and its value, in slot order.
    var pairs: [(key: UInt64, value: UInt32)] {
        slots.indices.compactMap { slots[$0] == 0 ? nil : (slots[$0] & ~StaticTable.used, values[$0]) }
    }

    @inline(__always)
    static func home(_ key: UInt64, mask: Int) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 32) & mask
    }

    @inline(__always)
    func lookup(_ key: UInt64) -> UInt32? {
        let wanted = key | StaticTable.used
        var i = StaticTable.home(key, mask: mask)
        while true {
            let slot = slots[i]
            if slot == wanted { return values[i] }
            if slot == 0 { return nil }
            i = (i &+ 1) & mask
        }
    }
}
