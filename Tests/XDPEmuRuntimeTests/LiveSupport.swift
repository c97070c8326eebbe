// Helpers for the live-mode tests.
//
// Every test writes its own topology, with names no one else uses ("xl" + pid + a counter for ports, "xdp-"
// + that for namespaces), into a fresh temporary directory that also holds its run-state directory and captures.
// Whatever a test's runs recorded is removed at the end of the test (`RunState.cleanupStale` on that private
// state directory, forced), also when the test fails; traffic only ever flows between the test's namespaces.

import CTapShim
import Foundation
import Glibc
import Synchronization
import Testing
import XDPEmuOS
import XDPEmuPcap

enum LiveSystem {
    /// The `xdpemu` binary built beside the test bundle.
    static let binary: String = {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("xdpemu").path
    }()

    /// The repository's top directory (for topologies/ and pcaps/).
    static let repository = repositoryRoot

    /// Root-equivalent capabilities, /dev/net/tun, `ip netns`, and the built binary.
    static let available: Bool = {
        do {
            try Privileges.check(namespaces: true)
            _ = try Command.run("ip", ["netns", "list"])
        } catch {
            print("XDPEmuRuntimeTests: skipping live tests: \(error)")
            return false
        }
        guard access(binary, X_OK) == 0 else {
            print("XDPEmuRuntimeTests: skipping live tests: no xdpemu binary at \(binary)")
            return false
        }
        return true
    }()

    static let reason: Comment =
        "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN), /dev/net/tun, `ip netns` and the xdpemu binary"
}

/// A test's private directory, names and cleanup.
final class LiveFixture {
    private static let counter = Atomic<Int>(0)

    let directory: String
    let stateDirectory: String
    /// "xl<pid%10000><n>": a prefix for this fixture's port names (at most 10 bytes, leaving room for a suffix).
    let tag: String

    init() throws {
        var template = Array("/tmp/xdpemu-live-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw POSIXError(.EIO) }
        directory = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        stateDirectory = directory + "/state"
        let n = Self.counter.add(1, ordering: .relaxed).newValue
        tag = "xl\(getpid() % 10000)\(n)"
    }

    deinit {
        let report = RunState.cleanupStale(directory: stateDirectory, force: true)
        if !report.removed.isEmpty { print("LiveFixture: removed leftovers \(report.removed)") }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A port name: the tag and `suffix`.
    func port(_ suffix: String) -> String { tag + suffix }

    /// A namespace name: "xdp-" + the tag and `suffix` (namespace names follow interface-name rules: 15 bytes).
    func namespace(_ suffix: String) -> String { "xdp-" + tag + suffix }

    /// Writes `text` to DIRECTORY/NAME (open(2) O_CREAT|O_TRUNC) and returns the path.
    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        let path = directory + "/" + name
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard Glibc.write(fd, bytes, bytes.count) == bytes.count else { throw POSIXError(.EIO) }
        return path
    }

    /// A two-host topology: ports A and B with hosts in namespaces "a" and "b" (10.91.0.1, 10.91.0.2), a devmap
    /// `fwd` {0: B, 1: A}; `extraPorts` are appended to the ports array as they are.
    func twoHosts(extraPorts: [String] = []) throws -> String {
        let ports =
            [
                """
                {"name": "\(port("a"))", "host": {"namespace": "\(namespace("a"))", "mac": "02:00:00:00:91:01",
                 "ipv4": ["10.91.0.1/24"]},
                 "program": {"type": "redirect_map", "map": "fwd", "key": {"kind": "constant", "value": 0}}}
                """,
                """
                {"name": "\(port("b"))", "host": {"namespace": "\(namespace("b"))", "mac": "02:00:00:00:91:02",
                 "ipv4": ["10.91.0.2/24"]},
                 "program": {"type": "redirect_map", "map": "fwd", "key": {"kind": "constant", "value": 1}}}
                """,
            ] + extraPorts
        return try write(
            "two-hosts.json",
            """
            {"name": "two-hosts-\(tag)", "ports": [\(ports.joined(separator: ",\n"))],
             "maps": [{"name": "fwd", "type": "devmap", "max_entries": 2,
                       "entries": {"0": "\(port("b"))", "1": "\(port("a"))"}}]}
            """)
    }

    /// Starts `xdpemu run TOPOLOGY` with this fixture's state directory and `arguments`, and waits until it is up.
    func startRun(_ topology: String, _ arguments: [String] = [], capture: Bool = true) throws -> XDPEmuProcess {
        var args = ["run", topology, "--state-dir", stateDirectory]
        args += capture ? ["--capture", directory + "/capture"] : ["--no-capture"]
        let process = try XDPEmuProcess(arguments: args + arguments, directory: directory)
        try process.waitUntilReady()
        return process
    }
}

/// An `xdpemu` child process with stdout and stderr in files (posix_spawn, argument array, no shell).
final class XDPEmuProcess {
    let pid: pid_t
    let stdoutPath: String
    let stderrPath: String
    private(set) var exitStatus: Int32?
    private static let counter = Atomic<Int>(0)

