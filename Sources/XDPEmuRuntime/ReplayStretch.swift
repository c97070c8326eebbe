import XDPEmuCore

extension ReplayEngine {
    /// `stepRecorded` while no port waits for a poll, the usual state of a trace whose frames come further apart
    /// than a poll takes: the frames that arrive by the time a poll runs are all in it (they are all for its
    /// port), and the next one arrives after it (so no poll leaves frames in the ring). Delivers the frames of up to
    /// `NAPIScheduler.seriesCapacity` such polls and runs them with `NAPIScheduler.runSeries` (one call per run of
    /// polls of the same port), at the times `stepRecorded` would run them. Stops where `stepRecorded` has more to
    /// do (a map operation due, a poll that would leave frames in the ring or share the CPU with another port's, a
    /// full ring), leaving the scheduler in the state it would have then. Everything happens in the same order as
    /// one `stepRecorded` at a time (deliveries touch only the rings and the ingress captures, a poll takes just
    /// the frames that arrived by its time, and polls run in their order), so the outputs are the same.
    ///
    /// This decides only which polls the scheduler runs as a series: the arrivals, the polls and the CPU's time
    /// are the scheduler's, as in every other step.
    mutating func stepRecordedStretch() -> Bool {
        // Two copies: with one input (the usual case) there is no next lane to search for.
        laneCount == 1 ? stepRecordedStretch(oneLane: true) : stepRecordedStretch(oneLane: false)
    }

    @inline(__always)
    mutating func stepRecordedStretch(oneLane: Bool) -> Bool {
        guard scheduler._withUnsafeGuaranteedRef({ $0.pendingPolls }) == 0, let firstLane = nextLane(oneLane: oneLane)
        else {
            return stepRecorded()
        }
        let (times, sizes, frameCost, startFree) = scheduler._withUnsafeGuaranteedRef {
            ($0.seriesTimes, $0.seriesSizes, $0.worker.frameCost, $0.cpuFree)
        }
        var port = lanes[firstLane].portIndex
        // The stretch's arrivals at `port`, counted when its polls run (`runSeries`).
        var arrivals = scheduler._withUnsafeGuaranteedRef { $0.beginArrivals(at: port) }
        var cpuFree = startFree
        var count = 0
        var delivered = false
        // The pool unretained (see `deliverOne`).
        Unmanaged.passUnretained(pool)._withUnsafeGuaranteedRef { pool in
            stretch: while count < NAPIScheduler.seriesCapacity, let lane = nextLane(oneLane: oneLane) {
                let first = max(lanes[lane].stagedTime, lastArrival)
                let pollTime = max(first &+ pollDelay, cpuFree)
                // A map operation due by then runs before the poll: stepRecorded's business.
                if mapEvents.nextTime <= pollTime { break }
                if lanes[lane].portIndex != port {
                    // Another port's poll: the polls so far run first (each port's ring is empty after them).
                    runSeries(count, arrivals: arrivals)
                    count = 0
                    port = lanes[lane].portIndex
                    arrivals = scheduler._withUnsafeGuaranteedRef { $0.beginArrivals(at: port) }
                }
                // A full ring drops the arrival: stepRecorded's business too.
                if arrivals.isFull { break }
                deliver(lane, at: first, pool: pool, into: &arrivals)
                delivered = true
                var size = 1
                // The frames arriving by the poll's time join it.
                while let next = nextLane(oneLane: oneLane) {
                    let arrival = max(lanes[next].stagedTime, lastArrival)
                    guard arrival <= pollTime else { break }
                    guard lanes[next].portIndex == port && size < budget && !arrivals.isFull else {
                        // Another port's frame would make a second poll wait for the CPU, the poll would leave
                        // frames in the ring, or the ring fills: this poll waits for stepRecorded, scheduled as
                        // an arrival schedules it, after the polls before it have run.
                        let ready = first &+ pollDelay
                        scheduler._withUnsafeGuaranteedRef { $0.schedule(port, ready: ready) }
                        break stretch
                    }
                    deliver(next, at: arrival, pool: pool, into: &arrivals)
                    size &+= 1
                }
                times[count] = pollTime
                sizes[count] = size
                count &+= 1
                cpuFree = pollTime &+ Nanos(size) &* frameCost
            }
        }
        runSeries(count, arrivals: arrivals)
        assert(
            scheduler._withUnsafeGuaranteedRef { $0.cpuFree } == cpuFree,
            "a poll took other than frame_cost_ns per frame")
        return delivered || stepRecorded()
    }

    /// Ends the run of `arrivals` and runs the first `count` polls of the series buffers, all of its port's.
    @inline(__always)
    func runSeries(_ count: Int, arrivals: NAPIScheduler.ArrivalRun) {
        scheduler._withUnsafeGuaranteedRef {
            $0.endArrivals(arrivals)
            if count > 0 { $0.runSeries(port: arrivals.port, count: count) }
        }
    }
}
