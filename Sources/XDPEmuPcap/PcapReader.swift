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
    init(timestampNanos: UInt64, capturedLength: Int, originalLength: Int, bytes: UnsafeRawBufferPointer, index: Int,
         fileOffset: Int64) {
        self.timestampNanos = timestampNanos
        self.capturedLength = capturedLength
        self.originalLength = originalLength
        self.bytes = bytes
        self.index = index
        self.fileOffset = fileOffset
    }
}

/// Reads Ethernet frames from one capture file: classic pcap (micro- or nanosecond, either byte order) or pcapng.
///
/// Classic pcap 2.4, the format replays use, goes through our own parser: large `read(2)` calls into one buffer and
/// no allocation per record, several times cheaper than libpcap's per-record path. pcapng, with its blocks, options
/// and per-interface time resolutions, and the older classic formats (versions 2.0 to 2.3, whose records may have
/// their two lengths in the other order, DG/UX's 543.0 and Kuznetzov's patched headers) go through libpcap. Both
/// sit behind `next()`.
///
/// Classic files give what libpcap gives (records, lengths, bytes, and an error where libpcap fails; the fuzz
/// tests compare the two), but for two things: their 32-bit seconds are read as unsigned, as the format defines
/// them (libpcap 1.10 sign-extends them, turning 2038 and later into negative times), and a link type other than
/// Ethernet is refused when the file is opened. Not thread-safe; use one reader per thread.
public final class PcapReader {
    /// The file being read, as given to `init`.
    public let path: String
    /// The file's link type; always 1 (Ethernet), since other link types are refused.
    public let linkType: UInt32
    /// The file's snap length (0 means "no limit was recorded").
    public let snapLength: UInt32
    /// The precision of the timestamps stored in the file (pcapng is always reported as `.nano`).
    public let timestampPrecision: TimestampPrecision

    // Exactly one of the two is set. The classic parser sits behind a pointer so that the per-record path does no
    // reference counting (see ClassicPcapParser).
    @usableFromInline let classic: UnsafeMutablePointer<ClassicPcapParser>?
    private let pcapng: LibpcapBackend?

    /// Opens `path` and checks its file header.
    ///
    /// Throws `.cannotOpen` when open(2) fails and `.fileHeader` when the file is not a pcap or pcapng file, has an
    /// unsupported version, or does not carry Ethernet.
    public init(path: String) throws(PcapError) {
        self.path = path
        let opened = try ClassicPcapParser.open(path: path)
        switch consume opened {
        case .some(let parser):
            linkType = parser.linkType
            snapLength = parser.snapLength
            timestampPrecision = parser.timestampPrecision
            let classic = UnsafeMutablePointer<ClassicPcapParser>.allocate(capacity: 1)
            classic.initialize(to: parser)
            self.classic = classic
            pcapng = nil
        case .none:
            let pcapng = try LibpcapBackend(path: path)
            linkType = pcapng.linkType
            snapLength = pcapng.snapLength
            timestampPrecision = .nano
            classic = nil
            self.pcapng = pcapng
        }
    }

    deinit {
        if let classic {
            classic.deinitialize(count: 1)
            classic.deallocate()
        }
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
        return try nextFromLibpcap()
    }

    @usableFromInline
    func nextFromLibpcap() throws(PcapError) -> PcapRecord? {
        try pcapng!.next()
    }

    /// The number of records returned so far.
    public var recordsRead: Int {
        if let classic {
            return classic.pointee.recordsRead
        }
        return pcapng!.recordsRead
    }
}
