import Foundation
import Synchronization

/// Event lines on their way from the live loops to the control server's `events` clients.
///
/// The loops (any worker's thread) publish whole JSON lines, formatted by their `EventLog`, only while a client
/// follows (`hasSubscribers`: workers record events only then, or when an event log file is written); the control
/// server's thread takes them. The buffer is bounded: lines that do not fit are counted as lost, never queued, so
/// a slow client costs the datapath nothing and memory stays flat.
public final class EventFeed: @unchecked Sendable {
    // @unchecked Sendable: `buffer` is guarded by `lock`.
    /// Bytes held at most between two takes.
    public static let capacity = 4 << 20

    private struct Buffer {
        var bytes: [UInt8] = []
        var lost: UInt64 = 0
    }

    // A pthread mutex (NSLock) rather than Synchronization's `Mutex`, so that ThreadSanitizer sees the ordering.
    private let lock = NSLock()
    private var buffer = Buffer()
    private let subscribers = Atomic<Int>(0)

    public init() {}

    /// Whether some client follows the events.
    public var hasSubscribers: Bool { subscribers.load(ordering: .relaxed) > 0 }

    func subscribe() { subscribers.add(1, ordering: .relaxed) }
    func unsubscribe() { subscribers.subtract(1, ordering: .relaxed) }

    /// Adds whole lines (each ending with a newline).
    func publish(_ lines: ArraySlice<UInt8>, count: Int) {
        lock.withLock {
            if buffer.bytes.count + lines.count > Self.capacity {
                buffer.lost &+= UInt64(count)
            } else {
                buffer.bytes.append(contentsOf: lines)
            }
        }
    }

    /// Takes the lines published since the last take, and how many lines were lost meanwhile.
    func take() -> (bytes: [UInt8], lost: UInt64) {
        lock.withLock {
            defer { buffer = Buffer() }
            return (buffer.bytes, buffer.lost)
        }
    }
}
