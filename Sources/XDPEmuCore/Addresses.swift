// Link-layer and IP addresses, one type per concept, shared by the datapath, the programs, the topology model and
// the OS layer.
//
// Each type is a few fixed-size integers, so the datapath builds and compares them without allocating. Each has one
// text form, the one topology files use; the topology decoder parses it once (reporting a JSON path when it fails),
// and everything after works on the values. `description` prints the canonical form, so a value read from a file
// and printed in a message looks like what the user wrote (modulo case and IPv6 zero compression).

/// An Ethernet (EUI-48) address, written `02:00:00:00:00:01`.
public struct MACAddress: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The six octets in frame order read as a little-endian integer (the first octet in the low byte), so that
    /// loading an address from a frame is two loads and no byte swap: the header parser loads two per frame.
    @usableFromInline var octetsInFrameOrder: UInt64

    /// The six octets, most significant first, in the low 48 bits (`02:00:00:00:00:01` is `0x0200_0000_0001`).
    @inlinable
    public var rawValue: UInt64 {
        get { octetsInFrameOrder.byteSwapped >> 16 }
        set { octetsInFrameOrder = ((newValue & 0xFFFF_FFFF_FFFF) << 16).byteSwapped }
    }

    /// Creates an address from the low 48 bits of `rawValue`.
    @inlinable
    public init(rawValue: UInt64) { octetsInFrameOrder = ((rawValue & 0xFFFF_FFFF_FFFF) << 16).byteSwapped }

    /// Creates an address from six octets.
    @inlinable
    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8, _ b4: UInt8, _ b5: UInt8) {
        octetsInFrameOrder =
            UInt64(b0) | UInt64(b1) << 8 | UInt64(b2) << 16 | UInt64(b3) << 24 | UInt64(b4) << 32
            | UInt64(b5) << 40
    }

    /// Reads the six bytes at `pointer` (a frame's destination or source address).
    @inlinable @inline(__always)
    public init(loadingFrom pointer: UnsafeRawPointer) {
        let first = UInt32(littleEndian: pointer.loadUnaligned(as: UInt32.self))
        let last = UInt16(littleEndian: pointer.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
        octetsInFrameOrder = UInt64(first) | UInt64(last) << 32
    }

    /// Parses six colon-separated pairs of hex digits (either case), e.g. `02:00:00:00:00:01`; nil otherwise.
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

    /// The broadcast address `ff:ff:ff:ff:ff:ff`.
    public static var broadcast: MACAddress { MACAddress(rawValue: 0xFFFF_FFFF_FFFF) }

    /// The six octets, most significant first.
    public var octets: [UInt8] { (0..<6).map { UInt8(truncatingIfNeeded: rawValue >> UInt64(40 - 8 * $0)) } }

    /// True for group (multicast and broadcast) addresses: the I/G bit of the first octet is set.
    @inlinable
    public var isMulticast: Bool { octetsInFrameOrder & 1 != 0 }

    /// Lowercase, colon-separated, two digits per octet.
    public var description: String { octets.map(hex2).joined(separator: ":") }
}

