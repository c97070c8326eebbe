// The eBPF objects a topology's `"type": "ebpf"` programs run: each file read and loaded once, its maps created
// once and shared by every port that runs a program of it (as libbpf shares them per bpf_object). A topology
// map of the same name as an object's map gives its initial contents and must agree with the object's
// definition; a devmap of the object is the topology's devmap of that name (or a new, empty one).

import XDPEmuBPF
import XDPEmuCore
import XDPEmuOS
import XDPEmuTopology

public final class EBPFObjects {
    public let topology: Topology
    /// Loaded objects by path, in the order first used.
    public private(set) var objects: [(path: String, object: LoadedBPFObject)] = []
    /// The devmaps created for objects' devmaps that the topology does not list, by the object's map name.
    public private(set) var createdDevMaps: [(name: String, map: DevMap)] = []

    public init(topology: Topology) { self.topology = topology }

    /// The object at `path`, loaded (and its maps filled from the topology) the first time. `network` and
    /// `devMaps` are nil when only checking (validate): devmaps are then not bound.
    public func object(
        _ path: String, network: Network?, devMaps: [String: DevMap]
    ) throws(RuntimeError) -> LoadedBPFObject {
        if let found = objects.first(where: { $0.path == path }) { return found.object }
        let bytes: [UInt8]
        do {
            bytes = try readRegularFile(path)
        } catch {
            throw .badInput("\(path): cannot read the eBPF object: \(error)")
        }
        let loaded: LoadedBPFObject
        do {
            // One value per CPU of per-CPU maps for every CPU that polls: replay's napi.cpus, live mode's workers.
            let cpus = max(topology.napi.cpus, network?.workers.count ?? 1)
            loaded = try LoadedBPFObject(BPFObject(bytes: bytes), cpus: cpus)
        } catch {
            throw .badInput("\(path): \(error)")
        }
        for map in loaded.maps {
            try fill(map, objectPath: path, network: network, devMaps: devMaps)
        }
        objects.append((path, loaded))
        return loaded
    }

    /// The program `configuration` selects. Instructions a verifier would refuse do not stop it from running
    /// (a frame that reaches one is aborted and reported); `check` lists them.
    public func program(
        _ configuration: EBPFProgramConfiguration, in loaded: LoadedBPFObject, at jsonPath: String
    ) throws(RuntimeError) -> BPFProgramInfo {
        let program: BPFProgramInfo
        switch loaded.program(function: configuration.function, section: configuration.section) {
        case .success(let found): program = found
        case .failure(let error):
            throw .badInput("\(topology.source): \(jsonPath): \(configuration.object): \(error)")
        }
        guard program.isXDP else {
            throw .badInput(
                "\(topology.source): \(jsonPath): \(configuration.object): function \(program.name) is in section "
                    + "\(program.section), not an XDP section (a name beginning with xdp: xdp, xdp/..., xdp.frags)")
        }
        return program
    }

    /// Moves what the programs reported into the event log (`ebpf_fault`, `trace_printk` lines); faults are also
    /// reported on stderr (once per program and instruction), and trace_printk lines too when there is no log.
    public func drainMessages(into log: EventLog?, report: (String) -> Void) {
        for (path, object) in objects {
            for message in object.log.drain() {
                switch message.kind {
                case .fault:
                    report(
                        "\(path): \(message.program) (\(message.place)): \(message.text); the frame is aborted "
                            + "(XDP_ABORTED), reported once per instruction")
                    log?.appendProgramMessage(
                        time: message.time, name: "ebpf_fault",
                        fields: [
                            ("object", path), ("program", message.program), ("at", message.place),
                            ("reason", message.text),
                        ])
                case .note:
                    report("\(path): \(message.program) (\(message.place)): \(message.text); said once per instruction")
                case .print:
                    if let log {
                        log.appendProgramMessage(
                            time: message.time, name: "trace_printk",
                            fields: [("object", path), ("program", message.program), ("text", message.text)])
                    } else {
                        report("\(message.program): trace_printk: \(message.text)")
                    }
                }
            }
        }
    }

    /// Topology maps of eBPF types that no loaded object defines.
    public func unusedTopologyMaps() -> [String] {
        topology.maps.enumerated().compactMap { index, spec in
            guard !spec.type.isDevMap else { return nil }
            let defined = objects.contains { $0.object.map(named: spec.name) != nil }
            return defined
                ? nil
                : "\(topology.source): $.maps[\(index)]: no eBPF object of the topology defines a map named \(spec.name)"
        }
    }

