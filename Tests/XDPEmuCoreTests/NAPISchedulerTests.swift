import Testing
import XDPEmuCore

/// The NAPI scheduler as both modes drive it: arrivals, the poll list and its ready times, the one CPU, round
/// robin, the ring-full drop, a receiver that fetches frames at poll time, and a port's tap.
@Suite struct NAPISchedulerTests {
    /// Sees a port's directions: records (direction, sequence, time) for each frame.
    final class RecordingTap: PortTap {
        var seen: [(String, UInt64, Nanos)] = []

        init() { super.init(directions: .all) }

        override func ingress(_ frames: UnsafeBufferPointer<FrameID>, pool: FramePool) {
            for frame in frames {
                seen.append(("in", pool.info(frame).pointee.sequence, pool.info(frame).pointee.arrival))
            }
        }

        override func drop(_ frame: FrameID, reason: DropReason, pool: FramePool, time: Nanos) {
            seen.append(("drop \(reason)", pool.info(frame).pointee.sequence, time))
        }
    }

    let network: Network
    let ports: [NetDevice]

    init() throws {
        let network = Network(poolCapacity: 64)
        ports = try (0..<2).map { try network.addDevice(name: "p\($0)", transmitter: nil, ringSize: 4) }
        self.network = network
    }

    var worker: Worker { network.workers[0] }

    func frame() -> FrameID { worker.pool.take(copying: UnsafeRawBufferPointer(start: nil, count: 0))! }

    func scheduler(
        budget: Int = 64, pollDelay: Nanos = 0, frameCost: Nanos = 0, taps: [PortTap?] = []
    )
        -> NAPIScheduler
    {
        NAPIScheduler(
            worker: worker, devices: ports, ingressTaps: taps, budget: budget, pollDelay: pollDelay,
            frameCost: frameCost)
    }

