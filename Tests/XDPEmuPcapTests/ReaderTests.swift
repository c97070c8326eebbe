import Testing
import XDPEmuPcap

@Suite("PcapReader")
struct ReaderTests {
    /// Frames with microsecond-aligned timestamps, so micro and nano files can hold them exactly.
    static let frames: [Frame] = [
        Frame.make(0, length: 60, timestampNanos: 1_700_000_000_000_001_000),
        Frame.make(1, length: 1514, timestampNanos: 1_700_000_000_999_999_000),
        Frame.make(2, length: 0, timestampNanos: 0),
        Frame.make(3, length: 9000, timestampNanos: 4_294_967_295_999_999_000),  // the last second pcap can hold
        Frame(timestampNanos: 1_700_000_001_000_000_000, bytes: [1, 2, 3], originalLength: 1500),
    ]

    @Test(
        "big- and little-endian, micro and nano files give the same records",
        arguments: [false, true],
        [false, true]
    )
    func byteOrderAndPrecision(bigEndian: Bool, nano: Bool) {
        let directory = TemporaryDirectory()
        let path = directory.file("input.pcap")
        var file = ClassicPcapFile(bigEndian: bigEndian, nano: nano)
        var offsets: [Int64] = []
        for frame in Self.frames {
            offsets.append(Int64(file.count))
            file.record(frame)
        }
        writeFile(path, file.bytes)

        let reader = try! PcapReader(path: path)
        #expect(reader.path == path)
        #expect(reader.linkType == .ethernet)
        #expect(reader.snapLength == 65_535)
        #expect(reader.timestampPrecision == (nano ? .nano : .micro))
        let records = readAllWithOurReader(path)
        #expect(records.map(\.frame) == Self.frames)
        #expect(records.map(\.fileOffset) == offsets)
        #expect(records.map(\.index) == Array(0..<Self.frames.count))
        #expect(readWithLibpcap(path).records == Self.frames)
    }

    @Test("nanosecond fractions survive a nano file")
    func nanosecondFractions() {
        let directory = TemporaryDirectory()
        let path = directory.file("nano.pcap")
        var file = ClassicPcapFile(nano: true)
        let frame = Frame.make(0, length: 60, timestampNanos: 1_700_000_000_123_456_789)
        file.record(frame)
        writeFile(path, file.bytes)
        #expect(readAllWithOurReader(path).map(\.frame) == [frame])
    }

