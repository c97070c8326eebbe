// Decoding `program` objects. The `"type"` member decides which other members are allowed, so it is read first.

import XDPEmuCore
import XDPEmuPrograms

extension TopologyDecoder {
    /// The program types an ACL may hand allowed frames to.
    static let aclThenTypes = ["pass", "drop", "redirect_map"]

    /// Decodes a program object. `portIndex` is the owning port's, `egressProgram` for a devmap entry's egress
    /// program, or nil for an ACL's `then`, where only ``aclThenTypes`` are allowed.
    func decodeProgram(_ node: JSONNode, at path: JSONPath, portIndex: Int?) -> ProgramSpec? {
        let d = diagnostics
        guard case .object(let members) = node.kind else {
            d.report(path, "expected an object, got \(node.compact)", at: node)
            return nil
        }
        guard let typeMember = members.first(where: { $0.key == "type" }) else {
            d.report(path.member("type"), "missing required field \"type\"", at: node)
            return nil
        }
        let typePath = path.member("type")
        guard let type = d.string(typeMember.value, at: typePath) else { return nil }
        let isBuiltIn = ProgramSpec.builtInTypeNames.contains(type)
        guard isBuiltIn || customProgramTypes.contains(type) else {
            let known = ProgramSpec.builtInTypeNames + customProgramTypes.sorted()
            var message = "unknown program type \(quotedForMessage(type))"
            if let suggestion = closestName(to: type, among: known) {
                message += " (did you mean \(quotedForMessage(suggestion))?)"
            }
            message += "; built-in: " + ProgramSpec.builtInTypeNames.joined(separator: ", ")
            if !customProgramTypes.isEmpty {
                message += "; registered: " + customProgramTypes.sorted().joined(separator: ", ")
            }
            d.report(typePath, message, at: typeMember.value)
            return nil
        }
        if portIndex == nil && !Self.aclThenTypes.contains(type) {
            d.report(
                typePath,
                "an ACL's \"then\" program must be pass, drop or redirect_map, got \(quotedForMessage(type))",
                at: typeMember.value
            )
            return nil
        }
        guard isBuiltIn else {
            // A registered type's members are its own business; hand them over as they are, once each.
            let unique = d.dictionary(node, at: path, expected: "an object") ?? members
            let config = JSONValue.object(unique.filter { $0.key != "type" }.map { ($0.key, $0.value.value) })
            return .custom(type: type, config: config)
        }

        switch type {
        case "pass", "drop", "abort":
            _ = d.object(node, at: path, allowed: ["type"])
            return type == "pass" ? .pass : type == "drop" ? .drop : .abort
        case "return":
            guard let fields = d.object(node, at: path, allowed: ["type", "value"]) else { return nil }
            return d.requiredInteger(fields, "value", in: UInt32.min...UInt32.max).map { .returnValue($0) }
        case "redirect_map":
            guard let fields = d.object(node, at: path, allowed: ["type", "map", "key", "flags"]) else { return nil }
            let map = mapReference(fields, what: "redirect_map")
            let key = d.required(fields, "key").flatMap { decodeKey($0, at: fields.path("key")) }
            let flags = d.integer(fields, "flags", in: UInt64.min...UInt64.max, default: 0)
            guard let map, let key else { return nil }
            return .redirectMap(RedirectMapConfiguration(map: map, selector: key, flags: flags))
        case "ebpf":
            return decodeEBPF(node, at: path)
        case "l2_switch":
            return decodeL2Switch(node, at: path, portIndex: portIndex)
        case "acl":
            return decodeACL(node, at: path)
        case "reflector":
            guard let fields = d.object(node, at: path, allowed: ["type", "swap_ip", "swap_ports"]) else { return nil }
            return .reflector(
                ReflectorProgram(
                    swapIP: d.bool(fields, "swap_ip", default: true),
                    swapPorts: d.bool(fields, "swap_ports", default: false)
                )
            )
        default:
            preconditionFailure("built-in program type \(type) has no decoder")
        }
    }

    /// The required `"map"` member, recorded for resolution.
    private func mapReference(_ fields: Fields, what: String) -> String? {
        guard let node = diagnostics.required(fields, "map"),
            let map = diagnostics.string(node, at: fields.path("map"))
        else { return nil }
        mapReferences.append(Reference(name: map, path: fields.path("map"), position: node.position, what: what))
        return map
    }

