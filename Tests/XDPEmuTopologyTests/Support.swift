import Foundation
import Testing

@testable import XDPEmuTopology

/// The package root, found from this file's path so tests run from any directory.
let packageRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// Loads `json`, recording an issue if it does not load.
func load(_ json: String, custom: Set<String> = [], sourceLocation: SourceLocation = #_sourceLocation) -> Topology? {
    do {
        return try Topology.parse(data: json, source: "test.json", customProgramTypes: custom)
    } catch {
        Issue.record("expected the topology to load, got:\n\(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// The problems loading `json` reports; records an issue if it loads.
func problems(
    _ json: String,
    custom: Set<String> = [],
    sourceLocation: SourceLocation = #_sourceLocation
)
    -> [TopologyError.Problem]
{
    do {
        let topology = try Topology.parse(data: json, source: "test.json", customProgramTypes: custom)
        Issue.record("expected problems, but \(topology.name) loaded", sourceLocation: sourceLocation)
        return []
    } catch {
        return error.problems
    }
}

/// Expects loading `json` to report exactly one problem, at `path`, whose message contains `message`.
func expectProblem(
    _ json: String,
    at path: String,
    _ message: String,
    custom: Set<String> = [],
    sourceLocation: SourceLocation = #_sourceLocation
) {
    let found = problems(json, custom: custom, sourceLocation: sourceLocation)
    #expect(
        found.count == 1,
        "expected one problem, got:\n\(found.map(\.description).joined(separator: "\n"))",
        sourceLocation: sourceLocation
    )
    guard let problem = found.first else { return }
    #expect(problem.path == path, sourceLocation: sourceLocation)
    #expect(problem.message.contains(message), "message was: \(problem.message)", sourceLocation: sourceLocation)
}

/// A topology document with `ports` and `maps` (JSON array bodies) and extra top-level members.
func document(ports: String = #"{"name": "p0"}"#, maps: String? = nil, extra: String = "") -> String {
    var members = [#""name": "t""#, #""ports": [\#(ports)]"#]
    if let maps { members.append(#""maps": [\#(maps)]"#) }
    if !extra.isEmpty { members.append(extra) }
    return "{" + members.joined(separator: ", ") + "}"
}

/// A document whose single port runs `program` (a JSON object) over a devmap `m` with two ports.
func programDocument(_ program: String, semantics: String = "4.18") -> String {
    document(
        ports: #"{"name": "p0", "program": \#(program)}, {"name": "p1"}"#,
        maps: #"{"name": "m", "type": "devmap", "max_entries": 4, "entries": {"0": "p0", "1": "p1"}}"#,
        extra: #""semantics": "\#(semantics)""#
    )
}

/// Runs the first `python3` on PATH (as a shell would pick it) with `arguments`; nil when there is none.
func runPython(_ arguments: [String], input: String? = nil) throws -> (status: Int32, output: String)? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    guard
        let python = path.split(separator: ":").map({ "\($0)/python3" }).first(where: {
            FileManager.default.isExecutableFile(atPath: $0)
        })
    else { return nil }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: python)
    process.arguments = arguments
    let output = Pipe()
    process.standardOutput = output
    process.standardError = output
    let inputPipe = Pipe()
    process.standardInput = inputPipe
    try process.run()
    if let input { inputPipe.fileHandleForWriting.write(Data(input.utf8)) }
    try inputPipe.fileHandleForWriting.close()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}
