import XDPEmuCore
import XDPEmuPcap

// How frames leave the core. The core hands frames to a device's `XDPTransmitter` (ndo_xdp_xmit) or `LocalStack`
// (XDP_PASS), and drops to the worker's `DropObserver`; here they are put on the port's wire, if it has one, and
// shown to the port's tap (`PortTap`: capture, ...), if it has one for that direction:
//   PortTransmitter          -> wire (TAP in live mode; none in replay), then tap.egress for the sent frames
//   PassSink                 -> stack wire (stack TAP / none), then tap.pass
//   PortTapDrops (observer)  -> tap.drop of the port the frame is dropped at

/// The far side of a port: where its transmitted frames go (a TAP in live mode; replay has none).
///
/// Frames cross a wire a bulk queue at a time (`send(_:pool:time:)`): one dynamic call per bulk of up to 16, not
/// per frame. A wire that has nothing to gain from batches implements only the one-frame `send`; the batch
/// requirement's default calls it for each frame in turn.
public protocol Wire: AnyObject {
    /// Puts one frame on the wire at virtual time `time`. False when it could not be sent (the frame stays with
    /// the caller and is counted as unsent).
    func send(_ packet: UnsafeRawBufferPointer, missingBytes: UInt32, time: Nanos) -> Bool
    /// The same for a frame of `pool`, for wires that need its bookkeeping too (a GSO super-frame's segment
    /// size, in live mode). The frame stays the caller's. By default sends its packet bytes.
    func send(_ frame: FrameID, pool: FramePool, time: Nanos) -> Bool

    /// Puts `frames` (of `pool`) on the wire in order at virtual time `time`; returns how many it sent. A frame it
    /// cannot send does not stop the ones after it (as tun's ndo_xdp_xmit drops a frame and goes on): the sent
    /// frames end up first in `frames`, in their order, the unsent ones after them. The frames stay the caller's
    /// either way. By default sends them one by one.
    func send(_ frames: UnsafeMutableBufferPointer<FrameID>, pool: FramePool, time: Nanos) -> Int
}

extension Wire {
    public func send(_ frame: FrameID, pool: FramePool, time: Nanos) -> Bool {
        send(
            UnsafeRawBufferPointer(pool.packet(frame)), missingBytes: pool.info(frame).pointee.missingBytes,
            time: time)
    }

    public func send(_ frames: UnsafeMutableBufferPointer<FrameID>, pool: FramePool, time: Nanos) -> Int {
        var unsent: [FrameID] = []
        var order = SentFramesFirst(frames)
        for index in frames.indices {
            order.place(index, sent: send(frames[index], pool: pool, time: time), unsent: &unsent)
        }
        return order.finish(unsent: &unsent)
    }
}

/// Reorders a batch as `Wire.send(_:pool:time:)` hands it back: the sent frames first, in their order, the unsent
/// ones after them. Frames are placed in order, each once; `unsent` holds the unsent ones meanwhile (a wire may keep
/// it between batches so that a failure does not allocate every time).
struct SentFramesFirst {
    let frames: UnsafeMutableBufferPointer<FrameID>
    /// Frames sent so far, which are `frames[0..<sent]`.
    private(set) var sent = 0

    init(_ frames: UnsafeMutableBufferPointer<FrameID>) { self.frames = frames }

    /// Frame `index` was sent or not. Every position before `index` is placed, so position `sent` holds nothing
    /// that is still needed there.
    @inline(__always)
    mutating func place(_ index: Int, sent wasSent: Bool, unsent: inout [FrameID]) {
        let frame = frames[index]
        if wasSent {
            frames[sent] = frame
            sent &+= 1
        } else {
            unsent.append(frame)
        }
    }

    /// Puts the unsent frames behind the sent ones, empties `unsent` (keeping its capacity) and returns how many
    /// were sent.
    func finish(unsent: inout [FrameID]) -> Int {
        for (i, frame) in unsent.enumerated() { frames[sent &+ i] = frame }
        unsent.removeAll(keepingCapacity: true)
        return sent
    }
}

/// A port's ndo_xdp_xmit: puts the frames on the port's wire in order (without a wire, as in replay, they leave
/// the emulator), shows the sent ones to the port's egress tap, gives them back to the pool and returns how many
/// were sent. The wire puts the ones it could not send behind the sent ones; they stay with the devmap, which
/// counts them as drops (`xmit_unsent`).
///
/// One object for the whole way out (no wire wrapped around a wire that accepts everything): with replay's
/// recorded timing a bulk is usually one frame, and every dynamic call per bulk counts. `PortTransmitter` serves
/// any tap; `CaptureTransmitter` is the same transmitter (`PortWayOut`) for pcap capture, the tap of every replay,
/// whose egress it has compiled in rather than called through the tap's class.
public final class PortTransmitter: XDPTransmitter {
    let wayOut: PortWayOut<PortTap>

