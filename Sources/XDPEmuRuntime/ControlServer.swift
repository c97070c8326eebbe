import Foundation
import Glibc
import Synchronization
import SystemPackage
import XDPEmuOS

// The control server of a live instance: one thread of its own, serving every client of the instance's Unix
// socket with poll(2) (ControlProtocol.swift for the protocol, ControlCommands.swift for what requests do).
//
// It never blocks the datapath: requests run on this thread through the control plane's own calls (devmap
// update/delete/lookup under the network's control lock, which the datapath never takes; atomic link state;
// counters read as they are), and event lines reach it through the bounded `EventFeed`. No client can make it
// block or allocate without bound:
// - a request line is at most `ControlProtocol.maxRequestBytes`; a longer one is answered with an error and the
//   connection closed;
// - at most `maxClients` connections; a further one is told so and closed;
// - a client whose answers wait unread for `writeTimeout` (it sends and never reads) is disconnected, as is one
//   whose unread output exceeds `maxPendingBytes`; an event follower that does not keep up loses lines (counted
//   and announced in a `lost` line) rather than growing its buffer;
// - a connection that sends nothing for `idleTimeout` (and follows no events) is closed.
// `stop` wakes the thread through an eventfd, closes every connection and removes the socket file.

/// Serves the control socket of a live instance until `stop`.
final class ControlServer: @unchecked Sendable {
    // @unchecked Sendable: everything below `thread` is touched only by the server's thread, except `wake` (an
    // eventfd) and `stopped` (atomic).
    static let maxClients = 32
    static let maxPendingBytes = ControlProtocol.maxResponseBytes
    /// An event follower's unread output beyond which new lines are dropped (and counted).
    static let maxEventBacklog = 1 << 20
    /// How long answers may wait unread before the client is disconnected, and how long a client may stay silent.
    let writeTimeout: UInt64
    let idleTimeout: UInt64

    let listener: UnixListener
    private let handler: ControlCommands
    private let feed: EventFeed
    private let wake: EventNotifier
    private let stopped = Atomic<Bool>(false)
    private var thread: Thread?

    private final class Client {
        let connection: UnixConnection
        var input: [UInt8] = []
        var output: [UInt8] = []
        var written = 0
        /// When output started waiting unread, or 0.
        var blockedSince: UInt64 = 0
        var lastRequest: UInt64
        var following = false
        var lost: UInt64 = 0
        var closeWhenWritten = false
        /// Written out and shut down for writing: what the client still sends is read and discarded until it
        /// closes (closing with unread input would reset the connection before the client read the answer).
        var halfClosedSince: UInt64 = 0

        init(_ connection: UnixConnection, now: UInt64) {
            self.connection = connection
            lastRequest = now
        }

        var pending: Int { output.count - written }
    }

    private var clients: [Client] = []

    /// The handler, for tests that start a second server.
    var handlerForTests: ControlCommands { handler }

    /// Creates the socket at `path` (mode 0600; a stale one is replaced, one a live instance listens on refused).
    init(
        path: String, handler: ControlCommands, feed: EventFeed, writeTimeout: UInt64 = 5_000_000_000,
        idleTimeout: UInt64 = 60_000_000_000
    ) throws(RuntimeError) {
        self.writeTimeout = writeTimeout
        self.idleTimeout = idleTimeout
        do {
            listener = try UnixListener(path: path)
        } catch {
            if case .inUse = error {
                throw .badInput(
                    "control socket \(path): another running instance has this name; give this run another with "
                        + "--name")
            }
            throw .failure("control socket: \(error)")
        }
        do {
            wake = try EventNotifier()
        } catch {
            listener.close()
            throw .failure("cannot create an eventfd: \(error)")
        }
        self.handler = handler
        self.feed = feed
    }

    /// Starts the server's thread.
    func start() {
        let thread = Thread { [self] in serve() }
        thread.name = "xdpemu-control"
        self.thread = thread
        thread.start()
    }

    /// Stops the thread, waits for it, closes every connection and removes the socket file. Idempotent.
    func stop() {
        if !stopped.exchange(true, ordering: .acquiringAndReleasing) {
            wake.notify()
            if thread != nil {
                while !finished.load(ordering: .acquiring) { usleep(1000) }
            }
        }
        listener.close()
        wake.close()
    }

    private let finished = Atomic<Bool>(false)

    // MARK: The loop