    @Test("out-of-range fractions are accepted and carried into the seconds, as libpcap does")
    func fractionOverflow() {
        let directory = TemporaryDirectory()
        for nano in [false, true] {
            let path = directory.file("fraction-\(nano).pcap")
            var file = ClassicPcapFile(nano: nano)
            file.rawRecord(seconds: 10, fraction: 1_500_000, capturedLength: 1, originalLength: 1, data: [7])
            file.rawRecord(
                seconds: .max,
                fraction: .max,
                capturedLength: 1,
                originalLength: 1,
                data: [8]
            )
            writeFile(path, file.bytes)
            let tick: UInt64 = nano ? 1 : 1000
            let records = readAllWithOurReader(path)
            #expect(
                records.map(\.timestampNanos) == [
                    10 * 1_000_000_000 + 1_500_000 * tick,
                    UInt64(UInt32.max) * 1_000_000_000 + UInt64(UInt32.max) * tick,
                ]
            )
        }
    }

    @Test("captured length above the original length is accepted; captured bytes are returned")
    func capturedAboveOriginal() {
        let directory = TemporaryDirectory()
        let path = directory.file("odd.pcap")
        var file = ClassicPcapFile()
        file.rawRecord(seconds: 1, fraction: 0, capturedLength: 4, originalLength: 2, data: [1, 2, 3, 4])
        writeFile(path, file.bytes)
        let records = readAllWithOurReader(path)
        #expect(
            records == [
                ReadRecord(
                    timestampNanos: 1_000_000_000,
                    bytes: [1, 2, 3, 4],
                    originalLength: 2,
                    index: 0,
                    fileOffset: 24
                )
            ]
        )
    }

    @Test("maximum-size records across many buffer refills")
    func largeRecords() {
        let directory = TemporaryDirectory()
        let path = directory.file("large.pcap")
        var file = ClassicPcapFile(nano: true, snapLength: 262_144)
        // Sizes chosen so records straddle the 1 MiB buffer boundary at various points.
        let frames = (0..<20).map { Frame.make($0, length: [262_144, 1, 100_000, 262_143, 60][$0 % 5]) }
        for frame in frames { file.record(frame) }
        writeFile(path, file.bytes)
        #expect(readAllWithOurReader(path).map(\.frame) == frames)
    }

    @Test("snap length 0 means no limit below libpcap's maximum")
    func snapLengthZero() {
        let directory = TemporaryDirectory()
        let path = directory.file("snap0.pcap")
        var file = ClassicPcapFile(snapLength: 0)
        let frame = Frame.make(0, length: 9000)
        file.record(frame)
        writeFile(path, file.bytes)
        #expect(readAllWithOurReader(path).map(\.frame) == [frame])
    }

    @Test("pcapng records with their timestamps and offsets", arguments: [false, true], [nil, 9] as [UInt8?])
    func pcapng(bigEndian: Bool, decimalResolution: UInt8?) throws {
        let directory = TemporaryDirectory()
        let path = directory.file("input.pcapng")
        var file = PcapngFile(bigEndian: bigEndian)
        file.interface(snapLength: 0, decimalResolution: decimalResolution)
        var frames = Self.frames
        if decimalResolution == 9 {
            frames[0].timestampNanos += 789  // nanoseconds need if_tsresol = 9
        }
        var offsets: [Int64] = []
        for frame in frames {
            offsets.append(Int64(file.count))
            file.packet(frame)
        }
        writeFile(path, file.bytes)

        let reader = try PcapReader(path: path)
        #expect(reader.linkType == .ethernet)
        #expect(reader.timestampPrecision == .nano)
        let records = readAllWithOurReader(path)
        #expect(records.map(\.frame) == frames)
        #expect(records.map(\.index) == Array(0..<frames.count))
        // The section and interface blocks are read at open, so each record's offset is its packet block's.
        #expect(records.map(\.fileOffset) == offsets)
    }

    @Test(
        "pcapng as dumpcap writes it (options everywhere, statistics at the end) is ours to read",
        arguments: [UInt16(0), 2, 1])
    func dumpcapStyle(minorVersion: UInt16) throws {
        let directory = TemporaryDirectory()
        let path = directory.file("capture.pcapng")
        var file = PcapngFile()
        file.builder = ByteBuilder(bigEndian: false)
        file.block(type: 0x0a0d_0d0a) { body in
            body.u32(0x1a2b_3c4d)
            body.u16(1)
            body.u16(minorVersion)
            body.u32(0xffff_ffff)
            body.u32(0xffff_ffff)
            for (code, text) in [(2, "x86_64"), (3, "Linux 6.18"), (4, "Dumpcap (Wireshark) 4.0.17")] {
                body.u16(UInt16(code))
                body.u16(UInt16(text.utf8.count))
                body.raw(Array(text.utf8))
                body.pad4()
            }
            body.u32(0)  // opt_endofopt
        }
        file.interface(
            snapLength: 262_144,
            options: [
                (2, Array("eth0".utf8)), (9, [9]), (11, [0] + Array("udp".utf8)),
                (12, Array("Linux 6.18".utf8)), (13, [0]), (0, []),
            ])
        let frames = Self.frames
        for frame in frames {
            file.block(type: 6) { body in
                body.u32(0)
                body.u32(UInt32(frame.timestampNanos >> 32))
                body.u32(UInt32(truncatingIfNeeded: frame.timestampNanos))
                body.u32(UInt32(frame.bytes.count))
                body.u32(UInt32(frame.originalLength))
                body.raw(frame.bytes)
                body.pad4()
                body.u16(2)  // epb_flags: inbound
                body.u16(4)
                body.u32(1)
                body.u32(0)
            }
        }
        file.other(type: 5, Array(repeating: 0, count: 12) + [1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0])  // statistics
        writeFile(path, file.bytes)

        let libpcap = readWithLibpcap(path)
        let ours = readWithOurReader(path)
        let reader = try? PcapReader(path: path)
        while let reader, (try? reader.next()) != nil {}
        if minorVersion == 1 {
            // libpcap reads versions 1.0 and 1.2 only; the reader hands 1.1 to it, which refuses it.
            #expect(libpcap.error != nil)
            #expect(ours.error != nil)
            return
        }
        #expect(libpcap.error == nil)
        #expect(ours.error == nil)
        #expect(ours.records.map(\.frame) == frames)
        #expect(libpcap.records == frames)
        #expect(reader?.isReadByLibpcap == false)
    }

    @Test("reader state: recordsRead, and nil again after the end")
    func endOfFile() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("two.pcap")
        var file = ClassicPcapFile()
        file.record(Self.frames[0])
        file.record(Self.frames[1])
        writeFile(path, file.bytes)
        let reader = try PcapReader(path: path)
        #expect(reader.recordsRead == 0)
        #expect(try reader.next() != nil)
        #expect(try reader.next() != nil)
        #expect(reader.recordsRead == 2)
        #expect(try reader.next() == nil)
        #expect(try reader.next() == nil)
        #expect(reader.recordsRead == 2)
    }
}
