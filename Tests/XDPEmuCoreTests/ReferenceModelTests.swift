import Testing
import XDPEmuCore
import XDPEmuTesting

/// The worker's poll, redirect, bulk queues and flush against a plain model of the 4.18 kernel's (`ReferenceModel`
/// below): random programs, frames, map updates and device states, run through both; every transmit call (device,
/// frames in order, XDP_XMIT_FLUSH, time), every device's counters and every event must be the same. The worker runs
/// twice, with events off (redirects into map_to_flush take its fast path, `Worker.queueIntoMapToFlush`) and on
/// (every redirect takes `xdp_do_redirect`), so the test holds the fast path to the model as well.
@Suite struct ReferenceModelTests {
    /// What a program does with one frame.
    enum Decision {
        case redirectMap(map: Int, key: UInt32)
        /// XDP_REDIRECT without a helper call: carries out what the redirect info holds.
        case bareRedirect
        /// `bpf_redirect_map`, then XDP_PASS: the request stays in the redirect info.
        case leaveBehind(map: Int, key: UInt32)
        case drop
        case pass
        case aborted
    }

    /// A change between polls.
    enum Change {
        case update(map: Int, key: UInt32, target: Int?)
        case mtu(target: Int, UInt32)
        case up(target: Int, Bool)
    }

    struct Round {
        var changes: [Change]
        var lengths: [Int]
        var budgets: [Int]
    }

    struct Scenario {
        var decisions: [Decision]
        var rounds: [Round]
    }

    static let mapSizes: [UInt32] = [8, 4]
    static let targetCount = 4

    /// Random traffic, mostly redirects into a few keys of the first map (so that queues fill up and the fast path
    /// runs), with every other verdict and occasional keys that are empty or out of range.
    static func scenario(seed: UInt64) -> Scenario {
        var random = SplitMix64(seed: seed)
        var rounds: [Round] = []
        var decisions: [Decision] = []
        for _ in 0..<8 {
            var changes: [Change] = []
            for _ in 0..<Int.random(in: 0...3, using: &random) {
                switch Int.random(in: 0..<4, using: &random) {
                case 0, 1:
                    let map = Int.random(in: 0..<2, using: &random)
                    let key = UInt32.random(in: 0..<mapSizes[map], using: &random)
                    let target = Int.random(in: -1..<targetCount, using: &random)
                    changes.append(.update(map: map, key: key, target: target < 0 ? nil : target))
                case 2:
                    changes.append(
                        .mtu(
                            target: Int.random(in: 0..<targetCount, using: &random),
                            Bool.random(using: &random) ? 1500 : 90))
                default:
                    changes.append(
                        .up(
                            target: Int.random(in: 0..<targetCount, using: &random),
                            Int.random(in: 0..<4, using: &random) != 0))
                }
            }
            let count = Int.random(in: 1...150, using: &random)
            let lengths = (0..<count).map { _ in Int.random(in: 60...140, using: &random) }
            var budgets: [Int] = []
            var left = count
            while left > 0 {
                let budget = [1, 1, 2, 5, 16, 17, 64, 64][Int.random(in: 0..<8, using: &random)]
                budgets.append(budget)
                left -= budget
            }
            rounds.append(Round(changes: changes, lengths: lengths, budgets: budgets))
            // One round in three sends everything into two keys of the first map: queues fill up.
            let bulky = Int.random(in: 0..<3, using: &random) == 0
            decisions += (0..<count).map { _ in
                if bulky { return .redirectMap(map: 0, key: UInt32.random(in: 0..<2, using: &random)) }
                switch Int.random(in: 0..<100, using: &random) {
                case 0..<55: return .redirectMap(map: 0, key: [0, 0, 0, 1, 2][Int.random(in: 0..<5, using: &random)])
                case 55..<65: return .redirectMap(map: 1, key: UInt32.random(in: 0..<4, using: &random))
                case 65..<70:
                    return .redirectMap(
                        map: Int.random(in: 0..<2, using: &random),
                        key: UInt32.random(in: 0..<10, using: &random))
                case 70..<75: return .bareRedirect
                case 75..<80:
                    return .leaveBehind(
                        map: Int.random(in: 0..<2, using: &random),
                        key: UInt32.random(in: 0..<4, using: &random))
                case 80..<88: return .drop
                case 88..<95: return .pass
                default: return .aborted
                }
            }
        }
        return Scenario(decisions: decisions, rounds: rounds)
    }

