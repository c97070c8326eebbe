/// An errno raised on the datapath (a failed redirect, enqueue or transmit), positive as the kernel's constants
/// are: EINVAL is 22. The kernel returns errnos negated and its tracepoints' `err` field holds them negated;
/// `negated` gives that value, and only the events use it. Not `KernelErrno`: an `ndo_xdp_xmit` may answer any
/// errno, and the events report it as it came.
@usableFromInline
struct DatapathErrno: Equatable {
    /// The errno, > 0.
    @usableFromInline let rawValue: Int32

    @inlinable init(_ errno: KernelErrno) { rawValue = errno.rawValue }

    /// The errno of what `ndo_xdp_xmit` returned (a count of frames sent, or a negative errno); nil for a count.
    @inlinable init?(xmitResult: Int32) {
        guard xmitResult < 0 else { return nil }
        rawValue = 0 &- xmitResult
    }

    /// The value a tracepoint's `err` field (`XDPEvent.error`) holds.
    @inlinable var negated: Int32 { 0 &- rawValue }

    /// Why a redirect that failed with this errno dropped its frame.
    @inlinable var dropReason: DropReason { DropReason.redirect(errno: rawValue) }

    @inlinable static var EINVAL: DatapathErrno { DatapathErrno(.EINVAL) }
    @inlinable static var EOPNOTSUPP: DatapathErrno { DatapathErrno(.EOPNOTSUPP) }
    @inlinable static var ENETDOWN: DatapathErrno { DatapathErrno(.ENETDOWN) }
    @inlinable static var EMSGSIZE: DatapathErrno { DatapathErrno(.EMSGSIZE) }
    @inlinable static var EOVERFLOW: DatapathErrno { DatapathErrno(.EOVERFLOW) }
}
