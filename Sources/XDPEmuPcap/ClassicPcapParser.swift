import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// Our own classic pcap parser.
//
// The file is read in large chunks into one buffer that lives as long as the reader. A record is handed out as a
// pointer into that buffer, so returning it costs a few loads and compares. When a record straddles the end of the
// buffered bytes, the unconsumed tail is moved to the front and the buffer refilled; since the largest record
// (16 + 262144 bytes) is much smaller than the buffer, a whole record always fits after that. The move invalidates
// the previous record's bytes, which is why they are only promised until the next call.
//
// Every length is checked before it is used, and each record consumes at least 16 bytes, so no input can make the
// parser trap or loop.
//
// The parser is a noncopyable struct that PcapReader keeps behind a pointer: calling a method on a class instance
// held by another object costs a retain and a release per record, more than the parsing itself.
//
// `next()` is @inlinable, so that a replay's read loop compiles it in place: its fast path (a whole record already
// buffered, within the length limits) is a handful of loads and compares, and the record's unused fields are never
// computed. Everything else (refills, end of file, every error) is the out-of-line `nextSlowly()`, which checks
// the record again from the start.

/// The state of one classic pcap file being read. Owns the file descriptor and the buffer.
@usableFromInline
struct ClassicPcapParser: ~Copyable {
    static let bufferSize = 1 << 20

    let path: String
    private let fd: FileDescriptor
    @usableFromInline let buffer: UnsafeMutableRawBufferPointer
    /// The first unconsumed byte in `buffer`.
    @usableFromInline var position = 0
    /// One past the last valid byte in `buffer`.
    @usableFromInline var end = 0
    /// The file offset of `buffer[0]`.
    @usableFromInline var bufferOffset: Int64 = 0
    private var atEndOfFile = false

    /// Whether the file was written on a machine of the other byte order.
    @usableFromInline var swapped = false
    @usableFromInline var nanosPerTick: UInt64 = 1000
    private(set) var timestampPrecision = TimestampPrecision.micro
    private(set) var snapLength: UInt32 = 0
    /// The largest captured length the fast path of `next()` accepts: the snap length if any, and never more than
    /// libpcap's maximum.
    @usableFromInline var capturedLengthLimit: UInt32 = 0
    private(set) var linkType: UInt32 = 0
    @usableFromInline var recordsRead = 0

