import XDPEmuCore
import XDPEmuOS

/// The far side of a port in live mode: its TAP. A frame the port transmits (or passes to a stack TAP) is
/// written to the TAP, so the kernel receives it there, in the host's namespace or in the root namespace.
///
/// A write that fails returns false, and the devmap counts the frame as unsent (`xmit_unsent`): EIO while the
/// interface is down, EAGAIN, or EBADFD once the interface was deleted behind our back. In that last case the
/// wire goes dead and reports it through `onGone`, once; the loop then unregisters the port after the current
/// poll (never inside it). GSO super-frames get a virtio-net header or are segmented (LiveVirtio.swift). Runs on
/// the loop's thread only.
///
/// A batch (a bulk queue, the XDP_TX frames of a poll) of ordinary frames to a TAP without virtio-net headers is
/// written through the loop's `TapWriteRing` when there is one: one io_uring_enter for the batch instead of one
/// write(2) per frame, the same writes in the same order with the same results. Otherwise, and for single frames,
/// each frame is written with write(2).
final class TapWire: Wire {
    let tap: TapDevice
    /// Called once when a write finds the TAP deleted.
    @exclusivity(unchecked) var onGone: (() -> Void)?
    // Only the loop's thread touches the wire, so its vars skip the dynamic exclusivity checks (a runtime call
    // each, made for every batch).
    @exclusivity(unchecked) private(set) var isDead = false
    private let segmenter: TCPSegmenter
    /// The loop's ring, shared by its wires; nil (no ring, or a TAP with virtio-net headers) writes with write(2).
    private let ring: SharedWriteRing?
    /// The frames of the current batch whose write failed (rare), until they are put behind the written ones; kept
    /// between batches for its capacity.
    @exclusivity(unchecked) private var unsent: [FrameID] = []
    private let header = UnsafeMutableRawBufferPointer.allocate(byteCount: VirtioNetHeader.length, alignment: 8)
    private let plainHeader = VirtioNetHeader()

    init(tap: TapDevice, segmenter: TCPSegmenter, ring: SharedWriteRing? = nil) {
        self.tap = tap
        self.segmenter = segmenter
        self.ring = tap.hasVirtioNetHeader ? nil : ring
    }

    deinit { header.deallocate() }

    func send(_ packet: UnsafeRawBufferPointer, missingBytes: UInt32, time: Nanos) -> Bool {
        guard !isDead, tap.fd != nil else { return false }
        if tap.hasVirtioNetHeader { return write(packet, header: plainHeader) }
        return accepted(tap.write(packet))
    }

    func send(_ frame: FrameID, pool: FramePool, time: Nanos) -> Bool {
        guard !isDead, tap.fd != nil else { return false }
        let gsoSize = pool.info(frame).pointee.gsoSize
        let packet = UnsafeRawBufferPointer(pool.packet(frame))
        if gsoSize == 0 {
            // The per-frame path of every transmit: straight to the TAP, no further call level.
            if tap.hasVirtioNetHeader { return write(packet, header: plainHeader) }
            return accepted(tap.write(packet))
        }
        if tap.hasVirtioNetHeader {
            guard let gso = VirtioNetHeader.gso(for: packet, gsoSize: gsoSize) else { return false }
            return write(packet, header: gso)
        }
        let segments = segmenter.segment(packet, gsoSize: gsoSize) { accepted(tap.write($0)) }
        return (segments ?? 0) > 0
    }

    /// Writes every frame, in order; returns how many were written, with the frames it could not write moved
    /// behind them (the written ones keep their order), so the devmap counts exactly those as unsent. A frame
    /// that fails does not stop the ones after it, as tun's ndo_xdp_xmit drops a frame and goes on.
    func send(_ frames: UnsafeMutableBufferPointer<FrameID>, pool: FramePool, time: Nanos) -> Int {
        guard !isDead, tap.fd != nil else { return 0 }
        var order = SentFramesFirst(frames)
        var next = 0
        if frames.count > 1, let shared = ring, shared.isUsable {
            let ring = shared.ring
            batches: while next < frames.count {
                let count = min(frames.count &- next, ring.capacity)
                for i in 0..<count {
                    let frame = frames[next &+ i]
                    // A GSO super-frame is segmented or gets a header: the rest goes the per-frame way.
                    guard pool.info(frame).pointee.gsoSize == 0 else { break batches }
                    ring.stage(i, UnsafeRawBufferPointer(pool.packet(frame)))
                }
                switch ring.write(count: count, to: tap) {
                case .written:
                    for i in 0..<count { order.place(next &+ i, sent: accepted(ring.result(i)), unsent: &unsent) }
                    next &+= count
                case .notSupported:
                    shared.disable(because: "the kernel refuses io_uring writes to TAPs (EOPNOTSUPP)")
                    break batches
                case .failed(let errno):
                    shared.disable(because: "io_uring_enter failed: \(errno)")
                    break batches
                }
            }
        }
        while next < frames.count {
            order.place(next, sent: send(frames[next], pool: pool, time: time), unsent: &unsent)
            next &+= 1
        }
        return order.finish(unsent: &unsent)
    }

    private func write(_ packet: UnsafeRawBufferPointer, header value: VirtioNetHeader) -> Bool {
        value.store(to: header.baseAddress!)
        return accepted(tap.write(header: UnsafeRawBufferPointer(header), frame: packet))
    }

    private func accepted(_ result: IOResult) -> Bool {
        switch result {
        case .transferred:
            return true
        case .gone:
            markDead()
            return false
        case .wouldBlock, .failed:
            return false
        }
    }

    /// The TAP is gone or closed: refuse every later frame.
    func markDead() {
        guard !isDead else { return }
        isDead = true
        onGone?()
    }
}

/// The loop's `TapWriteRing`, shared by its wires, and whether it may still be used: the first time the kernel
/// refuses io_uring writes (or io_uring_enter fails) every wire goes back to write(2) for the rest of the run,
/// and the reason is reported once.
final class SharedWriteRing {
    let ring: TapWriteRing
    @exclusivity(unchecked) private(set) var isUsable = true
    private let report: (String) -> Void

    init(_ ring: TapWriteRing, report: @escaping (String) -> Void) {
        self.ring = ring
        self.report = report
    }

    func disable(because reason: String) {
        guard isUsable else { return }
        isUsable = false
        report("xdpemu: \(reason); writing frames to TAPs with write(2) from now on")
    }
}
