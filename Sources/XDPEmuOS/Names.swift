// Validation of the names xdpemu hands to the kernel and to iproute2. Names come from the topology;
// nothing here invents or rewrites one. The rules are the kernel's `dev_valid_name` narrowed to a
// portable character set, plus "no leading '-'" so that no name can be read as an iproute2 option.

/// Why a name was refused.
public struct NameError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What kind of name was checked ("interface name" or "namespace name").
    public let kind: String
    /// The offending name.
    public let name: String
    /// The rule it broke.
    public let reason: String

    public var description: String { "invalid \(kind) \"\(name)\": \(reason)" }
}

/// Linux network interface names (TAPs, dummies...).
public enum InterfaceName {
    /// IFNAMSIZ (16) less the terminating NUL.
    public static let maxLength = 15

    /// Checks `name` against the rules the kernel enforces (`dev_valid_name`): 1...15 bytes, not "." or
    /// "..", no "/", ":" or whitespace; and, stricter, only `[A-Za-z0-9_.-]` and no leading "-".
    ///
    /// - Throws: `NameError` naming the rule that failed.
    public static func validate(_ name: String) throws(NameError) {
        try validateName(name, kind: "interface name", maxLength: maxLength)
    }
}

/// Names of network namespaces created with `ip netns add` (files under /run/netns).
public enum NamespaceName {
    /// NAME_MAX for the bind-mount file under /run/netns.
    public static let maxLength = 255

    /// Checks `name`: 1...255 bytes, not "." or "..", only `[A-Za-z0-9_.-]`, no leading "-".
    ///
    /// - Throws: `NameError` naming the rule that failed.
    public static func validate(_ name: String) throws(NameError) {
        try validateName(name, kind: "namespace name", maxLength: maxLength)
    }
}

/// Names of running live instances (`xdpemu run --name`, else the topology's name): the control socket is
/// STATE_DIR/NAME.sock.
public enum InstanceName {
    /// Short enough for the socket's path under a state directory.
    public static let maxLength = 64

    /// Checks `name`: 1...64 bytes, not "." or "..", only `[A-Za-z0-9_.-]`, no leading "-".
    ///
    /// - Throws: `NameError` naming the rule that failed.
    public static func validate(_ name: String) throws(NameError) {
        try validateName(name, kind: "instance name", maxLength: maxLength)
    }
}

private func validateName(_ name: String, kind: String, maxLength: Int) throws(NameError) {
    func fail(_ reason: String) -> NameError { NameError(kind: kind, name: name, reason: reason) }
    let bytes = Array(name.utf8)
    if bytes.isEmpty {
        throw fail("is empty")
    }
    if bytes.count > maxLength {
        throw fail("is \(bytes.count) bytes long, at most \(maxLength) allowed")
    }
    if name == "." || name == ".." {
        throw fail("\".\" and \"..\" are reserved")
    }
    if bytes[0] == UInt8(ascii: "-") {
        throw fail("must not start with '-' (it would read as a command option)")
    }
    for byte in bytes {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"):
            continue
        case UInt8(ascii: "/"):
            throw fail("must not contain '/'")
        case UInt8(ascii: ":"):
            throw fail("must not contain ':' (reserved for interface aliases)")
        case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"), 0x0b, 0x0c:
            throw fail("must not contain whitespace")
        default:
            throw fail("may contain only letters, digits, '_', '.' and '-'")
        }
    }
}
