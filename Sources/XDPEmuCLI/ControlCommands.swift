import ArgumentParser
import Foundation
import Glibc
import XDPEmuOS
import XDPEmuRuntime

// Clients of a running instance's control socket (docs/control.md): thin commands that send one request (or a
// series, for --watch) and print the answer. Exit codes: 0 done; 1 the devmap answered an errno (printed by
// name, as `map batch` prints it), or the instance is not running or went away; 2 the instance refused the
// request (an unknown map or port, a malformed value); 77 the socket belongs to another user.

/// The options every control command shares.
struct InstanceOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The running instance (its topology's name, or run --name).", valueName: "NAME"))
    var instance: String

    @Option(
        name: .customLong("state-dir"), help: ArgumentHelp("Where the instance's control socket is.", valueName: "DIR"))
    var stateDirectory: String = RunState.defaultDirectory

    func connect() -> ControlClient {
        do {
            return try ControlClient(instance: instance, stateDirectory: stateDirectory)
        } catch {
            failControl(error)
        }
    }
}

func failControl(_ error: ControlClientError) -> Never {
    switch error {
    case .noInstance, .dead, .failed: fail(error.description, code: ExitStatus.failure)
    case .notPermitted: fail(error.description, code: ExitStatus.noPermission)
    case .refused: fail(error.description, code: ExitStatus.badInput)
    }
}

/// Sends `op` and returns the answer's object; an errno answer prints its name and exits 1.
func controlRequest(_ client: ControlClient, _ op: String, _ fields: [String: Any] = [:]) -> [String: Any] {
    do {
        switch try client.request(op, fields) {
        case .ok(let object): return object
        case .errno(let name):
            Console.standardOutput.writeLine(name)
            exit(ExitStatus.failure)
        }
    } catch {
        failControl(error)
    }
}

/// `object` as one line of JSON, keys sorted, without the protocol's own fields.
func jsonLine(_ object: Any) -> String {
    var value = object
    if var dictionary = object as? [String: Any] {
        dictionary["v"] = nil
        dictionary["ok"] = nil
        value = dictionary
    }
    let data = (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])) ?? Data()
    return String(decoding: data, as: UTF8.self)
}

/// A map key argument: 0...4294967295.
func parseKey(_ text: String) throws -> UInt32 {
    guard let key = UInt32(text) else { throw ValidationError("key '\(text)' is not an integer 0...4294967295") }
    return key
}

// MARK: map update|delete|lookup|next|dump

/// The map and key of a slot, and --json: what `map delete` and `map lookup` take (`update` has its device and
/// flags between the key and --json in its usage line).
struct MapSlotArguments: ParsableArguments {
    @Argument(help: "The map's name in the topology.") var map: String
    @Argument(help: "The key.") var key: String
    @Flag(help: "Print the answer as JSON.") var json = false
}

struct MapUpdateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "update", abstract: "Set a devmap slot of a running instance (map_update_elem).",
        discussion: "Prints ok, or the errno name (exit code 1) as `map batch` does.")

    @OptionGroup var target: InstanceOptions
    @Argument(help: "The map's name in the topology.") var map: String
    @Argument(help: "The key.") var key: String
    @Argument(help: "The target: a port name or a numeric ifindex (0 empties the slot).") var device: String
    @Argument(help: "any, noexist, exist or a number.") var flags: String = "any"
    @Flag(help: "Print the answer as JSON.") var json = false

    func run() throws {
        let key = try parseKey(key)
        let client = target.connect()
        let flagValue: Any = UInt64(flags).map { $0 as Any } ?? flags
        let deviceValue: Any = UInt32(device).map { $0 as Any } ?? device
        let answer = controlRequest(
            client, "map.update", ["map": map, "key": key, "device": deviceValue, "flags": flagValue])
        Console.standardOutput.writeLine(json ? jsonLine(answer) : "ok")
    }
}

struct MapDeleteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Empty a devmap slot of a running instance (map_delete_elem).")

    @OptionGroup var target: InstanceOptions
    @OptionGroup var slot: MapSlotArguments

    func run() throws {
        let key = try parseKey(slot.key)
        let answer = controlRequest(target.connect(), "map.delete", ["map": slot.map, "key": key])
        Console.standardOutput.writeLine(slot.json ? jsonLine(answer) : "ok")
    }
}

struct MapLookupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lookup", abstract: "The device in a devmap slot of a running instance (map_lookup_elem).")

    @OptionGroup var target: InstanceOptions
    @OptionGroup var slot: MapSlotArguments

    func run() throws {
        let key = try parseKey(slot.key)
        let answer = controlRequest(target.connect(), "map.lookup", ["map": slot.map, "key": key])
        let name = answer["device"] as? String ?? "\(answer["ifindex"] ?? "")"
        Console.standardOutput.writeLine(slot.json ? jsonLine(answer) : "ok \(name)")
    }
}

