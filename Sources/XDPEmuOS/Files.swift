// Small whole-file reads and atomic writes, on swift-system's FileDescriptor.

import Glibc
import SystemPackage

/// Reads a whole (small) file: open(2) O_RDONLY|O_CLOEXEC, read(2) until EOF, close(2).
func readSmallFile(_ path: String) throws(Errno) -> String {
    let bytes = try readFileBytes(path)
    return String(decoding: bytes, as: UTF8.self)
}

/// Reads a whole file as bytes: open(2) O_RDONLY|O_CLOEXEC, read(2) until EOF, close(2).
func readFileBytes(_ path: String) throws(Errno) -> [UInt8] {
    let fd = try retryingEINTROrThrow { open(path, O_RDONLY | O_CLOEXEC) }
    defer { _ = Glibc.close(fd) }
    var result: [UInt8] = []
    let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
    defer { chunk.deallocate() }
    while true {
        let n = try retryingEINTROrThrow { Glibc.read(fd, chunk.baseAddress, chunk.count) }
        if n == 0 {
            return result
        }
        result.append(contentsOf: chunk[0..<n])
    }
}

/// Replaces `path` atomically: writes "PATH.tmp" (open O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, mode 0644,
/// write(2), fsync(2)), then rename(2) over `path`. A reader sees the old or the new file, never a mix.
func writeFileAtomically(_ path: String, _ bytes: [UInt8]) throws(Errno) {
    let temporary = path + ".tmp"
    let fd = try retryingEINTROrThrow { open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) }
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
