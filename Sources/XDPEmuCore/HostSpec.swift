// The description of an emulated host, shared by the topology model and the OS layer that sets it up.

/// The far end of a port in live mode: an interface in a network namespace of its own. The topology loader
/// decodes it (`"host"`) and XDPEmuOS's `HostSetup` sets it up.
public struct HostSpec: Sendable, Equatable {
    /// The namespace name (`ip netns` name; interface-name rules apply). Unique across ports.
    public var namespace: String
    /// The interface's name inside the namespace (default: the port's name).
    public var interface: String
    /// The interface's MAC; nil leaves it to the kernel.
    public var mac: MACAddress?
    /// The interface's MTU; nil: the port's in a topology, the kernel's default (1500) for `HostSetup`.
    public var mtu: Int?
    /// IPv4 addresses with prefix length, e.g. `10.77.0.1/24`.
    public var ipv4: [InterfaceAddress]
    /// IPv6 addresses with prefix length.
    public var ipv6: [InterfaceAddress]
    /// Routes to install in the namespace.
    public var routes: [RouteSpec]
    /// Whether the interface accepts router advertisements (default false: no surprise traffic).
    public var ipv6Autoconf: Bool

    public init(
        namespace: String,
        interface: String,
        mac: MACAddress? = nil,
        mtu: Int? = nil,
        ipv4: [InterfaceAddress] = [],
        ipv6: [InterfaceAddress] = [],
        routes: [RouteSpec] = [],
        ipv6Autoconf: Bool = false
    ) {
        self.namespace = namespace
        self.interface = interface
        self.mac = mac
        self.mtu = mtu
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.routes = routes
        self.ipv6Autoconf = ipv6Autoconf
    }
}

/// A route in a host's namespace (`{"to": "default", "via": "10.80.0.254"}`).
public struct RouteSpec: Sendable, Equatable {
    /// Where the route leads.
    public enum Destination: Sendable, Equatable {
        /// `"default"`: 0.0.0.0/0 or ::/0, by the family of `via`.
        case `default`
        /// A network prefix (the loader refuses one written with host bits).
        case prefix(IPPrefix)
    }

    public var to: Destination
    /// The gateway; same family as a `prefix` destination.
    public var via: IPAddress

    public init(to: Destination, via: IPAddress) {
        self.to = to
        self.via = via
    }
}