    /// One ndo_xdp_xmit call as the outcome records it.
    struct Xmit: Equatable {
        var frames: [UInt64]
        var flush: Bool
        var time: Nanos
    }

    /// What a run leaves behind.
    struct Outcome: Equatable {
        /// Per target.
        var calls: [[Xmit]]
        var statistics: [DeviceStatistics]
        var passed: [UInt64]
        var events: [XDPEvent]
    }

    /// Runs `scenario` through a worker.
    static func runWorker(_ scenario: Scenario, events: Bool) throws -> Outcome {
        let f = try Fixture(targetCount: targetCount, mapSize: mapSizes[0])
        f.worker.events.isEnabled = events
        let maps = [f.map, try f.network.createDevMap(maxEntries: mapSizes[1])]
        try maps[0].delete(key: 3)
        for key in 0..<mapSizes[1] { try maps[1].update(key: MapKey(key), ifindex: f.targets[Int(key)].ifindex) }
        var n = 0
        let decisions = scenario.decisions
        f.network.attach(
            ClosureProgram { ctx in
                defer { n += 1 }
                switch decisions[n] {
                case .redirectMap(let map, let key): return ctx.redirectMap(maps[map], key: key)
                case .bareRedirect: return .redirect
                case .leaveBehind(let map, let key):
                    _ = ctx.redirectMap(maps[map], key: key)
                    return .pass
                case .drop: return .drop
                case .pass: return .pass
                case .aborted: return .aborted
                }
            }, to: f.ingress)
        var now: Nanos = 0
        for round in scenario.rounds {
            for change in round.changes {
                switch change {
                case .update(let map, let key, let target):
                    try maps[map].update(key: MapKey(key), ifindex: target.map { f.targets[$0].ifindex } ?? 0)
                case .mtu(let target, let mtu): f.targets[target].mtu = mtu
                case .up(let target, let up): f.targets[target].isUp = up
                }
            }
            for length in round.lengths { f.inject(1, length: length) }
            for budget in round.budgets {
                now += 100
                f.poll(budget: budget, now: now)
            }
        }
        f.expectConservation()
        return Outcome(
            calls: f.transmitters.map { $0.calls.map { Xmit(frames: $0.frames, flush: $0.flush, time: $0.time) } },
            statistics: ([f.ingress] + f.targets).map(\.statistics),
            passed: f.stack.received.map(\.sequence), events: events ? f.events() : [])
    }

    @Test func theWorkerDoesWhatThePlainModelDoes() throws {
        var calls: [Xmit] = []
        var drops: [DropReason: UInt64] = [:]
        for seed: UInt64 in 1...12 {
            let scenario = Self.scenario(seed: seed)
            let expected = try ReferenceModel.run(scenario)
            let fast = try Self.runWorker(scenario, events: false)
            let full = try Self.runWorker(scenario, events: true)
            #expect(fast.calls == expected.calls, "seed \(seed)")
            #expect(fast.statistics == expected.statistics, "seed \(seed)")
            #expect(fast.passed == expected.passed, "seed \(seed)")
            #expect(full.calls == expected.calls, "seed \(seed)")
            #expect(full.statistics == expected.statistics, "seed \(seed)")
            #expect(full.passed == expected.passed, "seed \(seed)")
            #expect(full.events == expected.events, "seed \(seed)")
            calls += expected.calls.joined()
            drops.merge(expected.statistics[0].drops, uniquingKeysWith: +)
        }
        // The traffic reaches what the model is for: full queues sent mid-poll, flushes, every drop reason.
        #expect(calls.contains { $0.frames.count == 16 && !$0.flush } && calls.contains { $0.flush })
        #expect(Set(drops.keys) == [.redirectInvalid, .redirectDown, .redirectTooBig, .programDrop, .aborted])
    }
}

