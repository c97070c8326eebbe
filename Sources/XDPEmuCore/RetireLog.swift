import Synchronization

// Deferred free of devmap entries: epochs standing in for the kernel's RCU grace period (see DevMap.swift for
// what the devmap needs from it).
//
// Who runs what, and when:
// - The control plane (any thread, holding the network's control lock) retires the entry it has just swapped out
//   of a slot: it writes the entry into the log at the next epoch e, then publishes e (`retire`).
// - Each worker, at its quiescent point (end of every poll, on its own thread, without a lock), reads the
//   published epoch. When it moved since the worker last looked, the worker reads the entries of the new epochs
//   from the log, sends its own bulk queue of each (`dev_map_flush_old`), and publishes, on a cache line of its
//   own, the epoch it has passed (`Reader.pass`). A worker writes nothing else that another thread reads, takes
//   no lock, allocates nothing and touches no reference count: an update costs it a few cache misses (the
//   published epoch, the log slot, and its own passed epoch once the control plane has read it).
// - The control plane releases entries (`reclaim`, under the control lock: at every retire, and from
//   `Network.quiesceAll`, `Network.pendingRetiredCount` and `DevMap.statistics`) once every worker has passed their
//   epoch: no worker can still reach them (an entry leaves its slot before its epoch is published, and a worker
//   holds entries only inside a poll) and every worker's queue of them has been sent. Releases happen in epoch
//   order, on the control plane's thread, which also allocated the entry.
// Invariant: the log's live slots hold exactly the epochs (released, published]; a slot is written again only once
// its epoch is released, that is after every worker has read it, so workers read the log with plain loads. The log
// doubles when a lagging worker holds back more entries than it has slots; the old buffer is freed once every
// worker has passed the first epoch written to the new one (until then a worker may still be reading the old one).

/// The log of retired devmap entries, by epoch, and the epochs the workers have passed.
final class RetireLog {
    /// Slots of a new log (it doubles when a lagging worker holds back more retired entries).
    static let initialCapacity = 64
    /// UInt64s per 128-byte block: each shared word below sits alone on its pair of cache lines.
    static let wordsPerBlock = 16

    /// The last published epoch. Written by the control plane, read by every worker at its quiescent points.
    let published: UnsafeMutablePointer<Atomic<UInt64>>
    /// The current buffer's address, in the same block as `published` (both are read together, both written only
    /// by the control plane). A buffer is `[mask, slot 0, slot 1, ...]`; the entry of epoch e is at 1 + (e & mask).
    let bufferAddress: UnsafeMutablePointer<Atomic<UInt>>
    /// Worker i's passed epoch at `passed[i * wordsPerBlock]`: written by worker i, read by the control plane.
    let passed: UnsafeMutablePointer<Atomic<UInt64>>
    let workerCount: Int
    private let block: UnsafeMutableRawPointer

    // Guarded by the control lock.
    /// The last published epoch (the control plane's own copy).
    private var epoch: UInt64 = 0
    /// Every epoch up to this one is released.
    private var released: UInt64 = 0
    private var buffer: UnsafeMutablePointer<UInt>
    /// Buffers replaced by a larger one, each to be freed once every worker has passed `until`.
    private var oldBuffers: [(buffer: UnsafeMutablePointer<UInt>, until: UInt64)] = []
    /// Blocks of released entries, for new ones (see `DevMapEntry`); at most `maxSpareBlocks`, the rest freed.
    private var spareBlocks: [UnsafeMutableRawPointer] = []
    static let maxSpareBlocks = 64

