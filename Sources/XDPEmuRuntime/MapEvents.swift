import Foundation
import XDPEmuCore
import XDPEmuTopology

/// Scheduled map operations: a JSON file used by both replay (times after the first frame's timestamp) and live
/// mode (times after the start of the run), so a trace can be replayed against a changing redirect table:
/// ```json
/// {"events": [
///   {"at": 0.5, "op": "delete", "map": "fwd", "key": 0},
///   {"at_ns": 1500000000, "op": "update", "map": "fwd", "key": 0, "port": "xe1", "flags": "any"}
/// ]}
/// ```
/// `at` is in seconds, `at_ns` in nanoseconds (give one). `update` names the target by `port` or by `ifindex`
/// (0 empties the slot); `flags` is any, noexist, exist or a number. A top-level array is accepted too.
public struct MapEventSchedule: Equatable, Sendable {
    public enum Operation: Equatable, Sendable {
        case update(ifindex: UInt32, flags: UInt64)
        case delete
    }

    public struct Event: Equatable, Sendable {
        /// Nanoseconds after the start.
        public var offset: UInt64
        public var map: String
        public var key: UInt32
        public var operation: Operation
    }

    /// Events in time order (file order among equal times).
    public var events: [Event]

    public init(events: [Event]) { self.events = events }

