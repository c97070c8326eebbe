import Foundation
import Glibc
import Synchronization
import Testing
import XDPEmuOS
import XDPEmuRuntime

// `xdpemu run --workers 2`: each worker polls its own ports on a thread of its own, and the table changed
// through the control socket at a high rate is what the traffic follows; the counters add up at the end.

@Suite("Live mode with several workers", .serialized, .enabled(if: LiveSystem.available, LiveSystem.reason))
struct LiveWorkersTests {
    @Test func twoWorkersForwardWhileTheControlSocketRewritesTheTable() throws {
        let fixture = try LiveFixture()
        let stats = fixture.directory + "/stats.json"
        let events = fixture.directory + "/events.jsonl"
        let run = try fixture.startRun(
            try fixture.twoHosts(), ["--workers", "2", "--stats", stats, "--events", events], capture: true)
        let instance = "two-hosts-\(fixture.tag)"
        let hello = try ControlClient(instance: instance, stateDirectory: fixture.stateDirectory).request("hello")
        guard case .ok(let info) = hello else {
            Issue.record("no hello")
            return
        }
        #expect(info["workers"] as? Int == 2)

        // Pings both ways while a client deletes and restores the entry towards b as fast as it can.
        let stop = Atomic<Bool>(false)
        let operations = Atomic<Int>(0)
        let b = fixture.port("b")
        let socketDirectory = fixture.stateDirectory
        let updater = Thread {
            guard let client = try? ControlClient(instance: instance, stateDirectory: socketDirectory) else { return }
            var i = 0
            while !stop.load(ordering: .acquiring) {
                let answer =
                    i % 2 == 0
                    ? try? client.request("map.delete", ["map": "fwd", "key": 0])
                    : try? client.request("map.update", ["map": "fwd", "key": 0, "device": b])
                guard case .ok? = answer else { break }
                i += 1
                operations.store(i, ordering: .releasing)
            }
            _ = try? client.request("map.update", ["map": "fwd", "key": 0, "device": b])
        }
        updater.start()
        let churn = try inNamespace(
            fixture.namespace("a"), ["ping", "-c", "300", "-i", "0.002", "-W", "1", "10.91.0.2"])
        stop.store(true, ordering: .releasing)
        while !updater.isFinished { usleep(1000) }
        #expect(operations.load(ordering: .acquiring) > 100, "the table was rewritten during the pings")
        #expect(churn.stdout.contains("300 packets transmitted"), "\(churn.stdout)")
        // The entry is back: every ping gets through, both ways.
        let after = try inNamespace(fixture.namespace("a"), ["ping", "-c", "20", "-i", "0.01", "-W", "1", "10.91.0.2"])
        #expect(after.stdout.contains("20 received"), "\(after.stdout)")
        let back = try inNamespace(fixture.namespace("b"), ["ping", "-c", "5", "-i", "0.01", "-W", "1", "10.91.0.1"])
        #expect(back.stdout.contains("5 received"), "\(back.stdout)")
        #expect(run.interrupt() == 0, "\(run.stderr)")

        // Frames in = transmitted + passed + dropped by reason; frames dropped only as redirects to the empty slot.
        let data = try Data(contentsOf: URL(fileURLWithPath: stats))
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let ports = root["ports"] as? [[String: Any]] ?? []
        let out = ports.reduce(0) {
            $0 + ($1["tx"] as? Int ?? 0) + ($1["pass"] as? Int ?? 0) + ($1["drops_total"] as? Int ?? 0)
        }
        #expect(root["frames_in"] as? Int == out, "\(String(decoding: data, as: UTF8.self))")
        let dropsOfA = ports.first { $0["name"] as? String == fixture.port("a") }?["drops"] as? [String: Int] ?? [:]
        #expect(Set(dropsOfA.keys).isSubset(of: ["redirect_einval"]), "\(dropsOfA)")
        // Both CPUs polled: a's frames on CPU 0, b's on CPU 1 (round robin).
        let log = try String(contentsOfFile: events, encoding: .utf8)
        #expect(log.contains("\"cpu\":0") && log.contains("\"cpu\":1"))
        #expect(try expectEgressCaptured(fixture, ports: ports))
    }

    /// The egress capture of each port holds as many frames as the port transmitted.
    private func expectEgressCaptured(_ fixture: LiveFixture, ports: [[String: Any]]) throws -> Bool {
        for port in ports {
            let name = port["name"] as? String ?? ""
            let frames = try readCapture(fixture.directory + "/capture/\(name).egress.pcap")
            guard frames.count == port["tx"] as? Int else { return false }
        }
        return true
    }
}
