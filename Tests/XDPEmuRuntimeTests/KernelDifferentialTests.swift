import Foundation
import Glibc
import Testing

/// The emulator against the running kernel (modern, 5.14 or later), through the scripts of scripts/: the map
/// control plane (kernel-devmap/compare.sh: every case script through kbatch and `xdpemu map batch --semantics
/// modern`) and the datapath (kernel-datapath/compare.sh: a C XDP program attached natively to veths in a private
/// namespace with a kernel devmap, a generated trace injected with AF_PACKET and captured at the targets' peers,
/// against `xdpemu replay` of the same topology: fixed keys, MAC keys, empty slots with each fallback action,
/// bad flags, broadcast with and without exclude-ingress, a down target, a small MTU, devmap_hash, egress
/// programs). Each script
/// makes and deletes its own namespace (with a name of its own). Skipped, with a message, without root, `ip
/// netns`, a C compiler or clang for BPF.
enum KernelDifferential {
    static let clang = "/opt/swift/usr/bin/clang"

    static let available: Bool = {
        guard LiveSystem.available else { return false }
        for tool in ["/usr/bin/cc", clang] where access(tool, X_OK) != 0 {
            print("XDPEmuRuntimeTests: skipping kernel differential tests: no \(tool)")
            return false
        }
        return true
    }()

    /// Runs a compare script; its output and exit status.
    static func run(_ script: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["\(repositoryRoot)/scripts/\(script)"] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["XDPEMU"] = LiveSystem.binary
        environment["CLANG"] = clang
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }
}

@Suite(.serialized, .enabled(if: KernelDifferential.available, "needs root, ip netns, cc and clang (BPF target)"))
struct KernelDifferentialTests {
    @Test("map batch --semantics modern answers as the running kernel on every case script")
    func mapControlPlane() throws {
        let cases = try FileManager.default.contentsOfDirectory(atPath: "\(repositoryRoot)/scripts/kernel-devmap/cases")
            .filter { $0.hasSuffix(".txt") }.sorted().map { "\(repositoryRoot)/scripts/kernel-devmap/cases/\($0)" }
        let result = try KernelDifferential.run(
            "kernel-devmap/compare.sh", ["--netns", "xdpemu-kc\(getpid())", "--semantics", "modern"] + cases)
        #expect(result.status == 0, "\(result.output)")
        let identical = result.output.split(separator: "\n").filter { $0.contains(": identical (") }
        #expect(identical.count == cases.count, "\(result.output)")
    }

    @Test("replay under the modern profile gives the kernel's frames, port by port")
    func datapathModern() throws {
        let result = try KernelDifferential.run("kernel-datapath/compare.sh", ["--semantics", "modern"])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("16 cases compared"), "\(result.output)")
        #expect(!result.output.contains("differs"), "\(result.output)")
    }

    @Test("replay under the 4.18 profile gives the kernel's frames where the profiles agree")
    func datapath418() throws {
        let result = try KernelDifferential.run("kernel-datapath/compare.sh", ["--semantics", "4.18"])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("5 cases compared"), "\(result.output)")
    }
}
