import Testing
import XDPEmuCore
import XDPEmuTesting

/// The poll loop sends a `bpf_redirect_map` into the map that is map_to_flush already down a short path, and
/// everything else (and every redirect while events are recorded) down the full `xdp_do_redirect`. These tests
/// run the same mixed traffic with events off and on and require the same outcome from both.
@Suite struct FastPathTests {
    /// What a run leaves behind that does not depend on events: every transmit call and its frames, the frames
    /// handed to the local stack, and every device's counters.
    struct Outcome: Equatable {
        var calls: [[FakeTransmitter.Call]]
        var passed: [UInt64]
        var statistics: [DeviceStatistics]
        var mapStatistics: [MapKey: MapEntryStatistics]
    }

    /// Deterministic mixed traffic over three polls, with the control plane changing targets between them.
    func run(events: Bool) throws -> Outcome {
        let f = try Fixture()
        for w in f.network.workers { w.events.isEnabled = events }
        let map = f.map
        let other = try f.network.createDevMap(maxEntries: 2)
        try other.update(key: 0, ifindex: f.targets[3].ifindex)
        let bpfRedirectTarget = f.targets[1].ifindex
        var n: UInt32 = 0
        f.network.attach(
            ClosureProgram { ctx in
                n &+= 1
                // A small multiplicative hash: runs of the same map interleaved with everything else.
                let r = (n &* 2_654_435_761) >> 27
                switch r {
                case 0..<14: return ctx.redirectMap(map, key: r % 4)
                case 14: return ctx.redirectMap(map, key: 5)  // empty slot: EINVAL
                case 15, 16: return ctx.redirectMap(other, key: 0)  // another map: flushes the first
                case 17: return ctx.redirect(ifindex: bpfRedirectTarget)
                case 18: return ctx.floodMap(map, excludeIngress: true)
                case 19: return .redirect  // no helper: whatever the redirect info holds
                case 20:
                    _ = ctx.redirectMap(map, key: 2)
                    return .pass  // leaves a request behind for a later bare XDP_REDIRECT
                case 21: return .drop
                case 22: return .tx
                case 23:
                    // Headroom below the xdp_frame reserve is impossible through the helpers; a longer frame is not.
                    guard ctx.adjustHead(-20) == 0 else { return .aborted }
                    return ctx.redirectMap(map, key: 3)
                case 24: return ctx.redirectMap(map, key: 1, flags: 1)  // 4.18: ABORTED
                case 25: return XDPAction(rawValue: 9)
                default: return ctx.redirectMap(map, key: (r >> 1) % 4)
                }
            }, to: f.ingress)
        f.inject(64, length: 60)
        f.poll(now: 1000)
        // Target 2 goes down, target 3's MTU drops below the frames' size, key 0 is deleted.
        f.targets[2].isUp = false
        f.targets[3].mtu = 30
        try map.delete(key: 0)
        f.inject(64, length: 60)
        f.poll(now: 2000)
        f.targets[2].isUp = true
        f.targets[3].mtu = 1500
        try map.update(key: 0, ifindex: f.targets[0].ifindex)
        f.inject(100, length: 60)
        f.poll(now: 3000)
        f.poll(now: 4000)
        f.expectConservation()
        return Outcome(
            calls: (f.transmitters + [f.ingressTransmitter]).map(\.calls),
            passed: f.stack.received.map(\.sequence),
            statistics: ([f.ingress] + f.targets).map(\.statistics), mapStatistics: map.statistics())
    }

    @Test func mixedTrafficGivesTheSameOutcomeWithAndWithoutEvents() throws {
        let fast = try run(events: false)
        let full = try run(events: true)
        #expect(fast == full)
        // The traffic does reach every path: drops of several kinds, passes, XDP_TX, map switches.
        let drops = fast.statistics[0].drops
        #expect(drops[.programDrop] != nil && drops[.aborted] != nil && drops[.redirectInvalid] != nil)
        #expect(drops[.redirectDown] != nil && drops[.redirectTooBig] != nil)
        #expect(!fast.passed.isEmpty && !fast.calls[4].isEmpty)
        #expect(fast.calls[3].count >= 3)
    }

