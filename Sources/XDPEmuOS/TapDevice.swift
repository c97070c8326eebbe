// TAP devices: the kernel end of every emulated port.
//
// Lifetime, as measured on Linux 6.x (see the tests in TapDeviceTests):
// - The TAP is created non-persistent. It exists exactly as long as its file descriptor is open: closing
//   the fd unregisters the interface, also after it was moved into another network namespace (the fd,
//   not the namespace, owns it).
// - While the interface is down (or has no carrier) `read` returns EAGAIN and `write` fails with EIO.
//   As soon as it is up in a namespace with IPv6 enabled the kernel sends router solicitations and MLD
//   reports through it; `HostSetup` disables IPv6 before bringing a host's TAP up for that reason.
// - If someone else deletes the interface while we hold the fd (`ip link del`, or deleting the
//   namespace it lives in, which deletes it rather than moving it back), the fd stays open but is dead:
//   epoll reports EPOLLERR (not EPOLLIN or EPOLLHUP) forever, and read and write fail with EBADFD
//   ("File descriptor in bad state"). That is `IOResult.gone`. The interface never comes back on that
//   fd; close it. Deleting a namespace while holding the fd is therefore a mistake: close first.

import CTapShim
import Glibc
import SystemPackage
import XDPEmuCore

/// The outcome of one read or write on a device. "Would block" and "the device is gone" are values.
public enum IOResult: Equatable, Sendable {
    /// That many bytes were read (one whole frame) or written.
    case transferred(Int)
    /// Nothing to read now (EAGAIN), or the device cannot take the frame now.
    case wouldBlock
    /// The interface behind the fd was deleted (EBADFD): the fd will never work again; close it.
    case gone
    /// Any other error. On a TAP, write fails with EIO while the interface is down.
    case failed(Errno)
}

/// Why a TAP could not be created.
public enum TapError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The requested name is not a valid interface name.
    case invalidName(NameError)
    /// open("/dev/net/tun") failed.
    case cannotOpenTun(Errno)
    /// An interface with that name exists: TUNSETIFF fails with EBUSY for a TAP held by another fd and
    /// with EINVAL for an interface of another kind.
    case nameInUse(String, Errno)
    /// ioctl(TUNSETIFF/TUNSETVNETHDRSZ/TUNSETOFFLOAD) or fcntl failed.
    case cannotCreate(name: String?, Errno)

    public var description: String {
        switch self {
        case .invalidName(let error):
            return error.description
        case .cannotOpenTun(let errno):
            switch errno {
            case .noSuchFileOrDirectory, .noSuchAddressOrDevice, .operationNotSupportedByDevice:
                return "cannot open /dev/net/tun: \(errno) (/dev/net/tun is missing: modprobe tun)"
            case .permissionDenied, .notPermitted:
                return "cannot open /dev/net/tun: \(errno) (needs CAP_NET_ADMIN: run as root)"
            default:
                return "cannot open /dev/net/tun: \(errno)"
            }
        case .nameInUse(let name, let errno):
            return "cannot create TAP \"\(name)\": an interface with that name already exists (\(errno))"
        case .cannotCreate(let name, let errno):
            let what = name.map { "TAP \"\($0)\"" } ?? "a TAP"
            if errno == .notPermitted {
                return "cannot create \(what): \(errno) (needs CAP_NET_ADMIN: run as root)"
            }
            return "cannot create \(what): \(errno)"
        }
    }
}

/// A non-persistent TAP interface in the root network namespace of this process, opened non-blocking.
///
/// Reads and writes move whole Ethernet frames (no packet-information header). With `virtioNetHeader`
/// each frame is preceded by a 12-byte `struct virtio_net_hdr` (see `virtioNetHeaderLength`) and the kernel
/// may hand over checksum-offloaded and TSO/GSO frames.
///
/// Not thread-safe: use one device from one thread (the datapath's poll thread).
public final class TapDevice {
    /// Bytes of `struct virtio_net_hdr` before each frame when created with `virtioNetHeader: true`.
    public static let virtioNetHeaderLength = Int(XDPEMU_VNET_HDR_LEN)

    /// The kernel-assigned interface name (the requested one, or "tapN").
    public private(set) var name: String
    /// The interface index in the namespace the TAP was created in, read right after creation. Moving the
    /// interface to another namespace may change it there.
    public let ifIndex: IfIndex
    /// Whether frames carry a virtio-net header.
    public let hasVirtioNetHeader: Bool
    private var descriptor: FileDescriptor?

    /// The open TAP fd, for registering with an `EventLoop`. `nil` after `close()`.
    public var fd: FileDescriptor? { descriptor }

