// One emulated host: a network namespace holding one TAP, configured in an order that keeps the wire quiet.
//
// The order matters. A TAP that comes up with IPv6 enabled immediately sends router solicitations, MLD
// reports and DAD probes, which would show up as stray frames in the emulator and in captures. So:
//   1. `ip netns add NS` (recorded in the run state at once: the namespace outlives a crash)
//   2. create the TAP in our namespace (we keep the fd: the datapath reads and writes it)
//   3. move it into NS            4. set MAC and MTU, still down
//   5. IPv6: off entirely if the host has no IPv6 address and no autoconf; autoconf/RA/DAD off if it has
//      addresses but no autoconf; untouched if autoconf is asked for
//   6. add addresses (IPv6 with nodad)   7. `lo` and the TAP up   8. routes
// Teardown is the reverse, and closes the TAP fd before deleting the namespace: deleting a namespace while
// the fd is open deletes the TAP under it and leaves the fd in permanent error (`IOResult.gone`).

import Glibc
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
        try network { () throws(NetworkConfigError) in try NetNamespace.create(ns) }
        createdNamespace = true
        try state { () throws(RunStateError) in try runState?.recordNamespace(ns) }

        let device: TapDevice
        do throws(TapError) {
            device = try TapDevice(name: ifname, virtioNetHeader: virtioNetHeader)
        } catch {
            throw .tap(error)
        }
        tap = device
        try state { () throws(RunStateError) in try runState?.recordTap(ifname, namespace: nil) }

        try network { () throws(NetworkConfigError) in try Link.moveToNamespace(ifname, ns) }
        try state { () throws(RunStateError) in try runState?.recordTap(ifname, namespace: ns) }

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
                try runState?.forgetTap(spec.interface)
            } catch {
                errors.append(error)
            }
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