struct MapNextCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "next", abstract: "The key after KEY in a devmap of a running instance (map_get_next_key).")

    @OptionGroup var target: InstanceOptions
    @Argument(help: "The map's name in the topology.") var map: String
    @Argument(help: "The key, or none for the first.") var key: String = "none"
    @Flag(help: "Print the answer as JSON.") var json = false

    func run() throws {
        var fields: [String: Any] = ["map": map]
        if key != "none" { fields["key"] = try parseKey(key) }
        let answer = controlRequest(target.connect(), "map.next", fields)
        Console.standardOutput.writeLine(json ? jsonLine(answer) : "ok \(answer["key"] ?? "")")
    }
}

struct MapDumpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Every non-empty slot of a devmap of a running instance, with its device and counters.")

    @OptionGroup var target: InstanceOptions
    @Argument(help: "The map's name in the topology.") var map: String
    @Flag(help: "Print the answer as JSON.") var json = false

    func run() throws {
        let answer = controlRequest(target.connect(), "map.dump", ["map": map])
        if json {
            Console.standardOutput.writeLine(jsonLine(answer))
            return
        }
        var rows = [["key", "device", "ifindex", "sent", "drops", "flushes", "avg bulk"]]
        for entry in answer["entries"] as? [[String: Any]] ?? [] {
            rows.append(
                ["key", "device", "ifindex", "sent", "drops", "flushes", "average_bulk"].map { "\(entry[$0] ?? "")" })
        }
        Console.standardOutput.write(formatTable(rows))
    }
}

/// Columns padded to their widest cell, the first left-aligned, one line per row.
func formatTable(_ rows: [[String]]) -> String {
    let widths = (0..<(rows.first?.count ?? 0)).map { c in rows.map { $0[c].count }.max() ?? 0 }
    return rows.map { row in
        row.enumerated().map { c, cell in
            c == 0
                ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                : String(repeating: " ", count: widths[c] - cell.count) + cell
        }.joined(separator: "  ")
    }.joined(separator: "\n") + "\n"
}

// MARK: stats, ports, port set, events, list

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Counters of a running instance: per port rx, tx, pass, drops by reason; per map entry sent, "
            + "drops, average bulk.",
        discussion: "With --watch, prints them every SECONDS with per-port rates (frames/s) until interrupted.")

    @OptionGroup var target: InstanceOptions
    @Flag(help: "Print the statistics as JSON (one object per line with --watch).") var json = false
    @Option(help: ArgumentHelp("Repeat every SECONDS, with rates.", valueName: "SECONDS")) var watch: Double?

    func validate() throws {
        if let watch, !(watch >= 0.1 && watch <= 86400) {
            throw ValidationError("--watch must be 0.1...86400 seconds")
        }
    }

    func run() throws {
        Console.ignoreBrokenPipes()
        let client = target.connect()
        var previous: (time: UInt64, ports: [String: (rx: UInt64, tx: UInt64)])?
        while true {
            let answer = controlRequest(client, "stats")
            let stats = answer["stats"] as? [String: Any] ?? [:]
            let time = (answer["time_ns"] as? NSNumber)?.uint64Value ?? 0
            var current = [String: (rx: UInt64, tx: UInt64)]()
            for port in stats["ports"] as? [[String: Any]] ?? [] {
                let name = port["name"] as? String ?? ""
                current[name] = (
                    (port["rx"] as? NSNumber)?.uint64Value ?? 0, (port["tx"] as? NSNumber)?.uint64Value ?? 0
                )
            }
            var rates = [String: (rx: Double, tx: Double)]()
            if let previous, time > previous.time {
                let seconds = Double(time - previous.time) / 1e9
                for (name, now) in current {
                    let before = previous.ports[name] ?? (0, 0)
                    rates[name] = (Double(now.rx &- before.rx) / seconds, Double(now.tx &- before.tx) / seconds)
                }
            }
            if json {
                var object = stats
                if watch != nil {
                    object["rates"] = rates.mapValues { ["rx_per_s": $0.rx, "tx_per_s": $0.tx] }
                }
                Console.standardOutput.writeLine(jsonLine(object))
            } else {
                Console.standardOutput.writeLine(answer["table"] as? String ?? "")
                if watch != nil && !rates.isEmpty {
                    var rows = [["port", "rx/s", "tx/s"]]
                    for name in rates.keys.sorted() {
                        rows.append([name, String(Int(rates[name]!.rx)), String(Int(rates[name]!.tx))])
                    }
                    Console.standardOutput.write(formatTable(rows))
                }
                if watch != nil { Console.standardOutput.writeLine("") }
            }
            guard let watch else { return }
            if Console.standardOutput.isClosed { return }
            previous = (time, current)
            usleep(useconds_t(watch * 1e6))
        }
    }
}

