// Network namespaces and link configuration, through iproute2 (`ip`) run with argument arrays, and
// namespace sysctls written by CTapShim on a throwaway thread that joins the namespace with setns(2).
//
// Only what xdpemu (or a test) created is ever touched: every function takes explicit names, there are
// no wildcards, and nothing here enumerates-and-deletes.

import CTapShim
import Glibc
import SystemPackage
import XDPEmuCore

/// Why a namespace or link operation failed.
public enum NetworkConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A name was refused before anything was run.
    case invalidName(NameError)
    /// An MTU outside 68...65535.
    case invalidMTU(Int)
    /// `ip` could not be run or failed; the error carries the command line and stderr.
    case command(CommandError)
    /// Reading or writing a sysctl inside a namespace failed.
    case sysctl(namespace: String, path: String, Errno)

    public var description: String {
        switch self {
        case .invalidName(let error): return error.description
        case .invalidMTU(let mtu): return "invalid MTU \(mtu) (expected 68...65535)"
        case .command(let error): return error.description
        case .sysctl(let namespace, let path, let errno):
            return "cannot access /proc/sys/\(path) in namespace \(namespace): \(errno)"
        }
    }
}

/// Named network namespaces as managed by `ip netns` (bind mounts under /run/netns).
public enum NetNamespace {
    /// Where `ip netns` keeps its bind mounts.
    public static let directory = "/run/netns"

    /// The bind-mount path for `name`, usable with setns(2).
    public static func path(for name: String) -> String { directory + "/" + name }

    /// Creates the namespace with `ip netns add NAME` (fails if it exists).
    public static func create(_ name: String) throws(NetworkConfigError) {
        try checkNamespace(name)
        try ip(["netns", "add", name])
    }

    /// Deletes the namespace with `ip netns delete NAME`. Links created in it are deleted with it (a TAP
    /// whose fd is still open then turns into `IOResult.gone`: close TAPs first).
    public static func delete(_ name: String) throws(NetworkConfigError) {
        try checkNamespace(name)
        try ip(["netns", "delete", name])
    }

    /// Whether /run/netns/NAME exists, by access(2).
    public static func exists(_ name: String) -> Bool {
        access(path(for: name), F_OK) == 0
    }

    /// The names of all namespaces under /run/netns, from `ip netns list` (first column), sorted.
    public static func list() throws(NetworkConfigError) -> [String] {
        let output = try ip(["netns", "list"])
        return output.stdout.split(separator: "\n").compactMap { line in
            line.split(separator: " ").first.map(String.init)
        }.sorted()
    }
}

/// Link and address configuration with `ip [-n NS] ...`. `namespace: nil` means this process's namespace.
public enum Link {
    /// Moves `ifname` into namespace `ns`: `ip link set dev IF netns NS`. Its name stays; its ifindex may
    /// change; addresses and the up state are lost.
    public static func moveToNamespace(_ ifname: String, _ ns: String) throws(NetworkConfigError) {
        try checkInterface(ifname)
        try checkNamespace(ns)
        try ip(["link", "set", "dev", ifname, "netns", ns])
    }

    /// Renames `ifname` to `newName` inside `ns`: `ip -n NS link set dev IF name NEW` (the link must be down).
    public static func rename(_ ifname: String, in ns: String?, to newName: String) throws(NetworkConfigError) {
        try checkInterface(ifname)
        try checkInterface(newName)
        try ip(in: ns, ["link", "set", "dev", ifname, "name", newName])
    }

    /// Sets MAC, MTU and state in one `ip [-n NS] link set dev IF [address MAC] [mtu N] up|down`.
    public static func configure(
        _ ifname: String, in ns: String?, mac: MACAddress? = nil, mtu: Int? = nil, up: Bool
    ) throws(NetworkConfigError) {
        try checkInterface(ifname)
        var args = ["link", "set", "dev", ifname]
        if let mac {
            args += ["address", mac.description]
        }
        if let mtu {
            guard (68...65535).contains(mtu) else { throw .invalidMTU(mtu) }
            args += ["mtu", String(mtu)]
        }
        args.append(up ? "up" : "down")
        try ip(in: ns, args)
    }

