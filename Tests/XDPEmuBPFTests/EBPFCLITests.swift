import Foundation
import Testing

let xdpemuBinary: String = {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? ""
    return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("xdpemu").path
}()

let straceAvailable = FileManager.default.isExecutableFile(atPath: "/usr/bin/strace")

/// Runs a program; returns (exit status, stdout, stderr).
func runProcess(_ executable: String, _ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (
        process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self)
    )
}

/// `xdpemu prog show`, `validate` and the topology's agreement rules, through the command line.
@Suite(
    .enabled(if: Clang.available, Clang.reason),
    .enabled(if: FileManager.default.isExecutableFile(atPath: xdpemuBinary), "the xdpemu binary is not built"))
struct EBPFCLITests {
    @Test func progShowListsProgramsMapsAndHelpers() throws {
        let r = try runProcess(xdpemuBinary, ["prog", "show", try Clang.bpf("faults")])
        #expect(r.status == 0)
        #expect(r.out.contains("xdp_oob  section xdp/oob  6 instructions"))
        #expect(r.out.contains("helpers: 1000 (not supported)"))
        #expect(r.out.contains("problem: section xdp/helper, instruction 3: helper 1000 is not supported by xdpemu"))
        #expect(r.out.contains(".rodata  array  key 4 bytes  value 4 bytes  max_entries 1  (global data, read only)"))
        let bad = try runProcess(xdpemuBinary, ["prog", "show", "\(programsDirectory)/isa.c"])
        #expect(bad.status == 2)
        #expect(bad.err.contains("isa.c: not an ELF file"))
    }

    /// The loader reads the object itself: no bpf(2) call, for `prog show` and for a whole replay.
    @Test(.enabled(if: straceAvailable, "needs strace (apt-get install -y strace)"))
    func loadingMakesNoBPFSystemCall() throws {
        let directory = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let object = try Clang.bpf("redirect_mac")
        try FileManager.default.copyItem(atPath: object, toPath: "\(directory)/prog.o")
        try """
        {"name": "t", "ports": [{"name": "p1", "program": {"type": "ebpf", "object": "prog.o"}}, {"name": "p2"}],
         "maps": [{"name": "tx_port", "type": "devmap", "max_entries": 8, "entries": {"0": "p2"}}]}
        """.write(toFile: "\(directory)/t.json", atomically: true, encoding: .utf8)
        writeTrace("\(directory)/in.pcap", [ethernetFrame(dst: mac(1), src: mac(2), type: 0x0800)])
        for arguments in [
            ["prog", "show", "\(directory)/prog.o"],
            [
                "replay", "\(directory)/t.json", "--in", "p1=\(directory)/in.pcap", "--out", "\(directory)/out",
                "--quiet",
            ],
        ] {
            let trace = "\(directory)/strace.txt"
            let r = try runProcess(
                "/usr/bin/strace", ["-f", "-qq", "-e", "trace=bpf,openat", "-o", trace, xdpemuBinary] + arguments)
            #expect(r.status == 0, "\(r.err)")
            let text = try String(contentsOfFile: trace, encoding: .utf8)
            #expect(text.contains("prog.o"), "strace saw the object opened")  // strace did trace the run
            #expect(!text.contains("bpf("), "\(text.split(separator: "\n").filter { $0.contains("bpf(") })")
        }
    }

    @Test func validateNamesBothPlacesAndTheInstruction() throws {
        let directory = makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try FileManager.default.copyItem(atPath: try Clang.bpf("redirect_mac"), toPath: "\(directory)/redirect.o")
        try FileManager.default.copyItem(atPath: try Clang.bpf("faults"), toPath: "\(directory)/faults.o")
        func validate(_ json: String) throws -> (status: Int32, out: String, err: String) {
            try json.write(toFile: "\(directory)/t.json", atomically: true, encoding: .utf8)
            return try runProcess(xdpemuBinary, ["validate", "\(directory)/t.json"])
        }
        let disagree = try validate(
            """
            {"name": "t", "ports": [{"name": "p1", "program": {"type": "ebpf", "object": "redirect.o"}}],
             "maps": [{"name": "redirect_counts_per_port", "type": "hash", "max_entries": 9}]}
            """)
        #expect(disagree.status == 2)
        #expect(
            disagree.err.contains(
                "t.json: $.maps[0] and \(directory)/redirect.o: map redirect_counts_per_port disagree"))
        #expect(disagree.err.contains("type hash against array, max_entries 9 against 8"))
        let badValue = try validate(
            """
            {"name": "t", "ports": [{"name": "p1", "program": {"type": "ebpf", "object": "redirect.o"}}],
             "maps": [{"name": "mac_to_port", "type": "hash", "max_entries": 64,
                       "entries": [{"key": 5, "value": 1}]}]}
            """)
        #expect(badValue.status == 2)
        #expect(
            badValue.err.contains(
                "$.maps[0].entries[0].key: an integer fits only a 4- or 8-byte field; this one has 6 bytes"))
        let helper = try validate(
            """
            {"name": "t", "ports": [{"name": "p1", "program": {"type": "ebpf", "object": "faults.o", "function": "xdp_unknown_helper"}}]}
            """)
        #expect(helper.status == 2)
        #expect(
            helper.err.contains("faults.o: function xdp_unknown_helper: section xdp/helper, instruction 3: helper 1000")
        )
        let which = try validate(
            """
            {"name": "t", "ports": [{"name": "p1", "program": {"type": "ebpf", "object": "faults.o"}}]}
            """)
        #expect(which.status == 2)
        #expect(which.err.contains("the object has 5 XDP programs"))
        let unused = try validate(
            """
            {"name": "t", "ports": [{"name": "p1", "program": {"type": "ebpf", "object": "redirect.o"}}],
             "maps": [{"name": "nothere", "type": "array", "max_entries": 1}]}
            """)
        #expect(unused.err.contains("$.maps[0]: no eBPF object of the topology defines a map named nothere"))
        let good = try validate(
            """
            {"name": "t", "ports": [{"name": "p1", "program": {"type": "ebpf", "object": "redirect.o"}}],
             "maps": [{"name": "redirect_counts_per_port", "type": "array", "max_entries": 8, "value_size": 8,
                       "entries": [{"key": 1, "value": "0100000000000000"}]}]}
            """)
        #expect(good.status == 0, "\(good.err)")
    }
}
