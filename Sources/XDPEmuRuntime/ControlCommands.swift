import Foundation
import Glibc
import XDPEmuCore
import XDPEmuOS
import XDPEmuTopology

/// What the control requests of a live instance do (ControlProtocol.swift), on the control server's thread,
/// through the control plane's own calls: the devmap's update, delete, lookup and get-next-key (under the
/// network's control lock, with the kernel's errno answers), a device's atomic link state, and counters read as
/// they stand (a snapshot taken while workers run may be a few frames behind in places).
final class ControlCommands: @unchecked Sendable {
    // @unchecked Sendable: fixed after init; what it reaches is the control plane's thread-safe API.
    let instance: String
    let emulation: Emulation
    /// The run's counters now (the loops' ingress and poll counts included).
    let snapshot: () -> RunStatistics
    /// The workers (simulated CPUs) the run polls with.
    let workers: Int

    init(instance: String, emulation: Emulation, workers: Int, snapshot: @escaping () -> RunStatistics) {
        self.instance = instance
        self.emulation = emulation
        self.workers = workers
        self.snapshot = snapshot
    }

    struct Answer {
        var response: [UInt8]
        /// The client now follows the events.
        var follow = false
    }

    /// The answer to one request line.
    func respond(to line: ArraySlice<UInt8>) -> Answer {
        switch ControlProtocol.parse(line) {
        case .failure(let failure):
            return Answer(response: ControlProtocol.failure(failure))
        case .success(let request):
            do throws(ControlFailure) {
                let op = try string(request, "op")
                switch op {
                case "hello": return Answer(response: ControlProtocol.success(hello()))
                case "map.update", "map.delete", "map.lookup", "map.next", "map.dump":
                    return Answer(response: ControlProtocol.success(try mapOperation(op, request)))
                case "stats": return Answer(response: ControlProtocol.success(stats()))
                case "ports": return Answer(response: ControlProtocol.success(ports()))
                case "port.set": return Answer(response: ControlProtocol.success(try setPort(request)))
                case "events": return Answer(response: ControlProtocol.success(), follow: true)
                default:
                    throw .error(
                        "unknown op \(jsonString(op)) (ops: hello, map.update, map.delete, map.lookup, map.next, "
                            + "map.dump, stats, ports, port.set, events)")
                }
            } catch {
                return Answer(response: ControlProtocol.failure(error))
            }
        }
    }

    // MARK: Requests

    private func hello() -> String {
        let maps = emulation.mapNames.map { jsonString($0.name) }.joined(separator: ",")
        return ",\"instance\":\(jsonString(instance)),\"pid\":\(getpid()),"
            + "\"topology\":\(jsonString(emulation.topology.source)),\"workers\":\(workers),"
            + "\"ports\":\(emulation.ports.count),\"maps\":[\(maps)]"
    }

    private func mapOperation(_ op: String, _ request: [String: Any]) throws(ControlFailure) -> String {
        let name = try string(request, "map")
        guard let map = emulation.maps[name] else {
            let known = emulation.mapNames.map(\.name).joined(separator: ", ")
            throw .error("unknown map \(jsonString(name)) (maps: \(known.isEmpty ? "none" : known))")
        }
        let maxKey = UInt64(UInt32.max)
        switch op {
        case "map.update":
            let key = MapKey(UInt32(try integer(request, "key", max: maxKey)))
            let flags = try updateFlags(request["flags"])
            let ifindex = try device(request["device"])
            try kernel { () throws(KernelErrno) in try map.update(key: key, ifindex: ifindex, flags: flags) }
            return ""
        case "map.delete":
            let key = MapKey(UInt32(try integer(request, "key", max: maxKey)))
            try kernel { () throws(KernelErrno) in try map.delete(key: key) }
            return ""
        case "map.lookup":
            let key = MapKey(UInt32(try integer(request, "key", max: maxKey)))
            let ifindex = try kernel { () throws(KernelErrno) in try map.lookup(key: key) }
            return ",\"ifindex\":\(ifindex.rawValue),\"device\":\(deviceName(ifindex))"
        case "map.next":
            let key =
                request["key"] == nil || request["key"] is NSNull
                ? nil : MapKey(UInt32(try integer(request, "key", max: maxKey)))
            return ",\"key\":\(try kernel { () throws(KernelErrno) in try map.nextKey(after: key) }.rawValue)"
        default:
            return dump(map)
        }
    }

    /// A devmap call; its errno becomes the answer's `errno`.
    private func kernel<T>(_ body: () throws(KernelErrno) -> T) throws(ControlFailure) -> T {
        do {
            return try body()
        } catch {
            throw .errno(error.name)
        }
    }

