import Glibc
import SystemPackage
import Testing
import XDPEmuOS

// io_uring batches against write(2) on real TAPs: each frame's result is what write(2) gives for it, in order.

@Suite("TAP writes through io_uring", .serialized, .enabled(if: SystemAccess.available, SystemAccess.reason))
struct TapWriteRingTests {
    /// A 60-byte broadcast frame of a local experimental ethertype (0x88b5): no protocol of the kernel takes it.
    func frame(_ marker: UInt8, length: Int = 60) -> [UInt8] {
        var bytes = [UInt8](repeating: marker, count: length)
        for i in 0..<min(6, length) { bytes[i] = 0xff }
        if length >= 14 {
            bytes[12] = 0x88
            bytes[13] = 0xb5
        }
        return bytes
    }

    func ring() throws -> TapWriteRing? {
        do {
            return try TapWriteRing(capacity: 16)
        } catch {
            // Without io_uring (kernel.io_uring_disabled) live mode writes with write(2): nothing to test.
            print("TapWriteRingTests: io_uring unavailable here (\(error)); skipped")
            return nil
        }
    }

    /// Writes `frames` through the ring and returns each result.
    func writeBatch(_ frames: [[UInt8]], ring: TapWriteRing, tap: TapDevice) -> [IOResult] {
        var copies = frames
        var results: [IOResult] = []
        withBuffers(&copies, index: 0) { buffers in
            for (i, buffer) in buffers.enumerated() { ring.stage(i, UnsafeRawBufferPointer(buffer)) }
            #expect(ring.write(count: buffers.count, to: tap) == .written)
            results = (0..<buffers.count).map { ring.result($0) }
        }
        return results
    }

    /// Calls `body` with every array's bytes at once.
    func withBuffers(
        _ arrays: inout [[UInt8]], index: Int, _ done: [UnsafeMutableRawBufferPointer] = [],
        _ body: ([UnsafeMutableRawBufferPointer]) -> Void
    ) {
        guard index < arrays.count else { return body(done) }
        var array = arrays[index]
        array.withUnsafeMutableBytes { withBuffers(&arrays, index: index + 1, done + [$0], body) }
    }

    @Test func aBatchToADownTapFailsFrameByFrameWithEIOLikeWrite() throws {
        guard let ring = try ring() else { return }
        let tap = try TapDevice(name: UniqueName.next())
        defer { tap.close() }
        let results = writeBatch([frame(1), frame(2), frame(3)], ring: ring, tap: tap)
        #expect(results == Array(repeating: .failed(.ioError), count: 3))
        #expect(frame(4).withUnsafeBytes { tap.write($0) } == .failed(.ioError))
    }

    @Test func aBadFrameFailsAloneAndTheFramesAroundItAreWritten() throws {
        guard let ring = try ring() else { return }
        let name = UniqueName.next()
        let tap = try TapDevice(name: name)
        defer { tap.close() }
        _ = try Command.run("ip", ["link", "set", name, "up"])
        // A TAP write shorter than an Ethernet header fails with EINVAL, as write(2) does.
        let results = writeBatch([frame(1), frame(2, length: 10), frame(3), frame(4)], ring: ring, tap: tap)
        #expect(results == [.transferred(60), .failed(.invalidArgument), .transferred(60), .transferred(60)])
        #expect(frame(5, length: 10).withUnsafeBytes { tap.write($0) } == .failed(.invalidArgument))
        ring.close()
        ring.close()  // idempotent
    }
}
