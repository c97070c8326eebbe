import Foundation
import Glibc
import Testing
import XDPEmuOS
import XDPEmuRuntime

// The control socket of a running instance, end to end: the real binary and its client commands, while hosts in
// namespaces exchange traffic (LiveSupport.swift for the fixtures and names).

@Suite("Live control socket", .serialized, .enabled(if: LiveSystem.available, LiveSystem.reason))
struct LiveControlTests {
    @Test func theTableChangedThroughTheSocketIsWhatTrafficFollowsAndStatsAddUp() throws {
        let fixture = try LiveFixture()
        let stats = fixture.directory + "/stats.json"
        let run = try fixture.startRun(try fixture.twoHosts(), ["--stats", stats], capture: false)
        let instance = "two-hosts-\(fixture.tag)"
        let socket = fixture.stateDirectory + "/\(instance).sock"
        func xdpemu(_ arguments: [String]) throws -> ProcessResult {
            try runXDPEmu(arguments + ["--instance", instance, "--state-dir", fixture.stateDirectory])
        }
        func ping(_ count: Int = 2) throws -> Bool {
            try inNamespace(fixture.namespace("a"), ["ping", "-c", "\(count)", "-i", "0.05", "-W", "1", "10.91.0.2"])
                .status == 0
        }

        var status = stat()
        #expect(lstat(socket, &status) == 0 && status.st_mode & 0o777 == 0o600)
        #expect(status.st_uid == geteuid())
        let list = try runXDPEmu(["list", "--state-dir", fixture.stateDirectory])
        #expect(list.stdout.contains(instance) && list.stdout.contains("pid \(run.pid)"), "\(list.stdout)")

        #expect(try ping())
        #expect(try xdpemu(["map", "lookup", "fwd", "0"]).stdout == "ok \(fixture.port("b"))\n")
        #expect(try xdpemu(["map", "delete", "fwd", "0"]).status == 0)
        #expect(try !ping())
        let noexist = try xdpemu(["map", "update", "fwd", "0", fixture.port("b"), "noexist"])
        #expect(noexist.status == 1 && noexist.stdout == "EEXIST\n")
        #expect(try xdpemu(["map", "lookup", "fwd", "0"]).stdout == "ENOENT\n")
        #expect(try xdpemu(["map", "update", "fwd", "0", fixture.port("b")]).stdout == "ok\n")
        #expect(try ping())
        let dump = try xdpemu(["map", "dump", "fwd", "--json"])
        let entries = try #require(
            (try JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [String: Any])?["entries"]
                as? [[String: Any]])
        #expect(entries.map { $0["device"] as? String } == [fixture.port("b"), fixture.port("a")])

        // A link taken down is what the devmap's ENETDOWN check sees.
        #expect(try xdpemu(["port", "set", fixture.port("b"), "down"]).status == 0)
        #expect(try !ping())
        #expect(try xdpemu(["ports"]).stdout.contains("down"))
        #expect(try xdpemu(["port", "set", fixture.port("b"), "up"]).status == 0)
        #expect(try ping())

        // Bad requests: named, with their exit codes.
        let unknownMap = try xdpemu(["map", "update", "nope", "0", fixture.port("b")])
        #expect(unknownMap.status == 2 && unknownMap.stderr.contains("unknown map \"nope\" (maps: fwd)"))
        let unknownPort = try xdpemu(["port", "set", "zz", "mtu", "1400"])
        #expect(unknownPort.status == 2 && unknownPort.stderr.contains("unknown port \"zz\""))
        let badMTU = try xdpemu(["port", "set", fixture.port("b"), "mtu", "20"])
        #expect(badMTU.status == 2 && badMTU.stderr.contains("mtu 20 is out of range"))
        // Another user cannot use the socket (mode 0600).
        let other = try Command.runUnchecked(
            "setpriv",
            [
                "--reuid=65534", "--regid=65534", "--clear-groups", LiveSystem.binary, "stats", "--instance", instance,
                "--state-dir", fixture.stateDirectory,
            ])
        #expect(other.status == 77 && other.stderr.contains("permission denied"), "\(other.stderr)")

        // Events follow live; stats add up: every frame in is transmitted or dropped by reason.
        let events = try XDPEmuProcess(
            arguments: ["events", "--instance", instance, "--state-dir", fixture.stateDirectory],
            directory: fixture.directory)
        usleep(300_000)
        #expect(try ping(3))
        usleep(500_000)
        events.send(SIGINT)
        _ = events.wait(timeout: 5)
        #expect(events.stdout.contains("\"event\":\"xdp_redirect_map\""), "\(events.stdout)")
        let snapshot = try xdpemu(["stats", "--json"])
        let root = try #require(try JSONSerialization.jsonObject(with: Data(snapshot.stdout.utf8)) as? [String: Any])
        let ports = root["ports"] as? [[String: Any]] ?? []
        let framesIn = root["frames_in"] as? Int ?? -1
        let out = ports.reduce(0) {
            $0 + ($1["tx"] as? Int ?? 0) + ($1["pass"] as? Int ?? 0) + ($1["drops_total"] as? Int ?? 0)
        }
        #expect(framesIn > 0 && framesIn == out, "\(snapshot.stdout)")

        #expect(run.interrupt() == 0)
        #expect(access(socket, F_OK) != 0, "the socket is removed at teardown")
        let gone = try xdpemu(["stats"])
        #expect(gone.status == 1 && gone.stderr.contains("no running instance \(instance)"))
    }

    @Test func aNameInUseOrInvalidIsRefusedBeforeAnythingIsCreated() throws {
        let fixture = try LiveFixture()
        let run = try fixture.startRun(try fixture.twoHosts(), capture: false)
        // Another topology (names of its own) under the running instance's name.
        let other = try LiveFixture()
        let topology = try other.twoHosts()
        let arguments = ["run", topology, "--state-dir", fixture.stateDirectory, "--no-capture", "--name"]
        let second = try runXDPEmu(arguments + ["two-hosts-\(fixture.tag)"])
        #expect(second.status == 2)
        #expect(
            second.stderr.contains(
                "instance name two-hosts-\(fixture.tag) is in use by the running xdpemu run \(run.pid)"),
            "\(second.stderr)")
        #expect(!NetNamespace.exists(other.namespace("a")))
        let badName = try runXDPEmu(arguments + ["a/b"])
        #expect(badName.status == 2 && badName.stderr.contains("invalid instance name \"a/b\""), "\(badName.stderr)")
        #expect(run.interrupt() == 0)
    }
}
