// The lock that makes the programs of one object run one at a time when several workers (threads) run them: the
// object's maps, and an egress program's machine, are not made for concurrent use. A frame is a whole program
// run under it, so what the programs see is one order of their runs, as the kernel's maps' own locking gives.
// A pthread mutex rather than Synchronization.Mutex: `run` locks and unlocks around the interpreter without a
// closure over its `inout` context.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

final class RunLock: @unchecked Sendable {
    // @unchecked Sendable: the mutex is the synchronisation.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }
}