    /// Loads and checks a schedule against a topology; every problem is reported at once, by JSON path.
    public static func load(path: String, topology: Topology) throws(RuntimeError) -> MapEventSchedule {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .badInput("\(path): cannot read: \(error.localizedDescription)")
        }
        return try parse(data: data, source: path, topology: topology)
    }

    public static func parse(data: Data, source: String, topology: Topology) throws(RuntimeError) -> MapEventSchedule {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
        } catch {
            throw .badInput("\(source): $: invalid JSON: \((error as NSError).userInfo[NSDebugDescriptionErrorKey] ?? error)")
        }
        var problems = [String]()
        func problem(_ path: String, _ message: String) { problems.append("\(source): \(path): \(message)") }
        var list: [Any] = []
        var listPath = "$"
        if let array = root as? [Any] {
            list = array
        } else if let object = root as? [String: Any] {
            for key in object.keys.sorted() where key != "events" {
                problem("$.\(key)", "unknown field (allowed: events)")
            }
            guard let array = object["events"] as? [Any] else {
                problem("$.events", "must be an array of events")
                throw .badInput(problems.joined(separator: "\n"))
            }
            list = array
            listPath = "$.events"
        } else {
            throw .badInput("\(source): $: must be an object with \"events\" or an array")
        }
        var events = [Event]()
        let allowed: Set<String> = ["at", "at_ns", "op", "map", "key", "port", "ifindex", "flags"]
        for (i, item) in list.enumerated() {
            let path = "\(listPath)[\(i)]"
            guard let object = item as? [String: Any] else {
                problem(path, "must be an object")
                continue
            }
            for key in object.keys.sorted() where !allowed.contains(key) {
                problem("\(path).\(key)", "unknown field (allowed: \(allowed.sorted().joined(separator: ", ")))")
            }
            var offset: UInt64?
            switch (object["at"], object["at_ns"]) {
            case (let seconds?, nil):
                if let n = number(seconds), n >= 0, n < 1e10 { offset = UInt64((n * 1e9).rounded()) } else {
                    problem("\(path).at", "must be a number of seconds >= 0, got \(show(seconds))")
                }
            case (nil, let nanos?):
                if let n = integer(nanos), n >= 0 { offset = UInt64(n) } else {
                    problem("\(path).at_ns", "must be an integer >= 0, got \(show(nanos))")
                }
            case (nil, nil): problem(path, "needs \"at\" (seconds) or \"at_ns\"")
            default: problem(path, "give either \"at\" or \"at_ns\", not both")
            }
            let mapName = object["map"] as? String
            if mapName == nil {
                problem("\(path).map", "must be the name of a map, got \(show(object["map"]))")
            } else if topology.map(named: mapName!) == nil {
                problem("\(path).map", "no map named \"\(mapName!)\"")
            }
            var key: UInt32?
            if let k = object["key"].flatMap(integer), k >= 0, k <= Int64(UInt32.max) { key = UInt32(k) } else {
                problem("\(path).key", "must be an integer 0...4294967295, got \(show(object["key"]))")
            }
            var operation: Operation?
            switch object["op"] as? String {
            case "delete":
                operation = .delete
                for field in ["port", "ifindex", "flags"] where object[field] != nil {
                    problem("\(path).\(field)", "not used by delete")
                }
            case "update":
                var ifindex: UInt32?
                switch (object["port"], object["ifindex"]) {
                case (let name as String, nil):
                    if let port = topology.port(named: name) { ifindex = port.ifindex } else {
                        problem("\(path).port", "no port named \"\(name)\"")
                    }
                case (nil, let value?):
                    if let n = integer(value), n >= 0, n <= Int64(UInt32.max) { ifindex = UInt32(n) } else {
                        problem("\(path).ifindex", "must be an integer 0...4294967295, got \(show(value))")
                    }
                case (nil, nil): problem(path, "update needs \"port\" or \"ifindex\"")
                default: problem(path, "give either \"port\" (a name) or \"ifindex\", not both")
                }
                var flags: UInt64 = 0
                switch object["flags"] {
                case nil: break
                case let s as String:
                    switch s {
                    case "any": flags = 0
                    case "noexist": flags = 1
                    case "exist": flags = 2
                    default: problem("\(path).flags", "must be any, noexist, exist or a number, got \"\(s)\"")
                    }
                case let value?:
                    if let n = integer(value), n >= 0 { flags = UInt64(n) } else {
                        problem("\(path).flags", "must be any, noexist, exist or a number, got \(show(value))")
                    }
                }
                if let ifindex { operation = .update(ifindex: ifindex, flags: flags) }
            default:
                problem("\(path).op", "must be \"update\" or \"delete\", got \(show(object["op"]))")
            }
            if let offset, let mapName, let key, let operation {
                events.append(Event(offset: offset, map: mapName, key: key, operation: operation))
            }
        }
        guard problems.isEmpty else { throw .badInput(problems.joined(separator: "\n")) }
        // Stable sort: equal times keep file order.
        let sorted = events.enumerated().sorted { ($0.element.offset, $0.offset) < ($1.element.offset, $1.offset) }
        return MapEventSchedule(events: sorted.map(\.element))
    }

    private static func number(_ value: Any) -> Double? {
        guard let n = value as? NSNumber, CFGetTypeID(n) != CFBooleanGetTypeID() else { return nil }
        return n.doubleValue
    }

    private static func integer(_ value: Any) -> Int64? {
        guard let d = number(value), d == d.rounded(), abs(d) < 9.0e15 else { return nil }
        return Int64(d)
    }

    private static func show(_ value: Any?) -> String {
        switch value {
        case nil: "nothing"
        case let s as String: "\"\(s)\""
        case let n as NSNumber: CFGetTypeID(n) == CFBooleanGetTypeID() ? (n.boolValue ? "true" : "false") : "\(n)"
        case is [Any]: "an array"
        case is [String: Any]: "an object"
        default: "null"
        }
    }
}

extension MapEventSchedule.Event {
    /// Applies the operation to `map`; returns "ok" or the errno name.
    func apply(to map: DevMap) -> String {
        do {
            switch operation {
            case .update(let ifindex, let flags): try map.update(key: key, ifindex: ifindex, flags: flags)
            case .delete: try map.delete(key: key)
            }
            return "ok"
        } catch {
            return error.name
        }
    }

    var operationName: String {
        switch operation {
        case .update: "update"
        case .delete: "delete"
        }
    }

    var ifindex: UInt32? {
        if case .update(let ifindex, _) = operation { return ifindex }
        return nil
    }
}
