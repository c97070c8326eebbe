// The topology model: what a topology file describes, after loading and validation.
//
// Everything here is a plain value. The loader fills in every default and resolves every name (ifindexes and MACs
// are assigned, l2_switch port lists derived), so the runtime never re-applies defaults or re-checks references.
// The JSON format itself is documented in docs/topology.md and topologies/schema.json.

import XDPEmuCore
import XDPEmuPrograms

import XDPEmuCore

/// An emulated network: ports, their XDP programs, and the devmaps the programs redirect through.
public struct Topology: Sendable, Equatable {
    /// A short name for logs and messages (`"name"`, required).
    public var name: String
    /// Free text for readers of the file (`"description"`); the runtime ignores it.
    public var description: String?
    /// Which kernel's devmap and redirect behaviour to emulate (`"semantics"`, default `"4.18"`).
    public var semantics: Semantics
    /// NAPI polling parameters shared by all ports (`"napi"`).
    public var napi: NAPISettings
    /// The ports in file order; at least one.
    public var ports: [PortSpec]
    /// The devmaps in file order.
    public var maps: [MapSpec]
    /// Where the topology came from (a file path or a caller's label), for messages.
    public var source: String

    public init(
        name: String,
        description: String? = nil,
        semantics: Semantics = .v4_18,
        napi: NAPISettings = NAPISettings(),
        ports: [PortSpec],
        maps: [MapSpec] = [],
        source: String = "<memory>"
    ) {
        self.name = name
        self.description = description
        self.semantics = semantics
        self.napi = napi
        self.ports = ports
        self.maps = maps
        self.source = source
    }

    /// The port named `name`, if any.
    public func port(named name: String) -> PortSpec? { ports.first { $0.name == name } }

    /// The map named `name`, if any.
    public func map(named name: String) -> MapSpec? { maps.first { $0.name == name } }
}

/// NAPI polling parameters (`"napi"`). Times are virtual nanoseconds of the emulator's clock.
public struct NAPISettings: Sendable, Equatable {
    /// Frames one poll may process per port, like the `budget` passed to a driver's poll (`1...1024`, default 64).
    public var budget: Int
    /// RX ring capacity per port; frames arriving at a full ring are dropped (`1...1<<20`, default 1024).
    public var ringSize: Int
    /// Delay from a frame's arrival in an idle ring to the poll that handles it (default 0).
    public var pollDelayNanos: UInt64
    /// Virtual processing time charged per frame (default 0).
    public var frameCostNanos: UInt64
    /// Number of emulated CPUs, each with its own NAPI context (`1...64`, default 1).
    public var cpus: Int

    public static let budgetRange = 1...1024
    public static let ringSizeRange = 1...(1 << 20)
    public static let cpusRange = 1...64

    public init(
        budget: Int = 64,
        ringSize: Int = 1024,
        pollDelayNanos: UInt64 = 0,
        frameCostNanos: UInt64 = 0,
        cpus: Int = 1
    ) {
        self.budget = budget
        self.ringSize = ringSize
        self.pollDelayNanos = pollDelayNanos
        self.frameCostNanos = frameCostNanos
        self.cpus = cpus
    }
}

/// One emulated network device and the XDP program attached to it.
public struct PortSpec: Sendable, Equatable {
    /// The device name, also the TAP's name in live mode (an interface name: 1...15 bytes of `[A-Za-z0-9_.-]`).
    public var name: String
    /// The interface index; from the file, or assigned from 1 in port order skipping those given explicitly.
    public var ifindex: UInt32
    /// The device's MAC; from the file, or derived from the port's position (`02:00:00:00:00:01` for the first).
    public var mac: MACAddress
    /// `68...65535`, default 1500.
    public var mtu: Int
    /// Administrative state; a down port neither receives nor transmits (default true).
    public var up: Bool
    /// Whether the device implements `ndo_xdp_xmit`; redirects to a port without it fail (default true).
    public var xmit: Bool
    /// Bytes of RX headroom in front of each frame, available to `bpf_xdp_adjust_head` (`0...256`, default 256).
    public var headroom: Int
    /// Which directions are written to capture files.
    public var capture: CaptureSpec
    /// The XDP program run on frames this port receives (default `.pass`).
    public var program: ProgramSpec
    /// The host behind the port in live mode: a network namespace holding the other end.
    public var host: HostSpec?
    /// In live mode, the TAP in the root namespace that receives this port's XDP_PASS frames.
    public var stack: String?
    /// Whether the TAP carries a `virtio_net_hdr` in front of each frame (IFF_VNET_HDR, default false).
    public var vnetHdr: Bool

