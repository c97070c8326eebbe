import XDPEmuCore
import XDPEmuTopology

/// How large a worker's frame buffers are and how many its pool holds: the one place that decides it, for replay,
/// live mode and an emulation built for tests.
///
/// A buffer holds the XDP headroom, the largest frame that can arrive and the room the kernel keeps for
/// `skb_shared_info`; it is never smaller than a buffer for the largest port (its MTU, an Ethernet header and a
/// VLAN tag). What bounds the largest frame, and how many frames can be in flight, depends on where frames come
/// from (`Source`).
public struct FrameSizing: Equatable, Sendable {
    /// Where the frames come from, with what that tells about their size and number.
    public enum Source: Equatable, Sendable {
        /// Traces replayed offline: the largest captured length of all of them bounds a frame (a buffer holds at
        /// least 2048 bytes of packet). Every ring can be full, each trace has a frame staged and a few budgets
        /// are in flight; the pool stays within 4 GiB of buffers (and holds at least 256 frames), because its
        /// size decides when a ring fills or the pool runs out, which replay's outputs show.
        case traces(largestCapturedLength: Int, count: Int)
        /// TAPs in live mode: the largest MTU of a port or of its host bounds a frame, or a GSO super-frame of
        /// 64 KiB when a port has virtio-net headers. The loop puts at most a budget of frames into a ring before
        /// polling it, so the pool holds a few budgets per port and every bulk queue full (at least 1024 frames);
        /// an exhausted pool only delays reading (frames wait in the TAP's queue).
        case taps
        /// Frames injected by the caller (tests): room for every ring full and a few budgets, up to 2^20 frames.
        case injected
    }

    /// Bytes per frame buffer, headroom included.
    public var bufferSize: Int
    /// Frames per worker pool.
    public var poolCapacity: Int

    public init(bufferSize: Int, poolCapacity: Int) {
        self.bufferSize = bufferSize
        self.poolCapacity = poolCapacity
    }

    /// The sizes for `topology` with frames from `source`.
    public init(topology: Topology, source: Source) {
        let napi = topology.napi
        let ports = topology.ports.count
        let reserve = KernelConstants.xdpPacketHeadroom + KernelConstants.sharedInfoReserve
        let frameHeader = KernelConstants.ethHeaderLength + KernelConstants.vlanHeaderLength
        let largestPort = topology.ports.map { $0.mtu + frameHeader }.max() ?? 1518
        let packet: Int
        switch source {
        case .traces(let largestCapturedLength, let count):
            packet = max(largestCapturedLength, 2048)
            let wanted = ports * napi.ringSize + count + 4 * napi.budget + 1024
            poolCapacity = max(256, min(wanted, (1 << 32) / (reserve + packet)))
        case .taps:
            let largestMTU =
                topology.ports.contains(where: \.vnetHdr)
                ? 65535
                : topology.ports.map { max($0.mtu, $0.host?.mtu ?? 0) }.max() ?? 1500
            packet = largestMTU + frameHeader
            let queued = topology.maps.reduce(0) { $0 + min(Int($1.maxEntries), 4096) } * 16
            poolCapacity = max(1024, ports * 4 * napi.budget + queued + 256)
        case .injected:
            packet = 2048 - reserve
            poolCapacity = min(ports * napi.ringSize + 4 * napi.budget + 1024, 1 << 20)
        }
        bufferSize = reserve + max(packet, largestPort)
    }
}
