import BenchSupport
import CBenchShim
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import XDPEmuOS
import XDPEmuRuntime
import XDPEmuTopology

// Live forwarding between two host namespaces, in process.
//
// Setup runs `LiveRun` (the code behind `xdpemu run`) on a thread of its own with a two-host topology: ports
// xpb-a and xpb-b, each a TAP in its own namespace (xdpemu-bench-a 10.98.0.1/24, xdpemu-bench-b 10.98.0.2/24),
// a redirect_map program on each forwarding through a 2-entry devmap to the other, no captures. A sender thread
// enters xdpemu-bench-a with setns(2) and sends 18-byte UDP datagrams (60-byte frames) to 10.98.0.2:9 with
// sendmmsg, 64 at a time, as fast as it can (like scripts/bench/udp-blast.c). The frames forwarded are counted
// by the kernel: rx_packets of xpb-b inside xdpemu-bench-b (every frame xdpemu writes into that TAP), read from
// /proc/thread-self/net/dev opened by a thread inside that namespace (the file keeps the namespace it was opened
// in), into a preallocated buffer, so sampling it allocates nothing.
//
// The loop thread and the sender are pinned to CPUs 0 and 1 when there are two, as scripts/bench/live.sh does
// with taskset. Teardown stops the sender, then the run (its stop request), which removes its TAPs and namespaces;
// the run-state file lives in /run/xdpemu-bench, so leftovers of a crashed benchmark are removed by the next
// setup (`RunState.cleanupStale`, dead pids only) or by `xdpemu cleanup --state-dir /run/xdpemu-bench`.

/// One live run with a UDP sender, from setup to teardown.
public final class LiveScenario: @unchecked Sendable {
    // @unchecked Sendable: the run and the threads are set up in init and torn down in `stop`, both on the
    // benchmark's thread; the other threads share only the atomics and the locked outcome.

    public static let namespaces = (a: "xdpemu-bench-a", b: "xdpemu-bench-b")
    public static let stateDirectory = "/run/xdpemu-bench"
    static let ports = (a: "xpb-a", b: "xpb-b")
    static let topologyJSON = """
        {"name": "pipebench-live",
         "ports": [
           {"name": "\(ports.a)", "mac": "02:00:00:00:98:fa",
            "host": {"namespace": "\(namespaces.a)", "mac": "02:00:00:00:98:01", "ipv4": ["10.98.0.1/24"]},
            "program": {"type": "redirect_map", "map": "fwd", "key": {"kind": "constant", "value": 0}}},
           {"name": "\(ports.b)", "mac": "02:00:00:00:98:fb",
            "host": {"namespace": "\(namespaces.b)", "mac": "02:00:00:00:98:02", "ipv4": ["10.98.0.2/24"]},
            "program": {"type": "redirect_map", "map": "fwd", "key": {"kind": "constant", "value": 1}}}],
         "maps": [{"name": "fwd", "type": "devmap", "max_entries": 2,
                   "entries": {"0": "\(ports.b)", "1": "\(ports.a)"}}]}
        """

    /// nil when live forwarding can be measured here, else why not (the benchmark is then not registered).
    public static func unavailableReason() -> String? {
        if geteuid() != 0 { return "not root" }
        if access("/dev/net/tun", R_OK | W_OK) != 0 { return "/dev/net/tun is missing (modprobe tun)" }
        guard let output = try? Command.runUnchecked("ip", ["netns", "list"]), output.status == 0 else {
            return "`ip netns list` does not run (iproute2 missing?)"
        }
        return nil
    }

    /// What the threads share: how the live run's thread ended, and the sender's state.
    final class Shared: Sendable {
        struct Outcome: Sendable {
            var ready = false
            var finished = false
            var statistics: RunStatistics?
            var teardownErrors: [String] = []
            var error: String?
            var summary = ""
        }

        let outcome = Mutex(Outcome())
        let stopSending = Atomic<Bool>(false)
        let senderError = Mutex<String?>(nil)
        /// Datagrams the sender's sendmmsg calls accepted.
        let datagramsSent = Atomic<Int>(0)
    }

    private let shared = Shared()
    private let live: LiveRun
    private let runner: pthread_t
    private var sender: pthread_t?
    private let counter: RxCounter
    private var stopped = false

