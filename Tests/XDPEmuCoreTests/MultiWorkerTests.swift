import Testing
import XDPEmuCore
import XDPEmuTesting

/// Several workers (simulated CPUs) over one devmap: what the control plane changes, every worker sees at its
/// next poll, without a lock on the datapath.
@Suite struct MultiWorkerTests {
    @Test func aMapChangeIsSeenByEveryWorkerAtItsNextPoll() throws {
        let f = try Fixture(workers: 3)
        f.attachNumbered { _, map, ctx in ctx.redirectMap(map, key: 0) }
        func pollEach() {
            for worker in f.network.workers {
                f.inject(1, worker: worker)
                f.poll(worker: worker)
            }
        }
        pollEach()
        #expect(f.transmitters[0].sentFrames.count == 3)
        #expect(Set(f.transmitters[0].calls.map(\.cpu)) == [0, 1, 2])

        try f.map.update(key: 0, ifindex: f.targets[1].ifindex)
        pollEach()
        #expect(f.transmitters[0].sentFrames.count == 3, "no worker used the old entry after the update")
        #expect(f.transmitters[1].sentFrames.count == 3)

        try f.map.delete(key: 0)
        pollEach()
        #expect(f.ingress.statistics.drops[.redirectInvalid] == 3)

        f.network.unregister(f.targets[2])
        try f.map.update(key: 0, ifindex: f.targets[3].ifindex)
        pollEach()
        #expect(f.transmitters[3].sentFrames.count == 3)
        f.expectConservation()
        #expect(f.network.pendingRetiredCount == 0)
    }
}
