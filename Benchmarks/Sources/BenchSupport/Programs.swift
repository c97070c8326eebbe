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

/// For a large map: each poll's 64 frames go to 4 keys, 16 each, like `RoundRobinRedirect`, a quarter of the map
/// apart. With `moving`, the 4 keys move to another part of the map with every poll (a multiplicative hash of the
/// poll number), so over a run every entry, bulk queue, bitmap word and port is touched, each poll on cold
/// cache lines; without, the same 4 keys are used all along, which isolates the cost of the map's size.
/// `entries` must be a power of two.
public struct SpreadRedirect: XDPProgram {
    public let map: DevMap
    let mask: UInt32
    let step: UInt32
    let pollMultiplier: UInt32
    var next: UInt32 = 0

    public init(map: DevMap, entries: UInt32, moving: Bool = true) {
        precondition(entries.nonzeroBitCount == 1 && entries >= 4)
        self.map = map
        mask = entries - 1
        // An odd quarter of the map: the 4 keys of a poll sit in different bitmap words and, as the ports are
        // assigned key % ports, on different ports.
        step = (entries / 4) | 1
        pollMultiplier = moving ? 2_654_435_761 : 0
    }

    public mutating func run(_ context: inout XDPContext) -> XDPAction {
        guard context.loadBigEndian(UInt16.self, at: 12) == benchEtherType else { return .pass }
        let poll = next >> 6
        let key = (poll &* pollMultiplier &+ (next & 3) &* step) & mask
        next &+= 1
        return context.redirectMap(map, key: key)
    }
}
