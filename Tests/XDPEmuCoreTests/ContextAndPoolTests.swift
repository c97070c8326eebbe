import Testing
import XDPEmuCore
import XDPEmuTesting

/// The program context's helpers and the frame pool.
@Suite struct ContextAndPoolTests {
    /// Runs `body` as the program on one 64-byte frame received with `headroom`, and returns what the context
    /// looked like afterwards (data offset, length, metadata length) plus the helper results.
    func withContext(
        headroom: Int = 256, length: Int = 64, semantics: Semantics = .v4_18,
        _ body: @escaping (inout XDPContext) -> [Int32]
    ) throws -> (results: [Int32], info: FrameInfo) {
        let network = Network(semantics: semantics)
        let stack = RecordingStack()
        let port = try network.addDevice(name: "p", transmitter: nil, stack: stack, rxHeadroom: headroom)
        var results = [Int32]()
        var seen: FrameInfo?
        final class Capture: LocalStack {
            var info: FrameInfo?
            func receive(_ frame: FrameID, device: NetDevice, worker: Worker) {
                info = worker.pool.info(frame).pointee
                worker.pool.give(frame)
            }
        }
        let capture = Capture()
        let port2 = try network.addDevice(name: "q", transmitter: nil, stack: capture, rxHeadroom: headroom)
        _ = port
        network.attach(
            ClosureProgram { ctx in
                results = body(&ctx)
                return .pass
            }, to: port2)
        var injector = FrameInjector()
        injector.inject(count: 1, length: length, into: port2, worker: network.workers[0])
        network.workers[0].poll(port2, budget: 1, now: 0)
        seen = capture.info
        return (results, try #require(seen))
    }

    @Test func adjustHeadBounds() throws {
        let r = try withContext { ctx in
            [
                ctx.adjustHead(-224),  // 256 - 224 = 32: exactly the xdp_frame reserve
                ctx.adjustHead(-1),  // into the reserve
                ctx.adjustHead(224 + 50),  // shrink by 50 from the original start
                ctx.adjustHead(1),
            ]  // would leave 13 bytes
        }
        #expect(r.results == [0, -22, 0, -22])
        #expect(r.info.dataOffset == 306 && r.info.length == 14)
    }

    @Test func adjustMetaBoundsAndAlignment() throws {
        let r = try withContext { ctx in
            [
                ctx.adjustMeta(-6),  // not a multiple of 4
                ctx.adjustMeta(-36),  // over 32
                ctx.adjustMeta(-8),
                ctx.adjustMeta(1),  // 7 bytes
                ctx.adjustMeta(9),
            ]  // past data
        }
        #expect(r.results == [-13, -13, 0, -13, -22])
        #expect(r.info.metaLength == 8)
    }

    @Test func adjustMetaRespectsTheFrameReserve() throws {
        let r = try withContext(headroom: 40) { ctx in [ctx.adjustMeta(-12), ctx.adjustMeta(-8)] }
        #expect(r.results == [-22, 0])
    }

    @Test func adjustHeadMovesTheMetadata() throws {
        let r = try withContext { ctx in
            _ = ctx.adjustMeta(-4)
            ctx.metadata.storeBytes(of: 0xdead_beef as UInt32, toByteOffset: 0, as: UInt32.self)
            let result = ctx.adjustHead(-10)
            let moved = ctx.metadata.loadUnaligned(as: UInt32.self)
            return [result, moved == 0xdead_beef ? 1 : 0, Int32(ctx.metaLength)]
        }
        #expect(r.results == [0, 1, 4])
        #expect(r.info.dataOffset == 246 && r.info.length == 74 && r.info.metaLength == 4)
    }

    @Test func adjustTailOnlyShrinksIn418() throws {
        let r = try withContext { ctx in
            [ctx.adjustTail(0), ctx.adjustTail(4), ctx.adjustTail(-50), ctx.adjustTail(-1)]
        }
        #expect(r.results == [-22, -22, 0, -22])
        #expect(r.info.length == 14)
    }

    @Test func adjustTailGrowsInModern() throws {
        let r = try withContext(semantics: .modern) { ctx in
            [
                ctx.adjustTail(100), ctx.loadBigEndian(UInt8.self, at: 163).map(Int32.init) ?? -1,
                ctx.adjustTail(100_000),
            ]
        }
        #expect(r.results == [0, 0, -22])
        #expect(r.info.length == 164)
    }

    @Test func boundsCheckedLoads() throws {
        let r = try withContext(length: 20) { ctx in
            [
                ctx.loadBigEndian(UInt16.self, at: 12).map(Int32.init) ?? -1,
                ctx.loadBigEndian(UInt32.self, at: 17) == nil ? 1 : 0,
                ctx.loadBigEndian(UInt32.self, at: 16) == nil ? 1 : 0,
                ctx.storeBigEndian(UInt16(7), at: 19) ? 1 : 0,
            ]
        }
        #expect(r.results == [0x0800, 1, 0, 0])
    }

    @Test func contextExposesXdpMd() throws {
        let network = Network()
        let port = try network.addDevice(name: "p", ifindex: 9, transmitter: nil)
        var seen: (IfIndex, UInt32, IfIndex, Nanos, Int)?
        network.attach(
            ClosureProgram { ctx in
                seen = (ctx.ingressIfindex, ctx.rxQueueIndex, ctx.egressIfindex, ctx.now, ctx.length)
                return .drop
            }, to: port)
        var injector = FrameInjector()
        injector.inject(count: 1, length: 77, into: port, worker: network.workers[0])
        network.workers[0].poll(port, budget: 8, now: 1234)
        let s = try #require(seen)
        #expect(s.0 == IfIndex(9) && s.1 == 0 && s.2 == .none && s.3 == 1234 && s.4 == 77)
    }

    @Test func poolConservesFrames() {
        let pool = FramePool(capacity: 4, bufferSize: 512)
        #expect(pool.bufferSize == 512 && pool.headroom == 256)
        let a = pool.take()
        let b = pool.take()
        let c = pool.take()
        let d = pool.take()
        #expect(pool.take() == nil)
        #expect(pool.outstanding == 4)
        for frame in [a, b, c, d] { pool.give(frame!) }
        #expect(pool.outstanding == 0 && pool.available == 4)
        let bytes: [UInt8] = Array(0..<200)
        let big = [UInt8](repeating: 1, count: 300)
        let f = bytes.withUnsafeBytes { pool.take(copying: $0) }
        #expect(f != nil && Array(pool.packet(f!)) == bytes && pool.info(f!).pointee.dataOffset == 256)
        #expect(big.withUnsafeBytes { pool.take(copying: $0) } == nil)  // does not fit: nothing taken
        #expect(pool.outstanding == 1)
        let copy = pool.clone(f!)
        #expect(copy != nil && Array(pool.packet(copy!)) == bytes)
        pool.give(f!)
        pool.give(copy!)
        #expect(pool.outstanding == 0)
    }

    @Test func batchTakeAndGiveMatchOneByOne() {
        let single = FramePool(capacity: 4, bufferSize: 512)
        let batched = FramePool(capacity: 4, bufferSize: 512)
        let one = (0..<3).map { _ in single.take()! }
        var frames = [FrameID](repeating: FrameID(0), count: 6)
        let taken = frames.withUnsafeMutableBufferPointer { batched.take(into: $0) }
        #expect(taken == 4 && Array(frames[0..<3]) == one)  // same frames, same order; only 4 in the pool
        #expect(batched.outstanding == 4 && batched.info(frames[0]).pointee.dataOffset == 256)
        frames.withUnsafeMutableBufferPointer { batched.give(UnsafeMutableBufferPointer(rebasing: $0[0..<4])) }
        #expect(batched.outstanding == 0)
    }

    @Test func refillOntoARingMatchesTakeThenPush() {
        let single = FramePool(capacity: 8, bufferSize: 512)
        let batched = FramePool(capacity: 8, bufferSize: 512)
        let ring = FrameRing(capacity: 5)
        #expect(ring.push(FrameID(7)) && ring.push(FrameID(7)) && ring.pop() != nil && ring.pop() != nil)  // wraps
        #expect(ring.push(FrameID(9)))
        let one = (0..<4).map { _ in single.take()! }
        let taken = batched.take(6, onto: ring, length: 60, ingress: IfIndex(3))
        #expect(taken == 4 && batched.outstanding == 4)  // only 4 fit on the ring
        #expect((0..<5).map { _ in ring.pop() } == [FrameID(9)] + one.map { Optional($0) })
        for frame in one {
            let info = batched.info(frame).pointee
            #expect(
                info.dataOffset == 256 && info.length == 60 && info.metaLength == 0 && info.missingBytes == 0
                    && info.gsoSize == 0 && info.ingress == IfIndex(3))
            batched.give(frame)
        }
        #expect(batched.outstanding == 0 && ring.isEmpty)
    }

