// The topology model: what a topology file describes, after loading and validation.
//
// Everything here is a plain value. The loader fills in every default and resolves every name (ifindexes and MACs
// are assigned, l2_switch port lists derived), so the runtime never re-applies defaults or re-checks references.
// The JSON format itself is documented in docs/topology.md and topologies/schema.json.

import XDPEmuCore
import XDPEmuPrograms

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
    public var ifindex: IfIndex
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
    /// The CPU (NAPI context, worker) that polls the port's RX queue, below `napi.cpus`; nil: assigned round robin
    /// among the ports without one (`CPUAssignment`).
    public var cpu: Int?

    public static let mtuRange = 68...65535
    public static let headroomRange = 0...256
    public static let ifindexRange: ClosedRange<UInt32> = 1...UInt32(Int32.max)

    public init(
        name: String,
        ifindex: IfIndex,
        mac: MACAddress,
        mtu: Int = 1500,
        up: Bool = true,
        xmit: Bool = true,
        headroom: Int = 256,
        capture: CaptureSpec = CaptureSpec(),
        program: ProgramSpec = .pass,
        host: HostSpec? = nil,
        stack: String? = nil,
        vnetHdr: Bool = false,
        cpu: Int? = nil
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
        self.cpu = cpu
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

/// A BPF map programs redirect through.
public struct MapSpec: Sendable, Equatable {
    /// The kind of map.
    public enum MapType: String, Sendable, Equatable, CaseIterable {
        /// `BPF_MAP_TYPE_DEVMAP`: an array; keys are `0..<maxEntries`.
        case devmap = "devmap"
        /// `BPF_MAP_TYPE_DEVMAP_HASH` (Linux 5.4+, `"semantics": "modern"` only): any key, at most `maxEntries`.
        case devmapHash = "devmap_hash"
        // The maps of eBPF objects (`"type": "ebpf"` programs): the topology gives their initial contents.
        case array = "array"
        case percpuArray = "percpu_array"
        case hash = "hash"
        case percpuHash = "percpu_hash"
        case lruHash = "lru_hash"
        case lruPercpuHash = "lru_percpu_hash"
        case lpmTrie = "lpm_trie"
        /// `BPF_MAP_TYPE_PROG_ARRAY`: entries name the object's programs (`{"key": 0, "program": "xdp_ipv4"}`).
        case progArray = "prog_array"

        /// A devmap (entries name ports) rather than a map of an eBPF object's data (entries are key and value).
        public var isDevMap: Bool { self == .devmap || self == .devmapHash }
    }

    /// The map's name (the characters of a BPF object name, `[A-Za-z0-9_.]`, 1...255 bytes).
    public var name: String
    public var type: MapType
    /// `1...1<<20`.
    public var maxEntries: UInt32
    /// Initial entries in file order; keys are unique.
    public var entries: [MapEntry]
    /// Initial entries of a map that is not a devmap, in file order.
    public var dataEntries: [DataMapEntry] = []
    /// `key_size` and `value_size` when written (checked against the eBPF object's definition).
    public var keySize: Int?
    public var valueSize: Int?

    public static let maxEntriesRange: ClosedRange<UInt32> = 1...(1 << 20)

    public init(name: String, type: MapType = .devmap, maxEntries: UInt32, entries: [MapEntry] = []) {
        self.name = name
        self.type = type
        self.maxEntries = maxEntries
        self.entries = entries
    }
}

/// One initial devmap entry: `key` redirects to the port named `port`, through the entry's egress program when it
/// has one (modern profile: `{"key": 1, "port": "p1", "program": {...}}`).
public struct MapEntry: Sendable, Equatable {
    public var key: MapKey
    public var port: String
    /// The egress program run on each frame before `port` transmits it (nil: none).
    public var program: ProgramSpec?

    public init(key: MapKey, port: String, program: ProgramSpec? = nil) {
        self.key = key
        self.port = port
        self.program = program
    }
}
