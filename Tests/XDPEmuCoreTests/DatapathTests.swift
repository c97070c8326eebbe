import Testing
import XDPEmuCore
import XDPEmuTesting

/// Bulk queues, flushes, transmit accounting and redirect errors, with the fake device.
@Suite struct DatapathTests {
    @Test func fortyFramesToOneEntryGiveBulksOf16_16_8() throws {
        let f = try Fixture()
        f.network.attach(RedirectToKey(map: f.map, key: 1), to: f.ingress)
        f.inject(40)
        #expect(f.poll(now: 5000) == 40)
        #expect(f.transmitters[1].bulkSizes == [16, 16, 8])
        // A full queue is transmitted without XDP_XMIT_FLUSH; the end-of-poll flush sets it.
        #expect(f.transmitters[1].calls.map(\.flush) == [false, false, true])
        let xmits = f.events(.devmapXmit)
        #expect(xmits.map(\.sent) == [16, 16, 8])
        #expect(
            xmits.allSatisfy {
                $0.drops == 0 && $0.error == 0 && $0.mapID == f.map.id && $0.mapIndex == 1
                    && $0.fromIfindex == f.ingress.ifindex.rawValue && $0.toIfindex == f.targets[1].ifindex.rawValue
                    && $0.action == 4
            })
        // Frames leave in arrival order.
        #expect(f.transmitters[1].sentFrames.map(\.sequence) == Array(1...40))
        #expect(f.map.statistics()[1] == MapEntryStatistics(sent: 40, drops: 0, flushes: 3))
        f.expectConservation()
    }

    @Test func redirectEventsCarryTheTracepointFields() throws {
        let f = try Fixture()
        let programID = f.network.attach(RedirectToKey(map: f.map, key: 2), to: f.ingress)
        f.inject(2)
        f.poll(now: 777)
        let events = f.events()
        #expect(events.map(\.kind) == [.redirectMap, .redirectMap, .devmapXmit])
        let first = events[0]
        #expect(first.programID == programID && first.action == 4 && first.ifindex == f.ingress.ifindex.rawValue)
        #expect(first.toIfindex == f.targets[2].ifindex.rawValue && first.mapID == f.map.id && first.mapIndex == 2)
        #expect(first.error == 0 && first.time == 777 && first.frame == 1)
        f.expectConservation()
    }

    @Test func flushHappensAtTheEndOfEveryPoll() throws {
        let f = try Fixture()
        f.network.attach(RedirectToKey(map: f.map, key: 0), to: f.ingress)
        f.inject(100)
        #expect(f.poll(budget: 64, now: 10) == 64)
        // 64 frames: four full queues; the fourth is sent by the flush at the end of the poll.
        #expect(f.transmitters[0].bulkSizes == [16, 16, 16, 16])
        #expect(f.transmitters[0].calls.last?.flush == true)
        #expect(!f.map.isMarkedForFlush(0))
        #expect(f.poll(budget: 64, now: 20) == 36)
        #expect(f.transmitters[0].bulkSizes == [16, 16, 16, 16, 16, 16, 4])
        #expect(f.transmitters[0].calls.map(\.time).suffix(3) == [20, 20, 20])
        #expect(f.poll(budget: 64, now: 30) == 0)
        f.expectConservation()
    }

    @Test func flushTimeIncludesTheFrameCost() throws {
        let f = try Fixture()
        f.network.attach(RedirectToKey(map: f.map, key: 0), to: f.ingress)
        f.worker.frameCost = 10
        f.inject(20)
        f.poll(now: 1000)
        // The 17th frame finds the queue full at 1000 + 16 * 10; the flush runs after all 20 frames.
        #expect(f.transmitters[0].calls.map(\.time) == [1160, 1200])
        f.expectConservation()
    }

    @Test func framesToSeveralEntriesAreFlushedInKeyOrder() throws {
        let f = try Fixture()
        var n: UInt32 = 0
        let map = f.map
        f.network.attach(
            ClosureProgram { ctx in
                n += 1
                return ctx.redirectMap(map, key: 3 - n % 4)
            }, to: f.ingress)
        f.inject(8)
        f.poll()
        let xmits = f.events(.devmapXmit)
        #expect(xmits.map(\.mapIndex) == [0, 1, 2, 3])
        #expect(xmits.map(\.sent) == [2, 2, 2, 2])
        f.expectConservation()
    }

    @Test func redirectIntoAnotherMapFlushesThePreviousMap() throws {
        let f = try Fixture()
        let other = try f.network.createDevMap(maxEntries: 2)
        try other.update(key: 0, ifindex: f.targets[3].ifindex)
        let map = f.map
        var n = 0
        f.network.attach(
            ClosureProgram { ctx in
                n += 1
                // Frames 1-3 into map A, 4-5 into map B, 6 into map A again.
                return n <= 3 || n == 6 ? ctx.redirectMap(map, key: 0) : ctx.redirectMap(other, key: 0)
            }, to: f.ingress)
        f.inject(6)
        f.poll()
        let xmits = f.events(.devmapXmit)
        #expect(xmits.map(\.mapID) == [map.id, other.id, map.id])
        #expect(xmits.map(\.sent) == [3, 2, 1])
        #expect(f.transmitters[0].calls.map(\.flush) == [true, true])
        f.expectConservation()
    }

    @Test func partialTransmitDropsTheRest() throws {
        let f = try Fixture()
        f.transmitters[0].script = [.send(10), .sendAll]
        f.network.attach(RedirectToKey(map: f.map, key: 0), to: f.ingress)
        f.inject(20)
        f.poll()
        let xmits = f.events(.devmapXmit)
        #expect(xmits.map(\.sent) == [10, 4])
        #expect(xmits.map(\.drops) == [6, 0])
        #expect(xmits[0].error == 0)
        #expect(f.targets[0].statistics.drops == [.xmitUnsent: 6])
        #expect(f.transmitters[0].sentFrames.map(\.sequence) == Array(1...10) + Array(17...20))
        #expect(f.map.statistics()[0] == MapEntryStatistics(sent: 14, drops: 6, flushes: 2))
        f.expectConservation()
    }

    @Test func errnoTransmitDropsTheWholeBulk() throws {
        let f = try Fixture()
        f.transmitters[0].script = [.fail(.ENXIO)]
        f.network.attach(RedirectToKey(map: f.map, key: 0), to: f.ingress)
        f.inject(5)
        f.poll()
        let xmit = try #require(f.events(.devmapXmit).first)
        #expect(xmit.sent == 0 && xmit.drops == 5 && xmit.error == -KernelErrno.ENXIO.rawValue)
        #expect(f.targets[0].statistics.drops == [.xmitError: 5])
        #expect(f.targets[0].statistics.txPackets == 0)
        f.expectConservation()
    }

    @Test func missingEntryDropsWithEINVAL() throws {
        let f = try Fixture()
        f.network.attach(RedirectToKey(map: f.map, key: 6), to: f.ingress)
        f.inject(3)
        f.poll()
        let errors = f.events(.redirectMapErr)
        #expect(errors.count == 3)
        #expect(errors.allSatisfy { $0.error == -22 && $0.toIfindex == 0 && $0.mapIndex == 6 })
        #expect(f.ingress.statistics.drops == [.redirectInvalid: 3])
        #expect(f.events(.devmapXmit).isEmpty)
        f.expectConservation()
    }

    @Test func keyBeyondMaxEntriesDropsWithEINVAL() throws {
        let f = try Fixture()
        f.network.attach(RedirectToKey(map: f.map, key: 0xffff_ffff), to: f.ingress)
        f.inject(1)
        f.poll()
        #expect(f.events(.redirectMapErr).map(\.error) == [-22])
        f.expectConservation()
    }

    @Test func enqueueChecksInKernelOrder() throws {
        let network = Network()
        let stack = RecordingStack()
        let ingress = try network.addDevice(name: "in", transmitter: FakeTransmitter(), stack: stack)
        let noXmit = try network.addDevice(name: "lo", up: false, transmitter: nil)
        let down = try network.addDevice(name: "down", mtu: 100, up: false, transmitter: FakeTransmitter())
        let small = try network.addDevice(name: "small", mtu: 1500, transmitter: FakeTransmitter())
        let map = try network.createDevMap(maxEntries: 4)
        try map.update(key: 0, ifindex: noXmit.ifindex)  // accepted at update time
        try map.update(key: 1, ifindex: down.ifindex)
        try map.update(key: 2, ifindex: small.ifindex)
        let worker = network.workers[0]
        worker.events.isEnabled = true
        var key: UInt32 = 0
        network.attach(ClosureProgram { $0.redirectMap(map, key: key) }, to: ingress)
        var injector = FrameInjector()
        func send(_ length: Int, key k: UInt32, headroom: Int? = nil) -> Int32 {
            key = k
            let bytes = FrameInjector.ethernet(destination: small.mac, source: ingress.mac, length: length)
            #expect(injector.inject(bytes, into: ingress, worker: worker, headroom: headroom) != nil)
            worker.poll(ingress, budget: 64, now: 0)
            let events = worker.events.takeAll().filter { $0.kind == .redirectMapErr || $0.kind == .redirectMap }
            return events.first?.error ?? 1
        }
        #expect(send(1600, key: 0) == -KernelErrno.EOPNOTSUPP.rawValue)  // before the down and size checks
        #expect(send(1600, key: 1) == -KernelErrno.ENETDOWN.rawValue)  // before the size check
        #expect(send(1519, key: 2) == -KernelErrno.EMSGSIZE.rawValue)
        #expect(send(1518, key: 2) == 0)  // mtu + 14 + 4 passes
        #expect(send(64, key: 2, headroom: 31) == -KernelErrno.EOVERFLOW.rawValue)
        #expect(send(64, key: 2, headroom: 32) == 0)
        let s = ingress.statistics
        #expect(s.drops == [.redirectNotSupported: 1, .redirectDown: 1, .redirectTooBig: 1, .redirectOverflow: 1])
        #expect(s.redirected == 2)
        network.quiesceAll()
        #expect(worker.pool.outstanding == 0)
    }

    @Test func helperFlagsAndUnknownActionsAbort() throws {
        let f = try Fixture()
        let map = f.map
        var n: UInt32 = 0
        let programID = f.network.attach(
            ClosureProgram { ctx in
                n += 1
                switch n {
                case 1: return ctx.redirectMap(map, key: 0, flags: 1)  // 4.18: any flag aborts
                case 2: return XDPAction(rawValue: 7)
                case 3: return .aborted
                default: return ctx.redirect(ifindex: IfIndex(1), flags: 2)
                }
            }, to: f.ingress)
        f.inject(4)
        f.poll()
        let exceptions = f.events(.exception)
        #expect(exceptions.map(\.action) == [0, 7, 0, 0])
        #expect(exceptions.allSatisfy { $0.programID == programID && $0.ifindex == f.ingress.ifindex.rawValue })
        #expect(f.ingress.statistics.drops == [.aborted: 4])
        f.expectConservation()
    }

    @Test func redirectWithoutHelperFailsWithEINVAL() throws {
        let f = try Fixture()
        f.network.attach(ClosureProgram { _ in .redirect }, to: f.ingress)
        f.inject(1)
        f.poll()
        let event = try #require(f.events(.redirectErr).first)
        #expect(event.error == -22 && event.toIfindex == 0 && event.mapID == 0)
        f.expectConservation()
    }

    @Test func plainRedirectSendsAtOnce() throws {
        let f = try Fixture()
        let target = f.targets[2].ifindex
        var n = 0
        f.network.attach(
            ClosureProgram { ctx in
                n += 1
                return ctx.redirect(ifindex: n == 3 ? IfIndex(4242) : target)
            }, to: f.ingress)
        f.inject(3)
        f.poll()
        #expect(f.transmitters[2].bulkSizes == [1, 1])
        #expect(f.transmitters[2].calls.allSatisfy { $0.flush })
        #expect(f.events(.redirect).map(\.toIfindex) == [target.rawValue, target.rawValue])
        #expect(f.events(.redirectErr).isEmpty)  // already drained above: check counters instead
        #expect(f.ingress.statistics.drops == [.redirectInvalid: 1])
        f.expectConservation()
    }

    @Test func txIsBulkedAndSentAtPollEnd() throws {
        let f = try Fixture()
        var n = 0
        let map = f.map
        f.network.attach(
            ClosureProgram { ctx in
                n += 1
                return n % 2 == 0 ? .tx : ctx.redirectMap(map, key: 0)
            }, to: f.ingress)
        f.inject(6)
        f.poll(now: 50)
        #expect(f.ingressTransmitter.bulkSizes == [3])
        #expect(f.ingressTransmitter.calls[0].flush && f.ingressTransmitter.calls[0].time == 50)
        #expect(f.ingressTransmitter.sentFrames.map(\.sequence) == [2, 4, 6])
        #expect(f.ingress.statistics.xdpTx == 3)
        f.expectConservation()
    }

    @Test func txWithoutTransmitterRaisesExceptions() throws {
        let network = Network()
        let port = try network.addDevice(name: "p", transmitter: nil)
        network.workers[0].events.isEnabled = true
        network.attach(ConstantProgram(.tx), to: port)
        var injector = FrameInjector()
        injector.inject(count: 2, into: port, worker: network.workers[0])
        network.workers[0].poll(port, budget: 64, now: 0)
        let events = network.workers[0].events.takeAll().filter { $0.kind == .exception }
        #expect(events.map(\.action) == [3, 3])
        #expect(port.statistics.drops == [.txError: 2])
        #expect(network.workers[0].pool.outstanding == 0)
    }

    @Test func passGoesToTheLocalStackAndDropIsCounted() throws {
        let f = try Fixture()
        var n = 0
        f.network.attach(
            ClosureProgram { _ in
                n += 1
                return n == 1 ? .drop : .pass
            }, to: f.ingress)
        f.inject(3, length: 90)
        f.poll()
        #expect(f.stack.received.map(\.sequence) == [2, 3])
        #expect(f.stack.received[0].bytes.count == 90)
        #expect(f.ingress.statistics.passed == 2)
        #expect(f.ingress.statistics.drops == [.programDrop: 1])
        f.expectConservation()
    }

    @Test func noProgramPassesEverything() throws {
        let f = try Fixture()
        f.inject(2)
        f.poll()
        #expect(f.stack.received.count == 2)
        f.expectConservation()
    }

    @Test func eventsCostNothingWhenDisabled() throws {
        let f = try Fixture()
        f.worker.events.isEnabled = false
        f.network.attach(RedirectToKey(map: f.map, key: 5), to: f.ingress)
        f.inject(10)
        f.poll()
        #expect(f.worker.events.count == 0 && f.worker.events.lost == 0)
        f.expectConservation()
    }

    @Test func fullEventRingCountsLostEvents() throws {
        let network = Network(eventCapacity: 4)
        let port = try network.addDevice(name: "p", transmitter: nil)
        network.workers[0].events.isEnabled = true
        network.attach(ConstantProgram(.aborted), to: port)
        var injector = FrameInjector()
        injector.inject(count: 5, into: port, worker: network.workers[0])
        network.workers[0].poll(port, budget: 64, now: 0)
        // 5 exceptions + 5 drops: 4 kept, 6 lost.
        #expect(network.workers[0].events.count == 4)
        #expect(network.workers[0].events.lost == 6)
    }

    @Test func dropObserverSeesEveryDrop() throws {
        final class Observer: DropObserver {
            var seen: [(UInt64, DropReason)] = []
            func dropped(_ frame: FrameID, reason: DropReason, device: NetDevice, worker: Worker) {
                seen.append((worker.pool.info(frame).pointee.sequence, reason))
            }
        }
        let f = try Fixture()
        let observer = Observer()
        f.worker.dropObserver = observer
        f.transmitters[0].script = [.send(1)]
        f.network.attach(RedirectToKey(map: f.map, key: 0), to: f.ingress)
        f.inject(3)
        f.poll()
        #expect(observer.seen.map(\.0) == [2, 3])
        #expect(observer.seen.map(\.1) == [.xmitUnsent, .xmitUnsent])
        f.expectConservation()
    }

    @Test func budgetLimitsAPoll() throws {
        let f = try Fixture()
        f.network.attach(ConstantProgram(.drop), to: f.ingress)
        f.inject(10)
        #expect(f.poll(budget: 4) == 4)
        #expect(f.ingress.rxRing.count == 6)
        #expect(f.poll(budget: 64) == 6)
        f.expectConservation()
    }

    @Test func floodClonesToEveryOtherEntry() throws {
        let f = try Fixture()
        let map = f.map
        try map.update(key: 4, ifindex: f.ingress.ifindex)
        f.targets[3].isUp = false  // skipped silently
        f.network.attach(ClosureProgram { $0.floodMap(map, excludeIngress: true) }, to: f.ingress)
        f.inject(2)
        f.poll()
        for i in 0..<3 { #expect(f.transmitters[i].sentFrames.map(\.sequence) == [1, 2]) }
        #expect(f.transmitters[3].sentFrames.isEmpty)
        #expect(f.ingressTransmitter.sentFrames.isEmpty)
        #expect(f.ingress.statistics.cloned == 4)
        f.expectConservation()
    }
}
