import Foundation
import Glibc
import SystemPackage
import XDPEmuCore
import XDPEmuOS
import XDPEmuPcap
import XDPEmuTopology

// Live mode's preflight: everything checked before anything is created (privileges, names, descriptors, the
// traces and the outputs), and the messages that name who holds a name already in use.

extension LiveRun {
    /// Checks, creating nothing: privileges (CAP_NET_ADMIN, CAP_SYS_ADMIN when there are hosts, /dev/net/tun),
    /// every TAP, namespace and stack name, that none of them exists yet, and the `--replay` ports.
    public static func preflight(_ options: LiveOptions) throws(RuntimeError) {
        let topology = options.topology
        let hasHosts = topology.ports.contains { $0.host != nil }
        do {
            try Privileges.check(namespaces: hasHosts)
        } catch {
            let missing = error.missing.map { missing in
                switch missing {
                case .netAdmin: "CAP_NET_ADMIN"
                case .sysAdmin: "CAP_SYS_ADMIN (for the hosts' network namespaces)"
                case .tunDevice: "/dev/net/tun (modprobe tun)"
                }
            }
            let root = error.missing.contains(.tunDevice) ? "" : " (run as root)"
            throw .notPermitted(
                "live mode needs \(missing.joined(separator: " and "))\(root); without privileges, "
                    + "`xdpemu replay` runs traces through the same topology offline")
        }
        try validateInstanceName(options)
        for port in topology.ports {
            func check(_ field: String, _ body: () throws(NameError) -> Void) throws(RuntimeError) {
                do throws(NameError) {
                    try body()
                } catch {
                    throw .badInput("\(topology.source): port \(port.name): \(field): \(error)")
                }
            }
            try check("name") { () throws(NameError) in try InterfaceName.validate(port.name) }
            if let stack = port.stack {
                try check("stack") { () throws(NameError) in try InterfaceName.validate(stack) }
            }
            if let host = port.host {
                try check("host.namespace") { () throws(NameError) in try NamespaceName.validate(host.namespace) }
                try check("host.interface") { () throws(NameError) in try InterfaceName.validate(host.interface) }
                if host.interface == "lo" {
                    throw .badInput(
                        "\(topology.source): port \(port.name): host.interface: \"lo\" is the loopback interface "
                            + "every namespace has; pick another name")
                }
            }
        }
        // A host's TAP is created under a temporary name here, moved into its new namespace and renamed there: its
        // `host.interface` need only be free in that namespace, which is new. The TAPs that stay in this namespace
        // (ports without a host, stacks) need their names free here.
        for port in topology.ports {
            if let host = port.host, NetNamespace.exists(host.namespace) {
                throw .badInput(
                    "\(topology.source): port \(port.name): host.namespace: namespace \(host.namespace) already exists"
                        + Self.owner(namespace: host.namespace, options: options))
            }
            let rootNames = (port.host == nil ? [("name", port.name)] : []) + (port.stack.map { [("stack", $0)] } ?? [])
            for (field, name) in rootNames where if_nametoindex(name) != 0 {
                throw .badInput(
                    "\(topology.source): port \(port.name): \(field): an interface named \(name) already exists in "
                        + "this namespace" + Self.owner(link: name, options: options))
            }
        }
        do throws(DescriptorLimitError) {
            try DescriptorLimit.ensure(DescriptorLimit.openNow() + descriptorsNeeded(options))
        } catch {
            throw .failure("\(topology.source): this run \(error); nothing was created")
        }
        try checkInstanceNameIsFree(options)
        for input in options.replays where topology.port(named: input.port) == nil {
            throw .badInput(
                "--replay \(input.port)=\(input.path): no port named \(input.port) in \(topology.source) "
                    + "(ports: \(topology.ports.map(\.name).joined(separator: ", ")))")
        }
        // Every trace is opened and its header checked before anything is created (and opened again in setup).
        for input in options.replays { _ = try openReplay(input, topology: topology) }
        _ = try outputPlan(options)
    }

    /// Opens a `--replay` trace and checks it: its header, its link type and the MACs given for it.
    static func openReplay(
        _ input: ReplayOptions.Input, topology: Topology
    ) throws(RuntimeError) -> (PcapReader, EthernetFraming?) {
        let reader: PcapReader
        do {
            reader = try PcapReader(path: input.path)
        } catch {
            throw .badInput("--replay \(input.port)=\(input.path): \(error)")
        }
        let framing = EthernetFraming(linkType: reader.linkType, input: input, port: topology.port(named: input.port)!)
        if framing == nil && input.setsMACs {
            throw .badInput(
                "--replay \(input.port)=\(input.path): the trace is Ethernet and its frames keep their MACs "
                    + "(dst= and src= are for traces of other link types)")
        }
        return (reader, framing)
    }

