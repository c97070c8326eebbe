import Foundation
import Glibc
import Synchronization
import SystemPackage
import Testing
import XDPEmuCore
import XDPEmuOS

@Suite("Hosts in namespaces", .serialized, .enabled(if: SystemAccess.available, SystemAccess.reason))
struct HostSetupTests {
    @Test func sysctlWrittenFromAHelperThreadLandsInTheNamespaceOnly() throws {
        let leftovers = Leftovers()
        let ns = leftovers.namespace(UniqueName.next())
        try NetNamespace.create(ns)
        let key = "net/ipv4/conf/default/forwarding"
        let rootBefore = try String(contentsOfFile: "/proc/sys/\(key)", encoding: .utf8)
        let target = rootBefore.hasPrefix("1") ? "0" : "1"

        try Sysctl.write(key, target, inNamespace: ns)

        #expect(try Sysctl.read(key, inNamespace: ns) == target)
        let seenByIp = try Command.run("ip", ["netns", "exec", ns, "cat", "/proc/sys/\(key)"])
        #expect(seenByIp.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == target)
        #expect(try String(contentsOfFile: "/proc/sys/\(key)", encoding: .utf8) == rootBefore)
    }

    @Test func sysctlInAMissingNamespaceFailsWithENOENT() {
        #expect {
            try Sysctl.write("net/ipv4/conf/default/forwarding", "1", inNamespace: UniqueName.next())
        } throws: { error in
            guard case .sysctl(_, _, let errno) = error as? NetworkConfigError else { return false }
            return errno == .noSuchFileOrDirectory
        }
    }

    @Test func namespaceCreateListExistsDelete() throws {
        let leftovers = Leftovers()
        let ns = leftovers.namespace(UniqueName.next())
        #expect(!NetNamespace.exists(ns))
        try NetNamespace.create(ns)
        #expect(NetNamespace.exists(ns))
        #expect(try NetNamespace.list().contains(ns))
        #expect(throws: NetworkConfigError.self) { try NetNamespace.create(ns) }
        try NetNamespace.delete(ns)
        #expect(!NetNamespace.exists(ns))
        #expect(try !NetNamespace.list().contains(ns))
    }

    @Test func hostSetupConfiguresEverythingInOrderAndKeepsTheWireQuiet() throws {
        let spec = HostSpec(
            namespace: UniqueName.next(), interface: UniqueName.next(), mac: MACAddress("02:00:00:c9:00:01"), mtu: 1400,
            ipv4: [InterfaceAddress("10.201.0.1/24")!], ipv6: [InterfaceAddress("fd00:c9::1/64")!],
            routes: [
                RouteSpec(to: .prefix(IPPrefix("10.202.0.0/16")!), via: IPAddress("10.201.0.254")!),
                RouteSpec(to: .default, via: IPAddress("fd00:c9::fe")!),
            ]
        )
        let leftovers = Leftovers()
        _ = leftovers.namespace(spec.namespace)
        let host = HostSetup(spec: spec)
        defer { host.teardown() }
        try host.setUp()

        let ns = spec.namespace
        let link = try Command.run("ip", ["-n", ns, "-o", "link", "show", "dev", spec.interface]).stdout
        #expect(link.contains("mtu 1400"))
        #expect(link.contains("02:00:00:c9:00:01"))
        #expect(link.contains("state UP") || link.contains(",UP"))
        let addresses = try Command.run("ip", ["-n", ns, "-o", "address", "show", "dev", spec.interface]).stdout
        #expect(addresses.contains("10.201.0.1/24"))
        #expect(addresses.contains("fd00:c9::1/64"))
        let routes4 = try Command.run("ip", ["-n", ns, "route", "show"]).stdout
        #expect(routes4.contains("10.202.0.0/16 via 10.201.0.254"))
        let routes6 = try Command.run("ip", ["-n", ns, "-6", "route", "show"]).stdout
        #expect(routes6.contains("default via fd00:c9::fe"))
        #expect(try Sysctl.read("net/ipv6/conf/\(spec.interface)/accept_ra", inNamespace: ns) == "0")
        #expect(try Sysctl.read("net/ipv6/conf/\(spec.interface)/autoconf", inNamespace: ns) == "0")
    }

    @Test func anIPv4OnlyHostSendsNothingWhenItComesUp() throws {
        let spec = HostSpec(
            namespace: UniqueName.next(), interface: UniqueName.next(), ipv4: [InterfaceAddress("10.201.1.1/24")!]
        )
        let leftovers = Leftovers()
        _ = leftovers.namespace(spec.namespace)
        let host = HostSetup(spec: spec)
        defer { host.teardown() }
        let tap = try host.setUp()
        #expect(try Sysctl.read("net/ipv6/conf/\(spec.interface)/disable_ipv6", inNamespace: spec.namespace) == "1")

        // With IPv6 on, a fresh link sends a router solicitation and MLD reports within ~1 s of coming up.
        var buffer = [UInt8](repeating: 0, count: 2048)
        let deadline = MonotonicClock.now() + 1_500_000_000
        var frames = 0
        while MonotonicClock.now() < deadline {
            if case .transferred = buffer.withUnsafeMutableBytes({ tap.read(into: $0) }) {
                frames += 1
            }
            usleep(50_000)
        }
        #expect(frames == 0, "no stray frames from an IPv4-only host")
    }

    @Test func aFailedSetUpUndoesWhatItDid() throws {
        // The last step fails: the kernel refuses a gateway on no connected network.
        let spec = HostSpec(
            namespace: UniqueName.next(), interface: UniqueName.next(), ipv4: [InterfaceAddress("10.201.2.1/24")!],
            routes: [RouteSpec(to: .prefix(IPPrefix("10.202.0.0/16")!), via: IPAddress("10.99.0.1")!)]
        )
        let leftovers = Leftovers()
        _ = leftovers.namespace(spec.namespace)
        let host = HostSetup(spec: spec)
        #expect(throws: HostSetupError.self) { try host.setUp() }
        #expect(host.tap == nil)
        #expect(!NetNamespace.exists(spec.namespace))
        #expect(!sysfsHasLink(spec.interface))
    }

    @Test func theHostsInterfaceNameNeedOnlyBeFreeInsideItsNamespace() throws {
        let leftovers = Leftovers()
        // An interface of this name exists here (as eth0 does on most machines).
        let taken = leftovers.link(UniqueName.next())
        try addStandaloneLink(taken)
        let spec = HostSpec(namespace: leftovers.namespace(UniqueName.next()), interface: taken)
        let directory = try TemporaryDirectory()
        let runState = try RunState(directory: directory.path, pid: Int32.max - 5)
        defer { runState.finish() }
        let host = HostSetup(spec: spec, runState: runState)
        defer { host.teardown() }

        let tap = try host.setUp()

        #expect(tap.name == taken)
        #expect(try Link.linkExists(taken, in: spec.namespace))
        #expect(sysfsHasLink(taken), "the interface here is untouched")
        #expect(runState.record.taps == [LinkRecord(name: taken, namespace: spec.namespace)])
        let links = try Command.run("ip", ["-o", "link", "show"]).stdout
        #expect(!links.contains("xdpe\(getpid())-"), "no temporary TAP is left in this namespace")
        host.teardown()
        #expect(runState.record.taps.isEmpty)
    }

    @Test func anExistingNamespaceIsNotAdopted() throws {
        let leftovers = Leftovers()
        let ns = leftovers.namespace(UniqueName.next())
        try NetNamespace.create(ns)
        let host = HostSetup(spec: HostSpec(namespace: ns, interface: UniqueName.next()))
        #expect {
            try host.setUp()
        } throws: { error in
            guard case .namespaceExists(ns) = error as? HostSetupError else { return false }
            return true
        }
        #expect(NetNamespace.exists(ns), "teardown of a failed setup leaves a namespace it did not create")
    }

    /// The whole OS layer at once: two hosts in two namespaces, their TAPs bridged by a tiny forwarding
    /// loop built from `TapDevice` and `EventLoop`; ping crosses it both ways.
    @Test func twoHostsPingEachOtherThroughAForwardingLoop() throws {
        let a = HostSpec(
            namespace: UniqueName.next(), interface: UniqueName.next(), ipv4: [InterfaceAddress("10.201.0.1/24")!]
        )
        let b = HostSpec(
            namespace: UniqueName.next(), interface: UniqueName.next(), ipv4: [InterfaceAddress("10.201.0.2/24")!]
        )
        let leftovers = Leftovers()
        _ = leftovers.namespace(a.namespace)
        _ = leftovers.namespace(b.namespace)
        let stateDirectory = try TemporaryDirectory()
        let runState = try RunState(directory: stateDirectory.path)
        let hostA = HostSetup(spec: a, runState: runState)
        let hostB = HostSetup(spec: b, runState: runState)
        defer {
            hostA.teardown()
            hostB.teardown()
        }
        let forwarder = try Forwarder(try hostA.setUp(), try hostB.setUp())
        #expect(Set(runState.record.namespaces) == [a.namespace, b.namespace])
        #expect(
            Set(runState.record.taps) == [
                LinkRecord(name: a.interface, namespace: a.namespace),
                LinkRecord(name: b.interface, namespace: b.namespace),
            ])
        forwarder.start()
        let ping: CommandOutput
        do {
            defer { forwarder.stop() }
            ping = try Command.runUnchecked(
                "ip", ["netns", "exec", a.namespace, "ping", "-c", "3", "-i", "0.2", "-W", "1", "10.201.0.2"])
        }
        #expect(ping.status == 0, "ping failed: \(ping.stdout) \(ping.stderr)")
        #expect(ping.stdout.contains("3 received"))
        #expect(forwarder.forwarded[0] >= 4, "ARP request + 3 echo requests from A")
        #expect(forwarder.forwarded[1] >= 4, "ARP reply + 3 echo replies from B")

        #expect(hostA.teardown().isEmpty)
        #expect(hostB.teardown().isEmpty)
        let namespaces = try NetNamespace.list()
        #expect(!namespaces.contains(a.namespace) && !namespaces.contains(b.namespace))
        #expect(!sysfsHasLink(a.interface) && !sysfsHasLink(b.interface))
        #expect(runState.record.namespaces.isEmpty && runState.record.taps.isEmpty)
        runState.finish()
        #expect(access(runState.path, F_OK) != 0)
    }
}

/// Copies every frame from one TAP to the other, both ways, on its own thread, until stopped.
private final class Forwarder: @unchecked Sendable {
    // Touched only by the forwarding thread between start() and stop(); stop() joins before returning.
    private let taps: [TapDevice]
    private let loop: EventLoop
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private(set) var forwarded = [0, 0]

    init(_ a: TapDevice, _ b: TapDevice) throws {
        taps = [a, b]
        loop = try EventLoop()
        try loop.add(a.fd!)
        try loop.add(b.fd!)
    }

    func start() {
        let thread = Thread { [self] in
            run()
            finished.signal()
        }
        thread.start()
    }

    func stop() {
        stopping.store(true, ordering: .relaxed)
        finished.wait()
    }

    private func run() {
        var ready = loop.makeReadyBuffer()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
        defer { buffer.deallocate() }
        while !stopping.load(ordering: .relaxed) {
            guard (try? loop.wait(timeoutMillis: 50, into: &ready)) != nil else { return }
            for event in ready {
                let from = taps[0].fd == event.fd ? 0 : 1
                while case .transferred(let n) = taps[from].read(into: buffer) {
                    _ = taps[1 - from].write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
                    forwarded[from] += 1
                }
            }
        }
    }
}
