import Dispatch
import Testing
import XDPEmuTesting

@testable import XDPEmuBPF
@testable import XDPEmuCore

/// Machines of one object on several threads, as live mode's workers run them: with `serialised` set, their runs
/// take turns, so a counter the program reads, increments and writes back loses no update. (A stress test: CI runs
/// it under ThreadSanitizer too.)
@Suite(.enabled(if: Clang.available, Clang.reason))
struct SerialisedRunStressTests {
    @Test func workersOfOneObjectLoseNoUpdate() throws {
        let object = try BPFObject(bytes: Array(try readFile(try Clang.bpf("per_cpu"))))
        let loaded = try LoadedBPFObject(object, cpus: 2)
        let program = try loaded.program(function: nil, section: nil).get()
        let machines = (0..<2).map { cpu in
            let machine = BPFMachine(loaded: loaded, program: program, cpu: cpu)
            machine.serialised = true
            return machine
        }
        let frames = 20_000
        DispatchQueue.concurrentPerform(iterations: 2) { worker in
            let frame = TestFrame([UInt8](repeating: 0xAB, count: 64))
            for _ in 0..<frames {
                var context = frame.context
                _ = machines[worker].run(&context)
            }
        }
        let total = loaded.map(named: "shared_counts")!.entries().first { $0.key == [0, 0, 0, 0] }
        #expect(total?.values.first == withUnsafeBytes(of: UInt64(2 * frames).littleEndian, Array.init))
        let perCPU = loaded.map(named: "per_cpu_frames")!.entries().first?.values
        let expected = withUnsafeBytes(of: UInt64(frames).littleEndian, Array.init)
        #expect(perCPU == [expected, expected])
    }
}