struct PortsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ports", abstract: "The ports of a running instance: ifindex, name, MTU, up/down, host.")

    @OptionGroup var target: InstanceOptions
    @Flag(help: "Print the answer as JSON.") var json = false

    func run() throws {
        let answer = controlRequest(target.connect(), "ports")
        if json {
            Console.standardOutput.writeLine(jsonLine(answer))
            return
        }
        var rows = [["ifindex", "name", "mtu", "state", "host"]]
        for port in answer["ports"] as? [[String: Any]] ?? [] {
            let up = (port["up"] as? Bool) == true ? "up" : "down"
            let state = (port["registered"] as? Bool) == false ? "gone" : up
            rows.append([
                "\(port["ifindex"] ?? "")", "\(port["name"] ?? "")", "\(port["mtu"] ?? "")", state,
                (port["host"] as? String) ?? "-",
            ])
        }
        Console.standardOutput.write(formatTable(rows))
    }
}

struct PortCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "port", abstract: "Change a port of a running instance.", subcommands: [PortSetCommand.self])
}

struct PortSetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set",
        abstract: "Set a port's emulated link up or down, or its MTU (what the devmap's ENETDOWN and EMSGSIZE "
            + "checks see).",
        discussion: "xdpemu port set --instance NAME PORT up|down|mtu N")

    @OptionGroup var target: InstanceOptions
    @Argument(help: "The port's name.") var port: String
    @Argument(help: "up, down, or mtu N.") var change: [String]
    @Flag(help: "Print the answer as JSON.") var json = false

    func validate() throws {
        switch change.first {
        case "up", "down": guard change.count == 1 else { throw ValidationError("expected up, down or mtu N") }
        case "mtu": guard change.count == 2, Int(change[1]) != nil else { throw ValidationError("mtu needs a number") }
        default: throw ValidationError("expected up, down or mtu N")
        }
    }

    func run() throws {
        var fields: [String: Any] = ["port": port]
        if change[0] == "mtu" { fields["mtu"] = Int(change[1])! } else { fields["up"] = change[0] == "up" }
        let answer = controlRequest(target.connect(), "port.set", fields)
        let state = (answer["up"] as? Bool) == true ? "up" : "down"
        Console.standardOutput.writeLine(json ? jsonLine(answer) : "ok \(port) \(state) mtu \(answer["mtu"] ?? "")")
    }
}

struct EventsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Follow the event log of a running instance (JSON lines) until it stops or you interrupt.",
        discussion: "Lines a slow reader could not take are counted in {\"event\":\"lost\",\"lines\":N} lines.")

    @OptionGroup var target: InstanceOptions

    func run() throws {
        Console.ignoreBrokenPipes()
        let client = target.connect()
        _ = controlRequest(client, "events")
        do {
            while let line = try client.readLine(wait: true) {
                Console.standardOutput.writeLine(String(decoding: line, as: UTF8.self))
                if Console.standardOutput.isClosed { return }
            }
        } catch {
            failControl(error)
        }
    }
}

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "The running instances (control sockets in the state directory).")

    @Option(name: .customLong("state-dir"), help: ArgumentHelp("Where control sockets are.", valueName: "DIR"))
    var stateDirectory: String = RunState.defaultDirectory

    @Flag(help: "Print one JSON object per instance.") var json = false

    func run() throws {
        let instances = listInstances(stateDirectory: stateDirectory)
        for (name, hello) in instances {
            guard let hello else {
                Console.standardOutput.writeLine(
                    json
                        ? jsonLine(["instance": name, "running": false])
                        : "\(name)  not running (stale socket; `xdpemu cleanup` removes it)")
                continue
            }
            if json {
                var object = hello
                object["running"] = true
                Console.standardOutput.writeLine(jsonLine(object))
            } else {
                Console.standardOutput.writeLine(
                    "\(name)  pid \(hello["pid"] ?? "?")  \(hello["topology"] ?? "")  workers \(hello["workers"] ?? "?")"
                        + "  ports \(hello["ports"] ?? "?")")
            }
        }
        if instances.isEmpty && !json { Console.standardOutput.writeLine("no running instance") }
    }
}
