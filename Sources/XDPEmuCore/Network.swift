import Synchronization

/// Everything one emulated kernel holds: its devices (by ifindex), its devmaps, the workers (simulated CPUs)
/// and the log of retired devmap entries waiting for their deferred free.
///
/// Control-plane operations (device registration and unregistration, map updates, releasing retired entries)
/// take one lock, the control lock; the datapath never does (see RetireLog.swift for the quiescent point).
public final class Network: @unchecked Sendable {
    // @unchecked Sendable: mutable state is guarded by `control` or is atomic.

    public let semantics: Semantics
    public let workerCount: Int
    /// The workers, one per simulated CPU. Worker i may run on its own thread.
    public private(set) var workers: [Worker] = []
    /// Retired entries by epoch; its control-plane side is guarded by `control`.
    let retireLog: RetireLog

    private let control = Mutex<Void>(())
    // The fields below are guarded by `control`.
    private var devicesByIndex: [UInt32: NetDevice] = [:]
    private var orderedDevices: [NetDevice] = []
    private var maps: [DevMap] = []
    private var nextMapID: UInt32 = 1
    private var nextProgramID: UInt32 = 1
    private var nextAutoIfindex: UInt32 = 1

    /// - Parameters:
    ///   - workers: simulated CPUs.
    ///   - poolCapacity: frames in each worker's pool.
    ///   - bufferSize: bytes per frame buffer, headroom included.
    ///   - maxBudget: the largest NAPI budget any poll will use.
    ///   - eventCapacity: events each worker buffers between drains.
    public init(
        semantics: Semantics = .v4_18, workers: Int = 1, poolCapacity: Int = 4096, bufferSize: Int = 2048,
        maxBudget: Int = 64, eventCapacity: Int = 65536
    ) {
        precondition(workers >= 1 && workers <= 64, "1...64 workers")
        self.semantics = semantics
        workerCount = workers
        retireLog = RetireLog(workers: workers)
        self.workers = (0..<workers).map { cpu in
            Worker(
                cpu: cpu, network: self, pool: FramePool(capacity: poolCapacity, bufferSize: bufferSize),
                eventCapacity: eventCapacity, maxBudget: maxBudget)
        }
    }

