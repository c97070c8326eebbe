import Foundation
import Testing
import XDPEmuCore
import XDPEmuPcap
import XDPEmuTopology

@testable import XDPEmuRuntime

/// Traces that are not Ethernet (Linux cooked, raw IP, BSD loopback), written here byte by byte, replayed through
/// two-hosts: every frame leaves xe1 with an Ethernet header (the EtherType from the cooked header, the IP version
/// or the address family; the MACs from the topology or the `--in` options) and its packet intact.
@Suite struct LinkTypeReplayTests {
    /// A classic pcap (microseconds) of `linkType` holding `records`, one per millisecond.
    static func writeTrace(_ path: String, linkType: UInt32, snapLength: UInt32 = 65535, _ records: [[UInt8]]) {
        var bytes = [UInt8]()
        func u32(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
        func u16(_ value: UInt16) { withUnsafeBytes(of: value.littleEndian) { bytes += $0 } }
        u32(0xa1b2_c3d4)
        u16(2)
        u16(4)
        u32(0)
        u32(0)
        u32(snapLength)
        u32(linkType)
        for (i, record) in records.enumerated() {
            u32(1_700_000_000)
            u32(UInt32(1000 * i))
            u32(UInt32(record.count))
            u32(UInt32(record.count))
            bytes += record
        }
        try! Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// An IPv4 UDP packet (udpFrame without its Ethernet header).
    static let ipv4 = Array(udpFrame(from: "02:00:00:00:00:09", to: "02:00:00:00:00:08", payload: 30)[14...])
    /// An IPv6 packet: version 6, payload length 8, next header UDP, addresses and 8 bytes.
    static let ipv6: [UInt8] = [0x60, 0, 0, 0, 0, 8, 17, 64] + (0..<32).map { UInt8($0) } + [1, 2, 3, 4, 0, 8, 0, 0]

    static func sll(_ protocolField: UInt16, _ payload: [UInt8]) -> [UInt8] {
        [0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 9, 0, 0, UInt8(protocolField >> 8), UInt8(protocolField & 0xff)] + payload
    }

    static func sll2(_ protocolField: UInt16, _ payload: [UInt8]) -> [UInt8] {
        [UInt8(protocolField >> 8), UInt8(protocolField & 0xff), 0, 0, 0, 0, 0, 3, 0, 1, 0, 6]
            + [2, 0, 0, 0, 0, 9, 0, 0] + payload
    }

    static func family(_ value: UInt32, bigEndian: Bool) -> [UInt8] {
        withUnsafeBytes(of: bigEndian ? value.bigEndian : value.littleEndian) { Array($0) }
    }

    /// (link type field, records, the packets and EtherTypes expected out)
    static let cases: [(UInt32, [[UInt8]], [([UInt8], UInt16)])] = [
        (113, [sll(0x0800, ipv4), sll(0x86dd, ipv6)], [(ipv4, 0x0800), (ipv6, 0x86dd)]),
        (276, [sll2(0x0800, ipv4), sll2(0x86dd, ipv6)], [(ipv4, 0x0800), (ipv6, 0x86dd)]),
        (101, [ipv4, ipv6], [(ipv4, 0x0800), (ipv6, 0x86dd)]),
        (12, [ipv6, ipv4], [(ipv6, 0x86dd), (ipv4, 0x0800)]),
        (14, [ipv4], [(ipv4, 0x0800)]),
        (228, [ipv4, ipv4], [(ipv4, 0x0800), (ipv4, 0x0800)]),
        (229, [ipv6], [(ipv6, 0x86dd)]),
        // NULL: the capturing host's byte order, either one; AF_INET6 as Linux (10) and macOS (30) number it.
        (
            0,
            [
                family(2, bigEndian: false) + ipv4, family(30, bigEndian: true) + ipv6,
                family(10, bigEndian: false) + ipv6,
            ],
            [(ipv4, 0x0800), (ipv6, 0x86dd), (ipv6, 0x86dd)]
        ),
        (
            108, [family(2, bigEndian: true) + ipv4, family(24, bigEndian: true) + ipv6],
            [(ipv4, 0x0800), (ipv6, 0x86dd)]
        ),
    ]

    @Test("each link type leaves xe1 as Ethernet: EtherType, default MACs, packet intact", arguments: cases)
    func converted(linkType: UInt32, records: [[UInt8]], expected: [([UInt8], UInt16)]) throws {
        let directory = makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let trace = "\(directory)/trace.pcap"
        Self.writeTrace(trace, linkType: linkType, records)
        let (result, out) = try replay(try sampleTopology("two-hosts"), inputs: [("xe0", trace)])
        defer { removeDirectory(out) }
        #expect(result.inputErrors.isEmpty, "\(result.inputErrors)")
        expectConservation(result.statistics)
        let egress = try readCapture("\(out)/xe1.egress.pcap")
        #expect(egress.count == expected.count)
        for (frame, (packet, etherType)) in zip(egress, expected) {
            // xe0 has a host: the destination is xe0's own MAC; the source is 02:ff and xe0's ifindex (1).
            #expect(frame.destination == "02:00:00:00:00:01")
            #expect(frame.source == "02:ff:00:00:00:01")
            #expect(frame.etherType == etherType)
            #expect(Array(frame.bytes[14...]) == packet)
            #expect(frame.originalLength == packet.count + 14)
        }
        #expect(try readCapture("\(out)/xe0.ingress.pcap").map(\.bytes) == egress.map(\.bytes))
        let input = try #require(result.statistics.inputs.first)
        #expect(input.linkType == LinkType(fileValue: linkType))
        #expect(input.converted == UInt64(expected.count))
        #expect(input.skipped == 0)
        #expect(result.statistics.table.contains("xe0=\(trace)"))
        let stats = try String(contentsOfFile: "\(out)/stats.json", encoding: .utf8)
        #expect(stats.contains("\"converted\": \(expected.count), \"skipped\": 0"))
    }

    @Test("MACs from the --in options; cooked protocols kept; what cannot be converted is skipped and counted")
    func optionsAndSkips() throws {
        let directory = makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let cooked = "\(directory)/any.pcap"
        let arp: [UInt8] = [0, 1, 8, 0, 6, 4, 0, 1] + Array(repeating: 7, count: 20)
        let llc: [UInt8] = [0x42, 0x42, 0x03] + Array(repeating: 1, count: 35)
        Self.writeTrace(
            cooked, linkType: 113,
            [Self.sll(0x0806, arp), Self.sll(0x000c, [1, 2, 3]), Self.sll(0x0004, llc), Self.sll(0x0800, [])])
        let loopback = "\(directory)/lo.pcap"
        Self.writeTrace(
            loopback, linkType: 0,
            [Self.family(99, bigEndian: false) + Self.ipv4, [2, 0], Self.family(2, bigEndian: false) + Self.ipv4])
        let raw = "\(directory)/raw.pcap"
        Self.writeTrace(raw, linkType: 101, [[0x50] + Self.ipv4.dropFirst(), Self.ipv6])
        let out = makeTemporaryDirectory()
        defer { removeDirectory(out) }
        var options = ReplayOptions(
            topology: try sampleTopology("two-hosts"),
            inputs: [
                try ReplayOptions.Input(argument: "xe0=\(cooked),dst=02:00:00:00:01:02,src=02:00:00:00:01:01"),
                try ReplayOptions.Input(argument: "xe0=\(loopback),src=0a:00:00:00:00:05"),
                try ReplayOptions.Input(argument: "xe1=\(raw)"),
            ],
            outputDirectory: out)
        options.statsPath = "\(out)/stats.json"
        let result = try Replay.run(options)
        #expect(result.inputErrors.isEmpty, "\(result.inputErrors)")
        let fromCooked = try readCapture("\(out)/xe1.egress.pcap").filter { $0.destination == "02:00:00:00:01:02" }
        #expect(fromCooked.map(\.etherType) == [0x0806, UInt16(llc.count), 0x0800])
        #expect(fromCooked.allSatisfy { $0.source == "02:00:00:00:01:01" })
        #expect(fromCooked.map { Array($0.bytes[14...]) } == [arp, llc, []])
        let fromLoopback = try readCapture("\(out)/xe1.egress.pcap").filter { $0.source == "0a:00:00:00:00:05" }
        #expect(fromLoopback.map(\.destination) == ["02:00:00:00:00:01"])
        #expect(fromLoopback.map { Array($0.bytes[14...]) } == [Self.ipv4])
        // xe1 has a host: its own MAC as destination, 02:ff:00:00:00:02 (ifindex 2) as source.
        let fromRaw = try readCapture("\(out)/xe0.egress.pcap")
        #expect(fromRaw.map(\.etherType) == [0x86dd])
        #expect(fromRaw.map(\.destination) == ["02:00:00:00:00:02"])
        #expect(fromRaw.map(\.source) == ["02:ff:00:00:00:02"])
        let inputs = result.statistics.inputs
        #expect(inputs.map(\.converted) == [3, 1, 1])
        #expect(inputs.map(\.skipped) == [1, 2, 1])
        #expect(result.statistics.framesIn == 5)
        let stats = try String(contentsOfFile: "\(out)/stats.json", encoding: .utf8)
        #expect(
            stats.contains("\"link_type\": 113, \"link_type_name\": \"LINUX_SLL\", \"converted\": 3, \"skipped\": 1"))
        #expect(result.statistics.table.contains("LINUX_SLL (113)"))
    }

    @Test("a port without a host: the fixed destination 02:fe:00:00:00:00")
    func portWithoutHost() throws {
        let directory = makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let topologyPath = "\(directory)/bare.json"
        try """
        {"name": "bare", "semantics": "4.18",
         "ports": [{"name": "p0", "program": {"type": "redirect_map", "map": "m", "key": {"kind": "constant", "value": 0}}},
                   {"name": "p1"}],
         "maps": [{"name": "m", "type": "devmap", "max_entries": 1, "entries": {"0": "p1"}}]}
        """.write(toFile: topologyPath, atomically: true, encoding: .utf8)
        let trace = "\(directory)/raw.pcap"
        Self.writeTrace(trace, linkType: 101, [Self.ipv4])
        let (result, out) = try replay(try Topology.load(path: topologyPath), inputs: [("p0", trace)])
        defer { removeDirectory(out) }
        #expect(result.inputErrors.isEmpty, "\(result.inputErrors)")
        let egress = try readCapture("\(out)/p1.egress.pcap")
        #expect(egress.map(\.destination) == ["02:fe:00:00:00:00"])
        #expect(egress.map(\.source) == ["02:ff:00:00:00:01"])
    }

    @Test("a record as long as the snap length is replayed whole, 14 bytes longer")
    func longestRecord() throws {
        let directory = makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let trace = "\(directory)/raw.pcap"
        let packet = [UInt8(0x45)] + (1..<4000).map { UInt8(truncatingIfNeeded: $0) }
        Self.writeTrace(trace, linkType: 101, snapLength: 4000, [packet])
        let (result, out) = try replay(try sampleTopology("two-hosts"), inputs: [("xe0", trace)])
        defer { removeDirectory(out) }
        #expect(result.inputErrors.isEmpty)
        let ingress = try readCapture("\(out)/xe0.ingress.pcap")
        #expect(ingress.map(\.bytes.count) == [4014])
        #expect(ingress.first.map { Array($0.bytes[14...]) } == packet)
    }

    @Test("other link types are refused by name and number; dst= on an Ethernet trace is refused")
    func refusals() throws {
        let directory = makeTemporaryDirectory()
        defer { removeDirectory(directory) }
        let wifi = "\(directory)/wifi.pcap"
        Self.writeTrace(wifi, linkType: 105, [[1, 2, 3]])
        let ethernet = "\(directory)/eth.pcap"
        try XDPEmuRuntimeTests.writeTrace(ethernet, [(1, udpFrame(from: "02:00:00:00:00:09", to: "02:00:00:00:00:08"))])
        let out = makeTemporaryDirectory()
        defer { removeDirectory(out) }
        let options = ReplayOptions(
            topology: try sampleTopology("two-hosts"),
            inputs: [
                try ReplayOptions.Input(argument: "xe0=\(wifi)"),
                try ReplayOptions.Input(argument: "xe0=\(ethernet),dst=02:00:00:00:00:07"),
            ],
            outputDirectory: out)
        // Both problems are named, and the replay is refused before any output is created.
        #expect {
            try Replay.run(options)
        } throws: { error in
            let message = "\(error)"
            return (error as? RuntimeError)?.exitCode == 2
                && message.contains("\(wifi): byte offset 20: link type IEEE802_11 (105)")
                && message.contains("the trace is Ethernet")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: out).isEmpty)
    }

    @Test("PORT=TRACE[,dst=MAC][,src=MAC]: options at the end, commas in paths kept, bad MACs refused")
    func inputArgument() throws {
        let input = try ReplayOptions.Input(argument: "xe0=a,b.pcap,src=02:00:00:00:00:02,dst=02:00:00:00:00:03")
        #expect(input.port == "xe0")
        #expect(input.path == "a,b.pcap")
        #expect(input.source == MACAddress("02:00:00:00:00:02"))
        #expect(input.destination == MACAddress("02:00:00:00:00:03"))
        #expect(try ReplayOptions.Input(argument: "p=x.pcap") == ReplayOptions.Input(port: "p", path: "x.pcap"))
        #expect(throws: RuntimeError.self) { try ReplayOptions.Input(argument: "xe0=x.pcap,dst=02:00:00:00:00") }
        #expect(throws: RuntimeError.self) { try ReplayOptions.Input(argument: "xe0=x.pcap,src=ff:ff:ff:ff:ff:ff") }
        #expect(throws: RuntimeError.self) { try ReplayOptions.Input(argument: "x.pcap") }
    }
}
