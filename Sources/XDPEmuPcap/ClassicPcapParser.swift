// Our own classic pcap parser, on a ReadBuffer (see there for how the file is buffered).
//
// Every length is checked before it is used, and each record consumes at least 16 bytes, so no input can make the
// parser trap or loop.
//
// The parser is a noncopyable struct that PcapReader keeps behind a pointer: calling a method on a class instance
// held by another object costs a retain and a release per record, more than the parsing itself.
//
// `next()` is @inlinable, so that a replay's read loop compiles it in place: its fast path (a whole record already
// buffered, within the length limits, in a file of this machine's byte order) is a handful of loads and compares,
// and the record's unused fields are never computed. Everything else (refills, end of file, every error) is the out-of-line `nextSlowly()`, which checks
// the record again from the start.

/// The state of one classic pcap file (format 2.4) being read.
@usableFromInline
struct ClassicPcapParser: ~Copyable {
    @usableFromInline var input: ReadBuffer

    /// Whether the file was written on a machine of the other byte order.
    @usableFromInline var swapped = false
    @usableFromInline var nanosPerTick: UInt64 = 1000
    private(set) var timestampPrecision = TimestampPrecision.micro
    private(set) var snapLength: UInt32 = 0
    /// The largest captured length the fast path of `next()` accepts: the snap length if any, and never more than
    /// libpcap's maximum.
    @usableFromInline var capturedLengthLimit: UInt32 = 0
    private(set) var linkType = LinkType.ethernet
    @usableFromInline var recordsRead = 0

    var path: String { input.path }

    /// What a file whose first bytes are `header` (`count` of them, at least 4) is, by its magic number and, for
    /// classic pcap, its version and link type: ours to read (`true`), libpcap's (`false`: pcapng, and the classic
    /// formats before 2.4, whose records may have their two lengths in the other order, which libpcap undoes record
    /// by record, DG/UX's 543.0 and Kuznetzov's patched headers), or neither (an error).
    static func isOurs(header: UnsafeRawPointer, count: Int, path: String) throws(PcapError) -> Bool {
        let magic = header.loadUnaligned(as: UInt32.self)
        let swapped: Bool
        switch magic {
        case PcapFormat.pcapngMagic, PcapFormat.kuznetzovMagic, PcapFormat.kuznetzovMagic.byteSwapped:
            return false
        case PcapFormat.microMagic, PcapFormat.nanoMagic:
            swapped = false
        case PcapFormat.microMagic.byteSwapped, PcapFormat.nanoMagic.byteSwapped:
            swapped = true
        default:
            throw .fileHeader(path: path, offset: 0, reason: .notPcap(magic: UInt32(bigEndian: magic)))
        }
        guard count >= PcapFormat.fileHeaderSize else {
            throw .fileHeader(
                path: path, offset: 0,
                reason: .truncatedFileHeader(need: PcapFormat.fileHeaderSize, left: count))
        }
        var major = header.loadUnaligned(fromByteOffset: 4, as: UInt16.self)
        var minor = header.loadUnaligned(fromByteOffset: 6, as: UInt16.self)
        if swapped {
            major = major.byteSwapped
            minor = minor.byteSwapped
        }
        if (major == PcapFormat.versionMajor && minor < PcapFormat.versionMinor) || (major == 543 && minor == 0) {
            return false
        }
        guard major == PcapFormat.versionMajor, minor == PcapFormat.versionMinor else {
            throw .fileHeader(path: path, offset: 4, reason: .unsupportedVersion(major: major, minor: minor))
        }
        let linkType = Self.linkType(header, swapped: swapped)
        guard linkType.isReplayable else {
            throw .fileHeader(path: path, offset: 20, reason: .unsupportedLinkType(linkType))
        }
        return true
    }

    /// The link type of the file header at `header`: the low 26 bits of its field; the bits above may carry the
    /// length of an FCS the frames end with.
    private static func linkType(_ header: UnsafeRawPointer, swapped: Bool) -> LinkType {
        let field = header.loadUnaligned(fromByteOffset: 20, as: UInt32.self)
        return LinkType(fileValue: (swapped ? field.byteSwapped : field) & PcapFormat.linkTypeMask)
    }

