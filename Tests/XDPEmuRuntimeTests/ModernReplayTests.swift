import Foundation
import Testing
import XDPEmuCore
import XDPEmuTopology

@testable import XDPEmuRuntime

/// Replays of the modern twins of the samples: the same frames come out as with the 4.18 samples (goldens in
/// ReplayTests), and where the profiles differ it shows in where things happen.
@Suite struct ModernReplayTests {
    func replaySample(_ topology: String, trace: String, hosts: [String: String]) throws -> (ReplayResult, String) {
        let scratch = makeTemporaryDirectory()
        defer { removeDirectory(scratch) }
        let inputs = try splitTrace("\(repositoryRoot)/pcaps/\(trace).pcap", bySource: hosts, into: scratch)
        return try replay(try sampleTopology(topology), inputs: inputs, events: true)
    }

    @Test("the egress firewall drops at the egress port, after the redirect, with the kernel's accounting")
    func egressFirewall() throws {
        let (result, out) = try replaySample(
            "acl-firewall-modern", trace: "acl-mixed", hosts: ["02:00:00:00:04:01": "fw0"])
        defer { removeDirectory(out) }
        let ports = Dictionary(uniqueKeysWithValues: result.statistics.ports.map { ($0.name, $0.device) })
        let fw0 = try #require(ports["fw0"])
        let fw1 = try #require(ports["fw1"])
        // Every frame of fw0 is redirected; the ACL on fw1's entry drops some before fw1 transmits.
        #expect(fw0.redirected == fw0.rxPackets)
        #expect(fw0.totalDrops == 0)
        #expect((fw1.drops[.egressDrop] ?? 0) > 0)
        #expect(fw1.txPackets + (fw1.drops[.egressDrop] ?? 0) == fw0.redirected)
        // xdp_devmap_xmit of the modern kernel: no map fields, drops counted per bulk.
        let events = try String(contentsOfFile: "\(out)/events.jsonl", encoding: .utf8)
        let xmits = events.split(separator: "\n").filter { $0.contains("xdp_devmap_xmit") }
        #expect(!xmits.isEmpty)
        #expect(xmits.allSatisfy { !$0.contains("map_id") && $0.contains("\"drops\"") })
        expectConservation(result.statistics)
    }

    @Test("the modern switch floods with broadcast copies taken from the pool")
    func switchFloodsWithBroadcast() throws {
        let (result, out) = try replaySample(
            "l2-switch-modern", trace: "l2-switch",
            hosts: ["02:00:00:00:03:01": "sw1", "02:00:00:00:03:02": "sw2", "02:00:00:00:03:03": "sw3"])
        defer { removeDirectory(out) }
        #expect(result.statistics.ports.reduce(0) { $0 + $1.device.cloned } > 0)
        // The redirect events of a broadcast name no single target (to_ifindex 0).
        let events = try String(contentsOfFile: "\(out)/events.jsonl", encoding: .utf8)
        #expect(
            events.split(separator: "\n").contains {
                $0.contains("xdp_redirect_map") && $0.contains("\"to_ifindex\":0")
            })
        expectConservation(result.statistics)
    }
}
