// Link types: what the link-layer header of a capture's frames is.
//
// Files store LINKTYPE_ values (https://www.tcpdump.org/linktypes.html); libpcap's API speaks DLT_ values, which
// are the same numbers except for a few that differ between operating systems (pcap/dlt.h). `LinkType` is always
// the LINKTYPE_ value, so a message names the number a user finds in the file and in the registry: a pcapng
// interface of raw IP is "RAW (101)", never libpcap's DLT_RAW 12.

/// A capture file's link type, as a LINKTYPE_ value.
public struct LinkType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// BSD loopback: a 4-byte address family in the byte order of the capturing host.
    public static let null = LinkType(rawValue: 0)
    public static let ethernet = LinkType(rawValue: 1)
    /// Raw IPv4 or IPv6, the version in the first nibble.
    public static let raw = LinkType(rawValue: 101)
    public static let ieee802_11 = LinkType(rawValue: 105)
    /// OpenBSD loopback: a 4-byte address family in network byte order.
    public static let loop = LinkType(rawValue: 108)
    /// Linux cooked capture v1 (`tcpdump -i any` before libpcap 1.10): a 16-byte header.
    public static let linuxSLL = LinkType(rawValue: 113)
    public static let ipv4 = LinkType(rawValue: 228)
    public static let ipv6 = LinkType(rawValue: 229)
    /// Linux cooked capture v2 (`tcpdump -i any` since libpcap 1.10): a 20-byte header.
    public static let linuxSLL2 = LinkType(rawValue: 276)

    /// The link type of a file whose header says `fileValue`: the value itself, except the DLT_RAW values some
    /// systems wrote into files before LINKTYPE_RAW existed (12 elsewhere, 14 on OpenBSD), which are raw IP as
    /// tcpdump and Wireshark read them.
    public init(fileValue: UInt32) {
        rawValue = fileValue == 12 || fileValue == 14 ? LinkType.raw.rawValue : fileValue
    }

    /// The link type libpcap reports as DLT value `dlt` (`pcap_datalink`), undoing libpcap's LINKTYPE-to-DLT
    /// mapping on Linux (dlt_to_linktype in pcap-common.c).
    public init(dlt: Int32) {
        switch dlt {
        case 11: rawValue = 100  // DLT_ATM_RFC1483
        case 12, 14: rawValue = LinkType.raw.rawValue  // DLT_RAW (14 on OpenBSD)
        case 15: rawValue = 102  // DLT_SLIP_BSDOS
        case 16: rawValue = 103  // DLT_PPP_BSDOS
        case 19: rawValue = 106  // DLT_ATM_CLIP
        default: rawValue = UInt32(bitPattern: dlt)
        }
    }

    /// The registry's name without its LINKTYPE_ prefix, for the link types people meet most; nil for the rest.
    public var name: String? {
        switch rawValue {
        case 0: return "NULL"
        case 1: return "ETHERNET"
        case 6: return "IEEE802_5"
        case 9: return "PPP"
        case 50: return "PPP_HDLC"
        case 51: return "PPP_ETHER"
        case 100: return "ATM_RFC1483"
        case 101: return "RAW"
        case 104: return "C_HDLC"
        case 105: return "IEEE802_11"
        case 107: return "FRELAY"
        case 108: return "LOOP"
        case 113: return "LINUX_SLL"
        case 117: return "PFLOG"
        case 119: return "IEEE802_11_PRISM"
        case 127: return "IEEE802_11_RADIOTAP"
        case 147...162: return "USER\(rawValue - 147)"
        case 163: return "IEEE802_11_AVS"
        case 187: return "BLUETOOTH_HCI_H4"
        case 189: return "USB_LINUX"
        case 192: return "PPI"
        case 195: return "IEEE802_15_4_WITHFCS"
        case 201: return "BLUETOOTH_HCI_H4_WITH_PHDR"
        case 220: return "USB_LINUX_MMAPPED"
        case 227: return "CAN_SOCKETCAN"
        case 228: return "IPV4"
        case 229: return "IPV6"
        case 239: return "NFLOG"
        case 249: return "USBPCAP"
        case 276: return "LINUX_SLL2"
        default: return nil
        }
    }

    /// "IEEE802_11 (105)", or the bare number for a link type without a name here.
    public var description: String { name.map { "\($0) (\(rawValue))" } ?? "\(rawValue)" }

    /// Whether replay can give this link type's frames an Ethernet header (`EthernetFraming`): Ethernet itself,
    /// Linux cooked captures, raw IP and BSD loopback.
    public var isReplayable: Bool {
        switch self {
        case .ethernet, .null, .raw, .loop, .linuxSLL, .linuxSLL2, .ipv4, .ipv6: return true
        default: return false
        }
    }

    /// The link types replay reads, as a message lists them.
    public static let replayable: [LinkType] = [.ethernet, .linuxSLL, .linuxSLL2, .raw, .ipv4, .ipv6, .null, .loop]
}