    init(workers: Int) {
        workerCount = workers
        let bytes = (1 + workers) * Self.wordsPerBlock * MemoryLayout<UInt64>.stride
        block = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 128)
        block.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        published = block.bindMemory(to: Atomic<UInt64>.self, capacity: 1)
        bufferAddress = (block + MemoryLayout<UInt64>.stride).bindMemory(to: Atomic<UInt>.self, capacity: 1)
        passed = (block + Self.wordsPerBlock * MemoryLayout<UInt64>.stride)
            .bindMemory(to: Atomic<UInt64>.self, capacity: workers * Self.wordsPerBlock)
        buffer = Self.allocateBuffer(capacity: Self.initialCapacity)
        bufferAddress.pointee.store(UInt(bitPattern: buffer), ordering: .relaxed)  // before any worker exists
    }

    deinit {
        // Entries nobody released (a worker never passed their epoch).
        if released < epoch {
            for e in (released + 1)...epoch { DevMapEntry.from(bits: buffer[slot(e)]).release() }
        }
        for block in spareBlocks { block.deallocate() }
        buffer.deallocate()
        for old in oldBuffers { old.buffer.deallocate() }
        block.deallocate()
    }

    private static func allocateBuffer(capacity: Int) -> UnsafeMutablePointer<UInt> {
        let buffer = UnsafeMutablePointer<UInt>.allocate(capacity: 1 + capacity)
        buffer.initialize(repeating: 0, count: 1 + capacity)
        buffer[0] = UInt(capacity - 1)
        return buffer
    }

    private var capacity: Int { Int(buffer[0]) + 1 }

    private func slot(_ epoch: UInt64) -> Int { 1 + Int(truncatingIfNeeded: epoch & UInt64(buffer[0])) }

    /// A worker's view: plain pointers, so that reading the log costs the worker no reference counting.
    func reader(cpu: Int) -> Reader {
        Reader(published: published, bufferAddress: bufferAddress, passed: passed + cpu * Self.wordsPerBlock)
    }

    // MARK: Control plane (control lock held)

    /// Retires the entry whose bits were just swapped out of a slot (0: nothing) at the next epoch, and publishes
    /// the epoch. Entries every worker is done with are released first, so the log rarely grows.
    func retire(bits: UInt) {
        guard bits != 0 else { return }
        reclaim()
        let next = epoch + 1
        if next - released > UInt64(capacity) { grow(toHold: next) }
        buffer[slot(next)] = bits
        epoch = next
        // Releasing: a worker that reads this epoch (acquiring) also sees the slot just written and the slot
        // exchange that retired the entry.
        published.pointee.store(next, ordering: .releasing)
    }

    /// Doubles the buffer until the epochs (released, newest] fit, and publishes the new one.
    private func grow(toHold newest: UInt64) {
        var newCapacity = capacity * 2
        while newest - released > UInt64(newCapacity) { newCapacity *= 2 }
        let larger = Self.allocateBuffer(capacity: newCapacity)
        let mask = UInt64(newCapacity - 1)
        var e = released + 1
        while e < newest {
            larger[1 + Int(truncatingIfNeeded: e & mask)] = buffer[slot(e)]
            e += 1
        }
        // A worker that has not yet seen epoch `newest` may be reading the old buffer; once every worker has
        // passed it, none reads it any more.
        oldBuffers.append((buffer, newest))
        buffer = larger
        // Releasing: a worker that loads this address (acquiring) sees the copied slots.
        bufferAddress.pointee.store(UInt(bitPattern: larger), ordering: .releasing)
    }

    /// Releases, in epoch order, the entries whose epoch every worker has passed, keeping their blocks for new
    /// entries (up to `maxSpareBlocks`), and frees the buffers no worker reads any more.
    func reclaim() {
        guard released < epoch || !oldBuffers.isEmpty else { return }
        var minimum = epoch
        for cpu in 0..<workerCount {
            // Acquiring: pairs with the worker's releasing store, so its transmits of these entries' queues (and
            // its reads of the log) happen before the entries are released or the slots written again.
            minimum = min(minimum, passed[cpu * Self.wordsPerBlock].load(ordering: .acquiring))
        }
        while released < minimum {
            released += 1
            let entry = DevMapEntry.from(bits: buffer[slot(released)])
            entry._withUnsafeGuaranteedRef { entry in
                guard spareBlocks.count < Self.maxSpareBlocks else { return }
                assert(entry.queuesAreEmpty(workers: workerCount), "a released entry's queue holds frames or counters")
                entry.blockRecycled = true
                spareBlocks.append(entry.block.base)
            }
            entry.release()
        }
        if !oldBuffers.isEmpty {
            oldBuffers.removeAll { old in
                guard old.until <= minimum else { return false }
                old.buffer.deallocate()
                return true
            }
        }
    }

    /// A block a released entry left, for a new entry, or nil. Control lock held.
    func takeSpareBlock() -> UnsafeMutableRawPointer? {
        guard let block = spareBlocks.popLast() else { return nil }
        reusedBlocks += 1
        return block
    }

    /// Blocks handed to new entries so far.
    private(set) var reusedBlocks = 0

    /// Entries retired and not yet released (as of the last `reclaim`).
    var pendingCount: Int { Int(epoch - released) }

    /// Entries retired so far (one per epoch).
    var retiredCount: Int { Int(epoch) }

    // MARK: Workers

    /// What a worker's quiescent point reads and writes. Copy it into the worker.
    struct Reader {
        let published: UnsafeMutablePointer<Atomic<UInt64>>
        let bufferAddress: UnsafeMutablePointer<Atomic<UInt>>
        /// This worker's own block.
        let passed: UnsafeMutablePointer<Atomic<UInt64>>

        /// The last published epoch. Acquiring: the log slots of every epoch up to it (and the slot exchanges
        /// that retired their entries) are visible after it.
        @inline(__always)
        func publishedEpoch() -> UInt64 { published.pointee.load(ordering: .acquiring) }

        /// Calls `body` with the entry of every epoch in (since, latest], in order, where `latest` came from
        /// `publishedEpoch()`. The entries stay valid until this worker passes `latest`.
        @inline(__always)
        func forEachRetired(after since: UInt64, upTo latest: UInt64, _ body: (EntryBlock) -> Void) {
            // Acquiring: the buffer may be newer than `latest` (grown since), and its slots were written before
            // its address was published.
            let address = bufferAddress.pointee.load(ordering: .acquiring)
            let buffer = UnsafePointer<UInt>(bitPattern: address).unsafelyUnwrapped
            let mask = UInt64(buffer[0])
            var e = since
            while e != latest {
                e &+= 1
                body(EntryBlock(bits: buffer[1 &+ Int(truncatingIfNeeded: e & mask)]))
            }
        }

        /// Tells the control plane this worker is done with every entry up to `epoch`. Releasing: what the worker
        /// did with those entries (their queues sent, the log read) happens before the control plane, acquiring,
        /// releases them or reuses their slots.
        @inline(__always)
        func pass(_ epoch: UInt64) { passed.pointee.store(epoch, ordering: .releasing) }
    }
}