    init(executable: String = LiveSystem.binary, arguments: [String], directory: String) throws {
        let n = Self.counter.add(1, ordering: .relaxed).newValue
        stdoutPath = "\(directory)/child\(n).stdout"
        stderrPath = "\(directory)/child\(n).stderr"
        pid = try spawn(executable, arguments, stdout: stdoutPath, stderr: stderrPath)
    }

    deinit {
        if exitStatus == nil {
            kill(pid, SIGKILL)
            _ = wait(timeout: 10)
        }
    }

    var stdout: String { (try? String(contentsOfFile: stdoutPath, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// Waits for the "Ctrl-C to stop." line that follows setup; throws if the process exits first. Setup takes
    /// a fraction of a second, but the run-state file is fsync'ed at every step, and on a disk busy with other
    /// work one fsync has been seen to take seconds.
    func waitUntilReady(timeout: Double = 60) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if stdout.contains("Ctrl-C to stop.") { return }
            if let status = wait(timeout: 0) {
                throw LiveTestError("xdpemu exited with \(status) before it was ready:\n\(stderr)")
            }
            usleep(20_000)
        }
        throw LiveTestError("xdpemu not ready after \(timeout) s:\n\(stdout)\n\(stderr)")
    }

    func send(_ signal: Int32) { kill(pid, signal) }

    /// The exit status (or 128 + signal) once the process has ended, waiting up to `timeout` seconds.
    @discardableResult
    func wait(timeout: Double) -> Int32? {
        if let exitStatus { return exitStatus }
        let deadline = Date().addingTimeInterval(timeout)
        repeat {
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                exitStatus = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
                return exitStatus
            }
            if result < 0 { return nil }
            if timeout > 0 { usleep(10_000) }
        } while Date() < deadline
        return nil
    }

    /// SIGINT, then the exit status (nil if it did not end within `timeout`).
    func interrupt(timeout: Double = 20) -> Int32? {
        send(SIGINT)
        return wait(timeout: timeout)
    }
}

struct LiveTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// posix_spawn(3) of `path` with `arguments`, stdin /dev/null, stdout and stderr to files; fds above 2 closed.
func spawn(_ path: String, _ arguments: [String], stdout: String, stderr: String) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    xdpemu_spawn_closefrom(&actions, 3)
    let resolved = try Command.locate(path)
    let argv = [path] + arguments
    var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
    defer { cArgs.forEach { free($0) } }
    var pid: pid_t = 0
    let error = posix_spawn(&pid, resolved, &actions, nil, &cArgs, environ)
    guard error == 0 else { throw LiveTestError("posix_spawn \(path): \(String(cString: strerror(error)))") }
    return pid
}

/// Runs a command inside a namespace: `ip netns exec NS ARGS...`.
@discardableResult
func inNamespace(_ ns: String, _ arguments: [String]) throws -> CommandOutput {
    try Command.runUnchecked("ip", ["netns", "exec", ns] + arguments)
}

/// The ICMP type of an IPv4 ICMP frame, else nil.
func icmpType(_ frame: [UInt8]) -> UInt8? {
    guard frame.count >= 34, frame[12] == 0x08, frame[13] == 0x00, frame[23] == 1 else { return nil }
    let offset = 14 + Int(frame[14] & 0x0f) * 4
    return frame.count > offset ? frame[offset] : nil
}

/// The statistics JSON an `xdpemu run --stats` wrote: port name to its object.
func portStatistics(_ path: String) throws -> [String: [String: Any]] {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    let root = try JSONSerialization.jsonObject(with: data) as? [String: Any]
    let ports = root?["ports"] as? [[String: Any]] ?? []
    return Dictionary(uniqueKeysWithValues: ports.map { ($0["name"] as? String ?? "", $0) })
}
