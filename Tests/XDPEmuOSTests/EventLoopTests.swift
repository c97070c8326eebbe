import Foundation
import Glibc
import SystemPackage
import Testing
import XDPEmuOS

@Suite("Event loop, timers, signals, clocks")
struct EventLoopTests {
    @Test func reportsAReadablePipeAndTimesOutOtherwise() throws {
        let loop = try EventLoop(capacity: 4)
        let (readEnd, writeEnd) = try FileDescriptor.pipe()
        defer {
            try? readEnd.close()
            try? writeEnd.close()
        }
        try loop.add(readEnd)
        var ready = loop.makeReadyBuffer()
        try loop.wait(timeoutMillis: 0, into: &ready)
        #expect(ready.isEmpty)

        _ = try writeEnd.writeAll([1, 2, 3])
        try loop.wait(timeoutMillis: 1000, into: &ready)
        #expect(ready == [ReadyEvent(fd: readEnd, flags: .readable)])

        try loop.remove(readEnd)
        try loop.wait(timeoutMillis: 0, into: &ready)
        #expect(ready.isEmpty)
    }

    @Test func aNotifierWakesTheLoopFromAnotherThread() throws {
        let loop = try EventLoop(capacity: 2)
        let notifier = try EventNotifier()
        try loop.add(notifier.fd)
        var ready = loop.makeReadyBuffer()
        try loop.wait(timeoutMillis: 0, into: &ready)
        #expect(ready.isEmpty)
        #expect(!notifier.consume())

        let thread = Thread { notifier.notify() }
        thread.start()
        try loop.wait(timeoutMillis: 2000, into: &ready)
        #expect(ready == [ReadyEvent(fd: notifier.fd, flags: .readable)])
        #expect(notifier.consume())
        #expect(!notifier.consume())
        try loop.wait(timeoutMillis: 0, into: &ready)
        #expect(ready.isEmpty)
    }

    @Test func waitDoesNotGrowAReservedBuffer() throws {
        let loop = try EventLoop(capacity: 2)
        var ready = loop.makeReadyBuffer()
        let capacity = ready.capacity
        try loop.wait(timeoutMillis: 0, into: &ready)
        #expect(ready.capacity == capacity)
    }

    @Test func periodicTimerTicks() throws {
        let loop = try EventLoop()
        let timer = try PeriodicTimer(intervalNanos: 20_000_000)
        try loop.add(timer.fd)
        let start = MonotonicClock.now()
        var ready = loop.makeReadyBuffer()
        try loop.wait(timeoutMillis: 1000, into: &ready)
        #expect(ready.map(\.fd) == [timer.fd])
        #expect(try timer.expirations() >= 1)
        #expect(MonotonicClock.now() - start >= 15_000_000)
        #expect(try timer.expirations() == 0, "reading resets the counter")
    }

    // Synchronous on purpose: raise(3) targets the calling thread, and the whole test runs on that thread.
    @Test func signalWatcherSeesSIGTERMRaisedToSelf() throws {
        let watcher = try SignalWatcher(signals: [SIGINT, SIGTERM])
        defer { watcher.close() }
        let loop = try EventLoop()
        try loop.add(watcher.fd)
        #expect(try watcher.next() == nil)

        #expect(raise(SIGTERM) == 0)
        var ready = loop.makeReadyBuffer()
        try loop.wait(timeoutMillis: 1000, into: &ready)
        #expect(ready.map(\.fd) == [watcher.fd])
        #expect(try watcher.next() == SIGTERM)
        #expect(try watcher.next() == nil)
    }

    @Test func clocksAdvance() {
        let a = MonotonicClock.now()
        let b = MonotonicClock.now()
        #expect(b >= a)
        // After 2020-01-01 and before 2100-01-01.
        #expect((1_577_836_800_000_000_000..<4_102_444_800_000_000_000).contains(WallClock.nowNanos()))
    }

    @Test func syscallHelperReturnsWouldBlockAsAValue() throws {
        let (readEnd, writeEnd) = try FileDescriptor.pipe()
        defer {
            try? readEnd.close()
            try? writeEnd.close()
        }
        _ = try retryingEINTROrThrow { fcntl(readEnd.rawValue, F_SETFL, O_NONBLOCK) }
        var byte: UInt8 = 0
        let result = try retryingEINTR { read(readEnd.rawValue, &byte, 1) }
        #expect(result == .wouldBlock)
        #expect(throws: Errno.badFileDescriptor) {
            _ = try retryingEINTR { read(-1, &byte, 1) }
        }
    }
}

@Suite("Privileges")
struct PrivilegesTests {
    @Test(.enabled(if: geteuid() == 0 && access("/dev/net/tun", F_OK) == 0, "needs root and /dev/net/tun"))
    func rootPassesTheCheck() throws {
        try Privileges.check()
        #expect(Privileges.effectiveCapabilities().map { $0 & (1 << 12) != 0 } == true)
    }

    @Test func messagesNameWhatIsMissing() {
        let error = PrivilegeError(missing: [.netAdmin, .sysAdmin, .tunDevice])
        #expect(error.description.contains("needs CAP_NET_ADMIN (run as root)"))
        #expect(error.description.contains("CAP_SYS_ADMIN"))
        #expect(error.description.contains("/dev/net/tun is missing (modprobe tun)"))
    }
}