    /// Creates a TAP: open("/dev/net/tun", O_RDWR|O_CLOEXEC), then xdpemu_tap_attach = ioctl(TUNSETIFF,
    /// IFF_TAP|IFF_NO_PI[|IFF_VNET_HDR]) [+ TUNSETVNETHDRSZ 12 + TUNSETOFFLOAD 0x0f] + O_NONBLOCK; then
    /// if_nametoindex(3).
    ///
    /// - Parameters:
    ///   - name: the interface name, or `nil` to let the kernel choose.
    ///   - virtioNetHeader: prefix frames with a virtio-net header and accept offloads.
    public init(name: String?, virtioNetHeader: Bool = false) throws(TapError) {
        if let name {
            do throws(NameError) {
                try InterfaceName.validate(name)
            } catch {
                throw .invalidName(error)
            }
        }
        let fd: Int32
        do throws(Errno) {
            fd = try retryingEINTROrThrow { open("/dev/net/tun", O_RDWR | O_CLOEXEC) }
        } catch {
            throw .cannotOpenTun(error)
        }
        var assigned = [CChar](repeating: 0, count: Int(XDPEMU_IFNAMSIZ))
        do throws(Errno) {
            _ = try retryingEINTROrThrow {
                negatedErrnoToMinusOne(
                    assigned.withUnsafeMutableBufferPointer { out in
                        xdpemu_tap_attach(fd, name, virtioNetHeader ? 1 : 0, out.baseAddress)
                    }
                )
            }
        } catch {
            _ = Glibc.close(fd)
            if let name, error == .resourceBusy || error == .invalidArgument, if_nametoindex(name) != 0 {
                throw .nameInUse(name, error)
            }
            throw .cannotCreate(name: name, error)
        }
        let kernelName = assigned.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        let index = if_nametoindex(kernelName)
        precondition(index != 0, "a TAP we hold open has no ifindex")
        self.name = kernelName
        self.ifIndex = IfIndex(rawValue: index)
        self.hasVirtioNetHeader = virtioNetHeader
        self.descriptor = FileDescriptor(rawValue: fd)
    }

    /// Records that the interface was renamed (`Link.rename`), after it was moved to another namespace, say.
    func renamed(to newName: String) { name = newName }

    deinit {
        close()
    }

    /// Reads one frame into `buffer` with read(2) (xdpemu_read: the system call without glibc's cancellation
    /// point). A frame longer than the buffer is truncated.
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        guard let descriptor else { preconditionFailure("read from a closed TapDevice \(name)") }
        return transfer { () throws(Errno) in
            try retryingEINTRNegated { xdpemu_read(descriptor.rawValue, buffer.baseAddress, buffer.count) }
        }
    }

    /// Writes one frame with write(2) (xdpemu_write: the system call without glibc's cancellation point). EIO
    /// means the interface is down; `.gone` that it was deleted.
    public func write(_ frame: UnsafeRawBufferPointer) -> IOResult {
        guard let descriptor else { preconditionFailure("write to a closed TapDevice \(name)") }
        return transfer { () throws(Errno) in
            try retryingEINTRNegated { xdpemu_write(descriptor.rawValue, frame.baseAddress, frame.count) }
        }
    }

    /// Reads one frame with readv(2): its virtio-net header into `header` (`virtioNetHeaderLength` bytes), the
    /// frame itself into `buffer`. The count includes the header. Only for a TAP with `hasVirtioNetHeader`.
    public func read(header: UnsafeMutableRawBufferPointer, into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
        guard let descriptor else { preconditionFailure("read from a closed TapDevice \(name)") }
        precondition(
            hasVirtioNetHeader && header.count == Self.virtioNetHeaderLength,
            "no virtio-net header on \(name)")
        var vectors = (
            iovec(iov_base: header.baseAddress, iov_len: header.count),
            iovec(iov_base: buffer.baseAddress, iov_len: buffer.count)
        )
        return withUnsafeMutablePointer(to: &vectors) { pointer in
            pointer.withMemoryRebound(to: iovec.self, capacity: 2) { iov in
                transfer { () throws(Errno) in try retryingEINTR { Glibc.readv(descriptor.rawValue, iov, 2) } }
            }
        }
    }

    /// Writes one frame preceded by its virtio-net header with writev(2) (one frame: a TAP takes each write as
    /// one). The count includes the header. Only for a TAP with `hasVirtioNetHeader`.
    public func write(header: UnsafeRawBufferPointer, frame: UnsafeRawBufferPointer) -> IOResult {
        guard let descriptor else { preconditionFailure("write to a closed TapDevice \(name)") }
        precondition(
            hasVirtioNetHeader && header.count == Self.virtioNetHeaderLength,
            "no virtio-net header on \(name)")
        var vectors = (
            iovec(iov_base: UnsafeMutableRawPointer(mutating: header.baseAddress), iov_len: header.count),
            iovec(iov_base: UnsafeMutableRawPointer(mutating: frame.baseAddress), iov_len: frame.count)
        )
        return withUnsafeMutablePointer(to: &vectors) { pointer in
            pointer.withMemoryRebound(to: iovec.self, capacity: 2) { iov in
                transfer { () throws(Errno) in try retryingEINTR { Glibc.writev(descriptor.rawValue, iov, 2) } }
            }
        }
    }

    /// Closes the fd with close(2). The interface disappears (it is not persistent). Idempotent.
    public func close() {
        guard let descriptor else { return }
        self.descriptor = nil
        // close(2) is not retried on EINTR on Linux: the fd is released either way.
        _ = Glibc.close(descriptor.rawValue)
    }

    /// Turns one retried system call (`retryingEINTR` or, for CTapShim's bare calls, `retryingEINTRNegated`) into
    /// the transfer's outcome.
    @inline(__always)
    private func transfer(_ call: () throws(Errno) -> SyscallResult<Int>) -> IOResult {
        do throws(Errno) {
            switch try call() {
            case .value(let count): return .transferred(count)
            case .wouldBlock: return .wouldBlock
            }
        } catch {
            return failure(error)
        }
    }

    private func failure(_ error: Errno) -> IOResult {
        if error.rawValue == EBADFD {
            return .gone
        }
        precondition(error != .badFileDescriptor, "EBADF on TAP \(name): fd closed behind our back")
        return .failed(error)
    }
}
