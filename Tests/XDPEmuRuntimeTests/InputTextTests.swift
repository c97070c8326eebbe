import Foundation
import Testing
import XDPEmuRuntime
import XDPEmuTopology

/// Input text in messages is quoted, escaped and cut (issue 17, item 11); files written on Windows read as the same
/// files (item 12).
@Suite struct InputTextTests {
    @Test func quotingEscapesControlsAndCutsLongText() {
        #expect(quotedForMessage("xe0") == "\"xe0\"")
        #expect(quotedForMessage("a\u{1b}[31mb\0c\n\u{7f}\u{202e}") == "\"a\\u001b[31mb\\u0000c\\n\\u007f\\u202e\"")
        #expect(quotedForMessage("it's", quote: "'") == "'it\\'s'")
        let long = String(repeating: "p", count: 1_000_000)
        #expect(quotedForMessage(long) == "\"" + String(repeating: "p", count: 80) + "\"… (1000000 bytes)")
        #expect(isPrintableText("Bob's \"lab\" ü", limit: 100) && !isPrintableText("a\u{1b}", limit: 100))
        #expect(!isPrintableText(String(repeating: "a", count: 101), limit: 100))
    }

    @Test func mapBatchErrorsQuoteAndCutWhatTheyEcho() {
        var batch = MapBatch()
        let token = String(repeating: "x", count: 10_000_000)
        guard case .failure(let error) = batch.execute(line: token, number: 3) else {
            Issue.record("a 10 MB token is not an operation")
            return
        }
        #expect(error.line == 3)
        #expect(error.message == "unknown operation '" + String(repeating: "x", count: 80) + "'… (10000000 bytes)")
        guard case .failure(let escape) = batch.execute(line: "update 0 \u{1b}[31mred\0", number: 4) else {
            Issue.record("an unknown device is an error")
            return
        }
        #expect(escape.message.hasPrefix("unknown device '\\u001b[31mred\\u0000'"))
        guard case .failure(let device) = batch.execute(line: "device \u{1b}[2J", number: 5) else {
            Issue.record("a device name with an escape is refused")
            return
        }
        #expect(device.message.contains("must be at most 15 printable characters"))
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: xdpemuBinary), "the xdpemu binary is not built"))
    func mapBatchNamesTheFileAndLineAndPrintsNoRawControlBytes() throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let script =
            "device eth0\ncreate devmap 4\n" + String(repeating: "x", count: 10_000_000)
            + "\nupdate 0 \u{1b}[31mred\0\nlookup 0\n"
        try script.write(toFile: "\(dir)/s.txt", atomically: true, encoding: .utf8)
        let r = try runXDPEmu(["map", "batch", "\(dir)/s.txt"])
        #expect(r.status == 2)
        #expect(r.stdout == "ok 1\nok\nENOENT\n")
        #expect(r.stderr.utf8.count < 1000 && !r.stderr.contains("\u{1b}") && !r.stderr.contains("\0"))
        #expect(r.stderr.contains("xdpemu: \(dir)/s.txt: line 3: unknown operation 'xxxx"))
        #expect(r.stderr.contains("xdpemu: \(dir)/s.txt: line 4: unknown device '\\u001b[31mred\\u0000'"))
    }

    @Test func topologyMessagesQuoteAndCutNames() throws {
        var json = try String(contentsOfFile: "\(repositoryRoot)/topologies/two-hosts.json", encoding: .utf8)
        json = json.replacingOccurrences(
            of: "\"name\": \"xe0\"", with: "\"name\": \"" + String(repeating: "p", count: 1_000_000) + "\"")
        json = json.replacingOccurrences(of: "\"name\": \"xe1\"", with: "\"name\": \"\\u001b[2J\\u0000x\"")
        #expect {
            try Topology.parse(data: Array(json.utf8), source: "t.json")
        } throws: { error in
            let text = "\(error)"
            return text.count < 2000 && !text.contains("\u{1b}") && !text.contains("\0")
                && text.contains("\"" + String(repeating: "p", count: 80) + "\"… (1000000 bytes)")
                && text.contains("\"\\u001b[2J\\u0000x\"")
        }
    }

    @Test func topologyAndMapEventFilesWithCRLFLineEndsWork() throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let unix = try String(contentsOfFile: "\(repositoryRoot)/topologies/two-hosts.json", encoding: .utf8)
        let windows = unix.replacingOccurrences(of: "\n", with: "\r\n")
        #expect(windows.contains("\r\n"))
        try windows.write(toFile: "\(dir)/t.json", atomically: true, encoding: .utf8)
        let topology = try Topology.load(path: "\(dir)/t.json")
        #expect(topology.ports.map(\.name) == (try sampleTopology("two-hosts")).ports.map(\.name))
        let events =
            "{\"events\": [\r\n  {\"at_ns\": 0, \"op\": \"delete\", \"map\": \"fwd\", \"key\": 0},\r\n"
            + "  {\"at\": 1e-6, \"op\": \"update\", \"map\": \"fwd\", \"key\": 0, \"port\": \"xe1\"}\r\n]}\r\n"
        try events.write(toFile: "\(dir)/ev.json", atomically: true, encoding: .utf8)
        let schedule = try MapEventSchedule.load(path: "\(dir)/ev.json", topology: topology)
        #expect(schedule.events.count == 2 && schedule.events[1].offset == 1000)
        // A problem in such a file is placed on the right line.
        try "{\"events\": [\r\n\r\n  {\"at\": 0, \"op\": \"frob\", \"map\": \"fwd\", \"key\": 0}\r\n]}\r\n".write(
            toFile: "\(dir)/bad.json", atomically: true, encoding: .utf8)
        #expect {
            try MapEventSchedule.load(path: "\(dir)/bad.json", topology: topology)
        } throws: { error in
            let problem = (error as? TopologyError)?.problems.first
            return problem?.path == "$.events[0].op" && problem?.position?.line == 3
        }
    }
}
