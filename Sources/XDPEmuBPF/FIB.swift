// bpf_fib_lookup's table: the emulator's idea of where an address lives. Built by the runtime from the topology's
// hosts: each host address is a route to the port the host sits behind with the host's MAC as next hop; the
// host's subnet is a route to that port with no known neighbour. Longest prefix wins.

import XDPEmuCore

/// One route of `bpf_fib_lookup`.
public struct FIBRoute: Sendable, Equatable {
    public var prefix: IPAddress
    public var prefixLength: Int
    /// The port the route leaves by, and its MAC (the frame's new source).
    public var ifindex: IfIndex
    public var source: MACAddress
    /// The neighbour's MAC (the frame's new destination); nil: BPF_FIB_LKUP_RET_NO_NEIGH.
    public var destination: MACAddress?

    public init(prefix: IPAddress, prefixLength: Int, ifindex: IfIndex, source: MACAddress, destination: MACAddress?) {
        self.prefix = prefix
        self.prefixLength = prefixLength
        self.ifindex = ifindex
        self.source = source
        self.destination = destination
    }

    func contains(_ address: IPAddress) -> Bool {
        guard address.family == prefix.family else { return false }
        let width = address.family.bitWidth
        let shift = width - prefixLength
        func masked(_ a: IPAddress) -> (UInt64, UInt64) {
            if width == 32 { return (0, shift >= 32 ? 0 : a.low >> UInt64(shift)) }
            if shift >= 128 { return (0, 0) }
            if shift >= 64 { return (a.high >> UInt64(shift - 64), 0) }
            return (a.high, shift == 0 ? a.low : a.low >> UInt64(shift))
        }
        return masked(address) == masked(prefix)
    }
}

extension BPFMachine {
    /// `bpf_fib_lookup(ctx, params, plen, flags)` on `fib`: the params' family and destination pick the route;
    /// success fills ifindex, smac and dmac and answers 0; a route without a neighbour answers
    /// BPF_FIB_LKUP_RET_NO_NEIGH (7) with ifindex and smac filled; no route BPF_FIB_LKUP_RET_NOT_FWDED (4). A
    /// family other than AF_INET and AF_INET6 is EAFNOSUPPORT, a params size below 64 bytes EINVAL.
    func fibLookup(_ params: UnsafeMutableRawPointer, size: Int) -> Int64 {
        guard size >= 64 else { return -22 }
        let address: IPAddress
        switch params.load(as: UInt8.self) {
        case 2:
            address = IPAddress(ipv4: UInt32(bigEndian: params.loadUnaligned(fromByteOffset: 32, as: UInt32.self)))
        case 10:
            address = IPAddress(
                ipv6High: UInt64(bigEndian: params.loadUnaligned(fromByteOffset: 32, as: UInt64.self)),
                low: UInt64(bigEndian: params.loadUnaligned(fromByteOffset: 40, as: UInt64.self)))
        default:
            return -97
        }
        var best: FIBRoute?
        for route in fib where route.contains(address) && route.prefixLength >= (best?.prefixLength ?? -1) {
            best = route
        }
        guard let route = best else { return 4 }
        params.storeBytes(of: route.ifindex.rawValue, toByteOffset: 8, as: UInt32.self)
        func store(_ mac: MACAddress, at offset: Int) {
            for i in 0..<6 {
                params.storeBytes(
                    of: UInt8(truncatingIfNeeded: mac.rawValue >> UInt64(40 - 8 * i)), toByteOffset: offset + i,
                    as: UInt8.self)
            }
        }
        store(route.source, at: 52)
        guard let destination = route.destination else { return 7 }
        store(destination, at: 58)
        return 0
    }
}
