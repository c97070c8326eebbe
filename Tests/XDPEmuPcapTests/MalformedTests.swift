import Testing
import XDPEmuPcap

/// Every malformed input names the file, the record (1-based) and the byte offset, and the records before the fault
/// come out intact.
@Suite("Malformed input")
struct MalformedTests {
    /// A file with three good records; returns it and the offset where a fourth would start.
    static func threeGoodRecords(bigEndian: Bool = false, snapLength: UInt32 = 65_535) -> (ClassicPcapFile, [Frame]) {
        var file = ClassicPcapFile(bigEndian: bigEndian, snapLength: snapLength)
        let frames = [60, 1514, 64].enumerated().map {
            Frame.make($0.offset, length: $0.element, timestampNanos: UInt64($0.offset) * 1000)
        }
        for frame in frames { file.record(frame) }
        return (file, frames)
    }

    /// Writes `bytes`, reads it and returns what came back.
    static func read(
        _ bytes: [UInt8],
        name: String = "trace.pcap"
    ) -> (path: String, records: [Frame], error: PcapError?, directory: TemporaryDirectory) {
        let directory = TemporaryDirectory()
        let path = directory.file(name)
        writeFile(path, bytes)
        let (records, error) = readWithOurReader(path)
        return (path, records.map(\.frame), error, directory)
    }

    @Test("a missing file cannot be opened")
    func missingFile() {
        let directory = TemporaryDirectory()
        let path = directory.file("x.pcap")
        let (_, error) = readWithOurReader(path)
        #expect(error == .cannotOpen(path: path, errno: .noSuchFileOrDirectory))
        #expect(error?.description == "\(path): cannot open: No such file or directory")
    }

