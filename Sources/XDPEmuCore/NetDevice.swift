import Synchronization

/// Flags of ndo_xdp_xmit.
public struct XmitFlags: OptionSet, Sendable {
    public var rawValue: UInt32
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }
    /// XDP_XMIT_FLUSH: the caller is done with this batch; the driver should kick its TX ring.
    @inlinable public static var flush: XmitFlags { XmitFlags(rawValue: 1) }
}

/// A device driver's `ndo_xdp_xmit(dev, n, frames, flags)`.
///
/// Returns the number of frames sent (0...n) or a negative errno. Ownership contract: the transmitter takes the
/// first `sent` frames (it gives each back to `worker.pool` once it has written it); the frames after them stay
/// with the caller, which frees them and counts them as drops. On an errno the transmitter keeps none. (In the
/// 4.18 kernel the driver frees the unsent frames itself; the accounting, drops = n - sent, is the same.)
/// Runs on the worker's thread, inside or right after a NAPI poll.
public protocol XDPTransmitter: AnyObject {
    func xdpXmit(
        _ frames: UnsafeMutableBufferPointer<FrameID>, flags: XmitFlags, device: NetDevice,
        worker: Worker
    ) -> Int32

    /// `bq_xmit_all` of `bulk` to `device`, whose transmitter this is (Worker+BulkQueue.swift). Not for a
    /// transmitter to implement: every one has the default, the worker's, compiled for its type (so that its
    /// `xdpXmit` is called directly, and can be inlined).
    func transmitBulk(_ bulk: DevMapBulk, device: NetDevice, flags: XmitFlags, worker: Worker)
}

/// Where XDP_PASS frames go: the port's local network stack. Takes ownership of the frame.
public protocol LocalStack: AnyObject {
    func receive(_ frame: FrameID, device: NetDevice, worker: Worker)
}

/// A local stack that only counts (the device's `passed` counter) and frees the frame.
public final class DiscardingStack: LocalStack {
    public init() {}
    public func receive(_ frame: FrameID, device: NetDevice, worker: Worker) { worker.pool.give(frame) }
}

/// An emulated network device: what the kernel's `struct net_device` is to the devmap. It has an ifindex, name,
/// MAC, MTU and up/down state, an optional XDP transmit (ndo_xdp_xmit), a local stack for XDP_PASS, an RX ring
/// that its NAPI poll drains, and an attached program.
///
/// MTU and state may change at any time from the control plane, so they are atomics; everything else is fixed
/// when the device is registered.
public final class NetDevice: @unchecked Sendable, CustomStringConvertible {
    // @unchecked Sendable: mutable parts are atomics; the RX ring and program belong to the polling worker.
    public let ifindex: IfIndex
    public let name: String
    public let mac: MACAddress
    /// `ndo_xdp_xmit`; nil for a device without XDP transmit (redirects to it fail with EOPNOTSUPP).
    public let transmitter: (any XDPTransmitter)?
    /// XDP_PASS sink.
    public let stack: any LocalStack
    /// Headroom its driver leaves in front of received frames (XDP_PACKET_HEADROOM unless configured).
    public let rxHeadroom: Int
    /// The RX ring its poll drains.
    public let rxRing: FrameRing
    /// Tracks whether the device is still registered.
    public var isRegistered: Bool { registered.load(ordering: .acquiring) }

    /// MTU and IFF_UP in one word, so that the forwarding limit derived from them is never out of step with
    /// either: bits 0-31 `forwardLimit`, bits 32-62 the MTU, bit 63 up. Changed only by `updateLinkState`.
    @usableFromInline let linkState: Atomic<UInt64>
    let registered = Atomic<Bool>(true)
    @usableFromInline let counters: UnsafeMutablePointer<UInt64>
    @usableFromInline let workerCount: Int
    /// The modern profile's bulk queues of frames redirected to the device, one per worker (see
    /// `DeviceQueueLayout`); each touched only by its worker.
    let deviceQueues: UnsafeMutableRawPointer
    /// The attached program's runner (set once at attach time, before polling starts; hence no dynamic
    /// exclusivity check on the read every poll makes). Replacing it while a worker polls the device is not
    /// supported: the worker calls the runner without holding a reference (`polledProgram`).
    @exclusivity(unchecked) public internal(set) var program: AttachedProgram? {
        didSet { polledProgram = program.map { Unmanaged.passUnretained($0) } }
    }
    /// `program` without a reference count, for `Worker.poll`: reading the strong property retains and releases
    /// the runner around every poll (~40 instructions); `program` keeps the runner alive while it is attached.
    @exclusivity(unchecked) var polledProgram: Unmanaged<AttachedProgram>?

    @usableFromInline
    func setProgram(_ runner: AttachedProgram) { program = runner }

