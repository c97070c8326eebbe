import Glibc
import SystemPackage
import Testing
import XDPEmuOS

@Suite struct FilesTests {
    @Test func makeDirectoriesCreatesParentsWithMode0755WhateverTheUmask() throws {
        var template = Array("/tmp/xdpemu-files-XXXXXX".utf8CString)
        let base = String(cString: template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }!)
        defer {
            _ = rmdir(base + "/a/b")
            _ = rmdir(base + "/a")
            _ = rmdir(base)
        }
        let old = umask(0o077)
        defer { umask(old) }
        try makeDirectories(base + "/a/b")
        for path in [base + "/a", base + "/a/b"] {
            var info = stat()
            #expect(stat(path, &info) == 0)
            #expect(info.st_mode & S_IFMT == S_IFDIR)
            #expect(info.st_mode & 0o777 == 0o755, "\(path)")
        }
        // Existing directories are fine; a file in the way is not.
        try makeDirectories(base + "/a/b")
        let fd = try createOutputFile(base + "/a/file")
        try fd.close()
        defer { _ = unlink(base + "/a/file") }
        #expect(throws: Errno.fileExists) { try makeDirectories(base + "/a/file/c") }
    }

    @Test func readRegularFileRefusesDirectoriesAndNamesTheFailingStep() throws {
        #expect(throws: FileReadError.notRegularFile(isDirectory: true)) { try readRegularFile("/tmp") }
        #expect(throws: FileReadError.notRegularFile(isDirectory: false)) { try readRegularFile("/dev/null") }
        #expect(throws: FileReadError.open(.noSuchFileOrDirectory)) { try readRegularFile("/nonexistent/xdpemu") }
        // A FIFO is refused at once, not waited on for a writer.
        let fifo = "/tmp/xdpemu-fifo-\(getpid())"
        #expect(mkfifo(fifo, 0o600) == 0)
        defer { _ = unlink(fifo) }
        #expect(throws: FileReadError.notRegularFile(isDirectory: false)) { try readRegularFile(fifo) }
        #expect(
            FileReadError.open(.noSuchFileOrDirectory).description
                == "cannot open the file: No such file or directory (errno 2)")
        let path = "/tmp/xdpemu-files-\(getpid()).txt"
        let fd = try createOutputFile(path)
        defer { _ = unlink(path) }
        _ = try fd.writeAll(Array("abc\n".utf8))
        try fd.close()
        #expect(try readRegularFile(path) == Array("abc\n".utf8))
    }
}
