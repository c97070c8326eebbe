@preconcurrency import CPcap
import Testing
import XDPEmuPcap

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// Shared helpers: a temporary directory, whole-file I/O, byte-exact builders for classic pcap and pcapng files,
// libpcap as a reference reader and writer, and a seeded PRNG. Plain Glibc, so the tests check the module
// against the C library rather than against itself.

/// A directory made with mkdtemp(3) under /tmp, removed with its files when released.
final class TemporaryDirectory {
    let path: String

    init() {
        var template = Array("/tmp/xdpemu-pcap-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed: errno \(errno)")
        path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    func file(_ name: String) -> String { "\(path)/\(name)" }

    deinit {
        // The tests only create plain files directly inside the directory.
        if let directory = opendir(path) {
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
                }
                if name != "." && name != ".." {
                    unlink("\(path)/\(name)")
                }
            }
            closedir(directory)
        }
        rmdir(path)
    }
}

/// Writes `bytes` to a new file with open(2), as the module does.
func writeFile(_ path: String, _ bytes: [UInt8]) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    precondition(fd >= 0, "open \(path): errno \(errno)")
    defer { close(fd) }
    bytes.withUnsafeBytes { raw in
        var done = 0
        while done < raw.count {
            let written = Glibc.write(fd, raw.baseAddress! + done, raw.count - done)
            precondition(written > 0, "write \(path): errno \(errno)")
            done += written
        }
    }
}

func readFile(_ path: String) -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    precondition(fd >= 0, "open \(path): errno \(errno)")
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let got = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
        precondition(got >= 0, "read \(path): errno \(errno)")
        if got == 0 { return bytes }
        bytes += chunk[..<got]
    }
}

func fileSize(_ path: String) -> Int {
    var info = stat()
    precondition(stat(path, &info) == 0, "stat \(path): errno \(errno)")
    return Int(info.st_size)
}

/// A frame to write or expect back.
struct Frame: Equatable, CustomStringConvertible {
    var timestampNanos: UInt64
    var bytes: [UInt8]
    var originalLength: Int

    var description: String { "Frame(t: \(timestampNanos), \(bytes.count) bytes, original \(originalLength))" }

    /// A frame of `length` bytes whose contents depend on `seed`, so misplaced bytes show up.
    static func make(_ seed: Int, length: Int, timestampNanos: UInt64? = nil) -> Frame {
        let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed &* 7 &+ 1) }
        let time = timestampNanos ?? (1_700_000_000_000_000_000 + UInt64(seed) * 1_234_567)
        return Frame(timestampNanos: time, bytes: bytes, originalLength: length)
    }
}

/// A record as returned by a reader, copied out of the reader's buffer.
struct ReadRecord: Equatable, CustomStringConvertible {
    var timestampNanos: UInt64
    var capturedLength: Int
    var originalLength: Int
    var bytes: [UInt8]
    var index: Int
    var fileOffset: Int64

    init(_ record: PcapRecord) {
        timestampNanos = record.timestampNanos
        capturedLength = record.capturedLength
        originalLength = record.originalLength
        bytes = Array(record.bytes)
        index = record.index
        fileOffset = record.fileOffset
    }

    init(timestampNanos: UInt64, bytes: [UInt8], originalLength: Int, index: Int, fileOffset: Int64) {
        self.timestampNanos = timestampNanos
        capturedLength = bytes.count
        self.originalLength = originalLength
        self.bytes = bytes
        self.index = index
        self.fileOffset = fileOffset
    }

    var frame: Frame { Frame(timestampNanos: timestampNanos, bytes: bytes, originalLength: originalLength) }

    var description: String {
        "Record #\(index) @\(fileOffset) t: \(timestampNanos), \(capturedLength)/\(originalLength) bytes"
    }
}

