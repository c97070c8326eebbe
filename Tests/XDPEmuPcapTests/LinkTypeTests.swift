import Testing
import XDPEmuPcap

/// Which link types the reader accepts, how it names them (LINKTYPE_ values, never libpcap's DLT_ values), and
/// where its refusals point: the link type field of the classic file header or of the first pcapng interface.
@Suite("link types")
struct LinkTypeTests {
    static let replayable: [(field: UInt32, linkType: LinkType)] = [
        (1, .ethernet), (113, .linuxSLL), (276, .linuxSLL2), (101, .raw), (12, .raw), (14, .raw), (228, .ipv4),
        (229, .ipv6), (0, .null), (108, .loop),
    ]

    @Test("classic files of every link type replay converts are read, records as stored", arguments: replayable)
    func classicAccepted(field: UInt32, linkType: LinkType) throws {
        let directory = TemporaryDirectory()
        let path = directory.file("trace.pcap")
        var file = ClassicPcapFile(bigEndian: field == 108, nano: true, linkType: field)
        let frames = [Frame.make(1, length: 40), Frame.make(2, length: 61)]
        for frame in frames { file.record(frame) }
        writeFile(path, file.bytes)
        let reader = try PcapReader(path: path)
        #expect(reader.linkType == linkType)
        #expect(readAllWithOurReader(path).map(\.frame) == frames)
    }

    @Test("a classic file of another link type is refused at its link type field, by name and number")
    func classicRefused() {
        let directory = TemporaryDirectory()
        let path = directory.file("wifi.pcap")
        writeFile(path, ClassicPcapFile(linkType: 105).bytes)
        let error = readWithOurReader(path).error
        #expect(error == .fileHeader(path: path, offset: 20, reason: .unsupportedLinkType(.ieee802_11)))
        #expect(
            error?.description
                == "\(path): byte offset 20: link type IEEE802_11 (105) is not one replay reads (ETHERNET (1), "
                + "LINUX_SLL (113), LINUX_SLL2 (276), RAW (101), IPV4 (228), IPV6 (229), NULL (0), LOOP (108))")
        let big = directory.file("big.pcap")
        writeFile(big, ClassicPcapFile(bigEndian: true, linkType: 127).bytes)
        #expect(readWithOurReader(big).error?.reason == .unsupportedLinkType(LinkType(rawValue: 127)))
        #expect(LinkType(rawValue: 127).description == "IEEE802_11_RADIOTAP (127)")
        #expect(LinkType(rawValue: 4000).description == "4000")
    }

    /// A pcapng file with one interface of `linkType` and two packets; `binary` gives the interface a binary time
    /// stamp resolution, which our parser leaves to libpcap (which reports DLT_ values).
    static func pcapng(linkType: UInt16, binary: Bool) -> (bytes: [UInt8], frames: [Frame]) {
        var file = PcapngFile()
        let frames = [Frame.make(1, length: 40), Frame.make(2, length: 61)]
        if binary {
            file.interface(linkType: linkType, options: [(9, [0x80 | 10])])
            for (i, frame) in frames.enumerated() {
                file.packet(frame, interface: 0, units: UInt64(1_700_000_000 + i) << 10)
            }
        } else {
            file.interface(linkType: linkType)
            for frame in frames { file.packet(frame) }
        }
        return (file.bytes, frames)
    }

    @Test("a pcapng interface of raw IP is RAW (101), by our parser and through libpcap", arguments: [false, true])
    func pcapngRaw(binary: Bool) throws {
        let directory = TemporaryDirectory()
        let path = directory.file("raw.pcapng")
        let (bytes, frames) = Self.pcapng(linkType: 101, binary: binary)
        writeFile(path, bytes)
        let reader = try PcapReader(path: path)
        var count = 0
        while let record = try reader.next() {
            #expect(Array(record.bytes) == frames[count].bytes)
            count += 1
        }
        #expect(count == 2)
        #expect(reader.isReadByLibpcap == binary)
        #expect(reader.linkType == .raw)
        #expect(reader.linkType.description == "RAW (101)")
    }

    @Test(
        "a pcapng interface of another link type is refused at its link type field, block 2", arguments: [false, true])
    func pcapngRefused(binary: Bool) {
        let directory = TemporaryDirectory()
        let path = directory.file("wifi.pcapng")
        writeFile(path, Self.pcapng(linkType: 105, binary: binary).bytes)
        let error = readWithOurReader(path).error
        // The section header takes bytes 0-27; the interface's link type is 8 bytes into block 2.
        #expect(error == .fileHeader(path: path, offset: 36, block: 2, reason: .unsupportedLinkType(.ieee802_11)))
        #expect(
            error?.description.hasPrefix("\(path): byte offset 36 (block 2): link type IEEE802_11 (105) is not one")
                == true)
    }

    @Test("libpcap's DLT values are reported as the LINKTYPE values files hold")
    func dltMapping() {
        #expect(LinkType(dlt: 12) == .raw)
        #expect(LinkType(dlt: 14) == .raw)
        #expect(LinkType(dlt: 113) == .linuxSLL)
        #expect(LinkType(dlt: 1) == .ethernet)
        #expect(LinkType(fileValue: 12) == .raw)
        #expect(LinkType(fileValue: 105) == .ieee802_11)
    }
}
