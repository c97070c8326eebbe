import Foundation
import Glibc
import Testing
import XDPEmuOS

@Suite("Directory lock and descriptor limit")
struct DirectoryLockTests {
    @Test func aSecondLockOfTheDirectoryIsRefusedWithTheHoldersPidUntilTheFirstIsReleased() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/" + DirectoryLock.fileName
        let first = try DirectoryLock(directory: directory.path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "\(getpid())\n")

        // flock(2) locks belong to the open file description: a second open in this process conflicts too.
        #expect(throws: DirectoryLockError.held(path: path, pid: getpid())) {
            try DirectoryLock(directory: directory.path)
        }

        first.release()
        #expect(access(path, F_OK) != 0, "the lock file is removed with the lock")
        let second = try DirectoryLock(directory: directory.path, pid: 4242)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "4242\n")
        second.release()
    }

    @Test func aStaleLockFileOfADeadProcessIsTakenOver() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/" + DirectoryLock.fileName
        try Data("999999\n".utf8).write(to: URL(fileURLWithPath: path))
        let lock = try DirectoryLock(directory: directory.path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "\(getpid())\n")
        lock.release()
    }

    @Test func aSymlinkInPlaceOfTheLockFileIsNotFollowed() throws {
        let directory = try TemporaryDirectory()
        let target = directory.path + "/target"
        try Data("keep".utf8).write(to: URL(fileURLWithPath: target))
        #expect(symlink(target, directory.path + "/" + DirectoryLock.fileName) == 0)
        #expect(throws: DirectoryLockError.self) { try DirectoryLock(directory: directory.path) }
        #expect(try String(contentsOfFile: target, encoding: .utf8) == "keep")
    }

    @Test func theSoftDescriptorLimitIsRaisedWithinTheHardOneOrTheShortfallIsNamed() throws {
        let (soft, hard) = DescriptorLimit.current()
        #expect(DescriptorLimit.openNow() >= 3)
        try DescriptorLimit.ensure(min(soft, hard))
        #expect(DescriptorLimit.current().soft == soft, "enough already: nothing changes")
        guard hard < Int.max / 4 else { return }
        var saved = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved)
        defer { setrlimit(Int32(RLIMIT_NOFILE.rawValue), &saved) }
        let error = #expect(throws: DescriptorLimitError.self) { try DescriptorLimit.ensure(hard + 1) }
        #expect(error?.needed == hard + 1 && error?.soft == hard && error?.hard == hard)
        #expect(error?.description.contains("needs \(hard + 1) open files") == true)
        #expect(DescriptorLimit.current().soft == hard, "raised as far as the hard limit allows")
    }
}
