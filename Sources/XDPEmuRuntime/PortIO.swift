import XDPEmuCore
import XDPEmuPcap

// How frames leave the core. The core hands frames to a device's `XDPTransmitter` (ndo_xdp_xmit) or `LocalStack`
// (XDP_PASS); here they are put on the port's wire, if it has one, and recorded in its capture, if any:
//   PortTransmitter -> wire (TAP in live mode; none in replay) + egress pcap
//   PassSink        -> stack wire (stack TAP / none)          + pass pcap
//   DropCapture (DropObserver)                                -> drops pcap

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
        send(UnsafeRawBufferPointer(pool.packet(frame)), missingBytes: pool.info(frame).pointee.missingBytes,
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
/// the emulator), records the sent ones in the egress capture, gives them back to the pool and returns how many
/// were sent. The wire puts the ones it could not send behind the sent ones; they stay with the devmap, which
/// counts them as drops (`xmit_unsent`).
///
/// One object for the whole way out (no capturing wire wrapped around a wire that accepts everything): with
/// replay's recorded timing a bulk is usually one frame, and every dynamic call per bulk counts.
public final class PortTransmitter: XDPTransmitter {
    let wire: (any Wire)?
    /// The egress writer, held so that `captureHandle` stays valid as long as the transmitter.
    let capture: PcapWriter?
    /// `capture`'s handle, which the bulk's loop writes through: through `if let capture` the writer was retained
    /// and released for every bulk.
    let captureHandle: PcapWriter.Handle?

    public init(wire: (any Wire)?, capture: PcapWriter?) {
        self.wire = wire
        self.capture = capture
        captureHandle = capture?.handle
    }

    public func xdpXmit(_ frames: UnsafeMutableBufferPointer<FrameID>, flags: XmitFlags, device: NetDevice,
                        worker: Worker) -> Int32 {
        let pool = worker.pool
        let time = worker.now
        let sent = wire?.send(frames, pool: pool, time: time) ?? frames.count
        if let capture = captureHandle {
            for frame in frames[..<sent] {
                let packet = UnsafeRawBufferPointer(pool.packet(frame))
                capture.write(timestampNanos: time, bytes: packet,
                              originalLength: packet.count + Int(pool.info(frame).pointee.missingBytes))
            }
        }
        pool.give(UnsafeMutableBufferPointer(rebasing: frames[..<sent]))
        return Int32(sent)
    }
}

/// XDP_PASS: the port's local stack. Optionally records passed frames and hands them to a wire (live mode's
/// stack TAP); then frees them.
public final class PassSink: LocalStack {
    let wire: (any Wire)?
    let writer: PcapWriter?

    public init(wire: (any Wire)?, writer: PcapWriter?) {
        self.wire = wire
        self.writer = writer
    }

    public func receive(_ frame: FrameID, device: NetDevice, worker: Worker) {
        let pool = worker.pool
        _ = wire?.send(frame, pool: pool, time: worker.now)
        let packet = UnsafeRawBufferPointer(pool.packet(frame))
        let missing = pool.info(frame).pointee.missingBytes
        writer?.write(timestampNanos: worker.now, bytes: packet, originalLength: packet.count + Int(missing))
        pool.give(frame)
    }
}

/// Writes every dropped frame to the drops capture (the reason goes to the event log as a `drop` event).
public final class DropCapture: DropObserver {
    let writer: PcapWriter

    public init(writer: PcapWriter) { self.writer = writer }

    public func dropped(_ frame: FrameID, reason: DropReason, device: NetDevice, worker: Worker) {
        let pool = worker.pool
        writer.write(timestampNanos: worker.now, bytes: UnsafeRawBufferPointer(pool.packet(frame)),
                     originalLength: Int(pool.info(frame).pointee.length + pool.info(frame).pointee.missingBytes))
    }
}
