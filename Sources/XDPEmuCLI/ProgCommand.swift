import ArgumentParser
import XDPEmuOS
import XDPEmuRuntime

struct ProgCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prog", abstract: "eBPF object tools.", subcommands: [ProgShowCommand.self])
}

struct ProgShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show",
        abstract: "List an eBPF object's programs, maps and helpers, and what xdpemu does not support of them.",
        discussion:
            "Reads the ELF file without the kernel (no bpf(2) call). Exit code 2 for a file that is not a BPF object.")

    @Argument(help: "The object file (clang -O2 -g -target bpf -c prog.c -o prog.o).")
    var object: String

    func run() throws {
        do {
            print(try EBPFObjects.describe(objectAt: object))
        } catch {
            fail("\(error)", code: error.exitCode)
        }
    }
}
