// Output files and directories: captures, the event log, the statistics file and their directory.
//
// xdpemu usually runs as root, so an output path is never trusted to be what its name says: a file is opened with
// O_NOFOLLOW (a symbolic link planted at DIR/drops.pcap would otherwise let a run overwrite any file on the
// machine), and O_NONBLOCK (a FIFO with no reader would otherwise block the open forever); what was opened is
// checked with fstat(2) before a byte is written. A file xdpemu creates gets mode 0644 and a directory 0755,
// whatever the umask. `checkOutputFile` and `checkOutputDirectory` ask the same questions without creating
// anything, so a run can refuse a bad output before it truncates a good one.

import Glibc
import SystemPackage

/// Why an output file or directory cannot be created or written; the description names the path and the reason in
/// plain words.
public struct OutputFileError: Error, Equatable, CustomStringConvertible {
    public enum Reason: Equatable, Sendable {
        /// The path is a symbolic link: xdpemu never writes through one.
        case symbolicLink
        /// The path exists and is not a kind of file xdpemu writes to ("a directory", "a FIFO", "a socket").
        case wrongKind(String)
        /// The parent directory does not exist (`path` names it) or is not a directory.
        case noParent(String)
        /// A system call failed: the step ("create", "open", "write") and its errno.
        case failed(step: String, Errno)
    }

    /// The file or directory the error is about.
    public var path: String
    public var reason: Reason

    public init(path: String, reason: Reason) {
        self.path = path
        self.reason = reason
    }

    /// "out/drops.pcap: cannot write there: it is a symbolic link (xdpemu never writes through one; remove it)".
    public var description: String {
        switch reason {
        case .symbolicLink:
            return "\(path): refusing to write: it is a symbolic link (xdpemu never writes through one; remove it "
                + "or choose another path)"
        case .wrongKind(let kind):
            return "\(path): cannot write there: it is \(kind)"
        case .noParent(let parent):
            return "\(path): cannot create: its directory \(parent) does not exist or is not a directory"
        case .failed(let step, let errno):
            return "\(path): cannot \(step): \(String(cString: strerror(errno.rawValue))) (errno \(errno.rawValue))"
        }
    }
}

/// What is at a path, as lstat(2) sees it (a symbolic link is not followed).
public enum FileKind: Equatable, Sendable {
    case missing
    case regular
    case directory
    case symbolicLink
    case characterDevice
    case other(String)

    /// lstat(2) of `path`; `.missing` when it does not exist (or cannot be stat'ed at all).
    public init(at path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else {
            self = .missing
            return
        }
        self.init(mode: info.st_mode)
    }

    init(mode: mode_t) {
        switch mode & S_IFMT {
        case S_IFREG: self = .regular
        case S_IFDIR: self = .directory
        case S_IFLNK: self = .symbolicLink
        case S_IFCHR: self = .characterDevice
        case S_IFIFO: self = .other("a FIFO")
        case S_IFSOCK: self = .other("a socket")
        case S_IFBLK: self = .other("a block device")
        default: self = .other("not a regular file")
        }
    }
}

/// Creates or truncates the output file `path` for writing and returns it open for writing (blocking).
///
/// open(2) O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC, then fchmod(2) 0644 on a new file; an existing
/// one is opened with O_TRUNC instead of O_CREAT|O_EXCL and keeps its mode. Refuses a symbolic link, a directory,
/// a FIFO, a socket or a block device; a character device such as /dev/null is written to as it is.
public func createOutputFile(_ path: String) throws(OutputFileError) -> FileDescriptor {
    let common = O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC
    var opened: Int32?
    var created = false
    var failure = Errno.noSuchFileOrDirectory
    // The file may vanish between the two opens (or appear): try again a few times, then report what open says.
    for _ in 0..<4 where opened == nil {
        do {
            opened = try retryingEINTROrThrow { open(path, common | O_CREAT | O_EXCL, 0o644) }
            created = true
        } catch {
            failure = error
            guard error == .fileExists else { break }
            do {
                opened = try retryingEINTROrThrow { open(path, common | O_TRUNC) }
            } catch {
                failure = error
                if error != .noSuchFileOrDirectory { break }
            }
        }
    }
    guard let fd = opened else {
        switch FileKind(at: path) {
        case .symbolicLink: throw OutputFileError(path: path, reason: .symbolicLink)
        case .directory: throw OutputFileError(path: path, reason: .wrongKind("a directory"))
        case .other(let kind): throw OutputFileError(path: path, reason: .wrongKind(kind))
        case .missing, .regular, .characterDevice:
            throw OutputFileError(path: path, reason: .failed(step: "create", failure))
        }
    }
    var info = stat()
    let kind: FileKind = fstat(fd, &info) == 0 ? FileKind(mode: info.st_mode) : .other("not a regular file")
    switch kind {
    case .regular:
        if created { _ = fchmod(fd, 0o644) }
    case .characterDevice:
        break
    default:
        _ = Glibc.close(fd)
        throw OutputFileError(path: path, reason: .wrongKind(describe(kind)))
    }
    let flags = fcntl(fd, F_GETFL)
    if flags >= 0 { _ = fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) }
    return FileDescriptor(rawValue: fd)
}

