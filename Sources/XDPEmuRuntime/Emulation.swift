import Foundation
import XDPEmuCore
import XDPEmuTopology

/// A topology made real in the core: a `Network` with a device per port, the devmaps with their initial entries,
/// and each port's program attached. The same object serves replay, live mode and tests; only the wires behind
/// the ports (and the captures) differ.
///
/// This is the one place where a port's tap (`PortTap`: pcap capture) is composed around its directions: egress
/// in its transmitter, pass in its stack, drops in the worker's observer, ingress in the scheduler
/// (`makeScheduler`), for replay and live mode alike.
public final class Emulation {
    public struct Port {
        public let spec: PortSpec
        public let device: NetDevice
        /// What sees the port's frames in each direction (capture), composed around the port here, once.
        public let tap: PortTap?
    }

    public let topology: Topology
    public let network: Network
    /// Ports in topology order.
    public let ports: [Port]
    /// Devmaps by name.
    public let maps: [String: DevMap]
    /// Map names by map id, in creation order.
    public let mapNames: [(id: UInt32, name: String)]
    /// The eBPF objects the ports' programs run (none when no port has an `"ebpf"` program).
    public let ebpfObjects: EBPFObjects

    /// What to put behind each port.
    public struct Wiring {
        /// The far side of a port's transmit (nil: none, transmitted frames leave the emulator).
        public var wire: (PortSpec) -> (any Wire)?
        /// Where XDP_PASS frames of a port go besides counting (nil: nowhere).
        public var stackWire: (PortSpec) -> (any Wire)?
        /// With several workers: the wire through which worker `cpu` transmits to a port (each its own), instead of
        /// `wire`.
        public var workerWire: ((PortSpec, _ cpu: Int) -> (any Wire)?)?
        public init(
            wire: @escaping (PortSpec) -> (any Wire)?,
            stackWire: @escaping (PortSpec) -> (any Wire)? = { _ in nil },
            workerWire: ((PortSpec, _ cpu: Int) -> (any Wire)?)? = nil
        ) {
            self.wire = wire
            self.stackWire = stackWire
            self.workerWire = workerWire
        }
        /// Replay: transmitted frames leave the emulator, passed frames are only counted and captured.
        public static var offline: Wiring { Wiring(wire: { _ in nil }) }
    }

