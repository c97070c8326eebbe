import Foundation
import Testing
import XDPEmuRuntime

/// Every regular file under `directory` (not following links) with its contents, to prove nothing changed.
private func snapshot(_ directory: String) throws -> [String: Data] {
    var files = [String: Data]()
    for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
        let path = "\(directory)/\(name)"
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        if attributes[.type] as? FileAttributeType == .typeRegular {
            files[name] = try Data(contentsOf: URL(fileURLWithPath: path))
        } else {
            files[name] = Data("<\(attributes[.type] ?? "?")>".utf8)
        }
    }
    return files
}

private let twoHosts = "\(repositoryRoot)/topologies/two-hosts.json"
private let icmp = "\(repositoryRoot)/pcaps/two-hosts-icmp.pcap"

/// Inputs before outputs, whole records on a full disk, no writing through links (issue 17, items 2 to 4 and 8).
@Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: xdpemuBinary), "the xdpemu binary is not built"))
struct OutputSafetyTests {
    /// A replay into `dir/out` with events and statistics, as a user's earlier run left it.
    private func earlierRun(in dir: String) throws -> [String: Data] {
        let r = try runXDPEmu([
            "replay", twoHosts, "--in", "xe0=\(icmp)", "--out", "\(dir)/out", "--events", "\(dir)/out/ev.jsonl",
            "--stats", "\(dir)/out/st.json", "--quiet",
        ])
        try #require(r.status == 0, "\(r.stderr)")
        return try snapshot("\(dir)/out")
    }

