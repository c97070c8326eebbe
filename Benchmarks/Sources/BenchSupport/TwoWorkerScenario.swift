import CBenchShim
import Synchronization
import XDPEmuCore

#if canImport(Glibc)
import Glibc
#endif

/// Two workers on two threads, each polling its own ingress port into the same 4-entry devmap
/// (`RoundRobinRedirect`), while a third thread rewrites one entry of the map every `updateInterval`
/// nanoseconds (key i % 4 to port (i / 4) % 4, so every update retires an entry holding queued frames).
public final class TwoWorkerScenario: @unchecked Sendable {
    // @unchecked Sendable: worker i's thread touches only worker i, its ingress and its counters; the updater
    // only calls the map's control plane; the results are read after the threads are joined.

    public struct Result: Sendable {
        public var framesPerWorker: Int
        /// CPU time of each worker thread (CLOCK_THREAD_CPUTIME_ID) divided by its frames.
        public var cpuNanosPerFrame: [Double]
        /// Each worker thread's user and system time and context switches during its frames.
        public var usage: [ThreadUsage]
        public var wallSeconds: Double
        public var updates: Int
        /// Mean time between two map updates, in nanoseconds.
        public var meanUpdateInterval: Double
    }

    public let network: Network
    public let ingresses: [NetDevice]
    public let targets: [NetDevice]
    public let map: DevMap
    public let transmitter: CountingTransmitter
    let injected: UnsafeMutablePointer<UInt64>

    public init(frameLength: Int = 64) throws {
        let network = Network(workers: 2, poolCapacity: 4096, maxBudget: CoreScenario.framesPerPoll)
        let transmitter = CountingTransmitter(workers: 2)
        self.network = network
        self.transmitter = transmitter
        ingresses = try (0..<2).map { try network.addDevice(name: "in\($0)", transmitter: transmitter) }
        targets = try (0..<4).map { try network.addDevice(name: "out\($0)", transmitter: transmitter) }
        map = try network.createDevMap(maxEntries: 4)
        for (key, target) in targets.enumerated() { try map.update(key: MapKey(UInt32(key)), ifindex: target.ifindex) }
        for ingress in ingresses { network.attach(RoundRobinRedirect(map: map), to: ingress) }
        network.quiesceAll()
        injected = allocatePerWorkerCounts(workers: 2, stride: 16)
        for worker in network.workers {
            CoreScenario.prefill(worker.pool, length: frameLength, source: ingresses[0].mac)
        }
    }

    deinit { injected.deallocate() }

    /// How the updater waits between two updates.
    public enum Pacing: Sendable {
        /// nanosleep (timer slack 1 ns): the thread sleeps, but a wake-up takes tens of µs in this VM, so the
        /// interval is that, not `updateInterval`.
        case sleep
        /// Polls the monotonic clock until the next update is due, yielding the CPU in between (sched_yield):
        /// the interval is kept, at the price of a third runnable thread on the machine.
        case spin
        /// As `spin`, but the updater never touches the map: what a third runnable thread costs the workers.
        case spinWithoutUpdates
        /// No updater thread at all: two workers alone.
        case noUpdater
    }

    /// Runs `framesPerWorker` frames on each worker while the map is rewritten every `updateInterval` ns.
    public func run(framesPerWorker: Int, updateInterval: Int = 5_000, pacing: Pacing = .spin) -> Result {
        let state = RunState()
        let wallStart = BenchClock.monotonicNanos()
        let updater = pacing == .noUpdater ? nil : startThread { [self] in
            _ = bench_set_timer_slack(1)
            var i = 0
            var pause = timespec(tv_sec: 0, tv_nsec: updateInterval)
            while state.ready.load(ordering: .acquiring) < 2 {}
            var due = BenchClock.monotonicNanos()
            while !state.stop.load(ordering: .relaxed) {
                if pacing != .spinWithoutUpdates {
                    try? map.update(key: MapKey(UInt32(i & 3)), ifindex: targets[(i >> 2) & 3].ifindex)
                    i += 1
                }
                switch pacing {
                case .sleep, .noUpdater:
                    nanosleep(&pause, nil)
                case .spin, .spinWithoutUpdates:
                    due += UInt64(updateInterval)
                    while BenchClock.monotonicNanos() < due && !state.stop.load(ordering: .relaxed) { sched_yield() }
                }
            }
            state.updates.store(i, ordering: .releasing)
        }
        let workers = (0..<2).map { cpu in
            startThread { [self] in
                state.ready.add(1, ordering: .acquiringAndReleasing)
                while state.ready.load(ordering: .acquiring) < 2 {}
                let usage = ThreadUsage.current()
                let start = BenchClock.threadCPUNanos()
                pollLoop(cpu: cpu, frames: framesPerWorker)
                state.setCPUNanos(cpu, BenchClock.threadCPUNanos() - start)
                state.usage.withLock { $0[cpu] = ThreadUsage.current().since(usage) }
            }
        }
        for thread in workers { pthread_join(thread, nil) }
        let wall = Double(BenchClock.monotonicNanos() - wallStart) / 1e9
        state.stop.store(true, ordering: .relaxed)
        if let updater { pthread_join(updater, nil) }
        let updates = state.updates.load(ordering: .acquiring)
        return Result(framesPerWorker: framesPerWorker,
                      cpuNanosPerFrame: (0..<2).map {
                          Double(state.cpuNanos($0)) / Double(framesPerWorker)
                      },
                      usage: state.usage.withLock { $0 },
                      wallSeconds: wall, updates: updates, meanUpdateInterval: wall * 1e9 / Double(max(updates, 1)))
    }

