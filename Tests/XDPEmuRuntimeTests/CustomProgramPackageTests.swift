import Foundation
import Testing

/// Examples/custom-program is a package of its own that depends on xdpemu and builds an `xdpemu` with a program
/// of its own, registered through `XDPEmuCLI.main(programs:)`, without editing xdpemu's sources. This builds it
/// and replays a trace through its topology, as its user would.
@Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/env"), "no /usr/bin/env to find swift"))
struct CustomProgramPackageTests {
    static let example = "\(repositoryRoot)/Examples/custom-program"

    @Test(.timeLimit(.minutes(10)))
    func theExamplePackageBuildsAnXDPEmuThatRunsItsProgram() throws {
        // A new scratch folder each time: SwiftPM keeps a path dependency's list of source files in its scratch
        // folder, so a reused one builds xdpemu without files added since.
        let scratch = makeTemporaryDirectory("xdpemu-example-build")
        defer { removeDirectory(scratch) }
        let build = try run(
            "/usr/bin/env", ["swift", "build", "--package-path", Self.example, "--scratch-path", scratch])
        try #require(
            build.status == 0, "swift build of Examples/custom-program failed:\n\(build.stdout)\n\(build.stderr)")
        let binary = "\(scratch)/debug/xdpemu-vlan"
        let topology = "\(Self.example)/topologies/vlan.json"

        let validated = try run(binary, ["validate", topology])
        #expect(validated.status == 0)
        #expect(validated.stdout.contains("ok (3 ports, 1 maps)"))

        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        // VLAN 1, VLAN 2, untagged, VLAN 1 again (ids in the tag's low 12 bits; priority bits set on one).
        let plain = udpFrame(from: "02:00:00:00:07:01", to: "02:00:00:00:07:02")
        let frames = [tagged(plain, tci: 0x0001), tagged(plain, tci: 0xE002), plain, tagged(plain, tci: 0x0001)]
        try writeTrace("\(dir)/in.pcap", frames.enumerated().map { (UInt64($0.offset) * 1_000_000, $0.element) })
        let replayed = try run(
            binary,
            [
                "replay", topology, "--in", "trunk=\(dir)/in.pcap", "--out", "\(dir)/out",
                "--quiet",
            ])
        #expect(replayed.status == 0, "\(replayed.stderr)")
        #expect(try readCapture("\(dir)/out/access1.egress.pcap").map(\.bytes) == [frames[0], frames[3]])
        #expect(try readCapture("\(dir)/out/access2.egress.pcap").map(\.bytes) == [frames[1]])
        #expect(try readCapture("\(dir)/out/trunk.pass.pcap").map(\.bytes) == [frames[2]])
    }

    /// `frame` with an 802.1Q tag carrying `tci` after its MAC addresses.
    func tagged(_ frame: [UInt8], tci: UInt16) -> [UInt8] {
        Array(frame[0..<12]) + [0x81, 0x00, UInt8(tci >> 8), UInt8(tci & 0xff)] + Array(frame[12...])
    }

    func run(_ executable: String, _ arguments: [String]) throws -> ProcessResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes while the child runs: a build's output can fill one and block it.
        let group = DispatchGroup()
        nonisolated(unsafe) var stderr = Data()
        DispatchQueue.global().async(group: group) { stderr = err.fileHandleForReading.readDataToEndOfFile() }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return ProcessResult(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }
}
