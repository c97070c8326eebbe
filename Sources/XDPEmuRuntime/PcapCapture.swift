import XDPEmuCore
import XDPEmuPcap

/// pcap capture as a port's tap: the port's ingress, egress and pass records go to its files of a `CaptureSet`
/// (the directions its capture settings ask for; pass always), its drops to the set's `drops.pcap`. Each record
/// is stamped with the time the frame crossed the port and keeps the frame's original length.
public final class PcapCapture: PortTap {
    /// The writers, held so that the handles stay valid as long as the capture; the per-frame paths write through
    /// the handles (plain pointers: no retain and release of a writer per frame).
    private let writers: [PcapWriter]
    private let ingressFile: PcapWriter.Handle?
    private let egressFile: PcapWriter.Handle?
    private let passFile: PcapWriter.Handle?
    private let dropsFile: PcapWriter.Handle

    /// The capture of port `name` into `captures`.
    public init(port name: String, in captures: CaptureSet) {
        let ingress = captures.ingress[name]
        let egress = captures.egress[name]
        let pass = captures.passed[name]
        writers = [ingress, egress, pass, captures.drops].compactMap { $0 }
        ingressFile = ingress?.handle
        egressFile = egress?.handle
        passFile = pass?.handle
        dropsFile = captures.drops.handle
        var directions: PortDirections = .drops
        if ingress != nil { directions.insert(.ingress) }
        if egress != nil { directions.insert(.egress) }
        if pass != nil { directions.insert(.pass) }
        super.init(directions: directions)
    }

    override public func ingress(_ frames: UnsafeBufferPointer<FrameID>, pool: FramePool) {
        let file = ingressFile.unsafelyUnwrapped
        for frame in frames { record(frame, pool: pool, time: pool.info(frame).pointee.arrival, into: file) }
    }

    @inline(__always)
    override public func egress(_ frames: UnsafeMutableBufferPointer<FrameID>, pool: FramePool, time: Nanos) {
        let file = egressFile.unsafelyUnwrapped
        // With recorded timing a bulk is mostly one frame: no loop to set up for it.
        if frames.count == 1 { return record(frames[0], pool: pool, time: time, into: file) }
        for frame in frames { record(frame, pool: pool, time: time, into: file) }
    }

    override public func egress(packet: UnsafeRawBufferPointer, originalLength: Int, time: Nanos) {
        egressFile.unsafelyUnwrapped.write(timestampNanos: time, bytes: packet, originalLength: originalLength)
    }

    override public func pass(_ frame: FrameID, pool: FramePool, time: Nanos) {
        record(frame, pool: pool, time: time, into: passFile.unsafelyUnwrapped)
    }

    override public func drop(_ frame: FrameID, reason: DropReason, pool: FramePool, time: Nanos) {
        record(frame, pool: pool, time: time, into: dropsFile)
    }

    /// Writes the frame's packet (`FramePool.packet`, spelled out: the call was not inlined here).
    @inline(__always)
    private func record(_ frame: FrameID, pool: FramePool, time: Nanos, into file: PcapWriter.Handle) {
        let info = pool.info(frame)
        let length = Int(info.pointee.length)
        let start = pool.bufferStart(frame) + Int(info.pointee.dataOffset)
        let packet = UnsafeRawBufferPointer(start: start, count: length)
        file.write(timestampNanos: time, bytes: packet, originalLength: length &+ Int(info.pointee.missingBytes))
    }
}
