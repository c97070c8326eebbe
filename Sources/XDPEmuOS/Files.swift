// Whole-file reads and atomic writes: every file the other modules read for their own use (topologies, map-event
// files, map scripts, run-state files) is opened here. Output files and directories are in OutputFiles.swift.

import Glibc
import SystemPackage

/// Why a whole regular file could not be read: the failing step and its errno, or the kind of file it is.
public enum FileReadError: Error, Equatable, CustomStringConvertible {
    case open(Errno)
    case stat(Errno)
    case read(Errno)
    /// Not a regular file (`isDirectory` says whether it is a directory).
    case notRegularFile(isDirectory: Bool)

    /// "cannot open the file: No such file or directory (errno 2)", "cannot read the file: it is a directory".
    public var description: String {
        switch self {
        case .open(let errno): return "cannot open the file: \(Self.explain(errno))"
        case .stat(let errno): return "cannot stat the file: \(Self.explain(errno))"
        case .read(let errno): return "cannot read the file: \(Self.explain(errno))"
        case .notRegularFile(let isDirectory):
            return "cannot read the file: it is \(isDirectory ? "a directory" : "not a regular file")"
        }
    }

    private static func explain(_ errno: Errno) -> String {
        "\(String(cString: strerror(errno.rawValue))) (errno \(errno.rawValue))"
    }
}

/// The contents of the regular file `path`: open(2) O_RDONLY|O_CLOEXEC|O_NONBLOCK (opening a FIFO would otherwise
/// wait for a writer), fstat(2) (a directory, device or FIFO is refused before anything is read from it), read(2)
/// until EOF, close(2).
public func readRegularFile(_ path: String) throws(FileReadError) -> [UInt8] {
    let fd: Int32
    do {
        fd = try retryingEINTROrThrow { open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK) }
    } catch {
        throw .open(error)
    }
    defer { _ = Glibc.close(fd) }
    var info = stat()
    do {
        _ = try retryingEINTROrThrow { fstat(fd, &info) }
    } catch {
        throw .stat(error)
    }
    guard info.st_mode & S_IFMT == S_IFREG else { throw .notRegularFile(isDirectory: info.st_mode & S_IFMT == S_IFDIR) }
    do {
        return try readToEnd(fd)
    } catch {
        throw .read(error)
    }
}

/// read(2) from `fd` until EOF.
private func readToEnd(_ fd: Int32) throws(Errno) -> [UInt8] {
    var result: [UInt8] = []
    let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 1)
    defer { chunk.deallocate() }
    while true {
        let n = try retryingEINTROrThrow { Glibc.read(fd, chunk.baseAddress, chunk.count) }
        if n == 0 {
            return result
        }
        result.append(contentsOf: chunk[0..<n])
    }
}

/// Replaces `path` atomically: writes "PATH.tmp" (open O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC|O_NOFOLLOW, mode 0644,
/// write(2), fsync(2)), then rename(2) over `path`. A reader sees the old or the new file, never a mix.
func writeFileAtomically(_ path: String, _ bytes: [UInt8]) throws(Errno) {
    let temporary = path + ".tmp"
    // O_NOFOLLOW: a link planted under the temporary name is refused, never written through.
    let fd = try retryingEINTROrThrow {
        open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
    }
    do throws(Errno) {
        var offset = 0
        while offset < bytes.count {
            let n = try bytes.withUnsafeBytes { (buffer) -> Result<Int, Errno> in
                Result { () throws(Errno) -> Int in
                    try retryingEINTROrThrow { Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset) }
                }
            }.get()
            offset += n
        }
        _ = try retryingEINTROrThrow { fsync(fd) }
    } catch {
        _ = Glibc.close(fd)
        _ = unlink(temporary)
        throw error
    }
    _ = Glibc.close(fd)
    _ = try retryingEINTROrThrow { rename(temporary, path) }
}

/// Creates `path` with mode 0755 exactly (mkdir(2) then chmod(2), so the umask does not narrow it); an
/// existing directory is left as it is.
func makeDirectory(_ path: String) throws(Errno) {
    if mkdir(path, 0o755) == 0 {
        _ = chmod(path, 0o755)
        return
    }
    let err = Errno(rawValue: errno)
    var info = stat()
    if err == .fileExists && stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR {
        return
    }
    throw err
}

/// Everything standard input holds, read(2) until EOF.
public func readStandardInput() throws(Errno) -> [UInt8] { try readToEnd(STDIN_FILENO) }

/// The size of the file at `path` (stat(2)), or nil when it cannot be stat'ed.
public func fileSize(_ path: String) -> Int64? {
    var info = stat()
    return stat(path, &info) == 0 ? Int64(info.st_size) : nil
}

/// Whether `fd` is a terminal (isatty(3)).
public func isTerminal(_ fd: FileDescriptor) -> Bool { isatty(fd.rawValue) == 1 }
