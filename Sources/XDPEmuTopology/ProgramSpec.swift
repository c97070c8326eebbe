// Descriptions of the XDP programs a port can run. The programs themselves live in XDPEmuPrograms; these are only
// their configurations, checked by the loader.

import XDPEmuCore

/// The XDP program attached to a port (`"program": {"type": ...}`).
public enum ProgramSpec: Sendable, Equatable {
    /// `{"type": "pass"}`: every frame goes to the stack (XDP_PASS).
    case pass
    /// `{"type": "drop"}`: XDP_DROP.
    case drop
    /// `{"type": "abort"}`: XDP_ABORTED, which also raises the xdp_exception tracepoint.
    case abort
    /// `{"type": "return", "value": N}`: returns a raw action code, to test how invalid codes are handled.
    case returnValue(UInt32)
    /// `{"type": "redirect_map", ...}`: `bpf_redirect_map` with a key chosen per frame.
    case redirectMap(RedirectMapSpec)
    /// `{"type": "l2_switch", ...}`: a learning switch that floods through a devmap.
    case l2Switch(L2SwitchSpec)
    /// `{"type": "acl", ...}`: first-match rules, then another program.
    indirect case acl(ACLSpec)
    /// `{"type": "reflector", ...}`: sends each frame back out of the port it came in on.
    case reflector(ReflectorSpec)
    /// A type the caller registered with the loader; `config` is the program object without its `"type"` member.
    case custom(type: String, config: JSONValue)

    /// The `"type"` string of this program in a topology file.
    public var typeName: String {
        switch self {
        case .pass: "pass"
        case .drop: "drop"
        case .abort: "abort"
        case .returnValue: "return"
        case .redirectMap: "redirect_map"
        case .l2Switch: "l2_switch"
        case .acl: "acl"
        case .reflector: "reflector"
        case .custom(let type, _): type
        }
    }

    /// The type names the loader knows without registration.
    public static let builtInTypeNames = [
        "pass", "drop", "abort", "return", "redirect_map", "l2_switch", "acl", "reflector",
    ]
}

/// `bpf_redirect_map(map, key, flags)` with a key computed from each frame.
public struct RedirectMapSpec: Sendable, Equatable {
    /// The name of a map in the topology.
    public var map: String
    public var key: KeySpec
    /// Passed to `bpf_redirect_map` unchanged; under 4.18 semantics anything but 0 makes the redirect fail.
    public var flags: UInt64

    public init(map: String, key: KeySpec, flags: UInt64 = 0) {
        self.map = map
        self.key = key
        self.flags = flags
    }
}

/// How a redirect_map program chooses the map key for a frame.
public enum KeySpec: Sendable, Equatable {
    /// `{"kind": "constant", "value": N}`: always `N`.
    case constant(UInt32)
    /// `{"kind": "ingress_ifindex"}`: the receiving port's ifindex (`ctx->ingress_ifindex`).
    case ingressIfindex
    /// `{"kind": "dst_mac", "table": {"02:..": N}, "miss": ...}`: looked up by destination MAC.
    case destinationMAC(table: [MACKeyEntry], miss: MissAction)
    /// `{"kind": "hash", "modulo": M, "base": B, "non_ip": ...}`: `base + hash(IP addresses, protocol, ports) % M`
    /// for IPv4 and IPv6 frames; `nonIP` decides the others.
    case hash(modulo: UInt32, base: UInt32, nonIP: MissAction)
}

/// One row of a dst_mac key table.
public struct MACKeyEntry: Sendable, Equatable {
    public var mac: MACAddress
    public var key: UInt32

    public init(mac: MACAddress, key: UInt32) {
        self.mac = mac
        self.key = key
    }
}

/// What a key computation does when it has no key: `"drop"`, `"pass"`, `"abort"` or `{"key": N}`.
public enum MissAction: Sendable, Equatable {
    case drop
    case pass
    case abort
    /// Use key `N` instead.
    case key(UInt32)
}

/// A learning L2 switch: learns source MACs per ingress port, redirects known unicast through the devmap and
/// floods the rest (broadcast, multicast, unknown unicast) with one redirect per port.
public struct L2SwitchSpec: Sendable, Equatable {
    /// The devmap that reaches the switch's ports.
    public var map: String
    /// Which devmap key reaches each port; when the file gives none, derived from the map's entries (the first
    /// key of each port, in entry order).
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

/// A port name and the devmap key that reaches it.
public struct PortKey: Sendable, Equatable {
    public var port: String
    public var key: UInt32

