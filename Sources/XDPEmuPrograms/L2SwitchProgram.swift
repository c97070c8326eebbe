import Synchronization
import XDPEmuCore

// The learning switch and its forwarding database (FDB).
//
// One switch is one program value attached to each of its ports. The FDB is a class that every copy of the value
// shares, as every attachment of one BPF program shares its maps: a MAC learned from a frame on port A must be
// known when the reply arrives on port B, whose attachment is a different copy of the program. When the ports are
// polled by different workers, those workers learn into the FDB at the same time, so each slot is a pair of atomics
// accessed with relaxed ordering (plain loads and stores on x86 and arm64):
// - `slots[i]`: the MAC in bits 0...47 and the port number in bits 48...63; 0 is an empty slot (an all-zero MAC
//   is never learned). One word, so a reader sees a whole entry or none, never a MAC with another entry's port.
// - `lastSeen[i]`: when the MAC last sent a frame (virtual time), for ageing and for choosing a victim.
// Two workers learning the same new MAC at the same moment may both insert it; the lookup finds the first copy and
// the other ages out. That is the kind of race a BPF hash map without a lock has, and it is harmless here.
//
// Slots are never emptied, only overwritten (by a refresh, a move to another port, or an eviction), so a lookup may
// stop at the first empty slot of its probe window: nothing was ever stored past it.

/// The learning table of `L2SwitchProgram`: MAC → port, with a fixed capacity, a bounded probe, eviction of the
/// least recently seen entry when the probe window is full, and ageing by virtual time. Allocation-free after `init`.
public final class ForwardingDatabase: @unchecked Sendable {
    // @unchecked Sendable: the slots are atomics (see the file comment); everything else is immutable.

    /// Slots examined from a MAC's home slot, for lookup and learning (or `capacity`, when smaller).
    public static let maxProbe = 8

    public let capacity: Int
    /// An entry not refreshed for longer than this is forgotten; nil: entries never age.
    public let ageingTime: Nanos?
    /// The switch's ports: ifindex and devmap key, in ifindex order (a port's number is its index here).
    public let ports: [(ifindex: IfIndex, key: UInt32)]

    private let probe: Int
    private let slots: UnsafeMutablePointer<Atomic<UInt64>>
    private let lastSeen: UnsafeMutablePointer<Atomic<UInt64>>
    private let portByIfindex: StaticTable
    private let keyOfPort: ContiguousArray<UInt32>