    /// Adds an IPv4 or IPv6 address: `ip [-n NS] address add ADDRESS/PREFIX dev IF`, with `nodad` for IPv6 so
    /// the address is usable at once and no duplicate-address probe leaves the host.
    public static func addAddress(
        _ ifname: String, in ns: String?, _ address: InterfaceAddress
    ) throws(NetworkConfigError) {
        try checkInterface(ifname)
        var args = ["address", "add", address.description, "dev", ifname]
        if address.address.family == .ipv6 {
            args.append("nodad")
        }
        try ip(in: ns, args)
    }

    /// Adds a route: `ip [-n NS] [-6] route add TO via GW [dev IF]`. `-6` is passed for an IPv6 gateway, so
    /// `.default` means the IPv6 default then. The destination must be of the gateway's family.
    public static func addRoute(
        in ns: String?, to destination: RouteSpec.Destination, via gateway: IPAddress, dev: String? = nil
    ) throws(NetworkConfigError) {
        var args = gateway.family == .ipv6 ? ["-6"] : []
        switch destination {
        case .default:
            args += ["route", "add", "default"]
        case .prefix(let prefix):
            precondition(prefix.address.family == gateway.family, "route to \(prefix) via \(gateway)")
            args += ["route", "add", prefix.description]
        }
        args += ["via", gateway.description]
        if let dev {
            try checkInterface(dev)
            args += ["dev", dev]
        }
        try ip(in: ns, args)
    }

    /// Adds (or replaces) a permanent neighbour entry: `ip [-n NS] neigh replace ADDR lladdr MAC dev IF nud
    /// permanent`, so the host reaches `address` at `mac` without ARP or neighbour discovery.
    public static func addNeighbor(
        in ns: String?, address: IPAddress, mac: MACAddress, dev ifname: String
    ) throws(NetworkConfigError) {
        try checkInterface(ifname)
        try ip(
            in: ns,
            ["neigh", "replace", address.description, "lladdr", mac.description, "dev", ifname, "nud", "permanent"]
        )
    }

    /// Disables IPv6 on one link of this process's namespace (disable_ipv6=1 for that link only), so it sends
    /// nothing when it comes up. Other links and the namespace defaults are left alone.
    public static func disableIPv6(onLocalLink ifname: String) throws(NetworkConfigError) {
        try checkInterface(ifname)
        try Sysctl.write("net/ipv6/conf/\(ifname)/disable_ipv6", "1")
    }

    /// Deletes a link: `ip [-n NS] link delete dev IF`.
    public static func deleteLink(_ ifname: String, in ns: String?) throws(NetworkConfigError) {
        try checkInterface(ifname)
        try ip(in: ns, ["link", "delete", "dev", ifname])
    }

    /// Whether `ifname` exists: if_nametoindex(3) in this namespace, `ip -n NS link show dev IF` in `ns`
    /// (false also when the namespace itself is gone).
    public static func linkExists(_ ifname: String, in ns: String?) throws(NetworkConfigError) -> Bool {
        try checkInterface(ifname)
        guard let ns else {
            return if_nametoindex(ifname) != 0
        }
        guard NetNamespace.exists(ns) else { return false }
        do throws(CommandError) {
            return try Command.runUnchecked("ip", ["-n", ns, "link", "show", "dev", ifname]).status == 0
        } catch {
            throw .command(error)
        }
    }

    /// Turns IPv6 address autoconfiguration off on `ifname` inside `ns`: accept_ra=0 (no router
    /// solicitations, no SLAAC), autoconf=0, accept_dad=0 (no DAD probe for the link-local address).
    /// The link-local address itself remains, so MLD reports are still sent when the link comes up.
    public static func disableIPv6Autoconf(in ns: String, _ ifname: String) throws(NetworkConfigError) {
        try checkInterface(ifname)
        for key in ["accept_ra", "autoconf", "accept_dad"] {
            try Sysctl.write("net/ipv6/conf/\(ifname)/\(key)", "0", inNamespace: ns)
        }
    }

