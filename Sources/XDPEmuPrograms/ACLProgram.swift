import XDPEmuCore

/// An IPv4 or IPv6 CIDR prefix, as fixed-size integers: the network address with its host bits cleared, and the
/// masks of both 64-bit halves precomputed so that matching is two ANDs and two compares.
public struct IPPrefix: Hashable, Sendable, CustomStringConvertible {
    /// The network address (host bits zero).
    public let address: IPAddress
    /// Prefix length in bits: 0...32 for IPv4, 0...128 for IPv6.
    public let length: Int
    private let maskHigh: UInt64
    private let maskLow: UInt64

    /// Host bits of `address` are cleared. `length` must fit the family.
    public init(_ address: IPAddress, length: Int) {
        precondition(length >= 0 && length <= address.family.bitWidth, "prefix length out of range")
        // Place the prefix bits at the top of the 128-bit (IPv6) or the low 32-bit (IPv4, see IPAddress) field.
        let bits = address.family == .ipv4 ? 96 + length : length
        let high: UInt64 = bits >= 64 ? .max : (bits == 0 ? 0 : .max << UInt64(64 - bits))
        let low: UInt64 = bits <= 64 ? 0 : (bits >= 128 ? .max : .max << UInt64(128 - bits))
        maskHigh = address.family == .ipv4 ? 0 : high
        maskLow = low
        var network = address
        network.high &= maskHigh
        network.low &= maskLow
        self.address = network
        self.length = length
    }

    /// Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a host prefix); nil when malformed.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPAddress(String(parts[0])) else { return nil }
        var length = address.family.bitWidth
        if parts.count == 2 {
            guard (1...3).contains(parts[1].count), parts[1].allSatisfy({ ("0"..."9").contains($0) }),
                  let value = Int(parts[1]), value <= address.family.bitWidth
            else { return nil }
            length = value
        }
        self.init(address, length: length)
    }

    /// Whether `candidate` is in the prefix (never, for the other family).
    @inline(__always)
    public func contains(_ candidate: IPAddress) -> Bool {
        candidate.family == address.family && candidate.high & maskHigh == address.high
            && candidate.low & maskLow == address.low
    }

    public var description: String { "\(address)/\(length)" }
}

/// One rule of `ACLProgram`. Every field given must match; a rule with no fields matches every IP packet.
public struct ACLRule: Hashable, Sendable {
    public enum Action: Hashable, Sendable {
        /// XDP_DROP.
        case drop
        /// XDP_PASS: to the ingress device's local stack, skipping the `then` stage.
        case pass
        /// Continue to the ACL's `then` stage.
        case allow
    }

    public var action: Action
    /// IPv4 protocol / IPv6 next header (after the extension headers), e.g. 6 for TCP.
    public var ipProtocol: UInt8?
    public var source: IPPrefix?
    public var destination: IPPrefix?
    /// Matches only packets with ports (a complete TCP or UDP header): never a non-first fragment, like iptables.
    public var sourcePorts: ClosedRange<UInt16>?
    public var destinationPorts: ClosedRange<UInt16>?

    /// When both prefixes are given they must be of one family (such a rule could never match).
    public init(action: Action, ipProtocol: UInt8? = nil, source: IPPrefix? = nil, destination: IPPrefix? = nil,
                sourcePorts: ClosedRange<UInt16>? = nil, destinationPorts: ClosedRange<UInt16>? = nil) {
        if let source, let destination {
            precondition(source.address.family == destination.address.family, "source and destination families differ")
        }
        self.action = action
        self.ipProtocol = ipProtocol
        self.source = source
        self.destination = destination
        self.sourcePorts = sourcePorts
        self.destinationPorts = destinationPorts
    }

    /// Whether the rule matches an IP packet's headers.
    @inline(__always)
    public func matches(_ headers: PacketHeaders) -> Bool {
        if let ipProtocol, ipProtocol != headers.ipProtocol { return false }
        if let source, !source.contains(headers.source) { return false }
        if let destination, !destination.contains(headers.destination) { return false }
        if sourcePorts != nil || destinationPorts != nil {
            guard headers.hasPorts, headers.fragment != .later else { return false }
            if let sourcePorts, !sourcePorts.contains(headers.sourcePort) { return false }
            if let destinationPorts, !destinationPorts.contains(headers.destinationPort) { return false }
        }
        return true
    }
}

/// The `acl` program: an ordered rule list in front of another program.
///
/// For each frame:
/// - Malformed frames (`PacketHeaders.isMalformed`: cut headers, bad IP version or length, too many IPv6 extension
///   headers), and frames shorter than an Ethernet header, are dropped: they cannot be classified, and letting them
///   through would let a crafted frame slip past the rules.
/// - Non-IP frames (ARP and other EtherTypes) skip the rules and go to `then`: the ACL filters IP traffic and must
///   not break address resolution.
/// - IP frames are checked against the rules in order; the first matching rule's action is taken (`drop`, `pass`,
///   or `allow`: run `then`). When no rule matches, `defaultAction` is taken.
///
/// `then` is any program: `ConstantProgram(.pass)`, `ConstantProgram(.drop)`, a `RedirectMapProgram`, an
/// `L2SwitchProgram`, or one of your own. It runs on the same frame and context, and its action is the result.
public struct ACLProgram<Then: XDPProgram>: XDPProgram {
    /// The rules, in match order, stored once at `init`; `run` only reads them.
    public let rules: ContiguousArray<ACLRule>
    public let defaultAction: ACLRule.Action
    public var then: Then

    public init(rules: [ACLRule], defaultAction: ACLRule.Action = .allow, then: Then) {
        self.rules = ContiguousArray(rules)
        self.defaultAction = defaultAction
        self.then = then
    }

    /// The action for an IP packet's headers: the first matching rule's, or the default.
    @inline(__always)
    public func decision(for headers: PacketHeaders) -> ACLRule.Action {
        var i = 0
        while i < rules.count {
            if rules[i].matches(headers) { return rules[i].action }
            i &+= 1
        }
        return defaultAction
    }

    // Inlinable so that a client's poll loop specialises it for `Then` and calls `then.run` directly, not through a
    // witness table.
    @inlinable
    public mutating func run(_ context: inout XDPContext) -> XDPAction {
        guard let headers = PacketHeaders(parsing: context), !headers.isMalformed else { return .drop }
        guard headers.network != .other else { return then.run(&context) }
        switch decision(for: headers) {
        case .drop: return .drop
        case .pass: return .pass
        case .allow: return then.run(&context)
        }
    }
}

extension ACLProgram: Sendable where Then: Sendable {}