/// An IPv4 or IPv6 address as fixed-size integers.
///
/// IPv6: `high` holds bytes 0...7 and `low` bytes 8...15, each read big-endian (so `high >> 56` is the first byte).
/// IPv4: `high` is 0 and `low` holds the address in its low 32 bits (`low >> 24` is the first byte).
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    public enum Family: UInt8, Hashable, Sendable {
        case ipv4 = 4
        case ipv6 = 6

        /// Address length in bits.
        @inlinable public var bitWidth: Int { self == .ipv4 ? 32 : 128 }
    }

    public var family: Family
    public var high: UInt64
    public var low: UInt64

    @inlinable
    public init(ipv4 value: UInt32) {
        family = .ipv4
        high = 0
        low = UInt64(value)
    }

    @inlinable
    public init(ipv6High high: UInt64, low: UInt64) {
        family = .ipv6
        self.high = high
        self.low = low
    }

    /// Parses dotted-quad IPv4 (`10.0.0.1`: four decimal octets without leading zeros, which some tools read as
    /// octal) or IPv6 in any RFC 4291 text form without a zone index (`2001:db8::1`, `::ffff:10.0.0.1`); the
    /// presence of a colon selects IPv6. Nil when malformed.
    public init?(_ text: String) {
        if text.contains(":") {
            guard let groups = parseIPv6Groups(text) else { return nil }
            let word = { (range: Range<Int>) in range.reduce(UInt64(0)) { $0 << 16 | UInt64(groups[$1]) } }
            self.init(ipv6High: word(0..<4), low: word(4..<8))
        } else {
            guard let value = parseIPv4(Substring(text)) else { return nil }
            self.init(ipv4: value)
        }
    }

    /// The IPv4 address, or nil for IPv6.
    @inlinable public var ipv4Value: UInt32? { family == .ipv4 ? UInt32(truncatingIfNeeded: low) : nil }

    /// The eight 16-bit groups of an IPv6 address, most significant first (for IPv4, its IPv4-compatible form).
    public var groups: [UInt16] {
        (0..<8).map { i in UInt16(truncatingIfNeeded: (i < 4 ? high : low) >> UInt64(48 - 16 * (i % 4))) }
    }

    /// True for IPv6 `fe80::/10`, where a gateway needs no on-link prefix.
    public var isLinkLocal: Bool { family == .ipv6 && high >> 54 == 0x3FA }

    /// IPv4 dotted quad; IPv6 in the RFC 5952 form (lowercase, the longest run of two or more zero groups as `::`,
    /// the first one on a tie).
    public var description: String {
        if family == .ipv4 {
            return (0..<4).map { String((low >> UInt64(24 - 8 * $0)) & 0xff) }.joined(separator: ".")
        }
        let groups = self.groups
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

/// An IPv4 or IPv6 network: an address with its host bits cleared and a prefix length, as ACL rules and route
/// destinations use. The masks of both 64-bit halves are precomputed, so matching is two ANDs and two compares.
public struct IPPrefix: Hashable, Sendable, CustomStringConvertible {
    /// The network address (host bits zero).
    public let address: IPAddress
    /// Prefix length in bits: 0...32 for IPv4, 0...128 for IPv6.
    public let length: Int
    @usableFromInline let maskHigh: UInt64
    @usableFromInline let maskLow: UInt64

    /// The network of `address`: its host bits are cleared. `length` must fit the family.
    public init(_ address: IPAddress, length: Int) {
        precondition(length >= 0 && length <= address.family.bitWidth, "prefix length out of range")
        // Place the prefix bits at the top of the 128-bit (IPv6) or the low 32-bit (IPv4, see IPAddress) field.
        let bits = address.family == .ipv4 ? 96 + length : length
        let high: UInt64 = bits >= 64 ? .max : (bits == 0 ? 0 : .max << UInt64(64 - bits))
        let low: UInt64 = bits <= 64 ? 0 : (bits >= 128 ? .max : .max << UInt64(128 - bits))
        maskHigh = address.family == .ipv4 ? 0 : high
        maskLow = low
        var network = address
        network.high &= maskHigh
        network.low &= maskLow
        self.address = network
        self.length = length
    }

    /// Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a host prefix); host bits are cleared. Nil when
    /// malformed (see `InterfaceAddress.init(_:allowBareAddress:)`).
    public init?(_ text: String) {
        guard let parsed = InterfaceAddress(text, allowBareAddress: true) else { return nil }
        self = parsed.prefix
    }

    /// Whether `candidate` is in the prefix (never, for the other family).
    @inlinable @inline(__always)
    public func contains(_ candidate: IPAddress) -> Bool {
        candidate.family == address.family && candidate.high & maskHigh == address.high
            && candidate.low & maskLow == address.low
    }

    public var description: String { "\(address)/\(length)" }
}

/// An address assigned to an interface together with the length of its on-link prefix, as `ip addr add
/// 10.77.0.1/24` takes it. Unlike an `IPPrefix` it keeps its host bits: they are the interface's address.
public struct InterfaceAddress: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    /// 0...32 for IPv4, 0...128 for IPv6.
    public let prefixLength: Int

    /// `prefixLength` must fit the family.
    public init(_ address: IPAddress, prefixLength: Int) {
        precondition(prefixLength >= 0 && prefixLength <= address.family.bitWidth, "prefix length out of range")
        self.address = address
        self.prefixLength = prefixLength
    }

    /// Parses `address/length` (the length decimal, without leading zeros); a bare address (a host prefix: /32 or
    /// /128) only with `allowBareAddress`. Nil when malformed.
    public init?(_ text: String, allowBareAddress: Bool = false) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, allowBareAddress || parts.count == 2, let address = IPAddress(String(parts[0])) else {
            return nil
        }
        var length = address.family.bitWidth
        if parts.count == 2 {
            guard let value = parseDecimal(parts[1], max: address.family.bitWidth) else { return nil }
            length = value
        }
        self.init(address, prefixLength: length)
    }

    /// The on-link network.
    public var prefix: IPPrefix { IPPrefix(address, length: prefixLength) }

    /// True when no host bit is set, i.e. the text names a network.
    public var isNetwork: Bool { prefix.address == address }

    public var description: String { "\(address)/\(prefixLength)" }
}

// MARK: - Text helpers

private func hex2(_ octet: UInt8) -> String {
    let digits = Array("0123456789abcdef")
    return String([digits[Int(octet >> 4)], digits[Int(octet & 0xF)]])
}

/// True when `text` is only hex digits (`UInt8(_:radix:)` alone would also take a sign).
private func isHex<S: StringProtocol>(_ text: S) -> Bool {
    text.utf8.allSatisfy {
        ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
            || (($0 | 0x20) >= UInt8(ascii: "a") && ($0 | 0x20) <= UInt8(ascii: "f"))
    }
}

/// Parses a plain decimal number without sign or leading zeros, at most `max`.
private func parseDecimal<S: StringProtocol>(_ text: S, max: Int) -> Int? {
    let bytes = Array(text.utf8)
    guard !bytes.isEmpty, bytes.count <= 10, bytes.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
    else { return nil }
    guard bytes.count == 1 || bytes[0] != UInt8(ascii: "0") else { return nil }
    guard let value = Int(String(decoding: bytes, as: UTF8.self)), value <= max else { return nil }
    return value
}

private func parseIPv4(_ text: Substring) -> UInt32? {
    let groups = text.split(separator: ".", omittingEmptySubsequences: false)
    guard groups.count == 4 else { return nil }
    var value: UInt32 = 0
    for group in groups {
        guard let octet = parseDecimal(group, max: 255) else { return nil }
        value = value << 8 | UInt32(octet)
    }
    return value
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
                guard let v4 = parseIPv4(part) else { return nil }
                result.append(UInt16(truncatingIfNeeded: v4 >> 16))
                result.append(UInt16(truncatingIfNeeded: v4))
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
