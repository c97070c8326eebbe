import SystemPackage
import XDPEmuCore
import XDPEmuOS

/// Writes events as JSON Lines: one object per line with the tracepoint's name and fields and the virtual time.
/// Lines are formatted into a reused byte buffer (no String per event) and written in large blocks. The buffer
/// holds whole lines only, so a write that fails part way (a full disk) is cut back with ftruncate(2) to the end
/// of the last line written whole; later lines are counted as missing.
public final class EventLog {
    private var fd: FileDescriptor?
    private var buffer: [UInt8] = []
    public let path: String
    private var mapNames: [UInt32: String] = [:]
    /// Lines in `buffer`.
    private var bufferedLines = 0
    /// Bytes and lines on disk, all of them whole lines.
    private var fileSize = 0
    private var linesInFile = 0
    private var linesMissing = 0
    private var failure: String?
    /// Modern kernels' `xdp_devmap_xmit` has no map fields (the bulk queue is the device's, not a map entry's).
    private let devmapXmitHasMapFields: Bool
    /// Where lines also go while a control client follows the events (live mode).
    private let feed: EventFeed?
    /// Where in `buffer` the lines not yet shown to the feed start, and how many they are.
    private var feedStart = 0
    private var feedLines = 0

    /// - Parameters:
    ///   - path: the file to write; nil writes none (the lines only go to `feed`).
    ///   - semantics: the profile, which decides the fields of `xdp_devmap_xmit`.
    ///   - feed: also receives every line while it has subscribers.
    public init(
        path: String?, mapNames: [(id: UInt32, name: String)] = [], semantics: Semantics = .v4_18,
        feed: EventFeed? = nil
    ) throws(RuntimeError) {
        self.path = path ?? "(no file)"
        devmapXmitHasMapFields = semantics == .v4_18
        self.feed = feed
        if let path {
            do {
                fd = try createOutputFile(path)
            } catch {
                throw .failure("\(error)")
            }
        }
        buffer.reserveCapacity(1 << 20)
        for (id, name) in mapNames { self.mapNames[id] = name }
    }

    /// Whether the workers need to record events: a file is written, or a control client follows them.
    public var wantsEvents: Bool { fd != nil || feed?.hasSubscribers == true }

    deinit { _ = close() }

    /// Appends one core event.
    public func append(_ e: XDPEvent) {
        begin(time: e.time, name: e.kind.name)
        field("cpu", UInt64(e.cpu))
        switch e.kind {
        case .exception:
            field("prog_id", UInt64(e.programID))
            field("act", UInt64(e.action))
            field("ifindex", UInt64(e.ifindex))
        case .redirect, .redirectErr, .redirectMap, .redirectMapErr:
            field("prog_id", UInt64(e.programID))
            field("act", UInt64(e.action))
            field("ifindex", UInt64(e.ifindex))
            field("err", Int64(e.error))
            field("to_ifindex", UInt64(e.toIfindex))
            field("map_id", UInt64(e.mapID))
            field("map_index", UInt64(e.mapIndex))
        case .devmapXmit:
            if devmapXmitHasMapFields { field("map_id", UInt64(e.mapID)) }
            field("act", UInt64(e.action))
            if devmapXmitHasMapFields { field("map_index", UInt64(e.mapIndex)) }
            field("drops", Int64(e.drops))
            field("sent", Int64(e.sent))
            field("from_ifindex", UInt64(e.fromIfindex))
            field("to_ifindex", UInt64(e.toIfindex))
            field("err", Int64(e.error))
        case .drop:
            field("ifindex", UInt64(e.ifindex))
            field("reason", e.reason?.description ?? "unknown")
        }
        if e.frame != 0 { field("frame", e.frame) }
        end()
    }

    /// Appends what an eBPF program reported (`ebpf_fault`, `trace_printk`): string fields after the time.
    public func appendProgramMessage(time: Nanos, name: String, fields: [(String, String)]) {
        begin(time: time, name: name)
        for (key, value) in fields { field(key, value) }
        end()
    }

    /// Appends a control-plane event (a scheduled map operation and its result).
    public func appendMapOperation(
        time: Nanos, operation: String, map: String, mapID: UInt32, key: MapKey,
        ifindex: IfIndex?, result: String
    ) {
        begin(time: time, name: "map_" + operation)
        field("map", map)
        field("map_id", UInt64(mapID))
        field("key", UInt64(key.rawValue))
        if let ifindex { field("ifindex", UInt64(ifindex.rawValue)) }
        field("result", result)
        end()
    }

