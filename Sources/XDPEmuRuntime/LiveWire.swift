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
final class TapWire: Wire {
    let tap: TapDevice
    /// Called once when a write finds the TAP deleted.
    var onGone: (() -> Void)?
    private(set) var isDead = false
    private let segmenter: TCPSegmenter
    private let header = UnsafeMutableRawBufferPointer.allocate(byteCount: VirtioNetHeader.length, alignment: 8)
    private let plainHeader = VirtioNetHeader()

    init(tap: TapDevice, segmenter: TCPSegmenter) {
        self.tap = tap
        self.segmenter = segmenter
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
