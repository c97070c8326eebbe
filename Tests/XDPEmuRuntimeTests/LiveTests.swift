import Foundation
import Glibc
import Testing
import XDPEmuOS
import XDPEmuRuntime
import XDPEmuTopology

// End-to-end tests of `xdpemu run`: the real binary, real TAPs, hosts in namespaces, real signals. Each test
// builds its own topology with names no other test or user has (LiveSupport.swift) and removes everything.

@Suite("Live mode", .serialized, .enabled(if: LiveSystem.available, LiveSystem.reason))
struct LiveTests {
    @Test func twoHostsPingEachOtherThroughTheDevmapAndTheCapturesShowIt() throws {
        let fixture = try LiveFixture()
        let run = try fixture.startRun(try fixture.twoHosts())
        let (a, b) = (fixture.port("a"), fixture.port("b"))

        let ping = try inNamespace(fixture.namespace("a"), ["ping", "-c", "200", "-i", "0.01", "-W", "1", "10.91.0.2"])

        #expect(ping.stdout.contains("200 packets transmitted, 200 received, 0% packet loss"), "\(ping.stdout)")
        #expect(run.interrupt() == 0, "\(run.stderr)")
        let capture = fixture.directory + "/capture/"
        func count(_ file: String, type: UInt8) throws -> Int {
            try readCapture(capture + file).map(\.bytes).filter { icmpType($0) == type }.count
        }
        #expect(try count("\(a).ingress.pcap", type: 8) == 200)
        #expect(try count("\(b).egress.pcap", type: 8) == 200)
        #expect(try count("\(b).ingress.pcap", type: 0) == 200)
        #expect(try count("\(a).egress.pcap", type: 0) == 200)
        #expect(try count("\(a).ingress.pcap", type: 0) == 0)
        let tcpdump = try Command.run("tcpdump", ["-nn", "--nano", "-r", capture + "\(b).egress.pcap"])
        #expect(tcpdump.stdout.split(separator: "\n").filter { $0.contains("ICMP echo request") }.count == 200)
    }

    @Test func iperf3TCPCrossesTheEmulatorAndTheRunStaysHealthy() throws {
        let fixture = try LiveFixture()
        let stats = fixture.directory + "/stats.json"
        let run = try fixture.startRun(try fixture.twoHosts(), ["--stats", stats], capture: false)

        let bitsPerSecond = try iperf3(fixture, seconds: 3)

        #expect(bitsPerSecond > 0)
        print("iperf3 through xdpemu (debug build, no capture): \(Int(bitsPerSecond / 1e6)) Mbit/s")
        let after = try inNamespace(fixture.namespace("a"), ["ping", "-c", "3", "-i", "0.05", "-W", "1", "10.91.0.2"])
        #expect(after.status == 0, "\(after.stdout)")
        #expect(run.wait(timeout: 0) == nil, "the run is still going")
        #expect(run.interrupt() == 0, "\(run.stderr)")
        #expect(!run.stderr.contains("was deleted"))
        let ports = try portStatistics(stats)
        #expect((ports[fixture.port("a")]?["tx"] as? Int ?? 0) > 1000)
    }

