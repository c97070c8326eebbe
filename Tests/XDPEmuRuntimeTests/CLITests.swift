import Foundation
import Testing
import XDPEmuCore
import XDPEmuRuntime
import XDPEmuTopology

/// The built `xdpemu` next to the test bundle.
let xdpemuBinary = LiveSystem.binary

struct ProcessResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs `xdpemu` with `arguments` (and `input` on stdin) and waits for it.
func runXDPEmu(_ arguments: [String], input: String? = nil) throws -> ProcessResult {
    try runProcess(xdpemuBinary, arguments, input: input)
}

/// Runs `executable` with `arguments` (and `input` on stdin) and waits for it.
func runProcess(_ executable: String, _ arguments: [String], input: String? = nil) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = Pipe()
    let err = Pipe()
    let inPipe = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = inPipe
    try process.run()
    if let input { inPipe.fileHandleForWriting.write(Data(input.utf8)) }
    try inPipe.fileHandleForWriting.close()
    let stdout = out.fileHandleForReading.readDataToEndOfFile()
    let stderr = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ProcessResult(
        status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
        stderr: String(decoding: stderr, as: UTF8.self))
}

@Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: xdpemuBinary), "the xdpemu binary is not built"))
struct CLITests {
    @Test func mapBatchFromStdin() throws {
        let r = try runXDPEmu(
            ["map", "batch", "-"],
            input: "device a\ncreate devmap 2\nupdate 0 a\nupdate 2 a\nlookup 0\n")
        #expect(r.status == 0)
        #expect(r.stdout == "ok 1\nok\nok\nE2BIG\nok a\n")
    }

    @Test func mapBatchReadsAScriptWithCRLFLineEnds() throws {
        let r = try runXDPEmu(
            ["map", "batch", "-"],
            input: "device eth0\r\ncreate devmap 4\r\nupdate 0 eth0\r\nlookup 0\r\nfrob\r\n")
        #expect(r.stdout == "ok 1\nok\nok\nok eth0\n")
        #expect(r.stderr.contains("line 5: unknown operation 'frob'"))
        #expect(r.status == 2)
    }

    @Test func mapBatchRefusesAFIFOAtOnce() throws {
        let fifo = "/tmp/xdpemu-batch-fifo-\(getpid())"
        #expect(mkfifo(fifo, 0o600) == 0)
        defer { unlink(fifo) }
        let r = try runXDPEmu(["map", "batch", fifo])
        #expect(r.status == 2)
        #expect(r.stderr == "xdpemu: \(fifo): cannot read the file: it is not a regular file\n")
    }

    @Test func mapBatchSyntaxErrorExits2AfterTheRest() throws {
        let r = try runXDPEmu(["map", "batch", "-"], input: "create devmap 2\nfrob\nlookup 0\n")
        #expect(r.status == 2)
        #expect(r.stdout == "ok\nENOENT\n")
        #expect(r.stderr.contains("xdpemu: standard input: line 2: unknown operation 'frob'"))
    }

