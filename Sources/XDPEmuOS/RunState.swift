// The record of what one xdpemu run created, kept on disk so that a crashed run can be cleaned up.
//
// Who writes: the run itself, through `RunState`, after each creation step (namespace added, TAP created,
// TAP moved) and before the next one, so the file is never behind the system by more than the step in
// progress. Each write replaces the file atomically (temp file + rename(2)).
// Who reads: `RunState.cleanupStale`, from another process (`xdpemu cleanup`), for files whose pid is dead.
// What cleanup deletes: exactly the listed links and namespaces that still exist, nothing else. A
// non-persistent TAP vanishes with its process, so usually only namespaces are left; links are still
// recorded because other link kinds (and persistent TAPs) outlive their creator.

import Foundation
import Glibc
import SystemPackage

/// A link a run created, and the namespace it lives in (`nil`: the run's own namespace).
public struct LinkRecord: Codable, Sendable, Equatable, Hashable {
    /// The interface name.
    public var name: String
    /// The namespace it was moved to, or `nil`.
    public var namespace: String?

    public init(name: String, namespace: String?) {
        self.name = name
        self.namespace = namespace
    }
}

/// What a run created, as stored in /run/xdpemu/PID.json.
public struct RunRecord: Codable, Sendable, Equatable {
    /// The process that created it all.
    public var pid: Int32
    /// When the run started, nanoseconds since the Unix epoch.
    public var startTimeNanos: UInt64
    /// Host TAPs (and any other links), with their namespace.
    public var taps: [LinkRecord] = []
    /// Network namespaces created with `ip netns add`.
    public var namespaces: [String] = []
    /// TAPs left in the run's own namespace for a local stack.
    public var stackTaps: [LinkRecord] = []
    /// Where captures are written, if anywhere.
    public var captureDirectory: String?

    public init(pid: Int32, startTimeNanos: UInt64) {
        self.pid = pid
        self.startTimeNanos = startTimeNanos
    }
}

extension RunRecord {
    /// Adds what `other` (a later version of the same run's record) lists and this one does not.
    mutating func merge(_ other: RunRecord) {
        for link in other.taps where !taps.contains(link) { taps.append(link) }
        for namespace in other.namespaces where !namespaces.contains(namespace) { namespaces.append(namespace) }
        for link in other.stackTaps where !stackTaps.contains(link) { stackTaps.append(link) }
        captureDirectory = captureDirectory ?? other.captureDirectory
    }
}

/// Why the state file could not be written or read.
public enum RunStateError: Error, Sendable, Equatable, CustomStringConvertible {
    /// mkdir/open/write/rename failed on `path`.
    case io(path: String, Errno)
    /// The file is not a valid record.
    case corrupt(path: String, reason: String)

    public var description: String {
        switch self {
        case .io(let path, let errno): return "run state \(path): \(errno)"
        case .corrupt(let path, let reason): return "run state \(path) is not readable: \(reason)"
        }
    }
}

/// What `RunState.cleanupStale` did.
public struct CleanupReport: Sendable, Equatable {
    /// Links and namespaces deleted, as "link NAME" / "link NAME in NS" / "namespace NS".
    public var removed: [String] = []
    /// Recorded things that no longer existed.
    public var alreadyGone: [String] = []
    /// Things that could not be deleted, with the reason.
    public var failures: [String] = []
    /// State files removed.
    public var stateFilesRemoved: [String] = []
    /// State files left because their process is alive (without `force`).
    public var liveRuns: [String] = []
    /// State files left because they could not be parsed.
    public var unreadable: [String] = []

    public init() {}
}

/// The state file of the current run: created on `init`, rewritten by every `record...` call, removed by
/// `finish()` on a clean exit.
public final class RunState {
    /// The default state directory.
    public static let defaultDirectory = "/run/xdpemu"

    /// The file this run writes: DIRECTORY/PID.json.
    public let path: String
    /// The current contents.
    public private(set) var record: RunRecord

    /// Creates DIRECTORY (0755) if needed and writes an empty record for `pid` (default: getpid(2)).
    public init(
        directory: String = RunState.defaultDirectory,
        pid: Int32 = getpid(),
        startTimeNanos: UInt64 = WallClock.nowNanos()
    ) throws(RunStateError) {
        do throws(Errno) {
            try makeDirectory(directory)
        } catch {
            throw .io(path: directory, error)
        }
        self.path = "\(directory)/\(pid).json"
        self.record = RunRecord(pid: pid, startTimeNanos: startTimeNanos)
        try save()
    }

