import ArgumentParser
import Foundation
import XDPEmuCore
import XDPEmuOS
import XDPEmuRuntime

/// Exit codes (documented in README): 0 success; 1 a run failed (an output, a system call, too low an open-file
/// limit); 2 bad input (a script, topology or trace error; a name or capture directory in use); 64 a command-line
/// usage error; 77 missing privileges or kernel features for live mode.
enum ExitStatus {
    static let failure: Int32 = 1
    static let badInput: Int32 = 2
    /// EX_USAGE, as ArgumentParser exits on a usage error.
    static let usage: Int32 = 64
    static let noPermission: Int32 = 77
}

/// xdpemu's command line as a library, so that a package of your own can build an `xdpemu` that knows your
/// programs: depend on the `XDPEmuCLI` product and call `XDPEmuCLI.main(programs:)` from your executable's
/// `main.swift` (see Examples/custom-program).
public enum XDPEmuCLI {
    /// Registers `programs` (so topology files can name them by `"type"`), then runs the command named by the
    /// process's arguments and exits with its status.
    public static func main(programs: [ProgramRegistration] = []) -> Never {
        for program in programs { ProgramRegistry.register(program) }
        XDPEmu.main()
        exit(0)
    }
}

struct XDPEmu: ParsableCommand {
    /// What `xdpemu --version` prints.
    static let version = "0.3.0"

    static let configuration = CommandConfiguration(
        commandName: "xdpemu",
        abstract: "Packet-level emulator of an XDP redirect datapath (programs, devmap, bulk queues, NAPI).",
        version: version,
        subcommands: [
            RunCommand.self, ReplayCommand.self, MapCommand.self, ProgCommand.self, ValidateCommand.self,
            CleanupCommand.self, StatsCommand.self, PortsCommand.self, PortCommand.self, EventsCommand.self,
            ListCommand.self,
        ]
    )

    /// `xdpemu` with no subcommand is a usage error: the usage goes to stderr and the exit code is 64.
    func run() throws {
        FileHandle.standardError.write(Data((Self.helpMessage() + "\n").utf8))
        throw ExitCode(ExitStatus.usage)
    }
}

struct MapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "map", abstract: "Devmap control-plane tools: scripts, and the maps of a running instance.",
        subcommands: [
            MapBatchCommand.self, MapUpdateCommand.self, MapDeleteCommand.self, MapLookupCommand.self,
            MapNextCommand.self, MapDumpCommand.self,
        ])
}

struct MapBatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Run devmap operations from a file and print one answer per operation.",
        discussion: """
            Operations, one a line (# comments): device NAME [ifindex N] [mtu N] [down] [noxmit]; \
            create devmap|devmap_hash MAX_ENTRIES [key_size N] [value_size N] [flags N]; \
            update KEY DEVICE [any|noexist|exist|N]; \
            delete KEY; lookup KEY; next KEY|none; unregister DEVICE. Failures print the errno name. \
            A syntax error prints 'xdpemu: FILE: line N: ...' to stderr (input text in it quoted, escaped and cut at 80 \
            characters); the rest still runs and the exit code is 2.
            """)

    @Argument(help: "The operations file, or - for standard input.")
    var file: String

    @Option(help: "Kernel behaviour to reproduce: 4.18 or modern (Linux 5.14 and later).")
    var semantics: String = "4.18"

    @Flag(help: "Act as a process without CAP_NET_ADMIN (map creation fails with EPERM).")
    var unprivileged = false

    func run() throws {
        guard let profile = Semantics(rawValue: semantics) else {
            throw ValidationError("unknown semantics '\(semantics)' (4.18, modern)")
        }
        let script: String
        do {
            script = String(decoding: file == "-" ? try readStandardInput() : try readRegularFile(file), as: UTF8.self)
        } catch {
            FileHandle.standardError.write(Data("xdpemu: \(file): \(error)\n".utf8))
            throw ExitCode(ExitStatus.badInput)
        }
        var batch = MapBatch(semantics: profile, capNetAdmin: !unprivileged)
        var failed = false
        for (index, line) in MapBatch.lines(of: script).enumerated() {
            switch batch.execute(line: String(line), number: index + 1) {
            case .success(let answer?): print(answer)
            case .success(nil): break
            case .failure(let error):
                failed = true
                let source = file == "-" ? "standard input" : file
                FileHandle.standardError.write(Data("xdpemu: \(source): line \(error.line): \(error.message)\n".utf8))
            }
        }
        if failed { throw ExitCode(ExitStatus.badInput) }
    }
}
