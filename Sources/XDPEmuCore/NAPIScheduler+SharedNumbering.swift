extension NAPIScheduler {
    /// Makes the next arrival's sequence number `sequence + 1`. Replay over several CPUs has a scheduler per CPU
    /// and numbers the frames of all of them in one arrival order (the `frame` of events): it sets the number
    /// before each arrival. `arrivals` then counts from there.
    public func continueNumbering(after sequence: UInt64) { state.pointee.arrivals = sequence }
}
