import Testing
import XDPEmuTopology

@testable import XDPEmuRuntime

/// The one sizing of frame buffers and pools, for each source of frames, on the two-hosts sample (two ports of
/// MTU 1500, rings of 1024, budget 64, one devmap of 2 entries). A buffer is 256 bytes of headroom and 320 of
/// `skb_shared_info` around the largest frame.
@Suite struct FrameSizingTests {
    @Test func tracesSizeBuffersForTheLargestRecordAndThePoolForFullRings() throws {
        let topology = try sampleTopology("two-hosts")
        // At least 2048 bytes of packet; 2 rings of 1024, 1 staged frame, 4 budgets, 1024 more.
        #expect(
            FrameSizing(topology: topology, source: .traces(largestCapturedLength: 1514, count: 1))
                == FrameSizing(bufferSize: 2624, poolCapacity: 3329))
        // A larger record makes larger buffers; the pool stays within 4 GiB of them.
        #expect(
            FrameSizing(topology: topology, source: .traces(largestCapturedLength: 9000, count: 2))
                == FrameSizing(bufferSize: 9576, poolCapacity: 3330))
        #expect(
            FrameSizing(topology: topology, source: .traces(largestCapturedLength: 3_000_000, count: 1))
                .poolCapacity == 1431)
    }

    @Test func tapsSizeBuffersForTheLargestMTUAndThePoolForAFewBudgets() throws {
        var topology = try sampleTopology("two-hosts")
        // The MTU, an Ethernet header and a VLAN tag; the pool at least 1024 frames.
        #expect(FrameSizing(topology: topology, source: .taps) == FrameSizing(bufferSize: 2094, poolCapacity: 1024))
        // A virtio-net header brings GSO super-frames of 64 KiB.
        topology.ports[0].vnetHdr = true
        #expect(FrameSizing(topology: topology, source: .taps).bufferSize == 66129)
    }

    @Test func injectedFramesGetBuffersForThePortsAndAPoolForFullRings() throws {
        let topology = try sampleTopology("two-hosts")
        #expect(
            FrameSizing(topology: topology, source: .injected)
                == FrameSizing(bufferSize: 2094, poolCapacity: 3328))
    }
}
