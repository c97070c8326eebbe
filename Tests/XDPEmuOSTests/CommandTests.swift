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
}
