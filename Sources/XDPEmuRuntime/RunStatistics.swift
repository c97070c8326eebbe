import Foundation
import XDPEmuCore
import XDPEmuPcap
import XDPEmuTopology

/// What a run did, gathered from the devices' and maps' counters: printed as a table and written as JSON.
public struct RunStatistics: Equatable, Sendable {
    public struct Port: Equatable, Sendable {
        public var name: String
        public var ifindex: UInt32
        /// Frames that arrived at the port (captured at ingress), including those lost to a full RX ring.
        public var ingress: UInt64
        public var device: DeviceStatistics
    }

    public struct Entry: Equatable, Sendable {
        public var key: UInt32
        public var statistics: MapEntryStatistics
    }

    public struct Map: Equatable, Sendable {
        public var name: String
        public var id: UInt32
        public var entries: [Entry]
    }

    public var topology: String
    public var ports: [Port]
    public var maps: [Map]
    public var polls: UInt64
    public var framesIn: UInt64
    public var eventsLost: UInt64
    public var errors: [String]
    /// What became of each replayed trace's records (link type, converted to Ethernet, skipped). Listed in the
    /// table and the JSON only when a trace is not Ethernet.
    public var inputs: [InputFraming] = []

    /// Whether some input was given Ethernet headers.
    var hasConvertedInputs: Bool { inputs.contains { $0.linkType != .ethernet } }
    /// Outputs a failed write left incomplete (each ends at its last whole record), set when the outputs are closed.
    public var incompleteOutputs: [OutputFailure] = []

    /// Bulk transmits: over every map entry (4.18's bulk queues) and every device (the modern profile's).
    public var flushes: UInt64 {
        maps.reduce(0) { $0 + $1.entries.reduce(0) { $0 + $1.statistics.flushes } }
            + ports.reduce(0) { $0 + $1.device.bulkTransmits }
    }
    /// Frames per bulk transmit.
    public var averageBulk: Double {
        let frames =
            maps.reduce(UInt64(0)) { $0 + $1.entries.reduce(0) { $0 + $1.statistics.sent + $1.statistics.drops } }
            + ports.reduce(0) { $0 + $1.device.bulkFrames }
        return flushes == 0 ? 0 : Double(frames) / Double(flushes)
    }

    /// Gathers the counters of an emulation.
    public init(emulation: Emulation, ingress: [String: UInt64], polls: UInt64, framesIn: UInt64, errors: [String]) {
        topology = emulation.topology.name
        ports = emulation.ports.map {
            Port(
                name: $0.spec.name, ifindex: $0.device.ifindex.rawValue, ingress: ingress[$0.spec.name] ?? 0,
                device: $0.device.statistics)
        }
        maps = emulation.mapNames.compactMap { id, name in
            guard let map = emulation.maps[name] else { return nil }
            let entries = map.statistics().sorted { $0.key < $1.key }.map {
                Entry(key: $0.key.rawValue, statistics: $0.value)
            }
            return Map(name: name, id: id, entries: entries)
        }
        self.polls = polls
        self.framesIn = framesIn
        eventsLost = emulation.network.workers.reduce(0) { $0 + $1.events.lost }
        self.errors = errors
    }

