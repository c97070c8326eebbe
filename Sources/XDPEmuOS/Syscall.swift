// The one path by which XDPEmuOS makes system calls.
//
// Every wrapper in this module calls `retryingEINTR` with a closure in the libc convention (-1 and errno);
// CTapShim functions, which return -errno, are adapted by `negatedErrnoToMinusOne` inside that closure, except the
// bare per-frame system calls (`xdpemu_read`, `xdpemu_write`), which go through `retryingEINTRNegated` directly.
// (It has its own name: as an overload of `retryingEINTR` it would catch every closure returning Int, read(2)'s
// included, and take its -1 for -EPERM.)
// The helper reads errno immediately after the call, retries EINTR, and hands back "would block"
// (EAGAIN/EWOULDBLOCK) as a value, because on a non-blocking descriptor it is an ordinary outcome.

import Glibc
import SystemPackage

/// The outcome of a system call that did not fail: it produced a value, or it would have blocked.
public enum SyscallResult<Value> {
    /// The call completed and returned `Value`.
    case value(Value)
    /// The call returned EAGAIN/EWOULDBLOCK on a non-blocking descriptor.
    case wouldBlock
}

extension SyscallResult: Sendable where Value: Sendable {}
extension SyscallResult: Equatable where Value: Equatable {}

/// Calls `body` (a C function returning -1 and setting `errno` on failure) until it does not fail with EINTR.
///
/// - Returns: `.value(result)` on success, `.wouldBlock` for EAGAIN/EWOULDBLOCK.
/// - Throws: the `Errno` of any other failure.
@inline(__always)
public func retryingEINTR<T: FixedWidthInteger & SignedInteger>(
    _ body: () -> T
) throws(Errno) -> SyscallResult<T> {
    while true {
        let result = body()
        if result != -1 {
            return .value(result)
        }
        let err = Errno(rawValue: errno)
        switch err {
        case .interrupted: continue
        case .resourceTemporarilyUnavailable: return .wouldBlock  // EWOULDBLOCK == EAGAIN on Linux
        default: throw err
        }
    }
}

/// Like `retryingEINTR(_:)` for calls that never legitimately report "would block" (open, ioctl, mkdir...):
/// EAGAIN is thrown like any other error.
@inline(__always)
public func retryingEINTROrThrow<T: FixedWidthInteger & SignedInteger>(_ body: () -> T) throws(Errno) -> T {
    switch try retryingEINTR(body) {
    case .value(let value): return value
    case .wouldBlock: throw Errno.resourceTemporarilyUnavailable
    }
}

/// Adapts a CTapShim result (-errno on failure) to the libc convention (-1 and `errno`), for
/// `retryingEINTR(_:)`.
@inline(__always)
func negatedErrnoToMinusOne(_ result: Int32) -> Int32 {
    if result < 0 {
        errno = -result
        return -1
    }
    return result
}

/// `retryingEINTR(_:)` for CTapShim's bare system calls, which return -errno instead of setting `errno`
/// (`xdpemu_read`, `xdpemu_write`): the same outcomes without the round trip through `errno`.
@inline(__always)
public func retryingEINTRNegated(_ body: () -> Int) throws(Errno) -> SyscallResult<Int> {
    while true {
        let result = body()
        if result >= 0 { return .value(result) }
        switch Int32(truncatingIfNeeded: -result) {
        case EINTR: continue
        case EAGAIN: return .wouldBlock  // EWOULDBLOCK == EAGAIN on Linux
        case let code: throw Errno(rawValue: code)
        }
    }
}
