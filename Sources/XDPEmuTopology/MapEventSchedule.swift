// Scheduled map operations, read from their own JSON file and checked against a topology. The same file serves
// replay (times after the first frame's timestamp) and live mode (times after the start of the run), so a trace
// can be replayed against the same changing redirect table a live run saw:
//
//     {"events": [
//       {"at": 0.5, "op": "delete", "map": "fwd", "key": 0},
//       {"at_ns": 1500000000, "op": "update", "map": "fwd", "key": 0, "port": "xe1", "flags": "any"}
//     ]}
//
// `at` is in seconds (a fraction is fine), `at_ns` in nanoseconds: give one. `update` names its target by `port`
// or by `ifindex` (0 empties the slot, an unknown ifindex is passed on so the map answers EINVAL); `flags` is
// any, noexist, exist or a number (an invalid number is passed on so the map answers EINVAL). A bare top-level
// array of events is accepted too.

import XDPEmuCore

/// Map operations at given times, sorted by time (file order among equal times).
public struct MapEventSchedule: Sendable, Equatable {
    public enum Operation: Sendable, Equatable {
        case update(ifindex: IfIndex, flags: UInt64)
        case delete
    }

    public struct Event: Sendable, Equatable {
        /// Nanoseconds after the start.
        public var offset: UInt64
        public var map: String
        public var key: MapKey
        public var operation: Operation

        public init(offset: UInt64, map: String, key: MapKey, operation: Operation) {
            self.offset = offset
            self.map = map
            self.key = key
            self.operation = operation
        }
    }

    public var events: [Event]
    /// The file the schedule was loaded from, if any.
    public var path: String?

    public init(events: [Event]) { self.events = events }

    /// Reads and checks the file at `path` against `topology`; every problem is reported at once, by JSON path.
    public static func load(path: String, topology: Topology) throws(TopologyError) -> MapEventSchedule {
        var schedule = try parse(data: readSourceFile(path), source: path, topology: topology)
        schedule.path = path
        return schedule
    }

    /// Checks a schedule from JSON bytes; `source` names it in messages.
    public static func parse(
        data: [UInt8], source: String, topology: Topology
    ) throws(TopologyError)
        -> MapEventSchedule
    {
        let root: JSONNode
        do {
            root = try JSONParser.parse(data)
        } catch {
            throw TopologyError(
                source: source,
                problems: [
                    .init(
                        path: "$", message: "invalid JSON at \(error.position): \(error.message)",
                        position: error.position)
                ])
        }
        let d = Diagnostics()
        var list: [JSONNode]?
        var listPath = JSONPath.root
        if case .array = root.kind {
            list = d.array(root, at: .root)
        } else if let fields = d.object(root, at: .root, allowed: ["events"]) {
            listPath = fields.path("events")
            list = d.required(fields, "events").flatMap { d.array($0, at: listPath) }
        }
        var events: [Event] = []
        for (index, node) in (list ?? []).enumerated() {
            let path = listPath.index(index)
            guard
                let fields = d.object(
                    node, at: path,
                    allowed: ["at", "at_ns", "op", "map", "key", "port", "ifindex", "flags"])
            else { continue }
            var offset: UInt64?
            switch (fields["at"], fields["at_ns"]) {
            case (let seconds?, nil): offset = secondsToNanos(seconds, at: fields.path("at"), d)
            case (nil, let nanos?): offset = d.integer(nanos, at: fields.path("at_ns"), in: 0...UInt64.max)
            case (nil, nil): d.report(path, "needs \"at\" (seconds) or \"at_ns\" (nanoseconds)", at: node)
            default: d.report(path, "give either \"at\" or \"at_ns\", not both", at: node)
            }
            var mapName: String?
            if let name = d.requiredString(fields, "map") {
                if topology.map(named: name) == nil {
                    d.report(fields.path("map"), "no map named \(quotedForMessage(name))", at: fields["map"]!)
                } else {
                    mapName = name
                }
            }
            let key = d.requiredInteger(fields, "key", in: 0...UInt32.max).map(MapKey.init(rawValue:))
            var operation: Operation?
            if let opNode = d.required(fields, "op"),
                let op = d.choice(opNode, at: fields.path("op"), "operation", ["update", "delete"])
            {
                if op == "delete" {
                    for unused in ["port", "ifindex", "flags"] where fields[unused] != nil {
                        d.report(fields.path(unused), "not used by \"delete\"", at: fields[unused]!)
                    }
                    operation = .delete
                } else {
                    operation = updateOperation(fields, path: path, node: node, topology: topology, d)
                }
            }
            if let offset, let mapName, let key, let operation {
                events.append(Event(offset: offset, map: mapName, key: key, operation: operation))
            }
        }
        guard d.problems.isEmpty else { throw TopologyError(source: source, problems: d.problems) }
        let sorted = events.enumerated().sorted { a, b in
            a.element.offset != b.element.offset ? a.element.offset < b.element.offset : a.offset < b.offset
        }
        return MapEventSchedule(events: sorted.map(\.element))
    }

    private static func updateOperation(
        _ fields: Fields, path: JSONPath, node: JSONNode, topology: Topology,
        _ d: Diagnostics
    ) -> Operation? {
        var ifindex: IfIndex?
        switch (fields["port"], fields["ifindex"]) {
        case (let portNode?, nil):
            if let name = d.string(portNode, at: fields.path("port")) {
                if let port = topology.port(named: name) {
                    ifindex = port.ifindex
                } else {
                    d.report(fields.path("port"), "no port named \(quotedForMessage(name))", at: portNode)
                }
            }
        case (nil, let indexNode?):
            ifindex = d.integer(indexNode, at: fields.path("ifindex"), in: 0...UInt32.max).map(IfIndex.init(rawValue:))
        case (nil, nil): d.report(path, "\"update\" needs \"port\" (a name) or \"ifindex\"", at: node)
        default: d.report(path, "give either \"port\" or \"ifindex\", not both", at: node)
        }
        var flags: UInt64? = 0
        if let flagsNode = fields["flags"] {
            if case .string = flagsNode.kind {
                flags = d.choice(flagsNode, at: fields.path("flags"), "update flag", ["any", "noexist", "exist"])
                    .map { ["any": 0, "noexist": 1, "exist": 2][$0]! }
            } else {
                flags = d.integer(flagsNode, at: fields.path("flags"), in: 0...UInt64.max)
            }
        }
        guard let ifindex, let flags else { return nil }
        return .update(ifindex: ifindex, flags: flags)
    }

    /// A non-negative number of seconds as nanoseconds, exactly for the usual decimal forms.
    private static func secondsToNanos(_ node: JSONNode, at path: JSONPath, _ d: Diagnostics) -> UInt64? {
        guard case .number(let number) = node.kind, let seconds = Double(number.literal), seconds >= 0 else {
            d.report(path, "must be a number of seconds >= 0, got \(node.compact)", at: node)
            return nil
        }
        // Times are 64-bit nanoseconds: 18446744073 s (about 584 years) is the last second they hold.
        guard seconds < 1.8e10 else {
            d.report(path, "too large: at most 18000000000 seconds, got \(node.compact)", at: node)
            return nil
        }
        return UInt64((seconds * 1e9).rounded())
    }
}
