import XDPEmuCore
import XDPEmuOS

/// The far side of a port in live mode: its TAP. A frame the port transmits (or passes to a stack TAP) is
/// written to the TAP, so the kernel receives it there, in the host's namespace or in the root namespace.
///
/// A write that fails returns false, and the devmap counts the frame as unsent (`xmit_unsent`): EIO while the
/// interface is down, EAGAIN, or EBADFD once the interface was deleted behind our back. In that last case the
/// wire goes dead and reports it through `onGone`, once; the loop then unregisters the port after the current
/// poll (never inside it). Runs on the loop's thread only.
final class TapWire: Wire {
    let tap: TapDevice
    /// Called once when a write finds the TAP deleted.
    var onGone: (() -> Void)?
    private(set) var isDead = false

    init(tap: TapDevice) { self.tap = tap }

    func send(_ packet: UnsafeRawBufferPointer, missingBytes: UInt32, time: Nanos) -> Bool {
        guard !isDead, tap.fd != nil else { return false }
        switch tap.write(packet) {
        case .transferred:
            return true
        case .gone:
            markDead()
            return false
        case .wouldBlock, .failed:
            return false
        }
    }

    /// The TAP is gone or closed: refuse every later frame.
    func markDead() {
        guard !isDead else { return }
        isDead = true
        onGone?()
    }
}