/// A plain, slow model of the 4.18 kernel's NAPI poll with XDP: the per-CPU redirect info, `xdp_do_redirect`
/// into devmaps, the bulk queues of 16 frames, `xdp_do_flush_map` (marked keys in key order) at the end of each
/// poll and at a switch of map. One worker, a fixture's devices (see `ReferenceModelTests.runWorker`), map changes
/// only between polls (so no entry is retired while frames wait in it).
struct ReferenceModel {
    typealias Decision = ReferenceModelTests.Decision

    struct Frame {
        var sequence: UInt64
        var length: Int
    }

    struct Target {
        var ifindex: UInt32
        var mtu: UInt32 = 1500
        var up = true
    }

    let ingress: UInt32
    let programID: UInt32
    let mapIDs: [UInt32]
    var targets: [Target]
    /// Each map's entries: key to target.
    var entries: [[UInt32: Int]]
    var queues: [[UInt32: [Frame]]]
    var marks: [Set<UInt32>]
    /// `bpf_redirect_info`: the map (nil for none) and the index; (nil, 0) is empty.
    var redirectMap: Int?
    var redirectIndex: UInt32 = 0
    var mapToFlush: Int?
    var now: Nanos = 0
    var outcome: ReferenceModelTests.Outcome

    /// The model's outcome for `scenario`, on the devices and maps a fresh fixture would have (ids included).
    static func run(_ scenario: ReferenceModelTests.Scenario) throws -> ReferenceModelTests.Outcome {
        // A fixture built the same way gives the ids and names the worker's run sees.
        let f = try Fixture(targetCount: ReferenceModelTests.targetCount, mapSize: ReferenceModelTests.mapSizes[0])
        let second = try f.network.createDevMap(maxEntries: ReferenceModelTests.mapSizes[1])
        let programID = f.network.attach(ConstantProgram(.pass), to: f.ingress)
        var model = ReferenceModel(
            ingress: f.ingress.ifindex.rawValue, programID: programID, mapIDs: [f.map.id, second.id],
            targets: f.targets.map { Target(ifindex: $0.ifindex.rawValue) },
            entries: [[0: 0, 1: 1, 2: 2], [0: 0, 1: 1, 2: 2, 3: 3]], queues: [[:], [:]], marks: [[], []],
            outcome: .init(
                calls: Array(repeating: [], count: ReferenceModelTests.targetCount),
                statistics: Array(
                    repeating: DeviceStatistics(),
                    count: ReferenceModelTests.targetCount + 1),
                passed: [], events: []))
        var pending: [Frame] = []
        var sequence: UInt64 = 1
        var decisions = scenario.decisions[...]
        for round in scenario.rounds {
            for change in round.changes {
                switch change {
                case .update(let map, let key, let target): model.entries[map][key] = target
                case .mtu(let target, let mtu): model.targets[target].mtu = mtu
                case .up(let target, let up): model.targets[target].up = up
                }
            }
            for length in round.lengths {
                pending.append(Frame(sequence: sequence, length: length))
                sequence += 1
            }
            for budget in round.budgets {
                model.now += 100
                let taken = pending.prefix(budget)
                pending.removeFirst(taken.count)
                for frame in taken {
                    model.receive(frame, decisions.removeFirst())
                }
                if let map = model.mapToFlush { model.flush(map) }
                model.mapToFlush = nil
            }
        }
        return model.outcome
    }

    mutating func event(
        _ kind: XDPEventKind, action: UInt32 = XDPAction.redirect.rawValue, error: Int32 = 0,
        to: UInt32 = 0, map: Int? = nil, key: UInt32 = 0, frame: UInt64
    ) {
        outcome.events.append(
            XDPEvent(
                kind: kind, time: now, cpu: 0, programID: programID, action: action,
                ifindex: ingress, error: error, toIfindex: to,
                mapID: map.map { mapIDs[$0] } ?? 0, mapIndex: key, frame: frame))
    }