    // MARK: Keys

    static let keyKinds = ["constant", "ingress_ifindex", "dst_mac", "hash"]

    private func decodeKey(_ node: JSONNode, at path: JSONPath) -> KeySelector? {
        let d = diagnostics
        guard case .object(let members) = node.kind else {
            d.report(path, "expected an object, got \(node.compact)", at: node)
            return nil
        }
        guard let kindMember = members.first(where: { $0.key == "kind" }) else {
            d.report(path.member("kind"), "missing required field \"kind\"", at: node)
            return nil
        }
        guard let kind = d.choice(kindMember.value, at: path.member("kind"), "key kind", Self.keyKinds) else {
            return nil
        }
        switch kind {
        case "constant":
            guard let fields = d.object(node, at: path, allowed: ["kind", "value"]) else { return nil }
            return d.requiredInteger(fields, "value", in: UInt32.min...UInt32.max).map { .constant($0) }
        case "ingress_ifindex":
            _ = d.object(node, at: path, allowed: ["kind"])
            return .ingressIfindex
        case "dst_mac":
            guard let fields = d.object(node, at: path, allowed: ["kind", "table", "miss"]) else { return nil }
            let miss = fields["miss"].flatMap { decodeMiss($0, at: fields.path("miss")) } ?? .drop
            guard let tableNode = d.required(fields, "table"),
                let members = d.dictionary(
                    tableNode,
                    at: fields.path("table"),
                    expected: "an object like {\"02:00:00:00:00:01\": 0}"
                )
            else { return nil }
            var table: [(MACAddress, UInt32)] = []
            var seen: [MACAddress: JSONPath] = [:]
            for member in members {
                let memberPath = fields.path("table").member(member.key)
                guard let mac = MACAddress(member.key) else {
                    d.report(
                        memberPath,
                        "invalid MAC address \(quotedForMessage(member.key)); expected six hex pairs like 02:00:00:00:00:01",
                        at: member.keyPosition
                    )
                    continue
                }
                if let first = seen[mac] {
                    d.report(memberPath, "duplicate MAC \(mac) (first used at \(first))", at: member.keyPosition)
                    continue
                }
                seen[mac] = memberPath
                if let key = d.integer(member.value, at: memberPath, in: UInt32.min...UInt32.max) {
                    table.append((mac, key))
                }
            }
            return .destinationMAC(table: MACTable(table), miss: miss)
        case "hash":
            guard let fields = d.object(node, at: path, allowed: ["kind", "modulo", "base", "non_ip"]) else {
                return nil
            }
            var modulo: UInt32?
            if let node = d.required(fields, "modulo") {
                modulo = d.integer(node, at: fields.path("modulo"), in: UInt32.min...UInt32.max)
                if modulo == 0 {
                    d.report(fields.path("modulo"), "must be at least 1: a hash modulo 0 divides by zero", at: node)
                    modulo = nil
                }
            }
            let base = d.integer(fields, "base", in: UInt32.min...UInt32.max, default: 0)
            if let modulo, UInt64(base) + UInt64(modulo) - 1 > UInt64(UInt32.max), let node = fields["base"] {
                d.report(
                    fields.path("base"),
                    "base \(base) + modulo \(modulo) - 1 does not fit in a 32-bit key",
                    at: node
                )
            }
            let nonIP = fields["non_ip"].flatMap { decodeMiss($0, at: fields.path("non_ip")) } ?? .drop
            return modulo.map { .hash(modulo: $0, base: base, nonIP: nonIP) }
        default:
            preconditionFailure("key kind \(kind) has no decoder")
        }
    }

    private func decodeMiss(_ node: JSONNode, at path: JSONPath) -> MissAction? {
        let d = diagnostics
        switch node.kind {
        case .string(let text):
            switch text {
            case "drop": return .drop
            case "pass": return .pass
            case "abort": return .abort
            default: break
            }
        case .object:
            guard let fields = d.object(node, at: path, allowed: ["key"]) else { return nil }
            return d.requiredInteger(fields, "key", in: UInt32.min...UInt32.max).map { .key($0) }
        default: break
        }
        d.report(path, "expected \"drop\", \"pass\", \"abort\" or {\"key\": N}, got \(node.compact)", at: node)
        return nil
    }

    // MARK: l2_switch

