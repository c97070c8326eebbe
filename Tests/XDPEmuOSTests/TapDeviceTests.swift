import Foundation
import Glibc
import SystemPackage
import Testing
import XDPEmuOS

@Suite("TAP devices", .serialized, .enabled(if: SystemAccess.available, SystemAccess.reason))
struct TapDeviceTests {
    @Test func openReadsNameAndIfIndexAndCloseRemovesIt() throws {
        let name = UniqueName.next()
        let tap = try TapDevice(name: name)
        defer { tap.close() }
        #expect(tap.name == name)
        #expect(tap.fd != nil)
        let sysfsIndex = try String(contentsOfFile: "/sys/class/net/\(name)/ifindex", encoding: .utf8)
        #expect(String(tap.ifIndex.rawValue) == sysfsIndex.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect(sysfsHasLink(name))

        tap.close()
        #expect(tap.fd == nil)
        #expect(!sysfsHasLink(name), "a non-persistent TAP disappears with its fd")
        tap.close()  // idempotent
    }

    @Test func kernelPicksANameWhenNoneIsGiven() throws {
        let tap = try TapDevice(name: nil)
        defer { tap.close() }
        #expect(tap.name.hasPrefix("tap"))
        #expect(sysfsHasLink(tap.name))
    }

    @Test func readOnAFreshTapWouldBlockAndWriteWhileDownFailsWithEIO() throws {
        let tap = try TapDevice(name: UniqueName.next())
        defer { tap.close() }
        var buffer = [UInt8](repeating: 0, count: 2048)
        let read = buffer.withUnsafeMutableBytes { tap.read(into: $0) }
        #expect(read == .wouldBlock)
        let frame = [UInt8](repeating: 0xff, count: 60)
        let written = frame.withUnsafeBytes { tap.write($0) }
        #expect(written == .failed(.ioError))
    }

    @Test func virtioNetHeaderModeOpens() throws {
        let tap = try TapDevice(name: UniqueName.next(), virtioNetHeader: true)
        defer { tap.close() }
        #expect(tap.hasVirtioNetHeader)
        #expect(TapDevice.virtioNetHeaderLength == 12)
    }

    @Test func aNameHeldByAnotherTapIsRefused() throws {
        let name = UniqueName.next()
        let first = try TapDevice(name: name)
        defer { first.close() }
        #expect {
            try TapDevice(name: name)
        } throws: { error in
            guard case .nameInUse(name, let errno) = error as? TapError else { return false }
            return errno == .resourceBusy && (error as! TapError).description.contains("already exists")
        }
    }

    @Test func aNameHeldByAnotherKindOfLinkIsRefused() throws {
        let name = UniqueName.next()
        let leftovers = Leftovers()
        _ = leftovers.link(name)
        try addStandaloneLink(name)
        #expect {
            try TapDevice(name: name)
        } throws: { error in
            guard case .nameInUse(name, let errno) = error as? TapError else { return false }
            return errno == .invalidArgument
        }
    }

    @Test func anInvalidNameIsRefusedBeforeAnyIoctl() {
        #expect(throws: TapError.self) { try TapDevice(name: "bad name") }
    }

    @Test func deletingTheLinkUnderAnOpenFdGivesGone() throws {
        let name = UniqueName.next()
        let tap = try TapDevice(name: name)
        defer { tap.close() }
        try Link.configure(name, in: nil, up: true)
        try Link.deleteLink(name, in: nil)

        let loop = try EventLoop()
        try loop.add(tap.fd!)
        var ready = loop.makeReadyBuffer()
        try loop.wait(timeoutMillis: 1000, into: &ready)
        #expect(ready.count == 1)
        #expect(ready.first?.flags.contains(.error) == true)
        #expect(ready.first?.flags.contains(.readable) == false)

        var buffer = [UInt8](repeating: 0, count: 2048)
        #expect(buffer.withUnsafeMutableBytes { tap.read(into: $0) } == .gone)
        #expect(buffer.withUnsafeBytes { tap.write(UnsafeRawBufferPointer(rebasing: $0[0..<60])) } == .gone)
        try loop.remove(tap.fd!)
    }

    @Test func deletingTheNamespaceDeletesTheTapAndGivesGone() throws {
        let leftovers = Leftovers()
        let ns = leftovers.namespace(UniqueName.next())
        let name = UniqueName.next()
        let tap = try TapDevice(name: name)
        defer { tap.close() }
        try NetNamespace.create(ns)
        try Link.moveToNamespace(name, ns)
        #expect(try Link.linkExists(name, in: ns))
        #expect(!sysfsHasLink(name))

        try NetNamespace.delete(ns)
        // Namespace teardown runs asynchronously in the kernel (cleanup_net); poll for the result.
        var result = IOResult.wouldBlock
        var buffer = [UInt8](repeating: 0, count: 2048)
        for _ in 0..<100 {
            result = buffer.withUnsafeMutableBytes { tap.read(into: $0) }
            if result != .wouldBlock { break }
            usleep(20_000)
        }
        #expect(result == .gone)
        #expect(!sysfsHasLink(name), "the TAP is deleted, not moved back to our namespace")
    }

    @Test func closingTheFdRemovesATapThatWasMovedIntoANamespace() throws {
        let leftovers = Leftovers()
        let ns = leftovers.namespace(UniqueName.next())
        let name = UniqueName.next()
        try NetNamespace.create(ns)
        let tap = try TapDevice(name: name)
        try Link.moveToNamespace(name, ns)
        #expect(try Link.linkExists(name, in: ns))
        tap.close()
        #expect(try !Link.linkExists(name, in: ns), "the fd, not the namespace, keeps the TAP alive")
        #expect(NetNamespace.exists(ns))
    }
}