    /// Every non-empty slot with its device and the key's transmit counters (over every entry it has held).
    private func dump(_ map: DevMap) -> String {
        let counters = map.statistics()
        var entries = [String]()
        for key in 0..<map.maxEntries {
            guard let device = map.device(at: MapKey(key)) else { continue }
            let s = counters[MapKey(key)] ?? MapEntryStatistics()
            entries.append(
                "{\"key\":\(key),\"ifindex\":\(device.ifindex.rawValue),\"device\":\(jsonString(device.name)),"
                    + "\"sent\":\(s.sent),\"drops\":\(s.drops),\"flushes\":\(s.flushes),"
                    + "\"average_bulk\":\(formatDouble(s.averageBulk))}")
        }
        return ",\"max_entries\":\(map.maxEntries),\"entries\":[\(entries.joined(separator: ","))]"
    }

    private func stats() -> String {
        let statistics = snapshot()
        let json = statistics.json.split(separator: "\n").joined()
        return ",\"time_ns\":\(MonotonicClock.now()),\"stats\":\(json),\"table\":\(jsonString(statistics.table))"
    }

    private func ports() -> String {
        let entries = emulation.ports.map { port in
            let device = port.device
            let host = port.spec.host.map { jsonString($0.namespace) } ?? "null"
            return "{\"name\":\(jsonString(port.spec.name)),\"ifindex\":\(device.ifindex.rawValue),"
                + "\"mtu\":\(device.mtu),\"up\":\(device.isUp),\"registered\":\(device.isRegistered),"
                + "\"host\":\(host)}"
        }
        return ",\"ports\":[\(entries.joined(separator: ","))]"
    }

    /// Sets a port's emulated link state: up/down (the devmap's ENETDOWN check) and MTU (its EMSGSIZE check).
    private func setPort(_ request: [String: Any]) throws(ControlFailure) -> String {
        let name = try string(request, "port")
        guard let port = emulation.port(named: name) else {
            throw .error("unknown port \(jsonString(name)) (ports: \(portList))")
        }
        var up: Bool?
        if let value = request["up"] {
            guard let flag = value as? Bool else { throw .error("\"up\" must be true or false") }
            up = flag
        }
        var mtu: UInt32?
        if request["mtu"] != nil {
            let value = try integer(request, "mtu", max: UInt64(PortSpec.mtuRange.upperBound))
            guard PortSpec.mtuRange.contains(Int(value)) else {
                throw .error(
                    "mtu \(value) is out of range (\(PortSpec.mtuRange.lowerBound)...\(PortSpec.mtuRange.upperBound))")
            }
            mtu = UInt32(value)
        }
        guard up != nil || mtu != nil else { throw .error("port.set needs \"up\" or \"mtu\"") }
        if let mtu { port.device.mtu = mtu }
        if let up { port.device.isUp = up }
        return ",\"mtu\":\(port.device.mtu),\"up\":\(port.device.isUp)"
    }

    // MARK: Fields

    private var portList: String { emulation.ports.map(\.spec.name).joined(separator: ", ") }

    private func string(_ request: [String: Any], _ field: String) throws(ControlFailure) -> String {
        guard let value = request[field] else { throw .error("missing field \(jsonString(field))") }
        guard let text = value as? String else { throw .error("\(jsonString(field)) must be a string") }
        return text
    }

    private func integer(_ request: [String: Any], _ field: String, max: UInt64) throws(ControlFailure) -> UInt64 {
        guard let value = request[field] else { throw .error("missing field \(jsonString(field))") }
        guard let number = value as? NSNumber, let integer = UInt64("\(number)"), integer <= max
        else {
            throw .error("\(jsonString(field)) must be an integer 0...\(max), not \(value)")
        }
        return integer
    }

    /// A device given by port name or numeric ifindex (0: none, which empties the slot); an ifindex nothing has
    /// is left to the devmap, which answers EINVAL as the kernel does.
    private func device(_ value: Any?) throws(ControlFailure) -> IfIndex {
        guard let value else { throw .error("missing field \"device\"") }
        if let name = value as? String {
            guard let port = emulation.port(named: name) else {
                throw .error("unknown port \(jsonString(name)) (ports: \(portList))")
            }
            return port.device.ifindex
        }
        guard let number = value as? NSNumber, let ifindex = UInt32("\(number)") else {
            throw .error("\"device\" must be a port name or an ifindex")
        }
        return IfIndex(ifindex)
    }

    private func updateFlags(_ value: Any?) throws(ControlFailure) -> UInt64 {
        switch value {
        case nil: return UpdateFlag.any.rawValue
        case let name as String:
            switch name {
            case "any": return UpdateFlag.any.rawValue
            case "noexist": return UpdateFlag.noExist.rawValue
            case "exist": return UpdateFlag.exist.rawValue
            default: throw .error("\"flags\" must be any, noexist, exist or a number")
            }
        case let number as NSNumber:
            guard let flags = UInt64("\(number)") else {
                throw .error("\"flags\" must be any, noexist, exist or a number")
            }
            return flags
        default: throw .error("\"flags\" must be any, noexist, exist or a number")
        }
    }

    private func deviceName(_ ifindex: IfIndex) -> String {
        emulation.ports.first { $0.device.ifindex == ifindex }.map { jsonString($0.spec.name) } ?? "null"
    }
}
