import XDPEmuCore

/// Builds test frames byte by byte, independently of the parser under test: Ethernet with VLAN tags, IPv4 (with
/// options and fragment fields), IPv6 (with extension headers), TCP, UDP, ICMP and ICMPv6, with correct lengths and
/// checksums.
enum Packet {
    static let macA = MACAddress(0x02, 0, 0, 0, 0, 0x0A)
    static let macB = MACAddress(0x02, 0, 0, 0, 0, 0x0B)
    static let broadcast = MACAddress(0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF)

    /// VLAN tags, outermost first.
    typealias Tags = [(tpid: UInt16, tci: UInt16)]

    enum Transport {
        case tcp(source: UInt16, destination: UInt16)
        case udp(source: UInt16, destination: UInt16)
        case icmp(type: UInt8, code: UInt8)
        /// Any protocol number with no header of its own.
        case raw(UInt8)

        func number(ipv6: Bool) -> UInt8 {
            switch self {
            case .tcp: 6
            case .udp: 17
            case .icmp: ipv6 ? 58 : 1
            case .raw(let n): n
            }
        }
    }

    enum ExtensionHeader {
        case hopByHop
        case routing
        case destinationOptions
        case fragment(offset: UInt16, more: Bool)

        var number: UInt8 {
            switch self {
            case .hopByHop: 0
            case .routing: 43
            case .destinationOptions: 60
            case .fragment: 44
            }
        }
    }

    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
    static func be32(_ v: UInt32) -> [UInt8] { be16(UInt16(v >> 16)) + be16(UInt16(v & 0xFFFF)) }

    static func macBytes(_ mac: MACAddress) -> [UInt8] {
        mac.octets
    }

    /// "10.1.2.3" -> 4 bytes.
    static func v4(_ text: String) -> [UInt8] {
        let bytes = text.split(separator: ".").map { UInt8($0)! }
        precondition(bytes.count == 4)
        return bytes
    }