    /// Opens `path` and reads its file header; returns nil, having closed the file again, if it is a file for
    /// libpcap (pcapng, or classic pcap in a format older than 2.4).
    static func open(path: String) throws(PcapError) -> ClassicPcapParser? {
        let fd: FileDescriptor
        do {
            fd = try systemCall { try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec]) }
        } catch {
            throw .cannotOpen(path: path, errno: error)
        }
        var parser = ClassicPcapParser(path: path, fd: fd)
        guard try parser.readFileHeader() else {
            return nil
        }
        return parser
    }

    private init(path: String, fd: FileDescriptor) {
        self.path = path
        self.fd = fd
        buffer = .allocate(byteCount: Self.bufferSize, alignment: 16)
    }

    deinit {
        buffer.deallocate()
        // Nothing useful can be done about a failed close of a file we only read.
        try? fd.close()
    }

    /// Parses the file header; returns false if the file is pcapng or an older classic format instead.
    private mutating func readFileHeader() throws(PcapError) -> Bool {
        let available: Int
        do {
            available = try refill(atLeast: PcapFormat.fileHeaderSize)
        } catch {
            throw .fileHeader(path: path, offset: 0, reason: .readFailed(error))
        }
        let truncated = PcapError.fileHeader(
            path: path,
            offset: 0,
            reason: .truncatedFileHeader(need: PcapFormat.fileHeaderSize, left: available)
        )
        guard available >= 4 else { throw truncated }
        let header = UnsafeRawPointer(buffer.baseAddress!)
        let magic = header.loadUnaligned(as: UInt32.self)
        switch magic {
        case PcapFormat.pcapngMagic, PcapFormat.kuznetzovMagic, PcapFormat.kuznetzovMagic.byteSwapped:
            return false
        case PcapFormat.microMagic, PcapFormat.nanoMagic:
            swapped = false
        case PcapFormat.microMagic.byteSwapped, PcapFormat.nanoMagic.byteSwapped:
            swapped = true
        default:
            let firstBytes = UInt32(bigEndian: magic)
            throw .fileHeader(path: path, offset: 0, reason: .notPcap(magic: firstBytes))
        }
        guard available >= PcapFormat.fileHeaderSize else { throw truncated }

        if field(header, 0) == PcapFormat.nanoMagic {
            timestampPrecision = .nano
            nanosPerTick = 1
        }
        var major = header.loadUnaligned(fromByteOffset: 4, as: UInt16.self)
        var minor = header.loadUnaligned(fromByteOffset: 6, as: UInt16.self)
        if swapped {
            major = major.byteSwapped
            minor = minor.byteSwapped
        }
        if (major == PcapFormat.versionMajor && minor < PcapFormat.versionMinor) || (major == 543 && minor == 0) {
            // Versions before 2.4 (and DG/UX's 543.0) may have a record's two lengths in the other order, which
            // libpcap undoes record by record; rare enough to leave to it.
            return false
        }
        guard major == PcapFormat.versionMajor, minor == PcapFormat.versionMinor else {
            throw .fileHeader(path: path, offset: 4, reason: .unsupportedVersion(major: major, minor: minor))
        }
        snapLength = field(header, 16)
        // libpcap's snapshot length: the file's, or its maximum when the file's is 0 or larger.
        capturedLengthLimit = snapLength > 0 ? min(snapLength, PcapFormat.maximumCapturedLength)
            : PcapFormat.maximumCapturedLength
        // The link type is the low 26 bits; the bits above may carry the length of an FCS the frames end with.
        linkType = field(header, 20) & PcapFormat.linkTypeMask
        guard linkType == PcapFormat.ethernetLinkType else {
            throw .fileHeader(path: path, offset: 20, reason: .notEthernet(linkType: linkType))
        }
        position = PcapFormat.fileHeaderSize
        return true
    }

    /// Returns the next record, or nil at a clean end of file.
    @inlinable @inline(__always)
    mutating func next() throws(PcapError) -> PcapRecord? {
        let available = end &- position
        if available >= 16 {  // PcapFormat.recordHeaderSize (internal: not usable here)
            let header = UnsafeRawPointer(buffer.baseAddress.unsafelyUnwrapped) + position
            let capturedLength = field(header, 8)
            let recordSize = 16 &+ Int(capturedLength)
            if capturedLength <= capturedLengthLimit && available >= recordSize {
                let seconds = UInt64(field(header, 0))
                let fraction = UInt64(field(header, 4))
                let record = PcapRecord(
                    timestampNanos: seconds &* 1_000_000_000 &+ fraction &* nanosPerTick,
                    capturedLength: Int(capturedLength),
                    originalLength: Int(field(header, 12)),
                    bytes: UnsafeRawBufferPointer(start: header + 16, count: Int(capturedLength)),
                    index: recordsRead,
                    fileOffset: bufferOffset &+ Int64(position)
                )
                position &+= recordSize
                recordsRead &+= 1
                return record
            }
        }
        return try nextSlowly()
    }

    /// `next()` for every case its fast path leaves out: refills, the end of the file and malformed records.
    @usableFromInline
    mutating func nextSlowly() throws(PcapError) -> PcapRecord? {
        let headerSize = PcapFormat.recordHeaderSize
        if end - position < headerSize {
            let left = try refillForRecord(atLeast: headerSize)
            if left == 0 {
                return nil
            }
            if left < headerSize {
                throw recordError(.truncatedRecordHeader(need: headerSize, left: left))
            }
        }
        var header = UnsafeRawPointer(buffer.baseAddress!) + position
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
        if end - position < recordSize {
            let left = try refillForRecord(atLeast: recordSize)
            if left < recordSize {
                throw recordError(.truncatedRecordData(need: Int(capturedLength), left: left - headerSize))
            }
            header = UnsafeRawPointer(buffer.baseAddress!) + position
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
            fileOffset: bufferOffset + Int64(position)
        )
        position += recordSize
        recordsRead += 1
        return record
    }

    @inlinable @inline(__always)
    func field(_ header: UnsafeRawPointer, _ offset: Int) -> UInt32 {
        let raw = header.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
        return swapped ? raw.byteSwapped : raw
    }

    private func recordError(_ reason: PcapError.Reason) -> PcapError {
        .record(path: path, recordNumber: recordsRead + 1, offset: bufferOffset + Int64(position), reason: reason)
    }

    private mutating func refillForRecord(atLeast count: Int) throws(PcapError) -> Int {
        do {
            return try refill(atLeast: count)
        } catch {
            throw recordError(.readFailed(error))
        }
    }

    /// Makes at least `count` unconsumed bytes available, unless the file ends first, and returns how many are.
    ///
    /// Moves the unconsumed tail to the front of the buffer, which invalidates pointers into it.
    private mutating func refill(atLeast count: Int) throws(Errno) -> Int {
        precondition(count <= buffer.count, "a pcap record always fits in the read buffer")
        if end - position >= count || atEndOfFile {
            return end - position
        }
        let base = buffer.baseAddress!
        let left = end - position
        if position > 0 {
            if left > 0 {
                memmove(base, base + position, left)
            }
            bufferOffset += Int64(position)
            position = 0
            end = left
        }
        while end < count && !atEndOfFile {
            let free = UnsafeMutableRawBufferPointer(rebasing: buffer[end...])
            let got = try systemCall { try fd.read(into: free) }
            if got == 0 {
                atEndOfFile = true
            } else {
                end += got
            }
        }
        return end - position
    }
}
