// Decoding `ports[]` and their `host` objects.

import XDPEmuCore

/// A port as read from the file, before ifindex and MAC assignment. Nil members were absent or invalid.
struct PortDraft {
    var fields: Fields
    var name: String?
    var ifindex: UInt32?
    var mac: MACAddress?
    var mtu: Int
    var up: Bool
    var xmit: Bool
    var headroom: Int
    var capture: CaptureSpec
    var program: ProgramSpec
    var host: HostDraft?
    var stack: String?
    var vnetHdr: Bool
    var cpu: Int?
}

/// A host as read from the file; the interface name defaults to the port's later.
struct HostDraft {
    var fields: Fields
    var namespace: String?
    var interface: String?
    var mac: MACAddress?
    var mtu: Int?
    var ipv4: [InterfaceAddress]
    var ipv6: [InterfaceAddress]
    var routes: [RouteSpec]
    var ipv6Autoconf: Bool
}

extension TopologyDecoder {
    static let portFields = [
        "name", "ifindex", "mac", "mtu", "up", "xmit", "headroom", "capture", "program", "host", "stack", "vnet_hdr",
        "cpu",
    ]
    static let hostFields = ["namespace", "interface", "mac", "mtu", "ipv4", "ipv6", "routes", "ipv6_autoconf"]

    func decodePort(_ node: JSONNode, at path: JSONPath, index: Int) -> PortDraft? {
        let d = diagnostics
        guard let fields = d.object(node, at: path, allowed: Self.portFields) else { return nil }
        let name = d.required(fields, "name").flatMap {
            self.name($0, at: fields.path("name"), rule: interfaceNameProblem)
        }
        var capture = CaptureSpec()
        if let node = fields["capture"],
            let captureFields = d.object(node, at: fields.path("capture"), allowed: ["ingress", "egress"])
        {
            capture.ingress = d.bool(captureFields, "ingress", default: true)
            capture.egress = d.bool(captureFields, "egress", default: true)
        }
        let program = fields["program"].flatMap { decodeProgram($0, at: fields.path("program"), portIndex: index) }
        return PortDraft(
            fields: fields,
            name: name,
            ifindex: fields["ifindex"].flatMap { d.integer($0, at: fields.path("ifindex"), in: PortSpec.ifindexRange) },
            mac: fields["mac"].flatMap { mac($0, at: fields.path("mac"), device: true) },
            mtu: d.integer(fields, "mtu", in: PortSpec.mtuRange, default: 1500),
            up: d.bool(fields, "up", default: true),
            xmit: d.bool(fields, "xmit", default: true),
            headroom: d.integer(fields, "headroom", in: PortSpec.headroomRange, default: 256),
            capture: capture,
            program: program ?? .pass,
            host: fields["host"].flatMap { decodeHost($0, at: fields.path("host")) },
            stack: fields["stack"].flatMap { self.name($0, at: fields.path("stack"), rule: interfaceNameProblem) },
            vnetHdr: d.bool(fields, "vnet_hdr", default: false),
            cpu: fields["cpu"].flatMap {
                d.integer($0, at: fields.path("cpu"), in: 0...(NAPISettings.cpusRange.upperBound - 1))
            }
        )
    }

    private func decodeHost(_ node: JSONNode, at path: JSONPath) -> HostDraft? {
        let d = diagnostics
        guard let fields = d.object(node, at: path, allowed: Self.hostFields) else { return nil }
        var host = HostDraft(
            fields: fields,
            namespace: d.required(fields, "namespace").flatMap {
                name($0, at: fields.path("namespace"), rule: interfaceNameProblem)
            },
            interface: fields["interface"].flatMap {
                name($0, at: fields.path("interface"), rule: interfaceNameProblem)
            },
            mac: fields["mac"].flatMap { mac($0, at: fields.path("mac"), device: true) },
            mtu: fields["mtu"].flatMap { d.integer($0, at: fields.path("mtu"), in: PortSpec.mtuRange) },
            ipv4: [],
            ipv6: [],
            routes: [],
            ipv6Autoconf: d.bool(fields, "ipv6_autoconf", default: false)
        )
        host.ipv4 = addresses(fields, "ipv4", family: .ipv4, example: "10.0.0.1/24")
        host.ipv6 = addresses(fields, "ipv6", family: .ipv6, example: "fd00::1/64")
        if let node = fields["routes"], let elements = d.array(node, at: fields.path("routes")) {
            for (index, element) in elements.enumerated() {
                if let route = decodeRoute(element, at: fields.path("routes").index(index), host: host) {
                    host.routes.append(route)
                }
            }
        }
        return host
    }

