// Compiling the C programs of Programs/ at test time with the toolchain's clang, and replaying frames through a
// topology that runs them. Tests that need clang are enabled only where it is found.

import Foundation
import Synchronization
import Testing
import XDPEmuRuntime
import XDPEmuTopology

let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

let programsDirectory = "\(repositoryRoot)/Tests/XDPEmuBPFTests/Programs"

enum Clang {
    /// The Swift toolchain's clang, or one on PATH.
    static let path: String? = {
        for candidate in ["/opt/swift/usr/bin/clang", "/usr/bin/clang", "/usr/local/bin/clang"]
        where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        return nil
    }()
    static let available = path != nil
    static let reason: Comment =
        "needs clang (the Swift toolchain's /opt/swift/usr/bin/clang) to compile the BPF programs"

    private static let directory: String = {
        let dir = NSTemporaryDirectory() + "xdpemu-bpf-tests-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()
    private static let built = Mutex<[String: String]>([:])

    /// Programs/NAME.c compiled for BPF (`-O2 -g -target bpf -mcpu=CPU`), once per process.
    static func bpf(_ name: String, cpu: String = "v3") throws -> String {
        let key = "\(name)-\(cpu)"
        if let found = built.withLock({ $0[key] }) { return found }
        let output = "\(directory)/\(key).o"
        try run(
            path!,
            [
                "-O2", "-g", "-target", "bpf", "-mcpu=\(cpu)", "-I/usr/include/x86_64-linux-gnu",
                "-I/usr/include/aarch64-linux-gnu",
                "-c", "\(programsDirectory)/\(name).c", "-o", output,
            ])
        built.withLock { $0[key] = output }
        return output
    }

    /// Programs/NAME.c compiled for the host.
    static func native(_ name: String) throws -> String {
        let output = "\(directory)/\(name)-native"
        try run(path!, ["-O2", "\(programsDirectory)/\(name).c", "-o", output])
        return output
    }

    @discardableResult
    static func run(_ executable: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw TestFailure("\(executable) \(arguments.joined(separator: " ")) failed:\n\(text)")
        }
        return text
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func makeTemporaryDirectory() -> String {
    let path = NSTemporaryDirectory() + "xdpemu-bpf-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// An Ethernet frame: dst, src, EtherType and payload (padded to 60 bytes).
func ethernetFrame(dst: [UInt8], src: [UInt8], type: UInt16, payload: [UInt8] = []) -> [UInt8] {
    var frame = dst + src + [UInt8(type >> 8), UInt8(type & 0xFF)] + payload
    while frame.count < 60 { frame.append(0) }
    return frame
}

func mac(_ last: UInt8) -> [UInt8] { [2, 0, 0, 0, 0, last] }

/// A classic pcap (microseconds), one frame per millisecond.
func writeTrace(_ path: String, _ frames: [[UInt8]]) {
    var bytes: [UInt8] = []
    func le32(_ v: UInt32) { bytes += withUnsafeBytes(of: v.littleEndian, Array.init) }
    le32(0xA1B2_C3D4)
    bytes += [2, 0, 4, 0]
    le32(0)
    le32(0)
    le32(65535)
    le32(1)
    for (i, frame) in frames.enumerated() {
        le32(1)
        le32(UInt32(i * 1000))
        le32(UInt32(frame.count))
        le32(UInt32(frame.count))
        bytes += frame
    }
    try! Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// The frames of a classic pcap file (either precision, little-endian as our writer makes them).
func readTrace(_ path: String) -> [[UInt8]] {
    guard let data = FileManager.default.contents(atPath: path) else { return [] }
    let bytes = [UInt8](data)
    var frames: [[UInt8]] = []
    var at = 24
    while at + 16 <= bytes.count {
        let length =
            Int(bytes[at + 8]) | Int(bytes[at + 9]) << 8 | Int(bytes[at + 10]) << 16 | Int(bytes[at + 11]) << 24
        frames.append(Array(bytes[at + 16..<at + 16 + length]))
        at += 16 + length
    }
    return frames
}

/// What a replay through an eBPF topology left.
struct EBPFRun {
    var directory: String
    var result: ReplayResult
    var reports: [String]
    var maps: [String: Any]
    var events: [[String: Any]]

    func frames(_ port: String, _ direction: String) -> [[UInt8]] {
        readTrace("\(directory)/out/\(port).\(direction).pcap")
    }

    /// Map `name`'s entries as (key, value) JSON values.
    func entries(_ name: String) -> [[String: Any]] {
        let maps = self.maps["maps"] as? [[String: Any]] ?? []
        return maps.first { $0["name"] as? String == name }?["entries"] as? [[String: Any]] ?? []
    }

    /// The integer value of `key` in map `name`.
    func value(_ name: String, _ key: Int) -> Int64? {
        guard let entry = entries(name).first(where: { ($0["key"] as? NSNumber)?.intValue == key }) else { return nil }
        return (entry["value"] as? NSNumber)?.int64Value
    }

    func events(_ name: String) -> [[String: Any]] { events.filter { $0["event"] as? String == name } }
}

/// Writes `topology` (JSON text, objects named relative to it) into a fresh directory next to copies of the
/// objects, feeds `inputs` and replays with maps-out and an event log.
func replayEBPF(topology: String, objects: [String: String], inputs: [String: [[UInt8]]]) throws -> EBPFRun {
    let directory = makeTemporaryDirectory()
    for (name, path) in objects { try FileManager.default.copyItem(atPath: path, toPath: "\(directory)/\(name)") }
    let topologyPath = "\(directory)/topology.json"
    try topology.write(toFile: topologyPath, atomically: true, encoding: .utf8)
    let loaded = try Topology.load(path: topologyPath)
    var traceInputs: [ReplayOptions.Input] = []
    for (port, frames) in inputs.sorted(by: { $0.key < $1.key }) {
        writeTrace("\(directory)/\(port).pcap", frames)
        traceInputs.append(try ReplayOptions.Input(argument: "\(port)=\(directory)/\(port).pcap"))
    }
    var options = ReplayOptions(topology: loaded, inputs: traceInputs, outputDirectory: "\(directory)/out")
    options.eventsPath = "\(directory)/events.jsonl"
    options.mapsOutPath = "\(directory)/maps.json"
    let reports = Mutex<[String]>([])
    options.report = { message in reports.withLock { $0.append(message) } }
    let result = try Replay.run(options)
    let maps = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(directory)/maps.json")))
    let lines = (try? String(contentsOfFile: "\(directory)/events.jsonl", encoding: .utf8)) ?? ""
    let events = lines.split(separator: "\n").compactMap {
        try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
    }
    return EBPFRun(
        directory: directory, result: result, reports: reports.withLock { $0 }, maps: maps as? [String: Any] ?? [:],
        events: events)
}
