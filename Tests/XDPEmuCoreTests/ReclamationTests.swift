import Foundation
import Synchronization
import Testing
import XDPEmuCore
import XDPEmuTesting

/// Deferred free: entries changed while frames wait in their bulk queues.
@Suite struct ReclamationTests {
    @Test func entryDeletedBetweenRedirectAndFlushIsSentByTheDeferredFree() throws {
        let f = try Fixture()
        f.attachNumbered { n, map, ctx in
            let action = ctx.redirectMap(map, key: 1)
            // "Another CPU" deletes the entry while frames 1-4 wait in the queue; frame 5 then finds no entry.
            if n == 5 { try? map.delete(key: 1) }
            return action
        }
        f.inject(5)
        f.poll(now: 100)
        // Frames 1-4 were enqueued; the flush skipped the empty slot, the quiescent point at the end of the poll
        // sent them (deferred free); frame 5 was dropped with EINVAL.
        #expect(f.transmitters[1].sentFrames.map(\.sequence) == [1, 2, 3, 4])
        #expect(f.transmitters[1].bulkSizes == [4])
        #expect(f.transmitters[1].calls[0].flush)
        #expect(f.ingress.statistics.drops == [.redirectInvalid: 1])
        #expect(f.network.pendingRetiredCount == 0)
        // Sent exactly once: the bit was cleared, a later poll sends nothing more.
        #expect(!f.map.isMarkedForFlush(1))
        f.poll(now: 200)
        #expect(f.transmitters[1].bulkSizes == [4])
        #expect(f.map.statistics()[1] == MapEntryStatistics(sent: 4, drops: 0, flushes: 1))
        f.expectConservation()
    }

    @Test func entryReplacedBeforeFlushSendsOldFramesToTheOldDevice() throws {
        let f = try Fixture()
        let newTarget = f.targets[3].ifindex
        f.attachNumbered { n, map, ctx in
            if n == 4 { try? map.update(key: 0, ifindex: newTarget) }
            return ctx.redirectMap(map, key: 0)
        }
        f.inject(6)
        f.poll()
        // Frames 1-3 went into the old entry (device out0), 4-6 into the new one (out3).
        #expect(f.transmitters[0].sentFrames.map(\.sequence) == [1, 2, 3])
        #expect(f.transmitters[3].sentFrames.map(\.sequence) == [4, 5, 6])
        let xmits = f.events(.devmapXmit)
        // The flush sends the new entry's queue first; the deferred free then sends the old one.
        #expect(xmits.map(\.toIfindex) == [f.targets[3].ifindex.rawValue, f.targets[0].ifindex.rawValue])
        f.expectConservation()
    }

