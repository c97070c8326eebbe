import SystemPackage

// Our own pcap writer, byte-identical to what libpcap's pcap_dump writes for a nanosecond-precision Ethernet handle
// (the tests compare against libpcap itself). Records are staged in one buffer that only ever holds whole records,
// so each flush leaves a valid file behind: a crash after a flush loses the unflushed tail, never the file.
// A write(2) that fails part way (a full disk) would leave the file ending inside a record, which tcpdump and
// libpcap refuse ("truncated dump file"): the writer then cuts the file back with ftruncate(2) to the end of the
// last record written whole, and counts every record that is not in the file, so the caller can say how many are
// missing. Only `drain` knows where the file ends (`fileSize`, `recordsInFile`); `write` keeps no extra state.
//
// `write` is @inlinable so that a capture loop in another module compiles it in place. Its fast path (the file is
// open, nothing has failed, the record fits in the buffer) stores a header and copies the bytes; everything else is
// the out-of-line `writeSlowly`. The counters it updates live behind a pointer: a stored `var` of a class touched
// from another module's inlined code would cost a run-time exclusivity check on every access.

/// Writes Ethernet frames to a classic pcap file with nanosecond timestamps, in host byte order.
///
/// `write` never allocates and makes a system call only when the buffer is full. A failed write(2) is remembered:
/// the file is cut back to its last whole record, later records are dropped (and counted in `recordsMissing`), and
/// the error is thrown by the next `flush()` or `close()`. Not thread-safe.
public final class PcapWriter {
    /// The file being written, as given to `init`.
    public let path: String
    /// Frames longer than this are cut to it; the original length is still recorded.
    public let snapLength: UInt32

    private var fd: FileDescriptor?
    @usableFromInline let buffer: UnsafeMutableRawBufferPointer
    private var failure: PcapError? {
        didSet { state.pointee.writable = fd != nil && failure == nil }
    }
    /// `snapLength` as an Int.
    @usableFromInline let snapLimit: Int
    /// Bytes on disk, all of them whole records (and the file header).
    private var fileSize = 0
    /// Records on disk.
    private var recordsInFile = 0
    /// Records given to `write` that are not in the file because a write failed.
    public private(set) var recordsMissing = 0

    /// What `write` reads and updates on every record.
    @usableFromInline
    struct State {
        /// Bytes of whole records staged in `buffer`.
        @usableFromInline var staged = 0
        @usableFromInline var recordCount = 0
        /// Open and without a failure: the fast path may write.
        @usableFromInline var writable = false
    }

    @usableFromInline let state: UnsafeMutablePointer<State>

    private var staged: Int {
        get { state.pointee.staged }
        set { state.pointee.staged = newValue }
    }

    /// The number of records accepted by `write` (on disk once flushed); after a failed write, the records in the
    /// file.
    public var recordsWritten: Int { state.pointee.recordCount }
    /// The size of the file once flushed: the header plus every accepted record (after a failed write, the file's
    /// size).
    public var bytesWritten: Int { fileSize + staged }

    /// Creates (or truncates) `path` and writes the file header at once, so the file is valid from the start.
    ///
    /// The file is opened with open(2) (`O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW`, mode 0644), so device nodes
    /// such as /dev/null work as outputs and are never replaced, and a symbolic link is refused (ELOOP). Outputs of
    /// a run are opened by the caller (XDPEmuOS's `createOutputFile`) and handed to `init(path:fileDescriptor:)`.
    public convenience init(path: String, snapLength: UInt32 = 262_144, bufferSize: Int = 1 << 20) throws(PcapError) {
        let fd: FileDescriptor
        do {
            fd = try systemCall {
                try FileDescriptor.open(
                    FilePath(path),
                    .writeOnly,
                    options: [.create, .truncate, .closeOnExec, .noFollow],
                    permissions: [.ownerReadWrite, .groupRead, .otherRead]
                )
            }
        } catch {
            throw .cannotOpen(path: path, errno: error)
        }
        try self.init(path: path, fileDescriptor: fd, snapLength: snapLength, bufferSize: bufferSize)
    }

