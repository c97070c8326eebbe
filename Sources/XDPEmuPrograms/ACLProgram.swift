import XDPEmuCore

/// One rule of `ACLProgram`. Every field given must match; a rule with no fields matches every IP packet.
public struct ACLRule: Hashable, Sendable {
    /// Named as topology files write it (`"action": "drop"`).
    public enum Action: String, Hashable, Sendable, CaseIterable {
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
    public init(
        action: Action, ipProtocol: UInt8? = nil, source: IPPrefix? = nil, destination: IPPrefix? = nil,
        sourcePorts: ClosedRange<UInt16>? = nil, destinationPorts: ClosedRange<UInt16>? = nil
    ) {
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

/// An `acl` program as a topology describes it (`"program": {"type": "acl", ...}`): the rules, the default, and
/// which of the programs a topology may put behind an ACL runs on allowed frames.
public struct ACLConfiguration: Equatable, Sendable {
    /// The program allowed frames continue to.
    public enum Then: Equatable, Sendable {
        /// `ConstantProgram(.pass)`.
        case pass
        /// `ConstantProgram(.drop)`.
        case drop
        /// A `RedirectMapProgram`.
        case redirectMap(RedirectMapConfiguration)
    }

    public var rules: [ACLRule]
    /// What happens when no rule matches.
    public var defaultAction: ACLRule.Action
    public var then: Then

    public init(rules: [ACLRule], defaultAction: ACLRule.Action = .allow, then: Then = .pass) {
        self.rules = rules
        self.defaultAction = defaultAction
        self.then = then
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
