// The classic pcap file format, as libpcap 1.10 reads and writes it (sf-pcap.c), plus the pcapng constant that
// tells a pcapng file (PcapngParser has the rest of that format).
//
//   file header (24 bytes): magic u32, version_major u16, version_minor u16, thiszone i32, sigfigs u32,
//                           snaplen u32, linktype u32
//   record header (16 bytes): ts_sec u32, ts_frac u32 (micro- or nanoseconds), caplen u32, len u32
//
// Every field is in the byte order of the machine that wrote the file; the magic tells which.

/// How finely a file's timestamps are stored.
public enum TimestampPrecision: Sendable, Hashable {
    /// Microseconds (classic pcap magic 0xa1b2c3d4).
    case micro
    /// Nanoseconds (classic pcap magic 0xa1b23c4d; pcapng as delivered by libpcap).
    case nano
}

enum PcapFormat {
    static let microMagic: UInt32 = 0xa1b2_c3d4
    static let nanoMagic: UInt32 = 0xa1b2_3c4d
    /// The pcapng Section Header Block type; a palindrome, so it reads the same in either byte order.
    static let pcapngMagic: UInt32 = 0x0a0d_0d0a
    /// Alexey Kuznetzov's patched format (longer record headers), which libpcap still reads.
    static let kuznetzovMagic: UInt32 = 0xa1b2_cd34

    static let fileHeaderSize = 24
    static let recordHeaderSize = 16

    static let versionMajor: UInt16 = 2
    static let versionMinor: UInt16 = 4

    /// LINKTYPE_ETHERNET, which is also DLT_EN10MB.
    static let ethernetLinkType: UInt32 = 1
    /// The link type field's link type bits (libpcap's LT_LINKTYPE); the upper six are the FCS length and flags.
    static let linkTypeMask: UInt32 = 0x03ff_ffff

    /// libpcap's MAXIMUM_SNAPLEN: it refuses records with a larger captured length, so do we (a record longer
    /// than a smaller snap length is cut to it instead).
    static let maximumCapturedLength: UInt32 = 262_144

    /// libpcap's snapshot length for a file that records `snapLength` (pcap_adjust_snapshot): the largest captured
    /// length a record is handed out with. 0 (none recorded) or more than the maximum gives the maximum.
    static func snapshotLength(_ snapLength: UInt32) -> UInt32 {
        snapLength == 0 || snapLength > maximumCapturedLength ? maximumCapturedLength : snapLength
    }

    static let nanosPerSecond: UInt64 = 1_000_000_000
}
