// One emulated host: a network namespace holding one TAP, configured in an order that keeps the wire quiet.
//
// The order matters. A TAP that comes up with IPv6 enabled immediately sends router solicitations, MLD
// reports and DAD probes, which would show up as stray frames in the emulator and in captures. So:
//   1. `ip netns add NS` (recorded in the run state at once: the namespace outlives a crash)
//   2. create the TAP in our namespace under a free temporary name (we keep the fd: the datapath reads and writes
//      it), so the host's interface name need only be free inside NS: "eth0" works though our namespace has one
//   3. move it into NS and rename it there to the host's interface name
//   4. set MAC and MTU, still down
//   5. IPv6: off entirely if the host has no IPv6 address and no autoconf; autoconf/RA/DAD off if it has
//      addresses but no autoconf; untouched if autoconf is asked for
//   6. add addresses (IPv6 with nodad)   7. `lo` and the TAP up   8. routes
// Teardown is the reverse, and closes the TAP fd before deleting the namespace: deleting a namespace while
// the fd is open deletes the TAP under it and leaves the fd in permanent error (`IOResult.gone`).

import Glibc
import Synchronization
import SystemPackage
import XDPEmuCore

/// Why a host could not be set up; everything done so far has been undone.
public enum HostSetupError: Error, Sendable, CustomStringConvertible {
    /// The namespace exists already; xdpemu never adopts what it did not create.
    case namespaceExists(String)
    /// The TAP could not be created.
    case tap(TapError)
    /// A namespace, link or address step failed.
    case network(NetworkConfigError)
    /// The run state could not be written.
    case runState(RunStateError)

    public var description: String {
        switch self {
        case .namespaceExists(let name): return "namespace \(name) already exists (remove it or pick another name)"
        case .tap(let error): return error.description
        case .network(let error): return error.description
        case .runState(let error): return error.description
        }
    }
}

/// Sets up and tears down one `HostSpec`. Owns the host's `TapDevice`.
public final class HostSetup {
    /// The host this sets up.
    public let spec: HostSpec
    /// The host's TAP, open after `setUp` and until `teardown`.
    public private(set) var tap: TapDevice?
    private let runState: RunState?
    private var createdNamespace = false
    /// The TAP's name and namespace now (nil: ours), as the run state records it.
    private var tapName: String?
    private var tapNamespace: String?

    /// Prepares to set up `spec`; records what it creates in `runState` if given.
    public init(spec: HostSpec, runState: RunState? = nil) {
        self.spec = spec
        self.runState = runState
    }

    deinit {
        teardown()
    }

    /// Performs the ordered steps in the file header and returns the TAP, whose fd the datapath uses.
    /// On failure undoes what it did and throws.
    @discardableResult
    public func setUp(virtioNetHeader: Bool = false) throws(HostSetupError) -> TapDevice {
        precondition(tap == nil && !createdNamespace, "HostSetup.setUp called twice for \(spec.namespace)")
        do throws(HostSetupError) {
            return try performSetUp(virtioNetHeader: virtioNetHeader)
        } catch {
            teardown()
            throw error
        }
    }

    private func performSetUp(virtioNetHeader: Bool) throws(HostSetupError) -> TapDevice {
        let ns = spec.namespace
        let ifname = spec.interface
        try network { () throws(NetworkConfigError) in
            try checkNamespace(ns)
            try checkInterface(ifname)
        }
        if NetNamespace.exists(ns) {
            throw .namespaceExists(ns)
        }
        do throws(NetworkConfigError) {
            try NetNamespace.create(ns)
        } catch {
            // Another process created it since the check (two runs of one topology started together).
            throw NetNamespace.exists(ns) ? .namespaceExists(ns) : .network(error)
        }
        createdNamespace = true
        try state { () throws(RunStateError) in try runState?.recordNamespace(ns) }

        let device = try createTemporaryTap(virtioNetHeader: virtioNetHeader)
        tap = device
        tapName = device.name
        try state { () throws(RunStateError) in try runState?.recordTap(device.name, namespace: nil) }

        try network { () throws(NetworkConfigError) in try Link.moveToNamespace(device.name, ns) }
        tapNamespace = ns
        try state { () throws(RunStateError) in try runState?.recordTap(device.name, namespace: ns) }
        try network { () throws(NetworkConfigError) in try Link.rename(device.name, in: ns, to: ifname) }
        let temporary = device.name
        device.renamed(to: ifname)
        tapName = ifname
        try state { () throws(RunStateError) in
            try runState?.recordTap(ifname, namespace: ns, replacing: temporary)
        }

        let spec = self.spec
        try network { () throws(NetworkConfigError) in
            try Link.configure(ifname, in: ns, mac: spec.mac, mtu: spec.mtu, up: false)
            if !spec.ipv6Autoconf {
                if spec.ipv6.isEmpty {
                    try Link.disableIPv6(in: ns, ifname)
                } else {
                    try Link.disableIPv6Autoconf(in: ns, ifname)
                }
            }
            for address in spec.ipv4 + spec.ipv6 {
                try Link.addAddress(ifname, in: ns, address)
            }
            try Link.configure("lo", in: ns, up: true)
            try Link.configure(ifname, in: ns, up: true)
            for route in spec.routes {
                try Link.addRoute(in: ns, to: route.to, via: route.via)
            }
        }
        return device
    }

    /// A TAP in this namespace under a free temporary name, "xdpe" + pid + "-" + a counter (at most 15 bytes); a
    /// name some other interface has is skipped.
    private func createTemporaryTap(virtioNetHeader: Bool) throws(HostSetupError) -> TapDevice {
        var lastError: TapError?
        for _ in 0..<8 {
            let name = "xdpe\(getpid())-\(HostSetup.temporaryNames.add(1, ordering: .relaxed).newValue % 1000)"
            do throws(TapError) {
                return try TapDevice(name: name, virtioNetHeader: virtioNetHeader)
            } catch {
                guard case .nameInUse = error else { throw .tap(error) }
                lastError = error
            }
        }
        throw .tap(lastError!)
    }

    private static let temporaryNames = Atomic<Int>(0)

    /// Undoes `setUp`: closes the TAP fd (which removes the TAP), then deletes the namespace if this setup
    /// created it, and forgets both in the run state. Safe to call more than once and after a failed
    /// `setUp`. Returns the errors met (teardown goes on past them).
    @discardableResult
    public func teardown() -> [Error] {
        var errors: [Error] = []
        if let tap {
            tap.close()
            self.tap = nil
            do throws(RunStateError) {
                try runState?.forgetTap(tapName ?? tap.name, namespace: tapNamespace)
            } catch {
                errors.append(error)
            }
            tapName = nil
            tapNamespace = nil
        }
        if createdNamespace {
            do throws(NetworkConfigError) {
                if NetNamespace.exists(spec.namespace) {
                    try NetNamespace.delete(spec.namespace)
                }
                createdNamespace = false
            } catch {
                errors.append(error)
            }
            if !createdNamespace {
                do throws(RunStateError) {
                    try runState?.forgetNamespace(spec.namespace)
                } catch {
                    errors.append(error)
                }
            }
        }
        return errors
    }

    private func network(_ body: () throws(NetworkConfigError) -> Void) throws(HostSetupError) {
        do throws(NetworkConfigError) {
            try body()
        } catch {
            throw .network(error)
        }
    }

    private func state(_ body: () throws(RunStateError) -> Void) throws(HostSetupError) {
        do throws(RunStateError) {
            try body()
        } catch {
            throw .runState(error)
        }
    }
}
