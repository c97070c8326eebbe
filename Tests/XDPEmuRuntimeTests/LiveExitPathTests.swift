import Foundation
import Glibc
import Testing
import XDPEmuOS

// Live runs that end or start in ordinary accidents: output to a pipe that closes, a closed terminal, a second run
// of the same topology or into the same capture directory, a low open-file limit, a truncated trace, a host
// interface named like one of this namespace's. Each must leave nothing behind and exit as README documents.

@Suite("Live mode: every exit path", .serialized, .enabled(if: LiveSystem.available, LiveSystem.reason))
struct LiveExitPathTests {
    /// `xdpemu ARGUMENTS 2>&1 | head -1` through bash; its stdout, and xdpemu's own exit status.
    private func runIntoHead(_ fixture: LiveFixture, _ arguments: [String]) throws -> (line: String, status: String) {
        let quoted = ([LiveSystem.binary] + arguments).map { "'" + $0 + "'" }.joined(separator: " ")
        let shell = try XDPEmuProcess(
            executable: "bash", arguments: ["-c", "\(quoted) 2>&1 | head -1; echo \"status ${PIPESTATUS[0]}\" >&2"],
            directory: fixture.directory)
        #expect(shell.wait(timeout: 60) == 0)
        return (shell.stdout, shell.stderr)
    }

    private func expectNothingLeft(_ fixture: LiveFixture, namespaces: [String] = ["a", "b"]) throws {
        for ns in namespaces { #expect(!NetNamespace.exists(fixture.namespace(ns)), "namespace \(ns) left") }
        #expect(try stateFiles(fixture.stateDirectory).isEmpty, "a state file is left")
        let state = (try? FileManager.default.contentsOfDirectory(atPath: fixture.stateDirectory)) ?? []
        #expect(state.isEmpty, "\(state)")
    }

    @Test func aPipeThatClosesDuringTheRunEndsInAFullTeardownAndExit0() throws {
        let fixture = try LiveFixture()
        let topology = try fixture.twoHosts()

        let (line, status) = try runIntoHead(
            fixture,
            [
                "run", topology, "--duration", "1", "--state-dir", fixture.stateDirectory, "--capture",
                fixture.directory + "/capture",
            ])

        #expect(line.hasPrefix("xdpemu: two-hosts-\(fixture.tag) is live"), "\(line)")
        #expect(status == "status 0\n", "xdpemu is not killed by SIGPIPE: \(status)")
        try expectNothingLeft(fixture)
        #expect(access(fixture.directory + "/capture/" + DirectoryLock.fileName, F_OK) != 0)
        #expect(try readCapture(fixture.directory + "/capture/drops.pcap").isEmpty, "captures closed whole")
    }

    @Test func sighupEndsTheRunLikeSIGTERM() throws {
        let fixture = try LiveFixture()
        let run = try fixture.startRun(try fixture.twoHosts())

        run.send(SIGHUP)

        #expect(run.wait(timeout: 20) == 0, "\(run.stderr)")
        #expect(run.stderr.contains("stopped by SIGHUP; everything removed"), "\(run.stderr)")
        try expectNothingLeft(fixture)
    }

    @Test func theSameTopologyStartedTwiceIsRefusedWithExit2NamingTheRunningInstance() throws {
        let fixture = try LiveFixture()
        let topology = try fixture.twoHosts()
        let first = try fixture.startRun(topology)

        let second = try XDPEmuProcess(
            arguments: [
                "run", topology, "--state-dir", fixture.stateDirectory, "--capture", fixture.directory + "/other",
            ], directory: fixture.directory)

        #expect(second.wait(timeout: 20) == 2)
        #expect(
            second.stderr.contains(
                "host.namespace: namespace \(fixture.namespace("a")) already exists; it belongs to the running "
                    + "xdpemu run \(first.pid)"), "\(second.stderr)")
        #expect(!second.stderr.contains("Cannot create namespace"))
        let ping = try inNamespace(fixture.namespace("a"), ["ping", "-c", "2", "-i", "0.05", "-W", "1", "10.91.0.2"])
        #expect(ping.status == 0, "the first run is untouched: \(ping.stdout)")
        #expect(try stateFiles(fixture.stateDirectory) == ["\(first.pid).json"])
        #expect(first.interrupt() == 0, "\(first.stderr)")
        try expectNothingLeft(fixture)
    }