    public init() throws {
        let stale = RunState.cleanupStale(directory: Self.stateDirectory)
        if !stale.removed.isEmpty { print("live: removed leftovers of a crashed benchmark: \(stale.removed)") }
        let topology = try Topology.parse(data: Self.topologyJSON,
                                          source: "pipebench-live (Benchmarks/PipelineSupport)")
        var options = LiveOptions(topology: topology)
        options.captureDirectory = nil
        options.stateDirectory = Self.stateDirectory
        let shared = self.shared
        options.announce = { _ in shared.outcome.withLock { $0.ready = true } }
        options.report = { line in shared.outcome.withLock { $0.summary += line + "\n" } }
        try LiveRun.preflight(options)
        let live = try LiveRun(options: options)
        self.live = live
        let pin = sysconf(Int32(_SC_NPROCESSORS_ONLN)) >= 2
        let box = UncheckedBox(live)
        runner = startThread {
            if pin { _ = bench_pin_to_cpu(0) }
            do {
                let result = try box.value.run(signals: nil)
                shared.outcome.withLock {
                    $0.statistics = result.statistics
                    $0.teardownErrors = result.teardownErrors
                    $0.finished = true
                }
            } catch {
                let message = "\(error)"
                shared.outcome.withLock { $0.error = message; $0.finished = true }
            }
        }
        // Setup creates two namespaces and TAPs with iproute2: about a second.
        let deadline = BenchClock.monotonicNanos() + 30_000_000_000
        while !shared.outcome.withLock({ $0.ready || $0.finished }) && BenchClock.monotonicNanos() < deadline {
            usleep(10_000)
        }
        guard shared.outcome.withLock({ $0.ready && !$0.finished }) else {
            live.stopRequest.notify()
            pthread_join(runner, nil)
            let error = shared.outcome.withLock { $0.error ?? "the live run did not come up within 30 s" }
            throw BenchError("live: \(error)")
        }
        do {
            counter = try RxCounter(namespace: Self.namespaces.b, interface: Self.ports.b)
        } catch {
            live.stopRequest.notify()
            pthread_join(runner, nil)
            throw error
        }
        sender = startThread {
            if pin { _ = bench_pin_to_cpu(1) }
            Self.send(shared)
        }
        // ARP and the first frames: wait until forwarding is under way.
        let first = counter.rxPackets()
        let warm = BenchClock.monotonicNanos() + 5_000_000_000
        while counter.rxPackets() < first + 10_000 && BenchClock.monotonicNanos() < warm { usleep(10_000) }
        if counter.rxPackets() < first + 10_000 {
            let problem = shared.senderError.withLock { $0 } ?? "fewer than 10,000 frames forwarded in 5 s"
            let more = stop()
            throw BenchError("live: \(problem)" + (more.isEmpty ? "" : "; \(more)"))
        }
    }

    /// Frames xdpemu has written into xpb-b so far, and the monotonic time of the sample.
    public func sample() -> (frames: UInt64, nanos: UInt64) {
        (counter.rxPackets(), BenchClock.monotonicNanos())
    }

    /// An error of the sender or the run that ended early, if any.
    public func failure() -> String? {
        if let error = shared.senderError.withLock({ $0 }) { return "sender: \(error)" }
        return shared.outcome.withLock { $0.finished ? "the live run ended: \($0.error ?? "without an error")" : nil }
    }

    /// Stops the sender, then the run, which removes its TAPs and namespaces. Returns the problems found: the run's
    /// error or teardown errors, namespaces still present, and counters that do not add up. Idempotent.
    public func stop() -> [String] {
        guard !stopped else { return [] }
        stopped = true
        shared.stopSending.store(true, ordering: .relaxed)
        if let sender { pthread_join(sender, nil) }
        live.stopRequest.notify()
        pthread_join(runner, nil)
        var problems = [String]()
        let outcome = shared.outcome.withLock { $0 }
        let sent = shared.datagramsSent.load(ordering: .relaxed)
        print("live: the run's summary (datagrams accepted by sendmmsg in namespace a: \(sent))")
        print(outcome.summary, terminator: "")
        if let error = outcome.error { problems.append("live run: \(error)") }
        problems += outcome.teardownErrors
        if let ports = outcome.statistics?.ports,
            let a = ports.first(where: { $0.name == Self.ports.a }),
            let b = ports.first(where: { $0.name == Self.ports.b })
        {
            // What a redirected was sent by b or dropped (an unsent TAP write is a drop); ARP replies and ICMP
            // errors went the other way.
            let (redirected, sentByB) = (a.device.redirected, b.device.txPackets)
            let drops = a.device.totalDrops + b.device.totalDrops
            if sentByB == 0 || sentByB > redirected || sentByB + drops < redirected {
                problems.append("port counters: \(Self.ports.a) redirected \(redirected), \(Self.ports.b) sent "
                    + "\(sentByB), drops \(drops)")
            }
        } else if outcome.error == nil {
            problems.append("the run reported no statistics")
        }
        for namespace in [Self.namespaces.a, Self.namespaces.b] where NetNamespace.exists(namespace) {
            problems.append("namespace \(namespace) still exists after the run")
        }
        // Normally empty: the run removed its state file. After a failed teardown, remove what it recorded.
        let report = RunState.cleanupStale(directory: Self.stateDirectory, force: true)
        if !report.removed.isEmpty { print("live: removed \(report.removed)") }
        counter.close()
        return problems
    }

