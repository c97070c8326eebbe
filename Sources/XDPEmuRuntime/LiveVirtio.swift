import XDPEmuCore

// Virtio-net headers on TAPs (`"vnet_hdr": true` on a port): what happens to a frame at each step.
//
// Such a TAP is created with IFF_VNET_HDR and offers checksum offload and TSO (TUNSETOFFLOAD CSUM|TSO4|TSO6|ECN),
// so the kernel hands it TCP "super-frames" of up to 64 KB with a 12-byte `struct virtio_net_hdr` in front, and
// ordinary frames whose TCP/UDP checksum is left for the device to finish (NEEDS_CSUM). The header is not kept
// with the frame: everything it says is either finished at once or can be read back from the frame.
//
// 1. Read (LiveLoop): the header goes into its own 12 bytes (readv), the frame into its pool buffer as usual.
//    - NEEDS_CSUM on an ordinary frame: the checksum is completed in software at once (as skb_checksum_help
//      does), so from here on the frame is like any other.
//    - GSO TCPv4/TCPv6: `FrameInfo.gsoSize` = gso_size; the checksum field keeps the kernel's partial sum. The
//      core's size check exempts the frame (as is_skb_forwardable does) and the program sees the whole
//      super-frame. Any other GSO type (UDP, which we never offer) or a header that does not fit the frame:
//      the frame is refused (counted as a malformed read, not seen by the program).
// 2. Transmit to a TAP with a header (TapWire): a frame with `gsoSize` gets a header rebuilt from the frame:
//    NEEDS_CSUM with csum_start at the TCP header, csum_offset 16, gso_type TCPV4 or TCPV6 (+ECN when the
//    segment has CWR), hdr_len, gso_size; the kernel takes the super-frame as it is. Other frames get an
//    all-zero header (nothing to do). One writev per frame.
// 3. Transmit to a TAP without a header (a plain port, a stack TAP): a super-frame is segmented in software
//    (`TCPSegmenter`, as tcp_gso_segment would): gso_size payload bytes per segment, IPv4 total length, id + n
//    and header checksum, IPv6 payload length, TCP sequence number, FIN/PSH only on the last segment, CWR only
//    on the first, and a full TCP checksum each. One write per segment; the frame counts as sent when the first
//    segment was written (TCP recovers a later lost one).
// 4. Captures record frames as they are in the buffer: ordinary frames with their checksums complete, a
//    super-frame as one record of up to 64 KB whose TCP checksum field holds the kernel's partial sum (so a
//    checksum-verifying reader calls it wrong).

/// `struct virtio_net_hdr_mrg_rxbuf` as TUNSETVNETHDRSZ 12 makes the TAP use it, in the host's byte order.
struct VirtioNetHeader: Equatable {
    static let length = 12
    /// VIRTIO_NET_HDR_F_NEEDS_CSUM: finish the checksum at csum_start + csum_offset.
    static let needsChecksum: UInt8 = 1
    static let gsoNone: UInt8 = 0
    static let gsoTCPv4: UInt8 = 1
    static let gsoTCPv6: UInt8 = 4
    static let gsoECN: UInt8 = 0x80

    var flags: UInt8 = 0
    var gsoType: UInt8 = gsoNone
    var headerLength: UInt16 = 0
    var gsoSize: UInt16 = 0
    var checksumStart: UInt16 = 0
    var checksumOffset: UInt16 = 0

    init() {}

    init(loading p: UnsafeRawPointer) {
        flags = p.load(as: UInt8.self)
        gsoType = p.load(fromByteOffset: 1, as: UInt8.self)
        headerLength = p.loadUnaligned(fromByteOffset: 2, as: UInt16.self)
        gsoSize = p.loadUnaligned(fromByteOffset: 4, as: UInt16.self)
        checksumStart = p.loadUnaligned(fromByteOffset: 6, as: UInt16.self)
        checksumOffset = p.loadUnaligned(fromByteOffset: 8, as: UInt16.self)
    }

    func store(to p: UnsafeMutableRawPointer) {
        p.storeBytes(of: flags, as: UInt8.self)
        p.storeBytes(of: gsoType, toByteOffset: 1, as: UInt8.self)
        p.storeBytes(of: headerLength, toByteOffset: 2, as: UInt16.self)
        p.storeBytes(of: gsoSize, toByteOffset: 4, as: UInt16.self)
        p.storeBytes(of: checksumStart, toByteOffset: 6, as: UInt16.self)
        p.storeBytes(of: checksumOffset, toByteOffset: 8, as: UInt16.self)
        p.storeBytes(of: UInt16(0), toByteOffset: 10, as: UInt16.self)  // num_buffers
    }

