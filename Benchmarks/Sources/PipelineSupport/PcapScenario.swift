import CBenchPcap
#if canImport(Glibc)
import Glibc
#endif
import XDPEmuPcap

/// The pcap benchmarks' workload: a 1,000,000-frame trace of `BenchTrace` on tmpfs (~518 MB; as pcapng, ~534 MB),
/// written once at setup, read with `PcapReader` or libpcap; and the same records written with `PcapWriter` or
/// libpcap's `pcap_dump`.
public final class PcapScenario {
    public static let frames = 1_000_000
    public let trace = BenchTrace()
    public let directory: ScratchDirectory
    public let tracePath: String
    /// Size of a classic pcap file holding the `frames` records (the trace unless `pcapng`, and what every writer
    /// must produce).
    public let fileSize: Int
    /// The sum of the frames' lengths.
    public let frameBytes: Int

    public init(pcapng: Bool = false) throws {
        directory = try ScratchDirectory("pipebench-pcap")
        tracePath = directory.path + (pcapng ? "/trace.pcapng" : "/trace.pcap")
        fileSize = trace.fileSize(frames: Self.frames)
        frameBytes = fileSize - 24 - 16 * Self.frames
        do {
            if pcapng {
                try trace.writePcapng(frames: Self.frames, to: tracePath)
            } else {
                try trace.write(frames: Self.frames, to: tracePath)
            }
        } catch {
            directory.remove()
            throw error
        }
    }

    deinit { directory.remove() }

    /// Reads every record; returns the count and the sum of captured lengths (so the data is used).
    @inline(never)
    public static func readAll(_ reader: PcapReader) throws(PcapError) -> (records: Int, bytes: Int) {
        var records = 0
        var bytes = 0
        while let record = try reader.next() {
            records &+= 1
            bytes &+= record.capturedLength
        }
        return (records, bytes)
    }

    /// Writes the trace's records to `writer` and flushes (the file stays open).
    @inline(never)
    public func writeAll(_ writer: PcapWriter) throws(PcapError) {
        let templates = trace.templates
        let period = templates.count
        var t = 0
        for i in 0..<Self.frames {
            templates[t].withUnsafeBytes { bytes in
                writer.write(timestampNanos: BenchTrace.timestamp(i), bytes: bytes, originalLength: bytes.count)
            }
            t = t + 1 == period ? 0 : t + 1
        }
        try writer.flush()
    }

    /// The same records through libpcap's `pcap_dump` (stdio-buffered, flushed before returning).
    @inline(never)
    public func writeAllWithLibpcap(_ dumper: OpaquePointer) {
        let templates = trace.templates
        let period = templates.count
        var t = 0
        for i in 0..<Self.frames {
            templates[t].withUnsafeBufferPointer { bytes in
                bench_pcap_dump(dumper, BenchTrace.timestamp(i), bytes.baseAddress, UInt32(bytes.count))
            }
            t = t + 1 == period ? 0 : t + 1
        }
    }

    /// nil if `path` has the expected size, else a message.
    public func checkOutput(_ path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return "\(path): cannot stat (errno \(errno))" }
        return Int(info.st_size) == fileSize ? nil : "\(path): \(info.st_size) bytes, expected \(fileSize)"
    }
}
