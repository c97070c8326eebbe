import Foundation
import Glibc
import Testing
import XDPEmuOS

@Suite("Run state file")
struct RunStateTests {
    @Test func everyStepIsOnDiskAtOnceAndFinishRemovesTheFile() throws {
        let directory = try TemporaryDirectory()
        let stateDirectory = directory.path + "/state"
        let state = try RunState(directory: stateDirectory, pid: 4242, startTimeNanos: 7)
        #expect(state.path == stateDirectory + "/4242.json")
        var info = stat()
        #expect(stat(stateDirectory, &info) == 0 && info.st_mode & 0o777 == 0o755)
        #expect(try RunState.load(path: state.path) == RunRecord(pid: 4242, startTimeNanos: 7))

        try state.recordNamespace("hostA")
        #expect(try RunState.load(path: state.path).namespaces == ["hostA"])
        try state.recordTap("tapA", namespace: nil)
        try state.recordTap("tapA", namespace: "hostA")
        try state.recordStackTap("stack0")
        try state.recordCaptureDirectory("/tmp/caps")
        let onDisk = try RunState.load(path: state.path)
        #expect(onDisk == state.record)
        #expect(onDisk.taps == [LinkRecord(name: "tapA", namespace: "hostA")])
        #expect(onDisk.stackTaps == [LinkRecord(name: "stack0", namespace: nil)])
        #expect(onDisk.captureDirectory == "/tmp/caps")
        #expect(access(state.path + ".tmp", F_OK) != 0, "no temporary file is left behind")

        try state.forgetTap("tapA", namespace: "hostA")
        try state.forgetNamespace("hostA")
        #expect(try RunState.load(path: state.path).taps.isEmpty)
        state.finish()
        #expect(access(state.path, F_OK) != 0)
    }

