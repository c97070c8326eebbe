import XDPEmuCore
import XDPEmuPrograms
import XDPEmuTopology

/// Turns the topology's program specifications into the built-in program types of XDPEmuPrograms.
enum BuiltInPrograms {
    static func attach(_ spec: ProgramSpec, context: ProgramContext) throws(RuntimeError) {
        switch spec {
        case .redirectMap(let redirect):
            context.attach(try redirectProgram(redirect, context: context))
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
                return L2SwitchProgram(map: map, portKeys: portKeys, tableSize: l2.tableSize,
                                       floodExcludeIngress: l2.floodExcludeIngress)
            }
            context.attach(program)
        case .acl(let acl):
            let rules = try acl.rules.enumerated().map { index, rule throws(RuntimeError) in
                try aclRule(rule, path: "\(context.path).rules[\(index)]", context: context)
            }
            let defaultAction = aclAction(acl.defaultAction)
            switch acl.then {
            case .pass:
                context.attach(ACLProgram(rules: rules, defaultAction: defaultAction, then: ConstantProgram(.pass)))
            case .drop:
                context.attach(ACLProgram(rules: rules, defaultAction: defaultAction, then: ConstantProgram(.drop)))
            case .redirectMap(let redirect):
                context.attach(ACLProgram(rules: rules, defaultAction: defaultAction,
                                          then: try redirectProgram(redirect, context: context)))
            default:
                throw .badInput("\(context.topology.source): \(context.path).then: must be pass, drop or redirect_map")
            }
        case .reflector(let reflector):
            context.attach(ReflectorProgram(swapIP: reflector.swapIP, swapPorts: reflector.swapPorts))
        case .pass, .drop, .abort, .returnValue, .custom:
            preconditionFailure("handled by ProgramRegistry")
        }
    }

    static func redirectProgram(_ spec: RedirectMapSpec, context: ProgramContext) throws(RuntimeError)
        -> RedirectMapProgram
    {
        let map = try context.map(spec.map)
        let selector: KeySelector
        switch spec.key {
        case .constant(let key): selector = .constant(key)
        case .ingressIfindex: selector = .ingressIfindex
        case .destinationMAC(let table, let miss):
            selector = .destinationMAC(
                table: MACTable(table.map { ($0.mac, $0.key) }),
                miss: missAction(miss))
        case .hash(let modulo, let base, let nonIP):
            selector = .hash(modulo: modulo, base: base, nonIP: missAction(nonIP))
        }
        return RedirectMapProgram(map: map, selector: selector, flags: spec.flags)
    }

    static func missAction(_ miss: XDPEmuTopology.MissAction) -> XDPEmuPrograms.MissAction {
        switch miss {
        case .drop: .drop
        case .pass: .pass
        case .abort: .abort
        case .key(let key): .key(key)
        }
    }

    static func aclAction(_ action: ACLAction) -> XDPEmuPrograms.ACLRule.Action {
        switch action {
        case .drop: .drop
        case .pass: .pass
        case .allow: .allow
        }
    }

    static func aclRule(_ rule: XDPEmuTopology.ACLRule, path: String, context: ProgramContext) throws(RuntimeError)
        -> XDPEmuPrograms.ACLRule
    {
        XDPEmuPrograms.ACLRule(
            action: aclAction(rule.action), ipProtocol: rule.proto?.rawValue, source: rule.src,
            destination: rule.dst, sourcePorts: rule.sport.map { $0.lower...$0.upper },
            destinationPorts: rule.dport.map { $0.lower...$0.upper })
    }
}
