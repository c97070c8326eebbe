import Foundation
import Synchronization
import Testing
import XDPEmuCore
import XDPEmuTesting

// Stress: worker threads forwarding while another thread rewrites the devmap as fast as it can and a device is
// unregistered and registered again, over and over. Afterwards every frame that came in was transmitted or
// dropped for a reason, every pool has all its frames back, and every retired entry was released (once: a double
// release or a use after it traps, or is reported by the ThreadSanitizer build,
// `swift test -c debug --sanitize=thread --filter Stress`, which CI runs).

@Suite("Stress", .serialized) struct StressTests {
    /// Counts frames per worker on cache lines of their own; read after the threads are joined.
    final class Counting: XDPTransmitter, @unchecked Sendable {
        // @unchecked Sendable: worker i writes only word i * 16.
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: 64 * 16)
        init() { counts.initialize(repeating: 0, count: 64 * 16) }
        deinit { counts.deallocate() }
        func xdpXmit(
            _ frames: UnsafeMutableBufferPointer<FrameID>, flags: XmitFlags, device: NetDevice, worker: Worker
        ) -> Int32 {
            worker.pool.give(frames)
            counts[worker.cpu * 16] += frames.count
            return Int32(frames.count)
        }
        func total(workers: Int) -> Int { (0..<workers).reduce(0) { $0 + counts[$1 * 16] } }
    }

    struct Counts: @unchecked Sendable {
        // @unchecked Sendable: worker i writes only word i * 16; read after the threads are joined.
        let pointer: UnsafeMutablePointer<Int>
        init(_ pointer: UnsafeMutablePointer<Int>) { self.pointer = pointer }
    }

    struct Shared: @unchecked Sendable {
        // @unchecked Sendable: each thread uses its own worker and input; the rest is the network's thread-safe
        // control-plane API.
        let network: Network
        let inputs: [NetDevice]
    }

    @Test(arguments: [2, 3])
    func workersForwardWhileTheMapIsRewrittenAndADeviceComesAndGoes(workers: Int) throws {
        let network = Network(workers: workers, poolCapacity: 512)
        let counting = Counting()
        let targets = try (0..<3).map { try network.addDevice(name: "t\($0)", transmitter: counting) }
        let inputs = try (0..<workers).map { try network.addDevice(name: "i\($0)", transmitter: counting) }
        let map = try network.createDevMap(maxEntries: 4)
        attachRoundRobin(map, to: inputs, in: network)
        // The workers forward until the control thread has done its operations (a fixed number, so that a slow
        // build, ThreadSanitizer's, ends too: each retired entry costs every worker a visit at its quiescent point).
        let stop = Atomic<Bool>(false)
        let done = Atomic<Int>(0)
        let polling = Atomic<Int>(0)
        let shared = Shared(network: network, inputs: inputs)
        let injected = UnsafeMutablePointer<Int>.allocate(capacity: 64 * 16)
        injected.initialize(repeating: 0, count: 64 * 16)
        defer { injected.deallocate() }
        let counts = Counts(injected)
        let threads = (0..<workers).map { cpu in
            Thread {
                let worker = shared.network.workers[cpu]
                let input = shared.inputs[cpu]
                var injector = FrameInjector()
                let bytes = FrameInjector.ethernet(destination: input.mac, source: input.mac)
                var count = 0
                var polls = 0
                while !stop.load(ordering: .acquiring) {
                    while injector.inject(bytes, into: input, worker: worker) != nil { count += 1 }
                    worker.poll(input, budget: 64, now: 0)
                    polls += 1
                    if polls == 1 { polling.add(1, ordering: .relaxed) }
                }
                while worker.poll(input, budget: 64, now: 0) > 0 {}
                counts.pointer[cpu * 16] = count
                done.add(1, ordering: .releasing)
            }
        }
        threads.forEach { $0.start() }
        // Every worker forwards before the operations start (on a loaded machine a thread may start late).
        while polling.load(ordering: .relaxed) < workers { usleep(100) }
        // The control thread: updates and deletes as fast as it can; every 200 operations the device "flappy" is
        // unregistered (its slots cleared) and a new one of the same name and ifindex registered.
        var flappy = try network.addDevice(name: "flappy", ifindex: 100, transmitter: counting)
        var reRegistrations = 0
        let operations = 3000
        for operation in 0..<operations {
            let key = MapKey(UInt32(operation % 4))
            switch operation % 7 {
            case 0: try map.delete(key: key)
            case 1, 4: try map.update(key: key, ifindex: flappy.ifindex)
            default: try map.update(key: key, ifindex: targets[operation % 3].ifindex)
            }
            if operation % 200 == 199 {
                network.unregister(flappy)
                flappy = try network.addDevice(name: "flappy", ifindex: 100, transmitter: counting)
                reRegistrations += 1
            }
        }
        stop.store(true, ordering: .releasing)
        // Joined through an atomic (acquiring what each worker released), which ThreadSanitizer sees.
        while done.load(ordering: .acquiring) < workers { usleep(100) }
        network.quiesceAll()

        #expect(reRegistrations == 15)
        #expect(network.pendingRetiredCount == 0)
        #expect(network.workers.allSatisfy { $0.pool.outstanding == 0 })
        // Frames in = transmitted + dropped by reason (a redirect to an empty slot, or to a device gone).
        let received = inputs.reduce(UInt64(0)) { $0 + $1.statistics.rxPackets }
        let devices = network.devices
        let dropped = devices.reduce(UInt64(0)) { $0 + $1.statistics.totalDrops }
        let transmitted = UInt64(counting.total(workers: workers))
        let injectedFrames = (0..<workers).reduce(0) { $0 + injected[$1 * 16] }
        #expect(injectedFrames > 0)
        #expect(received == UInt64(injectedFrames))
        #expect(received == transmitted + dropped, "in \(received) != tx \(transmitted) + drops \(dropped)")
        let reasons = Set(inputs.flatMap { $0.statistics.drops.keys })
        #expect(reasons.isSubset(of: [.redirectInvalid, .xmitError, .xmitUnsent]), "\(reasons)")
    }
}
