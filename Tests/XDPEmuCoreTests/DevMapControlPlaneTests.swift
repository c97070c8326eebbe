import Testing
import XDPEmuCore
import XDPEmuTesting

/// The errno table of KERNEL-NOTES.md, row by row (array devmap, 4.18).
@Suite struct DevMapControlPlaneTests {
    let network = Network()
    let dev1: NetDevice
    let dev2: NetDevice

    init() throws {
        dev1 = try network.addDevice(name: "a", transmitter: FakeTransmitter())
        dev2 = try network.addDevice(name: "b", transmitter: FakeTransmitter())
    }

    @Test func createValidatesAttributes() throws {
        #expect(throws: KernelErrno.EINVAL) { try network.createDevMap(maxEntries: 0) }
        #expect(throws: KernelErrno.EINVAL) { try network.createDevMap(maxEntries: 4, keySize: 8) }
        #expect(throws: KernelErrno.EINVAL) { try network.createDevMap(maxEntries: 4, valueSize: 8) }
        #expect(throws: KernelErrno.EINVAL) { try network.createDevMap(maxEntries: 4, flags: 1) }
        #expect(throws: KernelErrno.EINVAL) { try network.createDevMap(maxEntries: 4, flags: 8 | 16) }
        #expect(throws: KernelErrno.EPERM) { try network.createDevMap(maxEntries: 4, capNetAdmin: false) }
        // EPERM comes before the attribute checks.
        #expect(throws: KernelErrno.EPERM) { try network.createDevMap(maxEntries: 0, capNetAdmin: false) }
        #expect(throws: KernelErrno.EINVAL) { try network.createDevMap(maxEntries: UInt32.max) }
        // RDONLY with WRONLY is refused by the syscall before the devmap checks the capability.
        #expect(throws: KernelErrno.EINVAL) {
            try network.createDevMap(maxEntries: 4, flags: 8 | 16, capNetAdmin: false)
        }
        // Large maps cost only the pages they touch.
        let large = try network.createDevMap(maxEntries: 1 << 26)
        try large.update(key: MapKey((1 << 26) - 1), ifindex: dev1.ifindex)
        #expect(try large.lookup(key: MapKey((1 << 26) - 1)) == dev1.ifindex)
        let a = try network.createDevMap(maxEntries: 4)
        let b = try network.createDevMap(maxEntries: 4, flags: 4)
        #expect(large.id == 1 && a.id == 2 && b.id == 3)
    }

    @Test func updateChecksInKernelOrder() throws {
        let map = try network.createDevMap(maxEntries: 4)
        #expect(throws: KernelErrno.EINVAL) { try map.update(key: 9, ifindex: 999, flags: 3) }  // flags first
        #expect(throws: KernelErrno.E2BIG) { try map.update(key: 4, ifindex: 999, flags: 1) }  // then the key
        #expect(throws: KernelErrno.E2BIG) { try map.update(key: MapKey(UInt32.max), ifindex: dev1.ifindex) }
        #expect(throws: KernelErrno.EEXIST) { try map.update(key: 0, ifindex: 999, flags: 1) }  // then NOEXIST
        #expect(throws: KernelErrno.EEXIST) { try map.update(key: 0, ifindex: dev1.ifindex, flags: 1) }
        #expect(throws: KernelErrno.EINVAL) { try map.update(key: 0, ifindex: 999) }  // then the ifindex
        try map.update(key: 0, ifindex: dev1.ifindex, flags: 2)  // EXIST on an array slot is fine
        #expect(try map.lookup(key: 0) == dev1.ifindex)
        // A bad ifindex leaves the slot as it was.
        #expect(throws: KernelErrno.EINVAL) { try map.update(key: 0, ifindex: 999) }
        #expect(try map.lookup(key: 0) == dev1.ifindex)
        try map.update(key: 0, ifindex: dev2.ifindex, flags: 0)
        #expect(try map.lookup(key: 0) == dev2.ifindex)
        // Ifindex 0 clears the slot.
        try map.update(key: 0, ifindex: 0)
        #expect(throws: KernelErrno.ENOENT) { try map.lookup(key: 0) }
        network.quiesceAll()
        #expect(network.pendingRetiredCount == 0)
    }

    @Test func deleteLookupAndNextKey() throws {
        let map = try network.createDevMap(maxEntries: 3)
        #expect(throws: KernelErrno.EINVAL) { try map.delete(key: 3) }
        try map.delete(key: 1)  // empty slot: fine
        try map.update(key: 1, ifindex: dev1.ifindex)
        try map.delete(key: 1)
        #expect(throws: KernelErrno.ENOENT) { try map.lookup(key: 1) }
        #expect(throws: KernelErrno.ENOENT) { try map.lookup(key: 3) }
        #expect(try map.nextKey(after: nil) == 0)
        #expect(try map.nextKey(after: 3) == 0)
        #expect(try map.nextKey(after: MapKey(UInt32.max)) == 0)
        #expect(try map.nextKey(after: 0) == 1)  // empty slots are not skipped
        #expect(try map.nextKey(after: 1) == 2)
        #expect(throws: KernelErrno.ENOENT) { try map.nextKey(after: 2) }
    }

    @Test func readOnlyAndWriteOnlyMaps() throws {
        let ro = try network.createDevMap(maxEntries: 2, flags: 8)
        #expect(throws: KernelErrno.EPERM) { try ro.update(key: 0, ifindex: dev1.ifindex) }
        #expect(throws: KernelErrno.EPERM) { try ro.delete(key: 0) }
        #expect(throws: KernelErrno.ENOENT) { try ro.lookup(key: 0) }
        let wo = try network.createDevMap(maxEntries: 2, flags: 16)
        try wo.update(key: 0, ifindex: dev1.ifindex)
        #expect(throws: KernelErrno.EPERM) { try wo.lookup(key: 0) }
        #expect(throws: KernelErrno.EPERM) { try wo.nextKey(after: nil) }
    }

    @Test func unregisterClearsOnlyItsSlotsAndStaleIfindexFails() throws {
        let m1 = try network.createDevMap(maxEntries: 4)
        let m2 = try network.createDevMap(maxEntries: 2)
        try m1.update(key: 0, ifindex: dev1.ifindex)
        try m1.update(key: 1, ifindex: dev2.ifindex)
        try m1.update(key: 3, ifindex: dev1.ifindex)
        try m2.update(key: 1, ifindex: dev1.ifindex)
        network.unregister(dev1)
        #expect(throws: KernelErrno.ENOENT) { try m1.lookup(key: 0) }
        #expect(try m1.lookup(key: 1) == dev2.ifindex)
        #expect(throws: KernelErrno.ENOENT) { try m1.lookup(key: 3) }
        #expect(throws: KernelErrno.ENOENT) { try m2.lookup(key: 1) }
        #expect(throws: KernelErrno.EINVAL) { try m1.update(key: 2, ifindex: dev1.ifindex) }
        #expect(network.pendingRetiredCount == 3)
        network.quiesceAll()
        #expect(network.pendingRetiredCount == 0)
    }

    @Test func deviceRegistryAssignsIfindexes() throws {
        let net = Network()
        let a = try net.addDevice(name: "x", ifindex: 2, transmitter: nil)
        let b = try net.addDevice(name: "y", transmitter: nil)
        let c = try net.addDevice(name: "z", transmitter: nil)
        #expect(a.ifindex == IfIndex(2) && b.ifindex == IfIndex(1) && c.ifindex == IfIndex(3))
        #expect(throws: Network.DeviceError.ifindexInUse(2)) {
            try net.addDevice(name: "w", ifindex: 2, transmitter: nil)
        }
        #expect(throws: Network.DeviceError.nameInUse("x")) { try net.addDevice(name: "x", transmitter: nil) }
    }
}
