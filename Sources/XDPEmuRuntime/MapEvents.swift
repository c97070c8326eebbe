import XDPEmuCore
import XDPEmuTopology

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

    var ifindex: IfIndex? {
        if case .update(let ifindex, _) = operation { return ifindex }
        return nil
    }
}

/// Plays a `MapEventSchedule` against an emulation's maps: the one path, for replay and live mode, that applies
/// each scheduled operation when it is due, through the same devmap calls as any control plane, and logs it.
///
/// Runs between polls only (never inside one), so a redirect in flight sees the old or the new entry.
struct MapEventPlayer {
    /// Called after each operation with the event and its result ("ok" or the errno name).
    typealias Report = (MapEventSchedule.Event, String) -> Void

    private let events: [MapEventSchedule.Event]
    private let maps: [String: DevMap]
    private let log: EventLog?
    /// The time offsets count from (replay: the first frame's timestamp; live: the end of setup).
    private var start: Nanos = 0
    private var index = 0
    /// When the next operation is due; `Nanos.max` when none is left.
    private(set) var nextTime = Nanos.max

    init(_ schedule: MapEventSchedule?, maps: [String: DevMap], log: EventLog?) {
        events = schedule?.events ?? []
        self.maps = maps
        self.log = log
    }

    /// Starts the schedule: offsets count from `start`.
    mutating func start(at start: Nanos) {
        self.start = start
        updateNextTime()
    }

    /// Applies every operation due at or before `time`, in order. Each is logged at the time `logTime` gives for
    /// its due time (replay logs virtual time, live mode the wall clock) and passed to `report`.
    mutating func apply(dueBy time: Nanos, logTime: (Nanos) -> Nanos = { $0 }, report: Report? = nil) {
        defer { updateNextTime() }
        while index < events.count {
            let event = events[index]
            let due = dueTime(event)
            guard due <= time else { return }
            index += 1
            guard let map = maps[event.map] else { continue }
            let result = event.apply(to: map)
            report?(event, result)
            log?.appendMapOperation(
                time: logTime(due), operation: event.operationName, map: event.map,
                mapID: map.id, key: event.key, ifindex: event.ifindex, result: result)
        }
    }

    private mutating func updateNextTime() {
        nextTime = index < events.count ? dueTime(events[index]) : .max
    }

    /// When `event` is due: its offset from the start, saturated at the end of time (an offset too large for the
    /// clock runs after everything else, never before the first frame).
    private func dueTime(_ event: MapEventSchedule.Event) -> Nanos {
        let (due, overflow) = start.addingReportingOverflow(event.offset)
        return overflow ? .max : due
    }
}