    /// - Parameters:
    ///   - portKeys: for each port, the devmap key that reaches it (at most 65536 ports).
    ///   - capacity: entries the table holds (at least 1).
    ///   - ageingTime: nil to never age entries.
    public init(portKeys: [IfIndex: UInt32], capacity: Int, ageingTime: Nanos?) {
        precondition(capacity >= 1, "an FDB holds at least one entry")
        precondition(portKeys.count <= 1 << 16, "at most 65536 ports")
        // Sorted, so that port numbers do not depend on the dictionary's per-process order.
        ports = portKeys.sorted { $0.key < $1.key }.map { (ifindex: $0.key, key: $0.value) }
        self.capacity = capacity
        self.ageingTime = ageingTime
        probe = min(ForwardingDatabase.maxProbe, capacity)
        slots = .allocate(capacity: capacity)
        lastSeen = .allocate(capacity: capacity)
        for i in 0..<capacity {
            (slots + i).initialize(to: Atomic(0))
            (lastSeen + i).initialize(to: Atomic(0))
        }
        portByIfindex = StaticTable(ports.enumerated().map { (UInt64($0.element.ifindex.rawValue), UInt32($0.offset)) })
        keyOfPort = ContiguousArray(ports.map(\.key))
    }

    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
        lastSeen.deinitialize(count: capacity)
        lastSeen.deallocate()
    }

    // MARK: Datapath (inside a poll)

    /// The port number of the device `ifindex`, or nil when it is not a port of this switch.
    @inline(__always)
    func port(ifindex: IfIndex) -> Int? {
        portByIfindex.lookup(UInt64(ifindex.rawValue)).map { Int($0) }
    }

    @inline(__always) func key(ofPort port: Int) -> UInt32 { keyOfPort[port] }

    /// The first slot of `mac`'s probe window: the high half of a Fibonacci hash, scaled to the capacity (a
    /// multiply-shift range reduction, so any capacity works, not only powers of two).
    @inline(__always)
    private func home(_ mac: UInt64) -> Int {
        Int(truncatingIfNeeded: ((mac &* 0x9E37_79B9_7F4A_7C15) >> 32) &* UInt64(capacity) >> 32)
    }

    @inline(__always)
    private func isExpired(_ seen: Nanos, now: Nanos) -> Bool {
        guard let ageingTime else { return false }
        return now >= seen && now - seen > ageingTime
    }

    /// The live entry's port for `mac` (48-bit integer), or nil.
    @inline(__always)
    func lookupPort(_ mac: UInt64, now: Nanos) -> Int? {
        var i = home(mac)
        for _ in 0..<probe {
            let entry = slots[i].load(ordering: .relaxed)
            if entry == 0 { return nil }
            if entry & 0xFFFF_FFFF_FFFF == mac {
                return isExpired(lastSeen[i].load(ordering: .relaxed), now: now) ? nil : Int(entry >> 48)
            }
            i = i &+ 1 == capacity ? 0 : i &+ 1
        }
        return nil
    }

    /// Records that `mac` (48-bit, non-zero) sent a frame on `port` at `now`. A known MAC is refreshed (and moved
    /// when it shows up on another port); a new one takes the first empty or expired slot of its window, else the
    /// least recently seen entry of the window is evicted.
    @inline(__always)
    func learn(_ mac: UInt64, port: Int, now: Nanos) {
        let word = mac | UInt64(port) << 48
        var i = home(mac)
        var victim = -1
        var victimSeen: Nanos = .max
        var victimIsFree = false
        for _ in 0..<probe {
            let entry = slots[i].load(ordering: .relaxed)
            if entry == 0 {
                if !victimIsFree { victim = i }
                break
            }
            let seen = lastSeen[i].load(ordering: .relaxed)
            if entry & 0xFFFF_FFFF_FFFF == mac {
                if entry != word { slots[i].store(word, ordering: .relaxed) }
                // Skipping an unchanged store keeps the line clean for the other workers.
                if seen != now { lastSeen[i].store(now, ordering: .relaxed) }
                return
            }
            if !victimIsFree {
                if isExpired(seen, now: now) {
                    (victim, victimIsFree) = (i, true)
                } else if victim < 0 || seen < victimSeen {
                    (victim, victimSeen) = (i, seen)
                }
            }
            i = i &+ 1 == capacity ? 0 : i &+ 1
        }
        slots[victim].store(word, ordering: .relaxed)
        lastSeen[victim].store(now, ordering: .relaxed)
    }

    // MARK: Control plane

    /// The live entry for `mac`: the devmap key and device of its port.
    public func lookup(_ mac: MACAddress, now: Nanos) -> (key: UInt32, ifindex: IfIndex)? {
        guard let port = lookupPort(mac.rawValue, now: now) else { return nil }
        return (ports[port].key, ports[port].ifindex)
    }

    /// Every live entry, ordered by MAC (for dumps and tests; allocates). A snapshot while workers learn.
    public func entries(now: Nanos) -> [(mac: MACAddress, key: UInt32, ifindex: IfIndex, lastSeen: Nanos)] {
        var result: [(mac: MACAddress, key: UInt32, ifindex: IfIndex, lastSeen: Nanos)] = []
        for i in 0..<capacity {
            let entry = slots[i].load(ordering: .relaxed)
            let seen = lastSeen[i].load(ordering: .relaxed)
            guard entry != 0, !isExpired(seen, now: now) else { continue }
            let port = ports[Int(entry >> 48)]
            result.append((MACAddress(rawValue: entry & 0xFFFF_FFFF_FFFF), port.key, port.ifindex, seen))
        }
        return result.sorted { $0.mac.rawValue < $1.mac.rawValue }
    }
}

/// The `l2_switch` program: a learning bridge over the ports of a devmap.
///
/// For each frame:
/// 1. A frame whose source MAC is multicast or all-zero is dropped (the bridge's `is_valid_ether_addr` check).
/// 2. The source MAC is learned on the ingress port (when the ingress device is one of the switch's ports).
/// 3. A multicast or broadcast destination, or a unicast one not in the table, is flooded to every port but the
///    ingress (`floodExcludeIngress: false`: to the ingress too). Under the modern profile this is the kernel's
///    `bpf_redirect_map(map, 0, BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS)`; under 4.18, which has no broadcast, the
///    emulator-only `floodMap` does the same.
/// 4. A known destination on the ingress port itself is dropped, as a bridge does: the frame has already reached
///    that segment. Any other known destination is redirected to its port's key.
///
/// Ageing: an entry not refreshed (by a frame from that MAC) for longer than `ageingTime` of virtual time
/// (`context.now`, the poll's time) is forgotten, as the Linux bridge's `ageing_time` (default 300 s). Frames to it
/// are flooded again until it is relearned. With `ageingTime: nil` entries live until evicted.
///
/// The table is shared by every copy of the program (see `ForwardingDatabase`): attach the same value to every
/// port of one switch; build a new value for another switch.
public struct L2SwitchProgram: XDPProgram, Sendable {
    /// The Linux bridge's default ageing time, 300 s.
    public static let defaultAgeingTime: Nanos = 300_000_000_000