    @Test func aMissingTraceTruncatesNothing() throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let before = try earlierRun(in: dir)
        let r = try runXDPEmu([
            "replay", twoHosts, "--in", "xe0=\(dir)/typo.pcap", "--out", "\(dir)/out", "--events",
            "\(dir)/out/ev.jsonl", "--stats", "\(dir)/out/st.json",
        ])
        #expect(r.status == 2)
        #expect(r.stderr.contains("typo.pcap: cannot open") && r.stderr.contains("nothing was created or changed"))
        #expect(try snapshot("\(dir)/out") == before)
    }

    @Test func aTraceWithABadHeaderTruncatesNothing() throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let before = try earlierRun(in: dir)
        try Data("not a pcap at all, but long enough".utf8).write(to: URL(fileURLWithPath: "\(dir)/bad.pcap"))
        let r = try runXDPEmu([
            "replay", twoHosts, "--in", "xe0=\(icmp)", "--in", "xe1=\(dir)/bad.pcap", "--out", "\(dir)/out",
        ])
        #expect(r.status == 2)
        #expect(r.stderr.contains("bad.pcap: byte offset 0: not a pcap or pcapng file"))
        #expect(try snapshot("\(dir)/out") == before)
    }

    @Test func badOutputPathsAreRefusedBeforeAnythingIsWritten() throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let before = try earlierRun(in: dir)
        let out = "\(dir)/out"
        let cases: [([String], String)] = [
            (["--stats", out], "\(out): cannot write there: it is a directory"),
            (["--events", "\(out)/drops.pcap"], "\(out)/drops.pcap: is both a capture of this run and --events"),
            (["--events", "\(out)/e", "--stats", "\(out)/e"], "\(out)/e: is both --events and --stats"),
            (["--stats", "\(dir)/missing/st.json"], "\(dir)/missing/st.json: cannot create: its directory"),
            (["--stats", icmp], "\(icmp): is --in xe0, an input, and also --stats"),
            (["--stats", twoHosts], "\(twoHosts): is the topology, an input, and also --stats"),
        ]
        for (options, message) in cases {
            let r = try runXDPEmu(["replay", twoHosts, "--in", "xe0=\(icmp)", "--out", out] + options)
            #expect(r.status == 1, "\(options)")
            #expect(r.stderr.contains(message), "\(options): \(r.stderr)")
            #expect(!r.stderr.contains("NSCocoaErrorDomain") && !r.stderr.contains("The operation could not"))
            #expect(try snapshot(out) == before, "\(options)")
        }
        // --out naming a file (item 8): the path and the reason in plain words.
        let file = try runXDPEmu(["replay", twoHosts, "--in", "xe0=\(icmp)", "--out", "\(out)/st.json"])
        #expect(file.status == 1)
        #expect(file.stderr.contains("\(out)/st.json: cannot write there: it is a regular file, not a directory"))
        #expect(try snapshot(out) == before)
    }

    @Test func capturesOfAnEarlierRunThatThisRunDoesNotWriteAreRemovedAndNamed() throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        _ = try earlierRun(in: dir)
        let out = "\(dir)/out"
        for name in ["gone.ingress.pcap", "gone.egress.pcap", "gone.pass.pcap", "notes.txt", "my.pcap"] {
            try Data("old".utf8).write(to: URL(fileURLWithPath: "\(out)/\(name)"))
        }
        // The same topology with ingress capture off on xe1: xe1.ingress.pcap of the earlier run goes too.
        var json = try String(contentsOfFile: twoHosts, encoding: .utf8)
        json = json.replacingOccurrences(
            of: "\"name\": \"xe1\",", with: "\"name\": \"xe1\", \"capture\": {\"ingress\": false},")
        try json.write(toFile: "\(dir)/t.json", atomically: true, encoding: .utf8)
        let r = try runXDPEmu(["replay", "\(dir)/t.json", "--in", "xe0=\(icmp)", "--out", out, "--quiet"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(
            r.stderr.contains(
                "removed 4 capture files of an earlier run from \(out) that this run does not write: "
                    + "gone.egress.pcap, gone.ingress.pcap, gone.pass.pcap, xe1.ingress.pcap"))
        let left = Set(try FileManager.default.contentsOfDirectory(atPath: out))
        #expect(left.isSuperset(of: ["notes.txt", "my.pcap", "ev.jsonl", "st.json", "xe1.egress.pcap"]))
        #expect(left.isDisjoint(with: ["gone.ingress.pcap", "gone.egress.pcap", "gone.pass.pcap", "xe1.ingress.pcap"]))
    }

    @Test func aSymbolicLinkAmongTheOutputsIsRefusedAndItsTargetKept() throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        let target = "\(dir)/precious"
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: target))
        try FileManager.default.createDirectory(atPath: "\(dir)/out", withIntermediateDirectories: true)
        for link in ["\(dir)/out/drops.pcap", "\(dir)/stats.json"] {
            #expect(symlink(target, link) == 0)
            let r = try runXDPEmu([
                "replay", twoHosts, "--in", "xe0=\(icmp)", "--out", "\(dir)/out", "--stats", "\(dir)/stats.json",
            ])
            #expect(r.status == 1)
            #expect(r.stderr.contains("\(link): refusing to write: it is a symbolic link"), "\(r.stderr)")
            #expect(try String(contentsOfFile: target, encoding: .utf8) == "keep me")
            #expect(
                try FileManager.default.contentsOfDirectory(atPath: "\(dir)/out") == ["drops.pcap"]
                    || link.hasSuffix("stats.json"))
            unlink(link)
        }
    }

    @Test(.enabled(if: geteuid() == 0, "mounting a small tmpfs needs root"))
    func aFullDiskLeavesWholeRecordsAndNamesEveryFileWithWhatIsMissing() throws {
        let dir = makeTemporaryDirectory()
        defer { removeDirectory(dir) }
        // 3000 frames of 1000 bytes: about 3 MB of ingress and 3 MB of egress capture into 1 MB.
        var frames = [(time: UInt64, bytes: [UInt8])]()
        let frame = udpFrame(from: "02:00:00:00:01:01", to: "02:00:00:00:01:02", payload: 958)
        for i in 0..<3000 { frames.append((time: 1_000_000 + UInt64(i) * 1000, bytes: frame)) }
        try writeTrace("\(dir)/big.pcap", frames)
        let small = "\(dir)/small"
        try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
        try #require(mount("tmpfs", small, "tmpfs", 0, "size=1m") == 0, "mount: errno \(errno)")
        defer { umount2(small, Int32(MNT_DETACH)) }
        let r = try runXDPEmu([
            "replay", twoHosts, "--in", "xe0=\(dir)/big.pcap", "--out", "\(small)/out", "--events",
            "\(small)/out/ev.jsonl", "--stats", "\(small)/out/st.json",
        ])
        #expect(r.status == 1)
        for name in ["xe0.ingress.pcap", "xe1.egress.pcap"] {
            let path = "\(small)/out/\(name)"
            let kept = try readCapture(path).count  // throws on a record cut short
            #expect(kept < 3000)
            #expect(
                r.stderr.contains(
                    "xdpemu: \(path): cannot write: No space left on device; the file ends after "
                        + "\(kept) whole frames, \(3000 - kept) frames missing"), "\(r.stderr)")
            #expect(r.stderr.contains("  \(path): \(3000 - kept) frames missing"))
            if access("/usr/bin/tcpdump", X_OK) == 0 {
                let tcpdump = Process()
                tcpdump.executableURL = URL(fileURLWithPath: "/usr/bin/tcpdump")
                tcpdump.arguments = ["-r", path, "-w", "/dev/null"]
                let errors = Pipe()
                tcpdump.standardError = errors
                try tcpdump.run()
                let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                tcpdump.waitUntilExit()
                #expect(tcpdump.terminationStatus == 0 && !message.contains("truncated"), "\(message)")
            }
        }
        #expect(r.stderr.contains("incomplete outputs (a write failed; each file ends at its last whole record):"))
        // The event log ends with a whole line; a statistics file that did not fit is not left half written.
        let events = try Data(contentsOf: URL(fileURLWithPath: "\(small)/out/ev.jsonl"))
        #expect(events.isEmpty || events.last == UInt8(ascii: "\n"))
        #expect(r.stderr.contains("\(small)/out/st.json: cannot write: No space left on device"))
        #expect(!FileManager.default.fileExists(atPath: "\(small)/out/st.json"))
    }
}