    @Test func returningAFrameTwiceInABatchStopsTheProcess() async {
        await #expect(processExitsWith: .failure) {
            let pool = FramePool(capacity: 2)
            var frames = [pool.take()!]
            frames.append(frames[0])
            frames.withUnsafeMutableBufferPointer { pool.give($0) }
        }
    }

    @Test func ringPushesABatchAsFarAsItFits() {
        let ring = FrameRing(capacity: 3)
        #expect(ring.push(FrameID(1)) && ring.pop() == FrameID(1))  // the batch wraps around the end
        let pushed = [FrameID(2), FrameID(3), FrameID(4), FrameID(5)].withUnsafeBufferPointer {
            ring.push(contentsOf: $0)
        }
        #expect(pushed == 3)
        #expect([ring.pop(), ring.pop(), ring.pop(), ring.pop()] == [FrameID(2), FrameID(3), FrameID(4), nil])
    }

    @Test func returningAFrameTwiceStopsTheProcess() async {
        await #expect(processExitsWith: .failure) {
            let pool = FramePool(capacity: 2)
            let frame = pool.take()!
            pool.give(frame)
            pool.give(frame)
        }
    }

    @Test func aPollTakesFramesAcrossTheEndOfItsRingInOrder() throws {
        // A 4-slot RX ring whose head is on its last slot: a poll takes one frame before the end of the slots
        // (copied alone) and two after it, then a poll of a single frame; all must go out in arrival order.
        let network = Network(workers: 1, poolCapacity: 64, maxBudget: 64)
        let out = FakeTransmitter()
        let ingress = try network.addDevice(name: "in", transmitter: FakeTransmitter(), ringSize: 4)
        let target = try network.addDevice(name: "out", transmitter: out)
        let map = try network.createDevMap(maxEntries: 1)
        try map.update(key: 0, ifindex: target.ifindex)
        network.attach(RedirectToKey(map: map, key: 0), to: ingress)
        let worker = network.workers[0]
        var injector = FrameInjector()
        for _ in 0..<3 {  // three polls of one frame move the head to the last slot
            injector.inject(count: 1, into: ingress, worker: worker)
            #expect(worker.poll(ingress, budget: 64, now: 1) == 1)
        }
        injector.inject(count: 3, into: ingress, worker: worker)
        #expect(worker.poll(ingress, budget: 64, now: 2) == 3)
        injector.inject(count: 2, into: ingress, worker: worker)
        #expect(worker.poll(ingress, budget: 1, now: 3) == 1)
        #expect(worker.poll(ingress, budget: 64, now: 4) == 1)
        #expect(out.sentFrames.map(\.sequence) == Array(1...8))
        #expect(out.bulkSizes == [1, 1, 1, 3, 1, 1])
        network.quiesceAll()
        #expect(worker.pool.outstanding == 0)
    }

    @Test func ringIsAFifoWithCapacity() {
        let ring = FrameRing(capacity: 3)
        #expect(ring.push(FrameID(1)) && ring.push(FrameID(2)) && ring.push(FrameID(3)))
        #expect(!ring.push(FrameID(4)))
        #expect(ring.pop() == FrameID(1))
        #expect(ring.push(FrameID(5)))
        #expect([ring.pop(), ring.pop(), ring.pop(), ring.pop()] == [FrameID(2), FrameID(3), FrameID(5), nil])
    }

    @Test func macAddressParsing() {
        #expect(MACAddress("02:00:00:00:01:0a")?.description == "02:00:00:00:01:0a")
        #expect(MACAddress("02:00:00:00:01:0A")?.rawValue == 0x02_00_00_00_01_0a)
        // One text form: topology files write colons, and so does every message.
        #expect(MACAddress("02-00-00-00-01-0A") == nil)
        let bytes: [UInt8] = [0x02, 0xAA, 0xBB, 0xCC, 0xDD, 0x0E, 0xFF]
        let loaded = bytes.withUnsafeBytes { MACAddress(loadingFrom: $0.baseAddress!) }
        #expect(loaded == MACAddress(0x02, 0xAA, 0xBB, 0xCC, 0xDD, 0x0E))
        #expect(MACAddress("02:00:00:00:01") == nil)
        #expect(MACAddress("02:00:00:00:01:0g") == nil)
        #expect(MACAddress("ff:ff:ff:ff:ff:ff")!.isMulticast)
    }
}