    /// Writes to `fileDescriptor`, an empty file open for writing that `path` names in messages; the writer owns
    /// it from now on (closes it in `close`, also when this throws). Writes the file header at once.
    public init(
        path: String, fileDescriptor: FileDescriptor, snapLength: UInt32 = 262_144, bufferSize: Int = 1 << 20
    ) throws(PcapError) {
        precondition(snapLength > 0, "a snap length of 0 would drop every byte")
        precondition(bufferSize >= PcapFormat.fileHeaderSize, "the buffer must hold at least the file header")
        self.path = path
        self.snapLength = snapLength
        snapLimit = Int(snapLength)
        fd = fileDescriptor
        buffer = .allocate(byteCount: bufferSize, alignment: 16)
        state = .allocate(capacity: 1)
        state.initialize(to: State(writable: true))
        let header = buffer.baseAddress!
        header.storeBytes(of: PcapFormat.nanoMagic, as: UInt32.self)
        header.storeBytes(of: PcapFormat.versionMajor, toByteOffset: 4, as: UInt16.self)
        header.storeBytes(of: PcapFormat.versionMinor, toByteOffset: 6, as: UInt16.self)
        header.storeBytes(of: Int32(0), toByteOffset: 8, as: Int32.self)  // thiszone: timestamps are UTC
        header.storeBytes(of: UInt32(0), toByteOffset: 12, as: UInt32.self)  // sigfigs: unknown accuracy
        header.storeBytes(of: snapLength, toByteOffset: 16, as: UInt32.self)
        header.storeBytes(of: PcapFormat.ethernetLinkType, toByteOffset: 20, as: UInt32.self)
        staged = PcapFormat.fileHeaderSize
        try flush()
    }

    deinit {
        // Errors cannot be reported from here; callers who care call close() themselves.
        try? close()
        buffer.deallocate()
        state.deallocate()
    }

    /// Appends one frame: `min(bytes.count, snapLength)` bytes are stored, `originalLength` is recorded as the length
    /// on the wire.
    ///
    /// Timestamps are stored as 32-bit seconds (as libpcap does, so they wrap in 2106) plus nanoseconds.
    @inlinable @inline(__always)
    public func write(timestampNanos: UInt64, bytes: UnsafeRawBufferPointer, originalLength: Int) {
        handle.write(timestampNanos: timestampNanos, bytes: bytes, originalLength: originalLength)
    }

    /// What `write` works with, for a caller that keeps it in place of the writer: a capture loop in another
    /// module that reads a writer out of an object retains and releases it around the loop (a call may release
    /// the object), whereas these are plain pointers. Valid while the writer lives.
    @inlinable public var handle: Handle {
        Handle(
            writer: .passUnretained(self), base: buffer.baseAddress.unsafelyUnwrapped, capacity: buffer.count,
            state: state, snapLimit: snapLimit)
    }

    @frozen
    public struct Handle {
        @usableFromInline let writer: Unmanaged<PcapWriter>
        /// The writer's buffer, as its start and size (a buffer pointer's size is a test and a subtraction).
        @usableFromInline let base: UnsafeMutableRawPointer
        @usableFromInline let capacity: Int
        @usableFromInline let state: UnsafeMutablePointer<State>
        @usableFromInline let snapLimit: Int

        @inlinable
        init(
            writer: Unmanaged<PcapWriter>, base: UnsafeMutableRawPointer, capacity: Int,
            state: UnsafeMutablePointer<State>, snapLimit: Int
        ) {
            self.writer = writer
            self.base = base
            self.capacity = capacity
            self.state = state
            self.snapLimit = snapLimit
        }

        /// `PcapWriter.write`.
        @inlinable @inline(__always)
        public func write(timestampNanos: UInt64, bytes: UnsafeRawBufferPointer, originalLength: Int) {
            let capturedLength = min(bytes.count, snapLimit)
            let recordSize = 16 &+ capturedLength  // PcapFormat.recordHeaderSize (internal: not usable here) + data
            let staged = state.pointee.staged
            if state.pointee.writable && originalLength >= 0 && recordSize <= capacity &- staged {
                let record = base + staged
                PcapWriter.storeRecordHeader(at: record, timestampNanos, capturedLength, originalLength)
                if capturedLength > 0 {
                    (record + 16).copyMemory(from: bytes.baseAddress.unsafelyUnwrapped, byteCount: capturedLength)
                }
                state.pointee.staged = staged &+ recordSize
                state.pointee.recordCount &+= 1
                return
            }
            writer._withUnsafeGuaranteedRef {
                $0.writeSlowly(timestampNanos: timestampNanos, bytes: bytes, originalLength: originalLength)
            }
        }
    }

    /// `write` for every case its fast path leaves out: closed, failed, a full buffer, a record larger than it.
    @usableFromInline
    func writeSlowly(timestampNanos: UInt64, bytes: UnsafeRawBufferPointer, originalLength: Int) {
        precondition(fd != nil, "PcapWriter.write after close")
        precondition(originalLength >= 0, "negative original length")
        guard failure == nil else {
            recordsMissing += 1
            return
        }
        let capturedLength = min(bytes.count, Int(snapLength))
        let recordSize = PcapFormat.recordHeaderSize + capturedLength
        if staged + recordSize > buffer.count {
            drain()
            guard failure == nil else {
                recordsMissing += 1
                return
            }
        }
        if recordSize > buffer.count {
            writeDirectly(timestampNanos, bytes, capturedLength, originalLength)
            return
        } else {
            let record = buffer.baseAddress! + staged
            Self.storeRecordHeader(at: record, timestampNanos, capturedLength, originalLength)
            if capturedLength > 0 {
                (record + PcapFormat.recordHeaderSize).copyMemory(from: bytes.baseAddress!, byteCount: capturedLength)
            }
            staged += recordSize
        }
        state.pointee.recordCount += 1
    }

