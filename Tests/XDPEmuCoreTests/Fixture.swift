import Testing
import XDPEmuCore
import XDPEmuTesting

/// A small network for datapath tests: an ingress port and four targets, each with a fake transmitter, one
/// devmap with keys 0...3 pointing at the targets, and a worker with events on.
final class Fixture {
    let network: Network
    let ingress: NetDevice
    let targets: [NetDevice]
    let transmitters: [FakeTransmitter]
    let ingressTransmitter = FakeTransmitter()
    let stack = RecordingStack()
    let map: DevMap
    var injector = FrameInjector()
    var worker: Worker { network.workers[0] }

    init(
        workers: Int = 1, targetCount: Int = 4, mapSize: UInt32 = 8, budget: Int = 64,
        semantics: Semantics = .v4_18, mapType: DevMapType = .array, poolCapacity: Int = 1024
    ) throws {
        network = Network(
            semantics: semantics, workers: workers, poolCapacity: poolCapacity, maxBudget: max(budget, 64))
        ingress = try network.addDevice(name: "in0", transmitter: ingressTransmitter, stack: stack)
        var targets = [NetDevice]()
        var transmitters = [FakeTransmitter]()
        for i in 0..<targetCount {
            let t = FakeTransmitter()
            transmitters.append(t)
            targets.append(try network.addDevice(name: "out\(i)", transmitter: t))
        }
        self.targets = targets
        self.transmitters = transmitters
        map = try network.createDevMap(maxEntries: mapSize, type: mapType)
        for (i, target) in targets.enumerated() { try map.update(key: MapKey(UInt32(i)), ifindex: target.ifindex) }
        for w in network.workers { w.events.isEnabled = true }
    }

    /// Attaches to the ingress a program that runs `decide` with each frame's number (1, 2, ...) and the map.
    func attachNumbered(_ decide: @escaping (Int, DevMap, inout XDPContext) -> XDPAction) {
        let map = self.map
        var n = 0
        network.attach(
            ClosureProgram { ctx in
                n += 1
                return decide(n, map, &ctx)
            }, to: ingress)
    }

    func inject(_ count: Int, length: Int = 64, into device: NetDevice? = nil, worker: Worker? = nil) {
        injector.inject(count: count, length: length, into: device ?? ingress, worker: worker ?? self.worker)
    }

    @discardableResult
    func poll(_ device: NetDevice? = nil, budget: Int = 64, now: Nanos = 1000, worker: Worker? = nil) -> Int {
        (worker ?? self.worker).poll(device ?? ingress, budget: budget, now: now)
    }

    func events(_ kind: XDPEventKind? = nil) -> [XDPEvent] {
        let all = network.workers.flatMap { $0.events.takeAll() }
        return kind.map { k in all.filter { $0.kind == k } } ?? all
    }

    /// Frame conservation: nothing outstanding in any pool (call after the run is over), and every received
    /// frame accounted as transmitted, passed or dropped.
    func expectConservation(extra: [NetDevice] = [], sourceLocation: SourceLocation = #_sourceLocation) {
        network.quiesceAll()
        for w in network.workers {
            #expect(
                w.pool.outstanding == 0, "frames still outstanding in pool of cpu \(w.cpu)",
                sourceLocation: sourceLocation)
        }
        let all = [ingress] + targets + extra
        let stats = all.map(\.statistics)
        let received = stats.reduce(0) { $0 + $1.rxPackets + $1.cloned }
        let sent = transmitters.reduce(0) { $0 + $1.sentFrames.count } + ingressTransmitter.sentFrames.count
        let passed = stats.reduce(0) { $0 + $1.passed }
        let dropped = stats.reduce(0) { $0 + $1.totalDrops }
        #expect(
            received == UInt64(sent) + passed + dropped, "in \(received) != out \(sent)+\(passed)+\(dropped)",
            sourceLocation: sourceLocation)
    }
}

/// Attaches to each of `inputs` a program that redirects into keys 0...3 of `map` in turn (each input its own
/// counter): the traffic of the reclamation stress tests.
func attachRoundRobin(_ map: DevMap, to inputs: [NetDevice], in network: Network) {
    for input in inputs {
        var k: UInt32 = 0
        network.attach(
            ClosureProgram { ctx in
                k &+= 1
                return ctx.redirectMap(map, key: k & 3)
            }, to: input)
    }
}
