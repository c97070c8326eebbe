/// Why a frame left the datapath without being transmitted or passed up.
public enum DropReason: Int, Sendable, CaseIterable, CustomStringConvertible {
    /// The program returned XDP_ABORTED, an unknown action, or a helper refused its flags.
    case aborted
    /// The program returned XDP_DROP.
    case programDrop
    /// xdp_do_redirect failed with EINVAL: no map entry at the key, or no device with that ifindex.
    case redirectInvalid
    /// The target has no ndo_xdp_xmit (EOPNOTSUPP).
    case redirectNotSupported
    /// The target is down (ENETDOWN).
    case redirectDown
    /// The frame is longer than the target's MTU + 18 (EMSGSIZE).
    case redirectTooBig
    /// No headroom left for struct xdp_frame and the metadata (EOVERFLOW).
    case redirectOverflow
    /// Another redirect error (e.g. the xmit of a plain bpf_redirect failed).
    case redirectOther
    /// ndo_xdp_xmit returned an errno: the devmap freed the whole bulk.
    case xmitError
    /// ndo_xdp_xmit sent fewer frames than it was given: the rest were freed.
    case xmitUnsent
    /// XDP_TX could not be transmitted on the ingress device.
    case txError
    /// The port's RX ring was full when the frame arrived.
    case rxRingFull
    /// The device went away while the frame waited for it.
    case deviceGone
    /// A devmap entry's egress program returned XDP_DROP (modern profile).
    case egressDrop
    /// A devmap entry's egress program returned XDP_ABORTED or another action than DROP and PASS (modern profile).
    case egressAborted
    /// A BPF_F_BROADCAST redirect found no usable target in its map: the kernel frees the frame (modern profile).
    case noBroadcastTarget

    public var description: String {
        switch self {
        case .aborted: "aborted"
        case .programDrop: "xdp_drop"
        case .redirectInvalid: "redirect_einval"
        case .redirectNotSupported: "redirect_eopnotsupp"
        case .redirectDown: "redirect_enetdown"
        case .redirectTooBig: "redirect_emsgsize"
        case .redirectOverflow: "redirect_eoverflow"
        case .redirectOther: "redirect_other"
        case .xmitError: "xmit_error"
        case .xmitUnsent: "xmit_unsent"
        case .txError: "tx_error"
        case .rxRingFull: "rx_ring_full"
        case .deviceGone: "device_gone"
        case .egressDrop: "egress_drop"
        case .egressAborted: "egress_aborted"
        case .noBroadcastTarget: "broadcast_no_target"
        }
    }

    /// The drop reason for a redirect that failed with `errno` (positive).
    @inlinable
    public static func redirect(errno: Int32) -> DropReason {
        switch errno {
        case KernelErrno.EINVAL.rawValue: .redirectInvalid
        case KernelErrno.EOPNOTSUPP.rawValue: .redirectNotSupported
        case KernelErrno.ENETDOWN.rawValue: .redirectDown
        case KernelErrno.EMSGSIZE.rawValue: .redirectTooBig
        case KernelErrno.EOVERFLOW.rawValue: .redirectOverflow
        default: .redirectOther
        }
    }
}

/// A device's counters, summed over workers.
public struct DeviceStatistics: Sendable, Equatable {
    /// Frames the device's program saw (its RX).
    public var rxPackets: UInt64 = 0
    public var rxBytes: UInt64 = 0
    /// Frames the device transmitted: redirected to it, plus its own XDP_TX.
    public var txPackets: UInt64 = 0
    public var txBytes: UInt64 = 0
    /// XDP_PASS frames handed to its local stack.
    public var passed: UInt64 = 0
    /// Frames redirected away from it successfully (queued for a target).
    public var redirected: UInt64 = 0
    /// XDP_TX frames sent back out of it.
    public var xdpTx: UInt64 = 0
    /// Frames copied for flooding at this ingress (each copy is then accounted like a received frame's fate).
    public var cloned: UInt64 = 0
    /// The modern profile's bulk queue of this device (per device, not per map entry): calls of ndo_xdp_xmit
    /// at its flushes, and the frames they offered.
    public var bulkTransmits: UInt64 = 0
    public var bulkFrames: UInt64 = 0
    /// Drops counted at this device, by reason.
    public var drops: [DropReason: UInt64] = [:]

    public init() {}

    public var totalDrops: UInt64 { drops.values.reduce(0, +) }
}

/// Per-(device, worker) counters in plain memory: only the owning worker writes them.
@usableFromInline
enum DeviceCounter {
    @usableFromInline static let rxPackets = 0
    @usableFromInline static let rxBytes = 1
    @usableFromInline static let txPackets = 2
    @usableFromInline static let txBytes = 3
    @usableFromInline static let passed = 4
    @usableFromInline static let redirected = 5
    @usableFromInline static let xdpTx = 6
    @usableFromInline static let cloned = 7
    @usableFromInline static let bulkTransmits = 8
    @usableFromInline static let bulkFrames = 9
    @usableFromInline static let dropsBase = 10
    /// Counters per worker, padded to two cache lines so workers never share one.
    @usableFromInline static let stride = 32
}

/// Counters of one devmap key (summed over workers and over the entries that key has held).
public struct MapEntryStatistics: Sendable, Equatable {
    /// Frames ndo_xdp_xmit accepted.
    public var sent: UInt64 = 0
    /// Frames dropped at transmit (errno or partial).
    public var drops: UInt64 = 0
    /// Calls of ndo_xdp_xmit (bulk transmits) for this key.
    public var flushes: UInt64 = 0

    public init(sent: UInt64 = 0, drops: UInt64 = 0, flushes: UInt64 = 0) {
        self.sent = sent
        self.drops = drops
        self.flushes = flushes
    }

    /// Average frames per transmit.
    public var averageBulk: Double { flushes == 0 ? 0 : Double(sent + drops) / Double(flushes) }
}