    /// Full (uncompressed, 8 groups) or "::"-compressed IPv6 text -> 16 bytes.
    static func v6(_ text: String) -> [UInt8] {
        let halves = text.split(separator: "::", omittingEmptySubsequences: false)
        let groups = { (half: Substring) in half.split(separator: ":").map { UInt16($0, radix: 16)! } }
        let head = groups(halves[0])
        let tail = halves.count > 1 ? groups(halves[1]) : []
        return (head + [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail).flatMap(be16)
    }

    /// The ones'-complement sum of 16-bit big-endian words (odd length padded with a zero byte), not complemented.
    static func onesSum(_ bytes: [UInt8], initial: UInt32 = 0) -> UInt32 {
        var sum = initial
        var i = 0
        while i < bytes.count {
            sum += UInt32(bytes[i]) << 8 | (i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0)
            i += 2
        }
        while sum >> 16 != 0 { sum = (sum & 0xFFFF) + (sum >> 16) }
        return sum
    }

    static func checksum(_ bytes: [UInt8], initial: UInt32 = 0) -> UInt16 { ~UInt16(onesSum(bytes, initial: initial)) }

    /// The transport header plus payload, checksum filled in over `pseudoHeader` (nil: ICMPv4, no pseudo-header).
    static func transport(_ t: Transport, payload: [UInt8], pseudoHeader: (([UInt8]) -> [UInt8])?) -> [UInt8] {
        var segment: [UInt8]
        var checksumOffset: Int?
        switch t {
        case .tcp(let s, let d):
            // Data offset 5 (20 bytes), ACK|PSH, window 512.
            segment = be16(s) + be16(d) + be32(1) + be32(2) + [0x50, 0x18] + be16(512) + [0, 0] + [0, 0]
            checksumOffset = 16
        case .udp(let s, let d):
            segment = be16(s) + be16(d) + be16(UInt16(8 + payload.count)) + [0, 0]
            checksumOffset = 6
        case .icmp(let type, let code):
            segment = [type, code, 0, 0] + be16(0x1234) + be16(1)
            checksumOffset = 2
        case .raw:
            segment = []
        }
        segment += payload
        if let offset = checksumOffset {
            let covered = pseudoHeader.map { $0(segment) } ?? []
            var sum = checksum(covered + segment)
            if case .udp = t, sum == 0 { sum = 0xFFFF }
            segment.replaceSubrange(offset..<offset + 2, with: be16(sum))
        }
        return segment
    }

    /// An IPv4 packet (header, options, transport, payload). `fragment` is the flags/offset field.
    static func ipv4(
        _ source: String, _ destination: String, _ t: Transport, payload: [UInt8] = [],
        options: [UInt8] = [], fragment: UInt16 = 0, transportHeader: Bool = true
    ) -> [UInt8] {
        precondition(options.count % 4 == 0)
        let src = v4(source)
        let dst = v4(destination)
        let proto = t.number(ipv6: false)
        let body: [UInt8]
        if transportHeader {
            let isICMP = proto == 1
            body = transport(
                t, payload: payload,
                pseudoHeader: isICMP
                    ? nil
                    : { segment in
                        src + dst + [0, proto] + be16(UInt16(segment.count))
                    })
        } else {
            body = payload
        }
        let headerLength = 20 + options.count
        var header: [UInt8] = [0x40 | UInt8(headerLength / 4), 0] + be16(UInt16(headerLength + body.count))
        header += be16(0x4242) + be16(fragment) + [64, proto, 0, 0] + src + dst + options
        header.replaceSubrange(10..<12, with: be16(checksum(header)))
        return header + body
    }

    /// An IPv6 packet with the given extension headers (each 8 bytes) in order before the transport.
    static func ipv6(
        _ source: String, _ destination: String, _ t: Transport, payload: [UInt8] = [],
        extensionHeaders: [ExtensionHeader] = [], transportHeader: Bool = true
    ) -> [UInt8] {
        let src = v6(source)
        let dst = v6(destination)
        let proto = t.number(ipv6: true)
        let body =
            transportHeader
            ? transport(
                t, payload: payload,
                pseudoHeader: { segment in
                    src + dst + be32(UInt32(segment.count)) + [0, 0, 0, proto]
                })
            : payload
        var chain: [UInt8] = []
        for (i, header) in extensionHeaders.enumerated() {
            let next = i + 1 < extensionHeaders.count ? extensionHeaders[i + 1].number : proto
            switch header {
            case .hopByHop, .destinationOptions:
                chain += [next, 0, 1, 4, 0, 0, 0, 0]  // PadN of 4: 8 bytes in all
            case .routing:
                chain += [next, 0, 4, 0, 0, 0, 0, 0]  // segments left 0: ignored by every node
            case .fragment(let offset, let more):
                chain += [next, 0] + be16(offset << 3 | (more ? 1 : 0)) + be32(0xABCD)
            }
        }
        let first = extensionHeaders.first?.number ?? proto
        let header: [UInt8] = [0x60, 0, 0, 0] + be16(UInt16(chain.count + body.count)) + [first, 64] + src + dst
        return header + chain + body
    }

    /// An Ethernet frame: destination, source, VLAN tags (TPID, TCI; outermost first), EtherType, payload.
    static func ethernet(
        _ destination: MACAddress = macB, _ source: MACAddress = macA,
        vlans: Tags = [], etherType: UInt16, _ payload: [UInt8]
    ) -> [UInt8] {
        var frame = macBytes(destination) + macBytes(source)
        for tag in vlans { frame += be16(tag.tpid) + be16(tag.tci) }
        return frame + be16(etherType) + payload
    }

    static func ipv4Frame(
        _ source: String, _ destination: String, _ t: Transport, vlans: Tags = [],
        payload: [UInt8] = [], dst: MACAddress = macB, src: MACAddress = macA
    ) -> [UInt8] {
        ethernet(dst, src, vlans: vlans, etherType: 0x0800, ipv4(source, destination, t, payload: payload))
    }

    static func ipv6Frame(
        _ source: String, _ destination: String, _ t: Transport, vlans: Tags = [],
        extensionHeaders: [ExtensionHeader] = [], payload: [UInt8] = [],
        dst: MACAddress = macB, src: MACAddress = macA
    ) -> [UInt8] {
        ethernet(
            dst, src, vlans: vlans, etherType: 0x86DD,
            ipv6(source, destination, t, payload: payload, extensionHeaders: extensionHeaders))
    }

    /// An ARP request from `src` (who-has 10.0.0.2 tell 10.0.0.1), broadcast unless told otherwise.
    static func arp(src: MACAddress = macA, dst: MACAddress = broadcast) -> [UInt8] {
        let body: [UInt8] =
            be16(1) + be16(0x0800) + [6, 4] + be16(1) + macBytes(src) + v4("10.0.0.1")
            + [0, 0, 0, 0, 0, 0] + v4("10.0.0.2")
        return ethernet(dst, src, etherType: 0x0806, body)
    }

    /// Whether the IPv4 header checksum and the TCP/UDP/ICMP checksum of an untagged frame verify.
    static func checksumsVerify(_ frame: [UInt8]) -> Bool {
        let etherType = UInt16(frame[12]) << 8 | UInt16(frame[13])
        if etherType == 0x0800 {
            let ihl = Int(frame[14] & 0x0F) * 4
            let header = Array(frame[14..<14 + ihl])
            guard onesSum(header) == 0xFFFF else { return false }
            let proto = header[9]
            let segment = Array(frame[(14 + ihl)...])
            let pseudo = proto == 1 ? [] : Array(header[12..<20]) + [0, proto] + be16(UInt16(segment.count))
            return onesSum(pseudo + segment) == 0xFFFF
        }
        if etherType == 0x86DD {
            let header = Array(frame[14..<54])
            let proto = header[6]
            let segment = Array(frame[54...])
            return onesSum(Array(header[8..<40]) + be32(UInt32(segment.count)) + [0, 0, 0, proto] + segment) == 0xFFFF
        }
        return true
    }
}
