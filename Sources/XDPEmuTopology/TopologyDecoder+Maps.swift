// Decoding `maps[]`. Entries come in two spellings, an object keyed by decimal strings and an array of
// {key, port} objects; both end up as [MapEntry] in file order.

import XDPEmuCore

/// A map as read from the file. Nil members were absent or invalid.
struct MapDraft {
    var fields: Fields
    var name: String?
    var type: MapSpec.MapType?
    var maxEntries: UInt32?
    var entries: [MapEntry]
    var dataEntries: [DataMapEntry] = []
    var keySize: Int?
    var valueSize: Int?
}

extension TopologyDecoder {
    /// The `portIndex` of `decodeProgram` for a devmap entry's egress program (it belongs to no port).
    static let egressProgram = -1

    func decodeMap(_ node: JSONNode, at path: JSONPath) -> MapDraft? {
        let d = diagnostics
        guard
            let fields = d.object(
                node, at: path, allowed: ["name", "type", "max_entries", "entries", "key_size", "value_size"])
        else {
            return nil
        }
        let name = d.required(fields, "name").flatMap { self.name($0, at: fields.path("name"), rule: mapNameProblem) }
        var type: MapSpec.MapType?
        if let node = d.required(fields, "type") {
            let choices = MapSpec.MapType.allCases.map(\.rawValue)
            type = d.choice(node, at: fields.path("type"), "map type", choices).flatMap(MapSpec.MapType.init)
            if type == .devmapHash && semantics == .v4_18 {
                d.report(
                    fields.path("type"),
                    "\"devmap_hash\" needs \"semantics\": \"modern\" (BPF_MAP_TYPE_DEVMAP_HASH arrived in Linux 5.4)",
                    at: node
                )
            }
        }
        if let type, !type.isDevMap {
            return decodeDataMap(fields, name: name, type: type)
        }
        for key in ["key_size", "value_size"] where fields[key] != nil {
            d.report(
                fields.path(key), "a devmap has 4-byte keys and values; \"\(key)\" is for the maps of eBPF objects",
                at: fields[key]!)
        }
        let maxEntries = d.requiredInteger(fields, "max_entries", in: MapSpec.maxEntriesRange)
        var draft = MapDraft(fields: fields, name: name, type: type, maxEntries: maxEntries, entries: [])
        if let node = fields["entries"] {
            draft.entries = decodeEntries(node, at: fields.path("entries"), type: type, maxEntries: maxEntries)
        }
        return draft
    }

    private func decodeEntries(
        _ node: JSONNode,
        at path: JSONPath,
        type: MapSpec.MapType?,
        maxEntries: UInt32?
    )
        -> [MapEntry]
    {
        let d = diagnostics
        // (key, where the key was written, where the port was written)
        var raw: [(key: UInt32, keyPath: JSONPath, keyPosition: SourcePosition, port: String, program: ProgramSpec?)] =
            []
        switch node.kind {
        case .object:
            for member in d.dictionary(node, at: path, expected: "an object") ?? [] {
                let memberPath = path.member(member.key)
                guard let key = parseDecimal(member.key, max: Int(UInt32.max)) else {
                    d.report(
                        memberPath,
                        "map key \(quotedForMessage(member.key)) must be a decimal integer 0...4294967295 without sign "
                            + "or leading zeros",
                        at: member.keyPosition
                    )
                    continue
                }
                guard let port = d.string(member.value, at: memberPath) else { continue }
                raw.append((UInt32(key), memberPath, member.keyPosition, port, nil))
                portReferences.append(
                    Reference(name: port, path: memberPath, position: member.value.position, what: "map entry")
                )
            }
        case .array(let elements):
            for (index, element) in elements.enumerated() {
                let elementPath = path.index(index)
                guard let fields = d.object(element, at: elementPath, allowed: ["key", "port", "program"]) else {
                    continue
                }
                let key = d.requiredInteger(fields, "key", in: UInt32.min...UInt32.max)
                let port = d.requiredString(fields, "port")
                var program: ProgramSpec?
                if let node = fields["program"] {
                    if semantics == .v4_18 {
                        d.report(
                            fields.path("program"),
                            "an egress program needs \"semantics\": \"modern\" (devmap programs arrived in Linux 5.8)",
                            at: node)
                    } else {
                        program = decodeProgram(node, at: fields.path("program"), portIndex: Self.egressProgram)
                    }
                }
                guard let key, let port, let keyNode = fields["key"], let portNode = fields["port"] else { continue }
                raw.append((key, fields.path("key"), keyNode.position, port, program))
                portReferences.append(
                    Reference(name: port, path: fields.path("port"), position: portNode.position, what: "map entry")
                )
            }
        default:
            d.report(
                path,
                "expected an object like {\"0\": \"p1\"} or an array like [{\"key\": 0, \"port\": \"p1\"}], "
                    + "got \(node.compact)",
                at: node
            )
            return []
        }

        var entries: [MapEntry] = []
        var firstPath: [UInt32: JSONPath] = [:]
        for entry in raw {
            if let first = firstPath[entry.key] {
                d.report(entry.keyPath, "duplicate key \(entry.key) (first used at \(first))", at: entry.keyPosition)
                continue
            }
            firstPath[entry.key] = entry.keyPath
            // An array map's keys are indexes; dev_map_update_elem answers E2BIG beyond them.
            if type == .devmap, let maxEntries, entry.key >= maxEntries {
                d.report(
                    entry.keyPath,
                    "key \(entry.key) is out of range: max_entries is \(maxEntries), so keys are 0...\(maxEntries - 1)",
                    at: entry.keyPosition
                )
                continue
            }
            entries.append(MapEntry(key: MapKey(entry.key), port: entry.port, program: entry.program))
        }
        if type == .devmapHash, let maxEntries, entries.count > Int(maxEntries) {
            d.report(path, "\(entries.count) entries exceed max_entries \(maxEntries)", at: node)
        }
        return entries
    }
}
