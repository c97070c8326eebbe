/// Whether a poll advances the worker's virtual time per frame (`Worker.frameCost`). A type rather than a Bool
/// argument: the compiler specialises the poll loop per type, so the usual case (no cost per frame) carries no
/// clock work and no test of a flag in its loop.
@usableFromInline protocol PollClock { static var advances: Bool { get } }
/// `frameCost` is 0: the clock stands still during the poll.
@usableFromInline enum FixedClock: PollClock { @inlinable static var advances: Bool { false } }
/// `frameCost` is not 0: the clock advances by it per frame.
@usableFromInline enum AdvancingClock: PollClock { @inlinable static var advances: Bool { true } }

/// A device's attached program as a worker runs it: one NAPI poll at a time. `ProgramRunner` is the one
/// subclass. A class rather than a protocol, so that a worker can call it through an unretained reference
/// (`NetDevice.polledProgram`, an `Unmanaged`), without a retain and a release around every poll.
public class AttachedProgram: @unchecked Sendable {
    // @unchecked Sendable: handed to the worker thread that polls the device, and used only there.

    /// The program id events report.
    public let programID: UInt32

    @usableFromInline
    init(programID: UInt32) { self.programID = programID }

    /// Runs the program on up to `budget` frames of `device`'s RX ring (see `Worker.poll`).
    public func poll(device: NetDevice, worker: Worker, budget: Int) -> Int {
        preconditionFailure("AttachedProgram.poll is implemented by ProgramRunner")
    }

    /// `count` polls one after the other, the i-th at `times[i]` taking `sizes[i]` frames (see `Worker.pollSeries`).
    public func pollSeries(
        device: NetDevice, worker: Worker, times: UnsafePointer<Nanos>, sizes: UnsafePointer<Int>,
        count: Int
    ) {
        preconditionFailure("AttachedProgram.pollSeries is implemented by ProgramRunner")
    }

    /// Runs the program as a devmap entry's egress program on `count` frames bound for `device` and keeps, in
    /// order at the front of `frames`, those it passes; returns their number (see `Worker.runEgress`).
    public func runEgress(frames: UnsafeMutablePointer<FrameID>, count: Int, device: NetDevice, worker: Worker) -> Int {
        preconditionFailure("AttachedProgram.runEgress is implemented by ProgramRunner")
    }
}

/// Holds a program of a concrete type so that the worker's poll is specialised (and the program inlined) for it.
///
/// An override in a generic class is compiled once for every `Program`, so calling `Worker.run` from `poll`
/// directly would run the unspecialised loop (every program call through a witness table, ARC on each frame:
/// about 4x slower). Instead the initialiser, inlinable like `Network.attach`, forms the two closures in the
/// module that knows the concrete type, where the compiler specialises `Worker.run` and `Worker.runSeries` and
/// inlines the program; `poll` and `pollSeries` only call them.
public final class ProgramRunner<Program: XDPProgram>: AttachedProgram, @unchecked Sendable {
    /// The program's value, on cache lines of its own (`allocateOnOwnCacheLines`): a program may change its state
    /// with every frame, and the runners of two ports polled by two workers, allocated one after the other, would
    /// otherwise share a line. Only the worker polling the device touches it (see `Worker`).
    @usableFromInline let storage: UnsafeMutablePointer<Program>
    @usableFromInline let specialisedPoll: (ProgramRunner<Program>, NetDevice, Worker, Int) -> Int
    @usableFromInline let specialisedPollSeries:
        (
            ProgramRunner<Program>, NetDevice, Worker, UnsafePointer<Nanos>,
            UnsafePointer<Int>, Int
        ) -> Void
    @usableFromInline let specialisedEgress:
        (ProgramRunner<Program>, UnsafeMutablePointer<FrameID>, Int, NetDevice, Worker) -> Int

    @inlinable
    public init(_ program: Program, programID: UInt32) {
        storage = allocateOnOwnCacheLines(Program.self)
        storage.initialize(to: program)
        specialisedPoll = { runner, device, worker, budget in
            worker.run(&runner.storage.pointee, programID: runner.programID, device: device, budget: budget)
        }
        specialisedPollSeries = { runner, device, worker, times, sizes, count in
            worker.runSeries(
                &runner.storage.pointee, programID: runner.programID, device: device, times: times,
                sizes: sizes, count: count)
        }
        specialisedEgress = { runner, frames, count, device, worker in
            worker.runEgress(
                &runner.storage.pointee, programID: runner.programID, frames: frames, count: count, device: device)
        }
        super.init(programID: programID)
    }

    deinit {
        storage.deinitialize(count: 1)
        storage.deallocate()
    }

    /// The attached program (read or changed between polls, on the thread that polls the device).
    public var program: Program {
        get { storage.pointee }
        set { storage.pointee = newValue }
    }

    override public func poll(device: NetDevice, worker: Worker, budget: Int) -> Int {
        specialisedPoll(self, device, worker, budget)
    }

    override public func pollSeries(
        device: NetDevice, worker: Worker, times: UnsafePointer<Nanos>,
        sizes: UnsafePointer<Int>, count: Int
    ) {
        specialisedPollSeries(self, device, worker, times, sizes, count)
    }

    override public func runEgress(
        frames: UnsafeMutablePointer<FrameID>, count: Int, device: NetDevice, worker: Worker
    ) -> Int {
        specialisedEgress(self, frames, count, device, worker)
    }
}
