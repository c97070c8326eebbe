// One writer per output directory: an exclusive flock(2) on DIRECTORY/.xdpemu.lock, which holds the owner's pid.
//
// Two live runs capturing into one directory would write the same files at their own offsets and lose records
// without a word. The lock is advisory and dies with its holder's fd, so a run killed with SIGKILL never leaves the
// directory locked: its stale lock file is simply taken over. The holder removes the file when it releases the
// lock. unlink-then-close lets a process that opened the old file just before the unlink take a lock on an inode
// no longer reachable by that name; so after taking the lock, `acquire` checks that the name still leads to the
// locked inode, and starts again if not.

import Glibc
import SystemPackage

/// Why a directory could not be locked.
public enum DirectoryLockError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Another process holds the lock; its pid as the lock file says (nil if it could not be read).
    case held(path: String, pid: Int32?)
    /// open/flock/write on the lock file failed.
    case io(path: String, Errno)

    public var description: String {
        switch self {
        case .held(let path, let pid):
            let owner = pid.map { "process \($0)" } ?? "another process"
            return "\(path) is locked by \(owner): another xdpemu run writes into this directory"
        case .io(let path, let errno): return "cannot lock \(path): \(errno)"
        }
    }
}

/// An exclusive lock on a directory, held from `init` until `release()` (or the process's end).
public final class DirectoryLock {
    /// The lock file's name inside the directory.
    public static let fileName = ".xdpemu.lock"

    /// DIRECTORY/.xdpemu.lock.
    public let path: String
    private var fd: Int32

    /// Takes the lock of `directory` (which must exist): open(2) DIRECTORY/.xdpemu.lock with O_RDWR|O_CREAT|
    /// O_NOFOLLOW|O_CLOEXEC, mode 0644; flock(2) LOCK_EX|LOCK_NB; then the file holds our pid. Throws `.held`
    /// with the holder's pid if another process has it.
    public init(directory: String, pid: Int32 = getpid()) throws(DirectoryLockError) {
        let path = directory + "/" + Self.fileName
        self.path = path
        while true {
            let fd: Int32
            do throws(Errno) {
                fd = try retryingEINTROrThrow { open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o644) }
            } catch {
                throw .io(path: path, error)
            }
            do throws(Errno) {
                _ = try retryingEINTROrThrow { flock(fd, LOCK_EX | LOCK_NB) }
            } catch {
                let holder = Self.readPid(fd)
                _ = Glibc.close(fd)
                if error == .resourceTemporarilyUnavailable { throw .held(path: path, pid: holder) }
                throw .io(path: path, error)
            }
            var opened = stat()
            var named = stat()
            guard fstat(fd, &opened) == 0, lstat(path, &named) == 0, opened.st_ino == named.st_ino,
                opened.st_dev == named.st_dev
            else {
                _ = Glibc.close(fd)  // the holder removed it meanwhile: lock the new one
                continue
            }
            let text = Array("\(pid)\n".utf8)
            guard ftruncate(fd, 0) == 0, pwrite(fd, text, text.count, 0) == text.count else {
                let error = Errno(rawValue: errno)
                _ = Glibc.close(fd)
                throw .io(path: path, error)
            }
            self.fd = fd
            return
        }
    }

    deinit {
        release()
    }

    /// Removes the lock file, then closes it (which drops the lock). Idempotent.
    public func release() {
        guard fd >= 0 else { return }
        _ = unlink(path)
        _ = Glibc.close(fd)
        fd = -1
    }

    /// The pid written in the lock file, if it holds one.
    private static func readPid(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 16)
        let n = pread(fd, &buffer, buffer.count, 0)
        guard n > 0 else { return nil }
        return String(decoding: buffer[..<n], as: UTF8.self).split(separator: "\n").first.flatMap { Int32($0) }
    }
}
