// Loading a topology file: read, parse, decode, resolve.
//
// Decoding walks the document once, top-down, recording a problem for everything wrong and carrying on with
// defaults, so a file with five mistakes reports five problems. Names that point elsewhere (a map entry's port, a
// program's map) are only recorded on the way down and checked in `resolve`, once every port and map is known;
// `resolve` also assigns ifindexes and MACs and derives l2_switch port lists. Problems are reported in document
// order. A topology is returned only when there are none.

import XDPEmuCore
import XDPEmuOS
import XDPEmuPrograms

extension Topology {
    /// Reads and validates the topology file at `path`.
    ///
    /// - Parameter customProgramTypes: program `"type"`s to accept in addition to the built-in ones; they load as
    ///   ``ProgramSpec/custom(type:config:)``. A built-in name in this set keeps its built-in meaning.
    /// - Throws: every problem found, each with a JSON path; an unreadable file is one problem at `$`.
    public static func load(path: String, customProgramTypes: Set<String> = []) throws(TopologyError) -> Topology {
        try parse(data: readSourceFile(path), source: path, customProgramTypes: customProgramTypes)
    }

    /// Validates a topology from the UTF-8 bytes of a JSON document; `source` names it in messages.
    public static func parse(
        data: [UInt8],
        source: String,
        customProgramTypes: Set<String> = []
    )
        throws(TopologyError) -> Topology
    {
        let root: JSONNode
        do {
            root = try JSONParser.parse(data)
        } catch {
            let message = "invalid JSON at \(error.position): \(error.message)"
            throw TopologyError(
                source: source,
                problems: [.init(path: "$", message: message, position: error.position)]
            )
        }
        let decoder = TopologyDecoder(source: source, customProgramTypes: customProgramTypes)
        let topology = decoder.decode(root)
        let problems = decoder.diagnostics.problems.enumerated().sorted { a, b in
            let (pa, pb) = (
                a.element.position ?? SourcePosition(line: 0, column: 0),
                b.element.position ?? SourcePosition(line: 0, column: 0)
            )
            return pa != pb ? pa < pb : a.offset < b.offset
        }.map(\.element)
        guard problems.isEmpty, let topology else {
            throw TopologyError(source: source, problems: problems)
        }
        return topology
    }

    /// Validates a topology from JSON text; `source` names it in messages.
    public static func parse(
        data: String,
        source: String,
        customProgramTypes: Set<String> = []
    )
        throws(TopologyError) -> Topology
    {
        try parse(data: Array(data.utf8), source: source, customProgramTypes: customProgramTypes)
    }
}

/// The bytes of the file at `path` (a topology or a map-event file); an unreadable file is one problem at `$`.
func readSourceFile(_ path: String) throws(TopologyError) -> [UInt8] {
    do {
        return try readRegularFile(path)
    } catch {
        throw TopologyError(source: path, problems: [.init(path: "$", message: error.description)])
    }
}

/// A name in the file that must match a port or map defined elsewhere in it.
struct Reference {
    var name: String
    var path: JSONPath
    var position: SourcePosition
    /// How the referring field is described in the message: "map entry", "l2_switch port"...
    var what: String
}

/// One decoding of one document. Not reusable.
final class TopologyDecoder {
    let diagnostics = Diagnostics()
    let source: String
    let customProgramTypes: Set<String>

    /// Nil until read, and when the file's value is invalid (then checks that depend on it are skipped).
    var semantics: Semantics?
    var portReferences: [Reference] = []
    var mapReferences: [Reference] = []
    /// Ports whose l2_switch program gives no port list, so it is derived from the map.
    var l2SwitchesWithDerivedPorts: [Int] = []

    init(source: String, customProgramTypes: Set<String>) {
        self.source = source
        self.customProgramTypes = customProgramTypes
    }

    static let topLevelFields = ["name", "description", "semantics", "napi", "ports", "maps"]

    func decode(_ root: JSONNode) -> Topology? {
        let d = diagnostics
        guard case .object = root.kind else {
            d.report(.root, "a topology must be a JSON object, got \(root.typeName)", at: root)
            return nil
        }
        guard let fields = d.object(root, at: .root, allowed: Self.topLevelFields) else { return nil }

        let name = d.requiredString(fields, "name")
        if let name, let node = fields["name"] {
            if name.isEmpty {
                d.report(fields.path("name"), "must not be empty", at: node)
            } else if !isPrintableText(name, limit: 100) {
                // The name is printed as it is (the summary, live mode's first line).
                d.report(
                    fields.path("name"), "must be at most 100 printable characters, got \(quotedForMessage(name))",
                    at: node)
            }
        }
        let description = fields["description"].flatMap { d.string($0, at: fields.path("description")) }
        if let node = fields["semantics"] {
            let choices = Semantics.allCases.map(\.rawValue)
            semantics = d.choice(node, at: fields.path("semantics"), "semantics", choices).flatMap(Semantics.init)
        } else {
            semantics = .v4_18
        }
        let napi = fields["napi"].map { decodeNAPI($0, at: fields.path("napi")) } ?? NAPISettings()

        var ports: [PortDraft] = []
        if let node = d.required(fields, "ports"), let elements = d.array(node, at: fields.path("ports")) {
            if elements.isEmpty { d.report(fields.path("ports"), "must list at least one port", at: node) }
            for (index, element) in elements.enumerated() {
                if let port = decodePort(element, at: fields.path("ports").index(index), index: index) {
                    ports.append(port)
                }
            }
        }
        var maps: [MapDraft] = []
        if let node = fields["maps"], let elements = d.array(node, at: fields.path("maps")) {
            for (index, element) in elements.enumerated() {
                if let map = decodeMap(element, at: fields.path("maps").index(index)) { maps.append(map) }
            }
        }

        return resolve(
            name: name ?? "",
            description: description,
            napi: napi,
            ports: ports,
            maps: maps
        )
    }

