import ArgumentParser
import XDPEmuRuntime

@main
struct XDPEmu: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "xdpemu", abstract: "Packet-level XDP/devmap network emulator.")
}
