import XDPEmuCore

/// A driver's RX refill, in batches as a NAPI driver does it: take buffers from the worker's pool, set the
/// received length, push them on the port's RX ring. No packet bytes are copied: the scenarios write the frame
/// into every buffer of the pool once, at setup, and `FramePool.take` keeps the data at the headroom.
final class RxRefill {
    let batch: Int

    init(batch: Int = CoreScenario.framesPerPoll) { self.batch = batch }

    /// Puts up to `count` (at most the batch size) frames of `length` bytes on `ring`; returns how many. One pass
    /// (`FramePool.take(_:onto:length:ingress:)`): pop a buffer index, write its record, store it in the ring.
    @inline(__always)
    func refill(_ count: Int, from pool: FramePool, into ring: FrameRing, length: UInt32, ingress: IfIndex) -> Int {
        precondition(count <= batch, "refill larger than the batch")
        precondition(min(count, pool.available) <= ring.capacity &- ring.count, "RX ring full")
        return pool.take(count, onto: ring, length: length, ingress: ingress)
    }
}
