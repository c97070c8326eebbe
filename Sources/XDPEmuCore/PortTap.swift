// A port's frames cross it in four directions, each at one place of the datapath:
//   ingress  frames arrived at the port's RX ring           NAPIScheduler, before a poll takes them (or a drop)
//   egress   the port's transmitter sent a bulk of frames   the runtime's XDPTransmitter, after the wire took them
//   pass     XDP_PASS hands a frame to the port's stack     the runtime's LocalStack
//   drops    the worker frees a frame as a drop at the port the runtime's DropObserver
// A `PortTap` is composed around a port once, where the port is wired (the runtime's Emulation), and those
// places call it for the directions it asked for; the datapath itself only asks "is there a tap". pcap capture
// is a tap; an impairment or fault injector would be another one, at the same places, with no new branch in the
// datapath.

/// Directions of a port that a `PortTap` sees.
public struct PortDirections: OptionSet, Sendable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let ingress = PortDirections(rawValue: 1 << 0)
    public static let egress = PortDirections(rawValue: 1 << 1)
    public static let pass = PortDirections(rawValue: 1 << 2)
    public static let drops = PortDirections(rawValue: 1 << 3)
    public static let all: PortDirections = [.ingress, .egress, .pass, .drops]
}

/// Sees the frames that cross one port, at the (virtual) time they cross it, in the directions it names. A tap
/// must not keep a frame or change what it holds: the frame stays its owner's.
///
/// A class to subclass rather than a protocol, so that the per-frame path can call it through an unretained
/// reference (`Unmanaged`), without a retain and a release per frame; each method's default does nothing.
/// Every call comes from the thread of the worker that polls the port.
open class PortTap {
    /// The directions the tap sees; read once, when the port is wired: the others are never called.
    public let directions: PortDirections

    public init(directions: PortDirections) { self.directions = directions }

    /// `frames` of `pool` arrived at the port, in this order, each at its `FrameInfo.arrival`. They are shown
    /// before anything else happens to them (a poll, a drop at a full ring or of a port that is gone), a run of
    /// arrivals at once: one call per poll rather than per frame.
    open func ingress(_ frames: UnsafeBufferPointer<FrameID>, pool: FramePool) {}

    /// The port's transmitter sent `frames` of `pool` at `time`, in this order.
    open func egress(_ frames: UnsafeMutableBufferPointer<FrameID>, pool: FramePool, time: Nanos) {}

    /// The port sent `packet` at `time` on behalf of its local stack (not a frame of a pool: live mode's stack
    /// TAP); `originalLength` counts bytes not held.
    open func egress(packet: UnsafeRawBufferPointer, originalLength: Int, time: Nanos) {}

    /// XDP_PASS handed `frame` of `pool` to the port's local stack at `time`.
    open func pass(_ frame: FrameID, pool: FramePool, time: Nanos) {}

    /// The worker drops `frame` of `pool` at the port at `time`, for `reason`, just before it frees it.
    open func drop(_ frame: FrameID, reason: DropReason, pool: FramePool, time: Nanos) {}
}