    @Test func aSecondRunIntoTheSameCaptureDirectoryIsRefusedWithExit2NamingTheFirst() throws {
        let fixture = try LiveFixture()
        let other = try LiveFixture()
        let capture = fixture.directory + "/capture"
        let first = try fixture.startRun(try fixture.twoHosts())
        #expect(try String(contentsOfFile: capture + "/" + DirectoryLock.fileName, encoding: .utf8) == "\(first.pid)\n")

        let second = try XDPEmuProcess(
            arguments: ["run", try other.twoHosts(), "--state-dir", other.stateDirectory, "--capture", capture],
            directory: other.directory)

        #expect(second.wait(timeout: 20) == 2)
        #expect(
            second.stderr.contains(
                "--capture \(capture): the directory is in use by the running xdpemu run \(first.pid)"),
            "\(second.stderr)")
        try expectNothingLeft(other)
        #expect(first.interrupt() == 0, "\(first.stderr)")
        #expect(access(capture + "/" + DirectoryLock.fileName, F_OK) != 0, "the lock file is removed at teardown")
        try expectNothingLeft(fixture)
    }

    @Test func aTopologyNeedingMoreDescriptorsThanTheLimitIsRefusedBeforeAnythingIsCreated() throws {
        let fixture = try LiveFixture()
        let names = (0..<40).map { fixture.port("p\($0)") }
        let ports = names.map { #"{"name": "\#($0)"}"# }.joined(separator: ",")
        let topology = try fixture.write("many.json", #"{"name": "many-\#(fixture.tag)", "ports": [\#(ports)]}"#)
        let capture = fixture.directory + "/capture"
        func run(limit: String) throws -> XDPEmuProcess {
            try XDPEmuProcess(
                executable: "prlimit",
                arguments: [
                    "--nofile=\(limit)", LiveSystem.binary, "run", topology, "--duration", "0.5", "--state-dir",
                    fixture.stateDirectory, "--capture", capture,
                ], directory: fixture.directory)
        }

        let refused = try run(limit: "64:64")

        #expect(refused.wait(timeout: 20) == 1)
        #expect(refused.stderr.contains("this run needs 1"), "\(refused.stderr)")
        #expect(refused.stderr.contains("the limit (RLIMIT_NOFILE) is 64 (hard limit 64)"), "\(refused.stderr)")
        #expect(refused.stderr.contains("nothing was created"))
        #expect(names.allSatisfy { if_nametoindex($0) == 0 })
        #expect(!FileManager.default.fileExists(atPath: fixture.stateDirectory))
        #expect(!FileManager.default.fileExists(atPath: capture))

        // The same run with a soft limit it may raise: it raises it and runs.
        let raised = try run(limit: "64:4096")

        #expect(raised.wait(timeout: 60) == 0, "\(raised.stderr)")
        #expect(raised.stderr.contains("stopped by the end of --duration; everything removed"), "\(raised.stderr)")
        #expect(names.allSatisfy { if_nametoindex($0) == 0 })
        #expect(try FileManager.default.contentsOfDirectory(atPath: capture).count == 3 * names.count + 1)
    }

    @Test func aTruncatedReplayTraceEndsTheRunWithExit2AndATeardown() throws {
        let fixture = try LiveFixture()
        let whole = try Data(contentsOf: URL(fileURLWithPath: LiveSystem.repository + "/pcaps/two-hosts-icmp.pcap"))
        let truncated = fixture.directory + "/truncated.pcap"
        try whole.prefix(300).write(to: URL(fileURLWithPath: truncated))
        let a = fixture.port("a")

        let run = try XDPEmuProcess(
            arguments: [
                "run", try fixture.twoHosts(), "--replay", "\(a)=\(truncated)", "--duration", "1", "--state-dir",
                fixture.stateDirectory, "--capture", fixture.directory + "/capture",
            ], directory: fixture.directory)

        #expect(run.wait(timeout: 30) == 2, "\(run.stderr)")
        #expect(run.stderr.contains("--replay \(a)=\(truncated): "), "\(run.stderr)")
        #expect(run.stderr.contains("truncated"), "\(run.stderr)")
        #expect(run.stderr.contains("everything removed"))
        try expectNothingLeft(fixture)
    }

    @Test func aReplayTraceWithABadHeaderIsRefusedBeforeAnythingIsCreated() throws {
        let fixture = try LiveFixture()
        let bad = fixture.directory + "/bad.pcap"
        try Data("not a capture file at all".utf8).write(to: URL(fileURLWithPath: bad))
        let capture = fixture.directory + "/capture"
        let a = fixture.port("a")

        let run = try XDPEmuProcess(
            arguments: [
                "run", try fixture.twoHosts(), "--replay", "\(a)=\(bad)", "--duration", "1", "--state-dir",
                fixture.stateDirectory, "--capture", capture,
            ], directory: fixture.directory)

        #expect(run.wait(timeout: 30) == 2, "\(run.stderr)")
        #expect(run.stderr.contains("--replay \(a)=\(bad): "), "\(run.stderr)")
        #expect(!FileManager.default.fileExists(atPath: capture), "the capture directory was created")
        try expectNothingLeft(fixture)
    }

    @Test func hostInterfacesNamedLikeAnInterfaceOfThisNamespaceWork() throws {
        let fixture = try LiveFixture()
        // Both hosts call their interface after a link that exists here (eth0, say), one name for both.
        let taken = fixture.port("t")
        try Command.run("ip", ["tuntap", "add", "dev", taken, "mode", "tap"])
        defer { _ = try? Command.run("ip", ["link", "delete", taken]) }
        var topology = try String(contentsOfFile: try fixture.twoHosts(), encoding: .utf8)
        topology = topology.replacingOccurrences(of: #""host": {"#, with: #""host": {"interface": "\#(taken)", "#)
        let run = try fixture.startRun(try fixture.write("same-interface.json", topology))

        let ping = try inNamespace(fixture.namespace("a"), ["ping", "-c", "3", "-i", "0.05", "-W", "1", "10.91.0.2"])

        #expect(ping.status == 0, "\(ping.stdout)")
        for ns in ["a", "b"] { #expect(try Link.linkExists(taken, in: fixture.namespace(ns))) }
        let record = try RunState.load(path: fixture.stateDirectory + "/\(run.pid).json")
        #expect(
            Set(record.taps) == [
                LinkRecord(name: taken, namespace: fixture.namespace("a")),
                LinkRecord(name: taken, namespace: fixture.namespace("b")),
            ])
        #expect(run.interrupt() == 0, "\(run.stderr)")
        #expect(if_nametoindex(taken) != 0, "this namespace's interface is untouched")
        try expectNothingLeft(fixture)
    }

    @Test func theLoopbacksNameIsRefusedAsAHostInterfaceNamingTheField() throws {
        let fixture = try LiveFixture()
        var topology = try String(contentsOfFile: try fixture.twoHosts(), encoding: .utf8)
        topology = topology.replacingOccurrences(of: #""host": {"#, with: #""host": {"interface": "lo", "#)

        let run = try XDPEmuProcess(
            arguments: [
                "run", try fixture.write("lo.json", topology), "--state-dir", fixture.stateDirectory, "--no-capture",
            ], directory: fixture.directory)

        #expect(run.wait(timeout: 20) == 2)
        #expect(
            run.stderr.contains("port \(fixture.port("a")): host.interface: \"lo\" is the loopback"), "\(run.stderr)")
        try expectNothingLeft(fixture)
    }
}