    public init(port: String, key: UInt32) {
        self.port = port
        self.key = key
    }
}

/// A first-match packet filter in front of another program.
public struct ACLSpec: Sendable, Equatable {
    public var rules: [ACLRule]
    /// What happens when no rule matches (`"default"`, default `.allow`).
    public var defaultAction: ACLAction
    /// The program allowed frames continue to: only `.pass`, `.drop` or `.redirectMap` (default `.pass`).
    public var then: ProgramSpec

    public init(rules: [ACLRule], defaultAction: ACLAction = .allow, then: ProgramSpec = .pass) {
        self.rules = rules
        self.defaultAction = defaultAction
        self.then = then
    }
}

/// What an ACL rule does with a matching frame.
public enum ACLAction: String, Sendable, Equatable, CaseIterable {
    /// XDP_DROP.
    case drop
    /// XDP_PASS, skipping `then`.
    case pass
    /// Continue to the ACL's `then` program.
    case allow
}

/// One ACL rule; every field given must match. A rule with a field of one IP family never matches the other.
public struct ACLRule: Sendable, Equatable {
    public var action: ACLAction
    public var proto: IPProto?
    public var src: IPPrefix?
    public var dst: IPPrefix?
    /// Only with proto TCP or UDP.
    public var sport: PortRange?
    /// Only with proto TCP or UDP.
    public var dport: PortRange?

    public init(
        action: ACLAction,
        proto: IPProto? = nil,
        src: IPPrefix? = nil,
        dst: IPPrefix? = nil,
        sport: PortRange? = nil,
        dport: PortRange? = nil
    ) {
        self.action = action
        self.proto = proto
        self.src = src
        self.dst = dst
        self.sport = sport
        self.dport = dport
    }
}

/// An IP protocol number (IPv4 protocol / IPv6 next header).
public struct IPProto: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt8

    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let icmp = IPProto(rawValue: 1)
    public static let tcp = IPProto(rawValue: 6)
    public static let udp = IPProto(rawValue: 17)
    public static let icmpv6 = IPProto(rawValue: 58)

    /// The names topology files may use instead of numbers.
    public static let names: [(String, IPProto)] = [("tcp", .tcp), ("udp", .udp), ("icmp", .icmp), ("icmpv6", .icmpv6)]

    /// The protocol's name if it has one, else its number.
    public var description: String {
        Self.names.first { $0.1 == self }?.0 ?? String(rawValue)
    }
}

/// An inclusive range of TCP/UDP ports: `80`, `"80"` or `"1000-2000"` in topology files.
public struct PortRange: Sendable, Hashable, CustomStringConvertible {
    public var lower: UInt16
    public var upper: UInt16

    /// Creates `lower...upper`; `lower` must not exceed `upper`.
    public init(_ lower: UInt16, _ upper: UInt16) {
        precondition(lower <= upper, "port range \(lower)-\(upper) is empty")
        self.lower = lower
        self.upper = upper
    }

    /// Parses `"80"` or `"1000-2000"` (decimal, no sign, no leading zeros, lower <= upper).
    public init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let lower = parseDecimal(parts[0], max: 65535),
            let upper = parts.count == 2 ? parseDecimal(parts[1], max: 65535) : lower, lower <= upper
        else { return nil }
        self.init(UInt16(lower), UInt16(upper))
    }

    public func contains(_ port: UInt16) -> Bool { (lower...upper).contains(port) }

    public var description: String { lower == upper ? "\(lower)" : "\(lower)-\(upper)" }
}

/// Turns frames around: swaps Ethernet addresses, and optionally IP addresses and TCP/UDP ports, then XDP_TX.
public struct ReflectorSpec: Sendable, Equatable {
    /// Also swap IPv4/IPv6 source and destination (default true).
    public var swapIP: Bool
    /// Also swap TCP/UDP ports (default false).
    public var swapPorts: Bool

    public init(swapIP: Bool = true, swapPorts: Bool = false) {
        self.swapIP = swapIP
        self.swapPorts = swapPorts
    }
}