    /// Disables IPv6 inside `ns`: disable_ipv6=1 for "default" (links created or moved in later) and
    /// "all" (which the kernel propagates to every existing link), and for `ifname` if given. With IPv6
    /// off a link sends nothing at all when it comes up (no router solicitation, no MLD, no DAD).
    public static func disableIPv6(in ns: String, _ ifname: String? = nil) throws(NetworkConfigError) {
        var targets = ["default", "all"]
        if let ifname {
            try checkInterface(ifname)
            targets.append(ifname)
        }
        for target in targets {
            try Sysctl.write("net/ipv6/conf/\(target)/disable_ipv6", "1", inNamespace: ns)
        }
    }
}

/// Sysctls of a named network namespace, read and written without a shell and without `ip netns exec`.
public enum Sysctl {
    /// Writes `value` to /proc/sys/PATH as seen inside `ns` (xdpemu_write_sysctl_in_netns: a new thread
    /// does setns(2) on /run/netns/NS, then open + write). This process's own namespace is untouched.
    public static func write(_ path: String, _ value: String, inNamespace ns: String) throws(NetworkConfigError) {
        try checkNamespace(ns)
        try checkSysctlPath(path, ns)
        let rc = xdpemu_write_sysctl_in_netns(NetNamespace.path(for: ns), path, value)
        if rc < 0 {
            throw .sysctl(namespace: ns, path: path, Errno(rawValue: -rc))
        }
    }

    /// Writes `value` to /proc/sys/PATH of this process's own namespace: open(2) O_WRONLY|O_CLOEXEC, write(2),
    /// close(2). A missing file (IPv6 compiled out, say) is an error like any other.
    public static func write(_ path: String, _ value: String) throws(NetworkConfigError) {
        let here = "<this process>"
        try checkSysctlPath(path, here)
        do throws(Errno) {
            let fd = try retryingEINTROrThrow { open("/proc/sys/" + path, O_WRONLY | O_CLOEXEC) }
            defer { _ = Glibc.close(fd) }
            let bytes = Array(value.utf8)
            let written = try retryingEINTROrThrow {
                bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            }
            if written != bytes.count {
                throw Errno.ioError
            }
        } catch {
            throw .sysctl(namespace: here, path: path, error)
        }
    }

    /// Reads /proc/sys/PATH as seen inside `ns` (xdpemu_read_sysctl_in_netns), without the trailing newline.
    public static func read(_ path: String, inNamespace ns: String) throws(NetworkConfigError) -> String {
        try checkNamespace(ns)
        try checkSysctlPath(path, ns)
        var buffer = [CChar](repeating: 0, count: 4096)
        let rc = buffer.withUnsafeMutableBufferPointer { out in
            xdpemu_read_sysctl_in_netns(NetNamespace.path(for: ns), path, out.baseAddress, out.count)
        }
        if rc < 0 {
            throw .sysctl(namespace: ns, path: path, Errno(rawValue: -rc))
        }
        return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }.trimmingTrailingNewlines()
    }

    private static func checkSysctlPath(_ path: String, _ ns: String) throws(NetworkConfigError) {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        if path.isEmpty || parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) {
            throw .sysctl(namespace: ns, path: path, .invalidArgument)
        }
    }
}

// MARK: - Helpers

func checkInterface(_ name: String) throws(NetworkConfigError) {
    do throws(NameError) {
        try InterfaceName.validate(name)
    } catch {
        throw .invalidName(error)
    }
}

func checkNamespace(_ name: String) throws(NetworkConfigError) {
    do throws(NameError) {
        try NamespaceName.validate(name)
    } catch {
        throw .invalidName(error)
    }
}

@discardableResult
func ip(in ns: String? = nil, _ arguments: [String]) throws(NetworkConfigError) -> CommandOutput {
    var args = arguments
    if let ns {
        try checkNamespace(ns)
        args = ["-n", ns] + args
    }
    do throws(CommandError) {
        return try Command.run("ip", args)
    } catch {
        throw .command(error)
    }
}
