import Foundation
import Glibc
import Synchronization
import Testing
import XDPEmuCore
import XDPEmuOS
import XDPEmuPcap
import XDPEmuTesting
import XDPEmuTopology

@testable import XDPEmuRuntime

// Stress of what live mode's workers share, without TAPs: two worker threads forward into ports captured to pcap
// (each port's capture entered under the run's `OutputLock`, each worker transmitting through its own
// `PortTransmitter`) while a client rewrites the devmap through the control socket as fast as the server answers.
// Afterwards every frame is accounted for and the egress captures hold exactly the frames transmitted. Part of
// the ThreadSanitizer run (`--filter Stress`).

@Suite("Control socket stress", .serialized) struct ControlStressTests {
    struct Shared: @unchecked Sendable {
        // @unchecked Sendable: each worker thread uses its own worker and input port.
        let emulation: Emulation
    }

    @Test func twoWorkersForwardWhileTheControlSocketRewritesTheMap() throws {
        var template = Array("/tmp/xdpemu-stress-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw POSIXError(.EIO) }
        let directory = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let topology = try Topology.parse(
            data: """
                {"name": "stress", "napi": {"cpus": 2}, "ports": [
                  {"name": "a", "cpu": 0, "program": {"type": "redirect_map", "map": "fwd", "key": {"kind": "constant", "value": 0}}},
                  {"name": "b", "cpu": 1, "program": {"type": "redirect_map", "map": "fwd", "key": {"kind": "constant", "value": 1}}},
                  {"name": "c", "program": {"type": "pass"}}, {"name": "d", "program": {"type": "pass"}}],
                 "maps": [{"name": "fwd", "type": "devmap", "max_entries": 2, "entries": {"0": "c", "1": "d"}}]}
                """, source: "stress.json")
        #expect(CPUAssignment.cpus(of: topology.ports, cpuCount: 2) == [0, 1, 0, 1])
        let captures = try CaptureSet(
            directory: directory, ports: topology.ports.map { ($0.name, $0.capture.ingress, $0.capture.egress) })
        let emulation = try Emulation(
            topology: topology, wiring: Emulation.Wiring(wire: { _ in nil }, workerWire: { _, _ in nil }),
            captures: captures, workers: 2, outputLock: OutputLock())
        let commands = ControlCommands(
            instance: "stress", emulation: emulation, workers: 2,
            snapshot: { RunStatistics(emulation: emulation, ingress: [:], polls: 0, framesIn: 0, errors: []) })
        let server = try ControlServer(
            path: ControlSocketFiles.path(instance: "stress", directory: directory), handler: commands,
            feed: EventFeed())
        server.start()
        defer { server.stop() }

        let framesPerWorker = 20_000
        let finished = Atomic<Int>(0)
        let shared = Shared(emulation: emulation)
        let threads = (0..<2).map { cpu in
            Thread {
                let worker = shared.emulation.network.workers[cpu]
                let input = shared.emulation.ports[cpu].device
                let scheduler = shared.emulation.makeScheduler(worker: worker, budget: 64, pollDelay: 0, frameCost: 0)
                let bytes = FrameInjector.ethernet(destination: input.mac, source: input.mac)
                var count = 0
                while count < framesPerWorker {
                    for _ in 0..<32 where count < framesPerWorker {
                        guard let frame = worker.pool.take(headroom: input.rxHeadroom) else { break }
                        worker.pool.writableSpace(frame).copyBytes(from: bytes)
                        worker.pool.setLength(frame, bytes.count)
                        worker.pool.info(frame).pointee.ingress = input.ifindex
                        scheduler.arrive(frame, port: cpu, at: 0)
                        count += 1
                    }
                    while scheduler.pendingPolls > 0 { scheduler.pollNext(at: 0) }
                }
                finished.add(1, ordering: .releasing)
            }
        }
        threads.forEach { $0.start() }
        let client = try ControlClient(instance: "stress", stateDirectory: directory)
        var operations = 0
        while finished.load(ordering: .acquiring) < 2 {
            let key = operations % 2
            let answer =
                operations % 5 == 0
                ? try client.request("map.delete", ["map": "fwd", "key": key])
                : try client.request(
                    "map.update", ["map": "fwd", "key": key, "device": operations % 3 == 0 ? "c" : "d"])
            guard case .ok = answer else {
                Issue.record("the control socket refused operation \(operations)")
                break
            }
            operations += 1
        }
        for thread in threads { while !thread.isFinished { usleep(100) } }
        emulation.network.quiesceAll()
        #expect(operations > 20)

        let stats = emulation.ports.map(\.device.statistics)
        let received = stats[0].rxPackets + stats[1].rxPackets
        let transmitted = stats.reduce(UInt64(0)) { $0 + $1.txPackets }
        let dropped = stats.reduce(UInt64(0)) { $0 + $1.totalDrops }
        #expect(received == UInt64(2 * framesPerWorker))
        #expect(received == transmitted + dropped)
        #expect(emulation.network.workers.allSatisfy { $0.pool.outstanding == 0 })
        #expect(captures.close().isEmpty)
        var captured = 0
        for name in ["c", "d"] {
            let reader = try PcapReader(path: "\(directory)/\(name).egress.pcap")
            while try reader.next() != nil { captured += 1 }
        }
        #expect(UInt64(captured) == transmitted)
    }
}
