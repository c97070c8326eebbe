// What xdpemu needs from the system before it creates anything.

import Glibc

/// Something the process lacks to create TAPs or namespaces.
public enum MissingPrivilege: Sendable, Equatable, CustomStringConvertible {
    /// CAP_NET_ADMIN (capability 12): TUNSETIFF, link and address configuration.
    case netAdmin
    /// CAP_SYS_ADMIN (capability 21): `ip netns add` (unshare + bind mount) and setns(2).
    case sysAdmin
    /// The TUN/TAP character device is absent.
    case tunDevice

    public var description: String {
        switch self {
        case .netAdmin: return "needs CAP_NET_ADMIN (run as root)"
        case .sysAdmin: return "needs CAP_SYS_ADMIN for network namespaces (run as root)"
        case .tunDevice: return "/dev/net/tun is missing (modprobe tun)"
        }
    }
}

/// The privileges check failed; `missing` lists every missing piece, in a fixed order.
public struct PrivilegeError: Error, Sendable, Equatable, CustomStringConvertible {
    public let missing: [MissingPrivilege]
    public init(missing: [MissingPrivilege]) { self.missing = missing }
    public var description: String { missing.map(\.description).joined(separator: "; ") }
}

/// Checks capabilities and devices before a run starts.
public enum Privileges {
    static let capNetAdmin = 12
    static let capSysAdmin = 21

    /// Checks for CAP_NET_ADMIN, CAP_SYS_ADMIN (only if `namespaces`), and /dev/net/tun (stat(2): a
    /// character device). Capabilities come from the CapEff line of /proc/self/status, which is right also
    /// for a root whose capabilities were dropped; if it cannot be read, effective uid 0 (geteuid(2)) counts
    /// as having all of them.
    ///
    /// - Throws: `PrivilegeError` naming everything that is missing.
    public static func check(namespaces: Bool = true) throws(PrivilegeError) {
        var missing: [MissingPrivilege] = []
        let caps = effectiveCapabilities() ?? (geteuid() == 0 ? UInt64.max : 0)
        if caps & (1 << capNetAdmin) == 0 {
            missing.append(.netAdmin)
        }
        if namespaces && caps & (1 << capSysAdmin) == 0 {
            missing.append(.sysAdmin)
        }
        var info = stat()
        if stat("/dev/net/tun", &info) != 0 || (info.st_mode & S_IFMT) != S_IFCHR {
            missing.append(.tunDevice)
        }
        if !missing.isEmpty {
            throw PrivilegeError(missing: missing)
        }
    }

    /// The CapEff bit mask from /proc/self/status, or `nil` if it cannot be read.
    public static func effectiveCapabilities() -> UInt64? {
        guard let bytes = try? readRegularFile("/proc/self/status") else { return nil }
        let status = String(decoding: bytes, as: UTF8.self)
        for line in status.split(separator: "\n") where line.hasPrefix("CapEff:") {
            let hex = line.dropFirst("CapEff:".count).trimming(" \t")
            return UInt64(hex, radix: 16)
        }
        return nil
    }
}

extension Substring {
    func trimming(_ set: String) -> String {
        var result = self
        while let first = result.first, set.contains(first) { result.removeFirst() }
        while let last = result.last, set.contains(last) { result.removeLast() }
        return String(result)
    }
}
