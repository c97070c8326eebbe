import XDPEmuCore
import XDPEmuPcap
import XDPEmuTopology

// Traces that are not Ethernet: Linux cooked captures (what `tcpdump -i any` writes), raw IP and BSD loopback.
// The datapath carries Ethernet frames, so each record of such a trace loses its link-layer header and gains an
// Ethernet one, as tcprewrite's `--dlt enet` does, when it is copied into its frame: the one place that happens,
// for replay (`ReplayEngine`) and for live `--replay` (`LiveLoop`). Ethernet traces never come here: their records
// are copied as they are, with no per-frame test of the link type (`ReplayEngine` is specialised for them).
//
//   link type             header removed   EtherType
//   LINUX_SLL (113)       16 bytes         its protocol field (offset 14)
//   LINUX_SLL2 (276)      20 bytes         its protocol field (offset 0)
//   RAW (101; 12, 14)     none             from the IP version nibble: 4 -> 0x0800, 6 -> 0x86dd
//   IPV4 (228), IPV6 (229) none            0x0800, 0x86dd
//   NULL (0)              4 bytes          from the address family, in the capturing host's byte order (either
//                                          order is recognised): AF_INET 2 -> 0x0800; AF_INET6 (10 Linux,
//                                          23 Windows, 24 NetBSD/OpenBSD, 28 FreeBSD, 30 macOS) -> 0x86dd
//   LOOP (108)            4 bytes          the same, the family in network byte order
//
// A cooked protocol of 0x0600 or more is an EtherType and is kept, whatever it is (ARP, VLAN, MPLS...). Below it,
// ETH_P_802_3 (1) and ETH_P_802_2 (4) carry an 802.2 frame, which becomes an 802.3 frame (its length in the
// type field); other values (CAN, ...), unknown address families and IP versions, and records shorter than their
// link-layer header cannot be converted: they are skipped and counted.

/// How the frames of one non-Ethernet trace get their Ethernet header: the link type's header to remove, and the
/// MAC addresses to put in.
public struct EthernetFraming: Equatable, Sendable {
    public let linkType: LinkType
    public let destination: MACAddress
    public let source: MACAddress
    /// Bytes of link-layer header each record starts with, removed from the frame.
    public let removedLength: Int
    /// The first 12 bytes of the header (destination and source), as two stores.
    private let addressHead: UInt64
    private let addressTail: UInt32

    /// The Ethernet header's length.
    public static let headerLength = 14

    /// The destination MAC of converted frames entering a port without a host (`--in PORT=TRACE,dst=MAC` sets
    /// another): a fixed locally administered unicast address.
    public static let defaultDestination = MACAddress(0x02, 0xfe, 0, 0, 0, 0)

    /// The source MAC of converted frames entering the port with `ifindex` (`,src=MAC` sets another): `02:ff`
    /// followed by the ifindex in 32 bits (`02:ff:00:00:00:01` for ifindex 1).
    public static func defaultSource(ifindex: IfIndex) -> MACAddress {
        MACAddress(rawValue: 0x02ff_0000_0000 | UInt64(ifindex.rawValue))
    }

    /// The framing of a trace of `linkType` (nil for Ethernet, which needs none).
    public init?(linkType: LinkType, destination: MACAddress, source: MACAddress) {
        switch linkType {
        case .linuxSLL: removedLength = 16
        case .linuxSLL2: removedLength = 20
        case .null, .loop: removedLength = 4
        case .raw, .ipv4, .ipv6: removedLength = 0
        default: return nil
        }
        self.linkType = linkType
        self.destination = destination
        self.source = source
        let d = destination.octets
        let s = source.octets
        var head: UInt64 = 0
        for (i, octet) in (d + s[0..<2]).enumerated() { head |= UInt64(octet) << (8 * i) }
        addressHead = UInt64(littleEndian: head)
        addressTail = UInt32(littleEndian: UInt32(s[2]) | UInt32(s[3]) << 8 | UInt32(s[4]) << 16 | UInt32(s[5]) << 24)
    }

