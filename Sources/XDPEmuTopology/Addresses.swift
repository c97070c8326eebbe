// Link-layer and IP address types used by topology files.
//
// They parse the one text form each that the format documents and print it back canonically, so a value read from a
// file and printed in a message looks like what the user wrote (modulo case and IPv6 zero compression).

/// An Ethernet (EUI-48) address, written `02:00:00:00:00:01` in topology files.
public struct MACAddress: Sendable, Hashable, CustomStringConvertible {
    /// The six octets, most significant first, in the low 48 bits.
    public let rawValue: UInt64

    /// The broadcast address `ff:ff:ff:ff:ff:ff`.
    public static let broadcast = MACAddress(rawValue: 0xFFFF_FFFF_FFFF)

    /// Creates an address from the low 48 bits of `rawValue`.
    public init(rawValue: UInt64) {
        self.rawValue = rawValue & 0xFFFF_FFFF_FFFF
    }

    /// Creates an address from six octets.
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8, _ e: UInt8, _ f: UInt8) {
        var value: UInt64 = 0
        for octet in [a, b, c, d, e, f] {
            value = value << 8 | UInt64(octet)
        }
        self.init(rawValue: value)
    }

    /// Parses six colon-separated pairs of hex digits (either case), e.g. `02:00:00:00:00:01`.
    public init?(_ text: String) {
        let groups = text.split(separator: ":", omittingEmptySubsequences: false)
        guard groups.count == 6 else { return nil }
        var value: UInt64 = 0
        for group in groups {
            guard group.utf8.count == 2, isHex(group), let octet = UInt8(group, radix: 16) else { return nil }
            value = value << 8 | UInt64(octet)
        }
        self.init(rawValue: value)
    }

    /// The six octets, most significant first.
    public var octets: [UInt8] {
        (0..<6).map { UInt8(truncatingIfNeeded: rawValue >> UInt64(40 - 8 * $0)) }
    }

    /// True for group (multicast and broadcast) addresses: the I/G bit of the first octet is set.
    public var isMulticast: Bool { rawValue & 0x0100_0000_0000 != 0 }

    /// Lowercase, colon-separated, two digits per octet.
    public var description: String {
        octets.map { hex2($0) }.joined(separator: ":")
    }
}

/// An IPv4 address, written in dotted-quad form.
public struct IPv4Address: Sendable, Hashable, CustomStringConvertible {
    /// The address in host byte order (`10.0.0.1` is `0x0A00_0001`).
    public let rawValue: UInt32

    /// Creates an address from its value in host byte order.
    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// Parses four decimal octets `0...255`. Leading zeros are refused because some tools read them as octal.
    public init?(_ text: String) {
        let groups = text.split(separator: ".", omittingEmptySubsequences: false)
        guard groups.count == 4 else { return nil }
        var value: UInt32 = 0
        for group in groups {
            guard let octet = parseDecimal(group, max: 255) else { return nil }
            value = value << 8 | UInt32(octet)
        }
        rawValue = value
    }

    /// The four octets in network order.
    public var octets: [UInt8] {
        (0..<4).map { UInt8(truncatingIfNeeded: rawValue >> UInt32(24 - 8 * $0)) }
    }

    public var description: String {
        octets.map(String.init).joined(separator: ".")
    }
}

/// An IPv6 address, written in any RFC 4291 text form (no zone index) and printed in RFC 5952 form.
public struct IPv6Address: Sendable, Hashable, CustomStringConvertible {
    /// The 128-bit address, most significant bit first.
    public let rawValue: UInt128

    /// Creates an address from its 128-bit value.
    public init(rawValue: UInt128) {
        self.rawValue = rawValue
    }

    /// Parses `2001:db8::1`, `::`, `::ffff:10.0.0.1` and the other RFC 4291 forms.
    public init?(_ text: String) {
        guard let groups = parseIPv6Groups(text) else { return nil }
        rawValue = groups.reduce(UInt128(0)) { $0 << 16 | UInt128($1) }
    }

    /// The eight 16-bit groups, most significant first.
    public var groups: [UInt16] {
        (0..<8).map { UInt16(truncatingIfNeeded: rawValue >> UInt128(112 - 16 * $0)) }
    }

    /// True for `fe80::/10`, where a gateway needs no on-link prefix.
    public var isLinkLocal: Bool { rawValue >> 118 == 0x3FA }

