// The runtime's wait primitive: one epoll instance, level-triggered, over TAP fds, a periodic timerfd and
// a signalfd. One thread owns the loop and every fd registered with it; nothing here is thread-safe.
//
// A TAP deleted behind our back is reported by epoll as `.error` (EPOLLERR) on every wait, without
// `.readable`; reading it gives `IOResult.gone`. The owner must remove and close such an fd, or the loop
// spins on it.

import CTapShim
import Glibc
import SystemPackage

/// Readiness flags reported by epoll for one fd.
public struct ReadyFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// EPOLLIN: data to read.
    public static let readable = ReadyFlags(rawValue: EPOLLIN.rawValue)
    /// EPOLLOUT: room to write.
    public static let writable = ReadyFlags(rawValue: EPOLLOUT.rawValue)
    /// EPOLLERR: the fd is in error (a deleted TAP).
    public static let error = ReadyFlags(rawValue: EPOLLERR.rawValue)
    /// EPOLLHUP: the peer hung up.
    public static let hangup = ReadyFlags(rawValue: EPOLLHUP.rawValue)
}

/// One ready fd from `EventLoop.wait`.
public struct ReadyEvent: Sendable, Equatable {
    /// The registered fd.
    public let fd: FileDescriptor
    /// What epoll reported for it.
    public let flags: ReadyFlags

    public init(fd: FileDescriptor, flags: ReadyFlags) {
        self.fd = fd
        self.flags = flags
    }
}

/// An epoll instance: register fds, wait for readiness.
public final class EventLoop {
    private let epoll: FileDescriptor
    private let events: UnsafeMutableBufferPointer<epoll_event>
    private var closed = false

    /// The most events one `wait` reports.
    public var capacity: Int { events.count }

    /// epoll_create1(EPOLL_CLOEXEC); preallocates room for `capacity` events per wait.
    public init(capacity: Int = 64) throws(Errno) {
        precondition(capacity > 0, "EventLoop capacity must be positive")
        let fd = try retryingEINTROrThrow { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        self.epoll = FileDescriptor(rawValue: fd)
        self.events = .allocate(capacity: capacity)
        self.events.initialize(repeating: epoll_event())
    }

    deinit {
        close()
        events.deallocate()
    }

    /// Registers `fd`, level-triggered: epoll_ctl(EPOLL_CTL_ADD) with EPOLLIN (and EPOLLOUT for
    /// `.writable`). EPOLLERR and EPOLLHUP are always reported.
    public func add(_ fd: FileDescriptor, for flags: ReadyFlags = .readable) throws(Errno) {
        var event = epoll_event()
        event.events = flags.intersection([.readable, .writable]).rawValue
        event.data.fd = fd.rawValue
        _ = try retryingEINTROrThrow { epoll_ctl(epoll.rawValue, EPOLL_CTL_ADD, fd.rawValue, &event) }
    }

    /// Unregisters `fd`: epoll_ctl(EPOLL_CTL_DEL). Call before closing it.
    public func remove(_ fd: FileDescriptor) throws(Errno) {
        _ = try retryingEINTROrThrow { epoll_ctl(epoll.rawValue, EPOLL_CTL_DEL, fd.rawValue, nil) }
    }

    /// Waits up to `timeoutMillis` (-1: forever, 0: poll) with epoll_wait(2) and replaces the contents of
    /// `ready` with what is ready (empty on timeout). Does not allocate once `ready` has `capacity`
    /// reserved (see `makeReadyBuffer`). EINTR restarts the wait with the full timeout.
    public func wait(timeoutMillis: Int32, into ready: inout [ReadyEvent]) throws(Errno) {
        precondition(!closed, "wait on a closed EventLoop")
        let count = try retryingEINTROrThrow {
            epoll_wait(epoll.rawValue, events.baseAddress, Int32(events.count), timeoutMillis)
        }
        ready.removeAll(keepingCapacity: true)
        for i in 0..<Int(count) {
            let event = events[i]
            let fd = FileDescriptor(rawValue: event.data.fd)
            ready.append(ReadyEvent(fd: fd, flags: ReadyFlags(rawValue: event.events)))
        }
    }

    /// An empty array with room for `capacity` events, to pass to `wait` again and again.
    public func makeReadyBuffer() -> [ReadyEvent] {
        var buffer: [ReadyEvent] = []
        buffer.reserveCapacity(capacity)
        return buffer
    }

    /// Closes the epoll fd (close(2)). Registered fds stay open. Idempotent.
    public func close() {
        guard !closed else { return }
        closed = true
        _ = Glibc.close(epoll.rawValue)
    }
}

/// A periodic CLOCK_MONOTONIC timer as an fd, for `EventLoop` (capture flush, map events).
public final class PeriodicTimer {
    /// The timerfd, to register for `.readable`.
    public let fd: FileDescriptor
    private var closed = false

