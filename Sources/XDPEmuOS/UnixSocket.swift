// Unix stream sockets for the control socket of a live run (the runtime's ControlServer) and its clients.
//
// The listening side is made so that only the user who started the run can use it: the socket file is created
// with mode 0600 (bind(2) under a umask of 0177, then chmod(2) again) and each accepted peer's credentials
// (SO_PEERCRED) are checked against the server's effective uid (root is let in too). A socket file left by a
// run that died is recognised: connect(2) to it fails with ECONNREFUSED; only then is it replaced or removed.
// Every socket is non-blocking on the server's side (one thread serves every client with poll(2)); a client
// blocks, with a timeout on each read and write (SO_RCVTIMEO/SO_SNDTIMEO).

import Glibc
import SystemPackage

/// Why a control socket could not be created or reached.
public enum UnixSocketError: Error, Equatable, CustomStringConvertible {
    /// The path does not fit in sockaddr_un (107 bytes).
    case pathTooLong(String)
    /// A live process listens on the path.
    case inUse(String)
    /// The path exists and is not a socket: never removed.
    case notASocket(String)
    /// Nothing listens on the path (a stale socket file of a dead process).
    case stale(String)
    /// No such socket file.
    case missing(String)
    /// A system call failed.
    case failed(path: String, step: String, Errno)

    public var description: String {
        switch self {
        case .pathTooLong(let path): "\(path): the path is longer than a Unix socket address allows (107 bytes)"
        case .inUse(let path): "\(path): another running process listens on it"
        case .notASocket(let path): "\(path): exists and is not a socket"
        case .stale(let path): "\(path): nothing listens on it (its process is gone)"
        case .missing(let path): "\(path): no such socket"
        case .failed(let path, let step, let errno): "\(path): \(step): \(errno)"
        }
    }
}

/// One end of a connected Unix stream socket.
public final class UnixConnection {
    public private(set) var fd: FileDescriptor?

    init(fd: FileDescriptor) { self.fd = fd }

    deinit { close() }