    @Test(arguments: [true, false])
    func tcpSuperFramesCrossVirtioNetHeaderPorts(peerHasHeader: Bool) throws {
        let fixture = try LiveFixture()
        let stats = fixture.directory + "/stats.json"
        var topology = try String(contentsOfFile: try fixture.twoHosts(), encoding: .utf8)
        topology = topology.replacingOccurrences(
            of: #"{"name": "\#(fixture.port("a"))","#,
            with: #"{"name": "\#(fixture.port("a"))", "vnet_hdr": true,"#)
        if peerHasHeader {
            topology = topology.replacingOccurrences(
                of: #"{"name": "\#(fixture.port("b"))","#,
                with: #"{"name": "\#(fixture.port("b"))", "vnet_hdr": true,"#)
        }
        let run = try fixture.startRun(try fixture.write("vnet.json", topology), ["--stats", stats], capture: false)

        let bitsPerSecond = try iperf3(fixture, seconds: 2)

        #expect(bitsPerSecond > 0)
        print(
            "iperf3, vnet_hdr on \(peerHasHeader ? "both ports" : "the sender's port only") (debug build): "
                + "\(Int(bitsPerSecond / 1e6)) Mbit/s")
        let ping = try inNamespace(fixture.namespace("b"), ["ping", "-c", "3", "-i", "0.05", "-W", "1", "10.91.0.1"])
        #expect(ping.status == 0, "\(ping.stdout)")
        #expect(run.interrupt() == 0, "\(run.stderr)")
        let sender = try #require(try portStatistics(stats)[fixture.port("a")])
        let (frames, bytes) = (sender["rx"] as? Int ?? 0, sender["rx_bytes"] as? Int ?? 0)
        #expect(frames > 0 && bytes / frames > 1514, "the sender's port received GSO super-frames")
        #expect((sender["drops_total"] as? Int ?? 1) == 0)
    }

    @Test func theReflectorSendsAUDPDatagramBackWithItsAddressesSwapped() throws {
        let fixture = try LiveFixture()
        let port = fixture.port("r")
        let topology = try fixture.write(
            "reflector.json",
            """
            {"name": "reflector-\(fixture.tag)", "ports": [{"name": "\(port)", "mac": "02:00:00:00:92:fe",
              "host": {"namespace": "\(fixture.namespace("r"))", "mac": "02:00:00:00:92:01", "ipv4": ["10.92.0.1/24"],
                       "routes": [{"to": "default", "via": "10.92.0.254"}]},
              "program": {"type": "reflector", "swap_ip": true}}]}
            """)
        let run = try fixture.startRun(topology)
        let script = """
            import socket
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("10.92.0.1", 9999))
            s.settimeout(3)
            s.sendto(b"xdpemu-reflect", ("198.51.100.7", 9999))
            data, (address, port) = s.recvfrom(2048)
            print(address, port, data.decode())
            """

        let output = try inNamespace(fixture.namespace("r"), ["python3", "-c", script])

        #expect(output.stdout == "198.51.100.7 9999 xdpemu-reflect\n", "\(output.stdout)\(output.stderr)")
        #expect(run.interrupt() == 0, "\(run.stderr)")
        let reflected = try readCapture(fixture.directory + "/capture/\(port).egress.pcap").map(\.bytes)
        #expect(
            reflected.contains { frame in
                frame.count > 42 && frame[26..<30] == [198, 51, 100, 7] && frame[30..<34] == [10, 92, 0, 1]
            })
    }

    @Test func aMapEntryDeletedDuringTheRunStopsForwardingUntilItIsAddedAgain() throws {
        let fixture = try LiveFixture()
        let b = fixture.port("b")
        let events = try fixture.write(
            "events.json",
            """
            {"events": [{"at": 1.5, "op": "delete", "map": "fwd", "key": 0},
                        {"at": 3.0, "op": "update", "map": "fwd", "key": 0, "port": "\(b)"}]}
            """)
        let stats = fixture.directory + "/stats.json"
        let run = try fixture.startRun(try fixture.twoHosts(), ["--map-events", events, "--stats", stats])
        let start = Date()
        func ping(at offset: Double, count: Int) throws -> CommandOutput {
            let wait = offset - Date().timeIntervalSince(start)
            if wait > 0 { usleep(UInt32(wait * 1e6)) }
            return try inNamespace(
                fixture.namespace("a"),
                ["ping", "-c", "\(count)", "-i", "0.2", "-W", "1", "10.91.0.2"])
        }

        let before = try ping(at: 0.2, count: 3)
        let during = try ping(at: 1.9, count: 2)
        let after = try ping(at: 3.5, count: 3)

        #expect(before.stdout.contains("3 received"), "\(before.stdout)")
        #expect(during.stdout.contains("2 packets transmitted, 0 received"), "\(during.stdout)")
        #expect(after.stdout.contains("3 received"), "\(after.stdout)")
        #expect(run.interrupt() == 0)
        #expect(run.stderr.contains("map event at +1.500 s: delete fwd[0]: ok"), "\(run.stderr)")
        #expect(run.stderr.contains("map event at +3.000 s: update fwd[0] -> ifindex 2: ok"), "\(run.stderr)")
        let drops = try portStatistics(stats)[fixture.port("a")]?["drops"] as? [String: Any]
        #expect((drops?["redirect_einval"] as? Int ?? 0) >= 2)
    }

    @Test func tapsDeletedDuringTheRunAreSurvived() throws {
        let fixture = try LiveFixture()
        let (root, c) = (fixture.port("r"), fixture.port("c"))
        let topology = try fixture.twoHosts(extraPorts: [
            #"{"name": "\#(root)", "program": {"type": "pass"}}"#,
            #"{"name": "\#(c)", "host": {"namespace": "\#(fixture.namespace("c"))", "ipv4": ["10.91.0.3/24"]}}"#,
        ])
        let run = try fixture.startRun(topology)
        func pingWorks() throws -> Bool {
            let ping = ["ping", "-c", "3", "-i", "0.05", "-W", "1", "10.91.0.2"]
            return try inNamespace(fixture.namespace("a"), ping).status == 0
        }
        #expect(try pingWorks())
        #expect(if_nametoindex(root) != 0)

        try Command.run("ip", ["link", "delete", "dev", root])
        try NetNamespace.delete(fixture.namespace("c"))
        usleep(200_000)

        #expect(try pingWorks())
        #expect(run.wait(timeout: 0) == nil, "the run is still going")

        try NetNamespace.delete(fixture.namespace("b"))
        usleep(200_000)

        #expect(try !pingWorks())
        #expect(run.wait(timeout: 0) == nil, "the run is still going")
        #expect(run.interrupt() == 0, "\(run.stderr)")
        for port in [root, c, fixture.port("b")] {
            #expect(run.stderr.contains("TAP \(port) was deleted"), "\(run.stderr)")
        }
        #expect(!NetNamespace.exists(fixture.namespace("a")))
        #expect(try stateFiles(fixture.stateDirectory).isEmpty)
    }

    @Test func aStackTAPReceivesThePortsPassedFramesAndItsOwnFramesLeaveThroughThePort() throws {
        let fixture = try LiveFixture()
        let (port, stack, ns) = (fixture.port("p"), fixture.port("s"), fixture.namespace("p"))
        let topology = try fixture.write(
            "stack.json",
            """
            {"name": "stack-\(fixture.tag)", "ports": [{"name": "\(port)", "stack": "\(stack)",
              "host": {"namespace": "\(ns)", "mac": "02:00:00:00:93:01", "ipv4": ["10.93.0.1/24"]},
              "program": {"type": "pass"}}]}
            """)
        // Raw frames of the local experimental ethertype 0x88b5: nothing in either namespace acts on them.
        let script = try fixture.write(
            "packet.py",
            """
            import socket, sys
            mode, ifname = sys.argv[1], sys.argv[2]
            if mode == "recv":
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88b5))
                s.bind((ifname, 0))
                s.settimeout(5)
                print("ready", flush=True)
                print(s.recv(2048)[14:].rstrip(b"\\0").decode(), flush=True)
            else:
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
                s.bind((ifname, 0))
                header = bytes.fromhex(sys.argv[3].replace(":", "")) + s.getsockname()[4] + bytes([0x88, 0xb5])
                s.send(header + sys.argv[4].encode().ljust(46, b"\\0"))
            """)
        let run = try fixture.startRun(topology)
        func receive(in namespace: String?, on ifname: String, whileSending send: () throws -> Void) throws -> String {
            let command = ["python3", script, "recv", ifname]
            let receiver = try XDPEmuProcess(
                executable: namespace == nil ? "python3" : "ip",
                arguments: namespace.map { ["netns", "exec", $0] + command }
                    ?? Array(command.dropFirst()),
                directory: fixture.directory)
            let deadline = Date().addingTimeInterval(5)
            while !receiver.stdout.contains("ready") && Date() < deadline { usleep(10_000) }
            try send()
            #expect(receiver.wait(timeout: 10) == 0, "\(receiver.stderr)")
            return receiver.stdout
        }

        let passed = try receive(in: nil, on: stack) {
            try inNamespace(ns, ["python3", script, "send", port, "ff:ff:ff:ff:ff:ff", "to-the-stack"])
        }
        let sent = try receive(in: ns, on: port) {
            try Command.run("python3", [script, "send", stack, "02:00:00:00:93:01", "from-the-stack"])
        }

        #expect(passed == "ready\nto-the-stack\n")
        #expect(sent == "ready\nfrom-the-stack\n")
        #expect(run.interrupt() == 0, "\(run.stderr)")
        #expect(if_nametoindex(stack) == 0)
        let egress = try readCapture(fixture.directory + "/capture/\(port).egress.pcap").map(\.bytes)
        #expect(egress.contains { $0.count > 16 && $0[12] == 0x88 && $0[13] == 0xb5 })
    }

    @Test func sigintEndsTheRunWithNothingLeftAndValidCaptures() throws {
        let fixture = try LiveFixture()
        let root = fixture.port("r")
        let run = try fixture.startRun(try fixture.twoHosts(extraPorts: [#"{"name": "\#(root)"}"#]))
        #expect(try stateFiles(fixture.stateDirectory).count == 1)
        _ = try inNamespace(fixture.namespace("a"), ["ping", "-c", "5", "-i", "0.02", "-W", "1", "10.91.0.2"])

        run.send(SIGINT)

        #expect(run.wait(timeout: 20) == 0, "\(run.stderr)")
        #expect(run.stderr.contains("stopped by SIGINT; everything removed"))
        for ns in [fixture.namespace("a"), fixture.namespace("b")] { #expect(!NetNamespace.exists(ns)) }
        for link in [fixture.port("a"), fixture.port("b"), root] { #expect(if_nametoindex(link) == 0) }
        #expect(try stateFiles(fixture.stateDirectory).isEmpty)
        let captures = try FileManager.default.contentsOfDirectory(atPath: fixture.directory + "/capture")
        #expect(captures.count == 3 * 3 + 1)
        var frames = 0
        for file in captures { frames += try readCapture(fixture.directory + "/capture/" + file).count }
        #expect(frames >= 20)
    }

    @Test func sigtermDuringSetupTearsDownWhatExists() throws {
        let fixture = try LiveFixture()
        let run = try XDPEmuProcess(
            arguments: [
                "run", try fixture.twoHosts(), "--state-dir", fixture.stateDirectory, "--no-capture",
            ], directory: fixture.directory)
        // The state file is the first thing setup creates; the hosts follow it.
        let deadline = Date().addingTimeInterval(10)
        while try stateFiles(fixture.stateDirectory).isEmpty && Date() < deadline { usleep(1000) }

        run.send(SIGTERM)

        #expect(run.wait(timeout: 20) == 0, "\(run.stderr)")
        #expect(run.stderr.contains("stopped by SIGTERM during setup; everything removed"), "\(run.stderr)")
        #expect(!NetNamespace.exists(fixture.namespace("a")) && !NetNamespace.exists(fixture.namespace("b")))
        #expect(if_nametoindex(fixture.port("a")) == 0)
        #expect(try stateFiles(fixture.stateDirectory).isEmpty)
    }

    @Test func twoRunsInARowDoNotCollideAndCleanupRemovesOnlyAKilledRunsLeftovers() throws {
        let fixture = try LiveFixture()
        let topology = try fixture.twoHosts()
        let (a, b) = (fixture.namespace("a"), fixture.namespace("b"))
        func pingWorks() throws -> Bool {
            try inNamespace(a, ["ping", "-c", "2", "-i", "0.05", "-W", "1", "10.91.0.2"]).status == 0
        }
        let first = try fixture.startRun(topology)
        #expect(try pingWorks())
        #expect(first.interrupt() == 0, "\(first.stderr)")
        let second = try fixture.startRun(topology)
        #expect(try pingWorks())
        second.send(SIGKILL)
        #expect(second.wait(timeout: 10) == 128 + SIGKILL)
        #expect(NetNamespace.exists(a) && NetNamespace.exists(b), "a killed run leaves its namespaces")
        #expect(try stateFiles(fixture.stateDirectory).count == 1)

        // A live run recorded in the same state directory, and a namespace no run recorded: both stay.
        let other = try LiveFixture()
        let alive = try XDPEmuProcess(
            arguments: [
                "run", try other.twoHosts(), "--no-capture", "--state-dir", fixture.stateDirectory,
            ], directory: other.directory)
        try alive.waitUntilReady()
        let unrecorded = fixture.namespace("z")
        try NetNamespace.create(unrecorded)
        defer { try? NetNamespace.delete(unrecorded) }

        let cleanup = try XDPEmuProcess(
            arguments: ["cleanup", "--state-dir", fixture.stateDirectory],
            directory: fixture.directory)

        #expect(cleanup.wait(timeout: 20) == 0, "\(cleanup.stderr)")
        #expect(
            cleanup.stdout.contains("removed namespace \(a)") && cleanup.stdout.contains("removed namespace \(b)"),
            "\(cleanup.stdout)")
        #expect(!NetNamespace.exists(a) && !NetNamespace.exists(b))
        #expect(NetNamespace.exists(unrecorded))
        #expect(NetNamespace.exists(other.namespace("a")) && NetNamespace.exists(other.namespace("b")))
        #expect(try stateFiles(fixture.stateDirectory) == ["\(alive.pid).json"])
        #expect(try inNamespace(other.namespace("a"), ["ping", "-c", "1", "-W", "1", "10.91.0.2"]).status == 0)
        #expect(alive.interrupt() == 0, "\(alive.stderr)")
        #expect(try stateFiles(fixture.stateDirectory).isEmpty)
    }

    @Test func aNameInUseIsRefusedBeforeAnythingIsCreated() throws {
        let fixture = try LiveFixture()
        let taken = fixture.namespace("b")
        try NetNamespace.create(taken)
        defer { try? NetNamespace.delete(taken) }

        let run = try XDPEmuProcess(
            arguments: [
                "run", try fixture.twoHosts(), "--state-dir", fixture.stateDirectory,
                "--capture", fixture.directory + "/capture",
            ], directory: fixture.directory)

        #expect(run.wait(timeout: 20) == 2)
        #expect(
            run.stderr.contains("port \(fixture.port("b")): host.namespace: namespace \(taken) already exists"),
            "\(run.stderr)")
        #expect(!NetNamespace.exists(fixture.namespace("a")))
        #expect(!FileManager.default.fileExists(atPath: fixture.stateDirectory))
        #expect(!FileManager.default.fileExists(atPath: fixture.directory + "/capture"))
    }

    @Test func aReplayedTraceEntersALivePortAsIfItsTAPHadReceivedIt() throws {
        let fixture = try LiveFixture()
        let trace = LiveSystem.repository + "/pcaps/two-hosts-icmp.pcap"
        let records = try readCapture(trace).count
        let stats = fixture.directory + "/stats.json"
        let (a, b) = (fixture.port("a"), fixture.port("b"))
        let run = try fixture.startRun(
            try fixture.twoHosts(),
            ["--replay", "\(a)=\(trace)", "--stats", stats, "--duration", "1"])

        #expect(run.wait(timeout: 20) == 0, "\(run.stderr)")

        #expect(run.stderr.contains("replay of \(trace) into \(a) done: \(records) frames"), "\(run.stderr)")
        #expect(run.stderr.contains("stopped by the end of --duration; everything removed"))

        let ports = try portStatistics(stats)
        #expect(ports[a]?["ingress"] as? Int == records)
        #expect(ports[b]?["tx"] as? Int == records)
        #expect(try readCapture(fixture.directory + "/capture/\(b).egress.pcap").count == records)
    }

    @Test func aStopRequestDuringSetupTearsDownWhatWasCreated() throws {
        let fixture = try LiveFixture()
        var options = LiveOptions(topology: try Topology.load(path: try fixture.twoHosts()))
        options.captureDirectory = nil
        options.stateDirectory = fixture.stateDirectory
        options.announce = { _ in }
        options.report = { _ in }
        let live = try LiveRun(options: options)
        live.stopRequest.notify()

        let result = try live.run(signals: nil)

        #expect(result.stoppedDuringSetup)
        #expect(result.ending == .stopRequested)
        #expect(result.teardownErrors.isEmpty)
        #expect(!NetNamespace.exists(fixture.namespace("a")))
        #expect(try stateFiles(fixture.stateDirectory).isEmpty)
    }
}

@Suite("Live mode without privileges")
struct LiveUnprivilegedTests {
    @Test(.enabled(if: access(LiveSystem.binary, X_OK) == 0, "needs the xdpemu binary"))
    func anUnprivilegedRunNamesWhatIsMissingAndExits77() throws {
        let fixture = try LiveFixture()
        // Nobody cannot reach into a checkout in a private directory (mode 0700, as /root is): the child gets a
        // copy of the binary and the topology in a directory anyone can read, wherever the checkout is.
        let shared = makeTemporaryDirectory()
        defer { removeDirectory(shared) }
        #expect(chmod(shared, 0o755) == 0)
        let binary = shared + "/xdpemu"
        let topology = shared + "/two-hosts.json"
        try FileManager.default.copyItem(atPath: LiveSystem.binary, toPath: binary)
        try FileManager.default.copyItem(atPath: LiveSystem.repository + "/topologies/two-hosts.json", toPath: topology)
        // As root, drop to nobody (setresuid clears every capability); otherwise we are unprivileged already.
        let run =
            geteuid() == 0
            ? try XDPEmuProcess(
                executable: "setpriv",
                arguments: [
                    "--reuid=65534", "--regid=65534", "--clear-groups", "--", binary, "run", topology,
                ], directory: shared)
            : try XDPEmuProcess(arguments: ["run", topology], directory: fixture.directory)

        #expect(run.wait(timeout: 20) == 77)
        #expect(run.stderr.split(separator: "\n").count == 1, "\(run.stderr)")
        #expect(run.stderr.hasPrefix("xdpemu: live mode needs CAP_NET_ADMIN"), "\(run.stderr)")
        #expect(run.stderr.contains("`xdpemu replay`"))
        #expect(run.stdout.isEmpty)
    }

    @Test func theFirstLinesTellWhatToDoNext() throws {
        let topology = try Topology.load(path: LiveSystem.repository + "/topologies/two-hosts.json")
        let lines = LiveRun.nextSteps(topology: topology, captureDirectory: "cap")
        #expect(
            lines == [
                "xdpemu: two-hosts is live: xe0 (host xdpemu-h1), xe1 (host xdpemu-h2)",
                "  ip netns exec xdpemu-h1 ping 10.77.0.2",
                "Captures in cap/ (flushed every second):",
                "  tcpdump -nn --nano -r cap/xe1.egress.pcap",
                "Ctrl-C to stop.",
            ])
        let reflector = try Topology.load(path: LiveSystem.repository + "/topologies/reflector.json")
        #expect(
            LiveRun.nextSteps(topology: reflector, captureDirectory: nil)
                == [
                    "xdpemu: reflector is live: refl0 (host xdpemu-r1)", "  ip netns exec xdpemu-r1 ping 10.80.0.254",
                    "Ctrl-C to stop.",
                ])
    }
}

/// Runs an iperf3 TCP test from host "a" (10.91.0.1) to a server on host "b" (10.91.0.2) of a two-hosts fixture;
/// returns what the receiver measured, in bit/s.
func iperf3(_ fixture: LiveFixture, seconds: Int) throws -> Double {
    let server = try XDPEmuProcess(
        executable: "ip",
        arguments: [
            "netns", "exec", fixture.namespace("b"), "iperf3", "-s", "-1", "-B", "10.91.0.2",
        ], directory: fixture.directory)
    defer {
        server.send(SIGTERM)
        server.wait(timeout: 5)
    }
    let arguments = ["iperf3", "-c", "10.91.0.2", "-t", "\(seconds)", "-J"]
    var client = try inNamespace(fixture.namespace("a"), arguments)
    // With -J, iperf3 3.12 reports "unable to connect" (the server is not listening yet) in the JSON, status 0.
    for _ in 0..<30 where client.stdout.contains("unable to connect") {
        usleep(100_000)
        client = try inNamespace(fixture.namespace("a"), arguments)
    }
    let json = try JSONSerialization.jsonObject(with: Data(client.stdout.utf8)) as? [String: Any]
    guard client.status == 0, json?["error"] == nil else {
        throw LiveTestError("iperf3 failed: \(client.stdout)\(client.stderr)")
    }
    let received = (json?["end"] as? [String: Any])?["sum_received"] as? [String: Any]
    return received?["bits_per_second"] as? Double ?? 0
}

/// The state files (*.json) in `directory`; none if it does not exist.
func stateFiles(_ directory: String) throws -> [String] {
    guard FileManager.default.fileExists(atPath: directory) else { return [] }
    return try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".json") }.sorted()
}
