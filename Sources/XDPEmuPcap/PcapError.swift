import SystemPackage

/// Why reading or writing a capture file failed.
///
/// Reader errors name the file, the record (1-based, as a person counts) and the byte offset where the problem
/// starts, so a user can open the file in a hex editor or cut it with `dd` at the right place.
public enum PcapError: Error, CustomStringConvertible, Equatable, Sendable {
    /// open(2) failed.
    case cannotOpen(path: String, errno: Errno)
    /// The file header is unusable (for pcapng: the blocks read when the file is opened, up to the first interface).
    /// `offset` is where the problem starts (-1 only if the file could not be read to find it); `block` is the
    /// 1-based number of the pcapng block at that offset.
    case fileHeader(path: String, offset: Int64, block: Int? = nil, reason: Reason)
    /// Record `recordNumber` (1-based) is malformed or could not be read. `offset` is the byte offset of its record
    /// header (for pcapng, of the first block read for it, which is block number `block`), or -1 when unknown.
    case record(path: String, recordNumber: Int, offset: Int64, block: Int? = nil, reason: Reason)
    /// write(2) failed. `PcapWriter` cuts the file back to its last whole record and drops every later record.
    case cannotWrite(path: String, errno: Errno)
    /// close(2) failed.
    case cannotClose(path: String, errno: Errno)

    /// What exactly is wrong.
    public enum Reason: Equatable, Sendable, CustomStringConvertible {
        /// read(2) failed.
        case readFailed(Errno)
        /// The first four bytes are neither a classic pcap nor a pcapng magic number. `magic` holds them in file
        /// order, most significant first, as a hex dump shows them.
        case notPcap(magic: UInt32)
        /// The file ends inside its 24-byte header.
        case truncatedFileHeader(need: Int, left: Int)
        /// Only version 2.0 to 2.4 exists in practice; libpcap refuses the rest too.
        case unsupportedVersion(major: UInt16, minor: UInt16)
        /// A link type replay cannot give an Ethernet header (see `LinkType.isReplayable`).
        case unsupportedLinkType(LinkType)
        /// The file ends inside a record header.
        case truncatedRecordHeader(need: Int, left: Int)
        /// The file ends inside a record's data.
        case truncatedRecordData(need: Int, left: Int)
        /// A record claims more captured bytes than libpcap will ever accept (262144).
        case capturedLengthAboveMaximum(capturedLength: UInt32, maximum: UInt32)
        /// A pcapng timestamp does not fit in 64 bits of nanoseconds since the epoch.
        case timestampOutOfRange(seconds: Int, nanoseconds: Int)
        /// libpcap's own message (pcapng files).
        case libpcap(String)

        public var description: String {
            switch self {
            case .readFailed(let errno):
                return "read failed: \(errno)"
            case .notPcap(let magic):
                return "not a pcap or pcapng file (magic 0x\(hex(magic)))"
            case .truncatedFileHeader(let need, let left):
                return "truncated file header (need \(need) bytes, \(left) left)"
            case .unsupportedVersion(let major, let minor):
                return "unsupported pcap version \(major).\(minor) (only 2.0 to 2.4 exist)"
            case .unsupportedLinkType(let linkType):
                let accepted = LinkType.replayable.map(\.description).joined(separator: ", ")
                return "link type \(linkType) is not one replay reads (\(accepted))"
            case .truncatedRecordHeader(let need, let left):
                return "truncated record header (need \(need) bytes, \(left) left)"
            case .truncatedRecordData(let need, let left):
                return "truncated record data (need \(need) bytes, \(left) left)"
            case .capturedLengthAboveMaximum(let capturedLength, let maximum):
                return "captured length \(capturedLength) exceeds the maximum \(maximum)"
            case .timestampOutOfRange(let seconds, let nanoseconds):
                return "timestamp \(seconds) s + \(nanoseconds) ns is out of range"
            case .libpcap(let message):
                return message
            }
        }
    }

    public var description: String {
        switch self {
        case .cannotOpen(let path, let errno):
            return "\(path): cannot open: \(errno)"
        case .fileHeader(let path, let offset, let block, let reason):
            return "\(path): \(place(offset: offset, block: block)): \(reason)"
        case .record(let path, let recordNumber, let offset, let block, let reason):
            return "\(path): record \(recordNumber) at \(place(offset: offset, block: block)): \(reason)"
        case .cannotWrite(let path, let errno):
            return "\(path): cannot write: \(errno)"
        case .cannotClose(let path, let errno):
            return "\(path): cannot close: \(errno)"
        }
    }

    /// The file the error is about.
    public var path: String {
        switch self {
        case .cannotOpen(let path, _), .fileHeader(let path, _, _, _), .record(let path, _, _, _, _),
            .cannotWrite(let path, _), .cannotClose(let path, _):
            return path
        }
    }

    /// The 1-based number of the faulty record, if the error is about one.
    public var recordNumber: Int? {
        if case .record(_, let recordNumber, _, _, _) = self { return recordNumber }
        return nil
    }

    /// The byte offset where the problem starts, if known.
    public var offset: Int64? {
        switch self {
        case .fileHeader(_, let offset, _, _), .record(_, _, let offset, _, _):
            return offset < 0 ? nil : offset
        case .cannotOpen, .cannotWrite, .cannotClose:
            return nil
        }
    }

    /// The 1-based number of the pcapng block where the problem starts, if the error is about one.
    public var block: Int? {
        switch self {
        case .fileHeader(_, _, let block, _), .record(_, _, _, let block, _):
            return block
        case .cannotOpen, .cannotWrite, .cannotClose:
            return nil
        }
    }

    /// What is wrong with the file, for header and record errors.
    public var reason: Reason? {
        switch self {
        case .fileHeader(_, _, _, let reason), .record(_, _, _, _, let reason):
            return reason
        case .cannotOpen, .cannotWrite, .cannotClose:
            return nil
        }
    }
}

private func hex(_ value: UInt32) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 8 - digits.count) + digits
}

/// "byte offset 20", "byte offset 96 (block 3)".
private func place(offset: Int64, block: Int?) -> String {
    guard offset >= 0 else { return "an unknown byte offset" }
    return "byte offset \(offset)" + (block.map { " (block \($0))" } ?? "")
}