    /// Writes the buffered lines; throws (now and on every later call) once a write has failed.
    public func flush() throws(RuntimeError) {
        publishToFeed()
        if let fd, failure == nil, !buffer.isEmpty {
            write(to: fd)
        }
        linesMissing += failure == nil ? 0 : bufferedLines
        bufferedLines = 0
        buffer.removeAll(keepingCapacity: true)
        feedStart = 0
        if let failure { throw .failure("\(path): \(failure)") }
    }

    /// Flushes and closes the file (idempotent); nil when every line is in it, else what is missing.
    public func close() -> OutputFailure? {
        try? flush()
        if let fd {
            self.fd = nil
            do {
                try fd.close()
            } catch {
                failure = failure ?? "cannot close: \(error)"
            }
        }
        guard let failure else { return nil }
        return OutputFailure(path: path, error: failure, kept: linesInFile, missing: linesMissing, unit: "events")
    }

    private func write(to fd: FileDescriptor) {
        var done = 0
        while done < buffer.count {
            do {
                done += try buffer.withUnsafeBytes { bytes in
                    try fd.write(UnsafeRawBufferPointer(rebasing: bytes[done...]))
                }
            } catch {
                failure = "cannot write: \(error)"
                break
            }
        }
        guard failure != nil else {
            fileSize += buffer.count
            linesInFile += bufferedLines
            bufferedLines = 0
            return
        }
        // Keep the lines written whole: the file must end with a newline.
        let whole = buffer[..<done].lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0
        let kept = buffer[..<whole].reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
        _ = try? fd.resize(to: Int64(fileSize + whole))
        fileSize += whole
        linesInFile += kept
        bufferedLines -= kept
    }

    // MARK: Formatting

    private func begin(time: Nanos, name: String) {
        append("{\"time\":")
        appendNumber(time)
        append(",\"event\":\"")
        append(name)
        buffer.append(UInt8(ascii: "\""))
    }

    private func end() {
        append("}\n")
        bufferedLines &+= 1
        feedLines &+= 1
        if buffer.count >= 1 << 20 { try? flush() }
    }

    /// Shows the lines appended since the last call to the feed, if a client follows it. Call it after a drain.
    public func publishToFeed() {
        defer {
            feedStart = buffer.count
            feedLines = 0
        }
        guard let feed, feedLines > 0, feed.hasSubscribers else { return }
        feed.publish(buffer[feedStart...], count: feedLines)
    }

    private func field(_ name: String, _ value: UInt64) {
        key(name)
        appendNumber(value)
    }

    private func field(_ name: String, _ value: Int64) {
        key(name)
        if value < 0 {
            buffer.append(UInt8(ascii: "-"))
            appendNumber(value.magnitude)
        } else {
            appendNumber(UInt64(value))
        }
    }

    private func field(_ name: String, _ value: String) {
        key(name)
        buffer.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                buffer.append(UInt8(ascii: "\\"))
                buffer.append(byte)
            case 0..<0x20:
                append("\\u00")
                buffer.append(hexDigit(byte >> 4))
                buffer.append(hexDigit(byte & 15))
            default:
                buffer.append(byte)
            }
        }
        buffer.append(UInt8(ascii: "\""))
    }

    private func key(_ name: String) {
        append(",\"")
        append(name)
        append("\":")
    }

    private func append(_ text: String) { buffer.append(contentsOf: text.utf8) }

    private func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? UInt8(ascii: "0") + v : UInt8(ascii: "a") + v - 10 }

    private func appendNumber(_ value: UInt64) {
        if value < 10 {
            buffer.append(UInt8(ascii: "0") + UInt8(value))
            return
        }
        var digits:
            (
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
            ) =
                (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = value
        var count = 0
        withUnsafeMutableBytes(of: &digits) { raw in
            while n > 0 {
                raw[count] = UInt8(ascii: "0") + UInt8(n % 10)
                n /= 10
                count += 1
            }
            for i in stride(from: count - 1, through: 0, by: -1) { buffer.append(raw[i]) }
        }
    }
}
