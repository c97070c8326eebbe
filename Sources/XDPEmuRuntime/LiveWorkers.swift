import Dispatch
import Foundation
import Synchronization
import XDPEmuOS

// The live loops of a run, one per worker (simulated CPU, `--workers`). The primary loop runs on the caller's
// thread (the one that watches the signals); every other loop runs on a thread of its own, reading the TAPs of
// its CPU's ports. The primary's end (a signal, a stop request, `--duration`, a failure) stops the others; a
// failing secondary stops the primary through the run's stop request. Each loop then polls its own rings empty on
// its own thread (`LiveLoop.drain`), and only once every thread has ended are the workers' quiescent points
// passed and the counters gathered (`finish`).

final class LiveWorkers: @unchecked Sendable {
    // @unchecked Sendable: `loops` and `stops` are fixed; each secondary loop is touched only by its thread until
    // `run` has joined it; failures are guarded by a mutex.
    let loops: [LiveLoop]
    /// The secondary loops' stop notifiers (loop i + 1's at i).
    private let stops: [EventNotifier]
    private let primaryStop: EventNotifier
    private let failures = Mutex<[RuntimeError]>([])

    init(loops: [LiveLoop], stops: [EventNotifier], primaryStop: EventNotifier) {
        precondition(stops.count == loops.count - 1)
        self.loops = loops
        self.stops = stops
        self.primaryStop = primaryStop
    }

    /// Runs every loop until the primary ends, then stops the others and waits for their threads (each has
    /// drained its rings). Throws the primary's failure, else the first secondary's.
    func run() throws(RuntimeError) -> LiveResult.Ending {
        let finished = DispatchGroup()
        let threads = loops.indices.dropFirst().map { index in
            finished.enter()
            return Thread { [self] in
                let loop = loops[index]
                do throws(RuntimeError) {
                    _ = try loop.run()
                } catch {
                    failures.withLock { $0.append(error) }
                    primaryStop.notify()
                }
                loop.drain()
                finished.leave()
            }
        }
        for (index, thread) in zip(1..., threads) {
            thread.name = "xdpemu-worker-\(index)"
            thread.start()
        }
        var ending = LiveResult.Ending.stopRequested
        var failure: RuntimeError?
        do throws(RuntimeError) {
            ending = try loops[0].run()
        } catch {
            failure = error
        }
        for stop in stops { stop.notify() }
        finished.wait()
        if let failure = failure ?? failures.withLock({ $0.first }) { throw failure }
        return ending
    }

    /// After `run`: the primary drains its rings, every worker passes its quiescent point, the counters of every
    /// loop are gathered.
    func finish() -> RunStatistics {
        loops[0].drain()
        return loops[0].finish(loops: loops)
    }

    /// Problems of the `--replay` traces, and outputs that could not be written, of every loop.
    var inputErrors: [String] { loops.flatMap(\.inputErrors) }
    var outputErrors: [String] { loops.flatMap(\.outputErrors) }

    /// The counters now, from any thread (the control socket's).
    func snapshot() -> RunStatistics { LiveLoop.snapshot(of: loops) }
}
