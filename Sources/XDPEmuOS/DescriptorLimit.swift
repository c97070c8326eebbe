// The open-file limit (RLIMIT_NOFILE), checked before a live run creates anything.
//
// A live run holds a descriptor per TAP and per capture file for its whole length. Under a low soft limit (the
// usual `ulimit -n 1024`) a large topology would fail part way through setup with EMFILE; so the run counts what
// it needs first, raises the soft limit (an unprivileged process may raise it up to the hard limit), and refuses
// before creating anything if that is still not enough.

import Glibc
import SystemPackage

/// Why the descriptors a run needs are not available.
public struct DescriptorLimitError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Descriptors the run needs, those already open included.
    public let needed: Int
    /// The soft limit after trying to raise it.
    public let soft: Int
    /// The hard limit.
    public let hard: Int

    public var description: String {
        "needs \(needed) open files, but the limit (RLIMIT_NOFILE) is \(soft) (hard limit \(hard)); raise it, for "
            + "example `ulimit -n \(needed)` as root, or use a smaller topology"
    }
}

/// RLIMIT_NOFILE of this process.
public enum DescriptorLimit {
    /// The soft and hard limits (getrlimit(2)).
    public static func current() -> (soft: Int, hard: Int) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return (Int.max, Int.max) }
        return (clamp(limit.rlim_cur), clamp(limit.rlim_max))
    }

    /// How many descriptors this process has open now: the entries of /proc/self/fd (opendir(3) adds one of its
    /// own, not counted).
    public static func openNow() -> Int {
        guard let dir = opendir("/proc/self/fd") else { return 3 }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            if entry.pointee.d_name.0 != CChar(UInt8(ascii: ".")) { count += 1 }
        }
        return max(0, count - 1)
    }

    /// Makes sure `needed` descriptors may be open: if the soft limit is lower, raises it (setrlimit(2)) to twice
    /// `needed`, at most to the hard limit; throws if the limit is still below `needed`.
    public static func ensure(_ needed: Int) throws(DescriptorLimitError) {
        let (soft, hard) = current()
        guard soft < needed else { return }
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        limit.rlim_cur = rlim_t(min(hard, needed * 2))
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let raised = current()
        if raised.soft < needed { throw DescriptorLimitError(needed: needed, soft: raised.soft, hard: raised.hard) }
    }

    private static func clamp(_ value: rlim_t) -> Int { value >= rlim_t(Int.max) ? Int.max : Int(value) }
}
