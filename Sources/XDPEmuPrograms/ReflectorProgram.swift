import XDPEmuCore

/// The `reflector` program: sends every frame back out of the device it came in on (XDP_TX), its Ethernet source
/// and destination swapped; optionally also the IP addresses (`swapIP`) and the TCP/UDP ports (`swapPorts`).
///
/// Non-IP frames, and IP frames whose headers are malformed, only have their MACs swapped; ports are swapped only
/// when a complete TCP or UDP header is present (so not in a non-first fragment). Frames shorter than an Ethernet
/// header are dropped.
///
/// The program holds only its two options, so a topology's `{"type": "reflector", ...}` decodes straight into it.
///
/// No checksum needs updating. The IPv4 header checksum is the ones' complement of the ones'-complement sum of the
/// header's 16-bit words, and the TCP/UDP checksum is the same kind of sum over a pseudo-header (both addresses) plus
/// the segment (both ports). Addition is commutative, so exchanging two equally sized fields that are both in the
/// sum, each on 16-bit boundaries, leaves the sum, and so the checksum, as it was.
public struct ReflectorProgram: XDPProgram, Equatable, Sendable {
    public let swapIP: Bool
    public let swapPorts: Bool

    public init(swapIP: Bool = true, swapPorts: Bool = false) {
        self.swapIP = swapIP
        self.swapPorts = swapPorts
    }

    public mutating func run(_ context: inout XDPContext) -> XDPAction {
        guard context.length >= KernelConstants.ethHeaderLength else { return .drop }
        let data = context.data
        ReflectorProgram.swap(data, 0, 6, bytes: 6)
        guard swapIP || swapPorts, let headers = PacketHeaders(parsing: context), headers.network != .other,
            !headers.isMalformed
        else { return .tx }
        if swapIP {
            // The parser read both addresses, so they lie inside the packet.
            let (offset, size) = headers.network == .ipv4 ? (12, 4) : (8, 16)
            let source = headers.networkOffset + offset
            ReflectorProgram.swap(data, source, source + size, bytes: size)
        }
        if swapPorts, headers.hasPorts, let transport = headers.transportOffset {
            ReflectorProgram.swap(data, transport, transport + 2, bytes: 2)
        }
        return .tx
    }

    /// Exchanges the non-overlapping `bytes`-byte fields at offsets `a` and `b`.
    @inline(__always)
    private static func swap(_ data: UnsafeMutableRawPointer, _ a: Int, _ b: Int, bytes: Int) {
        for i in 0..<bytes {
            let x = data.load(fromByteOffset: a + i, as: UInt8.self)
            data.storeBytes(of: data.load(fromByteOffset: b + i, as: UInt8.self), toByteOffset: a + i, as: UInt8.self)
            data.storeBytes(of: x, toByteOffset: b + i, as: UInt8.self)
        }
    }
}