    mutating func drop(_ frame: Frame, _ reason: DropReason) {
        outcome.statistics[0].drops[reason, default: 0] += 1
        outcome.events.append(
            XDPEvent(
                kind: .drop, time: now, cpu: 0, ifindex: ingress, frame: frame.sequence,
                reason: reason))
    }

    mutating func receive(_ frame: Frame, _ decision: Decision) {
        outcome.statistics[0].rxPackets += 1
        outcome.statistics[0].rxBytes += UInt64(frame.length)
        switch decision {
        case .redirectMap(let map, let key): redirect(frame, map: map, key: key)
        case .bareRedirect: redirect(frame, map: redirectMap, key: redirectIndex)
        case .leaveBehind(let map, let key):
            (redirectMap, redirectIndex) = (map, key)
            outcome.statistics[0].passed += 1
            outcome.passed.append(frame.sequence)
        case .drop: drop(frame, .programDrop)
        case .pass:
            outcome.statistics[0].passed += 1
            outcome.passed.append(frame.sequence)
        case .aborted:
            event(.exception, action: XDPAction.aborted.rawValue, frame: frame.sequence)
            drop(frame, .aborted)
        }
    }

    /// `xdp_do_redirect`.
    mutating func redirect(_ frame: Frame, map: Int?, key: UInt32) {
        (redirectMap, redirectIndex) = (nil, 0)
        guard let map else {
            // bpf_redirect to ifindex `key`: the scenarios leave only 0 here, which names no device.
            precondition(key == 0)
            event(.redirectErr, error: -KernelErrno.EINVAL.rawValue, frame: frame.sequence)
            drop(frame, .redirectInvalid)
            return
        }
        guard let target = entries[map][key] else {
            event(.redirectMapErr, error: -KernelErrno.EINVAL.rawValue, map: map, key: key, frame: frame.sequence)
            drop(frame, .redirectInvalid)
            return
        }
        if let previous = mapToFlush, previous != map { flush(previous) }
        let device = targets[target]
        let error: KernelErrno? = !device.up ? .ENETDOWN : frame.length > Int(device.mtu) + 18 ? .EMSGSIZE : nil
        if let error {
            event(
                .redirectMapErr, error: -error.rawValue, to: device.ifindex, map: map, key: key,
                frame: frame.sequence)
            drop(frame, DropReason.redirect(errno: error.rawValue))
            return
        }
        if queues[map][key, default: []].count == 16 { transmit(map: map, key: key, flush: false) }
        queues[map][key, default: []].append(frame)
        marks[map].insert(key)
        mapToFlush = map
        outcome.statistics[0].redirected += 1
        event(.redirectMap, to: device.ifindex, map: map, key: key, frame: frame.sequence)
    }

    /// `__dev_map_flush`: every marked key whose slot holds an entry, in key order.
    mutating func flush(_ map: Int) {
        for key in marks[map].sorted() where entries[map][key] != nil {
            transmit(map: map, key: key, flush: true)
            marks[map].remove(key)
        }
    }

    /// `bq_xmit_all` to a device that sends everything.
    mutating func transmit(map: Int, key: UInt32, flush: Bool) {
        let frames = queues[map][key, default: []]
        guard !frames.isEmpty, let target = entries[map][key] else { return }
        queues[map][key] = []
        let device = targets[target]
        outcome.calls[target].append(.init(frames: frames.map(\.sequence), flush: flush, time: now))
        outcome.statistics[target + 1].txPackets += UInt64(frames.count)
        outcome.statistics[target + 1].txBytes += frames.reduce(0) { $0 + UInt64($1.length) }
        outcome.events.append(
            XDPEvent(
                kind: .devmapXmit, time: now, cpu: 0, action: XDPAction.redirect.rawValue,
                toIfindex: device.ifindex, fromIfindex: ingress, mapID: mapIDs[map],
                mapIndex: key, sent: Int32(frames.count)))
    }
}
