// Decoding `{"type": "ebpf", ...}` programs and the maps of eBPF objects (array, hash, ... with
// `{"key": K, "value": V}` entries). The object file is not read here: what it defines is checked against the
// topology when the emulation is built (and by `xdpemu validate`).

extension TopologyDecoder {
    func decodeEBPF(_ node: JSONNode, at path: JSONPath) -> ProgramSpec? {
        let d = diagnostics
        guard
            let fields = d.object(
                node, at: path, allowed: ["type", "object", "function", "section", "instruction_budget"])
        else { return nil }
        guard let object = d.requiredString(fields, "object") else { return nil }
        if object.isEmpty {
            d.report(fields.path("object"), "must name an object file", at: fields["object"]!)
            return nil
        }
        let function = fields["function"].flatMap { d.string($0, at: fields.path("function")) }
        let section = fields["section"].flatMap { d.string($0, at: fields.path("section")) }
        let budget = d.integer(fields, "instruction_budget", in: 1...1_000_000_000, default: 1_000_000)
        return .ebpf(
            EBPFProgramConfiguration(
                object: resolveRelative(object), function: function, section: section, instructionBudget: budget))
    }

    /// `path` relative to the topology file's directory (as written when it is absolute, or when the topology
    /// did not come from a file).
    private func resolveRelative(_ path: String) -> String {
        guard !path.hasPrefix("/"), let slash = source.lastIndex(of: "/") else { return path }
        return String(source[...slash]) + path
    }

    func decodeDataMap(_ fields: Fields, name: String?, type: MapSpec.MapType) -> MapDraft {
        let d = diagnostics
        let maxEntries = d.requiredInteger(fields, "max_entries", in: 1...UInt32.max)
        var draft = MapDraft(fields: fields, name: name, type: type, maxEntries: maxEntries, entries: [])
        draft.keySize = fields["key_size"].flatMap { d.integer($0, at: fields.path("key_size"), in: 1...512) }
        draft.valueSize = fields["value_size"].flatMap {
            d.integer($0, at: fields.path("value_size"), in: 1...(1 << 20))
        }
        guard let node = fields["entries"] else { return draft }
        let path = fields.path("entries")
        let programs = type == .progArray
        let example = programs ? "[{\"key\": 0, \"program\": \"xdp_ipv4\"}]" : "[{\"key\": 0, \"value\": 1}]"
        guard let elements = d.array(node, at: path, expected: "an array like \(example)") else { return draft }
        for (index, element) in elements.enumerated() {
            let elementPath = path.index(index)
            guard let entry = d.object(element, at: elementPath, allowed: ["key", programs ? "program" : "value"])
            else { continue }
            let key = d.required(entry, "key").flatMap { mapBytes($0, at: entry.path("key")) }
            if programs {
                if let key, let function = d.requiredString(entry, "program") {
                    draft.dataEntries.append(
                        DataMapEntry(key: key, value: .integer(0), program: function, path: elementPath.description))
                }
                continue
            }
            let value = d.required(entry, "value").flatMap { mapBytes($0, at: entry.path("value")) }
            if let key, let value {
                draft.dataEntries.append(DataMapEntry(key: key, value: value, path: elementPath.description))
            }
        }
        return draft
    }

    private func mapBytes(_ node: JSONNode, at path: JSONPath) -> MapBytes? {
        switch node.kind {
        case .number:
            return diagnostics.integer(node, at: path, in: UInt64.min...UInt64.max).map { .integer($0) }
        case .string(let text):
            if let bytes = MapBytes.hex(text) { return .bytes(bytes) }
            diagnostics.report(
                path,
                "\(quotedForMessage(text)) is not hex bytes; write pairs of hex digits, colons and spaces allowed "
                    + "(\"02:00:00:00:00:01\")",
                at: node)
        default:
            diagnostics.report(path, "expected an integer or a hex string, got \(node.compact)", at: node)
        }
        return nil
    }
}