    @Test func aCorruptFileIsReportedAndLeftAlone() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/99.json"
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: path))
        let report = RunState.cleanupStale(directory: directory.path)
        #expect(report.unreadable == [path])
        #expect(access(path, F_OK) == 0)
    }

    @Test func aFIFONamedLikeAStateFileIsReportedAtOnceAndLeftAlone() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/98.json"
        #expect(mkfifo(path, 0o600) == 0)
        // Opening a FIFO for reading would wait for a writer; it is refused before anything is read.
        #expect(throws: RunStateError.corrupt(path: path, reason: "cannot read the file: it is not a regular file")) {
            try RunState.load(path: path)
        }
        let report = RunState.cleanupStale(directory: directory.path)
        #expect(report.unreadable == [path])
        #expect(access(path, F_OK) == 0)
    }

    @Test func aLiveRunIsLeftAloneUnlessForced() throws {
        let directory = try TemporaryDirectory()
        let state = try RunState(directory: directory.path)  // our own pid: alive
        let report = RunState.cleanupStale(directory: directory.path)
        #expect(report.liveRuns == [state.path])
        #expect(access(state.path, F_OK) == 0)
        let forced = RunState.cleanupStale(directory: directory.path, force: true)
        #expect(forced.stateFilesRemoved == [state.path])
    }

    @Test(.enabled(if: SystemAccess.available, SystemAccess.reason))
    func cleanupRemovesExactlyTheRecordedLeftoversOfADeadRun() throws {
        let directory = try TemporaryDirectory()
        let leftovers = Leftovers()
        let recordedNamespace = leftovers.namespace(UniqueName.next())
        let unrecordedNamespace = leftovers.namespace(UniqueName.next())
        let goneNamespace = UniqueName.next()
        let recordedDummy = leftovers.link(UniqueName.next())
        let dummyInNamespace = UniqueName.next()
        let unrecordedDummy = leftovers.link(UniqueName.next())
        let goneTap = UniqueName.next()
        try NetNamespace.create(recordedNamespace)
        try NetNamespace.create(unrecordedNamespace)
        try addStandaloneLink(recordedDummy)
        try addStandaloneLink(unrecordedDummy)
        try addStandaloneLink(dummyInNamespace, in: recordedNamespace)

        // A pid above any pid_max: kill(pid, 0) fails with ESRCH, as for a crashed run.
        let deadPid = Int32.max - 1
        #expect(!RunState.isAlive(deadPid))
        let state = try RunState(directory: directory.path, pid: deadPid)
        try state.recordNamespace(recordedNamespace)
        try state.recordNamespace(goneNamespace)
        try state.recordTap(recordedDummy, namespace: nil)
        try state.recordTap(dummyInNamespace, namespace: recordedNamespace)
        try state.recordTap(goneTap, namespace: nil)

        let report = RunState.cleanupStale(directory: directory.path)

        #expect(report.failures.isEmpty, "\(report.failures)")
        #expect(
            Set(report.removed) == [
                "link \(recordedDummy)", "link \(dummyInNamespace) in \(recordedNamespace)",
                "namespace \(recordedNamespace)",
            ])
        #expect(Set(report.alreadyGone) == ["link \(goneTap)", "namespace \(goneNamespace)"])
        #expect(report.stateFilesRemoved == [state.path])
        #expect(!NetNamespace.exists(recordedNamespace))
        #expect(!sysfsHasLink(recordedDummy))
        #expect(NetNamespace.exists(unrecordedNamespace), "an unrecorded namespace is left alone")
        #expect(sysfsHasLink(unrecordedDummy), "an unrecorded link is left alone")
        #expect(access(state.path, F_OK) != 0)
    }

    @Test(.enabled(if: SystemAccess.available, SystemAccess.reason))
    func whatALiveRunRecordedIsNeverCleanedUpForADeadOne() throws {
        let directory = try TemporaryDirectory()
        let leftovers = Leftovers()
        let sharedNamespace = leftovers.namespace(UniqueName.next())
        let sharedLink = leftovers.link(UniqueName.next())
        let deadOnlyNamespace = leftovers.namespace(UniqueName.next())
        try NetNamespace.create(sharedNamespace)
        try NetNamespace.create(deadOnlyNamespace)
        try addStandaloneLink(sharedLink)

        // The dead run recorded these names; a live run (this process) now uses two of them.
        let dead = try RunState(directory: directory.path, pid: Int32.max - 1)
        try dead.recordNamespace(sharedNamespace)
        try dead.recordNamespace(deadOnlyNamespace)
        try dead.recordTap(sharedLink, namespace: nil)
        let live = try RunState(directory: directory.path)
        try live.recordNamespace(sharedNamespace)
        try live.recordStackTap(sharedLink)
        defer { live.finish() }

        let report = RunState.cleanupStale(directory: directory.path)

        #expect(report.failures.isEmpty, "\(report.failures)")
        #expect(report.removed == ["namespace \(deadOnlyNamespace)"])
        #expect(
            Set(report.alreadyGone) == [
                "link \(sharedLink) (now used by run \(getpid()))",
                "namespace \(sharedNamespace) (now used by run \(getpid()))",
            ])
        #expect(report.stateFilesRemoved == [dead.path])
        #expect(report.liveRuns == [live.path])
        #expect(NetNamespace.exists(sharedNamespace))
        #expect(sysfsHasLink(sharedLink))
        #expect(!NetNamespace.exists(deadOnlyNamespace))
    }

    @Test func aDeadRunsTemporaryStateFileIsRemovedAndALiveRunsIsLeft() throws {
        let directory = try TemporaryDirectory()
        // A save cut short by kill -9: not JSON, but named after a dead pid. A live run's save in progress.
        let cutShort = directory.path + "/\(Int32.max - 3).json.tmp"
        try Data("{\"namesp".utf8).write(to: URL(fileURLWithPath: cutShort))
        let inProgress = directory.path + "/\(getpid()).json.tmp"
        try Data("{".utf8).write(to: URL(fileURLWithPath: inProgress))
        let notOurs = directory.path + "/notes.json.tmp"
        try Data("x".utf8).write(to: URL(fileURLWithPath: notOurs))

        let report = RunState.cleanupStale(directory: directory.path)

        #expect(report.stateFilesRemoved == [cutShort])
        #expect(access(cutShort, F_OK) != 0)
        #expect(access(inProgress, F_OK) == 0, "a live run's temporary file is its save in progress")
        #expect(access(notOurs, F_OK) == 0, "only PID.json.tmp names are state files")
    }

    @Test(.enabled(if: SystemAccess.available, SystemAccess.reason))
    func whatADeadRunsTemporaryStateFileNamesIsCleanedUpWithIt() throws {
        let directory = try TemporaryDirectory()
        let leftovers = Leftovers()
        let (inFile, onlyInTemporary) = (leftovers.namespace(UniqueName.next()), leftovers.namespace(UniqueName.next()))
        try NetNamespace.create(inFile)
        try NetNamespace.create(onlyInTemporary)
        // Killed between writing PID.json.tmp (which lists the second namespace) and renaming it over PID.json.
        let deadPid = Int32.max - 2
        let state = try RunState(directory: directory.path, pid: deadPid)
        try state.recordNamespace(inFile)
        var next = state.record
        next.namespaces.append(onlyInTemporary)
        try JSONEncoder().encode(next).write(to: URL(fileURLWithPath: state.path + ".tmp"))

        let report = RunState.cleanupStale(directory: directory.path)

        #expect(report.failures.isEmpty, "\(report.failures)")
        #expect(Set(report.removed) == ["namespace \(inFile)", "namespace \(onlyInTemporary)"])
        #expect(Set(report.stateFilesRemoved) == [state.path, state.path + ".tmp"])
        #expect(!NetNamespace.exists(inFile) && !NetNamespace.exists(onlyInTemporary))
    }

    @Test func aRenamedTapReplacesItsRecordAndTapsOfOneNameInTwoNamespacesAreTwoRecords() throws {
        let directory = try TemporaryDirectory()
        let state = try RunState(directory: directory.path, pid: 4243)
        try state.recordTap("tmp1", namespace: nil)
        try state.recordTap("tmp1", namespace: "hostA")
        try state.recordTap("eth0", namespace: "hostA", replacing: "tmp1")
        try state.recordTap("tmp2", namespace: nil)
        try state.recordTap("tmp2", namespace: "hostB")
        try state.recordTap("eth0", namespace: "hostB", replacing: "tmp2")
        #expect(
            try RunState.load(path: state.path).taps == [
                LinkRecord(name: "eth0", namespace: "hostA"), LinkRecord(name: "eth0", namespace: "hostB"),
            ])
        try state.forgetTap("eth0", namespace: "hostA")
        #expect(try RunState.load(path: state.path).taps == [LinkRecord(name: "eth0", namespace: "hostB")])
        state.finish()
    }
}
