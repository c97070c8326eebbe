import XDPEmuCore

// Replay over several CPUs (`napi.cpus` > 1): each port's RX queue belongs to one CPU (the port's `cpu`, else
// round robin: `CPUAssignment`), and each CPU has its own worker (frame pool, bulk queues, flush) and NAPI
// scheduler, polling in virtual time independently of the others: a CPU busy with a poll does not delay another
// CPU's. The engine interleaves what happens on all of them in one order of virtual time, so the run is one
// deterministic sequence, the same every time:
// - recorded timing: the next event is the earliest of the next map operation, the next arrival (traces merged
//   by timestamp, command-line order among equal times) and every CPU's next poll; at equal times a map operation
//   comes first, then an arrival, then the polls in CPU order;
// - topspeed: the CPU whose clock (its next poll, else the end of its last one) is earliest takes its turn (the
//   lower CPU among equals): the frames of its ports' traces arrive at its clock as long as their rings take them,
//   then it runs its next poll.
// Frames are numbered in one arrival order over all CPUs (`frame` in events). Events are drained CPU by CPU after
// every step. With one CPU none of this runs: the single-CPU engine (with its stretches) is used as it is.

extension ReplayEngine {
    /// The pool lane `i`'s frames come from: its CPU's worker's.
    func lanePool(_ i: Int) -> FramePool { cpuSchedulers.isEmpty ? pool : cpuSchedulers[laneCPU[i]].worker.pool }

    /// `run` over several CPUs.
    mutating func runOnCPUs() {
        for i in 0..<laneCount { stage(i, pool: lanePool(i)) }
        let start = (0..<laneCount).compactMap { lanes[$0].staged == nil ? nil : lanes[$0].stagedTime }.min() ?? 0
        startTime = start
        for scheduler in cpuSchedulers { scheduler.cpuFree = start }
        mapEvents.start(at: start)
        var iterations = 0
        while true {
            iterations &+= 1
            if iterations & 0xfff == 0 && !interrupted && options.shouldStop() {
                interrupted = true
                stopReading()
            }
            let step =
                switch options.timing {
                case .recorded: stepRecordedOnCPUs()
                case .topspeed: stepTopspeedOnCPUs()
                }
            drainEvents()
            if !step { break }
        }
        mapEvents.apply(dueBy: .max)
        withExtendedLifetime(sources) {}
    }

    /// One event in recorded timing, over every CPU: a map operation, an arrival or a poll.
    mutating func stepRecordedOnCPUs() -> Bool {
        let arrival = nextSource()
        let arrivalTime = arrival.map { max(lanes[$0].stagedTime, lastArrival) }
        var pollCPU: Int?
        var pollTime = Nanos.max
        for (cpu, scheduler) in cpuSchedulers.enumerated() {
            if let time = scheduler.pollAt(), time < pollTime {
                pollTime = time
                pollCPU = cpu
            }
        }
        guard arrivalTime != nil || pollCPU != nil else { return false }
        let next = min(arrivalTime ?? .max, pollTime)
        if mapEvents.nextTime <= next {
            mapEvents.apply(dueBy: mapEvents.nextTime)
            return true
        }
        if let arrival, let arrivalTime, arrivalTime <= pollTime {
            deliverOnCPU(arrival, at: arrivalTime)
        } else if let pollCPU {
            cpuSchedulers[pollCPU].pollNext(at: pollTime)
        }
        return true
    }

    /// One turn in topspeed timing: the CPU with the earliest clock fills its ports' rings, then polls.
    mutating func stepTopspeedOnCPUs() -> Bool {
        var chosen: Int?
        var clock = Nanos.max
        for (cpu, scheduler) in cpuSchedulers.enumerated() {
            guard scheduler.pendingPolls > 0 || nextSource(cpu: cpu) != nil else { continue }
            let time = scheduler.pollAt() ?? scheduler.cpuFree
            if time < clock {
                clock = time
                chosen = cpu
            }
        }
        guard let cpu = chosen else { return false }
        let scheduler = cpuSchedulers[cpu]
        let now = scheduler.cpuFree
        if mapEvents.nextTime <= now { mapEvents.apply(dueBy: now) }
        while let next = nextSource(cpu: cpu) {
            guard !lanes[next].ring._withUnsafeGuaranteedRef({ $0.isFull }) else { break }
            deliverOnCPU(next, at: now)
        }
        if let time = scheduler.pollAt() { scheduler.pollNext(at: time) }
        return true
    }

    /// The lane of a port of `cpu` whose staged frame comes first (recorded time, then command-line order).
    func nextSource(cpu: Int) -> Int? {
        var best: Int?
        var bestTime = Nanos.max
        for i in 0..<laneCount where laneCPU[i] == cpu && lanes[i].staged != nil {
            if best == nil || lanes[i].stagedTime < bestTime {
                best = i
                bestTime = lanes[i].stagedTime
            }
        }
        return best
    }

    /// The staged frame of lane `i` arrives at its port, on its CPU, at `time`, numbered after every frame of
    /// every CPU before it; the lane's next frame is staged.
    mutating func deliverOnCPU(_ i: Int, at time: Nanos) {
        let lane = lanes + i
        guard let frame = lane.pointee.staged else { return }
        lane.pointee.staged = nil
        lastArrival = time
        let scheduler = cpuSchedulers[laneCPU[i]]
        scheduler.continueNumbering(after: arrivalCount)
        arrivalCount &+= 1
        scheduler.arrive(frame, port: lane.pointee.portIndex, at: time)
        stage(i, pool: scheduler.worker.pool)
    }
}