/// Writes `bytes` as the whole content of the output file `path` (`createOutputFile`, then write(2) until done).
public func writeOutputFile(_ path: String, _ bytes: [UInt8]) throws(OutputFileError) {
    let fd = try createOutputFile(path)
    defer { _ = Glibc.close(fd.rawValue) }
    var offset = 0
    while offset < bytes.count {
        do {
            offset += try bytes.withUnsafeBytes { (buffer) -> Result<Int, Errno> in
                Result { () throws(Errno) -> Int in
                    try retryingEINTROrThrow {
                        Glibc.write(fd.rawValue, buffer.baseAddress! + offset, buffer.count - offset)
                    }
                }
            }.get()
        } catch {
            throw OutputFileError(path: path, reason: .failed(step: "write", error))
        }
    }
}

/// Creates the directory `path` and any missing parents, each with mode 0755 exactly (mkdir(2), then chmod(2) so
/// the umask does not narrow it); existing directories (or links to directories) are left as they are.
public func makeDirectories(_ path: String) throws(OutputFileError) {
    var prefix = path.hasPrefix("/") ? "/" : ""
    for component in path.split(separator: "/") {
        prefix += component
        do {
            try makeDirectory(prefix)
        } catch {
            let kind = FileKind(at: prefix)
            if error == .fileExists && kind != .missing && kind != .directory {
                throw OutputFileError(path: prefix, reason: .wrongKind(describe(kind) + ", not a directory"))
            }
            throw OutputFileError(path: prefix, reason: .failed(step: "create the directory", error))
        }
        prefix += "/"
    }
}

/// Checks, creating nothing, that `createOutputFile(path)` can be expected to succeed: the path is missing and its
/// directory exists and is writable, or it is a writable regular file or a character device. Refuses what
/// `createOutputFile` refuses.
public func checkOutputFile(_ path: String) throws(OutputFileError) {
    switch FileKind(at: path) {
    case .missing:
        let parent = parentDirectory(of: path)
        guard FileKind(following: parent) == .directory else {
            throw OutputFileError(path: path, reason: .noParent(parent))
        }
        try checkWritableDirectory(parent, for: path)
    case .regular, .characterDevice:
        if access(path, W_OK) != 0 {
            throw OutputFileError(path: path, reason: .failed(step: "write", Errno(rawValue: errno)))
        }
    case .symbolicLink:
        throw OutputFileError(path: path, reason: .symbolicLink)
    case let kind:
        throw OutputFileError(path: path, reason: .wrongKind(describe(kind)))
    }
}

/// Checks, creating nothing, that `makeDirectories(path)` and creating files in it can be expected to succeed:
/// `path` is a writable directory (a link to one is fine), or does not exist and its nearest existing ancestor is
/// a writable directory.
public func checkOutputDirectory(_ path: String) throws(OutputFileError) {
    var existing = path
    while FileKind(following: existing) == .missing && FileKind(at: existing) == .missing {
        let parent = parentDirectory(of: existing)
        if parent == existing { break }
        existing = parent
    }
    let kind = FileKind(following: existing)
    guard kind == .directory else {
        let what = existing == path ? "" : " (in the way of \(path))"
        throw OutputFileError(path: existing, reason: .wrongKind(describe(kind) + ", not a directory" + what))
    }
    try checkWritableDirectory(existing, for: path)
}

/// The names in the directory `path` (opendir(3)/readdir(3)), without "." and "..".
public func directoryEntries(_ path: String) throws(OutputFileError) -> [String] {
    guard let dir = opendir(path) else {
        throw OutputFileError(path: path, reason: .failed(step: "list the directory", Errno(rawValue: errno)))
    }
    defer { closedir(dir) }
    var names = [String]()
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// Removes the file `path` (unlink(2): a symbolic link itself, never its target).
public func removeOutputFile(_ path: String) throws(OutputFileError) {
    if unlink(path) != 0 && errno != ENOENT {
        throw OutputFileError(path: path, reason: .failed(step: "remove", Errno(rawValue: errno)))
    }
}

/// The device and inode of what `path` names (stat(2), links followed), or nil when it does not exist; two paths
/// with the same identity are the same file.
public func fileIdentity(_ path: String) -> FileIdentity? {
    var info = stat()
    guard stat(path, &info) == 0 else { return nil }
    return FileIdentity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
}

/// A file's device and inode numbers.
public struct FileIdentity: Hashable, Sendable {
    public var device: UInt64
    public var inode: UInt64
}

/// The directory part of `path`: "a/b" for "a/b/c", "." for "c", "/" for "/c".
public func parentDirectory(of path: String) -> String {
    var trimmed = Substring(path)
    while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
    guard let slash = trimmed.lastIndex(of: "/") else { return "." }
    let parent = trimmed[..<slash]
    return parent.isEmpty ? "/" : String(parent)
}

extension FileKind {
    /// stat(2) of `path`: what a symbolic link points to; `.missing` when nothing is there.
    public init(following path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else {
            self = .missing
            return
        }
        self.init(mode: info.st_mode)
    }
}

private func describe(_ kind: FileKind) -> String {
    switch kind {
    case .missing: "missing"
    case .regular: "a regular file"
    case .directory: "a directory"
    case .symbolicLink: "a symbolic link"
    case .characterDevice: "a character device"
    case .other(let what): what
    }
}

private func checkWritableDirectory(_ directory: String, for path: String) throws(OutputFileError) {
    if access(directory, W_OK | X_OK) != 0 {
        let err = Errno(rawValue: errno)
        throw OutputFileError(path: path, reason: .failed(step: "create files in \(directory)", err))
    }
}