    /// Reads the file header of `input`, a file `isOurs` accepted, at its start and fully buffered, and takes the
    /// input over.
    init(input: ReadBuffer) {
        self.input = input
        let header = input.current
        let magic = header.loadUnaligned(as: UInt32.self)
        swapped = magic == PcapFormat.microMagic.byteSwapped || magic == PcapFormat.nanoMagic.byteSwapped
        if field(header, 0) == PcapFormat.nanoMagic {
            timestampPrecision = .nano
            nanosPerTick = 1
        }
        snapLength = field(header, 16)
        capturedLengthLimit = PcapFormat.snapshotLength(snapLength)
        linkType = Self.linkType(header, swapped: swapped)
        self.input.position = PcapFormat.fileHeaderSize
    }

    deinit {
        input.close()
    }

    /// Returns the next record, or nil at a clean end of file.
    @inlinable @inline(__always)
    mutating func next() throws(PcapError) -> PcapRecord? {
        let available = input.available
        // The fast path reads files of this machine's byte order, nearly all of them; the others take nextSlowly.
        if available >= 16 && !swapped {  // 16: PcapFormat.recordHeaderSize (internal: not usable here)
            let header = input.current
            let capturedLength = header.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
            let recordSize = 16 &+ Int(capturedLength)
            if capturedLength <= capturedLengthLimit && available >= recordSize {
                let seconds = UInt64(header.loadUnaligned(fromByteOffset: 0, as: UInt32.self))
                let fraction = UInt64(header.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
                let record = PcapRecord(
                    timestampNanos: seconds &* 1_000_000_000 &+ fraction &* nanosPerTick,
                    capturedLength: Int(capturedLength),
                    originalLength: Int(header.loadUnaligned(fromByteOffset: 12, as: UInt32.self)),
                    bytes: UnsafeRawBufferPointer(start: header + 16, count: Int(capturedLength)),
                    index: recordsRead,
                    fileOffset: input.fileOffset
                )
                input.position &+= recordSize
                recordsRead &+= 1
                return record
            }
        }
        return try nextSlowly()
    }

    /// `next()` for every case its fast path leaves out: refills, the end of the file, malformed records and files
    /// of the other byte order.
    @usableFromInline
    mutating func nextSlowly() throws(PcapError) -> PcapRecord? {
        let headerSize = PcapFormat.recordHeaderSize
        if input.available < headerSize {
            let left = try refillForRecord(atLeast: headerSize)
            if left == 0 {
                return nil
            }
            if left < headerSize {
                throw recordError(.truncatedRecordHeader(need: headerSize, left: left))
            }
        }
        var header = input.current
        let capturedLength = field(header, 8)
        if capturedLength > PcapFormat.maximumCapturedLength {
            throw recordError(
                .capturedLengthAboveMaximum(
                    capturedLength: capturedLength,
                    maximum: PcapFormat.maximumCapturedLength
                )
            )
        }
        let recordSize = headerSize + Int(capturedLength)
        if input.available < recordSize {
            let left = try refillForRecord(atLeast: recordSize)
            if left < recordSize {
                throw recordError(.truncatedRecordData(need: Int(capturedLength), left: left - headerSize))
            }
            header = input.current
        }
        // At most (2^32 - 1) * 10^9 + (2^32 - 1) * 1000 < 2^64: out-of-range fractions (which libpcap accepts too)
        // just carry into the seconds, and the arithmetic cannot overflow.
        let seconds = UInt64(field(header, 0))
        let fraction = UInt64(field(header, 4))
        // A record longer than the snap length (a writer that did not cut it) is cut to it, as libpcap does: the
        // record is read whole, its first snap-length bytes are handed out and its original length stays.
        let kept = Int(min(capturedLength, capturedLengthLimit))
        let record = PcapRecord(
            timestampNanos: seconds &* PcapFormat.nanosPerSecond &+ fraction &* nanosPerTick,
            capturedLength: kept,
            originalLength: Int(field(header, 12)),
            bytes: UnsafeRawBufferPointer(start: header + headerSize, count: kept),
            index: recordsRead,
            fileOffset: input.fileOffset
        )
        input.position += recordSize
        recordsRead += 1
        return record
    }

    @inlinable @inline(__always)
    func field(_ header: UnsafeRawPointer, _ offset: Int) -> UInt32 {
        let raw = header.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
        return swapped ? raw.byteSwapped : raw
    }

    private func recordError(_ reason: PcapError.Reason) -> PcapError {
        .record(path: path, recordNumber: recordsRead + 1, offset: input.fileOffset, reason: reason)
    }

    private mutating func refillForRecord(atLeast count: Int) throws(PcapError) -> Int {
        do {
            return try input.refill(atLeast: count)
        } catch {
            throw recordError(.readFailed(error))
        }
    }
}