    /// The same work on one thread, deterministically, for callgrind (which runs threads one at a time, so the
    /// threaded run's update rate would depend on valgrind's slowdown): worker 0 and worker 1 poll in turn, and
    /// the map is updated after every `roundsPerUpdate` rounds (a round is one poll of each worker). With 64-frame
    /// polls and 4 rounds, an update every 256 frames of each worker (the threaded run, where each worker gets
    /// about half a CPU, sees one every 75-110).
    /// Returns the number of updates.
    public func runSerial(framesPerWorker: Int, roundsPerUpdate: Int = 4) -> Int {
        var updates = 0
        var done = 0
        let refill = RxRefill()
        var now: Nanos = 0
        while done < framesPerWorker {
            let frames = min(framesPerWorker - done, CoreScenario.framesPerPoll)
            now &+= 1_000
            for cpu in 0..<2 {
                let worker = network.workers[cpu]
                let ingress = ingresses[cpu]
                let batch = refill.refill(frames, from: worker.pool, into: ingress.rxRing, length: 64,
                                          ingress: ingress.ifindex)
                injected[cpu * 16] &+= UInt64(batch)
                _ = worker.poll(ingress, budget: CoreScenario.framesPerPoll, now: now)
            }
            done += frames
            if (done / CoreScenario.framesPerPoll) % roundsPerUpdate == 0 {
                try? map.update(key: MapKey(UInt32(updates & 3)), ifindex: targets[(updates >> 2) & 3].ifindex)
                updates += 1
            }
        }
        for worker in network.workers { worker.quiescentPoint() }
        return updates
    }

    /// What the threads of one run share.
    final class RunState: Sendable {
        let ready = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        let updates = Atomic<Int>(0)
        let cpuNanos0 = Atomic<UInt64>(0)
        let cpuNanos1 = Atomic<UInt64>(0)
        let usage = Mutex<[ThreadUsage]>([ThreadUsage(), ThreadUsage()])

        func setCPUNanos(_ cpu: Int, _ value: UInt64) {
            if cpu == 0 {
                cpuNanos0.store(value, ordering: .releasing)
            } else {
                cpuNanos1.store(value, ordering: .releasing)
            }
        }

        func cpuNanos(_ cpu: Int) -> UInt64 {
            cpu == 0 ? cpuNanos0.load(ordering: .acquiring) : cpuNanos1.load(ordering: .acquiring)
        }
    }

    func pollLoop(cpu: Int, frames: Int) {
        let worker = network.workers[cpu]
        let ingress = ingresses[cpu]
        let refill = RxRefill()
        var now: Nanos = 0
        var remaining = frames
        while remaining > 0 {
            let batch = refill.refill(min(remaining, CoreScenario.framesPerPoll), from: worker.pool,
                                      into: ingress.rxRing, length: 64, ingress: ingress.ifindex)
            injected[cpu * 16] &+= UInt64(batch)
            now &+= 1_000
            remaining -= worker.poll(ingress, budget: CoreScenario.framesPerPoll, now: now)
        }
        worker.quiescentPoint()
    }

    /// Every injected frame sent exactly once and every pool full again (call after `run`). nil when so.
    public func conservationError() -> String? {
        network.quiesceAll()
        let injectedTotal = injected[0] + injected[16]
        let drops = (ingresses + targets).reduce(0) { $0 + $1.statistics.totalDrops }
        for worker in network.workers where worker.pool.outstanding != 0 {
            return "cpu \(worker.cpu): \(worker.pool.outstanding) frames outstanding"
        }
        guard transmitter.total == injectedTotal, drops == 0 else {
            return "injected \(injectedTotal), sent \(transmitter.total), dropped \(drops)"
        }
        guard network.pendingRetiredCount == 0 else { return "\(network.pendingRetiredCount) entries not released" }
        return nil
    }
}

final class ThreadBody: @unchecked Sendable {
    // @unchecked Sendable: immutable; the body itself is @Sendable.
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}

/// pthread_create with a Swift closure (also used by the live pipeline benchmark).
public func startThread(_ body: @escaping @Sendable () -> Void) -> pthread_t {
    let context = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { argument in
        Unmanaged<ThreadBody>.fromOpaque(argument!).takeRetainedValue().body()
        return nil
    }, context)
    precondition(rc == 0, "pthread_create failed: \(rc)")
    return thread
}
