// `--maps-out FILE.json`: every map's contents at the end of a run, keys and values written as a topology writes
// them (integers for 4- and 8-byte fields, little-endian; hex strings otherwise; devmap entries as ports,
// prog_array entries as function names), so a run's final maps can seed the next run's topology.

import XDPEmuBPF
import XDPEmuCore
import XDPEmuOS

enum MapsOut {
    /// The JSON document of `emulation`'s maps: the topology's devmaps, then each eBPF object's maps.
    static func json(_ emulation: Emulation) -> String {
        let portByIfindex = Dictionary(uniqueKeysWithValues: emulation.ports.map { ($0.device.ifindex, $0.spec.name) })
        var maps: [String] = []
        var written = Set<ObjectIdentifier>()
        for spec in emulation.topology.maps where spec.type.isDevMap {
            guard let devMap = emulation.maps[spec.name] else { continue }
            written.insert(ObjectIdentifier(devMap))
            maps.append(
                devMapJSON(name: spec.name, type: spec.type.rawValue, devMap, ports: portByIfindex, object: nil))
        }
        for (path, object) in emulation.ebpfObjects.objects {
            for map in object.maps {
                if let reference = map as? DevMapReference {
                    guard let devMap = reference.devMap, written.insert(ObjectIdentifier(devMap)).inserted else {
                        continue
                    }
                    maps.append(
                        devMapJSON(
                            name: map.definition.name, type: map.definition.type.description, devMap,
                            ports: portByIfindex, object: path))
                    continue
                }
                let d = map.definition
                if let slots = map as? ProgArrayMap {
                    let entries = slots.programSlots.map { "{\"key\": \($0.key), \"program\": \(quoted($0.function))}" }
                    maps.append(
                        "{\"name\": \(quoted(d.name)), \"object\": \(quoted(path)), \"type\": \"prog_array\", "
                            + "\"max_entries\": \(d.maxEntries),\n   \"entries\": [" + entries.joined(separator: ", ")
                            + "]}")
                    continue
                }
                // An array has every index; a large one lists only the entries that are not all zero.
                let sparse = (d.type == .array || d.type == .percpuArray) && d.maxEntries > 1024
                let kept = map.entries().filter { !sparse || $0.values.contains { $0.contains { $0 != 0 } } }
                let entries = kept.map { entry in
                    let values = entry.values.map { field($0) }
                    let value =
                        map.cpus > 1 || d.type.isPerCPU
                        ? "\"values\": [\(values.joined(separator: ", "))]" : "\"value\": \(values[0])"
                    return "{\"key\": \(field(entry.key)), \(value)}"
                }
                maps.append(
                    "{\"name\": \(quoted(d.name)), \"object\": \(quoted(path)), \"type\": \(quoted(d.type.description)), "
                        + "\"key_size\": \(d.keySize), \"value_size\": \(d.valueSize), \"max_entries\": \(d.maxEntries),\n"
                        + "   \"entries\": [" + entries.joined(separator: ",\n      ") + "]}")
            }
        }
        return "{\"maps\": [\n  " + maps.joined(separator: ",\n  ") + "\n]}\n"
    }

    /// Writes the document to `path`; a message naming the file when that fails.
    static func write(_ emulation: Emulation, to path: String) -> String? {
        do {
            try writeOutputFile(path, Array(json(emulation).utf8))
            return nil
        } catch {
            return "--maps-out: \(error)"
        }
    }

    private static func devMapJSON(
        name: String, type: String, _ devMap: DevMap, ports: [IfIndex: String], object: String?
    ) -> String {
        var entries: [String] = []
        for key in 0..<devMap.maxEntries {
            guard let ifindex = try? devMap.lookup(key: MapKey(key)) else { continue }
            let port = ports[ifindex].map(quoted) ?? "null"
            entries.append("{\"key\": \(key), \"port\": \(port), \"ifindex\": \(ifindex.rawValue)}")
        }
        let origin = object.map { ", \"object\": \(quoted($0))" } ?? ""
        return
            "{\"name\": \(quoted(name))\(origin), \"type\": \(quoted(type)), \"max_entries\": \(devMap.maxEntries),\n"
            + "   \"entries\": [" + entries.joined(separator: ", ") + "]}"
    }

    /// A 4- or 8-byte field as its little-endian integer, any other as hex bytes.
    static func field(_ bytes: [UInt8]) -> String {
        if bytes.count == 4 || bytes.count == 8 {
            return String(bytes.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        }
        return "\"" + bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":") + "\""
    }

    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where scalar.value < 0x20:
                out +=
                    "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count)
                    + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