    public let map: DevMap
    public let fdb: ForwardingDatabase
    public let floodExcludeIngress: Bool

    /// - Parameters:
    ///   - map: the devmap holding the ports (flooding sends to every entry but the ingress device).
    ///   - portKeys: which key of `map` reaches each port, by the port's ifindex.
    ///   - tableSize: FDB capacity.
    ///   - ageingTime: nil: entries never age.
    ///   - floodExcludeIngress: false floods back out of the ingress port too.
    public init(
        map: DevMap, portKeys: [IfIndex: UInt32], tableSize: Int = 4096,
        ageingTime: Nanos? = L2SwitchProgram.defaultAgeingTime, floodExcludeIngress: Bool = true
    ) {
        self.map = map
        fdb = ForwardingDatabase(portKeys: portKeys, capacity: tableSize, ageingTime: ageingTime)
        self.floodExcludeIngress = floodExcludeIngress
    }

    public mutating func run(_ context: inout XDPContext) -> XDPAction {
        guard context.length >= KernelConstants.ethHeaderLength else { return .drop }
        let destination = MACAddress(loadingFrom: context.data).rawValue
        let source = MACAddress(loadingFrom: context.data + 6).rawValue
        // Bit 40 of the integer is the I/G bit of the first byte: group (multicast) address.
        let groupBit: UInt64 = 1 << 40
        guard source & groupBit == 0, source != 0 else { return .drop }
        let ingressPort = fdb.port(ifindex: context.ingressIfindex)
        if let ingressPort { fdb.learn(source, port: ingressPort, now: context.now) }
        guard destination & groupBit == 0, let port = fdb.lookupPort(destination, now: context.now) else {
            return flood(&context)
        }
        guard port != ingressPort else { return .drop }
        return context.redirectMap(map, key: fdb.key(ofPort: port))
    }
}

extension L2SwitchProgram {
    /// Floods an unknown or group destination: the modern kernel's BPF_F_BROADCAST (with EXCLUDE_INGRESS unless
    /// `floodExcludeIngress` is false); under 4.18, which cannot clone, the emulator-only `floodMap`.
    @usableFromInline
    func flood(_ context: inout XDPContext) -> XDPAction {
        guard context.semantics == .modern else { return context.floodMap(map, excludeIngress: floodExcludeIngress) }
        let exclude = floodExcludeIngress ? RedirectMapFlags.excludeIngress : 0
        return context.redirectMap(map, key: 0, flags: RedirectMapFlags.broadcast | exclude)
    }
}

/// An `l2_switch` program as a topology describes it (`"program": {"type": "l2_switch", ...}`): the devmap and the
/// ports by name, resolved to a `DevMap` and ifindexes when the program is built.
public struct L2SwitchConfiguration: Equatable, Sendable {
    /// The devmap that reaches the switch's ports.
    public var map: String
    /// Which devmap key reaches each port; a topology file that gives none gets them from the map's entries (the
    /// first key of each port, in entry order).
    public var ports: [PortKey]
    /// Capacity of the MAC learning table (`1...1<<20`, default 4096).
    public var tableSize: Int
    /// Whether a flood skips the port the frame came in on (default true).
    public var floodExcludeIngress: Bool

    public static let tableSizeRange = 1...(1 << 20)

    public init(map: String, ports: [PortKey], tableSize: Int = 4096, floodExcludeIngress: Bool = true) {
        self.map = map
        self.ports = ports
        self.tableSize = tableSize
        self.floodExcludeIngress = floodExcludeIngress
    }
}

/// A port of a switch, by name, and the devmap key that reaches it.
public struct PortKey: Equatable, Sendable {
    public var port: String
    public var key: UInt32

    public init(port: String, key: UInt32) {
        self.port = port
        self.key = key
    }
}
