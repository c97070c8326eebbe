/// The tracepoints of the XDP redirect path, plus the emulator's own `drop` record (which frame was dropped and
/// why, so a drop capture can be matched with its reason).
public enum XDPEventKind: UInt8, Sendable, CaseIterable {
    case exception
    case redirect
    case redirectErr
    case redirectMap
    case redirectMapErr
    case devmapXmit
    case drop

    /// The tracepoint's name, as `perf list` shows it under `xdp:`.
    public var name: String {
        switch self {
        case .exception: "xdp_exception"
        case .redirect: "xdp_redirect"
        case .redirectErr: "xdp_redirect_err"
        case .redirectMap: "xdp_redirect_map"
        case .redirectMapErr: "xdp_redirect_map_err"
        case .devmapXmit: "xdp_devmap_xmit"
        case .drop: "drop"
        }
    }
}

/// One event with the kernel tracepoint's fields. Fields a tracepoint does not have are 0.
/// - `xdp_exception`: programID, action, ifindex
/// - `xdp_redirect*`: programID, action, ifindex, error, toIfindex, mapID, mapIndex
/// - `xdp_devmap_xmit`: mapID, action, mapIndex, drops, sent, fromIfindex, toIfindex, error
/// - `drop`: ifindex (the device that counted it), frame, reason
public struct XDPEvent: Sendable, Equatable {
    public var kind: XDPEventKind
    public var time: Nanos
    public var cpu: UInt32
    public var programID: UInt32
    public var action: UInt32
    public var ifindex: UInt32
    /// Negative errno, or 0.
    public var error: Int32
    public var toIfindex: UInt32
    public var fromIfindex: UInt32
    public var mapID: UInt32
    public var mapIndex: UInt32
    public var sent: Int32
    public var drops: Int32
    /// Ingress sequence number of the frame concerned (`drop`, and the redirect events), else 0.
    public var frame: UInt64
    /// Why a frame was dropped (`drop` only).
    public var reason: DropReason?

    @inlinable
    public init(
        kind: XDPEventKind, time: Nanos, cpu: UInt32, programID: UInt32 = 0, action: UInt32 = 0,
        ifindex: UInt32 = 0, error: Int32 = 0, toIfindex: UInt32 = 0, fromIfindex: UInt32 = 0,
        mapID: UInt32 = 0, mapIndex: UInt32 = 0, sent: Int32 = 0, drops: Int32 = 0, frame: UInt64 = 0,
        reason: DropReason? = nil
    ) {
        self.kind = kind
        self.time = time
        self.cpu = cpu
        self.programID = programID
        self.action = action
        self.ifindex = ifindex
        self.error = error
        self.toIfindex = toIfindex
        self.fromIfindex = fromIfindex
        self.mapID = mapID
        self.mapIndex = mapIndex
        self.sent = sent
        self.drops = drops
        self.frame = frame
        self.reason = reason
    }
}

/// A bounded, preallocated event buffer owned by one worker. Disabled, recording costs one load and a branch;
/// full, further events are counted as lost instead of growing memory. The owner drains it (e.g. after every
/// poll) on the worker's thread.
public final class EventRing: @unchecked Sendable {
    // @unchecked Sendable: used only on its worker's thread.
    @usableFromInline struct State {
        @usableFromInline var enabled: Bool
        @usableFromInline var count: Int
        @usableFromInline var lost: UInt64
    }

    public let capacity: Int
    @usableFromInline let storage: UnsafeMutablePointer<XDPEvent>
    @usableFromInline let state: UnsafeMutablePointer<State>

    public init(capacity: Int, enabled: Bool = false) {
        precondition(capacity > 0)
        self.capacity = capacity
        storage = allocateOnOwnCacheLines(XDPEvent.self, count: capacity)
        state = allocateOnOwnCacheLines(State.self)
        state.initialize(to: State(enabled: enabled, count: 0, lost: 0))
    }

    deinit {
        storage.deinitialize(count: state.pointee.count)
        storage.deallocate()
        state.deallocate()
    }

    /// Whether events are recorded.
    public var isEnabled: Bool {
        get { state.pointee.enabled }
        set { state.pointee.enabled = newValue }
    }

    @inlinable public var isRecording: Bool { state.pointee.enabled }

    /// Events that did not fit since the ring was created.
    public var lost: UInt64 { state.pointee.lost }
    public var count: Int { state.pointee.count }

    @inlinable
    public func record(_ event: XDPEvent) {
        let n = state.pointee.count
        guard n < capacity else {
            state.pointee.lost &+= 1
            return
        }
        (storage + n).initialize(to: event)
        state.pointee.count = n + 1
    }

    /// Hands every buffered event to `body` in order and empties the ring.
    public func drain(_ body: (XDPEvent) throws -> Void) rethrows {
        let n = state.pointee.count
        state.pointee.count = 0
        defer { storage.deinitialize(count: n) }
        for i in 0..<n { try body(storage[i]) }
    }

    /// The buffered events, for tests.
    public func takeAll() -> [XDPEvent] {
        var events = [XDPEvent]()
        drain { events.append($0) }
        return events
    }
}