    /// timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK|TFD_CLOEXEC) + timerfd_settime: first expiry after
    /// `intervalNanos`, then every `intervalNanos`.
    public init(intervalNanos: UInt64) throws(Errno) {
        precondition(intervalNanos > 0, "PeriodicTimer interval must be positive")
        let raw = try retryingEINTROrThrow { timerfd_create(CLOCK_MONOTONIC, Int32(TFD_NONBLOCK | TFD_CLOEXEC)) }
        self.fd = FileDescriptor(rawValue: raw)
        let interval = timespec(
            tv_sec: Int(intervalNanos / 1_000_000_000), tv_nsec: Int(intervalNanos % 1_000_000_000)
        )
        var spec = itimerspec(it_interval: interval, it_value: interval)
        do throws(Errno) {
            _ = try retryingEINTROrThrow { timerfd_settime(raw, 0, &spec, nil) }
        } catch {
            _ = Glibc.close(raw)
            throw error
        }
    }

    deinit {
        close()
    }

    /// How many periods elapsed since the last call (read(2) of the 8-byte counter); 0 if none.
    public func expirations() throws(Errno) -> UInt64 {
        var count: UInt64 = 0
        switch try retryingEINTR({ Glibc.read(fd.rawValue, &count, 8) }) {
        case .value: return count
        case .wouldBlock: return 0
        }
    }

    /// Closes the timerfd (close(2)). Idempotent.
    public func close() {
        guard !closed else { return }
        closed = true
        _ = Glibc.close(fd.rawValue)
    }
}

/// SIGINT/SIGTERM as readable events: blocks the signals (pthread_sigmask) and reads them from a signalfd.
///
/// Signal masks are per thread and inherited by threads created later. A process-directed signal goes to
/// any thread that does not block it and, with the default disposition, kills the process; so create the
/// watcher on the main thread before any other thread starts (first thing in `main`). Children spawned by
/// `Command` get an empty mask and default dispositions again.
public final class SignalWatcher {
    /// The signalfd, to register for `.readable`.
    public let fd: FileDescriptor
    private var previousMask = sigset_t()
    private var closed = false

    /// pthread_sigmask(SIG_BLOCK, signals) on the calling thread, then signalfd(-1, signals,
    /// SFD_NONBLOCK|SFD_CLOEXEC).
    public init(signals: [Int32] = [SIGINT, SIGTERM]) throws(Errno) {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals {
            sigaddset(&set, signal)
        }
        let rc = pthread_sigmask(SIG_BLOCK, &set, &previousMask)
        if rc != 0 {
            throw Errno(rawValue: rc)
        }
        do throws(Errno) {
            let raw = try retryingEINTROrThrow { signalfd(-1, &set, Int32(SFD_NONBLOCK | SFD_CLOEXEC)) }
            self.fd = FileDescriptor(rawValue: raw)
        } catch {
            var previous = previousMask
            pthread_sigmask(SIG_SETMASK, &previous, nil)
            throw error
        }
    }

    deinit {
        close()
    }

    /// The next pending signal number (read(2) of one `signalfd_siginfo`), or `nil` if none is pending.
    public func next() throws(Errno) -> Int32? {
        var info = signalfd_siginfo()
        let size = MemoryLayout<signalfd_siginfo>.size
        switch try retryingEINTR({ Glibc.read(fd.rawValue, &info, size) }) {
        case .value(let n):
            precondition(n == size, "short read from signalfd")
            return Int32(bitPattern: info.ssi_signo)
        case .wouldBlock:
            return nil
        }
    }

    /// Consumes pending signals, closes the signalfd and restores the signal mask the calling thread had.
    /// Idempotent.
    public func close() {
        guard !closed else { return }
        closed = true
        while (try? next()) ?? nil != nil {}
        _ = Glibc.close(fd.rawValue)
        var previous = previousMask
        pthread_sigmask(SIG_SETMASK, &previous, nil)
    }
}

/// A wake-up any thread can send to an `EventLoop`: an eventfd that becomes readable once `notify()` was called
/// (for example a stop request from a thread other than the loop's).
///
/// `notify` may be called from any thread, any number of times; the fd stays open until `close()`, which
/// only the owner calls once no thread will notify again.
public final class EventNotifier: @unchecked Sendable {
    // @unchecked Sendable: after init the only shared state is the fd number, and write(2) of 8 bytes to an
    // eventfd is atomic; `close` is the owner's, after every notifier is done.

    /// The eventfd, to register for `.readable`.
    public let fd: FileDescriptor
    private var closed = false

    /// eventfd(0, EFD_NONBLOCK|EFD_CLOEXEC).
    public init() throws(Errno) {
        let raw = try retryingEINTROrThrow { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) }
        fd = FileDescriptor(rawValue: raw)
    }

    deinit {
        close()
    }

    /// Makes the fd readable: write(2) of 1 to the eventfd counter.
    public func notify() {
        var one: UInt64 = 1
        _ = try? retryingEINTR { Glibc.write(fd.rawValue, &one, 8) }
    }

    /// Whether `notify` was called since the last `consume`, resetting the counter (read(2)).
    public func consume() -> Bool {
        var count: UInt64 = 0
        guard case .value = (try? retryingEINTR { Glibc.read(fd.rawValue, &count, 8) }) ?? .wouldBlock else {
            return false
        }
        return count > 0
    }

    /// Closes the eventfd (close(2)). Idempotent.
    public func close() {
        guard !closed else { return }
        closed = true
        _ = Glibc.close(fd.rawValue)
    }
}
