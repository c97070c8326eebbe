// Shared helpers for the OS-layer tests.
//
// Tests that need root, /dev/net/tun and namespaces are gated with `.enabled(if: SystemAccess.available)`
// and so are skipped, with the reason, on machines without them. Everything a test creates carries a
// name from `UniqueName.next()` ("xdpt<pid%10000><n>") and is registered with a `Leftovers` that deletes it
// at the end of the test, also when the test fails.

import Foundation
import Glibc
import Synchronization
import Testing
import XDPEmuOS

enum SystemAccess {
    /// Root-equivalent capabilities, /dev/net/tun and `ip`.
    static let available: Bool = {
        do {
            try Privileges.check(namespaces: true)
            _ = try Command.locate("ip")
            return true
        } catch {
            print("XDPEmuOSTests: skipping system tests: \(error)")
            return false
        }
    }()

    static let reason: Comment = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN), /dev/net/tun and iproute2"
}

enum UniqueName {
    private static let counter = Atomic<Int>(0)

    /// "xdpt" + pid % 10000 + a per-process counter: at most 15 bytes, never reused within a run.
    static func next() -> String {
        let n = counter.add(1, ordering: .relaxed).newValue
        return "xdpt\(getpid() % 10000)\(n)"
    }
}

/// Deletes the namespaces and links a test created, in reverse order, when the test ends.
final class Leftovers {
    private var namespaces: [String] = []
    private var links: [(String, String?)] = []

    func namespace(_ name: String) -> String {
        namespaces.append(name)
        return name
    }

    func link(_ name: String, in ns: String? = nil) -> String {
        links.append((name, ns))
        return name
    }

    deinit {
        for (name, ns) in links.reversed() where (try? Link.linkExists(name, in: ns)) == true {
            try? Link.deleteLink(name, in: ns)
        }
        for ns in namespaces.reversed() where NetNamespace.exists(ns) {
            try? NetNamespace.delete(ns)
        }
    }
}

/// A fresh directory under /tmp, removed (with its files) at the end of the test.
final class TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array("/tmp/xdpemu-test-XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw POSIXError(.EIO) }
        path = template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Whether /sys/class/net/NAME exists (links of this process's namespace).
func sysfsHasLink(_ name: String) -> Bool {
    access("/sys/class/net/\(name)", F_OK) == 0
}

/// Adds a standalone link that, unlike a non-persistent TAP, outlives its creator: a dummy, or where the
/// kernel lacks the dummy driver an ifb, or a bridge.
func addStandaloneLink(_ name: String, in ns: String? = nil) throws {
    let prefix = ns.map { ["-n", $0] } ?? []
    var lastError: Error?
    for kind in ["dummy", "ifb", "bridge"] {
        do {
            try Command.run("ip", prefix + ["link", "add", name, "type", kind])
            return
        } catch {
            lastError = error
        }
    }
    throw lastError!
}
