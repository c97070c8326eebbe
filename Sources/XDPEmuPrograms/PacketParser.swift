import XDPEmuCore

// Header parsing shared by the built-in programs.
//
// The parser reads the frame in place and allocates nothing: the result is a fixed-size struct of integers. Every
// read is checked against the end of the packet before it is made, which is the rule the BPF verifier forces on a
// C program: a truncated or malformed frame gives a result flagged `isMalformed`, never a trap and never a read
// past `data_end`. Offsets are bounded by the frame's length, and the two loops (VLAN tags, IPv6 extension headers)
// have a fixed bound, as a verified program's loops must.
//
// What it reads:
// - Ethernet II, with up to two 802.1Q (0x8100) or 802.1ad (0x88A8) tags. A third tag is left unparsed: the frame
//   then counts as non-IP (its EtherType is the third tag's TPID).
// - IPv4: version, IHL (options are skipped), total length (must cover the header), fragment offset and MF, the
//   protocol and the addresses. A non-first fragment carries no transport header, so none is read.
// - IPv6: the fixed header, then up to `maxIPv6ExtensionHeaders` hop-by-hop, routing, destination-options and
//   fragment headers. Other next-header values (AH and ESP included) are the transport protocol. A non-first
//   fragment stops the walk: its payload is the middle of the original datagram.
// - TCP (20-byte header), UDP (8) and their ports; ICMP and ICMPv6 (4: type, code, checksum) and their type and
//   code. Other protocols are recognised by number only.

/// EtherType values the parser knows.
public enum EtherType {
    public static let ipv4: UInt16 = 0x0800
    public static let arp: UInt16 = 0x0806
    public static let ipv6: UInt16 = 0x86DD
    /// 802.1Q customer VLAN tag.
    public static let vlan: UInt16 = 0x8100
    /// 802.1ad service VLAN tag (the outer tag of QinQ).
    public static let serviceVLAN: UInt16 = 0x88A8
}

/// IP protocol (IPv4) and next-header (IPv6) numbers the parser knows.
public enum IPProtocolNumber {
    public static let hopByHop: UInt8 = 0
    public static let icmp: UInt8 = 1
    public static let tcp: UInt8 = 6
    public static let udp: UInt8 = 17
    public static let routing: UInt8 = 43
    public static let fragment: UInt8 = 44
    public static let icmpv6: UInt8 = 58
    public static let noNextHeader: UInt8 = 59
    public static let destinationOptions: UInt8 = 60
}

/// A flow's 5-tuple, as fixed-size integers.
///
/// `hash` is the value the redirect program's `.hash` selector uses. It is defined on the tuple's wire bytes, so it
/// is the same on every run and every machine (Swift's `Hasher` is randomly seeded per process and is not used):
///
///     bytes = source address ‖ destination address ‖ source port ‖ destination port ‖ protocol
///
/// with addresses in network order (4 bytes for IPv4, 16 for IPv6) and ports big-endian (2 bytes each): 13 bytes for
/// IPv4, 37 for IPv6. The hash is 32-bit FNV-1a over those bytes (offset basis 0x811C9DC5, prime 0x01000193),
/// finished with MurmurHash3's `fmix32` (`h ^= h >> 16; h *= 0x85EBCA6B; h ^= h >> 13; h *= 0xC2B2AE35;
/// h ^= h >> 16`, multiplications modulo 2^32). FNV-1a alone leaves its low bits depending only on the low bits of
/// each byte, and `hash % modulo` reads mostly low bits; the finaliser spreads every input bit over them.
///
/// The hash is not symmetric: the two directions of a connection are different tuples and usually hash to
/// different values (use `reversed` to compute the other direction's).
public struct FlowKey: Hashable, Sendable {
    public var source: IPAddress
    public var destination: IPAddress
    /// 0 when the packet has no ports (protocols without ports, and every fragment: see `PacketHeaders.flowKey`).
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var ipProtocol: UInt8

    /// Both addresses must be of one family.
    public init(
        source: IPAddress, destination: IPAddress, sourcePort: UInt16, destinationPort: UInt16,
        ipProtocol: UInt8
    ) {
        precondition(source.family == destination.family, "a flow's addresses are of one family")
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.ipProtocol = ipProtocol
    }

    /// The tuple of the opposite direction.
    public var reversed: FlowKey {
        FlowKey(
            source: destination, destination: source, sourcePort: destinationPort, destinationPort: sourcePort,
            ipProtocol: ipProtocol)
    }

    /// FNV-1a 32 over the tuple's wire bytes, then fmix32 (see the type's documentation).
    public var hash: UInt32 {
        var h = FlowKey.fnvOffsetBasis
        FlowKey.mix(source, into: &h)
        FlowKey.mix(destination, into: &h)
        FlowKey.mix(UInt64(sourcePort), bytes: 2, into: &h)
        FlowKey.mix(UInt64(destinationPort), bytes: 2, into: &h)
        FlowKey.mix(UInt64(ipProtocol), bytes: 1, into: &h)
        return FlowKey.finish(h)
    }

