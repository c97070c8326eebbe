import Testing
import XDPEmuPcap

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

private let tcpdump = "/usr/bin/tcpdump"

@Suite("tcpdump")
struct TcpdumpTests {
    @Test(
        "tcpdump reads a file we wrote, one line per frame",
        .enabled(if: access(tcpdump, X_OK) == 0, "\(tcpdump) is not installed")
    )
    func tcpdumpReadsOurFile() throws {
        let directory = TemporaryDirectory()
        let path = directory.file("for-tcpdump.pcap")
        // ARP requests: tcpdump prints exactly one line for each (unknown ethertypes would add hex dump lines).
        let frames = (0..<25).map { index -> Frame in
            let sender: [UInt8] = [2, 0, 0, 0, 0, 1]
            var bytes = [UInt8](repeating: 0xff, count: 6) + sender + [0x08, 0x06]  // Ethernet: broadcast, ARP
            bytes += [0, 1, 0x08, 0x00, 6, 4, 0, 1]  // Ethernet/IPv4, request
            bytes += sender + [10, 0, 0, 1] + [UInt8](repeating: 0, count: 6) + [10, 0, 0, UInt8(index + 2)]
            bytes += [UInt8](repeating: 0, count: 60 - bytes.count)
            let time = 1_700_000_000_000_000_000 + UInt64(index) * 1000
            return Frame(timestampNanos: time, bytes: bytes, originalLength: 60)
        }
        try writeWithOurWriter(path, frames: frames)
        // The path comes from mkdtemp and has no shell metacharacters.
        guard let output = popen("\(tcpdump) -r \(path) -nn 2>/dev/null", "r") else {
            Issue.record("popen failed: errno \(errno)")
            return
        }
        var lines = 0
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        while getline(&line, &capacity, output) > 0 { lines += 1 }
        free(line)
        #expect(pclose(output) == 0)
        #expect(lines == frames.count)
    }
}
