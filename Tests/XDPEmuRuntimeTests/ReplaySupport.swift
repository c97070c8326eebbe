import Foundation
import Testing
import XDPEmuCore
import XDPEmuPcap
import XDPEmuRuntime
import XDPEmuTopology

/// The repository root (for topologies/ and pcaps/).
let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// A fresh temporary directory, removed by `cleanup`.
func makeTemporaryDirectory(_ prefix: String = "xdpemu-test") -> String {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    let path = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    return String(cString: path!)
}

func removeDirectory(_ path: String) { try? FileManager.default.removeItem(atPath: path) }

/// One record of a capture, for assertions.
struct CapturedFrame: Equatable {
    var time: UInt64
    var bytes: [UInt8]
    var originalLength: Int

    var destination: String { mac(at: 0) }
    var source: String { mac(at: 6) }
    var etherType: UInt16 { bytes.count >= 14 ? UInt16(bytes[12]) << 8 | UInt16(bytes[13]) : 0 }

    private func mac(at offset: Int) -> String {
        guard bytes.count >= offset + 6 else { return "?" }
        return bytes[offset..<offset + 6].map { String(format: "%02x", $0) }.joined(separator: ":")
    }
}

/// Every record of a pcap file.
func readCapture(_ path: String) throws -> [CapturedFrame] {
    let reader = try PcapReader(path: path)
    var frames = [CapturedFrame]()
    while let record = try reader.next() {
        frames.append(
            CapturedFrame(
                time: record.timestampNanos, bytes: Array(record.bytes),
                originalLength: record.originalLength))
    }
    return frames
}

/// Loads a sample topology from topologies/.
func sampleTopology(_ name: String) throws -> Topology {
    try Topology.load(path: "\(repositoryRoot)/topologies/\(name).json")
}

/// Writes a classic pcap of Ethernet frames at the given times.
func writeTrace(_ path: String, _ frames: [(time: UInt64, bytes: [UInt8])]) throws {
    let writer = try PcapWriter(path: path)
    for frame in frames {
        frame.bytes.withUnsafeBytes {
            writer.write(timestampNanos: frame.time, bytes: $0, originalLength: frame.bytes.count)
        }
    }
    try writer.close()
}

/// A UDP/IPv4 frame (checksums left 0: the datapath does not look at them).
func udpFrame(
    from source: String, to destination: String, srcIP: UInt32 = 0x0a00_0001, dstIP: UInt32 = 0x0a00_0002,
    sport: UInt16 = 1000, dport: UInt16 = 2000, payload: Int = 18
) -> [UInt8] {
    var b = [UInt8]()
    b += destination.split(separator: ":").map { UInt8($0, radix: 16)! }
    b += source.split(separator: ":").map { UInt8($0, radix: 16)! }
    b += [0x08, 0x00]
    let ipLength = 20 + 8 + payload
    b += [0x45, 0, UInt8(ipLength >> 8), UInt8(ipLength & 0xff), 0, 0, 0x40, 0, 64, 17, 0, 0]
    for ip in [srcIP, dstIP] {
        b += [UInt8(ip >> 24), UInt8(ip >> 16 & 0xff), UInt8(ip >> 8 & 0xff), UInt8(ip & 0xff)]
    }
    b += [
        UInt8(sport >> 8), UInt8(sport & 0xff), UInt8(dport >> 8), UInt8(dport & 0xff),
        UInt8((8 + payload) >> 8), UInt8((8 + payload) & 0xff), 0, 0,
    ]
    b += (0..<payload).map { UInt8(truncatingIfNeeded: $0) }
    return b
}

/// The outputs of a replay as readable text, one line per frame: file, time, source > destination, EtherType,
/// length. Used for golden comparisons.
func summarize(directory: String) throws -> String {
    let files = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".pcap") }.sorted()
    var lines = [String]()
    for file in files {
        for frame in try readCapture("\(directory)/\(file)") {
            lines.append(
                "\(file) \(frame.time) \(frame.source) > \(frame.destination) "
                    + "\(String(format: "0x%04x", frame.etherType)) \(frame.bytes.count)")
        }
    }
    return lines.joined(separator: "\n") + "\n"
}

/// Replays `inputs` through `topology` into a new directory; returns the result and the directory.
func replay(
    _ topology: Topology, inputs: [(String, String)], timing: ReplayOptions.Timing = .recorded,
    events: Bool = false, mapEvents: MapEventSchedule? = nil
) throws -> (ReplayResult, String) {
    let out = makeTemporaryDirectory()
    var options = ReplayOptions(
        topology: topology, inputs: inputs.map { ReplayOptions.Input(port: $0.0, path: $0.1) },
        outputDirectory: out)
    options.timing = timing
    options.mapEvents = mapEvents
    if events { options.eventsPath = out + "/events.jsonl" }
    options.statsPath = out + "/stats.json"
    return (try Replay.run(options), out)
}

/// Frames in = frames out, by the statistics: every frame that arrived (plus flood copies) was transmitted,
/// passed or dropped.
func expectConservation(_ s: RunStatistics, sourceLocation: SourceLocation = #_sourceLocation) {
    let arrived = s.ports.reduce(UInt64(0)) { $0 + $1.ingress + $1.device.cloned }
    let out = s.ports.reduce(UInt64(0)) { $0 + $1.device.txPackets + $1.device.passed + $1.device.totalDrops }
    #expect(
        arrived == out, "arrived \(arrived) != transmitted + passed + dropped \(out)",
        sourceLocation: sourceLocation)
    #expect(arrived - s.ports.reduce(0) { $0 + $1.device.cloned } == s.framesIn, sourceLocation: sourceLocation)
}
