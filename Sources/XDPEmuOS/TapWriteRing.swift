// Batched TAP writes through io_uring: the frames of one batch go to the kernel with one system call.
//
// A TAP takes exactly one frame per write, so a forwarder pays the system call's entry and exit once per frame.
// An io_uring submission of n IORING_OP_WRITEs pays it once per batch: the kernel runs each write inline, in
// submission order, inside io_uring_enter (the TAP fd is non-blocking and every write carries RWF_NOWAIT, so none
// is parked for later; one that would block completes with EAGAIN, as write(2) returns). Each write's result is
// what write(2) would have returned for that frame. Measured on this project's VM (docs/performance-live.md):
// about 10% less CPU per forwarded small frame than one write(2) per frame.
//
// Availability: io_uring may be missing (before 5.1, or compiled out), forbidden (kernel.io_uring_disabled) or
// lack a feature used here; `init` then throws and the caller writes with write(2). A kernel whose TAP driver
// does not accept RWF_NOWAIT fails each write with EOPNOTSUPP before doing anything: the caller sees
// `.notSupported` and falls back for good.

import CTapShim
import Glibc
import SystemPackage

/// An io_uring that writes batches of frames to TAPs, one io_uring_enter(2) per batch. Not thread-safe: one
/// thread creates it and makes every call (the live loop's).
public final class TapWriteRing {
    /// What became of one batch.
    public enum Outcome: Equatable, Sendable {
        /// Every frame was handed to the kernel; `result(_:)` tells what each write returned.
        case written
        /// The kernel refuses these writes (a TAP driver without RWF_NOWAIT support): nothing was written. Write
        /// with write(2) from now on.
        case notSupported
        /// io_uring_enter itself failed: no result is valid and the ring must not be used again.
        case failed(Errno)
    }

    private var ring: OpaquePointer?
    @usableFromInline let vectors: UnsafeMutablePointer<iovec>
    @usableFromInline let results: UnsafeMutablePointer<Int32>
    /// The most frames one `write` takes (the ring's submission entries).
    public let capacity: Int

    /// xdpemu_write_ring_open: io_uring_setup(2) with room for `capacity` writes per batch, and the rings mapped.
    /// Throws the errno that says why io_uring cannot be used (ENOSYS, EPERM, EOPNOTSUPP...).
    public init(capacity: Int = 64) throws(Errno) {
        precondition(capacity > 0 && capacity <= 4096, "TapWriteRing capacity out of range")
        var opened: OpaquePointer?
        let rc = xdpemu_write_ring_open(UInt32(capacity), &opened)
        guard rc == 0, let opened else { throw Errno(rawValue: -rc) }
        ring = opened
        self.capacity = min(capacity, Int(xdpemu_write_ring_entries(opened)))
        vectors = .allocate(capacity: self.capacity)
        vectors.initialize(repeating: iovec(), count: self.capacity)
        results = .allocate(capacity: self.capacity)
        results.initialize(repeating: 0, count: self.capacity)
    }

    deinit {
        close()
        vectors.deallocate()
        results.deallocate()
    }

    /// The ring's fd while it is open (to see it in /proc/self/fd in tests).
    public var fd: FileDescriptor? { ring.map { FileDescriptor(rawValue: xdpemu_write_ring_fd($0)) } }

    /// Puts frame `bytes` at position `index` (0..<capacity) of the next batch. The bytes must stay valid until
    /// `write` returns.
    @inlinable @inline(__always)
    public func stage(_ index: Int, _ bytes: UnsafeRawBufferPointer) {
        vectors[index] = iovec(iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress), iov_len: bytes.count)
    }

    /// Writes staged frames 0..<count to `tap`, in order, with one io_uring_enter (xdpemu_write_ring_write).
    public func write(count: Int, to tap: TapDevice) -> Outcome {
        guard let ring else { preconditionFailure("write through a closed TapWriteRing") }
        guard let descriptor = tap.fd else { preconditionFailure("write to a closed TapDevice \(tap.name)") }
        precondition(count > 0 && count <= capacity, "batch out of range")
        let rc = xdpemu_write_ring_write(ring, descriptor.rawValue, vectors, UInt32(count), results)
        guard rc == 0 else { return .failed(Errno(rawValue: -rc)) }
        if results[0] == -EOPNOTSUPP { return .notSupported }
        return .written
    }

    /// What the write of frame `index` of the last batch returned, as `TapDevice.write` reports it.
    @inlinable @inline(__always)
    public func result(_ index: Int) -> IOResult {
        let value = results[index]
        if value >= 0 { return .transferred(Int(value)) }
        switch -value {
        case EAGAIN: return .wouldBlock
        case EBADFD: return .gone
        default: return Self.failure(-value)
        }
    }

    @usableFromInline
    static func failure(_ errno: Int32) -> IOResult {
        precondition(errno != EBADF, "EBADF on a TAP: fd closed behind our back")
        return .failed(Errno(rawValue: errno))
    }

    /// Unmaps the rings and closes the ring's fd (close(2)). Idempotent.
    public func close() {
        xdpemu_write_ring_close(ring)
        ring = nil
    }
}
