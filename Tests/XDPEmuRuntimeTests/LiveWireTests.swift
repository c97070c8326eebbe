import Glibc
import Testing
import XDPEmuCore
import XDPEmuOS

@testable import XDPEmuRuntime

// TapWire's batch send on a real TAP, through io_uring and through write(2): every frame is tried, the written
// ones come first in their order, the failed ones after them (the devmap counts those as `xmit_unsent`).

@Suite("TapWire batches", .serialized, .enabled(if: LiveSystem.available, LiveSystem.reason))
struct LiveWireTests {
    @Test(arguments: [true, false])
    func aFrameTheTapRefusesIsPutBehindTheWrittenOnes(ioUring: Bool) throws {
        let ring = ioUring ? (try? TapWriteRing(capacity: 16)).map { SharedWriteRing($0, report: { _ in }) } : nil
        if ioUring && ring == nil { return }  // no io_uring here: the write(2) case covers it
        let name = "xw\(getpid() % 100_000)\(ioUring ? "u" : "w")"
        let tap = try TapDevice(name: name)
        defer { tap.close() }
        _ = try Command.run("ip", ["link", "set", name, "up"])
        let wire = TapWire(tap: tap, segmenter: TCPSegmenter(), ring: ring)
        let pool = FramePool(capacity: 8)
        // 60-byte broadcast frames of ethertype 0x88b5; the second is shorter than an Ethernet header (EINVAL).
        var frames = [1, 2, 3, 4].map { marker -> FrameID in
            var bytes = [UInt8](repeating: UInt8(marker), count: marker == 2 ? 10 : 60)
            if marker != 2 { bytes.replaceSubrange(0..<14, with: [UInt8](repeating: 0xff, count: 12) + [0x88, 0xb5]) }
            return bytes.withUnsafeBytes { pool.take(copying: $0)! }
        }
        let original = frames
        let sent = frames.withUnsafeMutableBufferPointer { wire.send($0, pool: pool, time: 0) }
        #expect(sent == 3)
        #expect(frames == [original[0], original[2], original[3], original[1]])
        #expect(!wire.isDead)
        for frame in frames { pool.give(frame) }
        #expect(pool.outstanding == 0)
    }

    @Test func aBatchToADownTapSendsNothing() throws {
        guard let opened = try? TapWriteRing(capacity: 16) else { return }
        let tap = try TapDevice(name: "xw\(getpid() % 100_000)d")
        defer { tap.close() }
        let wire = TapWire(tap: tap, segmenter: TCPSegmenter(), ring: SharedWriteRing(opened, report: { _ in }))
        let pool = FramePool(capacity: 4)
        var frames = (0..<3).map { _ in
            [UInt8](repeating: 0xff, count: 60).withUnsafeBytes { pool.take(copying: $0)! }
        }
        let original = frames
        #expect(frames.withUnsafeMutableBufferPointer { wire.send($0, pool: pool, time: 0) } == 0)
        #expect(frames == original)
        for frame in frames { pool.give(frame) }
    }
}
