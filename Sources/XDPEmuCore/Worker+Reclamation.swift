import Synchronization

// The quiescent point, phase 3 of every poll: the end of the worker's read-side critical section over devmap
// entries (RCU's `rcu_read_unlock` at the end of the NAPI poll). Entries the control plane retired since the
// previous quiescent point are no longer reachable from any slot, and this worker holds none of them any more, so
// it sends its own queue of each (`dev_map_flush_old`), clears its own flush mark for the key, moves its transmit
// counters into the map and says so; the control plane releases an entry once every worker has (RetireLog.swift,
// DevMap.swift). Runs after the flush, so every published entry's queue is empty by then.

extension Worker {
    /// The quiescent point (end of a poll): sends this worker's queues of the entries retired since the previous
    /// one and tells the control plane, which releases an entry once every worker is done with it. Takes no lock
    /// and allocates nothing (see RetireLog.swift). Call it also when a worker goes idle, so retired entries do
    /// not wait for its next poll.
    ///
    /// Inlinable, so that a poll compiled in another module tests for retired entries without a call (there are
    /// none at nearly every poll).
    @inlinable
    public func quiescentPoint() {
        let latest = publishedEpoch.pointee.load(ordering: .acquiring)
        if _slowPath(latest != lastSeenEpoch) { passQuiescentPoint(latest) }
    }

    /// `quiescentPoint` when entries were retired since the previous one (`latest` is the published epoch).
    @usableFromInline @inline(never)
    func passQuiescentPoint(_ latest: UInt64) {
        retireLog.forEachRetired(after: lastSeenEpoch, upTo: latest) { entry in
            entry.map._withUnsafeGuaranteedRef { map in
                if entry.device._withUnsafeGuaranteedRef({ $0.transmitter != nil }) {
                    map.clearFlushMark(entry.key, cpu: cpu)
                    transmitBulk(entry, flags: .flush)
                }
                // This worker is done with the entry: its counters go to the map, leaving the block clean.
                map.foldTransmitCounters(of: entry, cpu: cpu)
            }
        }
        lastSeenEpoch = latest
        retireLog.pass(latest)
    }
}