    /// A fixed-width table for a terminal.
    public var table: String {
        var lines = [String]()
        let reasons = DropReason.allCases.filter { reason in ports.contains { $0.device.drops[reason] != nil } }
        var header = ["port", "ifindex", "ingress", "rx", "tx", "pass", "redirect", "xdp_tx"]
        header += reasons.map { "drop:\($0)" }
        var rows = [header]
        for p in ports {
            var row = [
                p.name, "\(p.ifindex)", "\(p.ingress)", "\(p.device.rxPackets)", "\(p.device.txPackets)",
                "\(p.device.passed)", "\(p.device.redirected)", "\(p.device.xdpTx)",
            ]
            row += reasons.map { "\(p.device.drops[$0] ?? 0)" }
            rows.append(row)
        }
        lines += format(rows)
        for map in maps where !map.entries.isEmpty {
            lines.append("")
            var mapRows = [["map \(map.name)", "key", "sent", "drops", "flushes", "avg bulk"]]
            for e in map.entries {
                mapRows.append([
                    "", "\(e.key)", "\(e.statistics.sent)", "\(e.statistics.drops)",
                    "\(e.statistics.flushes)", formatDouble(e.statistics.averageBulk),
                ])
            }
            lines += format(mapRows)
        }
        if hasConvertedInputs {
            lines.append("")
            var inputRows = [["input", "link type", "converted", "skipped"]]
            for input in inputs {
                inputRows.append([
                    "\(input.port)=\(input.path)", "\(input.linkType)", "\(input.converted)", "\(input.skipped)",
                ])
            }
            lines += format(inputRows)
        }
        lines.append("")
        lines.append(
            "frames in \(framesIn), polls \(polls), flushes \(flushes), "
                + "average bulk \(formatDouble(averageBulk))"
                + (eventsLost > 0 ? ", events lost \(eventsLost)" : ""))
        if !incompleteOutputs.isEmpty {
            lines.append("incomplete outputs (a write failed; each file ends at its last whole record):")
            for output in incompleteOutputs {
                lines.append("  \(output.path): \(output.missing) \(output.unit) missing (\(output.error))")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// The same as JSON, keys in a fixed order (byte-identical for identical runs).
    public var json: String {
        var out = "{\n"
        out += "  \"topology\": \(jsonQuoted(topology)),\n"
        out += "  \"frames_in\": \(framesIn),\n  \"polls\": \(polls),\n  \"flushes\": \(flushes),\n"
        out += "  \"average_bulk\": \(formatDouble(averageBulk)),\n  \"events_lost\": \(eventsLost),\n"
        out += "  \"ports\": [\n"
        out += ports.map { p in
            let drops = DropReason.allCases.compactMap { reason in
                p.device.drops[reason].map { "\(jsonQuoted(reason.description)): \($0)" }
            }
            return "    {\"name\": \(jsonQuoted(p.name)), \"ifindex\": \(p.ifindex), \"ingress\": \(p.ingress), "
                + "\"rx\": \(p.device.rxPackets), \"rx_bytes\": \(p.device.rxBytes), \"tx\": \(p.device.txPackets), "
                + "\"tx_bytes\": \(p.device.txBytes), \"pass\": \(p.device.passed), "
                + "\"redirect\": \(p.device.redirected), \"xdp_tx\": \(p.device.xdpTx), "
                + "\"cloned\": \(p.device.cloned), "
                + "\"drops_total\": \(p.device.totalDrops), \"drops\": {\(drops.joined(separator: ", "))}}"
        }.joined(separator: ",\n")
        out += "\n  ],\n  \"maps\": [\n"
        out += maps.map { m in
            let entries = m.entries.map { e in
                "{\"key\": \(e.key), \"sent\": \(e.statistics.sent), \"drops\": \(e.statistics.drops), "
                    + "\"flushes\": \(e.statistics.flushes), "
                    + "\"average_bulk\": \(formatDouble(e.statistics.averageBulk))}"
            }
            return "    {\"name\": \(jsonQuoted(m.name)), \"id\": \(m.id), "
                + "\"entries\": [\(entries.joined(separator: ", "))]}"
        }.joined(separator: ",\n")
        if hasConvertedInputs {
            out += "\n  ],\n  \"inputs\": [\n"
            out += inputs.map { input in
                "    {\"port\": \(jsonQuoted(input.port)), \"path\": \(jsonQuoted(input.path)), "
                    + "\"link_type\": \(input.linkType.rawValue), "
                    + "\"link_type_name\": \(jsonQuoted(input.linkType.name ?? "\(input.linkType.rawValue)")), "
                    + "\"converted\": \(input.converted), \"skipped\": \(input.skipped)}"
            }.joined(separator: ",\n")
        }
        out += "\n  ],\n  \"errors\": [\(errors.map(jsonQuoted).joined(separator: ", "))]"
        if !incompleteOutputs.isEmpty {
            let outputs = incompleteOutputs.map {
                "{\"file\": \(jsonQuoted($0.path)), \"\($0.unit)_kept\": \($0.kept), \"\($0.unit)_missing\": \($0.missing), "
                    + "\"error\": \(jsonQuoted($0.error))}"
            }
            out += ",\n  \"incomplete_outputs\": [\(outputs.joined(separator: ", "))]"
        }
        out += "\n}\n"
        return out
    }

    private func format(_ rows: [[String]]) -> [String] {
        let widths = (0..<(rows.first?.count ?? 0)).map { c in rows.map { $0[c].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { c, cell in
                c == 0
                    ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[c] - cell.count) + cell
            }.joined(separator: "  ")
        }
    }
}

/// Two decimals, locale-independent.
func formatDouble(_ value: Double) -> String {
    let hundredths = Int((value * 100).rounded())
    let fraction = hundredths % 100
    return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
}