    /// `PacketHeaders(parsing: bytes)?.flowKey?.hash`, for every input, without building the headers for the frames
    /// a hash-spreading program mostly sees.
    ///
    /// Untagged IPv4 with a 20-byte header, not a fragment, and untagged IPv6 whose next header is TCP or UDP, each
    /// with the whole TCP or UDP header present, have their tuple at fixed offsets and in the order the hash reads
    /// it: addresses then ports, contiguous on the wire (IPv4: bytes 26..<38, IPv6: 22..<58), then the protocol
    /// byte. Those are hashed where they lie. Every other frame (VLAN tags, IPv4 options, fragments, extension
    /// headers, ICMP, truncated or malformed headers, non-IP) goes through the full parser; a test compares the two
    /// over every truncation of many frames.
    @inline(__always)
    public static func hash(ofFrame bytes: UnsafeRawBufferPointer) -> UInt32? {
        if let base = bytes.baseAddress, let h = fastHash(base, count: bytes.count) { return h }
        return PacketHeaders(parsing: bytes)?.flowKey?.hash
    }

    /// The fast path of `hash(ofFrame:)`: nil when the frame is not one it handles.
    @inline(__always)
    static func fastHash(_ p: UnsafeRawPointer, count: Int) -> UInt32? {
        guard count >= 42 else { return nil }
        let etherType = UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 12, as: UInt16.self))
        if etherType == EtherType.ipv4 {
            // Version 4 and IHL 5; total length covers the header; MF and fragment offset 0 (DF may be set).
            guard p.load(fromByteOffset: 14, as: UInt8.self) == 0x45,
                UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 16, as: UInt16.self)) >= 20,
                UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 20, as: UInt16.self)) & 0x3FFF == 0
            else { return nil }
            let proto = p.load(fromByteOffset: 23, as: UInt8.self)
            guard proto == IPProtocolNumber.udp || (proto == IPProtocolNumber.tcp && count >= 34 + 20) else {
                return nil
            }
            return finish(mixBytes(p + 26, 12, proto))
        }
        if etherType == EtherType.ipv6 {
            guard count >= 54 + 8, p.load(fromByteOffset: 14, as: UInt8.self) >> 4 == 6 else { return nil }
            let next = p.load(fromByteOffset: 20, as: UInt8.self)
            guard next == IPProtocolNumber.udp || (next == IPProtocolNumber.tcp && count >= 54 + 20) else {
                return nil
            }
            return finish(mixBytes(p + 22, 36, next))
        }
        return nil
    }

    static let fnvOffsetBasis: UInt32 = 0x811C_9DC5
    static let fnvPrime: UInt32 = 0x0100_0193

    /// FNV-1a over `count` bytes at `p` then one more byte, from the offset basis.
    @inline(__always)
    private static func mixBytes(_ p: UnsafeRawPointer, _ count: Int, _ last: UInt8) -> UInt32 {
        var h = fnvOffsetBasis
        for i in 0..<count { h = (h ^ UInt32(p.load(fromByteOffset: i, as: UInt8.self))) &* fnvPrime }
        return (h ^ UInt32(last)) &* fnvPrime
    }

    /// MurmurHash3's fmix32.
    @inline(__always)
    private static func finish(_ value: UInt32) -> UInt32 {
        var h = value
        h ^= h >> 16
        h &*= 0x85EB_CA6B
        h ^= h >> 13
        h &*= 0xC2B2_AE35
        h ^= h >> 16
        return h
    }

    private static func mix(_ address: IPAddress, into h: inout UInt32) {
        if address.family == .ipv4 {
            mix(address.low, bytes: 4, into: &h)
        } else {
            mix(address.high, bytes: 8, into: &h)
            mix(address.low, bytes: 8, into: &h)
        }
    }

    /// Folds the low `bytes` bytes of `value` into the FNV-1a state, most significant first (network order).
    private static func mix(_ value: UInt64, bytes: Int, into h: inout UInt32) {
        var shift = UInt64(8 * (bytes - 1))
        for _ in 0..<bytes {
            h = (h ^ (UInt32(truncatingIfNeeded: value >> shift) & 0xff)) &* fnvPrime
            shift &-= 8
        }
    }
}

/// The headers of one frame, as the parser found them. Build it with `init(parsing:)`.
///
/// Fields beyond what the frame holds keep their zero value; `isMalformed` says when the frame is shorter than its
/// headers claim or a header holds an impossible value.
public struct PacketHeaders: Equatable, Sendable {
    /// The network layer found after the VLAN tags.
    public enum Network: UInt8, Sendable {
        /// Not IP (ARP, LLDP, a third VLAN tag, ...).
        case other
        case ipv4
        case ipv6
    }