    @Test func anArrivalAtAnIdlePortListsOnePollAfterThePollDelayAndTheCPUIsBusyPerFrame() {
        let napi = scheduler(pollDelay: 100, frameCost: 10)
        #expect(napi.pollAt() == nil)
        for time: Nanos in [1000, 1001, 1002] { #expect(napi.arrive(frame(), port: 0, at: time)) }
        #expect(napi.pendingPolls == 1)
        #expect(napi.pollAt() == 1100)
        napi.pollNext(at: 1100)
        #expect(ports[0].statistics.rxPackets == 3)
        #expect(napi.cpuFree == 1130)
        #expect(napi.polls == 1)
        #expect(napi.pollAt() == nil)
        // The next arrival's poll waits for the CPU.
        napi.arrive(frame(), port: 1, at: 1105)
        #expect(napi.pollAt() == 1205)
        napi.cpuFree = 1300
        #expect(napi.pollAt() == 1300)
        #expect(napi.arrivals == 4 && napi.arrivals(port: 0) == 3 && napi.arrivals(port: 1) == 1)
    }

    @Test func aPortWithFramesLeftGoesBehindTheOtherPorts() {
        let napi = scheduler(budget: 2)
        for _ in 0..<3 { napi.arrive(frame(), port: 0, at: 0) }
        napi.arrive(frame(), port: 1, at: 0)
        napi.pollNext(at: 0)
        #expect(ports[0].statistics.rxPackets == 2 && ports[1].statistics.rxPackets == 0)
        #expect(napi.pendingPolls == 2)
        napi.pollNext(at: 0)
        #expect(ports[1].statistics.rxPackets == 1)
        napi.pollNext(at: 0)
        #expect(ports[0].statistics.rxPackets == 3)
        #expect(napi.pendingPolls == 0 && napi.polls == 3)
        #expect(worker.pool.outstanding == 0)
    }

    @Test func aFrameFindingTheRingFullIsDroppedAtItsArrivalTimeAfterTheTapSawTheOnesBefore() {
        let tap = RecordingTap()
        let napi = scheduler(taps: [tap, nil])
        worker.events.isEnabled = true
        for time: Nanos in 1...5 { napi.arrive(frame(), port: 0, at: time * 100) }
        #expect(ports[0].statistics.drops[.rxRingFull] == 1)
        let drops = worker.events.takeAll().filter { $0.kind == .drop }
        #expect(drops.map(\.time) == [500])
        #expect(tap.seen.map(\.0) == ["in", "in", "in", "in", "in"])
        #expect(tap.seen.map(\.1) == [1, 2, 3, 4, 5])
        #expect(tap.seen.map(\.2) == [100, 200, 300, 400, 500])
        napi.pollNext(at: 600)
        // Nothing is shown twice.
        #expect(tap.seen.count == 5)
        #expect(worker.pool.outstanding == 0)
    }

    /// Reads frames "from a device" at poll time, as live mode reads a TAP.
    final class Receiver: NAPIReceiver {
        var waiting: [Int]
        var calls: [(port: Int, now: Nanos)] = []
        var polled: [Int] = []
        let take: () -> FrameID

        init(waiting: [Int], take: @escaping () -> FrameID) {
            self.waiting = waiting
            self.take = take
        }

        func receive(port: Int, budget: Int, now: Nanos, scheduler: NAPIScheduler) -> Bool {
            calls.append((port, now))
            let count = min(waiting[port], budget)
            for _ in 0..<count { scheduler.arrive(take(), port: port, at: now, schedulingPoll: false) }
            waiting[port] -= count
            return count == budget
        }

        func polled(port: Int) { polled.append(port) }
    }

    @Test func aRoundPollsEachListedPortOnceAndAReceiverFetchesFramesAtPollTime() {
        let napi = scheduler(budget: 2)
        let receiver = Receiver(waiting: [3, 1]) { frame() }
        napi.receiver = receiver
        napi.schedule(0, ready: 0)
        napi.schedule(1, ready: 0)
        napi.schedule(0, ready: 0)
        #expect(napi.pendingPolls == 2)
        napi.pollRound(at: 50)
        #expect(receiver.calls.map(\.port) == [0, 1])
        #expect(receiver.polled == [0, 1])
        // Port 0's read hit the budget: listed again.
        #expect(napi.pendingPolls == 1)
        napi.pollRound(at: 60)
        #expect(receiver.calls.map(\.port) == [0, 1, 0])
        #expect(receiver.calls.last?.now == 60)
        #expect(ports[0].statistics.rxPackets == 3 && ports[1].statistics.rxPackets == 1)
        #expect(napi.pendingPolls == 0)
        napi.receiver = nil
    }

    @Test func aRunOfArrivalsGivesItsFramesWhatArrivalsOneByOneGiveThemAndIsCountedAtItsEnd() {
        let tap = RecordingTap()
        let napi = scheduler(taps: [tap, nil])
        // Two arrivals and their poll move the ring's head: the run wraps around the end of the ring (4 slots).
        napi.arrive(frame(), port: 0, at: 10)
        napi.arrive(frame(), port: 0, at: 11)
        napi.pollNext(at: 20)
        napi.arrive(frame(), port: 0, at: 30)
        var run = napi.beginArrivals(at: 0)
        for time: Nanos in [31, 32, 33] {
            #expect(!run.isFull)
            run.arrive(frame(), at: time)
        }
        #expect(run.isFull)
        #expect(napi.arrivals == 3 && ports[0].rxRing.count == 1)
        napi.endArrivals(run)
        #expect(napi.arrivals == 6 && napi.arrivals(port: 0) == 6 && napi.arrivals(port: 1) == 0)
        #expect(ports[0].rxRing.count == 4 && napi.room(0) == 0)
        // The run's frames did not list the port again: the arrival at 30 did.
        #expect(napi.pendingPolls == 1)
        napi.pollNext(at: 40)
        #expect(ports[0].statistics.rxPackets == 6)
        #expect(ports[0].rxRing.isEmpty)
        #expect(tap.seen.map(\.1) == [1, 2, 3, 4, 5, 6])
        #expect(tap.seen.map(\.2) == [10, 11, 30, 31, 32, 33])
        #expect(tap.seen.allSatisfy { $0.0 == "in" })
    }
}
