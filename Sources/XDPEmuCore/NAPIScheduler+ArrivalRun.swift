// A run of arrivals at one port: replay's recorded timing delivers the frames of a stretch of polls, then runs the
// polls (`NAPIScheduler.runSeries`). Between the two nothing looks at the port's ring or at the scheduler's counts,
// so the stretch's arrivals need not bring them up to date one frame at a time: a run gives each frame its
// sequence number and arrival time and puts it in its ring slot as `arrive` does, and `endArrivals` counts them all
// at once (the ring's count, the scheduler's and the port's arrivals).

extension NAPIScheduler {
    /// Arrivals at one port (`beginArrivals`), each as `arrive(_:port:at:schedulingPoll: false)` makes it, for a
    /// caller that knows the ring's room (`isFull`): a run drops no frame. Until `endArrivals`, the ring and the
    /// scheduler do not count the run's frames: nothing may poll the port, make another arrival or read the counts
    /// (`arrivals`) meanwhile.
    @frozen
    public struct ArrivalRun {
        public let port: Int
        @usableFromInline let slots: UnsafeMutablePointer<FrameID>
        @usableFromInline let capacity: Int
        @usableFromInline let infos: UnsafeMutablePointer<FrameInfo>
        /// The ring's slot of the next arrival.
        @usableFromInline var tail: Int
        /// The sequence number of the last arrival.
        @usableFromInline var sequence: UInt64
        /// Free slots of the ring.
        @usableFromInline var room: Int

        @inlinable
        init(
            port: Int, slots: UnsafeMutablePointer<FrameID>, capacity: Int, infos: UnsafeMutablePointer<FrameInfo>,
            tail: Int, sequence: UInt64, room: Int
        ) {
            self.port = port
            self.slots = slots
            self.capacity = capacity
            self.infos = infos
            self.tail = tail
            self.sequence = sequence
            self.room = room
        }

        /// Whether the ring has no room for another arrival.
        @inlinable public var isFull: Bool { room == 0 }

        /// `frame` arrives at `time` (the ring has room for it).
        @inlinable @inline(__always)
        public mutating func arrive(_ frame: FrameID, at time: Nanos) {
            precondition(room > 0, "an arrival at a full ring in an arrival run")
            room &-= 1
            sequence &+= 1
            let info = infos + Int(frame.rawValue)
            info.pointee.sequence = sequence
            info.pointee.arrival = time
            slots[tail] = frame
            tail &+= 1
            if tail == capacity { tail = 0 }
        }
    }

    /// A run of arrivals at `port`; `endArrivals` ends it.
    @inlinable
    public func beginArrivals(at port: Int) -> ArrivalRun {
        rings[port]._withUnsafeGuaranteedRef { ring in
            let count = ring.indices[1]
            var tail = ring.indices[0] &+ count
            if tail >= ring.capacity { tail &-= ring.capacity }
            return ArrivalRun(
                port: port, slots: ring.slots, capacity: ring.capacity,
                infos: pool._withUnsafeGuaranteedRef { $0.storage.infos }, tail: tail,
                sequence: state.pointee.arrivals, room: ring.capacity &- count)
        }
    }

    /// Counts the arrivals of `run`, begun by `beginArrivals` with no arrival at any port since.
    @inlinable
    public func endArrivals(_ run: ArrivalRun) {
        let arrived = run.sequence &- state.pointee.arrivals
        state.pointee.arrivals = run.sequence
        arrivedByPort[run.port] &+= arrived
        rings[run.port]._withUnsafeGuaranteedRef { $0.indices[1] &+= Int(truncatingIfNeeded: arrived) }
    }
}
