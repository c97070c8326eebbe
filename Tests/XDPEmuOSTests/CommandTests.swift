import Glibc
import SystemPackage
import Testing
import XDPEmuOS

@Suite("Running commands without a shell")
struct CommandTests {
    @Test func capturesStdoutAndStatus() throws {
        let output = try Command.run("echo", ["a b", "$HOME;"])
        // No shell: the arguments arrive verbatim.
        #expect(output.stdout == "a b $HOME;\n")
        #expect(output.status == 0)
    }

    @Test(.enabled(if: (try? Command.locate("ip")) != nil, "needs iproute2"))
    func failureCarriesCommandLineAndStderr() throws {
        let name = "xdptnone\(UniqueName.next().suffix(6))"
        #expect {
            try Command.run("ip", ["link", "show", "dev", name])
        } throws: { error in
            guard case .failed(let commandLine, let output) = error as? CommandError else { return false }
            let text = (error as! CommandError).description
            return commandLine == ["ip", "link", "show", "dev", name] && output.status != 0
                && output.stderr.contains(name) && text.contains("ip link show dev \(name)")
        }
    }

    @Test func missingExecutableIsNamed() {
        #expect(throws: CommandError.self) { try Command.run("xdpemu-no-such-tool", []) }
    }

    @Test func childrenInheritNoFdsBeyondStdio() throws {
        let (readEnd, writeEnd) = try FileDescriptor.pipe()
        defer {
            try? readEnd.close()
            try? writeEnd.close()
        }
        _ = try retryingEINTROrThrow { fcntl(writeEnd.rawValue, F_SETFD, 0) }  // not close-on-exec
        let listing = try Command.run("ls", ["/proc/self/fd"]).stdout.split(separator: "\n")
        #expect(!listing.contains(Substring(String(writeEnd.rawValue))))
        #expect(listing.count <= 4, "stdin, stdout, stderr and ls's own directory fd: \(listing)")
    }

    // Synchronous: the signal mask is per thread and this test stays on one.
    @Test func childrenStartWithAnEmptySignalMaskWhileAWatcherBlocksSignals() throws {
        let watcher = try SignalWatcher(signals: [SIGINT, SIGTERM])
        defer { watcher.close() }
        let status = try Command.run("cat", ["/proc/self/status"]).stdout
        let blocked = status.split(separator: "\n").first { $0.hasPrefix("SigBlk:") }
        #expect(blocked == "SigBlk:\t0000000000000000")
    }
}