    public var description: String {
        let groups = self.groups
        // RFC 5952: compress the longest run of two or more zero groups, the first one on a tie.
        var best: Range<Int>? = nil
        var index = 0
        while index < 8 {
            guard groups[index] == 0 else {
                index += 1
                continue
            }
            var end = index
            while end < 8 && groups[end] == 0 { end += 1 }
            if end - index >= 2 && end - index > (best?.count ?? 0) { best = index..<end }
            index = end
        }
        let text = { (slice: ArraySlice<UInt16>) in slice.map { String($0, radix: 16) }.joined(separator: ":") }
        guard let best else { return text(groups[...]) }
        return text(groups[..<best.lowerBound]) + "::" + text(groups[best.upperBound...])
    }
}

/// An IPv4 or IPv6 address.
public enum IPAddress: Sendable, Hashable, CustomStringConvertible {
    case v4(IPv4Address)
    case v6(IPv6Address)

    /// Parses either family; the presence of a colon selects IPv6.
    public init?(_ text: String) {
        if text.contains(":") {
            guard let address = IPv6Address(text) else { return nil }
            self = .v6(address)
        } else {
            guard let address = IPv4Address(text) else { return nil }
            self = .v4(address)
        }
    }

    public var description: String {
        switch self {
        case .v4(let address): address.description
        case .v6(let address): address.description
        }
    }
}

/// An IPv4 address with a prefix length, e.g. `10.77.0.1/24`.
///
/// The address may have host bits set: a host's interface address is written this way. Where a network is meant
/// (ACL rules, route destinations) the loader checks ``isNetwork``.
public struct IPv4CIDR: Sendable, Hashable, CustomStringConvertible {
    public var address: IPv4Address
    /// `0...32`.
    public var prefixLength: Int

    /// Creates a prefix; `prefixLength` must be `0...32`.
    public init(address: IPv4Address, prefixLength: Int) {
        precondition((0...32).contains(prefixLength), "IPv4 prefix length \(prefixLength) outside 0...32")
        self.address = address
        self.prefixLength = prefixLength
    }

    /// Parses `a.b.c.d/len`; without `/len` only when `defaultPrefix` is given.
    public init?(_ text: String, defaultPrefix: Int? = nil) {
        guard let (addressText, prefix) = splitPrefix(text, max: 32, defaultPrefix: defaultPrefix),
            let address = IPv4Address(addressText)
        else { return nil }
        self.init(address: address, prefixLength: prefix)
    }

    /// The mask of the prefix bits in host byte order.
    public var mask: UInt32 { prefixLength == 0 ? 0 : UInt32.max << UInt32(32 - prefixLength) }
    /// The address with its host bits cleared.
    public var network: IPv4Address { IPv4Address(rawValue: address.rawValue & mask) }
    /// True when no host bit is set.
    public var isNetwork: Bool { address == network }

    /// True when `other` is inside this prefix.
    public func contains(_ other: IPv4Address) -> Bool { other.rawValue & mask == address.rawValue & mask }

    public var description: String { "\(address)/\(prefixLength)" }
}

/// An IPv6 address with a prefix length, e.g. `fd00::1/64`. See ``IPv4CIDR`` about host bits.
public struct IPv6CIDR: Sendable, Hashable, CustomStringConvertible {
    public var address: IPv6Address
    /// `0...128`.
    public var prefixLength: Int

    /// Creates a prefix; `prefixLength` must be `0...128`.
    public init(address: IPv6Address, prefixLength: Int) {
        precondition((0...128).contains(prefixLength), "IPv6 prefix length \(prefixLength) outside 0...128")
        self.address = address
        self.prefixLength = prefixLength
    }

    /// Parses `address/len`; without `/len` only when `defaultPrefix` is given.
    public init?(_ text: String, defaultPrefix: Int? = nil) {
        guard let (addressText, prefix) = splitPrefix(text, max: 128, defaultPrefix: defaultPrefix),
            let address = IPv6Address(addressText)
        else { return nil }
        self.init(address: address, prefixLength: prefix)
    }

    /// The mask of the prefix bits.
    public var mask: UInt128 { prefixLength == 0 ? 0 : UInt128.max << UInt128(128 - prefixLength) }
    /// The address with its host bits cleared.
    public var network: IPv6Address { IPv6Address(rawValue: address.rawValue & mask) }
    /// True when no host bit is set.
    public var isNetwork: Bool { address == network }

    /// True when `other` is inside this prefix.
    public func contains(_ other: IPv6Address) -> Bool { other.rawValue & mask == address.rawValue & mask }

    public var description: String { "\(address)/\(prefixLength)" }
}

/// An IPv4 or IPv6 prefix.
public enum IPCIDR: Sendable, Hashable, CustomStringConvertible {
    case v4(IPv4CIDR)
    case v6(IPv6CIDR)

