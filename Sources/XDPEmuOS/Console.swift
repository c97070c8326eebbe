// Standard output and standard error as streams that never end the process.
//
// A live run's stdout and stderr are often a pipe (`xdpemu run ... 2>&1 | head -1`, `| tee log`) or a terminal
// that goes away (an ssh session closed). Writing to a pipe whose reader has gone raises SIGPIPE, which kills the
// process before it can remove its namespaces; writing to a hung-up terminal fails with EIO. So `ignoreBrokenPipes`
// sets SIGPIPE to SIG_IGN (the write then fails with EPIPE instead), and a `Console` stream that fails once stops
// printing for good: what it would have printed is lost, but the run goes on and tears down. Children started by
// `Command` get SIGPIPE's default disposition back (POSIX_SPAWN_SETSIGDEF).

import Glibc
import Synchronization

/// One of the process's standard streams, written with write(2); after the first failed write (EPIPE, EIO...) it
/// drops everything. Thread-safe: a line is written whole or not at all by one thread at a time.
public final class Console: Sendable {
    /// File descriptor 1.
    public static let standardOutput = Console(fd: STDOUT_FILENO)
    /// File descriptor 2.
    public static let standardError = Console(fd: STDERR_FILENO)

    private let fd: Int32
    private let state = Mutex(false)

    private init(fd: Int32) { self.fd = fd }

    /// Whether a write failed and the stream now drops what it is given.
    public var isClosed: Bool { state.withLock { $0 } }

    /// Writes `text` (write(2) until done, EINTR retried); on any failure stops printing for good.
    public func write(_ text: String) {
        state.withLock { closed in
            guard !closed else { return }
            let bytes = Array(text.utf8)
            var offset = 0
            bytes.withUnsafeBytes { buffer in
                while offset < buffer.count {
                    let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                    if n > 0 {
                        offset += n
                    } else if n < 0 && errno == EINTR {
                        continue
                    } else {
                        closed = true
                        return
                    }
                }
            }
        }
    }

    /// Writes `line` and a newline.
    public func writeLine(_ line: String) { write(line + "\n") }

    /// Sets SIGPIPE to SIG_IGN (signal(2)): a write to a pipe nobody reads fails with EPIPE instead of killing the
    /// process.
    public static func ignoreBrokenPipes() {
        _ = signal(SIGPIPE, SIG_IGN)
    }
}