/// Reads every record with our reader; stops at the first error and returns it along with the records before it.
func readWithOurReader(_ path: String) -> (records: [ReadRecord], error: PcapError?) {
    var records: [ReadRecord] = []
    do {
        let reader = try PcapReader(path: path)
        while let record = try reader.next() {
            records.append(ReadRecord(record))
        }
        #expect(reader.recordsRead == records.count)
        return (records, nil)
    } catch {
        return (records, error)
    }
}

/// Reads every record with our reader, failing the test on any error.
func readAllWithOurReader(_ path: String, sourceLocation: SourceLocation = #_sourceLocation) -> [ReadRecord] {
    let (records, error) = readWithOurReader(path)
    #expect(error == nil, "\(error.map { "\($0)" } ?? "")", sourceLocation: sourceLocation)
    return records
}

/// Reads every record with libpcap (nanosecond precision); nil plus libpcap's message if it refuses the file.
func readWithLibpcap(_ path: String) -> (records: [Frame], error: String?) {
    var message = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
    guard let handle = pcap_open_offline_with_tstamp_precision(path, UInt32(PCAP_TSTAMP_PRECISION_NANO), &message)
    else {
        return ([], message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
    }
    defer { pcap_close(handle) }
    // Classic microsecond files (and Kuznetzov's) have their fraction scaled up to nanoseconds by libpcap.
    let magic = Array(readFile(path).prefix(4))
    let microMagics: [[UInt8]] = [
        [0xd4, 0xc3, 0xb2, 0xa1], [0xa1, 0xb2, 0xc3, 0xd4], [0x34, 0xcd, 0xb2, 0xa1],
        [0xa1, 0xb2, 0xcd, 0x34],
    ]
    let fractionScale = microMagics.contains(magic) ? 1000 : 1
    let pcapng = magic == [0x0a, 0x0d, 0x0d, 0x0a]
    var frames: [Frame] = []
    while true {
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        let status = pcap_next_ex(handle, &header, &data)
        if status == PCAP_ERROR_BREAK { return (frames, nil) }
        guard status == 1, let header else { return (frames, String(cString: pcap_geterr(handle))) }
        let length = Int(header.pointee.caplen)
        let bytes = length == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: length))
        // libpcap 1.10 sign-extends the 32-bit seconds and fraction of classic pcap (so 2038 and later come out
        // negative, and so does a fraction of 2^31 or more; a microsecond one is then multiplied by 1000); the
        // format's definition, which our reader follows, says unsigned.
        let stamp = header.pointee.ts
        let fraction = UInt64(UInt32(truncatingIfNeeded: stamp.tv_usec / fractionScale)) * UInt64(fractionScale)
        var seconds = UInt64(UInt32(truncatingIfNeeded: stamp.tv_sec))
        if pcapng {
            // pcapng seconds are 64-bit; PcapReader refuses a time before 1970 or beyond 64 bits of nanoseconds.
            let (nanos, overflow) = UInt64(clamping: stamp.tv_sec).multipliedReportingOverflow(by: 1_000_000_000)
            guard stamp.tv_sec >= 0, !overflow, !nanos.addingReportingOverflow(fraction).overflow else {
                return (frames, "timestamp out of range")
            }
            seconds = UInt64(stamp.tv_sec)
        }
        let time = seconds &* 1_000_000_000 &+ fraction
        frames.append(Frame(timestampNanos: time, bytes: bytes, originalLength: Int(header.pointee.len)))
    }
}

