import Foundation
import Testing
import XDPEmuCore
import XDPEmuRuntime
import XDPEmuTopology

/// Replay with `napi.cpus` > 1: each port's RX queue on its CPU, each CPU polling in virtual time on its own, and
/// the outputs byte-identical from run to run.
@Suite struct ReplayCPUsTests {
    /// two-hosts with `cpus` CPUs and a per-frame cost, and 200 frames into each port at the same times.
    func setUp(cpus: Int) throws -> (Topology, [(String, String)], String) {
        var topology = try sampleTopology("two-hosts")
        topology.napi.cpus = cpus
        topology.napi.frameCostNanos = 1_000
        let traces = makeTemporaryDirectory()
        var inputs = [(String, String)]()
        for (port, source, destination) in [
            ("xe0", "02:00:00:00:01:01", "02:00:00:00:01:02"), ("xe1", "02:00:00:00:01:02", "02:00:00:00:01:01"),
        ] {
            let path = "\(traces)/\(port).pcap"
            var frames = [(time: UInt64, bytes: [UInt8])]()
            for i in 0..<200 {
                let time = UInt64(1_000_000 + (i / 8) * 20_000)
                frames.append((time, udpFrame(from: source, to: destination, sport: UInt16(i))))
            }
            try writeTrace(path, frames)
            inputs.append((port, path))
        }
        return (topology, inputs, traces)
    }

    @Test(arguments: ReplayOptions.Timing.allCases)
    func twoCPUsGiveTheSameBytesEveryRun(timing: ReplayOptions.Timing) throws {
        let (topology, inputs, traces) = try setUp(cpus: 2)
        defer { removeDirectory(traces) }
        var outputs = [[String: Data]]()
        for _ in 0..<2 {
            let (result, out) = try replay(topology, inputs: inputs, timing: timing, events: true)
            defer { removeDirectory(out) }
            expectConservation(result.statistics)
            #expect(result.statistics.framesIn == 400)
            var files = [String: Data]()
            for name in try FileManager.default.contentsOfDirectory(atPath: out) {
                files[name] = try Data(contentsOf: URL(fileURLWithPath: "\(out)/\(name)"))
            }
            outputs.append(files)
        }
        #expect(outputs[0].keys.sorted() == outputs[1].keys.sorted())
        #expect(outputs[0].count >= 6)
        for (name, data) in outputs[0] { #expect(outputs[1][name] == data, "\(name) differs between runs") }
        // Both CPUs polled; frames are numbered once each over both.
        let log = String(decoding: outputs[0]["events.jsonl"] ?? Data(), as: UTF8.self)
        #expect(log.contains("\"cpu\":0") && log.contains("\"cpu\":1"))
        let numbers = log.split(separator: "\n").filter { $0.contains("xdp_redirect_map\"") }.compactMap { line in
            line.range(of: "\"frame\":").flatMap { Int(line[$0.upperBound...].prefix { $0.isNumber }) }
        }
        #expect(numbers.sorted() == Array(1...400))
    }

    @Test func aBusyCPUDoesNotDelayTheOther() throws {
        // One CPU: xe1's frames wait for xe0's polls. Two CPUs: both ports' polls run at once in virtual time.
        var leaving = [Int: (UInt64, UInt64)]()
        for cpus in [1, 2] {
            let (topology, inputs, traces) = try setUp(cpus: cpus)
            defer { removeDirectory(traces) }
            let (result, out) = try replay(topology, inputs: inputs)
            defer { removeDirectory(out) }
            expectConservation(result.statistics)
            let toXe1 = try readCapture("\(out)/xe1.egress.pcap")
            let toXe0 = try readCapture("\(out)/xe0.egress.pcap")
            leaving[cpus] = (toXe1.last?.time ?? 0, toXe0.last?.time ?? 0)
        }
        let (one, two) = (leaving[1]!, leaving[2]!)
        #expect(two.0 == two.1, "with two CPUs both directions finish together")
        #expect(one.1 > one.0, "with one CPU xe1's frames wait behind xe0's")
        #expect(two.1 < one.1)
    }

    @Test func aPortsCPUIsItsOwnOrRoundRobin() throws {
        var topology = try sampleTopology("star4")
        #expect(CPUAssignment.cpus(of: topology.ports, cpuCount: 2) == [0, 1, 0, 1])
        topology.ports[0].cpu = 1
        topology.ports[3].cpu = 0
        #expect(CPUAssignment.cpus(of: topology.ports, cpuCount: 2) == [1, 0, 1, 0])
        #expect(CPUAssignment.cpus(of: topology.ports, cpuCount: 1) == [0, 0, 0, 0])
    }
}