    /// Where the packet sits in a fragmented datagram.
    public enum Fragment: UInt8, Sendable {
        case none
        /// Offset 0 with more fragments to come: carries the transport header.
        case first
        /// Non-zero offset: carries no transport header.
        case later
    }

    /// Most IPv6 extension headers walked before the parser gives up (the frame is then malformed).
    public static let maxIPv6ExtensionHeaders = 8

    public var destinationMAC: MACAddress
    public var sourceMAC: MACAddress
    /// VLAN tags parsed: 0, 1 or 2.
    public var vlanCount: Int = 0
    /// Tag control information (PCP, DEI, VLAN id) of the outer tag; 0 when untagged.
    public var outerVLANTag: UInt16 = 0
    /// TCI of the inner tag of a double-tagged frame; 0 otherwise.
    public var innerVLANTag: UInt16 = 0
    /// The EtherType after the parsed tags.
    public var etherType: UInt16 = 0
    /// Offset of the network header from `data`.
    public var networkOffset: Int = 0
    public var network: Network = .other
    /// The frame is shorter than its headers claim (a cut VLAN tag, IP header, extension header chain or
    /// TCP/UDP/ICMP header), or a header is invalid (IP version, IHL, total length, too many extension headers).
    public var isMalformed = false
    /// IPv4 protocol, or the IPv6 next header after the extension headers.
    public var ipProtocol: UInt8 = 0
    public var source = IPAddress(ipv4: 0)
    public var destination = IPAddress(ipv4: 0)
    public var fragment: Fragment = .none
    /// Offset of the transport header from `data`; nil for a non-first fragment, non-IP or malformed IP headers.
    public var transportOffset: Int?
    /// A complete TCP or UDP header was read: the ports are valid.
    public var hasPorts = false
    public var sourcePort: UInt16 = 0
    public var destinationPort: UInt16 = 0
    /// A complete ICMP (over IPv4) or ICMPv6 (over IPv6) header was read: type and code are valid.
    public var hasICMP = false
    public var icmpType: UInt8 = 0
    public var icmpCode: UInt8 = 0

    /// The VLAN id (low 12 bits of the outer tag), or nil when untagged.
    public var vlanID: UInt16? { vlanCount > 0 ? outerVLANTag & 0x0FFF : nil }

    /// The 5-tuple, or nil for non-IP and malformed frames. Every fragment, the first included, gets ports 0 so
    /// that all fragments of a datagram have one key (and take one path).
    public var flowKey: FlowKey? {
        guard network != .other, !isMalformed else { return nil }
        let ports = hasPorts && fragment == .none
        return FlowKey(
            source: source, destination: destination, sourcePort: ports ? sourcePort : 0,
            destinationPort: ports ? destinationPort : 0, ipProtocol: ipProtocol)
    }

    /// Parses the frame in `context`; nil when it is shorter than an Ethernet header.
    @inlinable
    public init?(parsing context: XDPContext) {
        self.init(parsing: UnsafeRawBufferPointer(context.packet))
    }

    /// Parses the frame in `bytes`; nil when it is shorter than an Ethernet header (14 bytes).
    public init?(parsing bytes: UnsafeRawBufferPointer) {
        let reader = BoundedReader(bytes)
        guard let base = bytes.baseAddress, bytes.count >= KernelConstants.ethHeaderLength else { return nil }
        destinationMAC = MACAddress(loadingFrom: base)
        sourceMAC = MACAddress(loadingFrom: base + 6)
        etherType = reader.u16(12).unsafelyUnwrapped
        var offset = KernelConstants.ethHeaderLength
        while vlanCount < 2 && (etherType == EtherType.vlan || etherType == EtherType.serviceVLAN) {
            guard let tci = reader.u16(offset), let inner = reader.u16(offset + 2) else {
                isMalformed = true
                networkOffset = offset
                return
            }
            if vlanCount == 0 { outerVLANTag = tci } else { innerVLANTag = tci }
            vlanCount += 1
            etherType = inner
            offset += KernelConstants.vlanHeaderLength
        }
        networkOffset = offset
        switch etherType {
        case EtherType.ipv4: parseIPv4(reader, at: offset)
        case EtherType.ipv6: parseIPv6(reader, at: offset)
        default: break
        }
    }

