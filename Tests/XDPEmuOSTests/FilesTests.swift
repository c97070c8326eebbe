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
        #expect(throws: OutputFileError(path: base + "/a/file", reason: .wrongKind("a regular file, not a directory")))
        {
            try makeDirectories(base + "/a/file/c")
        }
    }

    @Test func createOutputFileRefusesASymbolicLinkAndLeavesItsTargetAlone() throws {
        let base = try temporaryDirectory()
        defer { removeTree(base) }
        let target = base + "/precious"
        let link = base + "/drops.pcap"
        let fd = try createOutputFile(target)
        _ = try fd.writeAll(Array("keep me".utf8))
        try fd.close()
        #expect(symlink(target, link) == 0)
        let refusal = OutputFileError(path: link, reason: .symbolicLink)
        #expect(throws: refusal) { try createOutputFile(link) }
        #expect(throws: refusal) { try checkOutputFile(link) }
        #expect(refusal.description.hasPrefix(link + ": refusing to write: it is a symbolic link"))
        #expect(try readRegularFile(target) == Array("keep me".utf8))
        // A dangling link is refused too (O_CREAT would otherwise create its target).
        #expect(symlink(base + "/nowhere", base + "/dangling") == 0)
        #expect(throws: OutputFileError(path: base + "/dangling", reason: .symbolicLink)) {
            try createOutputFile(base + "/dangling")
        }
        #expect(FileKind(at: base + "/nowhere") == .missing)
    }

    @Test func outputFilesAre0644AndDirectories0755WhateverTheUmask() throws {
        let base = try temporaryDirectory()
        defer { removeTree(base) }
        let old = umask(0o077)
        defer { umask(old) }
        try makeDirectories(base + "/out")
        let fd = try createOutputFile(base + "/out/f.pcap")
        try fd.close()
        try writeOutputFile(base + "/out/stats.json", Array("{}".utf8))
        for (path, mode) in [(base + "/out", 0o755), (base + "/out/f.pcap", 0o644), (base + "/out/stats.json", 0o644)] {
            var info = stat()
            #expect(stat(path, &info) == 0)
            #expect(Int(info.st_mode & 0o777) == mode, "\(path)")
        }
    }

    @Test func outputChecksNameThePathAndTheReasonInPlainWords() throws {
        let base = try temporaryDirectory()
        defer { removeTree(base) }
        #expect(throws: OutputFileError(path: base, reason: .wrongKind("a directory"))) { try checkOutputFile(base) }
        #expect(throws: OutputFileError(path: base, reason: .wrongKind("a directory"))) { try createOutputFile(base) }
        #expect(throws: OutputFileError(path: base + "/no/f", reason: .noParent(base + "/no"))) {
            try checkOutputFile(base + "/no/f")
        }
        let fifo = base + "/fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(throws: OutputFileError(path: fifo, reason: .wrongKind("a FIFO"))) { try createOutputFile(fifo) }
        // A missing directory is fine when its nearest existing ancestor is writable; a file in the way is not.
        try checkOutputDirectory(base + "/new/deeper")
        let fd = try createOutputFile(base + "/file")
        try fd.close()
        #expect(throws: OutputFileError.self) { try checkOutputDirectory(base + "/file") }
        #expect(throws: OutputFileError.self) { try checkOutputDirectory(base + "/file/sub") }
        // /dev/null stays a valid output.
        try createOutputFile("/dev/null").close()
        #expect(
            OutputFileError(path: "x", reason: .failed(step: "write", .noSpace)).description
                == "x: cannot write: No space left on device (errno 28)")
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

/// A fresh directory under /tmp (mkdtemp(3)).
private func temporaryDirectory() throws -> String {
    var template = Array("/tmp/xdpemu-files-XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
        throw Errno(rawValue: errno)
    }
    return String(cString: made)
}

/// Removes `path` and everything under it (links themselves, never their targets).
private func removeTree(_ path: String) {
    if let names = try? directoryEntries(path) {
        for name in names { removeTree(path + "/" + name) }
        _ = rmdir(path)
    } else {
        _ = unlink(path)
    }
}
