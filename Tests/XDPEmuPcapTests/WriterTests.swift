@preconcurrency import CPcap
import Testing
import XDPEmuPcap
import XDPEmuTesting

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

@Suite("PcapWriter")
struct WriterTests {
    @Test("libpcap's pcap_dump header is what we think it is")
    func libpcapHeaderLayout() {
        let directory = TemporaryDirectory()
        let path = directory.file("libpcap.pcap")
        writeWithLibpcap(path, snapLength: 1500, frames: [])
        var expected = ByteBuilder(bigEndian: false)
        expected.u32(0xa1b2_3c4d)
        expected.u16(2)
        expected.u16(4)
        expected.u32(0)
        expected.u32(0)
        expected.u32(1500)
        expected.u32(1)
        #expect(readFile(path) == expected.bytes)  // this machine is little-endian, like every Linux we run on
    }

    /// One byte-identity scenario: frame sizes, snap length and buffer size.
    struct IdentityCase: Sendable, CustomTestStringConvertible {
        var sizes: [Int]
        var snapLength: UInt32 = 262_144
        var bufferSize: Int = 1 << 20
        var testDescription: String {
            let shown = sizes.count > 6 ? "\(sizes.count) frames of \(sizes[0])" : "\(sizes)"
            return "\(shown), snap \(snapLength), buffer \(bufferSize)"
        }
    }

    static let identityCases: [IdentityCase] = [
        IdentityCase(sizes: [0]),
        IdentityCase(sizes: [60]),
        IdentityCase(sizes: [60, 1514, 9000, 64, 1514]),
        IdentityCase(sizes: [1514, 9000, 60, 20_000, 60], bufferSize: 4096),  // some bigger than the buffer
        IdentityCase(sizes: [60, 128, 1514, 9000], snapLength: 128),  // snap length truncation
        IdentityCase(sizes: [262_144, 262_144, 60]),
        IdentityCase(sizes: [60, 2 << 20, 60], snapLength: 4 << 20),  // one record bigger than the default buffer
        IdentityCase(sizes: Array(repeating: 1514, count: 2000)),  // many flushes
    ]

    @Test("byte-identical to libpcap's pcap_dump", arguments: identityCases)
    func byteIdentity(_ scenario: IdentityCase) throws {
        let (snapLength, bufferSize) = (scenario.snapLength, scenario.bufferSize)
        let directory = TemporaryDirectory()
        var frames = scenario.sizes.enumerated().map { Frame.make($0.offset, length: $0.element) }
        // Timestamp corner cases: the epoch, a whole second, and one past 2^32 seconds (both writers wrap it).
        frames[0].timestampNanos = 0
        if frames.count > 1 { frames[1].timestampNanos = 5_000_000_000 }
        if frames.count > 2 { frames[2].timestampNanos = (1 << 32 + 7) * 1_000_000_000 + 999_999_999 }
        if frames.count > 3 { frames[3].originalLength += 1000 }  // a frame that was cut on capture
        let ours = directory.file("ours.pcap")
        let reference = directory.file("libpcap.pcap")
        try writeWithOurWriter(ours, snapLength: snapLength, bufferSize: bufferSize, frames: frames)
        writeWithLibpcap(reference, snapLength: snapLength, frames: frames)
        let ourBytes = readFile(ours)
        let referenceBytes = readFile(reference)
        #expect(ourBytes.count == referenceBytes.count)
        let firstDifference = zip(ourBytes, referenceBytes).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        #expect(firstDifference == nil, "files differ first at byte \(firstDifference ?? -1)")
    }

    @Test("round trip through our reader and libpcap")
    func roundTrip() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("round.pcap")
        var generator = SplitMix64(seed: 42)
        var time: UInt64 = 1_600_000_000_123_456_789
        let frames = (0..<3000).map { index -> Frame in
            time += UInt64.random(in: 1...2_000_000_000, using: &generator)
            let length = [0, 14, 60, 64, 1514, 9000, Int.random(in: 0...1514, using: &generator)][index % 7]
            return Frame.make(index, length: length, timestampNanos: time)
        }
        try writeWithOurWriter(path, bufferSize: 64 << 10, frames: frames)

        let records = readAllWithOurReader(path)
        #expect(records.map(\.frame) == frames)
        #expect(records.map(\.index) == Array(0..<frames.count))
        var offset: Int64 = 24
        for (record, frame) in zip(records, frames) {
            #expect(record.fileOffset == offset)
            offset += 16 + Int64(frame.bytes.count)
        }
        #expect(offset == Int64(fileSize(path)))

        let (libpcapFrames, libpcapError) = readWithLibpcap(path)
        #expect(libpcapError == nil)
        #expect(libpcapFrames == frames)
    }

    @Test("counters, and the file is valid after every flush")
    func flushLeavesValidFile() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("flushed.pcap")
        let writer = try PcapWriter(path: path, bufferSize: 1000)
        #expect(fileSize(path) == 24)  // header on disk before any record
        #expect(readAllWithOurReader(path).isEmpty)

        // 300-byte frames make 316-byte records; three fit in the 1000-byte buffer, the fourth forces a flush.
        let frames = (0..<10).map { Frame.make($0, length: 300) }
        for (index, frame) in frames.enumerated() {
            frame.bytes.withUnsafeBytes {
                writer.write(timestampNanos: frame.timestampNanos, bytes: $0, originalLength: 300)
            }
            #expect(writer.recordsWritten == index + 1)
            #expect(writer.bytesWritten == 24 + 316 * (index + 1))
            // Whatever reached the disk is whole records only.
            #expect((fileSize(path) - 24) % 316 == 0)
            #expect(readAllWithOurReader(path).count == (fileSize(path) - 24) / 316)
        }
        try writer.flush()
        #expect(fileSize(path) == writer.bytesWritten)
        #expect(readAllWithOurReader(path).map(\.frame) == frames)
        #expect(readWithLibpcap(path).records == frames)
        try writer.close()
        try writer.close()  // idempotent
        try writer.flush()  // harmless after close
    }

    @Test("deinit flushes and closes")
    func deinitFlushes() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("deinit.pcap")
        do {
            let writer = try PcapWriter(path: path)
            [UInt8](repeating: 0xab, count: 60).withUnsafeBytes {
                writer.write(timestampNanos: 1, bytes: $0, originalLength: 60)
            }
        }
        #expect(readAllWithOurReader(path).count == 1)
    }

    @Test("writing to /dev/null keeps it a character device")
    func devNull() throws {
        let writer = try PcapWriter(path: "/dev/null")
        [UInt8](repeating: 1, count: 100).withUnsafeBytes {
            writer.write(timestampNanos: 1, bytes: $0, originalLength: 100)
        }
        try writer.close()
        var info = stat()
        #expect(stat("/dev/null", &info) == 0)
        #expect(info.st_mode & S_IFMT == S_IFCHR)
    }

    @Test("write errors are reported with the path")
    func writeErrors() {
        // /dev/full fails every write with ENOSPC, so the header write in init already fails.
        #expect(throws: PcapError.cannotWrite(path: "/dev/full", errno: .noSpace)) {
            _ = try PcapWriter(path: "/dev/full")
        }
        let directory = TemporaryDirectory()
        let missing = directory.file("no/such/dir.pcap")
        #expect(throws: PcapError.cannotOpen(path: missing, errno: .noSuchFileOrDirectory)) {
            _ = try PcapWriter(path: missing)
        }
        #expect(
            PcapError.cannotWrite(path: "/dev/full", errno: .noSpace).description
                == "/dev/full: cannot write: No space left on device"
        )
    }
}
