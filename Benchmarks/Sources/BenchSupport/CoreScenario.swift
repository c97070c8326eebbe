import XDPEmuCore
import XDPEmuTesting

/// The traffic patterns the benchmarks and the callgrind harness run.
public enum ScenarioKind: String, CaseIterable, Sendable {
    /// `RoundRobinRedirect` over a 4-entry devmap pointing at 4 ports.
    case redirect4
    /// `SpreadRedirect` over a 65,536-entry devmap pointing at 1,024 ports (key k -> port k % 1,024), the 4 keys
    /// of a poll moving across the whole map from poll to poll.
    case largeMap
    /// The same map and ports, always the same 4 keys (spread a quarter of the map apart), in turn:
    /// `SpacedRoundRobinRedirect`, the 4-entry case's program but for one multiplication, so that the two compare on
    /// the map's size alone.
    case largeMapFixedKeys
    /// XDP_DROP: the floor (RX ring, program dispatch, drop accounting, pool).
    case drop
}

/// One worker polling one ingress port in 64-frame polls, as a driver's NAPI poll does, with the frames
/// re-injected from the worker's pool before each poll.
///
/// Injection is kept to what a driver's RX refill does (`RxRefill`): take buffers, set the length, push them on
/// the ring.
public final class CoreScenario {
    public static let framesPerPoll = 64
    /// Frames in one benchmark iteration (so that per-iteration metrics scaled by `.mega` read as per frame).
    public static let framesPerIteration = 1_000_000

    public let kind: ScenarioKind
    public let network: Network
    public let worker: Worker
    public let ingress: NetDevice
    public let targets: [NetDevice]
    public let transmitter: CountingTransmitter
    public let map: DevMap?
    public let frameLength: Int
    public let drainsEvents: Bool
    /// Wall-clock time the setup took (devices, map and its updates, program), in seconds.
    public let setupSeconds: Double
    /// Frames injected so far.
    public private(set) var injected: UInt64 = 0
    var now: Nanos = 0
    let refill = RxRefill()

    public static let largeMapEntries: UInt32 = 65_536
    public static let largeMapPorts = 1_024

    public init(_ kind: ScenarioKind, frameLength: Int = 64, events: Bool = false) throws {
        let start = BenchClock.monotonicNanos()
        self.kind = kind
        self.frameLength = frameLength
        drainsEvents = events
        network = Network(workers: 1, poolCapacity: 4096, maxBudget: Self.framesPerPoll)
        worker = network.workers[0]
        transmitter = CountingTransmitter(workers: 1)
        ingress = try network.addDevice(name: "in0", transmitter: transmitter)
        let ports = kind == .redirect4 ? 4 : kind == .drop ? 0 : Self.largeMapPorts
        var targets = [NetDevice]()
        targets.reserveCapacity(ports)
        for i in 0..<ports { targets.append(try network.addDevice(name: "out\(i)", transmitter: transmitter)) }
        self.targets = targets
        switch kind {
        case .redirect4:
            let map = try network.createDevMap(maxEntries: 4)
            for (key, target) in targets.enumerated() {
                try map.update(key: MapKey(UInt32(key)), ifindex: target.ifindex)
            }
            network.attach(RoundRobinRedirect(map: map), to: ingress)
            self.map = map
        case .largeMap, .largeMapFixedKeys:
            let entries = Self.largeMapEntries
            let map = try network.createDevMap(maxEntries: entries)
            for key in 0..<entries {
                try map.update(key: MapKey(key), ifindex: targets[Int(key) % ports].ifindex)
            }
            if kind == .largeMap {
                network.attach(SpreadRedirect(map: map, entries: entries), to: ingress)
            } else {
                // An odd quarter of the map apart, as SpreadRedirect's keys: different bitmap words and ports.
                network.attach(SpacedRoundRobinRedirect(map: map, stride: (entries / 4) | 1), to: ingress)
            }
            self.map = map
        case .drop:
            network.attach(ConstantProgram(.drop), to: ingress)
            map = nil
        }
        network.quiesceAll()
        setupSeconds = Double(BenchClock.monotonicNanos() - start) / 1e9
        worker.events.isEnabled = events
        Self.prefill(worker.pool, length: frameLength, source: ingress.mac)
    }

    /// Writes the benchmark frame into every buffer of `pool` once.
    static func prefill(_ pool: FramePool, length: Int, source: MACAddress) {
        let bytes = FrameInjector.ethernet(destination: MACAddress(0x02, 0, 0, 0, 0, 0xff), source: source,
                                           etherType: benchEtherType, length: length)
        var frames = [FrameID]()
        while let frame = pool.take() { frames.append(frame) }
        for frame in frames {
            let space = pool.writableSpace(frame)
            precondition(space.count >= length, "frame does not fit the pool's buffers")
            bytes.withUnsafeBytes { space.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: length) }
        }
        for frame in frames.reversed() { pool.give(frame) }
    }

    /// Runs `frames` frames (a multiple of 64 keeps every poll full) through inject + poll (+ event drain).
    @inline(never)
    public func run(frames: Int) {
        var remaining = frames
        while remaining > 0 {
            let batch = min(remaining, Self.framesPerPoll)
            inject(batch)
            now &+= 1_000
            let done = worker.poll(ingress, budget: Self.framesPerPoll, now: now)
            if drainsEvents { worker.events.drain { _ in } }
            remaining -= done
        }
    }

    /// The driver's RX refill: `count` buffers from the pool, length set, onto the ingress ring.
    @inline(__always)
    func inject(_ count: Int) {
        injected &+= UInt64(refill.refill(count, from: worker.pool, into: ingress.rxRing, length: UInt32(frameLength),
                                          ingress: ingress.ifindex))
    }

    /// Every injected frame accounted for: sent (redirect) or dropped (drop), none left in the pool. nil when so.
    public func conservationError() -> String? {
        network.quiesceAll()
        if worker.pool.outstanding != 0 { return "\(worker.pool.outstanding) frames outstanding" }
        let dropped = ingress.statistics.totalDrops + targets.reduce(0) { $0 + $1.statistics.totalDrops }
        let expectedSent = kind == .drop ? 0 : injected
        guard transmitter.total == expectedSent, dropped == injected - expectedSent else {
            return "injected \(injected), sent \(transmitter.total), dropped \(dropped)"
        }
        if drainsEvents && worker.events.lost != 0 { return "\(worker.events.lost) events lost" }
        return nil
    }
}