    /// Step 1: takes a header read with `packet`; finishes a pending checksum of an ordinary frame in place.
    /// Returns the GSO segment size (0 for an ordinary frame), or nil if the header cannot be honoured.
    static func accept(_ header: VirtioNetHeader, packet: UnsafeMutableRawBufferPointer) -> UInt32? {
        let needsChecksum = header.flags & Self.needsChecksum != 0
        if needsChecksum {
            let field = Int(header.checksumStart) + Int(header.checksumOffset)
            guard field + 2 <= packet.count else { return nil }
        }
        switch header.gsoType & ~Self.gsoECN {
        case Self.gsoNone:
            if needsChecksum {
                Checksum.complete(packet, start: Int(header.checksumStart), offset: Int(header.checksumOffset))
            }
            return 0
        case Self.gsoTCPv4, Self.gsoTCPv6:
            guard header.gsoSize > 0, needsChecksum else { return nil }
            return UInt32(header.gsoSize)
        default:
            return nil
        }
    }

    /// Step 2: the header for a super-frame of TCP segments of `gsoSize` bytes, read back from its headers; nil
    /// when the frame is not Ethernet + IPv4/IPv6 + TCP.
    static func gso(for packet: UnsafeRawBufferPointer, gsoSize: UInt32) -> VirtioNetHeader? {
        guard let tcp = TCPFrame(packet), gsoSize <= UInt32(UInt16.max) else { return nil }
        var header = VirtioNetHeader()
        header.flags = Self.needsChecksum
        header.gsoType = tcp.isIPv4 ? Self.gsoTCPv4 : Self.gsoTCPv6
        if tcp.flags(packet) & TCPFrame.cwr != 0 { header.gsoType |= Self.gsoECN }
        header.headerLength = UInt16(tcp.headersLength)
        header.gsoSize = UInt16(gsoSize)
        header.checksumStart = UInt16(tcp.tcpOffset)
        header.checksumOffset = 16
        return header
    }
}

/// Where the headers of an Ethernet + IPv4/IPv6 + TCP frame are (no VLAN tag, no IPv6 extension headers).
struct TCPFrame {
    static let fin: UInt8 = 0x01
    static let psh: UInt8 = 0x08
    static let cwr: UInt8 = 0x80

    let isIPv4: Bool
    let ipOffset = 14
    let tcpOffset: Int
    let headersLength: Int

    init?(_ packet: UnsafeRawBufferPointer) {
        guard packet.count >= 14 + 20 + 20 else { return nil }
        let p = packet.baseAddress!
        let etherType = UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 12, as: UInt16.self))
        switch etherType {
        case 0x0800:
            let versionAndLength = p.load(fromByteOffset: 14, as: UInt8.self)
            let ipLength = Int(versionAndLength & 0x0f) * 4
            guard versionAndLength >> 4 == 4, ipLength >= 20, p.load(fromByteOffset: 14 + 9, as: UInt8.self) == 6 else {
                return nil
            }
            isIPv4 = true
            tcpOffset = 14 + ipLength
        case 0x86dd:
            let version = p.load(fromByteOffset: 14, as: UInt8.self) >> 4
            guard version == 6, p.load(fromByteOffset: 14 + 6, as: UInt8.self) == 6 else { return nil }
            isIPv4 = false
            tcpOffset = 14 + 40
        default:
            return nil
        }
        guard tcpOffset + 20 <= packet.count else { return nil }
        let tcpLength = Int(p.load(fromByteOffset: tcpOffset + 12, as: UInt8.self) >> 4) * 4
        headersLength = tcpOffset + tcpLength
        guard tcpLength >= 20, headersLength <= packet.count else { return nil }
    }

    func flags(_ packet: UnsafeRawBufferPointer) -> UInt8 { packet[tcpOffset + 13] }
}

