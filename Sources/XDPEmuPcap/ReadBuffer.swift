import SystemPackage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

// The input side our two parsers (classic pcap and pcapng) share.
//
// The file is read in large chunks into one buffer that lives as long as the reader. A record is handed out as a
// pointer into that buffer, so returning it costs a few loads and compares. When a record straddles the end of the
// buffered bytes, the unconsumed tail is moved to the front and the buffer refilled; a parser reads a record only
// once all of it is buffered, and hands anything larger than the buffer to libpcap or refuses it (the largest
// classic record, 16 + 262144 bytes, is much smaller). The move invalidates the previous record's bytes, which is
// why they are only promised until the next call.

/// One file being read, the bytes not yet consumed, and where they sit in the file. Holds the file descriptor and
/// the buffer, which its owner (a parser) gives back with `close()` in its deinit. Not a noncopyable type with a
/// deinit of its own: Swift 6.3's optimiser crashes on such a type stored in a parser's `@usableFromInline var`
/// ("Should never be inlining a resilient function into a fragile function").
@usableFromInline
struct ReadBuffer {
    static let size = 1 << 20

    let path: String
    private let fd: FileDescriptor
    @usableFromInline let buffer: UnsafeMutableRawBufferPointer
    /// The first unconsumed byte in `buffer`.
    @usableFromInline var position = 0
    /// One past the last valid byte in `buffer`.
    @usableFromInline var end = 0
    /// The file offset of `buffer[0]`.
    @usableFromInline var bufferOffset: Int64 = 0
    private var atEndOfFile = false

    /// Opens `path` for reading.
    init(path: String) throws(PcapError) {
        do {
            fd = try systemCall { try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec]) }
        } catch {
            throw .cannotOpen(path: path, errno: error)
        }
        self.path = path
        buffer = .allocate(byteCount: Self.size, alignment: 16)
    }

    /// Closes the file and frees the buffer; the last use of this value and of every copy of it.
    func close() {
        buffer.deallocate()
        // Nothing useful can be done about a failed close of a file we only read.
        try? fd.close()
    }

    /// The unconsumed bytes buffered.
    @inlinable var available: Int { end &- position }

    /// The first unconsumed byte.
    @inlinable var current: UnsafeRawPointer { UnsafeRawPointer(buffer.baseAddress.unsafelyUnwrapped) + position }

    /// The file offset of the first unconsumed byte.
    @inlinable var fileOffset: Int64 { bufferOffset &+ Int64(position) }

    /// Makes at least `count` (at most `ReadBuffer.size`) unconsumed bytes available, unless the file ends first,
    /// and returns how many are.
    ///
    /// Moves the unconsumed tail to the front of the buffer, which invalidates pointers into it.
    mutating func refill(atLeast count: Int) throws(Errno) -> Int {
        precondition(count <= buffer.count, "a record read whole always fits in the read buffer")
        if end - position >= count || atEndOfFile {
            return end - position
        }
        let base = buffer.baseAddress!
        let left = end - position
        if position > 0 {
            if left > 0 {
                memmove(base, base + position, left)
            }
            bufferOffset += Int64(position)
            position = 0
            end = left
        }
        while end < count && !atEndOfFile {
            let free = UnsafeMutableRawBufferPointer(rebasing: buffer[end...])
            let got = try systemCall { try fd.read(into: free) }
            if got == 0 {
                atEndOfFile = true
            } else {
                end += got
            }
        }
        return end - position
    }
}