/// The reference writer: libpcap's own pcap_dump on a dead nanosecond Ethernet handle.
func writeWithLibpcap(_ path: String, snapLength: UInt32, frames: [Frame]) {
    guard
        let handle = pcap_open_dead_with_tstamp_precision(
            DLT_EN10MB,
            Int32(snapLength),
            UInt32(PCAP_TSTAMP_PRECISION_NANO)
        )
    else {
        preconditionFailure("pcap_open_dead failed")
    }
    defer { pcap_close(handle) }
    guard let dumper = pcap_dump_open(handle, path) else {
        preconditionFailure("pcap_dump_open: \(String(cString: pcap_geterr(handle)))")
    }
    defer { pcap_dump_close(dumper) }
    for frame in frames {
        var header = pcap_pkthdr()
        header.ts.tv_sec = Int(frame.timestampNanos / 1_000_000_000)
        header.ts.tv_usec = Int(frame.timestampNanos % 1_000_000_000)  // nanoseconds on a nanosecond handle
        header.caplen = UInt32(min(frame.bytes.count, Int(snapLength)))
        header.len = UInt32(frame.originalLength)
        // An empty array may have no base address; pcap_dump reads nothing when caplen is 0 but wants a pointer.
        let data = frame.bytes.isEmpty ? [0] : frame.bytes
        data.withUnsafeBufferPointer { pcap_dump(UnsafeMutablePointer<UInt8>(dumper), &header, $0.baseAddress!) }
    }
}

/// Writes frames with our writer and closes it.
func writeWithOurWriter(
    _ path: String,
    snapLength: UInt32 = 262_144,
    bufferSize: Int = 1 << 20,
    frames: [Frame]
) throws(PcapError) {
    let writer = try PcapWriter(path: path, snapLength: snapLength, bufferSize: bufferSize)
    for frame in frames {
        frame.bytes.withUnsafeBytes {
            writer.write(timestampNanos: frame.timestampNanos, bytes: $0, originalLength: frame.originalLength)
        }
    }
    try writer.close()
}

/// Little helper for laying out fields in either byte order.
struct ByteBuilder {
    var bigEndian: Bool
    var bytes: [UInt8] = []

    mutating func u8(_ value: UInt8) { bytes.append(value) }

    mutating func u16(_ value: UInt16) {
        let ordered = bigEndian ? value.bigEndian : value.littleEndian
        withUnsafeBytes(of: ordered) { bytes += $0 }
    }

    mutating func u32(_ value: UInt32) {
        let ordered = bigEndian ? value.bigEndian : value.littleEndian
        withUnsafeBytes(of: ordered) { bytes += $0 }
    }

    mutating func raw(_ data: [UInt8]) { bytes += data }

    /// Pads with zeros to a multiple of 4 bytes, as pcapng requires.
    mutating func pad4() {
        while bytes.count % 4 != 0 { bytes.append(0) }
    }
}

/// A classic pcap file built byte by byte.
struct ClassicPcapFile {
    var builder: ByteBuilder
    var nano: Bool

    init(
        bigEndian: Bool = false,
        nano: Bool = false,
        versionMajor: UInt16 = 2,
        versionMinor: UInt16 = 4,
        snapLength: UInt32 = 65_535,
        linkType: UInt32 = 1
    ) {
        builder = ByteBuilder(bigEndian: bigEndian)
        self.nano = nano
        builder.u32(nano ? 0xa1b2_3c4d : 0xa1b2_c3d4)
        builder.u16(versionMajor)
        builder.u16(versionMinor)
        builder.u32(0)  // thiszone
        builder.u32(0)  // sigfigs
        builder.u32(snapLength)
        builder.u32(linkType)
    }

    var bytes: [UInt8] { builder.bytes }
    var count: Int { builder.bytes.count }

    /// Appends a record with the fields exactly as given (which may be inconsistent on purpose).
    mutating func rawRecord(
        seconds: UInt32,
        fraction: UInt32,
        capturedLength: UInt32,
        originalLength: UInt32,
        data: [UInt8]
    ) {
        builder.u32(seconds)
        builder.u32(fraction)
        builder.u32(capturedLength)
        builder.u32(originalLength)
        builder.raw(data)
    }

    /// Appends a well-formed record for `frame`, at the file's precision (micro truncates).
    mutating func record(_ frame: Frame) {
        let seconds = UInt32(frame.timestampNanos / 1_000_000_000)
        let nanos = UInt32(frame.timestampNanos % 1_000_000_000)
        rawRecord(
            seconds: seconds,
            fraction: nano ? nanos : nanos / 1000,
            capturedLength: UInt32(frame.bytes.count),
            originalLength: UInt32(frame.originalLength),
            data: frame.bytes
        )
    }
}