    /// Connects to the socket at `path`, blocking, with `timeoutMillis` on every later read and write
    /// (connect(2), setsockopt(SO_RCVTIMEO, SO_SNDTIMEO)).
    public static func connect(path: String, timeoutMillis: Int = 5000) throws(UnixSocketError) -> UnixConnection {
        var address = try socketAddress(path)
        let raw: Int32
        do {
            raw = try retryingEINTROrThrow {
                socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            }
        } catch {
            throw .failed(path: path, step: "socket", error)
        }
        let connection = UnixConnection(fd: FileDescriptor(rawValue: raw))
        var timeout = timeval(tv_sec: timeoutMillis / 1000, tv_usec: (timeoutMillis % 1000) * 1000)
        _ = setsockopt(raw, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(raw, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(raw, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if result != 0 {
            let error = Errno(rawValue: errno)
            switch error {
            case .connectionRefused: throw .stale(path)
            case .noSuchFileOrDirectory: throw .missing(path)
            default: throw .failed(path: path, step: "connect", error)
            }
        }
        return connection
    }

    /// read(2): the bytes read (0 at end of stream), or nil when it would block.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int? {
        guard let fd else { throw Errno.badFileDescriptor }
        switch try retryingEINTR({ Glibc.read(fd.rawValue, buffer.baseAddress, buffer.count) }) {
        case .value(let n): return n
        case .wouldBlock: return nil
        }
    }

    /// send(2) with MSG_NOSIGNAL (a closed peer is EPIPE, not SIGPIPE): the bytes written, or nil when it would
    /// block.
    public func write(_ bytes: UnsafeRawBufferPointer) throws(Errno) -> Int? {
        guard let fd else { throw Errno.badFileDescriptor }
        switch try retryingEINTR({ send(fd.rawValue, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) }) {
        case .value(let n): return n
        case .wouldBlock: return nil
        }
    }

    /// Writes all of `bytes`, blocking (client side). Throws on a timeout (EAGAIN) or a closed peer.
    public func writeAll(_ bytes: [UInt8]) throws(Errno) {
        var done = 0
        while done < bytes.count {
            var result: Result<Int?, Errno> = .success(nil)
            bytes.withUnsafeBytes { all in
                do throws(Errno) {
                    result = .success(try write(UnsafeRawBufferPointer(rebasing: all[done...])))
                } catch {
                    result = .failure(error)
                }
            }
            guard let n = try result.get() else { throw Errno.resourceTemporarilyUnavailable }
            done += n
        }
    }

    /// The peer's user id (getsockopt(SO_PEERCRED)), or nil if it cannot be had.
    public var peerUID: uid_t? {
        guard let fd else { return nil }
        // struct ucred { pid_t pid; uid_t uid; gid_t gid; } (Glibc does not export it to Swift).
        var credentials: (pid: Int32, uid: UInt32, gid: UInt32) = (0, 0, 0)
        var length = socklen_t(MemoryLayout<(Int32, UInt32, UInt32)>.size)
        guard getsockopt(fd.rawValue, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0 else { return nil }
        return credentials.uid
    }

    /// shutdown(2) of the writing side: the peer reads the end of the stream after what was written.
    public func shutdownWrite() {
        guard let fd else { return }
        _ = shutdown(fd.rawValue, Int32(SHUT_WR))
    }

    /// Closes the descriptor (idempotent).
    public func close() {
        guard let fd else { return }
        self.fd = nil
        try? fd.close()
    }
}

/// A listening Unix stream socket at a path, mode 0600, non-blocking.
public final class UnixListener {
    public let path: String
    public private(set) var fd: FileDescriptor?

    /// Creates the socket at `path` (mode 0600). A socket file nobody listens on (left by a dead process) is
    /// replaced; a path where a live process listens, or that is not a socket, is refused.
    public init(path: String) throws(UnixSocketError) {
        self.path = path
        var address = try socketAddress(path)
        var status = stat()
        if lstat(path, &status) == 0 {
            guard status.st_mode & S_IFMT == S_IFSOCK else { throw .notASocket(path) }
            do throws(UnixSocketError) {
                _ = try UnixConnection.connect(path: path, timeoutMillis: 1000)
                throw UnixSocketError.inUse(path)
            } catch .stale {
                unlink(path)
            } catch .missing {
            } catch {
                throw error
            }
        }
        let raw: Int32
        do {
            raw = try retryingEINTROrThrow {
                socket(
                    AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue),
                    0)
            }
        } catch {
            throw .failed(path: path, step: "socket", error)
        }
        let descriptor = FileDescriptor(rawValue: raw)
        // bind(2) creates the file with the umask's mode: 0177 leaves 0600, so it is never reachable by others.
        let previous = umask(0o177)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(raw, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        let bindErrno = errno
        umask(previous)
        guard bound == 0 else {
            try? descriptor.close()
            let error = Errno(rawValue: bindErrno)
            throw error == .addressInUse ? .inUse(path) : .failed(path: path, step: "bind", error)
        }
        guard chmod(path, 0o600) == 0, listen(raw, 16) == 0 else {
            let error = Errno(rawValue: errno)
            try? descriptor.close()
            unlink(path)
            throw .failed(path: path, step: "listen", error)
        }
        fd = descriptor
    }

    deinit { close() }

    /// accept(2), then fcntl(2) for non-blocking and close-on-exec (Glibc does not export accept4 to Swift): a
    /// connection, or nil when none waits.
    public func accept() throws(Errno) -> UnixConnection? {
        guard let fd else { throw Errno.badFileDescriptor }
        switch try retryingEINTR({ Glibc.accept(fd.rawValue, nil, nil) }) {
        case .value(let raw):
            _ = fcntl(raw, F_SETFD, FD_CLOEXEC)
            _ = fcntl(raw, F_SETFL, fcntl(raw, F_GETFL) | O_NONBLOCK)
            return UnixConnection(fd: FileDescriptor(rawValue: raw))
        case .wouldBlock: return nil
        }
    }

    /// Closes the socket and removes its file (idempotent).
    public func close() {
        guard let fd else { return }
        self.fd = nil
        try? fd.close()
        unlink(path)
    }
}

/// sockaddr_un for `path`.
private func socketAddress(_ path: String) throws(UnixSocketError) -> sockaddr_un {
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    let capacity = MemoryLayout.size(ofValue: address.sun_path)
    guard !bytes.isEmpty, bytes.count < capacity else { throw .pathTooLong(path) }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    return address
}

/// Control sockets in a state directory: NAME.sock.
public enum ControlSocketFiles {
    /// The socket file of instance `name` in `directory`.
    public static func path(instance name: String, directory: String) -> String { "\(directory)/\(name).sock" }

    /// The instance names that have a socket file in `directory`, sorted.
    public static func instances(directory: String) -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names = [String]()
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name.hasSuffix(".sock"), name.count > 5 else { continue }
            names.append(String(name.dropLast(5)))
        }
        return names.sorted()
    }

    /// Removes the socket files in `directory` that nobody listens on (their run is gone); returns their paths.
    public static func removeStale(directory: String) -> [String] {
        var removed = [String]()
        for name in instances(directory: directory) {
            let path = path(instance: name, directory: directory)
            var status = stat()
            guard lstat(path, &status) == 0, status.st_mode & S_IFMT == S_IFSOCK else { continue }
            do throws(UnixSocketError) {
                _ = try UnixConnection.connect(path: path, timeoutMillis: 1000)
            } catch .stale {
                if unlink(path) == 0 { removed.append(path) }
            } catch {
            }
        }
        return removed
    }
}
