// The address space a program sees. An address is `region << 32 | offset`; every load and store is checked
// against its region's bounds (and, for stores, whether it is writable) before the host pointer is formed, so a
// program can touch nothing but its packet, its context, its stack and its map values.
//
// Region 0 is the packet (only its spans are kept, set for every frame): its offsets start at `packetBase`, so `data`, `data_end` and `data_meta` fit the
// 32-bit fields of `struct xdp_md`, as the kernel's rewritten context loads give pointers; only the bytes
// between data_meta and data_end are in bounds. Region 1 is the context (read only), 2 the stack (8 frames of
// 512 bytes), and 3 + i the values of map i. Map references (what an LD_IMM64 of a map loads) are addresses
// in regions past the table, so using one as a pointer faults.

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

/// A region as loads and stores check it: `span` bytes from offset `lo`, the first at `base`. One unsigned
/// comparison of the offset from `lo` covers both bounds; an empty region has span 0 and a dummy base.
struct Span {
    var base: UnsafeMutableRawPointer
    var lo: UInt64
    var span: UInt64

    static var dummy: UnsafeMutableRawPointer { UnsafeMutableRawPointer(bitPattern: 0x1000)! }

    init(base: UnsafeMutableRawPointer, lo: UInt64, span: UInt64) {
        self.base = base
        self.lo = lo
        self.span = span
    }

    init(_ region: Region) {
        lo = region.lo
        span = region.hi > region.lo ? region.hi - region.lo : 0
        base =
            span == 0 ? Self.dummy : UnsafeMutableRawPointer(bitPattern: region.bias &+ UInt(region.lo)) ?? Self.dummy
    }
}

enum VirtualAddress {
    static let packetBase: UInt64 = 0x1000_0000
    static let contextRegion: UInt64 = 1
    static let stackRegion: UInt64 = 2
    static let firstMapRegion: UInt64 = 3
    static let mapHandleRegion: UInt64 = 0x7FFF_0000
    static let frameSize = 512
    static let maxFrames = 8
    static let contextSize = 24

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
