import Foundation
import Testing

/// README's command table names every option of every command, as the command line itself declares them
/// (`--experimental-dump-help`, swift-argument-parser's description of a command), and the command line's
/// first-use behaviour: a version, and a usage error without a subcommand.
@Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: xdpemuBinary), "the xdpemu binary is not built"))
struct ReadmeOptionsTests {
    static let commands = [
        ["run"], ["replay"], ["map", "batch"], ["validate"], ["cleanup"], [], ["stats"], ["ports"], ["port", "set"],
        ["events"], ["list"], ["map", "update"], ["map", "delete"], ["map", "lookup"], ["map", "next"],
        ["map", "dump"],
    ]

    @Test(arguments: commands)
    func everyOptionIsInTheReadmeRowOfItsCommand(command: [String]) throws {
        let readme = try String(contentsOfFile: "\(repositoryRoot)/README.md", encoding: .utf8)
        let table = readme.components(separatedBy: "## Commands\n")[1].components(separatedBy: "\n## ")[0]
        // A row names its command's words; a word may list alternatives ("update\\|delete" for a row shared by
        // subcommands that take the same options).
        func names(_ row: Substring) -> Bool {
            guard !command.isEmpty else { return row.hasPrefix("| `xdpemu --") }
            let words = row.dropFirst(3).split(separator: " ").prefix(command.count + 1)
            guard words.first == "xdpemu", words.count == command.count + 1 else { return false }
            return zip(words.dropFirst(), command).allSatisfy { word, name in
                word.components(separatedBy: "\\|").contains(name)
            }
        }
        let row = try #require(
            table.split(separator: "\n").first(where: names),
            "no README row for xdpemu \(command.joined(separator: " "))")
        let dump = try runXDPEmu(command + ["--experimental-dump-help"])
        #expect(dump.status == 0)
        let info = try #require(try JSONSerialization.jsonObject(with: Data(dump.stdout.utf8)) as? [String: Any])
        let arguments = try #require((info["command"] as? [String: Any])?["arguments"] as? [[String: Any]])
        var checked = 0
        for argument in arguments {
            for name in argument["names"] as? [[String: String]] ?? [] where name["kind"] == "long" {
                guard let long = name["name"], long != "help", long != "experimental-dump-help",
                    command.isEmpty || long != "version"  // the root's, documented in its row
                else { continue }
                #expect(row.contains("--\(long)"), "README's row for xdpemu \(command) lacks --\(long)")
                checked += 1
            }
        }
        // Not vacuous: every command but validate has options.
        if command != ["validate"] { #expect(checked > 0) }
    }

    @Test func aBareXDPEmuIsAUsageErrorAndVersionIsPrinted() throws {
        let bare = try runXDPEmu([])
        #expect(bare.status == 64)
        #expect(bare.stderr.contains("USAGE: xdpemu <subcommand>"))
        let version = try runXDPEmu(["--version"])
        #expect(version.status == 0)
        #expect(version.stdout.split(separator: ".").count == 3)
    }

    @Test func replayWithoutAnInputIsAUsageError() throws {
        let r = try runXDPEmu(["replay", "\(repositoryRoot)/topologies/two-hosts.json", "--out", "/nonexistent/out"])
        #expect(r.status == 64)
        #expect(r.stderr.contains("Missing expected argument '--in <PORT=TRACE[,dst=MAC][,src=MAC]> ...'"))
        #expect(
            try runXDPEmu(["replay", "--help"]).stdout.contains("<topology> --in <PORT=TRACE[,dst=MAC][,src=MAC]> ..."))
    }
}