    private func decodeNAPI(_ node: JSONNode, at path: JSONPath) -> NAPISettings {
        let d = diagnostics
        let allowed = ["budget", "ring_size", "poll_delay_ns", "frame_cost_ns", "cpus"]
        guard let fields = d.object(node, at: path, allowed: allowed) else { return NAPISettings() }
        let defaults = NAPISettings()
        return NAPISettings(
            budget: d.integer(fields, "budget", in: NAPISettings.budgetRange, default: defaults.budget),
            ringSize: d.integer(fields, "ring_size", in: NAPISettings.ringSizeRange, default: defaults.ringSize),
            pollDelayNanos: d.integer(fields, "poll_delay_ns", in: 0...UInt64.max, default: defaults.pollDelayNanos),
            frameCostNanos: d.integer(fields, "frame_cost_ns", in: 0...UInt64.max, default: defaults.frameCostNanos),
            cpus: d.integer(fields, "cpus", in: NAPISettings.cpusRange, default: defaults.cpus)
        )
    }

    // MARK: Shared value readers

    /// A name checked with `rule` (interface or map naming rules).
    func name(_ node: JSONNode, at path: JSONPath, rule: (String) -> String?) -> String? {
        guard let text = diagnostics.string(node, at: path) else { return nil }
        if let problem = rule(text) {
            diagnostics.report(path, problem, at: node)
            return nil
        }
        return text
    }

    /// A MAC address; `device` additionally requires a usable unicast address for an interface.
    func mac(_ node: JSONNode, at path: JSONPath, device: Bool) -> MACAddress? {
        guard let text = diagnostics.string(node, at: path) else { return nil }
        guard let mac = MACAddress(text) else {
            diagnostics.report(
                path,
                "invalid MAC address \(quotedForMessage(text)); expected six hex pairs like 02:00:00:00:00:01",
                at: node
            )
            return nil
        }
        if device && mac.isMulticast {
            diagnostics.report(path, "\(mac) is a multicast address; a device needs a unicast MAC", at: node)
            return nil
        }
        if device && mac.rawValue == 0 {
            diagnostics.report(path, "00:00:00:00:00:00 is not a usable device MAC", at: node)
            return nil
        }
        return mac
    }

    // MARK: Resolution

