/// One captured frame as read from a file.
///
/// `bytes` points into the reader's buffer: it stays valid until the next call to `PcapReader.next()` (or until the
/// reader is released), so copy the bytes to keep them.
public struct PcapRecord {
    /// Capture time in nanoseconds since the Unix epoch (microsecond files are scaled by 1000).
    public var timestampNanos: UInt64
    /// Number of bytes stored in the file for this frame (`bytes.count`).
    public var capturedLength: Int
    /// Length of the frame on the wire; may be smaller than `capturedLength` in odd files, which libpcap accepts.
    public var originalLength: Int
    /// The captured bytes, valid until the next call to `next()`.
    public var bytes: UnsafeRawBufferPointer
    /// 0-based number of the record in the file.
    public var index: Int
    /// Byte offset of the record header (classic pcap), or of the first block read for the record (pcapng).
    /// -1 when libpcap's stream position is unknown.
    public var fileOffset: Int64

    @usableFromInline
    init(
        timestampNanos: UInt64, capturedLength: Int, originalLength: Int, bytes: UnsafeRawBufferPointer, index: Int,
        fileOffset: Int64
    ) {
        self.timestampNanos = timestampNanos
        self.capturedLength = capturedLength
        self.originalLength = originalLength
        self.bytes = bytes
        self.index = index
        self.fileOffset = fileOffset
    }
}

/// Reads the frames of one capture file: classic pcap (micro- or nanosecond, either byte order) or pcapng.
///
/// Classic pcap 2.4 and plain pcapng (one section, interfaces of one link type with decimal time stamp resolutions,
/// Enhanced Packet Blocks: what dumpcap writes) go through our own parsers: large `read(2)` calls into one buffer
/// and no allocation per record, several times cheaper than libpcap's per-record path. The rest goes through
/// libpcap: the older classic formats (versions 2.0 to 2.3, whose records may have their two lengths in the other
/// order, DG/UX's 543.0 and Kuznetzov's patched headers) from the start, and a pcapng file from wherever our parser
/// meets something it does not handle as libpcap does (see PcapngParser). All of it sits behind `next()`.
///
/// Files read give what libpcap gives (records, lengths, bytes, and an error where libpcap fails; the fuzz tests
/// compare the two), but for a few things: the 32-bit seconds of classic pcap are read as unsigned, as the format
/// defines them (libpcap 1.10 sign-extends them, turning 2038 and later into negative times); a time stamp before
/// 1970 or beyond 64 bits of nanoseconds is an error; and a link type replay cannot give an Ethernet header
/// (`LinkType.isReplayable`) is refused when the file is opened. Not thread-safe; use one reader per thread.
public final class PcapReader {
    /// The file being read, as given to `init`.
    public let path: String
    /// The file's link type: one of `LinkType.replayable`, since the others are refused. Records are handed out
    /// as they are stored, link-layer header included.
    public let linkType: LinkType
    /// The file's snap length (0 means "no limit was recorded").
    public let snapLength: UInt32
    /// The largest captured length a record of this file is handed out with: libpcap's snapshot length for it
    /// (the snap length, or 262144 when it is 0 or larger).
    public var largestCapturedLength: Int { Int(PcapFormat.snapshotLength(snapLength)) }
    /// The precision of the timestamps stored in the file (pcapng is always reported as `.nano`).
    public let timestampPrecision: TimestampPrecision

    // At most one of the three is set (exactly one once `init` returns). Our parsers sit behind pointers so that
    // the per-record path does no reference counting (see ClassicPcapParser). A pcapng file starts with our parser
    // and may be handed to libpcap part way through (see PcapngParser). Read without exclusivity checks: one
    // thread uses a reader.
    @usableFromInline @exclusivity(unchecked) var classic: UnsafeMutablePointer<ClassicPcapParser>?
    @exclusivity(unchecked) private var pcapng: UnsafeMutablePointer<PcapngParser>?
    @exclusivity(unchecked) private var libpcap: LibpcapBackend?