    /// Records a namespace about to be used. Call right after `ip netns add` succeeds.
    public func recordNamespace(_ name: String) throws(RunStateError) {
        guard !record.namespaces.contains(name) else { return }
        record.namespaces.append(name)
        try save()
    }

    /// Records a TAP (or other link) in `namespace` (nil: the run's own). A link is known by its name and
    /// namespace: the record of the same name in the run's own namespace is replaced (the link was moved from
    /// there), and so is `previous` in `namespace` (the link was renamed there: one write, so the file never lists
    /// both names or neither).
    public func recordTap(_ name: String, namespace: String?, replacing previous: String? = nil) throws(RunStateError) {
        record.taps.removeAll {
            ($0.name == name && ($0.namespace == nil || $0.namespace == namespace))
                || ($0.name == previous && $0.namespace == namespace)
        }
        record.taps.append(LinkRecord(name: name, namespace: namespace))
        try save()
    }

    /// Records a TAP left in the run's own namespace for a local stack.
    public func recordStackTap(_ name: String) throws(RunStateError) {
        guard !record.stackTaps.contains(where: { $0.name == name }) else { return }
        record.stackTaps.append(LinkRecord(name: name, namespace: nil))
        try save()
    }

    /// Records the capture directory.
    public func recordCaptureDirectory(_ path: String?) throws(RunStateError) {
        record.captureDirectory = path
        try save()
    }

    /// Forgets a namespace the run deleted itself.
    public func forgetNamespace(_ name: String) throws(RunStateError) {
        record.namespaces.removeAll { $0 == name }
        try save()
    }

    /// Forgets a TAP (host or stack) in `namespace` (nil: the run's own) that the run closed or deleted itself.
    public func forgetTap(_ name: String, namespace: String? = nil) throws(RunStateError) {
        let link = LinkRecord(name: name, namespace: namespace)
        record.taps.removeAll { $0 == link }
        record.stackTaps.removeAll { $0 == link }
        try save()
    }

    /// Removes the state file (unlink(2)): the run exits cleanly, having undone everything itself.
    public func finish() {
        _ = unlink(path)
    }

    private func save() throws(RunStateError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data: Data
        do {
            data = try encoder.encode(record)
        } catch {
            preconditionFailure("RunRecord always encodes: \(error)")
        }
        do throws(Errno) {
            try writeFileAtomically(path, Array(data))
        } catch {
            throw .io(path: path, error)
        }
    }

    /// Reads a state file written by `RunState`.
    public static func load(path: String) throws(RunStateError) -> RunRecord {
        let bytes: [UInt8]
        do throws(FileReadError) {
            bytes = try readRegularFile(path)
        } catch {
            switch error {
            case .open(let errno), .stat(let errno), .read(let errno): throw .io(path: path, errno)
            case .notRegularFile: throw .corrupt(path: path, reason: error.description)
            }
        }
        do {
            return try JSONDecoder().decode(RunRecord.self, from: Data(bytes))
        } catch {
            throw .corrupt(path: path, reason: String(describing: error))
        }
    }

    /// Whether `pid` is alive: kill(pid, 0) succeeds or fails with EPERM (not ESRCH).
    ///
    /// A recycled pid looks alive; its leftovers then wait for the next cleanup, or for `force`.
    public static func isAlive(_ pid: Int32) -> Bool {
        guard pid > 0 else { return false }
        do throws(Errno) {
            _ = try retryingEINTROrThrow { kill(pid, 0) }
            return true
        } catch {
            return error != .noSuchProcess
        }
    }