    public init(wire: (any Wire)?, tap: PortTap?) { wayOut = PortWayOut(wire: wire, tap: tap) }

    public func xdpXmit(
        _ frames: UnsafeMutableBufferPointer<FrameID>, flags: XmitFlags, device: NetDevice,
        worker: Worker
    ) -> Int32 {
        wayOut.transmit(frames, worker: worker)
    }
}

/// `PortTransmitter` for a port whose tap is a pcap capture.
final class CaptureTransmitter: XDPTransmitter {
    let wayOut: PortWayOut<PcapCapture>

    init(wire: (any Wire)?, tap: PcapCapture) { wayOut = PortWayOut(wire: wire, tap: tap) }

    @inline(__always)
    func xdpXmit(
        _ frames: UnsafeMutableBufferPointer<FrameID>, flags: XmitFlags, device: NetDevice,
        worker: Worker
    ) -> Int32 {
        wayOut.transmit(frames, worker: worker)
    }
}

/// The transmitter of a port with `tap` (nil: none).
func makePortTransmitter(wire: (any Wire)?, tap: PortTap?) -> any XDPTransmitter {
    if let capture = tap as? PcapCapture { return CaptureTransmitter(wire: wire, tap: capture) }
    return PortTransmitter(wire: wire, tap: tap)
}

/// What a port's transmitter does (see `PortTransmitter`), for a tap of type `Tap`.
struct PortWayOut<Tap: PortTap> {
    let wire: (any Wire)?
    /// The tap, held so that `egressTap` stays valid as long as the transmitter.
    let tap: Tap?
    /// `tap` if it sees egress, unretained: through `if let tap` it was retained and released for every bulk.
    let egressTap: Unmanaged<Tap>?

    init(wire: (any Wire)?, tap: Tap?) {
        self.wire = wire
        self.tap = tap
        egressTap = tap.flatMap { $0.directions.contains(.egress) ? .passUnretained($0) : nil }
    }

    /// ndo_xdp_xmit of `frames` by `worker`: returns how many were sent.
    @inline(__always)
    func transmit(_ frames: UnsafeMutableBufferPointer<FrameID>, worker: Worker) -> Int32 {
        let pool = worker.pool
        let time = worker.now
        var sent = frames.count
        if let wire {
            sent = wire.send(frames, pool: pool, time: time)
            precondition(sent >= 0 && sent <= frames.count, "a wire sent more frames than it was given")
        }
        let sentFrames = UnsafeMutableBufferPointer(start: frames.baseAddress, count: sent)
        egressTap?._withUnsafeGuaranteedRef { $0.egress(sentFrames, pool: pool, time: time) }
        // A bulk of one frame, as recorded timing mostly makes, without the batch's copy.
        if sent == 1 { pool.give(frames[0]) } else { pool.give(sentFrames) }
        // A bulk is at most the largest budget (the XDP_TX queue).
        return Int32(truncatingIfNeeded: sent)
    }
}

/// XDP_PASS: the port's local stack. Hands passed frames to a wire (live mode's stack TAP), if any, and shows them
/// to the port's pass tap, if any; then frees them.
public final class PassSink: LocalStack {
    let wire: (any Wire)?
    /// The tap, held so that `passTap` stays valid as long as the sink.
    let tap: PortTap?
    let passTap: Unmanaged<PortTap>?

    public init(wire: (any Wire)?, tap: PortTap?) {
        self.wire = wire
        self.tap = tap
        passTap = tap.flatMap { $0.directions.contains(.pass) ? .passUnretained($0) : nil }
    }

    public func receive(_ frame: FrameID, device: NetDevice, worker: Worker) {
        let pool = worker.pool
        let time = worker.now
        _ = wire?.send(frame, pool: pool, time: time)
        passTap?._withUnsafeGuaranteedRef { $0.pass(frame, pool: pool, time: time) }
        pool.give(frame)
    }
}

/// The worker's drop observer: shows every dropped frame to the drops tap of the port it is dropped at (the reason
/// also goes to the event log, as a `drop` event).
public final class PortTapDrops: DropObserver {
    /// The ports' devices and their drop taps (nil: none), searched by identity: a topology has a few ports, and
    /// drops are not the per-frame path.
    private let devices: [NetDevice]
    private let taps: [PortTap?]

    /// Nil when no port has a drops tap (the worker then has no observer at all).
    public init?(ports: [(device: NetDevice, tap: PortTap?)]) {
        devices = ports.map(\.device)
        taps = ports.map { $0.tap.flatMap { $0.directions.contains(.drops) ? $0 : nil } }
        if taps.allSatisfy({ $0 == nil }) { return nil }
    }

    public func dropped(_ frame: FrameID, reason: DropReason, device: NetDevice, worker: Worker) {
        for (i, port) in devices.enumerated() where port === device {
            taps[i]?.drop(frame, reason: reason, pool: worker.pool, time: worker.now)
            return
        }
    }
}
