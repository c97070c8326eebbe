import Testing
import XDPEmuCore
import XDPEmuTesting

/// A small network for program tests: `count` ports p0, p1, ..., each with a fake transmitter and a recording
/// stack, and one devmap whose key i reaches port i. Frames are injected one at a time and polled at once, so each
/// test reads as "this frame, sent on that port at that time, went there".
final class Ports {
    let network: Network
    let devices: [NetDevice]
    let transmitters: [FakeTransmitter]
    let stacks: [RecordingStack]
    let map: DevMap
    var injector = FrameInjector()
    var worker: Worker { network.workers[0] }

    init(count: Int = 4, mapSize: UInt32 = 8) throws {
        network = Network(poolCapacity: 256)
        var devices = [NetDevice]()
        var transmitters = [FakeTransmitter]()
        var stacks = [RecordingStack]()
        for i in 0..<count {
            let transmitter = FakeTransmitter()
            let stack = RecordingStack()
            devices.append(try network.addDevice(name: "p\(i)", transmitter: transmitter, stack: stack))
            transmitters.append(transmitter)
            stacks.append(stack)
        }
        (self.devices, self.transmitters, self.stacks) = (devices, transmitters, stacks)
        map = try network.createDevMap(maxEntries: mapSize)
        for (i, device) in devices.enumerated() { try map.update(key: MapKey(UInt32(i)), ifindex: device.ifindex) }
        worker.events.isEnabled = true
    }

    /// Attaches `program` to every port (one value: programs with shared state share it).
    func attachEverywhere<P: XDPProgram>(_ program: P) {
        for device in devices { network.attach(program, to: device) }
    }

    /// Injects `bytes` on port `port` and polls that port at `now`. Returns the frame's sequence number.
    @discardableResult
    func send(_ bytes: [UInt8], on port: Int = 0, now: Nanos = 0) -> UInt64 {
        let sequence = injector.inject(bytes, into: devices[port], worker: worker, at: now)!
        worker.poll(devices[port], budget: 64, now: now)
        return sequence
    }

    /// Where a frame ended up.
    enum Fate: Equatable, CustomStringConvertible {
        /// Transmitted by these ports (more than one after a flood).
        case sent([Int])
        /// Handed to this port's local stack (XDP_PASS).
        case passed(Int)
        case dropped

        var description: String {
            switch self {
            case .sent(let ports): "sent on \(ports.map { "p\($0)" })"
            case .passed(let port): "passed on p\(port)"
            case .dropped: "dropped"
            }
        }
    }

    func fate(_ sequence: UInt64) -> Fate {
        let senders = transmitters.indices.filter { transmitters[$0].sentFrames.contains { $0.sequence == sequence } }
        if !senders.isEmpty { return .sent(senders) }
        if let port = stacks.indices.first(where: { stacks[$0].received.contains { $0.sequence == sequence } }) {
            return .passed(port)
        }
        return .dropped
    }

    /// The bytes port `port` transmitted for frame `sequence` (the first copy).
    func bytesSent(_ sequence: UInt64, on port: Int) -> [UInt8]? {
        transmitters[port].sentFrames.first { $0.sequence == sequence }?.bytes
    }

    /// Drops counted at every port, summed by reason.
    var drops: [DropReason: UInt64] {
        devices.reduce(into: [:]) { result, device in result.merge(device.statistics.drops, uniquingKeysWith: +) }
    }

    func events(_ kind: XDPEventKind) -> [XDPEvent] { worker.events.takeAll().filter { $0.kind == kind } }

    /// Frame conservation: after the deferred frees, no frame is left outside the pool, and every frame received
    /// (or cloned by a flood) was transmitted, passed or dropped exactly once.
    func expectConservation(sourceLocation: SourceLocation = #_sourceLocation) {
        network.quiesceAll()
        #expect(worker.pool.outstanding == 0, "frames still outstanding", sourceLocation: sourceLocation)
        let stats = devices.map(\.statistics)
        let received = stats.reduce(0) { $0 + $1.rxPackets + $1.cloned }
        let sent = UInt64(transmitters.reduce(0) { $0 + $1.sentFrames.count })
        let passed = UInt64(stacks.reduce(0) { $0 + $1.received.count })
        let dropped = stats.reduce(0) { $0 + $1.totalDrops }
        #expect(
            received == sent + passed + dropped, "in \(received) != out \(sent)+\(passed)+\(dropped)",
            sourceLocation: sourceLocation)
    }
}