    /// Runs `body` holding the control lock.
    func withControlLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        try control.withLock { _ throws(E) -> T in try body() }
    }

    // MARK: Devices

    public enum DeviceError: Error, Equatable, CustomStringConvertible {
        case ifindexInUse(IfIndex)
        case nameInUse(String)

        public var description: String {
            switch self {
            case .ifindexInUse(let i): "ifindex \(i) is already in use"
            case .nameInUse(let n): "a device named \(n) already exists"
            }
        }
    }

    /// Registers an emulated device. Without an explicit ifindex the lowest unused one from 1 is given.
    @discardableResult
    public func addDevice(
        name: String, ifindex: IfIndex? = nil, mac: MACAddress? = nil, mtu: UInt32 = 1500,
        up: Bool = true, transmitter: (any XDPTransmitter)?,
        stack: any LocalStack = DiscardingStack(),
        rxHeadroom: Int = KernelConstants.xdpPacketHeadroom,
        ringSize: Int = 1024
    ) throws(DeviceError) -> NetDevice {
        try withControlLock { () throws(DeviceError) -> NetDevice in
            if orderedDevices.contains(where: { $0.name == name }) { throw .nameInUse(name) }
            let index: UInt32
            if let ifindex {
                guard ifindex != .none, devicesByIndex[ifindex.rawValue] == nil else { throw .ifindexInUse(ifindex) }
                index = ifindex.rawValue
            } else {
                while devicesByIndex[nextAutoIfindex] != nil { nextAutoIfindex += 1 }
                index = nextAutoIfindex
            }
            let address = mac ?? MACAddress(rawValue: 0x02_00_00_00_00_00 | UInt64(index))
            let device = NetDevice(
                ifindex: IfIndex(index), name: name, mac: address, mtu: mtu, up: up,
                transmitter: transmitter, stack: stack, rxHeadroom: rxHeadroom, ringSize: ringSize,
                workers: workerCount)
            devicesByIndex[index] = device
            orderedDevices.append(device)
            return device
        }
    }

    /// `dev_get_by_index`.
    public func device(ifindex: IfIndex) -> NetDevice? {
        withControlLock { devicesByIndex[ifindex.rawValue] }
    }

    func deviceLocked(ifindex: IfIndex) -> NetDevice? { devicesByIndex[ifindex.rawValue] }

    /// A registered device by name.
    public func device(named name: String) -> NetDevice? {
        withControlLock { orderedDevices.first { $0.name == name } }
    }

    /// Registered devices in registration order.
    public var devices: [NetDevice] { withControlLock { orderedDevices } }

    /// The device goes away (NETDEV_UNREGISTER): it can no longer be found by ifindex, and every devmap slot that
    /// points at it is cleared with compare-and-exchange (a concurrent update wins). Frames already queued for it
    /// are sent (and fail) at the deferred free. The caller drains the device's RX ring.
    public func unregister(_ device: NetDevice) {
        withControlLock {
            guard devicesByIndex[device.ifindex.rawValue] === device else { return }
            devicesByIndex[device.ifindex.rawValue] = nil
            orderedDevices.removeAll { $0 === device }
            device.registered.store(false, ordering: .releasing)
            for map in maps { map.unregisterLocked(device) }
        }
    }

    // MARK: Programs and maps

    /// Attaches `program` to `device` and returns its program id. Attach before polling starts.
    ///
    /// Inlinable so that the poll loop is specialised for `P` in the caller's module (see `ProgramRunner`).
    @inlinable @discardableResult
    public func attach<P: XDPProgram>(_ program: P, to device: NetDevice) -> UInt32 {
        let id = allocateProgramID()
        device.setProgram(ProgramRunner(program, programID: id))
        return id
    }

    @usableFromInline
    func allocateProgramID() -> UInt32 {
        withControlLock {
            defer { nextProgramID += 1 }
            return nextProgramID
        }
    }

    /// `BPF_MAP_CREATE` for BPF_MAP_TYPE_DEVMAP (and DEVMAP_HASH in the modern profile). Checks, in the kernel's
    /// order:
    /// - 4.18: both BPF_F_RDONLY and BPF_F_WRONLY (EINVAL: the syscall refuses the file mode before the map type
    ///   is asked); a hash map (EINVAL: no such map type); then, in the devmap's allocation, CAP_NET_ADMIN (EPERM);
    ///   max_entries 0, key_size != 4, value_size != 4, flags outside NUMA_NODE|RDONLY|WRONLY (EINVAL); a size
    ///   whose cost overflows the kernel's u32 page accounting (EINVAL); memory that cannot be had (ENOMEM).
    ///   (RLIMIT_MEMLOCK accounting, which 4.18 also applies, is not modelled.)
    /// - modern: the file mode (EINVAL); the attributes (`dev_map_alloc_check`: max_entries 0, key_size != 4,
    ///   value_size not 4 or 8, unknown flags: EINVAL) before CAP_NET_ADMIN (EPERM); a hash map over 2^31
    ///   entries (EINVAL); no cost limit, only memory (ENOMEM).
    public func createDevMap(
        maxEntries: UInt32, keySize: UInt32 = 4, valueSize: UInt32 = 4, flags: UInt32 = 0,
        capNetAdmin: Bool = true, type: DevMapType = .array
    ) throws(KernelErrno) -> DevMap {
        let mapFlags = MapFlags(rawValue: flags)
        guard !mapFlags.isSuperset(of: [.readOnly, .writeOnly]) else { throw .EINVAL }
        switch semantics {
        case .v4_18:
            guard type == .array else { throw .EINVAL }
            guard capNetAdmin else { throw .EPERM }
            guard maxEntries != 0, keySize == 4, valueSize == 4, MapFlags.devmapMask.isSuperset(of: mapFlags) else {
                throw .EINVAL
            }
            // dev_map_alloc's cost: slot pointers plus one flush bitmap per possible CPU, in bytes, must stay below
            // U32_MAX - PAGE_SIZE.
            let bitmapBytes = (UInt64(maxEntries) + 63) / 64 * 8
            let cost = UInt64(maxEntries) * 8 + bitmapBytes * UInt64(workerCount)
            guard cost < UInt64(UInt32.max) - 4096 else { throw .EINVAL }
        case .modern:
            guard maxEntries != 0, keySize == 4, valueSize == 4 || valueSize == 8,
                MapFlags.devmapMask.isSuperset(of: mapFlags)
            else { throw .EINVAL }
            guard capNetAdmin else { throw .EPERM }
            if type == .hash && maxEntries > 1 << 31 { throw .EINVAL }
        }
        return try withControlLock { () throws(KernelErrno) -> DevMap in
            guard
                let map = DevMap(
                    id: nextMapID, maxEntries: maxEntries, flags: mapFlags, network: self, type: type,
                    valueSize: valueSize)
            else {
                throw .ENOMEM
            }
            nextMapID += 1
            maps.append(map)
            return map
        }
    }

    /// A runner for `program` with a new program id, not attached to any device: a devmap entry's egress program
    /// (`DevMap.update(key:ifindex:flags:program:)`). Inlinable for the same reason as `attach`.
    @inlinable
    public func makeEgressProgram<P: XDPProgram>(_ program: P) -> AttachedProgram {
        ProgramRunner(program, programID: allocateProgramID())
    }

    /// Every devmap, in creation order.
    public var devMaps: [DevMap] { withControlLock { maps } }

    // MARK: Deferred reclamation

    /// Retires the entry whose bits were just swapped out of a slot (0: nothing). Control lock held.
    func retireLocked(bits: UInt) { retireLog.retire(bits: bits) }

    /// Releases the retired entries every worker is done with. Control lock held.
    func reclaimLocked() { retireLog.reclaim() }

    /// Entries retired and not yet released, once those every worker is done with are released (for tests).
    public var pendingRetiredCount: Int {
        withControlLock {
            retireLog.reclaim()
            return retireLog.pendingCount
        }
    }

    /// Entries retired so far: swapped out of a slot by an update, a delete or a device's unregistration (for tests).
    public var retiredEntryCount: Int { withControlLock { retireLog.retiredCount } }

    /// New entries that took over the block of a released one (for tests; see `DevMapEntry`).
    public var reusedEntryBlockCount: Int { withControlLock { retireLog.reusedBlocks } }

    /// Runs the quiescent point of every worker, then releases the entries they are all done with. Only when no
    /// worker is polling: single-threaded drivers (replay, tests, the map batch tool) call it between polls and at
    /// the end.
    public func quiesceAll() {
        for worker in workers { worker.quiescentPoint() }
        withControlLock { retireLog.reclaim() }
    }
}