    /// Parses either family; the presence of a colon selects IPv6.
    public init?(_ text: String, allowBareAddress: Bool = false) {
        if text.contains(":") {
            guard let cidr = IPv6CIDR(text, defaultPrefix: allowBareAddress ? 128 : nil) else { return nil }
            self = .v6(cidr)
        } else {
            guard let cidr = IPv4CIDR(text, defaultPrefix: allowBareAddress ? 32 : nil) else { return nil }
            self = .v4(cidr)
        }
    }

    /// True for IPv6.
    public var isIPv6: Bool {
        if case .v6 = self { return true }
        return false
    }

    /// True when no host bit is set.
    public var isNetwork: Bool {
        switch self {
        case .v4(let cidr): cidr.isNetwork
        case .v6(let cidr): cidr.isNetwork
        }
    }

    /// The same prefix with host bits cleared.
    public var networkCIDR: IPCIDR {
        switch self {
        case .v4(let cidr): .v4(IPv4CIDR(address: cidr.network, prefixLength: cidr.prefixLength))
        case .v6(let cidr): .v6(IPv6CIDR(address: cidr.network, prefixLength: cidr.prefixLength))
        }
    }

    public var description: String {
        switch self {
        case .v4(let cidr): cidr.description
        case .v6(let cidr): cidr.description
        }
    }
}

// MARK: - Text helpers

private func hex2(_ octet: UInt8) -> String {
    let digits = Array("0123456789abcdef")
    return String([digits[Int(octet >> 4)], digits[Int(octet & 0xF)]])
}

/// True when `text` is only hex digits (`UInt8(_:radix:)` alone would also take a sign).
private func isHex<S: StringProtocol>(_ text: S) -> Bool {
    text.utf8.allSatisfy { isASCIIDigit($0) || (($0 | 0x20) >= UInt8(ascii: "a") && ($0 | 0x20) <= UInt8(ascii: "f")) }
}

/// Parses a plain decimal number without sign or leading zeros, at most `max`.
func parseDecimal<S: StringProtocol>(_ text: S, max: Int) -> Int? {
    let bytes = Array(text.utf8)
    guard !bytes.isEmpty, bytes.count <= 10, bytes.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
    else { return nil }
    guard bytes.count == 1 || bytes[0] != UInt8(ascii: "0") else { return nil }
    guard let value = Int(String(decoding: bytes, as: UTF8.self)), value <= max else { return nil }
    return value
}

private func splitPrefix(_ text: String, max: Int, defaultPrefix: Int?) -> (String, Int)? {
    let parts = text.split(separator: "/", omittingEmptySubsequences: false)
    switch parts.count {
    case 1:
        guard let defaultPrefix else { return nil }
        return (text, defaultPrefix)
    case 2:
        guard let prefix = parseDecimal(parts[1], max: max) else { return nil }
        return (String(parts[0]), prefix)
    default:
        return nil
    }
}

private func parseIPv6Groups(_ text: String) -> [UInt16]? {
    guard !text.isEmpty, !text.contains("%") else { return nil }
    var halves: [String] = []
    var rest = Substring(text)
    while let range = rest.firstRange(of: "::") {
        halves.append(String(rest[..<range.lowerBound]))
        rest = rest[range.upperBound...]
    }
    halves.append(String(rest))
    guard halves.count <= 2 else { return nil }

    // Each side is a list of hex groups; the last group of the whole address may be a dotted IPv4 address.
    func groups(_ side: String, mayEndWithIPv4: Bool) -> [UInt16]? {
        if side.isEmpty { return [] }
        var result: [UInt16] = []
        let parts = side.split(separator: ":", omittingEmptySubsequences: false)
        for (index, part) in parts.enumerated() {
            if index == parts.count - 1 && mayEndWithIPv4 && part.contains(".") {
                guard let v4 = IPv4Address(String(part)) else { return nil }
                result.append(UInt16(truncatingIfNeeded: v4.rawValue >> 16))
                result.append(UInt16(truncatingIfNeeded: v4.rawValue))
            } else {
                guard (1...4).contains(part.utf8.count), isHex(part), let group = UInt16(part, radix: 16) else {
                    return nil
                }
                result.append(group)
            }
        }
        return result
    }

    if halves.count == 1 {
        guard let all = groups(halves[0], mayEndWithIPv4: true), all.count == 8 else { return nil }
        return all
    }
    guard let head = groups(halves[0], mayEndWithIPv4: false), let tail = groups(halves[1], mayEndWithIPv4: true),
        head.count + tail.count <= 7
    else { return nil }
    return head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
}