    private func resolve(
        name: String,
        description: String?,
        napi: NAPISettings,
        ports: [PortDraft],
        maps: [MapDraft]
    ) -> Topology? {
        let d = diagnostics

        // Unique names, ifindexes, MACs and namespaces; the first use is the one kept, later ones are reported.
        var portByName: [String: PortDraft] = [:]
        for port in ports {
            guard let portName = port.name, let node = port.fields["name"] else { continue }
            if let first = portByName[portName] {
                d.report(
                    port.fields.path("name"),
                    "duplicate port name \(quotedForMessage(portName)) (first used at \(first.fields.path("name")))",
                    at: node
                )
            } else {
                portByName[portName] = port
            }
        }
        reportDuplicates(ports, "ifindex", "ifindex", \.ifindex) { $0.fields }
        reportDuplicates(ports, "mac", "MAC", \.mac) { $0.fields }
        let hosts = ports.compactMap(\.host)
        reportDuplicates(hosts, "namespace", "namespace", \.namespace) { $0.fields }
        reportDuplicates(hosts, "mac", "host MAC", \.mac) { $0.fields }
        reportDuplicates(ports, "stack", "stack", \.stack) { $0.fields }
        for port in ports {
            guard let cpu = port.cpu, cpu >= napi.cpus, let node = port.fields["cpu"] else { continue }
            d.report(
                port.fields.path("cpu"), "cpu \(cpu) is not below napi.cpus (\(napi.cpus)): CPUs count from 0",
                at: node)
        }
        for port in ports {
            guard let stack = port.stack, let node = port.fields["stack"], let owner = portByName[stack] else {
                continue
            }
            d.report(
                port.fields.path("stack"),
                "\(quotedForMessage(stack)) is the name of the port at \(owner.fields.path("name")); "
                    + "the stack TAP needs a name of its own",
                at: node
            )
        }

        var mapByName: [String: MapDraft] = [:]
        for map in maps {
            guard let mapName = map.name, let node = map.fields["name"] else { continue }
            if let first = mapByName[mapName] {
                d.report(
                    map.fields.path("name"),
                    "duplicate map name \(quotedForMessage(mapName)) (first used at \(first.fields.path("name")))",
                    at: node
                )
            } else {
                mapByName[mapName] = map
            }
        }

        let portNames = ports.compactMap(\.name)
        for reference in portReferences where portByName[reference.name] == nil {
            d.report(
                reference.path,
                "\(reference.what) names no port: \(quotedForMessage(reference.name)); ports: "
                    + (portNames.isEmpty ? "(none)" : portNames.joined(separator: ", ")),
                at: reference.position
            )
        }
        let mapNames = maps.compactMap(\.name)
        for reference in mapReferences where mapByName[reference.name] == nil {
            d.report(
                reference.path,
                "\(reference.what) names no map: \(quotedForMessage(reference.name)); maps: "
                    + (mapNames.isEmpty ? "(none)" : mapNames.joined(separator: ", ")),
                at: reference.position
            )
        }

        guard d.problems.isEmpty, let semantics else { return nil }

        // Explicit ifindexes are reserved first; the others count up from 1 around them, in port order.
        var usedIfindexes = Set(ports.compactMap(\.ifindex))
        var nextIfindex: UInt32 = 1
        // Derived MACs avoid every MAC the file spells out, hosts' included, so they never collide.
        var usedMACs = Set(ports.compactMap(\.mac) + hosts.compactMap(\.mac))
        var specs: [PortSpec] = []
        for (index, port) in ports.enumerated() {
            let ifindex: UInt32
            if let explicit = port.ifindex {
                ifindex = explicit
            } else {
                while usedIfindexes.contains(nextIfindex) { nextIfindex += 1 }
                ifindex = nextIfindex
                usedIfindexes.insert(ifindex)
            }
            let mac: MACAddress
            if let explicit = port.mac {
                mac = explicit
            } else {
                var candidate = index
                while usedMACs.contains(PortSpec.defaultMAC(index: candidate)) { candidate += 1 }
                mac = PortSpec.defaultMAC(index: candidate)
                usedMACs.insert(mac)
            }
            var program = port.program
            if l2SwitchesWithDerivedPorts.contains(index), case .l2Switch(var l2) = program,
                let map = mapByName[l2.map]
            {
                var seen: Set<String> = []
                l2.ports = map.entries.filter { seen.insert($0.port).inserted }.map {
                    PortKey(port: $0.port, key: $0.key.rawValue)
                }
                program = .l2Switch(l2)
            }
            let portName = port.name ?? ""
            let host = port.host.map { host in
                HostSpec(
                    namespace: host.namespace ?? "",
                    interface: host.interface ?? portName,
                    mac: host.mac,
                    mtu: host.mtu,
                    ipv4: host.ipv4,
                    ipv6: host.ipv6,
                    routes: host.routes,
                    ipv6Autoconf: host.ipv6Autoconf
                )
            }
            specs.append(
                PortSpec(
                    name: portName,
                    ifindex: IfIndex(ifindex),
                    mac: mac,
                    mtu: port.mtu,
                    up: port.up,
                    xmit: port.xmit,
                    headroom: port.headroom,
                    capture: port.capture,
                    program: program,
                    host: host,
                    stack: port.stack,
                    vnetHdr: port.vnetHdr,
                    cpu: port.cpu
                )
            )
        }
        let mapSpecs = maps.map { map in
            var spec = MapSpec(
                name: map.name ?? "",
                type: map.type ?? .devmap,
                maxEntries: map.maxEntries ?? 1,
                entries: map.entries
            )
            spec.dataEntries = map.dataEntries
            spec.keySize = map.keySize
            spec.valueSize = map.valueSize
            return spec
        }
        return Topology(
            name: name,
            description: description,
            semantics: semantics,
            napi: napi,
            ports: specs,
            maps: mapSpecs,
            source: source
        )
    }

    /// Reports each later element whose `key` value repeats an earlier one.
    private func reportDuplicates<Element, Value: Hashable & CustomStringConvertible>(
        _ elements: [Element],
        _ key: String,
        _ what: String,
        _ value: KeyPath<Element, Value?>,
        fields: (Element) -> Fields
    ) {
        var firstPath: [Value: JSONPath] = [:]
        for element in elements {
            let fields = fields(element)
            guard let value = element[keyPath: value], let node = fields[key] else { continue }
            if let first = firstPath[value] {
                let shown = value is String ? quotedForMessage("\(value)") : "\(value)"
                d(fields.path(key), "duplicate \(what) \(shown) (first used at \(first))", node)
            } else {
                firstPath[value] = fields.path(key)
            }
        }
    }

    private func d(_ path: JSONPath, _ message: String, _ node: JSONNode) {
        diagnostics.report(path, message, at: node)
    }
}
