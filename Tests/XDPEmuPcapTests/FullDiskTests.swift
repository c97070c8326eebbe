import Testing
import XDPEmuPcap

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Runs `body` with a directory on a tmpfs of `bytes` (root only), unmounted and removed afterwards.
func withSmallFilesystem(bytes: Int, _ body: (TemporaryDirectory) throws -> Void) throws {
    let directory = TemporaryDirectory()
    try #require(mount("tmpfs", directory.path, "tmpfs", 0, "size=\(bytes)") == 0, "mount tmpfs: errno \(errno)")
    defer { umount2(directory.path, Int32(MNT_DETACH)) }
    try body(directory)
}

@Suite("a full disk")
struct FullDiskTests {
    @Test(
        "a write that fails leaves the file ending at its last whole record and counts the rest as missing",
        .enabled(if: geteuid() == 0, "mounting a small tmpfs needs root")
    )
    func fullDiskLeavesWholeRecords() throws {
        try withSmallFilesystem(bytes: 64 * 1024) { disk in try fillAndCheck(disk) }
    }

    private func fillAndCheck(_ disk: TemporaryDirectory) throws {
        let path = disk.file("full.pcap")
        // A small buffer, so that many flushes hit the full disk at different points of a record.
        let writer = try PcapWriter(path: path, bufferSize: 1000)
        var offered = [Frame]()
        for index in 0..<400 {
            let frame = Frame.make(index, length: 60 + (index * 37) % 700)
            offered.append(frame)
            frame.bytes.withUnsafeBytes {
                writer.write(timestampNanos: frame.timestampNanos, bytes: $0, originalLength: frame.originalLength)
            }
        }
        #expect(throws: PcapError.cannotWrite(path: path, errno: .noSpace)) { try writer.close() }
        let kept = writer.recordsWritten
        #expect(kept > 0 && writer.recordsMissing > 0)
        #expect(kept + writer.recordsMissing == offered.count)
        // The file is exactly the header and the first `kept` records: libpcap reads it to its end, no error.
        let expectedSize = 24 + offered.prefix(kept).reduce(0) { $0 + 16 + $1.bytes.count }
        #expect(fileSize(path) == expectedSize)
        #expect(writer.bytesWritten == expectedSize)
        let (records, error) = readWithLibpcap(path)
        #expect(error == nil)
        #expect(records == Array(offered.prefix(kept)))
    }

    @Test(
        "a header that does not fit leaves an empty file, and the writer throws",
        .enabled(if: geteuid() == 0, "mounting a small tmpfs needs root")
    )
    func fullDiskAtTheHeader() throws {
        try withSmallFilesystem(bytes: 4096) { disk in try fillHeader(disk) }
    }

    private func fillHeader(_ disk: TemporaryDirectory) throws {
        // Fill the filesystem first.
        let filler = open(disk.file("filler"), O_WRONLY | O_CREAT, 0o644)
        let block = [UInt8](repeating: 0, count: 4096)
        while block.withUnsafeBytes({ write(filler, $0.baseAddress, $0.count) }) > 0 {}
        close(filler)
        #expect(throws: PcapError.cannotWrite(path: disk.file("h.pcap"), errno: .noSpace)) {
            _ = try PcapWriter(path: disk.file("h.pcap"))
        }
        #expect(fileSize(disk.file("h.pcap")) == 0)
    }
}