    init(
        ifindex: IfIndex, name: String, mac: MACAddress, mtu: UInt32, up: Bool, transmitter: (any XDPTransmitter)?,
        stack: any LocalStack, rxHeadroom: Int, ringSize: Int, workers: Int
    ) {
        self.ifindex = ifindex
        self.name = name
        self.mac = mac
        self.transmitter = transmitter
        self.stack = stack
        self.rxHeadroom = rxHeadroom
        rxRing = FrameRing(capacity: ringSize)
        linkState = Atomic(Self.packLinkState(mtu: mtu, up: up, canTransmit: transmitter != nil))
        workerCount = workers
        counters = allocateOnOwnCacheLines(UInt64.self, count: workers * DeviceCounter.stride)
        counters.initialize(repeating: 0, count: workers * DeviceCounter.stride)
        deviceQueues = UnsafeMutableRawPointer.allocate(
            byteCount: workers * DeviceQueueLayout.stride, alignment: 128)
        deviceQueues.initializeMemory(as: UInt8.self, repeating: 0, count: workers * DeviceQueueLayout.stride)
    }

    deinit {
        counters.deallocate()
        deviceQueues.deallocate()
    }

    /// `cpu`'s bulk queue of frames to this device (modern profile).
    func deviceQueue(cpu: Int) -> UnsafeMutableRawPointer { deviceQueues + cpu * DeviceQueueLayout.stride }

    /// The MTU (at most `Int32.max`). May change at any time; the datapath sees the change at its next frame.
    public var mtu: UInt32 {
        get { UInt32(truncatingIfNeeded: linkState.load(ordering: .relaxed) >> 32) & 0x7FFF_FFFF }
        set {
            precondition(newValue <= UInt32(Int32.max), "MTU out of range")
            updateLinkState { state in state.mtu = newValue }
        }
    }

    /// IFF_UP.
    public var isUp: Bool {
        get { linkState.load(ordering: .relaxed) >> 63 != 0 }
        set { updateLinkState { state in state.up = newValue } }
    }

    /// The largest frame the forwarding check accepts: mtu + hard_header_len (14) + VLAN_HLEN (4).
    @inlinable public var maxForwardLength: UInt32 {
        UInt32(truncatingIfNeeded: linkState.load(ordering: .relaxed) >> 32) & 0x7FFF_FFFF
            &+ UInt32(KernelConstants.ethHeaderLength + KernelConstants.vlanHeaderLength)
    }

    /// The forwarding checks of the device's state folded into one number, for the datapath's fast path: a frame
    /// of `length` bytes passes the transmitter, up and MTU checks when `length <= forwardLimit`. It is
    /// `maxForwardLength` while the device is up and has an ndo_xdp_xmit, 0 otherwise (every frame then takes
    /// the slow path, which finds the errno).
    @inlinable var forwardLimit: UInt32 { UInt32(truncatingIfNeeded: linkState.load(ordering: .relaxed)) }

    /// The datapath's forwarding check of a frame of `length` bytes with `missingBytes` more on the wire (cut off
    /// by a capture's snap length): one comparison against `forwardLimit`. False does not say which check fails.
    @inlinable func passesForwardLimit(length: UInt32, missingBytes: UInt32) -> Bool {
        length &+ missingBytes <= forwardLimit
    }

    /// Changes MTU and up together with the forwarding limit. Relaxed: the word carries no other data.
    private func updateLinkState(_ change: (inout (mtu: UInt32, up: Bool)) -> Void) {
        var old = linkState.load(ordering: .relaxed)
        while true {
            var state = (mtu: UInt32(truncatingIfNeeded: old >> 32) & 0x7FFF_FFFF, up: old >> 63 != 0)
            change(&state)
            let new = Self.packLinkState(mtu: state.mtu, up: state.up, canTransmit: transmitter != nil)
            let (exchanged, current) = linkState.compareExchange(expected: old, desired: new, ordering: .relaxed)
            if exchanged { return }
            old = current
        }
    }

    private static func packLinkState(mtu: UInt32, up: Bool, canTransmit: Bool) -> UInt64 {
        precondition(mtu <= UInt32(Int32.max), "MTU out of range")
        let limit =
            up && canTransmit
            ? UInt64(mtu) + UInt64(KernelConstants.ethHeaderLength + KernelConstants.vlanHeaderLength) : 0
        return limit | UInt64(mtu) << 32 | (up ? 1 << 63 : 0)
    }

    @inlinable
    func count(_ counter: Int, cpu: Int, _ amount: UInt64 = 1) {
        counters[cpu &* DeviceCounter.stride &+ counter] &+= amount
    }

    @inlinable
    func countDrop(_ reason: DropReason, cpu: Int, _ amount: UInt64 = 1) {
        count(DeviceCounter.dropsBase + reason.rawValue, cpu: cpu, amount)
    }