    /// A released entry's block serves the next new entry (of any key): its queue must start empty, its frames,
    /// counters and events must be the new entry's, and the old entry's frames must not come back.
    @Test func aReleasedEntrysBlockServesTheNextEntryCleanly() throws {
        let f = try Fixture()
        let map = f.map
        let secondTarget = f.targets[1].ifindex
        f.attachNumbered { n, map, ctx in
            // Frames 1-3 into key 0 (out0); before frame 4 key 0 moves to out1; frames 6-8 go to key 1, which
            // the test points at out2 between the polls, taking over the block of key 0's first entry.
            if n == 4 { try? map.update(key: 0, ifindex: secondTarget) }
            return ctx.redirectMap(map, key: n <= 5 ? 0 : 1)
        }
        f.inject(5)
        f.poll(now: 100)
        #expect(f.transmitters[0].sentFrames.map(\.sequence) == [1, 2, 3])
        #expect(f.transmitters[1].sentFrames.map(\.sequence) == [4, 5])
        let reusedBefore = f.network.reusedEntryBlockCount
        #expect(f.network.pendingRetiredCount == 0)
        try map.update(key: 1, ifindex: f.targets[2].ifindex)
        #expect(f.network.reusedEntryBlockCount == reusedBefore + 1)
        _ = f.events()
        f.inject(3)
        f.poll(now: 200)
        #expect(f.transmitters[2].sentFrames.map(\.sequence) == [6, 7, 8])
        #expect(f.transmitters[2].bulkSizes == [3])
        #expect(f.transmitters[0].sentFrames.count == 3 && f.transmitters[1].sentFrames.count == 2)
        let xmit = f.events(.devmapXmit)
        #expect(xmit.map(\.mapIndex) == [1] && xmit.map(\.toIfindex) == [f.targets[2].ifindex.rawValue])
        #expect(xmit.map(\.fromIfindex) == [f.ingress.ifindex.rawValue] && xmit.map(\.sent) == [3])
        #expect(
            map.statistics() == [
                0: MapEntryStatistics(sent: 5, drops: 0, flushes: 2),
                1: MapEntryStatistics(sent: 3, drops: 0, flushes: 1),
            ])
        f.expectConservation()
    }

    @Test func unregisterDuringTrafficClearsSlotsAndKeepsForwardingTheRest() throws {
        let f = try Fixture()
        let map = f.map
        let network = f.network
        let victim = f.targets[2]
        var n = 0
        f.network.attach(
            ClosureProgram { ctx in
                n += 1
                if n == 7 { network.unregister(victim) }
                return ctx.redirectMap(map, key: UInt32(n % 2 == 0 ? 2 : 0))
            }, to: f.ingress)
        f.inject(10)
        f.poll()
        // Even frames before the unregister (2, 4, 6) were queued for the victim and sent by the deferred free;
        // later even frames found the slot empty.
        #expect(f.transmitters[2].sentFrames.map(\.sequence) == [2, 4, 6])
        #expect(f.transmitters[0].sentFrames.map(\.sequence) == [1, 3, 5, 7, 9])
        #expect(f.ingress.statistics.drops == [.redirectInvalid: 2])
        #expect(throws: KernelErrno.ENOENT) { try map.lookup(key: 2) }
        #expect(throws: KernelErrno.EINVAL) { try map.update(key: 2, ifindex: victim.ifindex) }
        #expect(network.device(ifindex: victim.ifindex) == nil)
        f.expectConservation()
    }

    @Test func aRetiredEntryWaitsForEveryWorker() throws {
        let f = try Fixture(workers: 2)
        let second = try f.network.addDevice(name: "in1", transmitter: FakeTransmitter())
        f.network.attach(RedirectToKey(map: f.map, key: 0), to: f.ingress)
        f.network.attach(RedirectToKey(map: f.map, key: 0), to: second)
        let w0 = f.network.workers[0]
        let w1 = f.network.workers[1]
        f.inject(3, into: f.ingress, worker: w0)
        f.inject(2, into: second, worker: w1)
        f.poll(f.ingress, worker: w0)
        f.poll(second, worker: w1)
        // Per-CPU queues: one bulk per worker.
        #expect(f.transmitters[0].calls.map(\.cpu) == [0, 1])
        try f.map.delete(key: 0)
        #expect(f.network.pendingRetiredCount == 1)
        w0.quiescentPoint()
        #expect(f.network.pendingRetiredCount == 1)  // worker 1 may still hold it
        w1.quiescentPoint()
        #expect(f.network.pendingRetiredCount == 0)
        #expect(f.map.statistics()[0] == MapEntryStatistics(sent: 5, drops: 0, flushes: 2))
        f.expectConservation(extra: [second])
    }

    @Test func aLaggingWorkerKeepsEntriesUntilItPassesAndThenReleasesThemInOrder() throws {
        let f = try Fixture(workers: 2)
        let w0 = f.network.workers[0]
        let w1 = f.network.workers[1]
        for round in 0..<3000 {
            try f.map.update(key: 0, ifindex: f.targets[round % 4].ifindex)
            if round % 7 == 0 { w0.quiescentPoint() }
        }
        w0.quiescentPoint()
        #expect(f.network.pendingRetiredCount == 3000)  // worker 1 has not passed a quiescent point yet
        w1.quiescentPoint()
        #expect(f.network.pendingRetiredCount == 0)
        try f.map.update(key: 0, ifindex: f.targets[1].ifindex)
        w1.quiescentPoint()
        #expect(f.network.pendingRetiredCount == 1)
        w0.quiescentPoint()
        #expect(f.network.pendingRetiredCount == 0)
        f.expectConservation()
    }

    @Test func updateRacingUnregisterWins() throws {
        // The notifier clears a slot only if it still holds the vanishing device's entry: an update that
        // replaced it first survives.
        let f = try Fixture()
        try f.map.update(key: 0, ifindex: f.targets[1].ifindex)
        f.network.unregister(f.targets[0])
        #expect(try f.map.lookup(key: 0) == f.targets[1].ifindex)
    }

    /// Two worker threads forward while a third thread rewrites the map every few microseconds; every frame is
    /// accounted for exactly once.
    @Test func concurrentUpdatesLoseNoFrame() throws {
        final class Counting: XDPTransmitter, @unchecked Sendable {
            let sent = Atomic<Int>(0)
            func xdpXmit(
                _ frames: UnsafeMutableBufferPointer<FrameID>, flags: XmitFlags, device: NetDevice,
                worker: Worker
            ) -> Int32 {
                for frame in frames { worker.pool.give(frame) }
                sent.add(frames.count, ordering: .relaxed)
                return Int32(frames.count)
            }
        }
        let network = Network(workers: 2, poolCapacity: 512)
        let counting = Counting()
        let targets = try (0..<4).map { try network.addDevice(name: "t\($0)", transmitter: counting) }
        let inputs = try (0..<2).map { try network.addDevice(name: "i\($0)", transmitter: counting) }
        let map = try network.createDevMap(maxEntries: 4)
        for (i, t) in targets.enumerated() { try map.update(key: MapKey(UInt32(i)), ifindex: t.ifindex) }
        attachRoundRobin(map, to: inputs, in: network)
        let framesPerWorker = 100_000
        let done = Atomic<Int>(0)
        struct Box: @unchecked Sendable {
            let network: Network
            let inputs: [NetDevice]
            let map: DevMap
        }
        let box = Box(network: network, inputs: inputs, map: map)
        let threads = (0..<2).map { cpu in
            Thread {
                let worker = box.network.workers[cpu]
                let input = box.inputs[cpu]
                var injector = FrameInjector()
                let bytes = FrameInjector.ethernet(destination: input.mac, source: input.mac)
                var injected = 0
                while injected < framesPerWorker {
                    while injected < framesPerWorker, injector.inject(bytes, into: input, worker: worker) != nil {
                        injected += 1
                    }
                    worker.poll(input, budget: 64, now: 0)
                }
                while worker.poll(input, budget: 64, now: 0) > 0 {}
                done.add(1, ordering: .releasing)
            }
        }
        threads.forEach { $0.start() }
        var flips = 0
        while done.load(ordering: .acquiring) < 2 {
            let key = MapKey(UInt32(flips % 4))
            if flips % 3 == 0 {
                try? box.map.delete(key: key)
            } else {
                try? box.map.update(key: key, ifindex: targets[(flips / 4) % 4].ifindex)
            }
            flips += 1
            usleep(5)
        }
        network.quiesceAll()
        let dropped = (targets + inputs).reduce(UInt64(0)) { $0 + $1.statistics.totalDrops }
        #expect(UInt64(counting.sent.load(ordering: .relaxed)) + dropped == UInt64(2 * framesPerWorker))
        #expect(network.workers.allSatisfy { $0.pool.outstanding == 0 })
        #expect(network.pendingRetiredCount == 0)
        #expect(flips > 10)
    }
}