    /// Cleans up after dead runs: for every DIRECTORY/*.json whose pid is not alive (every one if `force`),
    /// deletes the recorded links that still exist (`ip [-n NS] link delete`), then the recorded namespaces
    /// that still exist (`ip netns delete`), then the file. A dead run's DIRECTORY/PID.json.tmp (a save a kill
    /// interrupted) is handled with it: what it lists is cleaned up as well if it can be read, and it is removed.
    /// Nothing unrecorded is touched. A *.json file that cannot be parsed is reported and left in place. A file
    /// with failures is kept, for a second try.
    ///
    /// Names are reused: a run that died leaves its record behind, and a later run may have created a link
    /// or namespace of the same name. Without `force`, anything a live run's record also lists is that run's
    /// and is left alone (reported in `alreadyGone` as "... (now used by run PID)").
    public static func cleanupStale(
        directory: String = RunState.defaultDirectory, force: Bool = false
    )
        -> CleanupReport
    {
        var report = CleanupReport()
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var stale: [(paths: [String], record: RunRecord)] = []
        var temporaries: [(path: String, pid: Int32)] = []
        var claimedLinks: [LinkRecord: Int32] = [:]
        var claimedNamespaces: [String: Int32] = [:]
        for name in names.sorted() {
            let path = "\(directory)/\(name)"
            if let pid = temporaryFilePid(name) {
                temporaries.append((path, pid))
                continue
            }
            guard name.hasSuffix(".json") else { continue }
            let record: RunRecord
            do throws(RunStateError) {
                record = try load(path: path)
            } catch {
                report.unreadable.append(path)
                continue
            }
            if !force && isAlive(record.pid) {
                report.liveRuns.append(path)
                for link in record.taps + record.stackTaps { claimedLinks[link] = record.pid }
                for namespace in record.namespaces { claimedNamespaces[namespace] = record.pid }
                continue
            }
            stale.append(([path], record))
        }
        // PID.json.tmp is the next version of PID.json, left when the run was killed between writing it and the
        // rename. A live run's is its save in progress: left alone. A dead run's names what the run had created
        // by then (merged with its PID.json); one cut short by the kill cannot be read and names nothing.
        for (path, pid) in temporaries where force || !isAlive(pid) {
            guard isRegularFile(path) else {
                report.unreadable.append(path)
                continue
            }
            let record = (try? load(path: path)) ?? RunRecord(pid: pid, startTimeNanos: 0)
            if let i = stale.firstIndex(where: { $0.record.pid == pid }) {
                stale[i].paths.append(path)
                stale[i].record.merge(record)
            } else {
                stale.append(([path], record))
            }
        }
        for (paths, record) in stale {
            let failuresBefore = report.failures.count
            for link in record.taps + record.stackTaps {
                // A link inside a namespace a live run owns belongs to that run too.
                if let owner = claimedLinks[link] ?? link.namespace.flatMap({ claimedNamespaces[$0] }) {
                    let label = "link \(link.name)" + (link.namespace.map { " in \($0)" } ?? "")
                    report.alreadyGone.append("\(label) (now used by run \(owner))")
                    continue
                }
                cleanupLink(link, into: &report)
            }
            for namespace in record.namespaces {
                if let owner = claimedNamespaces[namespace] {
                    report.alreadyGone.append("namespace \(namespace) (now used by run \(owner))")
                    continue
                }
                cleanupNamespace(namespace, into: &report)
            }
            if report.failures.count == failuresBefore {
                for path in paths {
                    _ = unlink(path)
                    report.stateFilesRemoved.append(path)
                }
            }
        }
        return report
    }

    /// The live run (another process) whose state file in `directory` records the namespace `namespace`, or the
    /// link `link` in this process's namespace: its pid and state file. For messages: "in use by run PID".
    public static func liveOwner(
        namespace: String? = nil, link: String? = nil, directory: String = RunState.defaultDirectory
    ) -> (pid: Int32, path: String)? {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names.sorted() where name.hasSuffix(".json") {
            let path = "\(directory)/\(name)"
            guard let record = try? load(path: path), record.pid != getpid(), isAlive(record.pid) else { continue }
            if let namespace, record.namespaces.contains(namespace) { return (record.pid, path) }
            if let link, (record.taps + record.stackTaps).contains(LinkRecord(name: link, namespace: nil)) {
                return (record.pid, path)
            }
        }
        return nil
    }

    /// The pid of a temporary state file's name, "PID.json.tmp" (what `save` writes before the rename), else nil.
    static func temporaryFilePid(_ name: String) -> Int32? {
        guard name.hasSuffix(".json.tmp") else { return nil }
        let digits = name.dropLast(".json.tmp".count)
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int32(digits)
    }

    /// Whether `path` itself (lstat(2): a symlink is not followed) is a regular file.
    private static func isRegularFile(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFREG
    }

    private static func cleanupLink(_ link: LinkRecord, into report: inout CleanupReport) {
        let label = "link \(link.name)" + (link.namespace.map { " in \($0)" } ?? "")
        do throws(NetworkConfigError) {
            guard try Link.linkExists(link.name, in: link.namespace) else {
                report.alreadyGone.append(label)
                return
            }
            try Link.deleteLink(link.name, in: link.namespace)
            report.removed.append(label)
        } catch {
            report.failures.append("\(label): \(error)")
        }
    }

    private static func cleanupNamespace(_ namespace: String, into report: inout CleanupReport) {
        let label = "namespace \(namespace)"
        guard NetNamespace.exists(namespace) else {
            report.alreadyGone.append(label)
            return
        }
        do throws(NetworkConfigError) {
            try NetNamespace.delete(namespace)
            report.removed.append(label)
        } catch {
            report.failures.append("\(label): \(error)")
        }
    }
}
