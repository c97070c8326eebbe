import XDPEmuCore

/// The EtherType every benchmark frame carries; the programs check it as any real program does first.
let benchEtherType: UInt16 = 0x0800

/// Redirects to keys 0...3 of `map` in turn, after checking the EtherType (so every frame's first cache line
/// is read, as a real program reads it). A 64-frame poll puts 16 frames in each of the 4 bulk queues.
public struct RoundRobinRedirect: XDPProgram {
    public let map: DevMap
    var next: UInt32 = 0

    public init(map: DevMap) { self.map = map }

    public mutating func run(_ context: inout XDPContext) -> XDPAction {
        guard context.loadBigEndian(UInt16.self, at: 12) == benchEtherType else { return .pass }
        let key = next & 3
        next &+= 1
        return context.redirectMap(map, key: key)
    }
}

/// `RoundRobinRedirect` over 4 keys `stride` apart (0, stride, 2 stride, 3 stride): the same work per frame but for
/// one multiplication, so that a large map with 4 fixed keys compares with the 4-entry map on the map's size alone.
public struct SpacedRoundRobinRedirect: XDPProgram {
    public let map: DevMap
    let stride: UInt32
    var next: UInt32 = 0

    public init(map: DevMap, stride: UInt32) {
        self.map = map
        self.stride = stride
    }

    public mutating func run(_ context: inout XDPContext) -> XDPAction {
        guard context.loadBigEndian(UInt16.self, at: 12) == benchEtherType else { return .pass }
        let key = (next & 3) &* stride
        next &+= 1
        return context.redirectMap(map, key: key)
    }
}

/// For a large map: each poll's 64 frames go to 4 keys, 16 each, like `RoundRobinRedirect`, a quarter of the map
/// apart, and the 4 keys move to another part of the map with every poll (a multiplicative hash of the poll
/// number), so over a run every entry, bulk queue, bitmap word and port is touched, each poll on cold cache lines.
/// `entries` must be a power of two.
public struct SpreadRedirect: XDPProgram {
    public let map: DevMap
    let mask: UInt32
    let step: UInt32
    var next: UInt32 = 0

    public init(map: DevMap, entries: UInt32) {
        precondition(entries.nonzeroBitCount == 1 && entries >= 4)
        self.map = map
        mask = entries - 1
        // An odd quarter of the map: the 4 keys of a poll sit in different bitmap words and, as the ports are
        // assigned key % ports, on different ports.
        step = (entries / 4) | 1
    }

    public mutating func run(_ context: inout XDPContext) -> XDPAction {
        guard context.loadBigEndian(UInt16.self, at: 12) == benchEtherType else { return .pass }
        let poll = next >> 6
        let key = (poll &* 2_654_435_761 &+ (next & 3) &* step) & mask
        next &+= 1
        return context.redirectMap(map, key: key)
    }
}
