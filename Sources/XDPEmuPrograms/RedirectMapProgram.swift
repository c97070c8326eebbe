import XDPEmuCore

/// What a program does when it has no key for a frame.
public enum MissAction: Hashable, Sendable {
    /// XDP_DROP.
    case drop
    /// XDP_PASS: hand the frame to the ingress device's local stack.
    case pass
    /// XDP_ABORTED (traced as an `xdp_exception`).
    case abort
    /// Redirect through the map with this key instead.
    case key(UInt32)
}

/// How `RedirectMapProgram` picks the devmap key for a frame.
public enum KeySelector: Equatable, Sendable {
    /// Always this key.
    case constant(UInt32)
    /// The ingress device's ifindex (a map laid out by ifindex).
    case ingressIfindex
    /// The key the destination MAC maps to in `table`; `miss` for MACs not in it (and frames shorter than an
    /// Ethernet header).
    case destinationMAC(table: MACTable, miss: MissAction)
    /// `base + FlowKey.hash % modulo`: spreads flows over `modulo` consecutive keys, each flow always on the same
    /// one. `nonIP` for frames without a 5-tuple: non-IP and malformed frames (see `PacketHeaders.flowKey`).
    /// `modulo` must be at least 1 and `base + modulo - 1` must fit in a UInt32.
    case hash(modulo: UInt32, base: UInt32, nonIP: MissAction)
}

/// A `redirect_map` program as a topology describes it (`"program": {"type": "redirect_map", ...}`): the devmap by
/// name, resolved to a `DevMap` when the program is built with `RedirectMapProgram(_:map:)`.
public struct RedirectMapConfiguration: Equatable, Sendable {
    /// The name of a map in the topology.
    public var map: String
    public var selector: KeySelector
    /// Passed to `bpf_redirect_map` unchanged; under 4.18 semantics anything but 0 makes the redirect fail; under
    /// modern semantics the miss action, BPF_F_BROADCAST and BPF_F_EXCLUDE_INGRESS (`RedirectMapFlags`).
    public var flags: UInt64

    public init(map: String, selector: KeySelector, flags: UInt64 = 0) {
        self.map = map
        self.selector = selector
        self.flags = flags
    }
}

/// The `redirect_map` program: `bpf_redirect_map(map, key, flags)` with the key from a `KeySelector`.
///
/// `flags` is passed to the helper unchanged: under 4.18 a non-zero value makes the helper return XDP_ABORTED, and a
/// key with no device in the map is dropped by the redirect (EINVAL), since the lookup happens after the program
/// returns; under the modern profile the helper looks the key up and returns the miss action of the flags, and
/// BPF_F_BROADCAST sends a copy to every entry.
public struct RedirectMapProgram: XDPProgram, Sendable {
    public let map: DevMap
    public let selector: KeySelector
    public let flags: UInt64

    public init(map: DevMap, selector: KeySelector, flags: UInt64 = 0) {
        if case .hash(let modulo, let base, _) = selector {
            precondition(modulo >= 1, "hash modulo must be at least 1")
            precondition(UInt64(base) + UInt64(modulo) - 1 <= UInt64(UInt32.max), "hash keys overflow a UInt32")
        }
        self.map = map
        self.selector = selector
        self.flags = flags
    }

    /// The program `configuration` describes, redirecting through `map` (the devmap its `map` names).
    public init(_ configuration: RedirectMapConfiguration, map: DevMap) {
        self.init(map: map, selector: configuration.selector, flags: configuration.flags)
    }

    public mutating func run(_ context: inout XDPContext) -> XDPAction {
        switch selector {
        case .constant(let key):
            return context.redirectMap(map, key: key, flags: flags)
        case .ingressIfindex:
            return context.redirectMap(map, key: context.ingressIfindex.rawValue, flags: flags)
        case .destinationMAC(let table, let miss):
            guard context.length >= KernelConstants.ethHeaderLength,
                let key = table.lookup(MACAddress(loadingFrom: context.data))
            else { return apply(miss, &context) }
            return context.redirectMap(map, key: key, flags: flags)
        case .hash(let modulo, let base, let nonIP):
            guard let hash = FlowKey.hash(ofFrame: UnsafeRawBufferPointer(context.packet)) else {
                return apply(nonIP, &context)
            }
            return context.redirectMap(map, key: base &+ hash % modulo, flags: flags)
        }
    }

    @inline(__always)
    private func apply(_ miss: MissAction, _ context: inout XDPContext) -> XDPAction {
        switch miss {
        case .drop: .drop
        case .pass: .pass
        case .abort: .aborted
        case .key(let key): context.redirectMap(map, key: key, flags: flags)
        }
    }
}