    /// Counters summed over workers. Exact once the workers are stopped; a live snapshot otherwise.
    public var statistics: DeviceStatistics {
        var s = DeviceStatistics()
        for cpu in 0..<workerCount {
            let c = counters + cpu * DeviceCounter.stride
            s.rxPackets += c[DeviceCounter.rxPackets]
            s.rxBytes += c[DeviceCounter.rxBytes]
            s.txPackets += c[DeviceCounter.txPackets]
            s.txBytes += c[DeviceCounter.txBytes]
            s.passed += c[DeviceCounter.passed]
            s.redirected += c[DeviceCounter.redirected]
            s.xdpTx += c[DeviceCounter.xdpTx]
            s.cloned += c[DeviceCounter.cloned]
            s.bulkTransmits += c[DeviceCounter.bulkTransmits]
            s.bulkFrames += c[DeviceCounter.bulkFrames]
            for reason in DropReason.allCases {
                let n = c[DeviceCounter.dropsBase + reason.rawValue]
                if n > 0 { s.drops[reason, default: 0] += n }
            }
        }
        return s
    }

    public var description: String { "\(name)(\(ifindex))" }
}

/// A fixed-capacity FIFO of frames: a port's RX ring. Single producer and single consumer on one thread.
public final class FrameRing: @unchecked Sendable {
    // @unchecked Sendable: used only on the thread of the worker that polls the port.
    public let capacity: Int
    @usableFromInline let slots: UnsafeMutablePointer<FrameID>
    @usableFromInline let indices: UnsafeMutablePointer<Int>  // [0] head (next pop), [1] count

    public init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
        slots = allocateOnOwnCacheLines(FrameID.self, count: capacity)
        indices = allocateOnOwnCacheLines(Int.self, count: 2)
        indices.initialize(repeating: 0, count: 2)
    }

    deinit {
        slots.deallocate()
        indices.deallocate()
    }

    @inlinable public var count: Int { indices[1] }
    @inlinable public var isEmpty: Bool { indices[1] == 0 }
    @inlinable public var isFull: Bool { indices[1] == capacity }

    /// Appends a frame; false (and the frame is still the caller's) when the ring is full.
    @inlinable
    public func push(_ frame: FrameID) -> Bool {
        let n = indices[1]
        guard n < capacity else { return false }
        var tail = indices[0] &+ n
        if tail >= capacity { tail &-= capacity }
        slots[tail] = frame
        indices[1] = n &+ 1
        return true
    }

    /// Appends as many of `frames` as fit, in order; returns how many (the rest are still the caller's).
    @inlinable
    public func push(contentsOf frames: UnsafeBufferPointer<FrameID>) -> Int {
        let slots = self.slots
        let capacity = self.capacity
        let n = indices[1]
        let count = min(capacity &- n, frames.count)
        var tail = indices[0] &+ n
        if tail >= capacity { tail &-= capacity }
        for frame in frames[0..<count] {
            slots[tail] = frame
            tail &+= 1
            if tail == capacity { tail = 0 }
        }
        indices[1] = n &+ count
        return count
    }

    @inlinable
    public func pop() -> FrameID? { consumer.pop() }

    /// The ring's storage, for a consumer that pops frame after frame (the poll loop) without reloading the
    /// ring object's fields each time. Valid while the ring lives.
    @inlinable var consumer: Consumer { Consumer(slots: slots, indices: indices, capacity: capacity) }

    @usableFromInline
    struct Consumer {
        @usableFromInline let slots: UnsafeMutablePointer<FrameID>
        @usableFromInline let indices: UnsafeMutablePointer<Int>
        @usableFromInline let capacity: Int

        @inlinable
        init(slots: UnsafeMutablePointer<FrameID>, indices: UnsafeMutablePointer<Int>, capacity: Int) {
            self.slots = slots
            self.indices = indices
            self.capacity = capacity
        }

        /// Takes up to `limit` frames (all the ring holds, if fewer) off the ring into `destination`, in order;
        /// returns how many.
        @inlinable
        func pop(upTo limit: Int, into destination: UnsafeMutablePointer<FrameID>) -> Int {
            let n = indices[1]
            let count = min(n, limit)
            guard count > 0 else { return 0 }
            let head = indices[0]
            if count == 1 {
                // A poll of one frame (replay with recorded timing, a lightly loaded port): no copy to plan.
                destination.pointee = slots[head]
                let next = head &+ 1
                indices[0] = next == capacity ? 0 : next
                indices[1] = n &- 1
                return 1
            }
            let first = min(count, capacity &- head)
            copyFrames(from: slots + head, to: destination, count: first)
            var next = head &+ first
            if first < count {
                copyFrames(from: slots, to: destination + first, count: count &- first)
                next = count &- first
            }
            indices[0] = next == capacity ? 0 : next
            indices[1] = n &- count
            return count
        }

        /// Frames in the ring.
        @inlinable var count: Int { indices[1] }

        @inlinable
        func pop() -> FrameID? {
            guard indices[1] > 0 else { return nil }
            return removeFirst()
        }

        /// Takes the first frame off the ring, which must hold one (a poll whose size is known checks that once).
        @inlinable
        func removeFirst() -> FrameID {
            let n = indices[1]
            let head = indices[0]
            let frame = slots[head]
            let next = head &+ 1
            indices[0] = next == capacity ? 0 : next
            indices[1] = n &- 1
            return frame
        }
    }
}
