import Foundation
import Testing

/// The same objects on the running kernel and in xdpemu: each program is attached natively (`ip link set dev X
/// xdpdrv obj F.o`) to one end of a veth pair inside a network namespace the test creates, frames are sent from
/// the other end (Kernel/exchange.py) and what the program sends back (XDP_TX) is compared, byte for byte, with the
/// port's egress capture of a replay of the same frames. Needs root, iproute2 built with libbpf and native XDP on
/// veth; skips with a message elsewhere. The namespace is removed at the end.
@Suite(.enabled(if: Clang.available, Clang.reason), .enabled(if: KernelXDP.available, KernelXDP.reason))
struct KernelDifferentialTests {
    @Test func editsAndArithmeticMatchTheKernel() throws {
        let object = try Clang.bpf("kernel_diff", cpu: "v4")
        let namespace = "xdpemu-bpf-\(getpid())"
        try KernelXDP.ip(["netns", "add", namespace])
        defer { _ = try? KernelXDP.ip(["netns", "del", namespace]) }
        // No IPv6 in the namespace: its MLD reports would arrive among the frames the programs send back.
        try KernelXDP.ip([
            "netns", "exec", namespace, "/bin/sh", "-c",
            "for c in all default; do echo 1 > /proc/sys/net/ipv6/conf/$c/disable_ipv6; done 2> /dev/null; true",
        ])
        try KernelXDP.ip(["-n", namespace, "link", "add", "kda", "type", "veth", "peer", "name", "kdb"])
        for device in ["kda", "kdb"] { try KernelXDP.ip(["-n", namespace, "link", "set", device, "up"]) }
        // The sending end needs an XDP program for the frames sent back to arrive through veth's NAPI.
        try KernelXDP.ip(["-n", namespace, "link", "set", "dev", "kda", "xdpdrv", "obj", object, "program", "xdp_pass"])

        let header = mac(2) + mac(1)
        var editFrames = [header + [0x08, 0x00] + (0..<46).map { UInt8($0) }]
        editFrames.append(
            header + [0x81, 0x00, 0x00, 0x05, 0x08, 0x00] + (0..<200).map { UInt8(truncatingIfNeeded: $0) })
        editFrames.append(header + [0x08, 0x00] + [UInt8](repeating: 0x77, count: 150))
        var isaFrames: [[UInt8]] = []
        let pairs: [(UInt64, UInt64)] = [
            (5, 3), (0xFFFF_FFFF_FFFF_FFFB, 3), (0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF), (0x1234_5678, 0),
            (0x8000_0000, 0xFFFF_FFFF), (0xDEAD_BEEF, 0x4_0000_0021), (0xFF80, 0xFFFF_FFF3),
        ]
        for (a, b) in pairs {
            let payload =
                withUnsafeBytes(of: a.littleEndian, Array.init) + withUnsafeBytes(of: b.littleEndian, Array.init)
            isaFrames.append(header + [0x88, 0xB5] + payload + [UInt8](repeating: 0, count: 1 + 384 + 16))
        }
        for (function, frames) in [("xdp_tx_edit", editFrames), ("xdp_tx_isa", isaFrames)] {
            try KernelXDP.ip(["-n", namespace, "link", "set", "dev", "kdb", "xdpdrv", "off"])
            try KernelXDP.ip([
                "-n", namespace, "link", "set", "dev", "kdb", "xdpdrv", "obj", object, "program", function,
            ])
            let kernel = try KernelXDP.exchange(namespace: namespace, device: "kda", frames: frames)
            let topology = """
                {"name": "kd", "ports": [{"name": "p1", "program": {"type": "ebpf", "object": "kd.o", "function": "\(function)"}}]}
                """
            let run = try replayEBPF(topology: topology, objects: ["kd.o": object], inputs: ["p1": frames])
            let emulated = run.frames("p1", "egress")
            #expect(kernel.allSatisfy { !$0.isEmpty }, "\(function): the kernel sent every frame back")
            #expect(emulated.count == frames.count)
            for (index, (k, e)) in zip(kernel, emulated).enumerated() where k != e {
                Issue.record("\(function), frame \(index): kernel \(hex(k)), xdpemu \(hex(e))")
            }
        }
    }

    func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
}

enum KernelXDP {
    static let reason: Comment = "needs root, iproute2 with libbpf (ip -V) and python3 for native XDP on veth"
    static let available: Bool = {
        guard getuid() == 0, let version = try? runProcess("/usr/sbin/ip", ["-V"]).out,
            version.contains("libbpf"),
            FileManager.default.isExecutableFile(atPath: "/usr/bin/python3")
                || (try? runProcess("/usr/bin/env", ["python3", "-c", "pass"]).status) == 0
        else { return false }
        return true
    }()

    @discardableResult
    static func ip(_ arguments: [String]) throws -> String {
        let r = try runProcess("/usr/sbin/ip", arguments)
        guard r.status == 0 else { throw TestFailure("ip \(arguments.joined(separator: " ")): \(r.err)") }
        return r.out
    }

    /// Sends `frames` out of `device` in `namespace`; what came back for each (empty: nothing).
    static func exchange(namespace: String, device: String, frames: [[UInt8]]) throws -> [[UInt8]] {
        let input = frames.map { $0.map { String(format: "%02x", $0) }.joined() }.joined(separator: "\n") + "\n"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = [
            "netns", "exec", namespace, "/usr/bin/env", "python3",
            "\(repositoryRoot)/Tests/XDPEmuBPFTests/Kernel/exchange.py",
            device,
        ]
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try stdin.fileHandleForWriting.close()
        let output = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return output.split(separator: "\n", omittingEmptySubsequences: false).prefix(frames.count).map { line in
            stride(from: 0, to: line.count - 1, by: 2).map {
                let start = line.index(line.startIndex, offsetBy: $0)
                return UInt8(line[start...line.index(after: start)], radix: 16)!
            }
        }
    }
}
