// The address space a program sees. An address is `region << 32 | offset`; every load and store is checked
// against its region's bounds (and, for stores, whether it is writable) before the host pointer is formed, so a
// program can touch nothing but its packet, its context, its stack and its map values.
//
// Region 0 is the packet (only its spans are kept, set for every frame): its offsets start at `packetBase`, so `data`, `data_end` and `data_meta` fit the
// 32-bit fields of `struct xdp_md`, as the kernel's rewritten context loads give pointers; only the bytes
// between data_meta and data_end are in bounds. Region 1 is the context (read only), 2 the stack (8 frames of
// 512 bytes), and 3 + i the values of map i (an object has at most `maxMaps` maps, so that the table of
// regions has 256 entries and is indexed by the address's region number cut to 8 bits). Map references (what an
// LD_IMM64 of a map loads) are addresses in regions past the table, so using one as a pointer faults.

import XDPEmuCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One region: host address of offset `lo` is `bias + lo`.
struct Region {
    var bias: UInt
    var lo: UInt64
    var hi: UInt64
    var writable: Bool

    static let empty = Region(bias: 0, lo: 0, hi: 0, writable: false)
}

/// A region as loads and stores check it: `span` bytes from virtual address `start` (region number included),
/// the first at host address `base`. The offset of an address from `start` is in bounds for an access of
/// 1, 2, 4 or 8 bytes when it is below that size's limit: one unsigned comparison covers both ends and the
/// region number. An empty region has span 0 (every limit 0) and a dummy base.
struct Span {
    var base: UnsafeMutableRawPointer
    var start: UInt64
    var span: UInt64
    var limit1: UInt32, limit2: UInt32, limit4: UInt32, limit8: UInt32

    static var dummy: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: 0x1000)! }

    @inline(__always)
    init(base: UnsafeMutableRawPointer, start: UInt64, span: UInt64) {
        self.base = base
        self.start = start
        self.span = span
        let s = UInt32(truncatingIfNeeded: span)
        limit1 = s
        if _fastPath(s >= 8) {  // every packet of an Ethernet header or more: no test per size
            limit2 = s &- 1
            limit4 = s &- 3
            limit8 = s &- 7
        } else {
            limit2 = s >= 2 ? s &- 1 : 0
            limit4 = s >= 4 ? s &- 3 : 0
            limit8 = 0
        }
    }

    /// Region number `index` (the empty span when the region has no bytes).
    init(_ region: Region, index: Int) {
        let span = region.hi > region.lo ? region.hi - region.lo : 0
        self.init(
            base: span == 0
                ? Self.dummy : UnsafeMutableRawPointer(bitPattern: region.bias &+ UInt(region.lo)) ?? Self.dummy,
            start: span == 0 ? 0 : UInt64(index) << 32 | region.lo, span: span)
    }

    /// The limit for an access of `size` bytes (a constant 1, 2, 4 or 8: one of the four; any other size:
    /// computed).
    @inline(__always)
    func limit(_ size: UInt64) -> UInt64 {
        switch size {
        case 1: UInt64(limit1)
        case 2: UInt64(limit2)
        case 4: UInt64(limit4)
        case 8: UInt64(limit8)
        default: limit(anySize: size)
        }
    }

    @inline(__always)
    func limit(anySize size: UInt64) -> UInt64 { size <= span ? span &- size &+ 1 : 0 }
}

enum VirtualAddress {
    static let packetBase: UInt64 = 0x1000_0000
    static let contextRegion: UInt64 = 1
    static let stackRegion: UInt64 = 2
    static let firstMapRegion: UInt64 = 3
    static let mapHandleRegion: UInt64 = 0x7FFF_0000
    static let frameSize = 512
    static let maxFrames = 8
    /// Tail calls one frame may make (the kernel's MAX_TAIL_CALL_CNT).
    static let maxTailCalls = 33
    static let contextSize = 24
    /// Entries of a machine's region table, and the most maps an object may have.
    static let regionTableSize = 256
    static let maxMaps = regionTableSize - Int(firstMapRegion)

    static func mapHandle(_ index: Int) -> UInt64 { (mapHandleRegion + UInt64(index)) << 32 }
    static func mapIndex(ofHandle address: UInt64) -> Int? {
        guard address & 0xFFFF_FFFF == 0, address >> 32 >= mapHandleRegion else { return nil }
        return Int((address >> 32) - mapHandleRegion)
    }
    static func mapValue(_ index: Int, offset: Int) -> UInt64 {
        (firstMapRegion + UInt64(index)) << 32 | UInt64(offset)
    }
}

/// Zeroed memory that the system maps in as it is touched (calloc of a large block is an anonymous mapping), so
/// a map of a million entries costs only the pages its entries use.
final class ZeroedMemory {
    let pointer: UnsafeMutableRawPointer
    let count: Int

    init?(count: Int) {
        guard let pointer = calloc(max(count, 1), 1) else { return nil }
        self.pointer = pointer
        self.count = count
    }

    deinit { free(pointer) }
}
