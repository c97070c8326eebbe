import Foundation
import Synchronization
import Testing
import XDPEmuCore
import XDPEmuTesting

/// The epochs behind the deferred free: workers pass quiescent points without a lock, the control plane releases
/// what every worker has passed, and the retire log grows while a worker lags.
@Suite struct EpochReclamationTests {
    /// A worker that does not pass quiescent points holds back the release of every entry retired since, however
    /// many (more than the retire log's first 64 slots); the other worker still sends its queue of each retired
    /// entry at once, to the entry's device and in order.
    @Test func aLaggingWorkerHoldsBackReleaseWhileTheOtherSendsEveryRetiredQueue() throws {
        let f = try Fixture(workers: 2)
        let map = f.map
        let targets = f.targets.map(\.ifindex)
        let w0 = f.network.workers[0]
        let w1 = f.network.workers[1]
        let polls = 150
        var n = 0
        // Four frames per poll, all to key 0; the third frame's run points key 0 at the next target, so frames 1-2
        // wait in an entry retired mid-poll (sent by the quiescent point) and 3-4 go to the new entry (the flush).
        f.network.attach(
            ClosureProgram { ctx in
                n += 1
                if n % 4 == 3 { try? map.update(key: 0, ifindex: targets[(n / 4 + 1) % 4]) }
                return ctx.redirectMap(map, key: 0)
            }, to: f.ingress)
        for poll in 0..<polls {
            f.inject(4, worker: w0)
            f.poll(now: Nanos(poll), worker: w0)
        }
        #expect(f.network.pendingRetiredCount == polls)  // worker 1 has passed none of them
        var expected = [[UInt64]](repeating: [], count: 4)
        for poll in 0..<polls {
            let first = UInt64(4 * poll)
            expected[poll % 4] += [first + 1, first + 2]
            expected[(poll + 1) % 4] += [first + 3, first + 4]
        }
        for t in 0..<4 { #expect(f.transmitters[t].sentFrames.map(\.sequence) == expected[t].sorted()) }
        // The flush sends the new entry's two frames, then the quiescent point the old entry's two.
        #expect(f.transmitters.flatMap(\.calls).count == 2 * polls)
        w1.quiescentPoint()
        #expect(f.network.pendingRetiredCount == 0)
        #expect(f.network.retiredEntryCount == polls)
        let stats = map.statistics()
        #expect(stats[0] == MapEntryStatistics(sent: UInt64(4 * polls), drops: 0, flushes: UInt64(2 * polls)))
        f.expectConservation()
    }

    /// Once every worker has passed, entries are released at the control plane's next step even if no worker
    /// polls again, and a worker that lagged behind a grown log catches up in one quiescent point.
    @Test func releasesWaitForTheSlowestWorkerOnly() throws {
        let f = try Fixture(workers: 3)
        let w = f.network.workers
        for round in 0..<200 {
            try f.map.update(key: MapKey(UInt32(round % 4)), ifindex: f.targets[(round + 1) % 4].ifindex)
            w[0].quiescentPoint()
            if round % 50 == 49 { w[1].quiescentPoint() }
        }
        #expect(f.network.pendingRetiredCount == 200)  // worker 2 never passed
        w[2].quiescentPoint()
        #expect(f.network.pendingRetiredCount == 0)  // worker 1 passed the last epoch at round 199
        try f.map.update(key: 0, ifindex: f.targets[0].ifindex)
        w[0].quiescentPoint()
        w[2].quiescentPoint()
        #expect(f.network.pendingRetiredCount == 1)
        w[1].quiescentPoint()
        #expect(f.network.pendingRetiredCount == 0)
        #expect(f.network.retiredEntryCount == 201)
    }

    /// Entries nobody released by the time the network goes away are released with it (they hold their device).
    @Test func unreleasedEntriesAreReleasedWithTheNetwork() throws {
        weak var vanishing: NetDevice?
        do {
            let network = Network(workers: 2)
            let device = try network.addDevice(name: "d", transmitter: FakeTransmitter())
            let other = try network.addDevice(name: "o", transmitter: FakeTransmitter())
            vanishing = device
            let map = try network.createDevMap(maxEntries: 2)
            for _ in 0..<100 {
                try map.update(key: 0, ifindex: device.ifindex)
                try map.update(key: 0, ifindex: other.ifindex)
            }
            network.workers[0].quiescentPoint()  // worker 1 never passes: 199 entries stay retired
            #expect(network.pendingRetiredCount == 199)
        }
        #expect(vanishing == nil)
    }

    /// Two worker threads forward into one map while a third thread updates, deletes and (once) unregisters a
    /// device, and worker 1 stops polling for a while so that retired entries pile up past the log's first size.
    /// Every frame is accounted for exactly once, and every retired entry is released exactly once, its counters
    /// kept under its key exactly once.
    @Test func twoWorkerThreadsAndAnUpdaterLoseNothingAndReleaseEveryEntryOnce() throws {
        final class Counting: XDPTransmitter, @unchecked Sendable {
            // @unchecked Sendable: worker i writes only words i * 16 and i * 16 + 1 (its own cache lines); read after
            // the threads are joined.
            let counts = UnsafeMutablePointer<Int>.allocate(capacity: 32)
            init() { counts.initialize(repeating: 0, count: 32) }
            deinit { counts.deallocate() }
            func xdpXmit(
                _ frames: UnsafeMutableBufferPointer<FrameID>, flags: XmitFlags, device: NetDevice,
                worker: Worker
            ) -> Int32 {
                worker.pool.give(frames)
                counts[worker.cpu * 16] += frames.count
                counts[worker.cpu * 16 + 1] += 1
                return Int32(frames.count)
            }
            var frames: Int { counts[0] + counts[16] }
            var calls: Int { counts[1] + counts[17] }
        }
        let network = Network(workers: 2, poolCapacity: 512)
        let counting = Counting()
        let targets = try (0..<4).map { try network.addDevice(name: "t\($0)", transmitter: counting) }
        let spare = try network.addDevice(name: "spare", transmitter: counting)
        let inputs = try (0..<2).map { try network.addDevice(name: "i\($0)", transmitter: counting) }
        let map = try network.createDevMap(maxEntries: 4)
        attachRoundRobin(map, to: inputs, in: network)
        let framesPerWorker = 60_000
        let lagAfterPolls = 100
        let lagForOperations = 400
        let operations = Atomic<Int>(0)
        let finished = Atomic<Int>(0)
        let injected = UnsafeMutablePointer<Int>.allocate(capacity: 32)
        injected.initialize(repeating: 0, count: 32)
        defer { injected.deallocate() }
        struct Shared: @unchecked Sendable {
            // @unchecked Sendable: each thread uses its own worker, input and `injected` word; the rest is the
            // network's thread-safe API.
            let network: Network
            let inputs: [NetDevice]
            let injected: UnsafeMutablePointer<Int>
        }
        let shared = Shared(network: network, inputs: inputs, injected: injected)
        let threads = (0..<2).map { cpu in
            Thread {
                let worker = shared.network.workers[cpu]
                let input = shared.inputs[cpu]
                var injector = FrameInjector()
                let bytes = FrameInjector.ethernet(destination: input.mac, source: input.mac)
                var count = 0
                var polls = 0
                while count < framesPerWorker {
                    while count < framesPerWorker, injector.inject(bytes, into: input, worker: worker) != nil {
                        count += 1
                    }
                    worker.poll(input, budget: 64, now: 0)
                    polls += 1
                    if cpu == 1 && polls == lagAfterPolls {
                        // Lag: pass no quiescent point while the updater retires a few hundred entries.
                        let until = operations.load(ordering: .acquiring) + lagForOperations
                        while operations.load(ordering: .acquiring) < until { usleep(50) }
                    }
                }
                while worker.poll(input, budget: 64, now: 0) > 0 {}
                shared.injected[cpu * 16] = count
                finished.add(1, ordering: .releasing)
            }
        }
        threads.forEach { $0.start() }
        // The updater: the only writer of the map, so it knows what every slot holds and what each operation
        // retires.
        var slot = [UInt32](repeating: 0, count: 4)
        var expectedRetired = 0
        var mostPending = 0
        var i = 0
        while finished.load(ordering: .acquiring) < 2 {
            let key = i % 4
            if i == 300 {
                network.unregister(spare)
                for k in 0..<4 where slot[k] == spare.ifindex.rawValue {
                    slot[k] = 0
                    expectedRetired += 1
                }
            } else if i % 5 == 0 {
                try map.delete(key: MapKey(UInt32(key)))
                if slot[key] != 0 { expectedRetired += 1 }
                slot[key] = 0
            } else {
                let device = i < 300 && i % 7 == 0 ? spare : targets[(i / 4) % 4]
                try map.update(key: MapKey(UInt32(key)), ifindex: device.ifindex)
                if slot[key] != 0 { expectedRetired += 1 }
                slot[key] = device.ifindex.rawValue
            }
            i += 1
            operations.store(i, ordering: .releasing)
            mostPending = max(mostPending, network.pendingRetiredCount)
            usleep(2)
        }
        for thread in threads { while !thread.isFinished { usleep(100) } }
        network.quiesceAll()

        #expect(i > 300)  // the unregistration happened while the workers ran
        #expect(mostPending > 64)  // the log grew while worker 1 lagged
        #expect(network.pendingRetiredCount == 0)
        #expect(network.retiredEntryCount == expectedRetired)
        #expect(network.workers.allSatisfy { $0.pool.outstanding == 0 })
        let devices = targets + [spare] + inputs
        let dropped = devices.reduce(UInt64(0)) { $0 + $1.statistics.totalDrops }
        #expect(injected[0] + injected[16] == 2 * framesPerWorker)
        #expect(UInt64(counting.frames) + dropped == UInt64(2 * framesPerWorker))
        // Every entry's counters were added exactly once: released entries' under their key, live ones as they are.
        let stats = map.statistics().values
        #expect(stats.reduce(0) { $0 + $1.sent } == UInt64(counting.frames))
        #expect(stats.reduce(0) { $0 + $1.flushes } == UInt64(counting.calls))
        #expect(stats.reduce(0) { $0 + $1.drops } == 0)
    }
}
