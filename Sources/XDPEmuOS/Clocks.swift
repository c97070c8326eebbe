// The only clocks in xdpemu. Everything else takes time as an argument.

import Glibc

/// Monotonic time: for intervals, deadlines and the datapath's notion of "now".
public enum MonotonicClock {
    /// Nanoseconds since an arbitrary fixed point (boot), from clock_gettime(CLOCK_MONOTONIC).
    @inline(__always)
    public static func now() -> UInt64 {
        read(CLOCK_MONOTONIC)
    }
}

/// Wall-clock time: only for timestamps that leave the process (pcap records, state files).
public enum WallClock {
    /// Nanoseconds since the Unix epoch, from clock_gettime(CLOCK_REALTIME).
    @inline(__always)
    public static func nowNanos() -> UInt64 {
        read(CLOCK_REALTIME)
    }
}

@inline(__always)
private func read(_ clock: clockid_t) -> UInt64 {
    var ts = timespec()
    // clock_gettime cannot fail for these clocks with a valid pointer.
    let rc = clock_gettime(clock, &ts)
    precondition(rc == 0, "clock_gettime failed")
    return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
}