/// A pcapng file built byte by byte: one section, Ethernet interfaces, Enhanced Packet Blocks.
struct PcapngFile {
    var builder: ByteBuilder
    /// Units per second of the interfaces' timestamps (pcapng's default is 10^6).
    var unitsPerSecond: UInt64 = 1_000_000

    init(bigEndian: Bool = false) {
        builder = ByteBuilder(bigEndian: bigEndian)
        block(type: 0x0a0d_0d0a) { body in
            body.u32(0x1a2b_3c4d)  // byte-order magic
            body.u16(1)  // major version
            body.u16(0)  // minor version
            body.u32(0xffff_ffff)  // section length: unknown (-1)
            body.u32(0xffff_ffff)
        }
    }

    var bytes: [UInt8] { builder.bytes }
    var count: Int { builder.bytes.count }

    /// Appends an Interface Description Block; `decimalResolution` adds an if_tsresol option of 10^-n seconds.
    mutating func interface(linkType: UInt16 = 1, snapLength: UInt32 = 0, decimalResolution: UInt8? = nil) {
        block(type: 1) { body in
            body.u16(linkType)
            body.u16(0)
            body.u32(snapLength)
            if let decimalResolution {
                body.u16(9)  // if_tsresol
                body.u16(1)
                body.u8(decimalResolution)
                body.pad4()
                body.u16(0)  // opt_endofopt
                body.u16(0)
            }
        }
        if let decimalResolution {
            var units: UInt64 = 1
            for _ in 0..<decimalResolution { units *= 10 }
            unitsPerSecond = units
        }
    }

    /// Appends an Enhanced Packet Block for `frame` on interface 0, at the last interface's resolution.
    mutating func packet(_ frame: Frame) {
        packet(frame, interface: 0, units: frame.timestampNanos / (1_000_000_000 / unitsPerSecond))
    }

    /// Appends an Enhanced Packet Block for `frame` on interface `interface`, its time stamp given in units.
    mutating func packet(_ frame: Frame, interface: UInt32, units: UInt64) {
        block(type: 6) { body in
            body.u32(interface)
            body.u32(UInt32(units >> 32))
            body.u32(UInt32(truncatingIfNeeded: units))
            body.u32(UInt32(frame.bytes.count))
            body.u32(UInt32(frame.originalLength))
            body.raw(frame.bytes)
            body.pad4()
        }
    }

    /// Appends an Interface Description Block with the given options, each a code and its value (padded here).
    mutating func interface(linkType: UInt16 = 1, snapLength: UInt32 = 0, options: [(UInt16, [UInt8])]) {
        block(type: 1) { body in
            body.u16(linkType)
            body.u16(0)
            body.u32(snapLength)
            for (code, value) in options {
                body.u16(code)
                body.u16(UInt16(value.count))
                body.raw(value)
                body.pad4()
            }
        }
    }

    /// Appends a Simple Packet Block for `frame` (no interface, no time stamp; the length of the frame only).
    mutating func simplePacket(_ frame: Frame) {
        block(type: 3) { body in
            body.u32(UInt32(frame.originalLength))
            body.raw(frame.bytes)
            body.pad4()
        }
    }

    /// Appends a block of `type` with `payload` (padded), e.g. statistics (5) or name resolution (4).
    mutating func other(type: UInt32, _ payload: [UInt8]) {
        block(type: type) { body in
            body.raw(payload)
            body.pad4()
        }
    }

    mutating func block(type: UInt32, _ fill: (inout ByteBuilder) -> Void) {
        var body = ByteBuilder(bigEndian: builder.bigEndian)
        fill(&body)
        let total = UInt32(12 + body.bytes.count)
        builder.u32(type)
        builder.u32(total)
        builder.raw(body.bytes)
        builder.u32(total)
    }
}
