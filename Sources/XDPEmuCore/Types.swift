/// An interface index, as `dev->ifindex`. 0 means "no device".
public struct IfIndex: RawRepresentable, Hashable, Comparable, Sendable, ExpressibleByIntegerLiteral,
    CustomStringConvertible
{
    public var rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt32) { self.rawValue = value }
    @inlinable public init(integerLiteral value: UInt32) { self.rawValue = value }
    /// Computed, not a stored static: see `XDPAction.drop`.
    @inlinable public static var none: IfIndex { IfIndex(0) }
    public static func < (lhs: IfIndex, rhs: IfIndex) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { String(rawValue) }
}

/// A devmap key (the kernel's devmap has `key_size` 4: a `u32` index into the array).
public struct MapKey: RawRepresentable, Hashable, Comparable, Sendable, ExpressibleByIntegerLiteral,
    CustomStringConvertible
{
    public var rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public init(_ value: UInt32) { self.rawValue = value }
    @inlinable public init(integerLiteral value: UInt32) { self.rawValue = value }
    public static func < (lhs: MapKey, rhs: MapKey) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { String(rawValue) }
}

/// Virtual time in nanoseconds. The core never reads a clock: every caller passes the time in.
public typealias Nanos = UInt64

/// Which kernel behaviour the emulator reproduces (a topology's `"semantics"`, `map batch --semantics`). A network
/// keeps it as a value; the poll loop is specialised per profile (`KernelProfile`), so each rule is written once
/// and the 4.18 loop carries nothing of the modern one. The README's table lists the differences.
public enum Semantics: String, Sendable, CaseIterable {
    /// Linux 4.18: devmap only, redirect flags must be 0, the lookup when the redirect is carried out, bulk queues
    /// per map entry.
    case v4_18 = "4.18"
    /// Linux 5.14 and later: the lookup in the helper with a miss action, BPF_F_BROADCAST and
    /// BPF_F_EXCLUDE_INGRESS, bulk queues per target device, devmap_hash, value_size 8 and egress programs.
    case modern = "modern"
}

/// The Linux errno values that the devmap and the redirect path produce, with their symbolic names.
public enum KernelErrno: Int32, Error, Sendable, CaseIterable, CustomStringConvertible {
    case EPERM = 1
    case ENOENT = 2
    case ENXIO = 6
    case EBADF = 9
    case E2BIG = 7
    case ENOMEM = 12
    case EACCES = 13
    case EFAULT = 14
    case EBUSY = 16
    case EEXIST = 17
    case ENODEV = 19
    case EINVAL = 22
    case ENOSPC = 28
    case EOVERFLOW = 75
    case EMSGSIZE = 90
    case EOPNOTSUPP = 95
    case ENETDOWN = 100
    case ENOTSUPP = 524

    /// The name as `errno(1)` prints it, e.g. `EINVAL`.
    public var name: String {
        switch self {
        case .EPERM: "EPERM"
        case .ENOENT: "ENOENT"
        case .ENXIO: "ENXIO"
        case .EBADF: "EBADF"
        case .E2BIG: "E2BIG"
        case .ENOMEM: "ENOMEM"
        case .EACCES: "EACCES"
        case .EFAULT: "EFAULT"
        case .EBUSY: "EBUSY"
        case .EEXIST: "EEXIST"
        case .ENODEV: "ENODEV"
        case .EINVAL: "EINVAL"
        case .ENOSPC: "ENOSPC"
        case .EOVERFLOW: "EOVERFLOW"
        case .EMSGSIZE: "EMSGSIZE"
        case .EOPNOTSUPP: "EOPNOTSUPP"
        case .ENETDOWN: "ENETDOWN"
        case .ENOTSUPP: "ENOTSUPP"
        }
    }

    public var description: String { name }

    /// The name of an arbitrary errno value: the symbolic name when known, else `errno N`.
    public static func name(of value: Int32) -> String {
        KernelErrno(rawValue: value).map(\.name) ?? "errno \(value)"
    }
}

/// Constants that have a name in the kernel.
public enum KernelConstants {
    /// XDP_PACKET_HEADROOM: bytes a driver leaves in front of each received frame.
    public static let xdpPacketHeadroom = 256
    /// sizeof(struct xdp_frame) in the 4.18 kernel: convert_to_xdp_frame stores it in the headroom.
    public static let xdpFrameSize = 32
    /// ETH_HLEN: adjust_head and adjust_tail must leave at least this many bytes.
    public static let ethHeaderLength = 14
    /// VLAN_HLEN: the forwarding size check allows one VLAN tag over the MTU.
    public static let vlanHeaderLength = 4
    /// The largest metadata area bpf_xdp_adjust_meta allows.
    public static let maxMetadataLength = 32
    /// Bytes a modern kernel reserves at the end of a buffer for skb_shared_info (limits adjust_tail growth).
    public static let sharedInfoReserve = 320
}

/// Memory for `count` values of `T` on cache lines of their own: 128-byte aligned and padded to 128 bytes (the
/// adjacent-line prefetcher pairs 64-byte lines). Used for everything a worker writes on every frame, poll or
/// bulk (free count and free stack, frame records, ring indices and slots, RX and TX batches, redirect info,
/// event ring and its state, device counters): as plain allocations, the line holding an array's first or last
/// bytes could also hold another allocation that another worker reads or writes (two workers in one process ran
/// 6-10% slower per frame than in two processes). Free with `deallocate()`.
@usableFromInline
func allocateOnOwnCacheLines<T>(_: T.Type, count: Int = 1) -> UnsafeMutablePointer<T> {
    let bytes = (MemoryLayout<T>.stride * count + 127) & ~127
    return UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 128).bindMemory(to: T.self, capacity: count)
}