    @Test("empty and short files have a truncated header")
    func shortFiles() {
        let empty = Self.read([])
        #expect(
            empty.error == .fileHeader(path: empty.path, offset: 0, reason: .truncatedFileHeader(need: 24, left: 0))
        )
        let ten = Self.read(Array(ClassicPcapFile().bytes.prefix(10)))
        #expect(ten.error == .fileHeader(path: ten.path, offset: 0, reason: .truncatedFileHeader(need: 24, left: 10)))
        #expect(ten.error?.description == "\(ten.path): byte offset 0: truncated file header (need 24 bytes, 10 left)")
        let three = Self.read([0xd4, 0xc3, 0xb2])
        #expect(three.error?.reason == .truncatedFileHeader(need: 24, left: 3))
    }

    @Test("a bad magic number is not a capture file")
    func badMagic() {
        var bytes = ClassicPcapFile().bytes
        bytes.replaceSubrange(0..<4, with: [0x12, 0x34, 0x56, 0x78])
        let result = Self.read(bytes, name: "x.pcap")
        #expect(result.error == .fileHeader(path: result.path, offset: 0, reason: .notPcap(magic: 0x1234_5678)))
        #expect(
            result.error?.description == "\(result.path): byte offset 0: not a pcap or pcapng file (magic 0x12345678)"
        )
        // Ten bytes of text are "not pcap" rather than "truncated": the magic decides first.
        #expect(Self.read(Array("GET / HTTP".utf8)).error?.reason == .notPcap(magic: 0x4745_5420))
    }

    @Test("only version 2.0 to 2.4 is accepted", arguments: [false, true])
    func versions(bigEndian: Bool) {
        let three = Self.read(ClassicPcapFile(bigEndian: bigEndian, versionMajor: 3, versionMinor: 0).bytes)
        #expect(
            three.error == .fileHeader(path: three.path, offset: 4, reason: .unsupportedVersion(major: 3, minor: 0))
        )
        let twoFive = Self.read(ClassicPcapFile(bigEndian: bigEndian, versionMinor: 5).bytes)
        #expect(twoFive.error?.reason == .unsupportedVersion(major: 2, minor: 5))
        let twoTwo = Self.read(ClassicPcapFile(bigEndian: bigEndian, versionMinor: 2).bytes)
        #expect(twoTwo.error == nil)
    }

    @Test("versions before 2.4 read as libpcap reads them, lengths in the old order too", arguments: [false, true])
    func oldVersions(bigEndian: Bool) {
        // Before 2.3 a record header had the original length first; 2.3 files may have either order (libpcap
        // swaps when the captured length is the larger); DG/UX wrote 543.0 in the old order.
        for (major, minor) in [(UInt16(2), UInt16(2)), (2, 3), (543, 0)] {
            // 60 bytes kept of 80, the first record in the old order, the second in the old order too except in
            // 2.3, where it is in the new one.
            var file = ClassicPcapFile(bigEndian: bigEndian, versionMajor: major, versionMinor: minor)
            file.rawRecord(
                seconds: 1, fraction: 2, capturedLength: 80, originalLength: 60,
                data: Array(repeating: 5, count: 60))
            let newOrder = minor == 3
            file.rawRecord(
                seconds: 3, fraction: 4, capturedLength: newOrder ? 60 : 80,
                originalLength: newOrder ? 80 : 60, data: Array(repeating: 6, count: 60))
            let result = Self.read(file.bytes)
            let libpcap = readWithLibpcap(result.path)
            #expect(result.error == nil, "\(major).\(minor)")
            #expect(libpcap.error == nil, "\(major).\(minor)")
            #expect(result.records == libpcap.records, "\(major).\(minor)")
            #expect(result.records.map(\.bytes.count) == [60, 60], "\(major).\(minor)")
            #expect(result.records.map(\.originalLength) == [80, 80], "\(major).\(minor)")
        }
    }

    @Test("a truncated record header", arguments: [false, true])
    func truncatedRecordHeader(bigEndian: Bool) {
        var (file, frames) = Self.threeGoodRecords(bigEndian: bigEndian)
        let offset = Int64(file.count)
        file.builder.raw([1, 2, 3, 4, 5])
        let result = Self.read(file.bytes)
        #expect(result.records == frames)
        #expect(
            result.error
                == .record(
                    path: result.path,
                    recordNumber: 4,
                    offset: offset,
                    reason: .truncatedRecordHeader(need: 16, left: 5)
                )
        )
        #expect(
            result.error?.description
                == "\(result.path): record 4 at byte offset \(offset): truncated record header (need 16 bytes, 5 left)"
        )
    }

    @Test("truncated record data", arguments: [false, true])
    func truncatedRecordData(bigEndian: Bool) {
        var (file, frames) = Self.threeGoodRecords(bigEndian: bigEndian)
        let offset = Int64(file.count)
        file.rawRecord(
            seconds: 1,
            fraction: 2,
            capturedLength: 60,
            originalLength: 60,
            data: Array(repeating: 9, count: 12)
        )
        let result = Self.read(file.bytes)
        #expect(result.records == frames)
        #expect(
            result.error
                == .record(
                    path: result.path,
                    recordNumber: 4,
                    offset: offset,
                    reason: .truncatedRecordData(need: 60, left: 12)
                )
        )
        #expect(
            result.error?.description
                == "\(result.path): record 4 at byte offset \(offset): truncated record data (need 60 bytes, 12 left)"
        )
    }

    @Test("a record longer than the snap length is cut to it, as libpcap does", arguments: [false, true])
    func aboveSnapLength(bigEndian: Bool) {
        var (file, frames) = Self.threeGoodRecords(bigEndian: bigEndian, snapLength: 1514)
        let long = Frame.make(7, length: 1600, timestampNanos: 5000)
        file.record(long)
        let after = Frame.make(8, length: 64, timestampNanos: 6000)
        file.record(after)
        let result = Self.read(file.bytes)
        #expect(result.error == nil)
        let cut = Frame(timestampNanos: 5000, bytes: Array(long.bytes.prefix(1514)), originalLength: 1600)
        #expect(result.records == frames + [cut, after])
        let libpcap = readWithLibpcap(result.path)
        #expect(libpcap.error == nil)
        #expect(libpcap.records == result.records)

        // The whole record must be there, not just the part that is kept.
        var (short, _) = Self.threeGoodRecords(bigEndian: bigEndian, snapLength: 1514)
        let offset = Int64(short.count)
        short.record(long)
        let truncated = Self.read(Array(short.bytes.dropLast(10)))
        #expect(truncated.records == frames)
        #expect(
            truncated.error
                == .record(
                    path: truncated.path, recordNumber: 4, offset: offset,
                    reason: .truncatedRecordData(need: 1600, left: 1590))
        )
        #expect(readWithLibpcap(truncated.path).error != nil)
    }

    @Test("captured length above libpcap's maximum", arguments: [UInt32(0), 300_000, .max])
    func aboveMaximum(snapLength: UInt32) {
        var (file, frames) = Self.threeGoodRecords(snapLength: snapLength)
        let offset = Int64(file.count)
        file.rawRecord(seconds: 1, fraction: 2, capturedLength: 262_145, originalLength: 262_145, data: [])
        let result = Self.read(file.bytes)
        #expect(result.records == frames)
        #expect(
            result.error
                == .record(
                    path: result.path,
                    recordNumber: 4,
                    offset: offset,
                    reason: .capturedLengthAboveMaximum(capturedLength: 262_145, maximum: 262_144)
                )
        )
        let expected = "record 4 at byte offset \(offset): captured length 262145 exceeds the maximum 262144"
        #expect(result.error?.description == "\(result.path): \(expected)")
    }

    @Test("a bad record stays bad: next() keeps throwing the same error")
    func stickyError() throws {
        var (file, _) = Self.threeGoodRecords()
        file.builder.raw([1, 2, 3])
        let directory = TemporaryDirectory()
        let path = directory.file("sticky.pcap")
        writeFile(path, file.bytes)
        let reader = try PcapReader(path: path)
        for _ in 0..<3 { _ = try reader.next() }
        let first = #expect(throws: PcapError.self) { try reader.next() }
        let second = #expect(throws: PcapError.self) { try reader.next() }
        #expect(first == second)
        #expect(reader.recordsRead == 3)
    }

    @Test("a truncated pcapng packet block is reported with its record number and offset")
    func truncatedPcapng() {
        var file = PcapngFile()
        file.interface()
        let frames = [
            Frame.make(0, length: 60, timestampNanos: 1000), Frame.make(1, length: 100, timestampNanos: 2000),
        ]
        for frame in frames { file.packet(frame) }
        let offset = Int64(file.count)
        file.packet(Frame.make(2, length: 200))  // block 5, after the section header, the interface and 2 packets
        let result = Self.read(Array(file.bytes.dropLast(50)), name: "cut.pcapng")
        #expect(result.records == frames)
        #expect(result.error?.recordNumber == 3)
        #expect(result.error?.offset == offset)
        guard case .libpcap(let message)? = result.error?.reason else {
            Issue.record("expected a libpcap error, got \(String(describing: result.error))")
            return
        }
        #expect(result.error?.block == 5)
        #expect(result.error?.description == "\(result.path): record 3 at byte offset \(offset) (block 5): \(message)")
    }

    @Test("a pcapng file without interfaces is refused at open, naming where the interface should be")
    func pcapngWithoutInterface() {
        let file = PcapngFile()
        let result = Self.read(file.bytes + [1, 2, 3], name: "bare.pcapng")
        // The section header is block 1 (28 bytes); block 2 should be the interface.
        #expect(result.error?.offset == 28)
        #expect(result.error?.block == 2)
        #expect(result.error?.recordNumber == nil)
        guard case .libpcap(let message)? = result.error?.reason else {
            Issue.record("expected a libpcap error, got \(String(describing: result.error))")
            return
        }
        #expect(result.error?.description == "\(result.path): byte offset 28 (block 2): \(message)")
    }

    @Test("a pcapng section header libpcap refuses is named as block 1 at offset 0")
    func pcapngBadVersion() {
        var bytes = PcapngFile().bytes
        bytes[12] = 2  // major version 2
        var file = PcapngFile()
        file.interface()
        let result = Self.read(bytes + file.bytes.dropFirst(28), name: "v2.pcapng")
        #expect(result.error?.offset == 0)
        #expect(result.error?.block == 1)
        #expect(result.error?.description.hasPrefix("\(result.path): byte offset 0 (block 1): ") == true)
    }

    @Test("a broken block after the first interface, read by libpcap, is named by offset and block")
    func pcapngBrokenBlockAfterHandOver() {
        var file = PcapngFile()
        file.interface(options: [(9, [0x80 | 10])])  // a binary resolution: libpcap reads the file from the start
        file.packet(Frame.make(0, length: 60), interface: 0, units: 1 << 40)
        let offset = Int64(file.count)
        file.other(type: 5, [1, 2, 3, 4])
        var bytes = file.bytes
        bytes[Int(offset) + 4] = 13  // block 4's length: not a multiple of 4
        let result = Self.read(bytes, name: "broken.pcapng")
        #expect(result.records.count == 1)
        #expect(result.error?.recordNumber == 2)
        #expect(result.error?.offset == offset)
        #expect(result.error?.block == 4)
        #expect(result.error?.description.contains("record 2 at byte offset \(offset) (block 4): ") == true)
    }
}