    private func fill(
        _ map: BPFMap, objectPath: String, network: Network?, devMaps: [String: DevMap]
    ) throws(RuntimeError) {
        let definition = map.definition
        let index = topology.maps.firstIndex { $0.name == definition.name }
        let here = index.map { "\(topology.source): $.maps[\($0)]" } ?? ""
        let there = "\(objectPath): map \(definition.name)"
        if let index {
            let spec = topology.maps[index]
            var disagreements: [String] = []
            if spec.type.rawValue != definition.type.description {
                disagreements.append("type \(spec.type.rawValue) against \(definition.type)")
            }
            if spec.maxEntries != definition.maxEntries {
                disagreements.append("max_entries \(spec.maxEntries) against \(definition.maxEntries)")
            }
            if let size = spec.keySize, size != definition.keySize {
                disagreements.append("key_size \(size) against \(definition.keySize)")
            }
            if let size = spec.valueSize, size != definition.valueSize {
                disagreements.append("value_size \(size) against \(definition.valueSize)")
            }
            guard disagreements.isEmpty else {
                throw .badInput(
                    "\(here) and \(there) disagree: " + disagreements.joined(separator: ", ")
                        + " (topology against object)")
            }
            var seen: [[UInt8]: String] = [:]
            for entry in spec.dataEntries {
                let key: [UInt8]
                let value: [UInt8]
                switch entry.key.encoded(size: definition.keySize) {
                case .success(let bytes): key = bytes
                case .failure(let error):
                    throw .badInput("\(topology.source): \(entry.path).key: \(error) (\(there))")
                }
                if let first = seen[key] {
                    throw .badInput("\(topology.source): \(entry.path).key: duplicate key (first at \(first))")
                }
                seen[key] = entry.path
                if let slots = map as? ProgArrayMap {
                    let index = key.reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                    if let problem = slots.setProgram(entry.program, at: index) {
                        throw .badInput("\(topology.source): \(entry.path): \(problem) (\(there))")
                    }
                    continue
                }
                switch entry.value.encoded(size: definition.valueSize) {
                case .success(let bytes): value = bytes
                case .failure(let error):
                    throw .badInput("\(topology.source): \(entry.path).value: \(error) (\(there))")
                }
                let result = map.set(key: key, value: value)
                guard result == 0 else {
                    let name = KernelErrno(rawValue: Int32(-result))?.name ?? "error \(-result)"
                    throw .badInput("\(topology.source): \(entry.path): the update fails with \(name) (\(there))")
                }
            }
        }
        guard let devmap = map as? DevMapReference, let network else { return }
        if let existing = devMaps[definition.name] {
            devmap.devMap = existing
            return
        }
        do {
            // The object's sizes (value_size 8 carries an egress program fd, as modern kernels allow).
            let created = try network.createDevMap(
                maxEntries: definition.maxEntries, keySize: UInt32(definition.keySize),
                valueSize: UInt32(definition.valueSize),
                type: definition.type == .devmapHash ? .hash : .array)
            devmap.devMap = created
            createdDevMaps.append((definition.name, created))
        } catch {
            throw .badInput("\(there): cannot create the devmap: \(error.name)")
        }
    }
}

/// Attaching a `"type": "ebpf"` program to a port.
enum EBPFAttach {
    static func attach(_ configuration: EBPFProgramConfiguration, context: ProgramContext) throws(RuntimeError) {
        let objects = try context.shared.object("ebpf") { () throws(RuntimeError) in
            EBPFObjects(topology: context.topology)
        }
        let loaded = try objects.object(configuration.object, network: context.network, devMaps: context.maps)
        let program = try objects.program(configuration, in: loaded, at: context.path)
        // The CPU that polls the port (an egress program's: its target's), for get_smp_processor_id and per-CPU
        // maps; with several workers (threads), the object's programs run one at a time.
        let workers = context.network.workers.count
        let port = context.topology.ports.firstIndex { $0.name == context.device.name } ?? 0
        let cpu = CPUAssignment.cpus(of: context.topology.ports, cpuCount: workers)[port]
        let machine = BPFMachine(
            loaded: loaded, program: program, budget: configuration.instructionBudget, cpu: cpu)
        machine.fib = fibRoutes(context.topology)
        machine.serialised = workers > 1
        context.attach(EBPFProgram(machine: machine))
    }