    /// The instance name (`--name`, else the topology's) can name a control socket.
    static func validateInstanceName(_ options: LiveOptions) throws(RuntimeError) {
        do throws(NameError) {
            try InstanceName.validate(options.instance)
        } catch {
            let source = options.instanceName == nil ? "the topology's name (give another with --name)" : "--name"
            throw .badInput("\(options.topology.source): \(source): \(error)")
        }
    }

    /// No running instance has the name (a stale socket of a dead one is fine: it is replaced).
    static func checkInstanceNameIsFree(_ options: LiveOptions) throws(RuntimeError) {
        let name = options.instance
        guard let client = try? ControlClient(instance: name, stateDirectory: options.stateDirectory) else { return }
        let owner =
            if case .ok(let hello)? = try? client.request("hello"), let pid = hello["pid"] {
                "the running xdpemu run \(pid)"
            } else {
                "a running xdpemu"
            }
        throw .badInput(
            "instance name \(name) is in use by \(owner) (control socket \(client.path)); give this run another "
                + "with --name")
    }

    /// The run's outputs (`OutputPlan`), checked: made in preflight, and again just before the captures are
    /// created.
    static func outputPlan(_ options: LiveOptions) throws(RuntimeError) -> OutputPlan {
        var inputs = [OutputPlan.Input(what: "the topology", path: options.topology.source)]
        inputs += options.replays.map { OutputPlan.Input(what: "--replay \($0.port)", path: $0.path) }
        if let path = options.mapEvents?.path { inputs.append(OutputPlan.Input(what: "--map-events", path: path)) }
        return try OutputPlan(
            topology: options.topology, captureDirectory: options.captureDirectory, eventsPath: options.eventsPath,
            statsPath: options.statsPath, inputs: inputs)
    }

    /// The descriptors a run opens beyond those open when it starts: a TAP per port and per stack, the capture
    /// files, the event log and the statistics, two per replayed trace (libpcap may open it again), epoll, the
    /// timerfd, the control socket and its eventfd, the capture directory's lock, and per worker an epoll, an
    /// io_uring and a stop eventfd; and a few at a time during setup (the `ip` pipes, the
    /// namespace and sysctl files, the state file's temporary).
    static func descriptorsNeeded(_ options: LiveOptions) -> Int {
        let ports = options.topology.ports
        var count = ports.count + ports.filter { $0.stack != nil }.count
        if options.captureDirectory != nil {
            count += 2 + ports.map { 1 + ($0.capture.ingress ? 1 : 0) + ($0.capture.egress ? 1 : 0) }.reduce(0, +)
        }
        count += (options.eventsPath == nil ? 0 : 1) + (options.statsPath == nil ? 0 : 1)
        count += 2 * options.replays.count
        count += 5 + 3 * options.workerCount
        return count + 8
    }

    /// Who has a name that is in use, for the message: the running xdpemu whose state file records it, or advice.
    /// `justCreated`: the name was free at preflight; the run that took it records it a moment after creating it,
    /// so the state files are read again for up to a second.
    static func owner(
        namespace: String? = nil, link: String? = nil, options: LiveOptions, justCreated: Bool = false
    ) -> String {
        var found = RunState.liveOwner(namespace: namespace, link: link, directory: options.stateDirectory)
        for _ in 0..<(justCreated ? 10 : 0) where found == nil {
            usleep(100_000)
            found = RunState.liveOwner(namespace: namespace, link: link, directory: options.stateDirectory)
        }
        if justCreated && found == nil {
            return "; another process created it while this run was starting"
        }
        if let owner = found {
            return "; it belongs to the running xdpemu run \(owner.pid) (state file \(owner.path)): stop that run "
                + "first (kill -INT \(owner.pid)) or rename it in the topology"
        }
        if namespace != nil {
            return "; xdpemu creates its own and never adopts one (left by a crashed run? `xdpemu cleanup` removes "
                + "those)"
        }
        return "; xdpemu creates its own TAPs (rename the port or delete the interface)"
    }
}
