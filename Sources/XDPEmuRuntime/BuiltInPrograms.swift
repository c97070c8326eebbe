import XDPEmuCore
import XDPEmuPrograms
import XDPEmuTopology

/// Builds the built-in programs from the configurations the topology loader decoded, resolving map and port names
/// to this network's devmaps and devices.
enum BuiltInPrograms {
    static func attach(_ spec: ProgramSpec, context: ProgramContext) throws(RuntimeError) {
        switch spec {
        case .redirectMap(let redirect):
            context.attach(RedirectMapProgram(redirect, map: try context.map(redirect.map)))
        case .l2Switch(let l2):
            // Every port of one switch (one devmap) shares one program value, hence one learning table.
            let program = try context.shared.object("l2_switch:" + l2.map) { () throws(RuntimeError) in
                let map = try context.map(l2.map)
                var portKeys = [IfIndex: UInt32]()
                for entry in l2.ports {
                    guard let device = context.ports[entry.port] else {
                        throw .badInput("\(context.topology.source): \(context.path).ports: no port \(entry.port)")
                    }
                    portKeys[device.ifindex] = entry.key
                }
                return L2SwitchProgram(
                    map: map, portKeys: portKeys, tableSize: l2.tableSize,
                    floodExcludeIngress: l2.floodExcludeIngress)
            }
            context.attach(program)
        case .acl(let acl):
            switch acl.then {
            case .pass:
                context.attach(
                    ACLProgram(
                        rules: acl.rules, defaultAction: acl.defaultAction,
                        then: ConstantProgram(.pass)))
            case .drop:
                context.attach(
                    ACLProgram(
                        rules: acl.rules, defaultAction: acl.defaultAction,
                        then: ConstantProgram(.drop)))
            case .redirectMap(let redirect):
                context.attach(
                    ACLProgram(
                        rules: acl.rules, defaultAction: acl.defaultAction,
                        then: RedirectMapProgram(redirect, map: try context.map(redirect.map))))
            }
        case .reflector(let reflector):
            context.attach(reflector)
        case .ebpf(let configuration):
            try EBPFAttach.attach(configuration, context: context)
        case .pass, .drop, .abort, .returnValue, .custom:
            preconditionFailure("handled by ProgramRegistry")
        }
    }
}
