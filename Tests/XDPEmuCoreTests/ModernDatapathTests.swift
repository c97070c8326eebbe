import Testing
import XDPEmuCore
import XDPEmuTesting

/// The modern profile's datapath (Linux 5.14 and later): the helper's lookup and miss actions, flag checks,
/// BPF_F_BROADCAST and EXCLUDE_INGRESS, per-device bulk queues, devmap_hash, egress programs, partial transmits.
@Suite struct ModernDatapathTests {
    func fixture(mapType: DevMapType = .array, poolCapacity: Int = 1024) throws -> Fixture {
        try Fixture(semantics: .modern, mapType: mapType, poolCapacity: poolCapacity)
    }

    @Test("a miss returns the low two bits of the flags; other flag bits give ABORTED even for a present key")
    func missActionsAndFlagChecks() throws {
        let f = try fixture()
        var results: [XDPAction] = []
        f.attachNumbered { n, map, ctx in
            let action: XDPAction
            switch n {
            case 1: action = ctx.redirectMap(map, key: 6, flags: 0)  // empty slot: ABORTED
            case 2: action = ctx.redirectMap(map, key: 6, flags: 1)  // DROP
            case 3: action = ctx.redirectMap(map, key: 6, flags: 2)  // PASS
            case 4: action = ctx.redirectMap(map, key: 0, flags: 32)  // unknown flag: ABORTED
            default: action = ctx.redirectMap(map, key: 1, flags: 2)  // hit: REDIRECT, flags ignored
            }
            results.append(action)
            return action
        }
        f.inject(5)
        f.poll()
        #expect(results == [.aborted, .drop, .pass, .aborted, .redirect])
        #expect(f.stack.received.map(\.sequence) == [3])
        #expect(f.transmitters[1].sentFrames.map(\.sequence) == [5])
        #expect(f.ingress.statistics.drops[.aborted] == 2)
        #expect(f.ingress.statistics.drops[.programDrop] == 1)
        #expect(f.events(.exception).count == 2)
        f.expectConservation()
    }

    @Test("frames to one device share one bulk queue, whatever the key or map; 17 frames are two transmits")
    func oneQueuePerDevice() throws {
        let f = try fixture()
        let second = try f.network.createDevMap(maxEntries: 4)
        try second.update(key: 3, ifindex: f.targets[0].ifindex)
        try f.map.update(key: 5, ifindex: f.targets[0].ifindex)
        f.attachNumbered { n, map, ctx in
            switch n % 3 {
            case 0: ctx.redirectMap(map, key: 0)
            case 1: ctx.redirectMap(map, key: 5)
            default: ctx.redirectMap(second, key: 3)
            }
        }
        f.inject(17)
        f.poll()
        #expect(f.transmitters[0].bulkSizes == [16, 1])
        #expect(f.transmitters[0].sentFrames.map(\.sequence) == Array(1...17))
        #expect(f.transmitters[0].calls.map(\.flush) == [false, true])
        let xmits = f.events(.devmapXmit)
        #expect(xmits.map(\.sent) == [16, 1])
        #expect(xmits.allSatisfy { $0.mapID == 0 && $0.fromIfindex == f.ingress.ifindex.rawValue })
        f.expectConservation()
    }

    @Test("the flush sends the newest listed device first")
    func flushOrder() throws {
        let f = try fixture()
        f.attachNumbered { n, map, ctx in ctx.redirectMap(map, key: UInt32(n - 1) % 3) }
        f.inject(3)
        f.poll()
        let order = f.events(.devmapXmit).map(\.toIfindex)
        #expect(order == [f.targets[2], f.targets[1], f.targets[0]].map(\.ifindex.rawValue))
        f.expectConservation()
    }

    @Test("a partial transmit frees the unsent frames; the event counts them as drops")
    func partialTransmit() throws {
        let f = try fixture()
        f.transmitters[0].script = [.send(1)]
        f.transmitters[1].script = [.fail(.ENXIO)]
        f.attachNumbered { n, map, ctx in ctx.redirectMap(map, key: n <= 3 ? 0 : 1) }
        f.inject(5)
        f.poll()
        #expect(f.transmitters[0].sentFrames.map(\.sequence) == [1])
        #expect(f.targets[0].statistics.drops[.xmitUnsent] == 2)
        #expect(f.targets[1].statistics.drops[.xmitError] == 2)
        let xmits = f.events(.devmapXmit)
        #expect(xmits.map(\.sent) == [0, 1])
        #expect(xmits.map(\.drops) == [2, 2])
        #expect(xmits.map(\.error) == [-KernelErrno.ENXIO.rawValue, 0])
        f.expectConservation()
    }

    @Test("broadcast: a copy to every usable entry, down and too-small targets skipped, the ingress excluded")
    func broadcast() throws {
        let f = try fixture()
        try f.map.update(key: 4, ifindex: f.ingress.ifindex)
        f.targets[2].isUp = false
        f.targets[3].mtu = 40
        f.attachNumbered { n, map, ctx in
            let exclude = n == 1 ? RedirectMapFlags.excludeIngress : 0
            return ctx.redirectMap(map, key: 99, flags: RedirectMapFlags.broadcast | exclude)
        }
        f.inject(2, length: 100)
        f.poll()
        #expect(f.transmitters[0].sentFrames.map(\.sequence) == [1, 2])
        #expect(f.transmitters[1].sentFrames.map(\.sequence) == [1, 2])
        #expect(f.transmitters[2].sentFrames.isEmpty)
        #expect(f.transmitters[3].sentFrames.isEmpty)
        #expect(f.ingressTransmitter.sentFrames.map(\.sequence) == [2])
        #expect(f.ingress.statistics.cloned == 3)
        let redirects = f.events(.redirectMap)
        #expect(redirects.map(\.toIfindex) == [0, 0])
        #expect(redirects.map(\.mapIndex) == [99, 99])
        f.expectConservation()
    }