    private func decodeL2Switch(_ node: JSONNode, at path: JSONPath, portIndex: Int?) -> ProgramSpec? {
        let d = diagnostics
        let allowed = ["type", "map", "ports", "table_size", "flood_exclude_ingress"]
        guard let fields = d.object(node, at: path, allowed: allowed) else { return nil }
        let map = mapReference(fields, what: "l2_switch")
        var ports: [PortKey] = []
        if let node = fields["ports"],
            let members = d.dictionary(node, at: fields.path("ports"), expected: "an object like {\"p1\": 0}")
        {
            var portByKey: [UInt32: JSONPath] = [:]
            for member in members {
                let memberPath = fields.path("ports").member(member.key)
                portReferences.append(
                    Reference(name: member.key, path: memberPath, position: member.keyPosition, what: "l2_switch port")
                )
                guard let key = d.integer(member.value, at: memberPath, in: UInt32.min...UInt32.max) else { continue }
                if let first = portByKey[key] {
                    d.report(memberPath, "key \(key) already reaches the port at \(first)", at: member.value)
                    continue
                }
                portByKey[key] = memberPath
                ports.append(PortKey(port: member.key, key: key))
            }
        } else if fields["ports"] == nil, let portIndex, portIndex >= 0 {
            l2SwitchesWithDerivedPorts.append(portIndex)
        }
        let tableSize = d.integer(fields, "table_size", in: L2SwitchConfiguration.tableSizeRange, default: 4096)
        let floodExcludeIngress = d.bool(fields, "flood_exclude_ingress", default: true)
        guard let map else { return nil }
        return .l2Switch(
            L2SwitchConfiguration(
                map: map,
                ports: ports,
                tableSize: tableSize,
                floodExcludeIngress: floodExcludeIngress
            )
        )
    }

    // MARK: acl

    private func decodeACL(_ node: JSONNode, at path: JSONPath) -> ProgramSpec? {
        let d = diagnostics
        guard let fields = d.object(node, at: path, allowed: ["type", "rules", "default", "then"]) else { return nil }
        var rules: [ACLRule] = []
        if let node = fields["rules"], let elements = d.array(node, at: fields.path("rules")) {
            for (index, element) in elements.enumerated() {
                if let rule = decodeRule(element, at: fields.path("rules").index(index)) { rules.append(rule) }
            }
        }
        let actions = ACLRule.Action.allCases.map(\.rawValue)
        let defaultAction =
            fields["default"].flatMap {
                d.choice($0, at: fields.path("default"), "ACL action", actions).flatMap(ACLRule.Action.init)
            } ?? .allow
        var then = ACLConfiguration.Then.pass
        if let node = fields["then"] {
            // decodeProgram reports every type but these three.
            switch decodeProgram(node, at: fields.path("then"), portIndex: nil) {
            case .drop: then = .drop
            case .redirectMap(let redirect): then = .redirectMap(redirect)
            default: break
            }
        }
        return .acl(ACLConfiguration(rules: rules, defaultAction: defaultAction, then: then))
    }

