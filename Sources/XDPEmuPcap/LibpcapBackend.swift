@preconcurrency import CPcap

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// libpcap, for the files our parsers leave to it: the classic formats before 2.4, and pcapng beyond the plain case
// (PcapngParser), with its many block and option kinds. Both are rare in replay inputs, so correctness wins over
// speed here. libpcap converts every interface's time resolution to nanoseconds for us.

final class LibpcapBackend {
    let path: String
    /// Whether the file is pcapng (errors then name the block too).
    let isPcapng: Bool
    private let handle: OpaquePointer
    let linkType: LinkType
    let snapLength: UInt32
    private(set) var recordsRead = 0
    /// libpcap's state after a failed read is unspecified, so the first error is repeated instead of reading on.
    private var failure: PcapError?

    /// Opens `path`, a classic pcap file (`isPcapng` false) or a pcapng file, and checks its link type.
    init(path: String, isPcapng: Bool) throws(PcapError) {
        self.path = path
        self.isPcapng = isPcapng
        var message = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        // libpcap takes "-" to mean standard input; we were given a file that happens to have that name.
        let libpcapPath = path == "-" ? "./-" : path
        let precision = UInt32(PCAP_TSTAMP_PRECISION_NANO)
        guard let handle = pcap_open_offline_with_tstamp_precision(libpcapPath, precision, &message) else {
            // libpcap does not say where: for pcapng, the block its open stopped at; for classic pcap, the file
            // header.
            let place = isPcapng ? PcapngBlocks.openingProblem(path) : PcapngPlace(offset: 0, block: 0)
            throw .fileHeader(
                path: path, offset: place?.offset ?? -1, block: isPcapng ? place?.block : nil,
                reason: .libpcap(Self.string(message)))
        }
        linkType = LinkType(dlt: pcap_datalink(handle))
        guard linkType.isReplayable else {
            pcap_close(handle)
            // The link type field: of the first Interface Description Block, or of the classic file header.
            let place = isPcapng ? PcapngBlocks.firstInterface(path) : nil
            throw .fileHeader(
                path: path, offset: place.map { $0.offset + 8 } ?? (isPcapng ? -1 : 20), block: place?.block,
                reason: .unsupportedLinkType(linkType))
        }
        self.handle = handle
        snapLength = UInt32(clamping: pcap_snapshot(handle))
    }

    deinit {
        pcap_close(handle)
    }

    /// Returns the next record, or nil at a clean end of file.
    func next() throws(PcapError) -> PcapRecord? {
        if let failure {
            throw failure
        }
        // libpcap reads whole blocks with fread, so between calls the stream sits at a block boundary: the start of
        // whatever it reads next.
        var offset: Int64 = -1
        if let stream = pcap_file(handle) {
            offset = Int64(ftell(stream))
        }
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        let status = pcap_next_ex(handle, &header, &data)
        if status == PCAP_ERROR_BREAK {
            return nil
        }
        guard status == 1, let header else {
            throw failed(.libpcap(String(cString: pcap_geterr(handle))), offset: offset)
        }
        let seconds = header.pointee.ts.tv_sec
        let nanoseconds = header.pointee.ts.tv_usec
        let (scaled, overflowed) = UInt64(clamping: seconds).multipliedReportingOverflow(by: PcapFormat.nanosPerSecond)
        guard seconds >= 0, nanoseconds >= 0, !overflowed,
            case let (timestamp, carried) = scaled.addingReportingOverflow(UInt64(nanoseconds)), !carried
        else {
            throw failed(.timestampOutOfRange(seconds: seconds, nanoseconds: nanoseconds), offset: offset)
        }
        let capturedLength = Int(header.pointee.caplen)
        let record = PcapRecord(
            timestampNanos: timestamp,
            capturedLength: capturedLength,
            originalLength: Int(header.pointee.len),
            bytes: UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : capturedLength),
            index: recordsRead,
            fileOffset: offset
        )
        recordsRead += 1
        return record
    }

    /// Builds the error for the record being read and remembers it for later calls.
    private func failed(_ reason: PcapError.Reason, offset: Int64) -> PcapError {
        let block = isPcapng && offset >= 0 ? PcapngBlocks.block(holding: offset, path)?.block : nil
        let error = PcapError.record(
            path: path, recordNumber: recordsRead + 1, offset: offset, block: block, reason: reason)
        failure = error
        return error
    }

    private static func string(_ message: [CChar]) -> String {
        message.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }
}