    /// A fixture with events off, so that redirects may take the fast path, whose ingress runs `decide` with
    /// each frame's number (1, 2, ...) and the fixture's map.
    func fastFixture(_ decide: @escaping (Int, DevMap, inout XDPContext) -> XDPAction) throws -> Fixture {
        let f = try Fixture()
        f.worker.events.isEnabled = false
        f.attachNumbered(decide)
        return f
    }

    @Test func aBareRedirectAfterACarriedOutOneFailsWithEINVAL() throws {
        let f = try fastFixture { n, map, ctx in
            // Frames 1-3 redirect into key 0 (the third takes the fast path); frame 4 returns XDP_REDIRECT
            // without a helper: the request was consumed, so it fails as the kernel's does.
            n <= 3 ? ctx.redirectMap(map, key: 0) : .redirect
        }
        f.inject(4)
        f.poll()
        #expect(f.transmitters[0].bulkSizes == [3])
        #expect(f.ingress.statistics.drops == [.redirectInvalid: 1])
        f.expectConservation()
    }

    /// A helper's request the program does not act on (it returns XDP_PASS) waits in the per-CPU redirect info,
    /// also into the next poll, until a redirect consumes it: a later redirect with its own helper call replaces
    /// and consumes it (so a bare XDP_REDIRECT after that fails), a bare XDP_REDIRECT uses it.
    @Test func aRequestLeftBehindIsConsumedByTheNextRedirect() throws {
        let f = try fastFixture { n, map, ctx in
            switch n {
            case 2, 5, 8:
                _ = ctx.redirectMap(map, key: 2)
                return .pass
            case 1: return ctx.redirectMap(map, key: 1)
            case 3: return ctx.redirectMap(map, key: 0)
            case 6: return ctx.redirectMap(map, key: 3)
            default: return .redirect  // frames 4, 7 and 9: no helper
            }
        }
        for (frames, now) in [(4, 100), (1, 200), (2, 300), (1, 400), (1, 500)] as [(Int, Nanos)] {
            f.inject(frames)
            f.poll(now: now)
        }
        #expect(f.transmitters[1].calls.map(\.frames) == [[1]])
        #expect(f.transmitters[0].calls.map(\.frames) == [[3]])
        #expect(f.transmitters[3].calls.map(\.frames) == [[6]])
        #expect(f.transmitters[2].calls.map(\.frames) == [[9]])
        #expect(f.stack.received.map(\.sequence) == [2, 5, 8])
        #expect(f.ingress.statistics.drops == [.redirectInvalid: 2])
        f.expectConservation()
    }