    @Test("broadcast with no usable target frees the frame without an error")
    func broadcastWithoutTargets() throws {
        let f = try fixture()
        for target in f.targets { target.isUp = false }
        f.attachNumbered { _, map, ctx in ctx.redirectMap(map, key: 0, flags: RedirectMapFlags.broadcast) }
        f.inject(1)
        f.poll()
        #expect(f.ingress.statistics.drops[.noBroadcastTarget] == 1)
        #expect(f.events(.redirectMapErr).isEmpty)
        f.expectConservation()
    }

    @Test("broadcast out of frames fails with ENOMEM and keeps the copies it queued")
    func broadcastOutOfFrames() throws {
        let f = try fixture(poolCapacity: 2)
        f.attachNumbered { _, map, ctx in ctx.redirectMap(map, key: 0, flags: RedirectMapFlags.broadcast) }
        f.inject(1)
        f.poll()
        #expect(f.transmitters[0].sentFrames.map(\.sequence) == [1])
        #expect(f.transmitters[1].sentFrames.isEmpty)
        let errors = f.events(.redirectMapErr)
        #expect(errors.map(\.error) == [-KernelErrno.ENOMEM.rawValue])
        f.expectConservation()
    }

    @Test("devmap_hash: any key, broadcast in bucket order, newest first within a bucket")
    func hashMap() throws {
        let f = try fixture(mapType: .hash)
        // The fixture put keys 0...3 in (buckets 0...3 of 8); add 4000000008 (bucket 0) and 17 (bucket 1).
        try f.map.update(key: 4_000_000_008, ifindex: f.targets[3].ifindex)
        try f.map.update(key: 17, ifindex: f.targets[2].ifindex)
        try f.map.delete(key: 3)
        f.attachNumbered { n, map, ctx in
            n == 1
                ? ctx.redirectMap(map, key: 4_000_000_008)
                : ctx.redirectMap(map, key: 0, flags: RedirectMapFlags.broadcast)
        }
        f.inject(2)
        f.poll()
        #expect(f.transmitters[3].sentFrames.map(\.sequence) == [1, 2])
        #expect(f.transmitters[0].sentFrames.map(\.sequence) == [2])
        // Broadcast order: bucket 0 (4000000008 newest, then 0), bucket 1 (17, then 1), bucket 2 (2): the copies
        // go to out3, out0, out2, out1 and the original to out2 (key 2).
        #expect(f.transmitters[2].sentFrames.map(\.sequence) == [2, 2])
        #expect(f.ingress.statistics.cloned == 4)
        #expect(try f.map.nextKey(after: nil) == 4_000_000_008)
        #expect(try f.map.nextKey(after: 4_000_000_008) == 0)
        #expect(try f.map.nextKey(after: 0) == 17)
        f.expectConservation()
    }

    @Test("an egress program runs at flush with egress_ifindex set; DROP and ABORTED frames count as xmit drops")
    func egressProgram() throws {
        let f = try fixture()
        var seen: [(UInt32, UInt32)] = []
        let egress = f.network.makeEgressProgram(
            ClosureProgram { ctx in
                seen.append((ctx.ingressIfindex.rawValue, ctx.egressIfindex.rawValue))
                switch seen.count {
                case 1: return .drop
                case 2: return .aborted
                default: return .pass
                }
            })
        try f.map.update(key: 0, ifindex: f.targets[0].ifindex, program: egress)
        #expect(try f.map.lookupValue(key: 0).programID == egress.programID)
        f.attachNumbered { _, map, ctx in ctx.redirectMap(map, key: 0) }
        f.inject(3)
        f.poll()
        #expect(seen.map(\.0) == Array(repeating: f.ingress.ifindex.rawValue, count: 3))
        #expect(seen.map(\.1) == Array(repeating: f.targets[0].ifindex.rawValue, count: 3))
        #expect(f.transmitters[0].sentFrames.map(\.sequence) == [3])
        #expect(f.targets[0].statistics.drops[.egressDrop] == 1)
        #expect(f.targets[0].statistics.drops[.egressAborted] == 1)
        let xmit = f.events(.devmapXmit)
        #expect(xmit.map(\.sent) == [1])
        #expect(xmit.map(\.drops) == [2])
        f.expectConservation()
    }

    @Test("plain bpf_redirect queues into the device's bulk queue")
    func plainRedirectIsBulked() throws {
        let f = try fixture()
        let target = f.targets[1].ifindex
        f.network.attach(ClosureProgram { $0.redirect(ifindex: target) }, to: f.ingress)
        f.inject(3)
        f.poll()
        #expect(f.transmitters[1].bulkSizes == [3])
        f.expectConservation()
    }

    @Test("each worker has its own queue of a device: two CPUs redirecting to one target bulk separately")
    func perCPUDeviceQueues() throws {
        let f = try Fixture(workers: 2, semantics: .modern)
        let second = try f.network.addDevice(name: "in1", transmitter: FakeTransmitter())
        let map = f.map
        for device in [f.ingress, second] {
            f.network.attach(ClosureProgram { $0.redirectMap(map, key: 0) }, to: device)
        }
        f.inject(3, into: f.ingress, worker: f.network.workers[0])
        f.inject(2, into: second, worker: f.network.workers[1])
        f.poll(f.ingress, worker: f.network.workers[0])
        f.poll(second, worker: f.network.workers[1])
        #expect(f.transmitters[0].bulkSizes == [3, 2])
        #expect(f.transmitters[0].calls.map(\.cpu) == [0, 1])
        f.expectConservation(extra: [second])
    }
}