    private mutating func parseIPv4(_ reader: BoundedReader, at offset: Int) {
        network = .ipv4
        guard let versionAndLength = reader.u8(offset), versionAndLength >> 4 == 4 else { return markMalformed() }
        let headerLength = Int(versionAndLength & 0x0F) * 4
        guard headerLength >= 20, let totalLength = reader.u16(offset + 2), Int(totalLength) >= headerLength,
            let fragmentField = reader.u16(offset + 6), let proto = reader.u8(offset + 9),
            let sourceAddress = reader.u32(offset + 12), let destinationAddress = reader.u32(offset + 16),
            offset + headerLength <= reader.count
        else { return markMalformed() }
        ipProtocol = proto
        source = IPAddress(ipv4: sourceAddress)
        destination = IPAddress(ipv4: destinationAddress)
        if fragmentField & 0x1FFF != 0 {
            fragment = .later
        } else if fragmentField & 0x2000 != 0 {
            fragment = .first
        }
        guard fragment != .later else { return }
        parseTransport(reader, at: offset + headerLength)
    }

    private mutating func parseIPv6(_ reader: BoundedReader, at offset: Int) {
        network = .ipv6
        guard let first = reader.u8(offset), first >> 4 == 6, let next = reader.u8(offset + 6),
            let sourceHigh = reader.u64(offset + 8), let sourceLow = reader.u64(offset + 16),
            let destinationHigh = reader.u64(offset + 24), let destinationLow = reader.u64(offset + 32)
        else { return markMalformed() }
        source = IPAddress(ipv6High: sourceHigh, low: sourceLow)
        destination = IPAddress(ipv6High: destinationHigh, low: destinationLow)
        var header = next
        var position = offset + 40
        for _ in 0...PacketHeaders.maxIPv6ExtensionHeaders {
            switch header {
            case IPProtocolNumber.hopByHop, IPProtocolNumber.routing, IPProtocolNumber.destinationOptions:
                // Length in 8-octet units, not counting the first 8 octets.
                guard let following = reader.u8(position), let length = reader.u8(position + 1) else {
                    return markMalformed()
                }
                header = following
                position += (Int(length) + 1) * 8
            case IPProtocolNumber.fragment:
                guard let following = reader.u8(position), let field = reader.u16(position + 2) else {
                    return markMalformed()
                }
                header = following
                position += 8
                if field & 0xFFF8 != 0 {
                    fragment = .later
                    ipProtocol = header
                    return
                }
                if field & 1 != 0 { fragment = .first }
            default:
                ipProtocol = header
                parseTransport(reader, at: position)
                return
            }
        }
        // Still an extension header after the bound: give up rather than loop on.
        markMalformed()
    }

    private mutating func parseTransport(_ reader: BoundedReader, at offset: Int) {
        transportOffset = offset
        switch ipProtocol {
        case IPProtocolNumber.tcp, IPProtocolNumber.udp:
            let headerLength = ipProtocol == IPProtocolNumber.tcp ? 20 : 8
            guard offset + headerLength <= reader.count, let ports = reader.u32(offset) else {
                return markMalformed(keepingAddresses: true)
            }
            sourcePort = UInt16(truncatingIfNeeded: ports >> 16)
            destinationPort = UInt16(truncatingIfNeeded: ports)
            hasPorts = true
        case IPProtocolNumber.icmp where network == .ipv4, IPProtocolNumber.icmpv6 where network == .ipv6:
            guard offset + 4 <= reader.count, let typeAndCode = reader.u16(offset) else {
                return markMalformed(keepingAddresses: true)
            }
            icmpType = UInt8(truncatingIfNeeded: typeAndCode >> 8)
            icmpCode = UInt8(truncatingIfNeeded: typeAndCode)
            hasICMP = true
        default:
            break
        }
    }

    /// Flags the frame; unless the IP header itself was read, the fields after it are reset to zero.
    private mutating func markMalformed(keepingAddresses: Bool = false) {
        isMalformed = true
        if !keepingAddresses {
            let zero = IPAddress(ipv4: 0)
            source = network == .ipv6 ? IPAddress(ipv6High: 0, low: 0) : zero
            destination = source
            ipProtocol = 0
            fragment = .none
            transportOffset = nil
        }
    }
}

/// Big-endian reads that check the bounds first and answer nil past the end: the parser's only way to touch bytes.
struct BoundedReader {
    let base: UnsafeRawPointer?
    let count: Int

    init(_ bytes: UnsafeRawBufferPointer) {
        base = bytes.baseAddress
        count = bytes.baseAddress == nil ? 0 : bytes.count
    }

    @inline(__always)
    func load<T: FixedWidthInteger>(_: T.Type, _ offset: Int) -> T? {
        guard let base, offset >= 0, offset <= count - MemoryLayout<T>.size else { return nil }
        return T(bigEndian: base.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    @inline(__always) func u8(_ offset: Int) -> UInt8? { load(UInt8.self, offset) }
    @inline(__always) func u16(_ offset: Int) -> UInt16? { load(UInt16.self, offset) }
    @inline(__always) func u32(_ offset: Int) -> UInt32? { load(UInt32.self, offset) }
    @inline(__always) func u64(_ offset: Int) -> UInt64? { load(UInt64.self, offset) }
}