    private func decodeRule(_ node: JSONNode, at path: JSONPath) -> ACLRule? {
        let d = diagnostics
        let allowed = ["action", "proto", "src", "dst", "sport", "dport"]
        guard let fields = d.object(node, at: path, allowed: allowed) else { return nil }
        let action = d.required(fields, "action").flatMap {
            d.choice($0, at: fields.path("action"), "ACL action", ACLRule.Action.allCases.map(\.rawValue))
                .flatMap(ACLRule.Action.init)
        }
        let proto = fields["proto"].flatMap { decodeProto($0, at: fields.path("proto")) }
        let src = fields["src"].flatMap { decodePrefix($0, at: fields.path("src")) }
        let dst = fields["dst"].flatMap { decodePrefix($0, at: fields.path("dst")) }
        let sport = fields["sport"].flatMap { decodePortRange($0, at: fields.path("sport")) }
        let dport = fields["dport"].flatMap { decodePortRange($0, at: fields.path("dport")) }

        // Combinations that could never match are mistakes, not rules.
        for (key, range) in [("sport", sport), ("dport", dport)] where range != nil {
            if proto != IPProtocolNumber.tcp && proto != IPProtocolNumber.udp, let node = fields[key] {
                d.report(
                    fields.path(key),
                    "port ranges only match with \"proto\": \"tcp\" or \"udp\""
                        + (proto.map { ", not \(quotedForMessage(Self.protocolName($0)))" } ?? ""),
                    at: node
                )
            }
        }
        if let src, let dst, src.address.family != dst.address.family, let node = fields["dst"] {
            d.report(fields.path("dst"), "dst \(dst) and src \(src) are of different IP families", at: node)
        }
        for (key, prefix) in [("src", src), ("dst", dst)] {
            guard let prefix, let node = fields[key] else { continue }
            if proto == IPProtocolNumber.icmp && prefix.address.family == .ipv6 {
                d.report(
                    fields.path(key),
                    "proto icmp is IPv4 only but \(key) \(prefix) is IPv6 (use icmpv6)",
                    at: node
                )
            } else if proto == IPProtocolNumber.icmpv6 && prefix.address.family == .ipv4 {
                d.report(
                    fields.path(key),
                    "proto icmpv6 is IPv6 only but \(key) \(prefix) is IPv4 (use icmp)",
                    at: node
                )
            }
        }
        // ACLRule requires one family for both prefixes; the mismatch is reported above.
        if let src, let dst, src.address.family != dst.address.family { return nil }
        return action.map {
            ACLRule(
                action: $0,
                ipProtocol: proto,
                source: src,
                destination: dst,
                sourcePorts: sport,
                destinationPorts: dport
            )
        }
    }

    /// The protocols topology files may name instead of giving the number.
    static let protocolNames: [(String, UInt8)] = [
        ("tcp", IPProtocolNumber.tcp), ("udp", IPProtocolNumber.udp), ("icmp", IPProtocolNumber.icmp),
        ("icmpv6", IPProtocolNumber.icmpv6),
    ]

    /// The protocol's name if it has one, else its number.
    static func protocolName(_ number: UInt8) -> String {
        protocolNames.first { $0.1 == number }?.0 ?? String(number)
    }

    private func decodeProto(_ node: JSONNode, at path: JSONPath) -> UInt8? {
        switch node.kind {
        case .number:
            return diagnostics.integer(node, at: path, in: UInt8.min...UInt8.max)
        case .string(let text):
            if let proto = Self.protocolNames.first(where: { $0.0 == text })?.1 { return proto }
        default: break
        }
        diagnostics.report(
            path,
            "unknown protocol \(node.compact); use tcp, udp, icmp, icmpv6 or a number 0...255",
            at: node
        )
        return nil
    }

    private func decodePrefix(_ node: JSONNode, at path: JSONPath) -> IPPrefix? {
        guard let text = diagnostics.string(node, at: path) else { return nil }
        guard let written = InterfaceAddress(text, allowBareAddress: true) else {
            diagnostics.report(
                path,
                "invalid IP prefix \(quotedForMessage(text)); expected an address or a prefix like 10.0.0.0/8 or fd00::/64",
                at: node
            )
            return nil
        }
        guard written.isNetwork else {
            diagnostics.report(path, "host bits set in \(written); the network is \(written.prefix)", at: node)
            return nil
        }
        return written.prefix
    }

    private func decodePortRange(_ node: JSONNode, at path: JSONPath) -> ClosedRange<UInt16>? {
        switch node.kind {
        case .number:
            return diagnostics.integer(node, at: path, in: UInt16.min...UInt16.max).map { $0...$0 }
        case .string(let text):
            if let range = parsePortRange(text) { return range }
            diagnostics.report(
                path,
                "invalid port range \(quotedForMessage(text)); expected a port 0...65535 or a range like \"1000-2000\"",
                at: node
            )
        default:
            diagnostics.report(
                path,
                "expected a port number or a range like \"1000-2000\", got \(node.compact)",
                at: node
            )
        }
        return nil
    }
}

/// Parses `"80"` or `"1000-2000"` (decimal, no sign, no leading zeros, lower <= upper).
func parsePortRange(_ text: String) -> ClosedRange<UInt16>? {
    let parts = text.split(separator: "-", omittingEmptySubsequences: false)
    guard (1...2).contains(parts.count), let lower = parseDecimal(parts[0], max: 65535),
        let upper = parts.count == 2 ? parseDecimal(parts[1], max: 65535) : lower, lower <= upper
    else { return nil }
    return UInt16(lower)...UInt16(upper)
}
