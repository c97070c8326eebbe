import XDPEmuCore

/// A driver's RX refill, in batches as a NAPI driver does it: take buffers from the worker's pool, set the
/// received length, push them on the port's RX ring. No packet bytes are copied: the scenarios write the frame
/// into every buffer of the pool once, at setup, and `FramePool.take` keeps the data at the headroom.
final class RxRefill {
    let scratch: UnsafeMutableBufferPointer<FrameID>

    init(batch: Int = CoreScenario.framesPerPoll) {
        scratch = .allocate(capacity: batch)
        scratch.initialize(repeating: FrameID(0))
    }

    deinit { scratch.deallocate() }

    /// Puts up to `count` (at most the batch size) frames of `length` bytes on `ring`; returns how many.
    @inline(__always)
    func refill(_ count: Int, from pool: FramePool, into ring: FrameRing, length: UInt32, ingress: IfIndex) -> Int {
        let batch = UnsafeMutableBufferPointer(rebasing: scratch[0..<count])
        let taken = pool.take(into: batch)
        for frame in batch[0..<taken] {
            let info = pool.info(frame)
            info.pointee.length = length
            info.pointee.missingBytes = 0
            info.pointee.ingress = ingress
        }
        let pushed = ring.push(contentsOf: UnsafeBufferPointer(rebasing: batch[0..<taken]))
        precondition(pushed == taken, "RX ring full")
        return pushed
    }
}