/// The Internet checksum (RFC 1071), summed over native-order 16-bit words: the folded sum is then in the same
/// byte order as the words, so storing it natively writes the right bytes.
enum Checksum {
    static func sum(_ p: UnsafeRawPointer, _ count: Int, _ initial: UInt64 = 0) -> UInt64 {
        var acc = initial
        var i = 0
        while i + 8 <= count {
            acc &+= UInt64(p.loadUnaligned(fromByteOffset: i, as: UInt32.self))
            acc &+= UInt64(p.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
            i += 8
        }
        while i + 2 <= count {
            acc &+= UInt64(p.loadUnaligned(fromByteOffset: i, as: UInt16.self))
            i += 2
        }
        if i < count { acc &+= UInt64(p.load(fromByteOffset: i, as: UInt8.self)) }  // as the word [byte, 0]
        return acc
    }

    /// The ones' complement of the folded sum.
    static func finish(_ sum: UInt64) -> UInt16 {
        var s = sum
        while s >> 16 != 0 { s = (s & 0xffff) &+ (s >> 16) }
        return ~UInt16(s)
    }

    /// skb_checksum_help: sums from `start` to the end (the field at start + offset holds the pseudo-header sum)
    /// and stores the result in the field; 0 is sent as 0xffff (CSUM_MANGLED_0).
    static func complete(_ packet: UnsafeMutableRawBufferPointer, start: Int, offset: Int) {
        let p = packet.baseAddress!
        let result = finish(sum(p + start, packet.count - start))
        p.storeBytes(of: result == 0 ? 0xffff : result, toByteOffset: start + offset, as: UInt16.self)
    }
}

/// Step 3: cuts TCP super-frames into segments in a buffer of its own. One per loop thread.
final class TCPSegmenter {
    private let buffer: UnsafeMutableRawPointer
    private let capacity = 65_536 + 128

    init() { buffer = .allocate(byteCount: capacity, alignment: 64) }
    deinit { buffer.deallocate() }

    /// Calls `emit` with each segment of `packet` (`gsoSize` payload bytes each) until it returns false. Returns
    /// the number of segments emitted, or nil when the frame is not a TCP frame it can cut.
    func segment(
        _ packet: UnsafeRawBufferPointer, gsoSize: UInt32,
        emit: (UnsafeRawBufferPointer) -> Bool
    ) -> Int? {
        guard let tcp = TCPFrame(packet), gsoSize > 0 else { return nil }
        let headers = tcp.headersLength
        let payload = packet.count - headers
        let mss = Int(gsoSize)
        guard headers + min(mss, payload) <= capacity else { return nil }
        let source = packet.baseAddress!
        let ip = tcp.ipOffset
        let th = tcp.tcpOffset
        let tcpHeaderLength = headers - th
        let firstID = tcp.isIPv4 ? UInt16(bigEndian: source.loadUnaligned(fromByteOffset: ip + 4, as: UInt16.self)) : 0
        let firstSequence = UInt32(bigEndian: source.loadUnaligned(fromByteOffset: th + 4, as: UInt32.self))
        let flags = tcp.flags(packet)
        var offset = 0
        var index = 0
        repeat {
            let size = min(mss, payload - offset)
            let last = offset + size >= payload
            buffer.copyMemory(from: source, byteCount: headers)
            (buffer + headers).copyMemory(from: source + headers + offset, byteCount: size)
            let tcpLength = tcpHeaderLength + size
            var pseudo: UInt64
            if tcp.isIPv4 {
                let ipHeaderLength = th - ip
                buffer.storeBytes(
                    of: UInt16(ipHeaderLength + tcpLength).bigEndian, toByteOffset: ip + 2,
                    as: UInt16.self)
                buffer.storeBytes(
                    of: (firstID &+ UInt16(truncatingIfNeeded: index)).bigEndian, toByteOffset: ip + 4,
                    as: UInt16.self)
                buffer.storeBytes(of: UInt16(0), toByteOffset: ip + 10, as: UInt16.self)
                buffer.storeBytes(
                    of: Checksum.finish(Checksum.sum(buffer + ip, ipHeaderLength)), toByteOffset: ip + 10,
                    as: UInt16.self)
                pseudo = Checksum.sum(buffer + ip + 12, 8)  // source and destination addresses
            } else {
                buffer.storeBytes(of: UInt16(tcpLength).bigEndian, toByteOffset: ip + 4, as: UInt16.self)
                pseudo = Checksum.sum(buffer + ip + 8, 32)
            }
            pseudo &+= UInt64(UInt16(6).bigEndian) &+ UInt64(UInt16(tcpLength).bigEndian)
            buffer.storeBytes(of: (firstSequence &+ UInt32(offset)).bigEndian, toByteOffset: th + 4, as: UInt32.self)
            var segmentFlags = flags
            if !last { segmentFlags &= ~(TCPFrame.fin | TCPFrame.psh) }
            if index > 0 { segmentFlags &= ~TCPFrame.cwr }
            buffer.storeBytes(of: segmentFlags, toByteOffset: th + 13, as: UInt8.self)
            buffer.storeBytes(of: UInt16(0), toByteOffset: th + 16, as: UInt16.self)
            buffer.storeBytes(
                of: Checksum.finish(Checksum.sum(buffer + th, tcpLength, pseudo)), toByteOffset: th + 16,
                as: UInt16.self)
            guard emit(UnsafeRawBufferPointer(start: buffer, count: headers + size)) else { return index }
            offset += size
            index += 1
        } while offset < payload
        return index
    }
}