    /// Opens `path` and checks its file header.
    ///
    /// Throws `.cannotOpen` when open(2) fails and `.fileHeader` when the file is not a pcap or pcapng file, has an
    /// unsupported version, or a link type replay cannot use.
    public init(path: String) throws(PcapError) {
        self.path = path
        var input = try ReadBuffer(path: path)
        let parser: Parser
        do throws(PcapError) {
            parser = try Self.parser(for: &input)
        } catch {
            input.close()
            throw error
        }
        switch parser {
        case .classic:
            let parser = ClassicPcapParser(input: input)
            linkType = parser.linkType
            snapLength = parser.snapLength
            timestampPrecision = parser.timestampPrecision
            classic = .allocate(capacity: 1)
            classic.unsafelyUnwrapped.initialize(to: parser)
            return
        case .pcapng:
            let parser = PcapngParser(input: input)
            if parser.isPlain {
                guard parser.linkType.isReplayable else {
                    throw .fileHeader(
                        path: path, offset: parser.firstInterface.offset + 8, block: parser.firstInterface.block,
                        reason: .unsupportedLinkType(parser.linkType))
                }
                linkType = parser.linkType
                snapLength = parser.snapshot
                timestampPrecision = .nano
                pcapng = .allocate(capacity: 1)
                pcapng.unsafelyUnwrapped.initialize(to: parser)
                return
            }
        case .libpcap:
            input.close()
        }
        let libpcap = try LibpcapBackend(path: path, isPcapng: parser == .pcapng)
        linkType = libpcap.linkType
        snapLength = libpcap.snapLength
        timestampPrecision = .nano
        self.libpcap = libpcap
    }

    private enum Parser { case classic, pcapng, libpcap }

    /// Which parser reads the file, by its first bytes (see ClassicPcapParser.isOurs).
    private static func parser(for input: inout ReadBuffer) throws(PcapError) -> Parser {
        let available: Int
        do {
            available = try input.refill(atLeast: PcapFormat.fileHeaderSize)
        } catch {
            throw .fileHeader(path: input.path, offset: 0, reason: .readFailed(error))
        }
        guard available >= 4 else {
            throw .fileHeader(
                path: input.path, offset: 0,
                reason: .truncatedFileHeader(need: PcapFormat.fileHeaderSize, left: available))
        }
        if input.current.loadUnaligned(as: UInt32.self) == PcapFormat.pcapngMagic {
            return .pcapng
        }
        return try ClassicPcapParser.isOurs(header: input.current, count: available, path: input.path)
            ? .classic : .libpcap
    }

    deinit {
        if let classic {
            classic.deinitialize(count: 1)
            classic.deallocate()
        }
        dropPcapngParser()
    }

    /// Returns the next record, or nil at a clean end of file.
    ///
    /// Throws `.record` for a malformed or unreadable record; the records before it have been returned. The bytes
    /// stay valid until the next call.
    @inlinable @inline(__always)
    public func next() throws(PcapError) -> PcapRecord? {
        if let classic {
            return try classic.pointee.next()
        }
        return try nextNotClassic()
    }

    /// `next()` for pcapng and for every file libpcap reads. Out of line: inlined too, the pcapng parser's fast
    /// path made the classic one's callers spill more registers (10 instructions more per frame in replay).
    @usableFromInline
    func nextNotClassic() throws(PcapError) -> PcapRecord? {
        if let pcapng {
            if let record = pcapng.pointee.next() {
                return record
            }
            switch pcapng.pointee.nextSlowly() {
            case .record(let record):
                return record
            case .end:
                return nil
            case .handOver:
                try handOverToLibpcap()
            }
        }
        return try libpcap.unsafelyUnwrapped.next()
    }

    /// Goes on with libpcap where our pcapng parser stops: opens the file again and skips the records already
    /// handed out (libpcap returns the same ones: the parser hands out only what it reads as libpcap does).
    private func handOverToLibpcap() throws(PcapError) {
        let handedOut = pcapng.unsafelyUnwrapped.pointee.recordsRead
        dropPcapngParser()
        let libpcap = try LibpcapBackend(path: path, isPcapng: true)
        while libpcap.recordsRead < handedOut, try libpcap.next() != nil {}
        self.libpcap = libpcap
    }

    private func dropPcapngParser() {
        guard let pcapng else { return }
        pcapng.deinitialize(count: 1)
        pcapng.deallocate()
        self.pcapng = nil
    }

    /// Whether libpcap reads the file now: an old classic format, or pcapng beyond what our parser reads (tests and
    /// benchmarks check that a plain pcapng file never gets there).
    public var isReadByLibpcap: Bool { libpcap != nil }

    /// The number of records returned so far.
    public var recordsRead: Int {
        if let classic {
            return classic.pointee.recordsRead
        }
        if let pcapng {
            return pcapng.pointee.recordsRead
        }
        return libpcap.unsafelyUnwrapped.recordsRead
    }
}