    /// The framing for a trace of `linkType` fed into `port`: the MACs `input` gives, else the defaults (the
    /// destination is the port's own MAC when the port has a host, `defaultDestination` when not; the source
    /// `defaultSource(ifindex:)`). nil for Ethernet.
    public init?(linkType: LinkType, input: ReplayOptions.Input, port: PortSpec) {
        self.init(
            linkType: linkType,
            destination: input.destination ?? (port.host != nil ? port.mac : Self.defaultDestination),
            source: input.source ?? Self.defaultSource(ifindex: port.ifindex))
    }

    /// How many bytes longer a frame is than its record (negative when the removed header is longer).
    public var growth: Int { Self.headerLength - removedLength }

    /// The EtherType of the frame made of `record`, nil when it cannot be converted.
    public func etherType(of record: UnsafeRawBufferPointer) -> UInt16? {
        guard record.count >= removedLength, let bytes = record.baseAddress else { return nil }
        switch linkType {
        case .linuxSLL:
            return cookedType(bigEndian16(bytes, 14), payload: record.count - removedLength)
        case .linuxSLL2:
            return cookedType(bigEndian16(bytes, 0), payload: record.count - removedLength)
        case .raw:
            guard record.count > 0 else { return nil }
            switch bytes.load(as: UInt8.self) >> 4 {
            case 4: return 0x0800
            case 6: return 0x86dd
            default: return nil
            }
        case .ipv4:
            return 0x0800
        case .ipv6:
            return 0x86dd
        case .null, .loop:
            let stored = bytes.loadUnaligned(as: UInt32.self)
            var family = linkType == .loop ? UInt32(bigEndian: stored) : UInt32(littleEndian: stored)
            // NULL is in the capturing host's order: a family has no bits in the upper half (libpcap's test).
            if linkType == .null && family & 0xffff_0000 != 0 { family = family.byteSwapped }
            switch family {
            case 2: return 0x0800
            case 10, 23, 24, 28, 30: return 0x86dd
            default: return nil
            }
        default:
            return nil
        }
    }

    /// Writes the frame made of `record` at `frame`, which has room for `record.count + growth` bytes: the
    /// Ethernet header, then the record without its link-layer header. Returns the frame's length, or nil (nothing
    /// written) when the record cannot be converted. No allocation.
    @inline(__always)
    public func write(_ record: UnsafeRawBufferPointer, to frame: UnsafeMutableRawPointer) -> Int? {
        guard let type = etherType(of: record) else { return nil }
        let payload = record.count - removedLength
        if payload > 0 {
            (frame + Self.headerLength).copyMemory(
                from: record.baseAddress.unsafelyUnwrapped + removedLength, byteCount: payload)
        }
        frame.storeBytes(of: addressHead, as: UInt64.self)
        frame.storeBytes(of: addressTail, toByteOffset: 8, as: UInt32.self)
        frame.storeBytes(of: type.bigEndian, toByteOffset: 12, as: UInt16.self)
        return Self.headerLength + payload
    }

    /// The EtherType for a cooked capture's protocol field.
    private func cookedType(_ protocolField: UInt16, payload: Int) -> UInt16? {
        if protocolField >= 0x0600 { return protocolField }
        // ETH_P_802_3, ETH_P_802_2: an 802.2 frame, which Ethernet carries with its length in the type field.
        if (protocolField == 1 || protocolField == 4) && payload <= 1500 { return UInt16(payload) }
        return nil
    }

    private func bigEndian16(_ bytes: UnsafeRawPointer, _ offset: Int) -> UInt16 {
        UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
}

/// What became of one input's records: how many were converted to Ethernet and how many skipped (not
/// convertible). Ethernet traces convert nothing.
public struct InputFraming: Equatable, Sendable {
    public var port: String
    public var path: String
    public var linkType: LinkType
    public var converted: UInt64
    public var skipped: UInt64

    public init(port: String, path: String, linkType: LinkType, converted: UInt64 = 0, skipped: UInt64 = 0) {
        self.port = port
        self.path = path
        self.linkType = linkType
        self.converted = converted
        self.skipped = skipped
    }
}