    /// bpf_fib_lookup's routes: every host address (to its port, the host's MAC as neighbour when the topology
    /// gives it) and every host subnet (to its port, no neighbour).
    static func fibRoutes(_ topology: Topology) -> [FIBRoute] {
        var routes: [FIBRoute] = []
        for port in topology.ports {
            guard let host = port.host else { continue }
            for address in host.ipv4 + host.ipv6 {
                routes.append(
                    FIBRoute(
                        prefix: address.address, prefixLength: address.address.family.bitWidth, ifindex: port.ifindex,
                        source: port.mac, destination: host.mac))
                routes.append(
                    FIBRoute(
                        prefix: address.address, prefixLength: address.prefixLength, ifindex: port.ifindex,
                        source: port.mac, destination: nil))
            }
        }
        return routes
    }
}

extension EBPFObjects {
    /// Loads every eBPF object `topology` names and checks its programs and maps against the topology, without
    /// building a network (`xdpemu validate`). Every problem, each naming the object, function and instruction;
    /// instructions a verifier would refuse (an unknown helper, a jump outside the code) are listed too, though a
    /// replay still runs such a program and aborts only the frames that reach them.
    public static func check(_ topology: Topology) -> [String] {
        let objects = EBPFObjects(topology: topology)
        var problems: [String] = []
        for (index, port) in topology.ports.enumerated() {
            guard case .ebpf(let configuration) = port.program else { continue }
            let path = "$.ports[\(index)].program"
            do {
                let loaded = try objects.object(configuration.object, network: nil, devMaps: [:])
                let program = try objects.program(configuration, in: loaded, at: path)
                problems += loaded.problems(of: program).map {
                    "\(topology.source): \(path): \(configuration.object): function \(program.name): \($0)"
                }
            } catch {
                problems.append(error.description)
            }
        }
        problems += objects.unusedTopologyMaps()
        return problems
    }

    /// `xdpemu prog show`: the object's programs (name, section, instructions, helpers), maps (name, type,
    /// sizes) and what of them xdpemu does not support.
    public static func describe(objectAt path: String) throws(RuntimeError) -> String {
        let bytes: [UInt8]
        do {
            bytes = try readRegularFile(path)
        } catch {
            throw .badInput("\(path): cannot read the eBPF object: \(error)")
        }
        let object: BPFObject
        do {
            object = try BPFObject(bytes: bytes)
        } catch {
            throw .badInput("\(path): \(error)")
        }
        var lines = ["\(path):", "programs:"]
        var loaded: LoadedBPFObject?
        var mapProblem: String?
        do {
            loaded = try LoadedBPFObject(object, cpus: 1)
        } catch {
            mapProblem = error.description
        }
        for program in object.programs {
            var line = "  \(program.name)  section \(program.section)  \(program.instructionCount) instructions"
            if !program.isXDP { line += "  (not an XDP program: xdpemu runs sections whose names begin with xdp)" }
            lines.append(line)
            guard let loaded else { continue }
            let helpers = loaded.helpers(of: program).map { id in
                HelperID(rawValue: Int64(id)).map { "\($0.name) (\(id))" } ?? "\(id) (not supported)"
            }
            lines.append("    helpers: " + (helpers.isEmpty ? "none" : helpers.joined(separator: ", ")))
            for problem in loaded.problems(of: program) { lines.append("    problem: \(problem)") }
        }
        if object.programs.isEmpty { lines.append("  (none)") }
        lines.append("maps:")
        for map in object.maps {
            var line =
                "  \(map.name)  \(map.type)  key \(map.keySize) bytes  value \(map.valueSize) bytes  "
                + "max_entries \(map.maxEntries)"
            if map.flags != 0 { line += "  flags 0x\(String(map.flags, radix: 16))" }
            if !map.type.isSupported { line += "  (type \(map.type.rawValue) is not supported)" }
            if map.initialValue != nil { line += map.readOnly ? "  (global data, read only)" : "  (global data)" }
            lines.append(line)
        }
        if object.maps.isEmpty { lines.append("  (none)") }
        if let mapProblem { lines.append("problem: \(mapProblem)") }
        return lines.joined(separator: "\n")
    }
}
