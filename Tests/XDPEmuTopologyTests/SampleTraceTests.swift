import Foundation
import Testing
import XDPEmuCore

@testable import XDPEmuTopology

/// Checks the committed traces in pcaps/ without Python, and that the script still writes exactly them.
@Suite("Sample traces")
struct SampleTraceTests {
    /// Each trace and the topology whose hosts send its frames.
    static let traces: [(trace: String, topology: String)] = [
        ("two-hosts-icmp.pcap", "two-hosts.json"), ("star4-mixed.pcap", "star4.json"),
        ("acl-mixed.pcap", "acl-firewall.json"), ("l2-switch.pcap", "l2-switch.json"),
        ("reflector-udp.pcap", "reflector.json"),
    ]
    static let traceNames = traces.map(\.trace)
    static let pythonAvailable = (try? runPython(["-c", "pass"]))??.status == 0

    struct Record {
        var seconds: UInt32
        var nanoseconds: UInt32
        var frame: [UInt8]
    }

    /// Parses a nanosecond, little-endian, Ethernet pcap, checking its header and record framing.
    static func records(_ name: String) throws -> [Record] {
        let bytes = [UInt8](
            try Data(contentsOf: packageRoot.appendingPathComponent("pcaps").appendingPathComponent(name))
        )
        func u32(_ offset: Int) -> UInt32 {
            bytes[offset..<offset + 4].reversed().reduce(0) { $0 << 8 | UInt32($1) }
        }
        func u16(_ offset: Int) -> UInt16 { UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8 }
        try #require(bytes.count >= 24)
        #expect(u32(0) == 0xA1B2_3C4D, "nanosecond magic, little endian")
        #expect(u16(4) == 2 && u16(6) == 4, "version 2.4")
        #expect(u32(16) == 262_144, "snaplen")
        #expect(u32(20) == 1, "LINKTYPE_ETHERNET")
        var records: [Record] = []
        var offset = 24
        while offset < bytes.count {
            try #require(offset + 16 <= bytes.count, "truncated record header")
            let captured = Int(u32(offset + 8))
            #expect(captured == Int(u32(offset + 12)), "frames are stored whole")
            #expect(u32(offset + 4) < 1_000_000_000)
            try #require(offset + 16 + captured <= bytes.count, "truncated record")
            records.append(
                Record(
                    seconds: u32(offset),
                    nanoseconds: u32(offset + 4),
                    frame: Array(bytes[offset + 16..<offset + 16 + captured])
                )
            )
            offset += 16 + captured
        }
        return records
    }

    /// The one's-complement sum over `bytes`, folded; 0xFFFF over data that includes a correct checksum.
    static func onesComplementSum(_ bytes: some Collection<UInt8>) -> UInt16 {
        var total: UInt32 = 0
        var iterator = bytes.makeIterator()
        while let high = iterator.next() {
            total += UInt32(high) << 8 | UInt32(iterator.next() ?? 0)
        }
        while total >> 16 != 0 { total = (total & 0xFFFF) + (total >> 16) }
        return UInt16(total)
    }

    @Test("timestamps start at 1700000000.000000000, never go back, and repeat at least once", arguments: traceNames)
    func timestamps(_ name: String) throws {
        let records = try Self.records(name)
        #expect(records.count >= 6)
        #expect(records.first.map { ($0.seconds, $0.nanoseconds) } ?? (0, 0) == (1_700_000_000, 0))
        let times = records.map { UInt64($0.seconds) * 1_000_000_000 + UInt64($0.nanoseconds) }
        #expect(zip(times, times.dropFirst()).allSatisfy { $0 <= $1 })
        #expect(zip(times, times.dropFirst()).contains { $0 == $1 }, "a pair of frames shares a timestamp")
        #expect(times.last! - times.first! < 1_000_000, "the whole trace spans less than a millisecond")
    }

    @Test("IPv4, ICMP, UDP and TCP checksums are correct", arguments: traceNames)
    func checksums(_ name: String) throws {
        for (index, record) in try Self.records(name).enumerated() {
            let frame = record.frame
            try #require(frame.count >= 14)
            guard frame[12] == 0x08, frame[13] == 0x00 else { continue }
            let ip = Array(frame[14...])
            let headerLength = Int(ip[0] & 0x0F) * 4
            #expect(ip[0] >> 4 == 4 && headerLength == 20)
            #expect(Self.onesComplementSum(ip[..<headerLength]) == 0xFFFF, "IPv4 checksum of frame \(index + 1)")
            let totalLength = Int(ip[2]) << 8 | Int(ip[3])
            #expect(totalLength == ip.count, "frame \(index + 1) is not padded")
            let payload = ip[headerLength..<totalLength]
            let proto = ip[9]
            switch proto {
            case 1:
                #expect(Self.onesComplementSum(payload) == 0xFFFF, "ICMP checksum of frame \(index + 1)")
            case 6, 17:
                let length = UInt16(payload.count)
                let pseudo = Array(ip[12..<20]) + [0, proto, UInt8(length >> 8), UInt8(length & 0xFF)]
                #expect(Self.onesComplementSum(pseudo + payload) == 0xFFFF, "L4 checksum of frame \(index + 1)")
            default:
                Issue.record("unexpected IP protocol \(proto) in frame \(index + 1)")
            }
        }
    }

    @Test("every frame comes from a host of the matching topology", arguments: traces.map { [$0.trace, $0.topology] })
    func sendersAreHosts(_ pair: [String]) throws {
        let topology = try Topology.load(path: packageRoot.appendingPathComponent("topologies/\(pair[1])").path)
        let hostMACs = Set(topology.ports.compactMap(\.host?.mac))
        #expect(!hostMACs.isEmpty)
        for record in try Self.records(pair[0]) {
            let source = MACAddress(
                record.frame[6],
                record.frame[7],
                record.frame[8],
                record.frame[9],
                record.frame[10],
                record.frame[11]
            )
            #expect(hostMACs.contains(source), "\(source) is not a host in \(pair[1])")
        }
    }

    @Test(
        "the script writes exactly the committed traces",
        .enabled(if: pythonAvailable, "python3 is not installed: cannot re-run scripts/make-sample-pcaps.py")
    )
    func scriptIsDeterministic() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("xdpemu-pcaps-\(getpid())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let script = packageRoot.appendingPathComponent("scripts/make-sample-pcaps.py").path
        let result = try #require(try runPython([script, "--out", directory.path]))
        #expect(result.status == 0, "\(result.output)")
        let written = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(written == Self.traceNames.sorted())
        for name in written {
            let fresh = try Data(contentsOf: directory.appendingPathComponent(name))
            let committed = try Data(
                contentsOf: packageRoot.appendingPathComponent("pcaps").appendingPathComponent(name)
            )
            #expect(fresh == committed, "\(name) differs from the committed file: re-run the script and commit")
        }
    }
}
