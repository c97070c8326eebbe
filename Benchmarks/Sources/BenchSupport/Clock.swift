#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The benchmark's clocks (the core never reads one).
public enum BenchClock {
    /// `clock_gettime(CLOCK_MONOTONIC)` in nanoseconds.
    public static func monotonicNanos() -> UInt64 { read(CLOCK_MONOTONIC) }

    /// `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`: CPU time the calling thread has used, in nanoseconds.
    public static func threadCPUNanos() -> UInt64 { read(CLOCK_THREAD_CPUTIME_ID) }

    private static func read(_ clock: clockid_t) -> UInt64 {
        var ts = timespec()
        precondition(clock_gettime(clock, &ts) == 0, "clock_gettime failed")
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

/// What `getrusage(RUSAGE_THREAD)` says about one thread: user and system CPU time and context switches. The
/// split tells where a worker's CPU time went (system time and voluntary switches are futex waits, page faults
/// and the like; involuntary switches are preemption by other threads).
public struct ThreadUsage: Sendable {
    public var userNanos: UInt64 = 0
    public var systemNanos: UInt64 = 0
    public var voluntarySwitches: Int = 0
    public var involuntarySwitches: Int = 0

    public init() {}

    /// The calling thread's usage so far.
    public static func current() -> ThreadUsage {
        var usage = rusage()
        // RUSAGE_THREAD (1) is a GNU extension the Glibc module does not import.
        precondition(getrusage(__rusage_who_t(1), &usage) == 0, "getrusage failed")
        var result = ThreadUsage()
        result.userNanos = UInt64(usage.ru_utime.tv_sec) * 1_000_000_000 + UInt64(usage.ru_utime.tv_usec) * 1000
        result.systemNanos = UInt64(usage.ru_stime.tv_sec) * 1_000_000_000 + UInt64(usage.ru_stime.tv_usec) * 1000
        result.voluntarySwitches = usage.ru_nvcsw
        result.involuntarySwitches = usage.ru_nivcsw
        return result
    }

    /// The usage between `earlier` and `self`.
    public func since(_ earlier: ThreadUsage) -> ThreadUsage {
        var d = ThreadUsage()
        d.userNanos = userNanos - earlier.userNanos
        d.systemNanos = systemNanos - earlier.systemNanos
        d.voluntarySwitches = voluntarySwitches - earlier.voluntarySwitches
        d.involuntarySwitches = involuntarySwitches - earlier.involuntarySwitches
        return d
    }
}
