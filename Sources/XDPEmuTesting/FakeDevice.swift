import XDPEmuCore

/// A scriptable `ndo_xdp_xmit` for tests: it records every call and answers from a script (send everything by
/// default; send only some; fail with an errno). Sent frames are recorded by content and returned to the pool.
public final class FakeTransmitter: XDPTransmitter, @unchecked Sendable {
    /// What the next call answers.
    public enum Response: Equatable, Sendable {
        case sendAll
        case send(Int)
        case fail(KernelErrno)
    }

    /// One ndo_xdp_xmit call.
    public struct Call: Equatable, Sendable {
        public var device: String
        public var count: Int
        public var sent: Int32
        public var flush: Bool
        public var time: Nanos
        public var cpu: Int
        /// Ingress sequence numbers of the frames handed over, in order.
        public var frames: [UInt64]
    }

    /// A frame the device put on the wire.
    public struct SentFrame: Equatable, Sendable {
        public var sequence: UInt64
        public var bytes: [UInt8]
        public var time: Nanos
        public var ingress: IfIndex
    }

    public private(set) var calls: [Call] = []
    public private(set) var sentFrames: [SentFrame] = []
    /// Responses used in order; when empty, `defaultResponse`.
    public var script: [Response] = []
    public var defaultResponse: Response = .sendAll
    /// Called at the start of every xmit (e.g. to change the map from "another CPU" mid-poll).
    public var onTransmit: ((Worker) -> Void)?

    public init(script: [Response] = []) { self.script = script }

    public func xdpXmit(
        _ frames: UnsafeMutableBufferPointer<FrameID>, flags: XmitFlags, device: NetDevice,
        worker: Worker
    ) -> Int32 {
        onTransmit?(worker)
        let response = script.isEmpty ? defaultResponse : script.removeFirst()
        let sent: Int32
        switch response {
        case .sendAll: sent = Int32(frames.count)
        case .send(let n): sent = Int32(min(n, frames.count))
        case .fail(let errno): sent = -errno.rawValue
        }
        calls.append(
            Call(
                device: device.name, count: frames.count, sent: sent, flush: flags.contains(.flush),
                time: worker.now, cpu: worker.cpu,
                frames: frames.map { worker.pool.info($0).pointee.sequence }))
        if sent > 0 {
            for frame in frames[0..<Int(sent)] {
                let info = worker.pool.info(frame).pointee
                sentFrames.append(
                    SentFrame(
                        sequence: info.sequence, bytes: Array(worker.pool.packet(frame)),
                        time: worker.now, ingress: info.ingress))
                worker.pool.give(frame)
            }
        }
        return sent
    }

    /// The `count`s of the calls, in order (bulk sizes).
    public var bulkSizes: [Int] { calls.map(\.count) }
}

/// A local stack that records the frames XDP_PASS hands it, then frees them.
public final class RecordingStack: LocalStack, @unchecked Sendable {
    public private(set) var received: [(sequence: UInt64, bytes: [UInt8])] = []

    public init() {}

    public func receive(_ frame: FrameID, device: NetDevice, worker: Worker) {
        received.append((worker.pool.info(frame).pointee.sequence, Array(worker.pool.packet(frame))))
        worker.pool.give(frame)
    }
}

/// Builds frames and feeds them to devices' RX rings, numbering them in arrival order.
public struct FrameInjector {
    public private(set) var nextSequence: UInt64 = 1

    public init() {}

    /// An Ethernet frame of `length` bytes (at least 14) with the given addresses and EtherType; the payload
    /// bytes are the low byte of their offset, so contents are recognisable.
    public static func ethernet(
        destination: MACAddress, source: MACAddress, etherType: UInt16 = 0x0800,
        length: Int = 64
    ) -> [UInt8] {
        precondition(length >= 14)
        var bytes = [UInt8](repeating: 0, count: length)
        let d = destination.rawValue
        let s = source.rawValue
        for i in 0..<6 {
            bytes[i] = UInt8(truncatingIfNeeded: d >> UInt64(8 * (5 - i)))
            bytes[6 + i] = UInt8(truncatingIfNeeded: s >> UInt64(8 * (5 - i)))
        }
        bytes[12] = UInt8(etherType >> 8)
        bytes[13] = UInt8(etherType & 0xff)
        for i in 14..<length { bytes[i] = UInt8(truncatingIfNeeded: i) }
        return bytes
    }

    /// Copies `bytes` into a frame of `worker`'s pool and puts it on `device`'s RX ring. Returns its sequence
    /// number, or nil when the ring (or the pool) is full.
    @discardableResult
    public mutating func inject(
        _ bytes: [UInt8], into device: NetDevice, worker: Worker, at time: Nanos = 0,
        headroom: Int? = nil
    ) -> UInt64? {
        let frame = bytes.withUnsafeBytes { worker.pool.take(copying: $0, headroom: headroom ?? device.rxHeadroom) }
        guard let frame else { return nil }
        let info = worker.pool.info(frame)
        info.pointee.ingress = device.ifindex
        info.pointee.arrival = time
        info.pointee.sequence = nextSequence
        guard device.rxRing.push(frame) else {
            worker.pool.give(frame)
            return nil
        }
        nextSequence += 1
        return info.pointee.sequence
    }

    /// Injects `count` frames of `length` bytes addressed from `source` to `destination`.
    public mutating func inject(
        count: Int, length: Int = 64, into device: NetDevice, worker: Worker,
        destination: MACAddress = MACAddress(0x02, 0, 0, 0, 0, 0xff),
        at time: Nanos = 0
    ) {
        let bytes = FrameInjector.ethernet(destination: destination, source: device.mac, length: length)
        for _ in 0..<count { precondition(inject(bytes, into: device, worker: worker, at: time) != nil, "ring full") }
    }
}

/// Programs for tests, written against the public API only.
public struct RedirectToKey: XDPProgram {
    public let map: DevMap
    public let key: UInt32
    public init(map: DevMap, key: UInt32) {
        self.map = map
        self.key = key
    }
    public func run(_ context: inout XDPContext) -> XDPAction { context.redirectMap(map, key: key) }
}

/// A program whose `run` is a closure, for tests that script per-frame behaviour.
public struct ClosureProgram: XDPProgram {
    public let body: (inout XDPContext) -> XDPAction
    public init(_ body: @escaping (inout XDPContext) -> XDPAction) { self.body = body }
    public func run(_ context: inout XDPContext) -> XDPAction { body(&context) }
}
