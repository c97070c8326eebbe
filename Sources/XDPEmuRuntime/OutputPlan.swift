import XDPEmuOS
import XDPEmuTopology

// Inputs before outputs: a run works out every file it will write and checks each one before it creates, truncates
// or removes anything, so a typo in an option costs nothing but the message. Replay opens every trace first (a
// trace that cannot be opened is refused before this plan is made); live mode makes the plan in its preflight.
//
// The checks: the capture directory is a directory, or can be created, and can be written; no capture file, event
// log or statistics file is a symbolic link, a directory, a FIFO or a socket, and each can be created in its
// directory; no two outputs are the same file; no output is one of the run's inputs (topology, traces, map-event
// file). Then `prepare` removes the capture files of an earlier run that this run will not write (ports whose
// capture is now off, ports no longer in the topology), so the directory never mixes two runs' captures.

/// Every file a run writes, checked before anything is created, truncated or removed.
public struct OutputPlan: Equatable, Sendable {
    /// Where the captures go; nil when there are none.
    public var captureDirectory: String?
    /// The capture files of this run (paths in `captureDirectory`).
    public var captureFiles: [String]
    public var eventsPath: String?
    public var statsPath: String?
    /// Files in `captureDirectory` named as xdpemu names captures that this run will not write: `prepare` removes
    /// them.
    public var staleCaptures: [String]

    /// A file the run reads, and how the command line named it (`--in xe0`, "the topology"...).
    public struct Input: Equatable, Sendable {
        public var what: String
        public var path: String
        public init(what: String, path: String) {
            self.what = what
            self.path = path
        }
    }

    /// Checks every output, creating nothing. Throws `.failure` listing every problem (exit code 1).
    public init(
        topology: Topology, captureDirectory: String?, eventsPath: String?, statsPath: String?, inputs: [Input]
    ) throws(RuntimeError) {
        self.captureDirectory = captureDirectory
        self.eventsPath = eventsPath
        self.statsPath = statsPath
        let names = CaptureSet.fileNames(ports: topology.ports.map { ($0.name, $0.capture.ingress, $0.capture.egress) })
        captureFiles = captureDirectory.map { directory in names.map { "\(directory)/\($0)" } } ?? []
        staleCaptures = []
        var problems = [String]()
        func check(_ body: () throws(OutputFileError) -> Void) {
            do { try body() } catch { problems.append(error.description) }
        }
        if let directory = captureDirectory {
            check { () throws(OutputFileError) in try checkOutputDirectory(directory) }
            if FileKind(following: directory) == .directory {
                for path in captureFiles where FileKind(at: path) != .missing {
                    check { () throws(OutputFileError) in try checkOutputFile(path) }
                }
                let planned = Set(names)
                var entries = [String]()
                check { () throws(OutputFileError) in entries = try directoryEntries(directory) }
                staleCaptures =
                    entries.filter { CaptureSet.isCaptureFileName($0) && !planned.contains($0) }.sorted()
                    .map { "\(directory)/\($0)" }.filter { FileKind(at: $0) != .directory }
            }
        }
        for path in [eventsPath, statsPath].compactMap({ $0 }) {
            // A file in the capture directory, which the run creates before it writes the file, is checked as the
            // directory is.
            let parent = parentDirectory(of: path)
            if let captureDirectory, FileKind(following: parent) == .missing,
                Location.normalized(parent) == Location.normalized(captureDirectory)
            {
                continue
            }
            check { () throws(OutputFileError) in try checkOutputFile(path) }
        }
        // Two names for one file: compare where they lead (an existing file by device and inode, a new one by its
        // directory's identity and its name).
        var outputs = [(what: String, path: String)]()
        outputs += captureFiles.map { ("a capture of this run", $0) }
        outputs += staleCaptures.map { ("a capture of an earlier run, to be removed", $0) }
        if let eventsPath { outputs.append(("--events", eventsPath)) }
        if let statsPath { outputs.append(("--stats", statsPath)) }
        var seen = [Location: String]()
        for output in outputs {
            let location = Location(output.path)
            if let earlier = seen[location] {
                problems.append("\(output.path): is both \(earlier) and \(output.what); give each its own file")
            } else {
                seen[location] = output.what
            }
        }
        for input in inputs {
            guard let output = seen[Location(input.path)] else { continue }
            problems.append(
                "\(input.path): is \(input.what), an input, and also \(output); xdpemu never writes over its inputs "
                    + "(copy or move it elsewhere first)")
        }
        if !problems.isEmpty {
            throw .failure(problems.joined(separator: "\nxdpemu: ") + "\nxdpemu: nothing was created or changed")
        }
    }

    /// Removes `staleCaptures` (unlink(2): a link itself, never its target). Call once the run's inputs are all
    /// open and checked, just before the captures are created.
    public func prepare() throws(RuntimeError) {
        for path in staleCaptures {
            do {
                try removeOutputFile(path)
            } catch {
                throw .failure("\(error)")
            }
        }
    }

    /// What `prepare` did, for the user: nil when there was nothing stale.
    public var staleCapturesMessage: String? {
        guard !staleCaptures.isEmpty, let captureDirectory else { return nil }
        let names = staleCaptures.map { String($0.dropFirst(captureDirectory.count + 1)) }
        return "removed \(names.count) capture file\(names.count == 1 ? "" : "s") of an earlier run from "
            + "\(captureDirectory) that this run does not write: \(names.joined(separator: ", "))"
    }
}

/// Where a path leads: the file itself when it exists, else its directory and name, else (in a directory still to
/// be created) the path spelled out.
private enum Location: Hashable {
    case file(FileIdentity)
    case entry(FileIdentity, String)
    case text(String)

    init(_ path: String) {
        if let identity = fileIdentity(path) {
            self = .file(identity)
        } else if let directory = fileIdentity(parentDirectory(of: path)) {
            self = .entry(directory, String(path.split(separator: "/").last ?? ""))
        } else {
            self = .text(Self.normalized(path))
        }
    }

    /// `path` made absolute, without empty and "." components.
    static func normalized(_ path: String) -> String {
        "/" + absolutePath(path).split(separator: "/").filter { $0 != "." }.joined(separator: "/")
    }
}
