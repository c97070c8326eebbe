import Foundation
#if canImport(Glibc)
import Glibc
#endif
import XDPEmuPcap

/// The frames of scripts/make-bench-trace.py, built in memory: Ethernet + IPv4/UDP from 02:00:00:00:0a:01 to
/// 02:00:00:00:0a:02 over 64 flows (every eighth IPv6), sizes cycling through 64, 128, 256, 512, 576, 1024, 1514,
/// 60, 90, 800 bytes (mean 502.4), timestamps from 1,700,000,000 s advancing 1 µs per frame. The sequence repeats
/// every 320 frames, so only those 320 are kept; record `i` is `templates[i % 320]` at `timestamp(i)`. Written with
/// XDPEmuPcap's writer, so the file differs from the script's only in its magic (nanosecond) and the IP/UDP
/// checksums, which both leave 0.
public struct BenchTrace: Sendable {
    public static let sizes = [64, 128, 256, 512, 576, 1024, 1514, 60, 90, 800]
    public static let flows = 64
    public static let startNanos: UInt64 = 1_700_000_000 * 1_000_000_000

    /// One period of frames (lcm(flows, sizes) = 320).
    public let templates: [[UInt8]]

    public init() {
        let period = 320
        templates = (0..<period).map { Self.frame(flow: $0 % Self.flows, size: Self.sizes[$0 % Self.sizes.count]) }
    }

    @inline(__always)
    public static func timestamp(_ index: Int) -> UInt64 { startNanos + UInt64(index) * 1000 }

    /// Bytes of a classic pcap file holding the first `frames` records: file header plus record headers and data.
    public func fileSize(frames: Int) -> Int {
        let perPeriod = templates.reduce(0) { $0 + 16 + $1.count }
        let whole = frames / templates.count
        let rest = templates[..<(frames % templates.count)].reduce(0) { $0 + 16 + $1.count }
        return 24 + whole * perPeriod + rest
    }

    /// Writes `frames` records to `path` with XDPEmuPcap's writer (nanosecond pcap, snap length 262144).
    public func write(frames: Int, to path: String) throws(PcapError) {
        let writer = try PcapWriter(path: path)
        for i in 0..<frames {
            templates[i % templates.count].withUnsafeBytes { bytes in
                writer.write(timestampNanos: Self.timestamp(i), bytes: bytes, originalLength: bytes.count)
            }
        }
        try writer.close()
    }

    /// Writes `frames` records to `path` as pcapng, the way dumpcap does: a Section Header Block, one Interface
    /// Description Block (Ethernet, snap length 262144, if_tsresol 10^-9), an Enhanced Packet Block per frame.
    /// Returns the sum of the frames' lengths.
    @discardableResult
    public func writePcapng(frames: Int, to path: String) throws(BenchError) -> Int {
        var out: [UInt8] = []
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { out += $0 } }
        u32(0x0a0d_0d0a); u32(28); u32(0x1a2b_3c4d); u16(1); u16(0); u32(0xffff_ffff); u32(0xffff_ffff); u32(28)
        u32(1); u32(32); u16(1); u16(0); u32(262_144); u16(9); u16(1); out += [9, 0, 0, 0]; u32(0); u32(32)
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw BenchError("open \(path): errno \(errno)") }
        defer { close(fd) }
        func flush() throws(BenchError) {
            var done = 0
            while done < out.count {
                let written = out.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
                guard written > 0 else { throw BenchError("write \(path): errno \(errno)") }
                done += written
            }
            out.removeAll(keepingCapacity: true)
        }
        var bytes = 0
        for i in 0..<frames {
            let frame = templates[i % templates.count]
            let padded = (frame.count + 3) & ~3
            let time = Self.timestamp(i)
            u32(6); u32(UInt32(32 + padded)); u32(0); u32(UInt32(time >> 32)); u32(UInt32(truncatingIfNeeded: time))
            u32(UInt32(frame.count)); u32(UInt32(frame.count))
            out += frame
            out += [UInt8](repeating: 0, count: padded - frame.count)
            u32(UInt32(32 + padded))
            bytes += frame.count
            if out.count >= 1 << 20 { try flush() }
        }
        try flush()
        return bytes
    }

    static func frame(flow: Int, size: Int) -> [UInt8] {
        let macs: [UInt8] = [0x02, 0, 0, 0, 0x0a, 0x02, 0x02, 0, 0, 0, 0x0a, 0x01]
        let sport = UInt16(40000 + flow)
        let dport = UInt16(7000 + flow % 7)
        func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
        if flow % 8 == 7 {
            let size = max(size, 14 + 40 + 8)
            let payload = size - 14 - 40 - 8
            var f = macs + [0x86, 0xdd]
            f += [0x60, 0, 0, 0] + be16(UInt16(8 + payload)) + [17, 64]
            f += [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
            f += [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0] + be16(UInt16(flow))
            f += be16(sport) + be16(dport) + be16(UInt16(8 + payload)) + [0, 0]
            return f + [UInt8](repeating: 0, count: payload)
        }
        let size = max(size, 14 + 20 + 8)
        let payload = size - 14 - 20 - 8
        var f = macs + [0x08, 0x00]
        f += [0x45, 0] + be16(UInt16(20 + 8 + payload)) + be16(UInt16(flow)) + [0x40, 0, 64, 17, 0, 0]
        f += [10, 90, 0, 1, 10, 91, UInt8(flow >> 8 & 0xff), UInt8(flow & 0xff)]
        f += be16(sport) + be16(dport) + be16(UInt16(8 + payload)) + [0, 0]
        return f + [UInt8](repeating: 0, count: payload)
    }
}

/// A private directory on tmpfs (/dev/shm, else $TMPDIR, else /tmp) for traces and outputs; `remove()` deletes it.
public struct ScratchDirectory: Sendable {
    public let path: String

    public init(_ name: String) throws(BenchError) {
        let base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp")
        var template = Array("\(base)/xdpemu-\(name).XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw BenchError("mkdtemp in \(base): errno \(errno)")
        }
        path = String(cString: made)
    }

    /// Deletes the directory and everything in it.
    public func remove() { Self.removeTree(path) }

    /// Deletes `path` and everything under it (FileManager: Glibc's Swift module does not import nftw).
    public static func removeTree(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// A failure in a benchmark's setup or check, with a message.
public struct BenchError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