    private func serve() {
        defer {
            for client in clients { close(client) }
            clients.removeAll()
            finished.store(true, ordering: .releasing)
        }
        var fds = [pollfd]()
        while !stopped.load(ordering: .acquiring) {
            fds.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: wake.fd.rawValue, events: Int16(POLLIN), revents: 0))
            fds.append(pollfd(fd: listener.fd?.rawValue ?? -1, events: Int16(POLLIN), revents: 0))
            for client in clients {
                var events = Int16(POLLIN)
                if client.pending > 0 { events |= Int16(POLLOUT) }
                fds.append(pollfd(fd: client.connection.fd?.rawValue ?? -1, events: events, revents: 0))
            }
            let following = clients.contains { $0.following }
            let result = poll(&fds, nfds_t(fds.count), following ? 100 : 500)
            if result < 0 && errno != EINTR { usleep(10_000) }
            if stopped.load(ordering: .acquiring) { break }
            let now = MonotonicClock.now()
            if fds[1].revents & Int16(POLLIN) != 0 { acceptClients(now: now) }
            for (i, client) in clients.enumerated() where i + 2 < fds.count {
                let revents = fds[i + 2].revents
                if revents & Int16(POLLIN | POLLHUP | POLLERR) != 0 { readRequests(client, now: now) }
                if revents & Int16(POLLOUT) != 0 { flushOutput(client, now: now) }
            }
            if following { deliverEvents() }
            expire(now: now)
        }
    }

    private func acceptClients(now: UInt64) {
        while let connection = try? listener.accept() {
            let client = Client(connection, now: now)
            if let uid = connection.peerUID, uid != geteuid(), uid != 0 {
                respond(
                    client, ControlProtocol.failure(.error("permission denied: uid \(uid) does not own this instance")))
                client.closeWhenWritten = true
            } else if clients.count >= Self.maxClients {
                respond(
                    client, ControlProtocol.failure(.error("too many clients (\(Self.maxClients)); try again later")))
                client.closeWhenWritten = true
            }
            clients.append(client)
            flushOutput(client, now: now)
        }
    }

    private func readRequests(_ client: Client, now: UInt64) {
        var chunk = [UInt8](repeating: 0, count: 4096)
        if client.halfClosedSince != 0 {
            while let count = try? chunk.withUnsafeMutableBytes({ try client.connection.read(into: $0) }) {
                if count == 0 {
                    close(client)
                    return
                }
            }
            return
        }
        while !client.closeWhenWritten {
            let count: Int?
            do {
                count = try chunk.withUnsafeMutableBytes { try client.connection.read(into: $0) }
            } catch {
                close(client)
                return
            }
            guard let count else { break }
            if count == 0 {
                // The client closed its side: answers still pending are written, then the connection closes.
                client.closeWhenWritten = true
                break
            }
            client.input.append(contentsOf: chunk[0..<count])
            while let newline = client.input.firstIndex(of: UInt8(ascii: "\n")) {
                let line = client.input[..<newline]
                client.lastRequest = now
                guard line.count < ControlProtocol.maxRequestBytes else { break }
                handle(line, client: client)
                client.input.removeSubrange(...newline)
            }
            if client.input.count >= ControlProtocol.maxRequestBytes {
                respond(
                    client,
                    ControlProtocol.failure(
                        .error("request longer than \(ControlProtocol.maxRequestBytes) bytes; closing the connection")))
                client.input.removeAll()
                client.closeWhenWritten = true
            }
        }
        flushOutput(client, now: now)
    }

    private func handle(_ line: ArraySlice<UInt8>, client: Client) {
        let answer = handler.respond(to: line)
        respond(client, answer.response)
        if answer.follow && !client.following {
            client.following = true
            feed.subscribe()
        }
    }

    private func respond(_ client: Client, _ bytes: [UInt8]) {
        guard client.pending + bytes.count <= Self.maxPendingBytes else {
            close(client)
            return
        }
        client.output.append(contentsOf: bytes)
    }

    private func flushOutput(_ client: Client, now: UInt64) {
        while client.pending > 0 {
            let result: Int?
            do {
                result = try client.output.withUnsafeBytes {
                    try client.connection.write(UnsafeRawBufferPointer(rebasing: $0[client.written...]))
                }
            } catch {
                close(client)
                return
            }
            guard let count = result else {
                if client.blockedSince == 0 { client.blockedSince = now }
                return
            }
            client.written += count
            client.blockedSince = 0
        }
        client.output.removeAll(keepingCapacity: client.output.capacity <= 1 << 16)
        client.written = 0
        if client.closeWhenWritten && client.halfClosedSince == 0 {
            client.connection.shutdownWrite()
            client.halfClosedSince = now
        }
    }

    private func deliverEvents() {
        let (bytes, lost) = feed.take()
        let now = MonotonicClock.now()
        for client in clients where client.following && client.connection.fd != nil {
            client.lost &+= lost
            if client.pending + bytes.count > Self.maxEventBacklog {
                client.lost &+= UInt64(bytes.lazy.filter { $0 == UInt8(ascii: "\n") }.count)
                continue
            }
            if client.lost > 0 {
                client.output.append(contentsOf: Array("{\"event\":\"lost\",\"lines\":\(client.lost)}\n".utf8))
                client.lost = 0
            }
            client.output.append(contentsOf: bytes)
            flushOutput(client, now: now)
        }
    }

    /// Disconnects clients that do not read their answers, or sent nothing for too long.
    private func expire(now: UInt64) {
        for client in clients where client.connection.fd != nil {
            if client.blockedSince != 0 && now &- client.blockedSince > writeTimeout {
                close(client)
            } else if client.halfClosedSince != 0 && now &- client.halfClosedSince > 1_000_000_000 {
                close(client)
            } else if !client.following && client.pending == 0 && now &- client.lastRequest > idleTimeout {
                close(client)
            }
        }
        clients.removeAll { $0.connection.fd == nil }
    }

    private func close(_ client: Client) {
        if client.following {
            client.following = false
            feed.unsubscribe()
        }
        client.connection.close()
        client.output = []
        client.input = []
    }
}