    /// Writes the staged records to the file; afterwards the file is a valid pcap holding every accepted record.
    ///
    /// Throws the first write error, including one hit by an earlier `write`.
    public func flush() throws(PcapError) {
        if fd != nil {
            drain()
        }
        if let failure {
            throw failure
        }
    }

    /// Flushes and closes the file. Calling it again does nothing.
    public func close() throws(PcapError) {
        guard let fd else {
            return
        }
        drain()
        self.fd = nil
        state.pointee.writable = false
        do {
            try systemCall { try fd.close() }
        } catch {
            failure = failure ?? .cannotClose(path: path, errno: error)
        }
        if let failure {
            throw failure
        }
    }

    /// Writes out the staged bytes. On failure remembers the error, cuts the file back to the last record written
    /// whole and counts the staged records that did not make it as missing.
    private func drain() {
        guard staged > 0, let fd else {
            return
        }
        let bytes = UnsafeRawBufferPointer(rebasing: buffer[..<staged])
        let stagedRecords = state.pointee.recordCount - recordsInFile
        staged = 0
        do {
            try fd.writeEverything(bytes)
            fileSize += bytes.count
            recordsInFile += stagedRecords
        } catch {
            // The buffer starts with the file header when nothing is on disk yet; it is all or nothing.
            var boundary = fileSize == 0 ? PcapFormat.fileHeaderSize : 0
            var whole = 0
            if boundary <= error.bytesWritten {
                while boundary + PcapFormat.recordHeaderSize <= error.bytesWritten {
                    let capturedLength = bytes.loadUnaligned(fromByteOffset: boundary + 8, as: UInt32.self)
                    let end = boundary + PcapFormat.recordHeaderSize + Int(capturedLength)
                    guard end <= error.bytesWritten else { break }
                    boundary = end
                    whole += 1
                }
            } else {
                boundary = 0
            }
            cutBack(fd, to: fileSize + boundary, keeping: whole, of: stagedRecords, errno: error.errno)
        }
    }

    /// After a failed write: truncates the file to `size`, which ends at a record boundary, and accounts for the
    /// `records - kept` records that are not in it.
    private func cutBack(_ fd: FileDescriptor, to size: Int, keeping kept: Int, of records: Int, errno: Errno) {
        // ftruncate(2) to a smaller size needs no space; should it fail all the same, the error below still says
        // the file is incomplete.
        _ = try? systemCall { try fd.resize(to: Int64(size)) }
        fileSize = size
        recordsInFile += kept
        recordsMissing += records - kept
        state.pointee.recordCount = recordsInFile
        failure = failure ?? .cannotWrite(path: path, errno: errno)
    }

    /// Writes a record too big for the buffer (which has just been drained): header and data, no copy.
    private func writeDirectly(
        _ timestampNanos: UInt64,
        _ bytes: UnsafeRawBufferPointer,
        _ capturedLength: Int,
        _ originalLength: Int
    ) {
        guard let fd else {
            return
        }
        // The closure touches no stored property: one that did would make every access to it in `write` pay for a
        // run-time exclusivity check.
        let failed = withUnsafeTemporaryAllocation(byteCount: PcapFormat.recordHeaderSize, alignment: 4) {
            header -> WriteFailure? in
            Self.storeRecordHeader(at: header.baseAddress!, timestampNanos, capturedLength, originalLength)
            do throws(WriteFailure) {
                try fd.writeEverything(UnsafeRawBufferPointer(header))
                try fd.writeEverything(UnsafeRawBufferPointer(rebasing: bytes[..<capturedLength]))
                return nil
            } catch {
                return error
            }
        }
        if let failed {
            cutBack(fd, to: fileSize, keeping: 0, of: 1, errno: failed.errno)
        } else {
            fileSize += PcapFormat.recordHeaderSize + capturedLength
            recordsInFile += 1
            state.pointee.recordCount = recordsInFile
        }
    }

    @inlinable @inline(__always)
    static func storeRecordHeader(
        at header: UnsafeMutableRawPointer,
        _ timestampNanos: UInt64,
        _ capturedLength: Int,
        _ originalLength: Int
    ) {
        let seconds = UInt32(truncatingIfNeeded: timestampNanos / 1_000_000_000)
        let nanoseconds = UInt32(truncatingIfNeeded: timestampNanos % 1_000_000_000)
        header.storeBytes(of: seconds, as: UInt32.self)
        header.storeBytes(of: nanoseconds, toByteOffset: 4, as: UInt32.self)
        header.storeBytes(of: UInt32(truncatingIfNeeded: capturedLength), toByteOffset: 8, as: UInt32.self)
        header.storeBytes(of: UInt32(clamping: originalLength), toByteOffset: 12, as: UInt32.self)
    }
}
