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

    var ifindex: UInt32? {
        if case .update(let ifindex, _) = operation { return ifindex }
        return nil
    }
}