    /// The poll loop finishes the usual frames (a redirect into the fast map that transmits nothing, a plain
    /// XDP_DROP) in an inner loop and hands every other frame to the full path, then goes on with the next. One
    /// poll whose frames stop the inner loop in every way it can stop (a full queue, an empty slot, a target that
    /// is too small, XDP_PASS, a drop while a drop observer watches) must come out frame for frame as the full path
    /// alone (events on) makes it.
    @Test func theUsualFramesLoopStopsAtEachOtherFrameAndGoesOn() throws {
        final class Observer: DropObserver {
            var seen: [UInt64] = []
            func dropped(_ frame: FrameID, reason: DropReason, device: NetDevice, worker: Worker) {
                seen.append(worker.pool.info(frame).pointee.sequence)
            }
        }
        func run(events: Bool, observed: Bool) throws -> (Outcome, [UInt64]) {
            let f = try Fixture()
            f.worker.events.isEnabled = events
            let observer = Observer()
            if observed { f.worker.dropObserver = observer }
            f.targets[3].mtu = 30
            f.attachNumbered { n, map, ctx in
                switch n {
                case 1...20, 23...40: return ctx.redirectMap(map, key: 0)  // the 17th and 33rd find the queue full
                case 21, 45: return .drop
                case 22: return ctx.redirectMap(map, key: 7)  // empty slot
                case 41: return ctx.redirectMap(map, key: 3)  // too big for target 3
                case 42: return .pass
                default: return ctx.redirectMap(map, key: UInt32(n % 3))
                }
            }
            f.inject(60, length: 60)
            f.poll(now: 100)
            f.expectConservation()
            let outcome = Outcome(
                calls: f.transmitters.map(\.calls), passed: f.stack.received.map(\.sequence),
                statistics: ([f.ingress] + f.targets).map(\.statistics),
                mapStatistics: f.map.statistics())
            return (outcome, observer.seen)
        }
        for observed in [false, true] {
            let (usual, usualDrops) = try run(events: false, observed: observed)
            let (full, fullDrops) = try run(events: true, observed: observed)
            #expect(usual == full)
            #expect(usualDrops == fullDrops)
            #expect(usual.calls[0].map(\.frames.count).prefix(2) == [16, 16])
            #expect(usual.statistics[0].drops == [.programDrop: 2, .redirectInvalid: 1, .redirectTooBig: 1])
            #expect(usual.passed == [42])
            if observed { #expect(usualDrops == [21, 22, 41, 45]) }
        }
    }

    @Test func aFailedFirstRedirectLeavesNothingToFlush() throws {
        let f = try Fixture()
        f.worker.events.isEnabled = false
        let other = try f.network.createDevMap(maxEntries: 2)
        try other.update(key: 0, ifindex: f.targets[3].ifindex)
        let map = f.map
        var n = 0
        f.network.attach(
            ClosureProgram { ctx in
                n += 1
                // Frame 1 into an empty slot of map A (fails), frames 2-3 into map B, frame 4 into map A: B is
                // flushed before frame 4 is queued, A at the end of the poll.
                switch n {
                case 1: return ctx.redirectMap(map, key: 6)
                case 2, 3: return ctx.redirectMap(other, key: 0)
                default: return ctx.redirectMap(map, key: 1)
                }
            }, to: f.ingress)
        f.inject(4)
        f.poll(now: 50)
        #expect(f.transmitters[3].calls.map(\.frames) == [[2, 3]])
        #expect(f.transmitters[1].calls.map(\.frames) == [[4]])
        #expect(f.transmitters[3].calls.map(\.flush) == [true] && f.transmitters[1].calls.map(\.flush) == [true])
        #expect(f.ingress.statistics.drops == [.redirectInvalid: 1])
        f.expectConservation()
    }

    @Test func thePoolTellsWhetherAFrameMayLackTheXDPFrameHeadroom() {
        let pool = FramePool(capacity: 4)
        #expect(!pool.mayHoldShortHeadroom)
        pool.give(pool.take(headroom: KernelConstants.xdpFrameSize)!)
        #expect(!pool.mayHoldShortHeadroom)
        pool.give(pool.take(headroom: KernelConstants.xdpFrameSize - 1)!)
        #expect(pool.mayHoldShortHeadroom)  // sticky
        pool.give(pool.take()!)
        #expect(pool.mayHoldShortHeadroom)
        #expect(FramePool(capacity: 4, headroom: 16).mayHoldShortHeadroom)
    }

    /// The fast path leaves the headroom check out only while the pool has handed out no short frame: a short
    /// frame arriving after the fast path has served a poll still fails with EOVERFLOW, and its neighbours in
    /// the same poll are still sent.
    @Test func aShortHeadroomFrameAfterFastPolls() throws {
        let f = try Fixture()
        f.worker.events.isEnabled = false
        f.network.attach(RedirectToKey(map: f.map, key: 2), to: f.ingress)
        f.inject(8)
        f.poll(now: 100)
        #expect(f.transmitters[2].bulkSizes == [8])
        let bytes = FrameInjector.ethernet(
            destination: MACAddress(0x02, 0, 0, 0, 0, 0xff), source: f.ingress.mac,
            length: 64)
        for headroom in [256, 31, 32, 0, 256] {
            #expect(f.injector.inject(bytes, into: f.ingress, worker: f.worker, headroom: headroom) != nil)
        }
        f.poll(now: 200)
        #expect(f.transmitters[2].bulkSizes == [8, 3])
        #expect(f.ingress.statistics.drops == [.redirectOverflow: 2])
        f.expectConservation()
    }
}
