// The eBPF interpreter on the benchmark program (xdp_redirect_dmac.c), inside the core's poll loop as replay
// runs it (a port's NAPI polls of 64 frames, devmap bulk queues and flushes), against the built-in redirect_map
// program doing the same thing (a destination-MAC table lookup, bpf_redirect_map); and the interpreter alone, for
// the comparison with uBPF's interpreter (which runs one frame at a time, with helpers that only record the
// redirect, as bpf_redirect_map does before the poll loop carries it out): `ebpf-alone` runs the program
// `repeats` times on each frame in the same loop, so that the difference from `ebpf`, divided by `repeats - 1`,
// is the interpreter's own time per run. Prints ns per frame and instructions per frame.
// Usage: ebpf-bench OBJECT FRAMES [ebpf|ebpf-alone|builtin|all]

import XDPEmuBPF
import XDPEmuCore
import XDPEmuPrograms

#if canImport(Glibc)
import Glibc
#endif

func nanos() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
}

final class Counting: XDPTransmitter, @unchecked Sendable {
    var sent: UInt64 = 0
    func xdpXmit(
        _ frames: UnsafeMutableBufferPointer<FrameID>, flags: XmitFlags, device: NetDevice, worker: Worker
    ) -> Int32 {
        worker.pool.give(frames)
        sent &+= UInt64(frames.count)
        return Int32(frames.count)
    }
}

let arguments = CommandLine.arguments
guard arguments.count >= 3, let frames = Int(arguments[2]) else {
    print("usage: ebpf-bench OBJECT FRAMES [ebpf|builtin|all]")
    exit(64)
}
let mode = arguments.count > 3 ? arguments[3] : "all"
let bytes: [UInt8] = {
    guard let file = fopen(arguments[1], "rb") else { fatalError("cannot open \(arguments[1])") }
    defer { fclose(file) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&chunk, 1, chunk.count, file)
        if n <= 0 { break }
        out += chunk[0..<n]
    }
    return out
}()
let destination = MACAddress(0x02, 0, 0, 0, 0, 0x10)
let repeats = 9

/// The eBPF program run `repeats` times on each frame (the same frame, the same redirect request each time).
struct Repeated: XDPProgram {
    let machine: BPFMachine
    mutating func run(_ context: inout XDPContext) -> XDPAction {
        for _ in 1..<repeats { _ = machine.run(&context) }
        return machine.run(&context)
    }
}

/// One ingress port and 4 targets; frames of 64 bytes to `destination`, injected 64 at a time and polled.
func scenario(_ attach: (Network, NetDevice, DevMap) throws -> Void) throws -> (Double, Counting) {
    let network = Network(workers: 1, poolCapacity: 4096, maxBudget: 64)
    let worker = network.workers[0]
    let transmitter = Counting()
    let ingress = try network.addDevice(name: "in0", transmitter: transmitter)
    let map = try network.createDevMap(maxEntries: 4)
    for key in 0..<4 {
        let target = try network.addDevice(name: "out\(key)", transmitter: transmitter)
        try map.update(key: MapKey(UInt32(key)), ifindex: target.ifindex)
    }
    try attach(network, ingress, map)
    network.quiesceAll()
    var frame = [UInt8](repeating: 0, count: 64)
    for i in 0..<6 { frame[i] = UInt8(truncatingIfNeeded: destination.rawValue >> UInt64(40 - 8 * i)) }
    frame[6] = 2
    frame[11] = 1
    frame[12] = 0x08
    var taken: [FrameID] = []
    while let id = worker.pool.take() { taken.append(id) }
    for id in taken {
        frame.withUnsafeBytes {
            worker.pool.writableSpace(id).baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: 64)
        }
    }
    for id in taken.reversed() { worker.pool.give(id) }
    var now: Nanos = 0
    func run(_ count: Int) {
        var remaining = count
        while remaining > 0 {
            let batch = min(remaining, 64)
            _ = worker.pool.take(batch, onto: ingress.rxRing, length: 64, ingress: ingress.ifindex)
            now &+= 1000
            remaining -= worker.poll(ingress, budget: 64, now: now)
        }
    }
    run(64 * 100)
    let start = nanos()
    run(frames)
    return (Double(nanos() - start) / Double(frames), transmitter)
}

func ebpf(alone: Bool) throws {
    let object = try BPFObject(bytes: bytes)
    let loaded = try LoadedBPFObject(object, cpus: 1)
    let program = try loaded.program(function: nil, section: nil).get()
    var key = [UInt8](repeating: 0, count: 6)
    for i in 0..<6 { key[i] = UInt8(truncatingIfNeeded: destination.rawValue >> UInt64(40 - 8 * i)) }
    _ = loaded.map(named: "mac_to_port")!.set(key: key, value: [2, 0, 0, 0])
    let machine = BPFMachine(loaded: loaded, program: program)
    let (ns, counting) = try scenario { network, ingress, map in
        (loaded.map(named: "tx_port") as! DevMapReference).devMap = map
        if alone {
            network.attach(Repeated(machine: machine), to: ingress)
        } else {
            network.attach(EBPFProgram(machine: machine), to: ingress)
        }
    }
    precondition(counting.sent >= UInt64(frames), "the program did not redirect every frame")
    print(
        "\(alone ? "ebpf_repeated_\(repeats)" : "ebpf_poll") ns_per_frame \((ns * 10).rounded() / 10) "
            + "instructions_per_frame \(machine.lastInstructionCount)")
}
if mode == "ebpf" || mode == "all" { try ebpf(alone: false) }
if mode == "ebpf-alone" || mode == "all" { try ebpf(alone: true) }
if mode == "builtin" || mode == "all" {
    let (ns, counting) = try scenario { network, ingress, map in
        let program = RedirectMapProgram(
            map: map, selector: .destinationMAC(table: MACTable([(destination, 2)]), miss: .pass))
        network.attach(program, to: ingress)
    }
    precondition(counting.sent >= UInt64(frames), "the program did not redirect every frame")
    print("builtin_poll ns_per_frame \((ns * 10).rounded() / 10)")
}
