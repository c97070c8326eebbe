#if canImport(Glibc)
import Glibc
#endif
import XDPEmuRuntime
import XDPEmuTopology

/// `Replay.run` end to end as `scripts/bench/run` measures it: scripts/bench/hash4.json (one ingress port whose
/// `redirect_map` program hashes flows over 4 egress ports, egress capture only), `--timing topspeed` (or the
/// default, `recorded`: the trace's frames are 1 µs apart, so every frame is a poll of its own), a `BenchTrace`
/// of `frames` records on tmpfs, outputs on tmpfs, removed after every run.
public final class ReplayScenario {
    /// scripts/bench/hash4.json, inline so that the benchmark does not depend on the working directory.
    public static let topologyJSON = """
        {"name": "bench-hash4",
         "ports": [
           {"name": "in0", "capture": {"ingress": false, "egress": false},
            "program": {"type": "redirect_map", "map": "spread", "key": {"kind": "hash", "modulo": 4}}},
           {"name": "out0", "capture": {"ingress": false, "egress": true}},
           {"name": "out1", "capture": {"ingress": false, "egress": true}},
           {"name": "out2", "capture": {"ingress": false, "egress": true}},
           {"name": "out3", "capture": {"ingress": false, "egress": true}}],
         "maps": [{"name": "spread", "type": "devmap", "max_entries": 4,
                   "entries": {"0": "out0", "1": "out1", "2": "out2", "3": "out3"}}]}
        """
    public static let egressPorts = ["out0", "out1", "out2", "out3"]

    public let frames: Int
    public let timing: ReplayOptions.Timing
    public let directory: ScratchDirectory
    public let tracePath: String
    public let topology: Topology
    /// What the four egress files must add up to: every record once, plus four file headers.
    public let expectedEgressBytes: Int
    private var runs = 0

    public init(frames: Int, timing: ReplayOptions.Timing = .topspeed) throws {
        self.frames = frames
        self.timing = timing
        topology = try Topology.parse(data: Self.topologyJSON, source: "hash4 (Benchmarks/PipelineSupport)")
        directory = try ScratchDirectory("pipebench-replay")
        tracePath = directory.path + "/trace.pcap"
        let trace = BenchTrace()
        expectedEgressBytes = trace.fileSize(frames: frames) - 24 + 4 * 24
        do {
            try trace.write(frames: frames, to: tracePath)
        } catch {
            directory.remove()
            throw error
        }
    }

    deinit { directory.remove() }

    /// The options of the next run: a fresh output directory under the scratch directory.
    public func nextOptions() -> ReplayOptions {
        runs += 1
        var options = ReplayOptions(topology: topology, inputs: [.init(port: "in0", path: tracePath)],
                                    outputDirectory: "\(directory.path)/out\(runs)")
        options.timing = timing
        return options
    }

    /// Checks conservation and the outputs of a run, then removes its output directory. nil when all is well.
    public func checkAndRemoveOutputs(_ result: ReplayResult, _ options: ReplayOptions) -> String? {
        defer { ScratchDirectory.removeTree(options.outputDirectory) }
        let statistics = result.statistics
        var problems = [String]()
        if !result.inputErrors.isEmpty || result.interrupted {
            problems.append("input errors \(result.inputErrors), interrupted \(result.interrupted)")
        }
        if statistics.framesIn != UInt64(frames) { problems.append("framesIn \(statistics.framesIn) != \(frames)") }
        let egress = statistics.ports.filter { Self.egressPorts.contains($0.name) }
        let transmitted = egress.reduce(0) { $0 + $1.device.txPackets }
        if transmitted != UInt64(frames) { problems.append("frames sent on out0-3: \(transmitted) != \(frames)") }
        let drops = statistics.ports.reduce(0) { $0 + $1.device.totalDrops }
        if drops != 0 { problems.append("\(drops) drops") }
        if egress.contains(where: { $0.device.txPackets == 0 }) { problems.append("an egress port sent nothing") }
        var bytes = 0
        for port in Self.egressPorts {
            var info = stat()
            let path = "\(options.outputDirectory)/\(port).egress.pcap"
            guard stat(path, &info) == 0 else {
                problems.append("\(path) missing")
                continue
            }
            bytes += Int(info.st_size)
        }
        if bytes != expectedEgressBytes {
            problems.append("egress files hold \(bytes) bytes, expected \(expectedEgressBytes)")
        }
        return problems.isEmpty ? nil : problems.joined(separator: "; ")
    }
}
