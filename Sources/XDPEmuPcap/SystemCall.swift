import SystemPackage

/// The one path to the OS for this module: runs a swift-system call (which already retries EINTR when asked to,
/// and it is by default) and turns its untyped error back into the `Errno` it always is, so callers can use
/// typed throws.
@inline(__always)
func systemCall<Result>(_ body: () throws -> Result) throws(Errno) -> Result {
    do {
        return try body()
    } catch let errno as Errno {
        throw errno
    } catch {
        preconditionFailure("swift-system threw something other than Errno: \(error)")
    }
}

extension FileDescriptor {
    /// write(2) until every byte of `bytes` is written, retrying EINTR and short writes.
    ///
    /// Unlike swift-system's `writeAll`, reports how far it got before failing, so a writer can say where its file
    /// stops being valid.
    func writeEverything(_ bytes: UnsafeRawBufferPointer) throws(WriteFailure) {
        var done = 0
        while done < bytes.count {
            let written: Int
            do {
                written = try systemCall { try write(UnsafeRawBufferPointer(rebasing: bytes[done...])) }
            } catch {
                throw WriteFailure(errno: error, bytesWritten: done)
            }
            // write(2) only returns 0 for a 0-byte request; treat anything else as an I/O error, not a spin.
            guard written > 0 else { throw WriteFailure(errno: .ioError, bytesWritten: done) }
            done += written
        }
    }
}

/// A write that stopped part way.
struct WriteFailure: Error {
    var errno: Errno
    var bytesWritten: Int
}
