// Which XDP program a port runs. The built-in programs' configurations are the programs' own types
// (XDPEmuPrograms), decoded straight from the file and checked by the loader; the runtime builds each program from
// its configuration without looking at text again.

import XDPEmuPrograms

/// The XDP program attached to a port (`"program": {"type": ...}`).
public enum ProgramSpec: Sendable, Equatable {
    /// `{"type": "pass"}`: every frame goes to the stack (XDP_PASS).
    case pass
    /// `{"type": "drop"}`: XDP_DROP.
    case drop
    /// `{"type": "abort"}`: XDP_ABORTED, which also raises the xdp_exception tracepoint.
    case abort
    /// `{"type": "return", "value": N}`: returns a raw action code, to test how invalid codes are handled.
    case returnValue(UInt32)
    /// `{"type": "redirect_map", ...}`: `bpf_redirect_map` with a key chosen per frame.
    case redirectMap(RedirectMapConfiguration)
    /// `{"type": "l2_switch", ...}`: a learning switch that floods through a devmap.
    case l2Switch(L2SwitchConfiguration)
    /// `{"type": "acl", ...}`: first-match rules, then another program.
    case acl(ACLConfiguration)
    /// `{"type": "reflector", ...}`: sends each frame back out of the port it came in on.
    case reflector(ReflectorProgram)
    /// `{"type": "ebpf", "object": ...}`: a compiled eBPF object's XDP program, run by the interpreter.
    case ebpf(EBPFProgramConfiguration)
    /// A type the caller registered with the loader; `config` is the program object without its `"type"` member.
    case custom(type: String, config: JSONValue)

    /// The `"type"` string of this program in a topology file.
    public var typeName: String {
        switch self {
        case .pass: "pass"
        case .drop: "drop"
        case .abort: "abort"
        case .returnValue: "return"
        case .redirectMap: "redirect_map"
        case .l2Switch: "l2_switch"
        case .acl: "acl"
        case .reflector: "reflector"
        case .ebpf: "ebpf"
        case .custom(let type, _): type
        }
    }

    /// The type names the loader knows without registration.
    public static let builtInTypeNames = [
        "pass", "drop", "abort", "return", "redirect_map", "l2_switch", "acl", "reflector", "ebpf",
    ]
}