    public static let mtuRange = 68...65535
    public static let headroomRange = 0...256
    public static let ifindexRange: ClosedRange<UInt32> = 1...UInt32(Int32.max)

    public init(
        name: String,
        ifindex: UInt32,
        mac: MACAddress,
        mtu: Int = 1500,
        up: Bool = true,
        xmit: Bool = true,
        headroom: Int = 256,
        capture: CaptureSpec = CaptureSpec(),
        program: ProgramSpec = .pass,
        host: HostSpec? = nil,
        stack: String? = nil,
        vnetHdr: Bool = false
    ) {
        self.name = name
        self.ifindex = ifindex
        self.mac = mac
        self.mtu = mtu
        self.up = up
        self.xmit = xmit
        self.headroom = headroom
        self.capture = capture
        self.program = program
        self.host = host
        self.stack = stack
        self.vnetHdr = vnetHdr
    }

    /// The MAC the loader gives the port at `index` (0-based) when the file names none: `02:00:00` (locally
    /// administered, unicast) followed by `index + 1` in 24 bits. Collisions are resolved by the loader.
    public static func defaultMAC(index: Int) -> MACAddress {
        MACAddress(rawValue: 0x0200_0000_0000 | UInt64(index + 1) & 0xFF_FFFF)
    }
}

/// Which directions of a port are captured (`"capture"`).
public struct CaptureSpec: Sendable, Equatable {
    /// Frames the port receives, before the program runs (default true).
    public var ingress: Bool
    /// Frames the port transmits (default true).
    public var egress: Bool

    public init(ingress: Bool = true, egress: Bool = true) {
        self.ingress = ingress
        self.egress = egress
    }
}

/// The far end of a port in live mode: an interface in a network namespace of its own.
public struct HostSpec: Sendable, Equatable {
    /// The namespace name (`ip netns` name; interface-name rules apply). Unique across ports.
    public var namespace: String
    /// The interface's name inside the namespace (default: the port's name).
    public var interface: String
    /// The interface's MAC; nil leaves it to the kernel.
    public var mac: MACAddress?
    /// The interface's MTU; nil uses the port's.
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
    /// The gateway; same family as a `cidr` destination.
    public var via: IPAddress

    public init(to: Destination, via: IPAddress) {
        self.to = to
        self.via = via
    }
}

/// A BPF map programs redirect through.
public struct MapSpec: Sendable, Equatable {
    /// The kind of map.
    public enum MapType: String, Sendable, Equatable, CaseIterable {
        /// `BPF_MAP_TYPE_DEVMAP`: an array; keys are `0..<maxEntries`.
        case devmap = "devmap"
        /// `BPF_MAP_TYPE_DEVMAP_HASH` (Linux 5.4+, `"semantics": "modern"` only): any key, at most `maxEntries`.
        case devmapHash = "devmap_hash"
    }

    /// The map's name (like a BPF object name: 1...15 bytes of `[A-Za-z0-9_.]`).
    public var name: String
    public var type: MapType
    /// `1...1<<20`.
    public var maxEntries: UInt32
    /// Initial entries in file order; keys are unique.
    public var entries: [MapEntry]

    public static let maxEntriesRange: ClosedRange<UInt32> = 1...(1 << 20)

    public init(name: String, type: MapType = .devmap, maxEntries: UInt32, entries: [MapEntry] = []) {
        self.name = name
        self.type = type
        self.maxEntries = maxEntries
        self.entries = entries
    }
}

/// One initial devmap entry: `key` redirects to the port named `port`.
public struct MapEntry: Sendable, Equatable {
    public var key: UInt32
    public var port: String

    public init(key: UInt32, port: String) {
        self.key = key
        self.port = port
    }
}