    /// The interface addresses in `fields[key]`: an array of `address/prefix` strings.
    private func addresses(
        _ fields: Fields,
        _ key: String,
        family: IPAddress.Family,
        example: String
    ) -> [InterfaceAddress] {
        let d = diagnostics
        guard let node = fields[key],
            let elements = d.array(node, at: fields.path(key), expected: "an array of strings")
        else { return [] }
        var result: [InterfaceAddress] = []
        for (index, element) in elements.enumerated() {
            let path = fields.path(key).index(index)
            guard let text = d.string(element, at: path) else { continue }
            guard let address = InterfaceAddress(text), address.address.family == family else {
                d.report(
                    path,
                    "invalid \(family == .ipv4 ? "IPv4" : "IPv6") address \(quotedForMessage(text)); "
                        + "expected an address with prefix length like \(example)",
                    at: element
                )
                continue
            }
            result.append(address)
        }
        return result
    }

    private func decodeRoute(_ node: JSONNode, at path: JSONPath, host: HostDraft) -> RouteSpec? {
        let d = diagnostics
        guard let fields = d.object(node, at: path, allowed: ["to", "via"]) else { return nil }
        var destination: RouteSpec.Destination?
        if let node = d.required(fields, "to"), let text = d.string(node, at: fields.path("to")) {
            if text == "default" {
                destination = .default
            } else if let written = InterfaceAddress(text) {
                destination = .prefix(written.prefix)
                if !written.isNetwork {
                    d.report(
                        fields.path("to"),
                        "host bits set in \(written); the network is \(written.prefix)",
                        at: node
                    )
                }
            } else {
                d.report(
                    fields.path("to"),
                    "invalid route destination \(quotedForMessage(text)); expected \"default\" or a prefix like 10.1.0.0/16",
                    at: node
                )
            }
        }
        guard let viaNode = d.required(fields, "via"), let viaText = d.string(viaNode, at: fields.path("via")) else {
            return nil
        }
        guard let via = IPAddress(viaText) else {
            d.report(fields.path("via"), "invalid gateway address \(quotedForMessage(viaText))", at: viaNode)
            return nil
        }
        guard let destination else { return nil }
        let viaPath = fields.path("via")
        if case .prefix(let prefix) = destination, via.family == .ipv6, prefix.address.family == .ipv4 {
            d.report(viaPath, "gateway \(via) is IPv6 but the destination \(prefix) is IPv4", at: viaNode)
            return nil
        }
        if case .prefix(let prefix) = destination, via.family == .ipv4, prefix.address.family == .ipv6 {
            d.report(viaPath, "gateway \(via) is IPv4 but the destination \(prefix) is IPv6", at: viaNode)
            return nil
        }
        // The kernel refuses a gateway that is not on a connected network ("Nexthop has invalid gateway").
        let gateway = via
        switch via.family {
        case .ipv4 where !host.ipv4.contains(where: { $0.prefix.contains(gateway) }):
            let networks = host.ipv4.map(\.description).joined(separator: ", ")
            d.report(
                viaPath,
                "gateway \(gateway) is not on any of the host's IPv4 networks "
                    + "(\(networks.isEmpty ? "none" : networks))",
                at: viaNode
            )
        case .ipv6
        where !gateway.isLinkLocal && !host.ipv6Autoconf && !host.ipv6.contains(where: { $0.prefix.contains(gateway) }):
            let networks = host.ipv6.map(\.description).joined(separator: ", ")
            d.report(
                viaPath,
                "gateway \(gateway) is not link-local and not on any of the host's IPv6 networks "
                    + "(\(networks.isEmpty ? "none" : networks))",
                at: viaNode
            )
        default:
            break
        }
        return RouteSpec(to: destination, via: via)
    }
}