    /// The sender thread: in namespace a, UDP datagrams of 18 bytes to 10.98.0.2:9, 64 per sendmmsg, until stopped.
    static func send(_ shared: Shared) {
        let failure = { (message: String) in shared.senderError.withLock { $0 = message } }
        guard let sender = bench_udp_sender_open(NetNamespace.path(for: namespaces.a), "10.98.0.2", 9, 18, 64) else {
            return failure("UDP sender in \(namespaces.a): errno \(errno)")
        }
        defer { bench_udp_sender_close(sender) }
        while !shared.stopSending.load(ordering: .relaxed) {
            let n = bench_udp_sender_send(sender)
            if n > 0 {
                shared.datagramsSent.add(Int(n), ordering: .relaxed)
                continue
            }
            switch -n {
            case EINTR, EAGAIN, ENOBUFS, ECONNREFUSED, EHOSTUNREACH:
                sched_yield()
            default:
                return failure("sendmmsg: errno \(-n)")
            }
        }
    }
}

/// `rx_packets` of one interface in another network namespace, from /proc/net/dev, without allocating per sample.
final class RxCounter {
    private let fd: Int32
    private let buffer: UnsafeMutableRawBufferPointer
    /// "NAME:" as bytes.
    private let key: [UInt8]

    /// Opens /proc/thread-self/net/dev from a thread that first enters `namespace`.
    init(namespace: String, interface: String) throws {
        final class Opened: Sendable { let value = Mutex<(fd: Int32, error: String?)>((-1, nil)) }
        let opened = Opened()
        let path = NetNamespace.path(for: namespace)
        let thread = startThread {
            let entered = bench_enter_netns(path)
            guard entered == 0 else {
                return opened.value.withLock { $0.error = "setns into \(namespace): errno \(entered)" }
            }
            let fd = open("/proc/thread-self/net/dev", O_RDONLY | O_CLOEXEC)
            let message = fd >= 0 ? nil : "open /proc/thread-self/net/dev: errno \(errno)"
            opened.value.withLock { $0 = (fd, message) }
        }
        pthread_join(thread, nil)
        let (fd, error) = opened.value.withLock { $0 }
        if let error { throw BenchError("live: \(error)") }
        self.fd = fd
        buffer = .allocate(byteCount: 1 << 16, alignment: 8)
        key = Array("\(interface):".utf8)
    }

    func close() {
        _ = Glibc.close(fd)
        buffer.deallocate()
    }

    /// The interface's rx_packets (the second number after "NAME:"), or 0 if it is not listed.
    func rxPackets() -> UInt64 {
        var length = 0
        while length < buffer.count {
            let n = pread(fd, buffer.baseAddress! + length, buffer.count - length, off_t(length))
            if n <= 0 { break }
            length += n
        }
        let bytes = UnsafeRawBufferPointer(rebasing: buffer[..<length])
        var i = 0
        while i + key.count <= length {
            let atLineStart = i == 0 || bytes[i - 1] == UInt8(ascii: " ") || bytes[i - 1] == UInt8(ascii: "\n")
            if atLineStart && key.withUnsafeBytes({ memcmp($0.baseAddress!, bytes.baseAddress! + i, key.count) }) == 0 {
                var j = i + key.count
                var field = 0
                var value: UInt64 = 0
                var inNumber = false
                while j < length && bytes[j] != UInt8(ascii: "\n") {
                    let c = bytes[j]
                    if c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") {
                        value = value * 10 + UInt64(c - UInt8(ascii: "0"))
                        inNumber = true
                    } else if inNumber {
                        if field == 1 { return value }
                        field += 1
                        value = 0
                        inNumber = false
                    }
                    j += 1
                }
                return field == 1 && inNumber ? value : 0
            }
            i += 1
        }
        return 0
    }
}

/// Carries a non-Sendable reference into a thread that is the only one to use it.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