    @Test func badTopologyNamesFileAndPathAndExits2() throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let path = "\(dir)/bad.json"
        try """
        {"name": "x", "ports": [{"name": "p0", "mtu": "abc"}, {"name": "p0", "bogus": 1}]}
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let r = try runXDPEmu(["replay", path, "--in", "p0=/dev/null", "--out", "\(dir)/out"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("\(path): $.ports[0].mtu: must be an integer 68...65535, got \"abc\""))
        #expect(r.stderr.contains("$.ports[1].bogus"))
        #expect(r.stderr.contains("$.ports[1].name"))  // the duplicate
        let v = try runXDPEmu(["validate", path])
        #expect(v.status == 2)
    }

    @Test func validateAcceptsEverySample() throws {
        for name in ["two-hosts", "star4", "l2-switch", "reflector", "acl-firewall"] {
            let r = try runXDPEmu(["validate", "\(repositoryRoot)/topologies/\(name).json"])
            #expect(r.status == 0, "\(name): \(r.stderr)")
        }
    }

    @Test func replayWritesOutputsAndTheSummary() throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let r = try runXDPEmu([
            "replay", "\(repositoryRoot)/topologies/two-hosts.json",
            "--in", "xe0=\(repositoryRoot)/pcaps/two-hosts-icmp.pcap", "--out", dir,
            "--stats", "\(dir)/stats.json",
        ])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("frames in 22"))
        #expect(try readCapture("\(dir)/xe1.egress.pcap").count == 22)
        let stats = try String(contentsOfFile: "\(dir)/stats.json", encoding: .utf8)
        #expect(stats.contains("\"frames_in\": 22"))
    }

    @Test func replayWhoseStderrIsClosedStillExits0WithItsOutputs() throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        // stderr is a pipe whose reader has gone when the summary is printed.
        let command = [
            xdpemuBinary, "replay", "\(repositoryRoot)/topologies/two-hosts.json",
            "--in", "xe0=\(repositoryRoot)/pcaps/two-hosts-icmp.pcap", "--out", dir,
        ].map { "'\($0)'" }.joined(separator: " ")
        let shell = try runProcess("/bin/bash", ["-c", "\(command) 2>&1 | true; echo ${PIPESTATUS[0]}"])
        #expect(shell.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "\(shell.stderr)")
        #expect(try readCapture("\(dir)/xe1.egress.pcap").count == 22)
    }

    @Test func truncatedTraceExits2WithValidOutputs() throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let whole = try Data(contentsOf: URL(fileURLWithPath: "\(repositoryRoot)/pcaps/two-hosts-icmp.pcap"))
        try whole.prefix(whole.count - 10).write(to: URL(fileURLWithPath: "\(dir)/cut.pcap"))
        let r = try runXDPEmu([
            "replay", "\(repositoryRoot)/topologies/two-hosts.json", "--in", "xe0=\(dir)/cut.pcap",
            "--out", "\(dir)/out",
        ])
        #expect(r.status == 2)
        #expect(r.stderr.contains("cut.pcap: record 22 at byte offset"))
        #expect(try readCapture("\(dir)/out/xe1.egress.pcap").count == 21)
    }

    @Test func missingTraceAndUnknownPortExit2() throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let topology = "\(repositoryRoot)/topologies/two-hosts.json"
        let missing = try runXDPEmu(["replay", topology, "--in", "xe0=\(dir)/nope.pcap", "--out", dir])
        #expect(missing.status == 2 && missing.stderr.contains("nope.pcap: cannot open"))
        let port = try runXDPEmu(["replay", topology, "--in", "zz=\(dir)/nope.pcap", "--out", dir])
        #expect(port.status == 2 && port.stderr.contains("--in \"zz\": no port of that name"))
        let usage = try runXDPEmu(["replay", topology, "--out", dir])
        #expect(usage.status == 64)
    }
}

/// A program of our own, registered by name and used from a topology file.
struct SwapToKeyOne: XDPProgram {
    let map: DevMap
    func run(_ context: inout XDPContext) -> XDPAction { context.redirectMap(map, key: 1) }
}

@Suite struct CustomProgramTests {
    @Test func registeredProgramRunsFromATopology() throws {
        ProgramRegistry.register(type: "to_key_one") { config, context throws(RuntimeError) in
            context.attach(SwapToKeyOne(map: try context.map(config["map"]?.stringValue ?? "")))
        }
        let topology = try Topology.parse(
            data: """
                {"name": "custom", "ports": [{"name": "a", "program": {"type": "to_key_one", "map": "m"}}, {"name": "b"}],
                 "maps": [{"name": "m", "type": "devmap", "max_entries": 2, "entries": {"1": "b"}}]}
                """, source: "custom.json", customProgramTypes: ProgramRegistry.customTypes)
        let scratch = makeTemporaryDirectory()
        defer { removeDirectory(scratch) }
        try writeTrace(
            "\(scratch)/t.pcap",
            [(time: 1, bytes: udpFrame(from: "02:00:00:00:00:01", to: "02:00:00:00:00:09"))])
        let (result, out) = try replay(topology, inputs: [("a", "\(scratch)/t.pcap")])
        defer { removeDirectory(out) }
        #expect(result.statistics.ports[1].device.txPackets == 1)
    }
}
