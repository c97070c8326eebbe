import Foundation
import XDPEmuCore

// What several workers (live mode's `--workers`) share at a port, made safe for them: each worker transmits
// through a wire of its own (its own io_uring, its own scratch buffers), and the port's tap, which every worker
// may call (egress from any worker that redirects to the port, drops anywhere), is entered by one at a time.

/// A port's ndo_xdp_xmit when several workers transmit to it: the transmitting worker's own `PortTransmitter`.
final class PerCPUTransmitter: XDPTransmitter {
    private let transmitters: [any XDPTransmitter]

    init(_ transmitters: [any XDPTransmitter]) { self.transmitters = transmitters }

    func xdpXmit(
        _ frames: UnsafeMutableBufferPointer<FrameID>, flags: XmitFlags, device: NetDevice, worker: Worker
    ) -> Int32 {
        transmitters[worker.cpu].xdpXmit(frames, flags: flags, device: device, worker: worker)
    }
}

/// The lock of what workers share in capture files and the event log (one for the set: drops.pcap is every
/// port's). Taken around each call of a tap, around a drain of a worker's events into the log, and around their
/// flushes. A pthread mutex (NSLock), which ThreadSanitizer understands (it does not see the futex under
/// Synchronization's `Mutex`).
public final class OutputLock: Sendable {
    private let lock = NSLock()

    public init() {}

    public func withLock<T>(_ body: () throws -> T) rethrows -> T { try lock.withLock(body) }
}

/// A tap entered by one worker at a time (`OutputLock`), around a tap that expects a single thread (pcap capture).
final class SerializedPortTap: PortTap {
    private let inner: PortTap
    private let lock: OutputLock

    init(_ inner: PortTap, lock: OutputLock) {
        self.inner = inner
        self.lock = lock
        super.init(directions: inner.directions)
    }

    override func ingress(_ frames: UnsafeBufferPointer<FrameID>, pool: FramePool) {
        lock.withLock { inner.ingress(frames, pool: pool) }
    }

    override func egress(_ frames: UnsafeMutableBufferPointer<FrameID>, pool: FramePool, time: Nanos) {
        lock.withLock { inner.egress(frames, pool: pool, time: time) }
    }

    override func egress(packet: UnsafeRawBufferPointer, originalLength: Int, time: Nanos) {
        lock.withLock { inner.egress(packet: packet, originalLength: originalLength, time: time) }
    }

    override func pass(_ frame: FrameID, pool: FramePool, time: Nanos) {
        lock.withLock { inner.pass(frame, pool: pool, time: time) }
    }

    override func drop(_ frame: FrameID, reason: DropReason, pool: FramePool, time: Nanos) {
        lock.withLock { inner.drop(frame, reason: reason, pool: pool, time: time) }
    }
}
