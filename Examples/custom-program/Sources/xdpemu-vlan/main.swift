import XDPEmuCLI
import XDPEmuRuntime

// xdpemu with one more program type: a port's `"program": {"type": "vlan_redirect", "map": "vlans"}` runs
// VLANRedirectProgram on it. Every subcommand (run, replay, validate, map batch, cleanup) works as in xdpemu.
XDPEmuCLI.main(programs: [
    ProgramRegistration(type: "vlan_redirect") { config, context throws(RuntimeError) in
        context.attach(VLANRedirectProgram(map: try context.map(config["map"]?.stringValue ?? "")))
    }
])
