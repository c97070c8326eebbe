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
