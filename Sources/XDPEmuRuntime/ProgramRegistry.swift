import Synchronization
import XDPEmuCore
import XDPEmuTopology

/// What a program factory gets to build a program for one port.
public struct ProgramContext {
    public let topology: Topology
    public let network: Network
    /// The port the program is attached to.
    public let device: NetDevice
    /// Devmaps by name.
    public let maps: [String: DevMap]
    /// Devices by port name.
    public let ports: [String: NetDevice]
    /// JSON path of the program object, for error messages.
    public let path: String
    /// State shared by the programs of one topology (e.g. one learning table per switch).
    public let shared: SharedProgramState
    /// Set for a devmap entry's egress program (modern profile): `attach` then builds the program for the entry
    /// (`egressProgram`) instead of attaching it to `device`, the entry's target.
    @usableFromInline let egressSlot: EgressProgramSlot?

    public init(
        topology: Topology, network: Network, device: NetDevice, maps: [String: DevMap], ports: [String: NetDevice],
        path: String, shared: SharedProgramState, egress: Bool = false
    ) {
        self.topology = topology
        self.network = network
        self.device = device
        self.maps = maps
        self.ports = ports
        self.path = path
        self.shared = shared
        egressSlot = egress ? EgressProgramSlot() : nil
    }

    /// The egress program `attach` built (egress contexts only).
    public var egressProgram: AttachedProgram? { egressSlot?.program }

    /// The devmap named `name`, or a bad-input error naming the JSON path.
    public func map(_ name: String) throws(RuntimeError) -> DevMap {
        guard let map = maps[name] else { throw .badInput("\(topology.source): \(path).map: no map named \(name)") }
        return map
    }

    /// Attaches `program` to the port and returns its program id. Inlinable, like `Network.attach`, so the poll
    /// loop is specialised for `P` wherever the concrete type is known (see `ProgramRunner`).
    @inlinable @discardableResult
    public func attach<P: XDPProgram>(_ program: P) -> UInt32 {
        guard let egressSlot else { return network.attach(program, to: device) }
        let runner = network.makeEgressProgram(program)
        egressSlot.program = runner
        return runner.programID
    }
}

/// Where `ProgramContext.attach` leaves an egress program.
@usableFromInline
final class EgressProgramSlot {
    @usableFromInline var program: AttachedProgram?
    @usableFromInline init() {}
}

/// Objects the programs of one topology share, by name: a factory that builds programs acting as one (the ports
/// of one switch) stores the first one here and reuses it.
public final class SharedProgramState {
    private var objects: [String: Any] = [:]
    public init() {}

    /// The object stored under `key`, made by `make` the first time.
    public func object<T>(_ key: String, make: () throws(RuntimeError) -> T) throws(RuntimeError) -> T {
        if let existing = objects[key] as? T { return existing }
        let made = try make()
        objects[key] = made
        return made
    }
}

/// A program type of your own: the topology `"type"` that names it and the factory that builds and attaches it.
/// ```swift
/// ProgramRegistration(type: "vlan_redirect") { config, context in
///     context.attach(VLANRedirect(map: try context.map(config["map"]?.stringValue ?? "")))
/// }
/// ```
/// The whole program object of the topology is passed as `config`.
public struct ProgramRegistration: Sendable {
    public let type: String
    public let factory: ProgramRegistry.Factory

    public init(type: String, factory: @escaping ProgramRegistry.Factory) {
        self.type = type
        self.factory = factory
    }
}

/// Maps a topology's program `"type"` to the Swift type that implements it. Built-in types are handled here;
/// your own programs are registered (`ProgramRegistration`) before the topology is loaded, and the topology names
/// them with `"program": {"type": "vlan_redirect", ...}`. An `xdpemu` of your own registers them through
/// `XDPEmuCLI.main(programs:)`.
public enum ProgramRegistry {
    public typealias Factory = @Sendable (JSONValue, ProgramContext) throws(RuntimeError) -> Void

    private static let custom = Mutex<[String: Factory]>([:])

    /// Registers a program type (replacing one of the same name).
    public static func register(_ registration: ProgramRegistration) {
        custom.withLock { $0[registration.type] = registration.factory }
    }

    /// Registers a program type (replacing one of the same name).
    public static func register(type: String, factory: @escaping Factory) {
        register(ProgramRegistration(type: type, factory: factory))
    }

    /// The registered custom type names (passed to the topology loader so it accepts them).
    public static var customTypes: Set<String> { custom.withLock { Set($0.keys) } }

    /// Builds `spec` and attaches it to the context's port.
    public static func attach(_ spec: ProgramSpec, context: ProgramContext) throws(RuntimeError) {
        switch spec {
        case .pass: context.attach(ConstantProgram(.pass))
        case .drop: context.attach(ConstantProgram(.drop))
        case .abort: context.attach(ConstantProgram(.aborted))
        case .returnValue(let value): context.attach(ConstantProgram(XDPAction(rawValue: value)))
        case .custom(let type, let config):
            guard let factory = custom.withLock({ $0[type] }) else {
                throw .badInput("\(context.topology.source): \(context.path).type: unknown program type \(type)")
            }
            try factory(config, context)
        default:
            try BuiltInPrograms.attach(spec, context: context)
        }
    }
}