    /// Builds the emulation. `captures` (optional) receives each port's records (`PcapCapture`).
    /// - Parameters:
    ///   - workers: simulated CPUs (replay uses one).
    ///   - sizing: frame buffers and pool; nil sizes them for frames the caller injects (`FrameSizing`).
    ///   - outputLock: given when workers run on threads of their own: every port's capture is entered under it.
    public init(
        topology: Topology, wiring: Wiring = .offline, captures: CaptureSet? = nil, workers: Int = 1,
        sizing: FrameSizing? = nil, outputLock: OutputLock? = nil
    ) throws(RuntimeError) {
        self.topology = topology
        let napi = topology.napi
        let sizing = sizing ?? FrameSizing(topology: topology, source: .injected)
        network = Network(
            semantics: topology.semantics, workers: workers, poolCapacity: sizing.poolCapacity,
            bufferSize: sizing.bufferSize,
            maxBudget: max(napi.budget, 64))
        var ports = [Port]()
        do {
            for spec in topology.ports {
                var tap: PortTap? = captures.map { PcapCapture(port: spec.name, in: $0) }
                if let lock = outputLock, let capture = tap { tap = SerializedPortTap(capture, lock: lock) }
                var transmitter: (any XDPTransmitter)?
                if spec.xmit, let workerWire = wiring.workerWire {
                    transmitter = PerCPUTransmitter(
                        (0..<workers).map { makePortTransmitter(wire: workerWire(spec, $0), tap: tap) })
                } else if spec.xmit {
                    transmitter = makePortTransmitter(wire: wiring.wire(spec), tap: tap)
                }
                let stack = PassSink(wire: wiring.stackWire(spec), tap: tap)
                let device = try network.addDevice(
                    name: spec.name, ifindex: spec.ifindex, mac: spec.mac,
                    mtu: UInt32(spec.mtu), up: spec.up, transmitter: transmitter, stack: stack,
                    rxHeadroom: spec.headroom, ringSize: napi.ringSize)
                ports.append(Port(spec: spec, device: device, tap: tap))
            }
        } catch {
            throw .badInput("\(topology.source): $.ports: \(error)")
        }
        self.ports = ports
        var maps = [String: DevMap]()
        var names = [(UInt32, String)]()
        let shared = SharedProgramState()
        let devices = Dictionary(uniqueKeysWithValues: ports.map { ($0.spec.name, $0.device) })
        for (index, spec) in topology.maps.enumerated() where spec.type.isDevMap {
            let map: DevMap
            do {
                // Modern maps carry a program fd beside the ifindex (value_size 8), as egress programs need.
                map = try network.createDevMap(
                    maxEntries: spec.maxEntries, valueSize: topology.semantics == .modern ? 8 : 4,
                    type: spec.type == .devmapHash ? .hash : .array)
            } catch {
                throw .badInput("\(topology.source): $.maps[\(index)]: cannot create the devmap: \(error.name)")
            }
            for (entryIndex, entry) in spec.entries.enumerated() {
                guard let port = ports.first(where: { $0.spec.name == entry.port }) else {
                    throw .badInput(
                        "\(topology.source): $.maps[\(index)].entries[\(entryIndex)]: no port \(entry.port)")
                }
                var egress: AttachedProgram?
                if let program = entry.program {
                    let context = ProgramContext(
                        topology: topology, network: network, device: port.device, maps: maps, ports: devices,
                        path: "$.maps[\(index)].entries[\(entryIndex)].program", shared: shared, egress: true)
                    try ProgramRegistry.attach(program, context: context)
                    egress = context.egressProgram
                }
                do {
                    try map.update(key: entry.key, ifindex: port.device.ifindex, program: egress)
                } catch {
                    throw .badInput("\(topology.source): $.maps[\(index)].entries[\(entryIndex)]: \(error.name)")
                }
            }
            maps[spec.name] = map
            names.append((map.id, spec.name))
        }
        for (index, port) in ports.enumerated() {
            let context = ProgramContext(
                topology: topology, network: network, device: port.device, maps: maps,
                ports: devices, path: "$.ports[\(index)].program", shared: shared)
            try ProgramRegistry.attach(port.spec.program, context: context)
        }
        ebpfObjects = try shared.object("ebpf") { () throws(RuntimeError) in EBPFObjects(topology: topology) }
        if let unused = ebpfObjects.unusedTopologyMaps().first { throw .badInput(unused) }
        // Devmaps an eBPF object defines and the topology does not list count, and are named, like the others.
        for (name, map) in ebpfObjects.createdDevMaps where maps[name] == nil {
            maps[name] = map
            names.append((map.id, name))
        }
        self.maps = maps
        mapNames = names
        if let observer = PortTapDrops(ports: ports.map { ($0.device, $0.tap) }) {
            for worker in network.workers { worker.dropObserver = observer }
        }
    }

    /// The NAPI scheduler of `worker` over every port, with each port's ingress tap, for `budget`, `pollDelay`
    /// and `frameCost`.
    public func makeScheduler(worker: Worker, budget: Int, pollDelay: Nanos, frameCost: Nanos) -> NAPIScheduler {
        NAPIScheduler(
            worker: worker, devices: ports.map(\.device), ingressTaps: ports.map(\.tap), budget: budget,
            pollDelay: pollDelay, frameCost: frameCost)
    }

    /// The port named `name`.
    public func port(named name: String) -> Port? { ports.first { $0.spec.name == name } }
}
