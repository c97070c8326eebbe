// Our own pcapng parser for the plain case, on a ReadBuffer: one section, interfaces of one link type (as libpcap
// requires; the reader refuses link types replay cannot use) with decimal time stamp resolutions (if_tsresol 10^-0 to 10^-19) and offsets, and Enhanced Packet Blocks; blocks of other kinds
// (statistics, name resolution, custom) are skipped, as libpcap skips them. For such files it gives exactly what
// libpcap 1.10 gives: the same records, lengths, bytes and nanosecond time stamps (libpcap's conversion: whole
// seconds by division, the remainder scaled by a power of ten).
//
// At the first thing it does not handle in the same way (anything libpcap reports as an error, a block that ends
// the file early, a Simple or obsolete Packet Block, a second section, a binary time stamp resolution, a time
// stamp beyond what nanoseconds since 1970 hold in 64 bits, a block larger than the read buffer) it says so, and
// PcapReader goes on with libpcap: it opens the file again and skips the records already handed out. Those files
// cost libpcap's price (about 700 instructions more per record, most of it stdio and a copy per block); the
// plain ones what classic pcap costs.
//
// As in ClassicPcapParser, `next()` is the fast path (a whole Enhanced Packet Block buffered, for a known interface,
// within the snap length), and `nextSlowly()` does everything else. Neither is inlined into PcapReader's callers
// (see PcapReader.nextNotClassic).

/// The state of one pcapng file being read while it stays plain.
struct PcapngParser: ~Copyable {
    /// How an interface's time stamps become nanoseconds.
    struct Interface {
        /// Time stamp units per second (a power of 10).
        var unitsPerSecond: UInt64
        /// The remainder in units times `scaleUp`, divided by `scaleDown`, is the nanoseconds.
        var scaleUp: UInt64
        var scaleDown: UInt64
        /// if_tsoffset, added to the seconds (a signed number, added modulo 2^64 as C adds it).
        var offsetSeconds: UInt64
    }

    /// What `nextSlowly` found.
    enum Step {
        case record(PcapRecord)
        case end
        /// Something this parser does not handle as libpcap does: libpcap must read the file from here on.
        case handOver
    }

    /// A block read whole into the buffer, at `input.current`.
    private enum BlockRead {
        case block(type: UInt32, length: Int)
        case end
        case handOver
    }

    /// The block types this parser tells apart (others are skipped).
    enum BlockType: UInt32 {
        case sectionHeader = 0x0a0d_0d0a  // PcapFormat.pcapngMagic
        case interface = 1
        case obsoletePacket = 2
        case simplePacket = 3
        case enhancedPacket = 6
    }

    /// The Section Header Block's byte-order magic.
    static let byteOrderMagic: UInt32 = 0x1a2b_3c4d

    var input: ReadBuffer
    /// Whether the section is in the other byte order.
    var swapped = false
    var interfaces: UnsafeMutablePointer<Interface>
    private var interfaceCapacity = 4
    var interfaceCount: UInt32 = 0
    /// libpcap's snapshot length (the first interface's, 262144 for 0 or more); every interface must have it.
    var snapshot: UInt32 = 0
    var recordsRead = 0
    /// Whether the file starts plain (if not, libpcap must read it).
    private(set) var isPlain = false
    /// The first interface's link type, which every interface must have.
    private(set) var linkType = LinkType.ethernet
    /// Where the first Interface Description Block is.
    private(set) var firstInterface = PcapngPlace(offset: 0, block: 0)

    /// Takes `input` over (at its start, its first four bytes the block type) and reads the Section Header Block
    /// and the blocks up to the first interface; `isPlain` says whether it could.
    init(input: ReadBuffer) {
        self.input = input
        interfaces = .allocate(capacity: interfaceCapacity)
        isPlain = readHeaderBlocks()
    }

    deinit {
        interfaces.deallocate()
        input.close()
    }

    private mutating func readHeaderBlocks() -> Bool {
        guard readSectionHeader() else { return false }
        var block = 1
        while true {
            block += 1
            let offset = input.fileOffset
            guard case .block(let type, let length) = readBlock() else { return false }
            switch BlockType(rawValue: type) {
            case .interface:
                firstInterface = PcapngPlace(offset: offset, block: block)
                linkType = LinkType(rawValue: UInt32(field16(input.current, 8)))
                guard addInterface(at: input.current, length: length) else { return false }
                input.position += length
                return true
            case .enhancedPacket, .simplePacket, .obsoletePacket, .sectionHeader:
                return false
            case nil:
                input.position += length
            }
        }
    }

    /// The next record when it is an Enhanced Packet Block wholly buffered that this parser can hand out as it
    /// is; nil otherwise (`nextSlowly` then decides).
    @inline(__always)
    mutating func next() -> PcapRecord? {
        let available = input.available
        guard available >= 12 else { return nil }
        let block = input.current
        let length = Int(field(block, 4))
        guard field(block, 0) == BlockType.enhancedPacket.rawValue,
            length & 3 == 0, length >= 12, length <= available,
            field(block, length &- 4) == UInt32(truncatingIfNeeded: length),
            let record = packet(at: block, length: length, fileOffset: input.fileOffset)
        else { return nil }
        input.position &+= length
        recordsRead &+= 1
        return record
    }

    /// The record of the Enhanced Packet Block at `block` (`length` bytes, a multiple of 4, its trailer checked),
    /// or nil if libpcap would refuse it or this parser cannot convert its time stamp.
    @inline(__always)
    func packet(at block: UnsafeRawPointer, length: Int, fileOffset: Int64) -> PcapRecord? {
        // Block header (8), interface, time stamp high and low, captured and original length (20), trailer (4).
        guard length >= 32 else { return nil }
        let interface = field(block, 8)
        let capturedLength = field(block, 20)
        guard interface < interfaceCount, capturedLength <= snapshot, Int(capturedLength) <= length &- 32 else {
            return nil
        }
        let units = UInt64(field(block, 12)) << 32 | UInt64(field(block, 16))
        let clock = interfaces[Int(interface)]
        let seconds = units / clock.unitsPerSecond &+ clock.offsetSeconds
        // The largest whole second whose nanoseconds, plus a fraction, still fit in 64 bits.
        guard seconds <= 18_446_744_072 else { return nil }
        let nanoseconds = (units % clock.unitsPerSecond) &* clock.scaleUp / clock.scaleDown
        return PcapRecord(
            timestampNanos: seconds &* 1_000_000_000 &+ nanoseconds,
            capturedLength: Int(capturedLength),
            originalLength: Int(field(block, 24)),
            bytes: UnsafeRawBufferPointer(start: block + 28, count: Int(capturedLength)),
            index: recordsRead,
            fileOffset: fileOffset
        )
    }

    /// `next()` for everything its fast path leaves out: refills, the end of the file, interface and other blocks,
    /// and whatever must go to libpcap.
    mutating func nextSlowly() -> Step {
        // libpcap reports the offset of the first block it reads for a record.
        let start = input.fileOffset
        while true {
            switch readBlock() {
            case .end:
                return .end
            case .handOver:
                return .handOver
            case .block(let type, let length):
                switch BlockType(rawValue: type) {
                case .enhancedPacket:
                    guard let record = packet(at: input.current, length: length, fileOffset: start) else {
                        return .handOver
                    }
                    input.position += length
                    recordsRead += 1
                    return .record(record)
                case .interface:
                    guard addInterface(at: input.current, length: length) else { return .handOver }
                    input.position += length
                case .sectionHeader, .simplePacket, .obsoletePacket:
                    return .handOver
                case nil:
                    input.position += length
                }
            }
        }
    }

    @inline(__always)
    func field(_ at: UnsafeRawPointer, _ offset: Int) -> UInt32 {
        let raw = at.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
        return swapped ? raw.byteSwapped : raw
    }

    private func field16(_ at: UnsafeRawPointer, _ offset: Int) -> UInt16 {
        let raw = at.loadUnaligned(fromByteOffset: offset, as: UInt16.self)
        return swapped ? raw.byteSwapped : raw
    }

    /// The Section Header Block: a byte-order magic, version 1.0 or 1.2 (what libpcap reads), a length libpcap
    /// accepts and a trailer that matches it.
    private mutating func readSectionHeader() -> Bool {
        guard let available = try? input.refill(atLeast: 12), available >= 12 else { return false }
        switch input.current.loadUnaligned(fromByteOffset: 8, as: UInt32.self) {
        case Self.byteOrderMagic: swapped = false
        case Self.byteOrderMagic.byteSwapped: swapped = true
        default: return false
        }
        // libpcap's limits for a Section Header Block: 28 bytes to 1 MiB.
        let length = Int(field(input.current, 4))
        guard length >= 28, length <= 1 << 20, length & 3 == 0,
            let whole = try? input.refill(atLeast: length), whole >= length
        else { return false }
        let block = input.current
        let major = field16(block, 12)
        let minor = field16(block, 14)
        guard field(block, length - 4) == UInt32(length), major == 1, minor == 0 || minor == 2 else { return false }
        input.position += length
        return true
    }

    /// Reads the next block whole, with libpcap's checks of its length (at least 12, a multiple of 4, the same in
    /// the trailer); a block larger than the read buffer goes to libpcap.
    private mutating func readBlock() -> BlockRead {
        guard let available = try? input.refill(atLeast: 8) else { return .handOver }
        if available == 0 { return .end }
        guard available >= 8 else { return .handOver }
        let length = Int(field(input.current, 4))
        guard length >= 12, length & 3 == 0, length <= ReadBuffer.size,
            let whole = try? input.refill(atLeast: length), whole >= length,
            field(input.current, length - 4) == UInt32(length)
        else { return .handOver }
        return .block(type: field(input.current, 0), length: length)
    }

    /// Adds the interface of the Interface Description Block at `block`, as libpcap does: the link type and the
    /// snapshot length of the first interface, options well formed (an end-of-options option ends them), at most one
    /// if_tsresol (1 byte) and one if_tsoffset (8 bytes). False for anything else, or a binary resolution.
    private mutating func addInterface(at block: UnsafeRawPointer, length: Int) -> Bool {
        var remaining = length - 12
        guard remaining >= 8, UInt32(field16(block, 8)) == linkType.rawValue else { return false }
        let adjusted = PcapFormat.snapshotLength(field(block, 12))
        if interfaceCount == 0 {
            snapshot = adjusted
        } else if adjusted != snapshot {
            return false
        }
        remaining -= 8
        var at = 16
        var exponent: UInt8?
        var offset: UInt64?
        options: while remaining != 0 {
            guard remaining >= 4 else { return false }
            let code = field16(block, at)
            let optionLength = Int(field16(block, at + 2))
            let padded = (optionLength + 3) & ~3
            guard remaining - 4 >= padded else { return false }
            let value = block + at + 4
            at += 4 + padded
            remaining -= 4 + padded
            switch code {
            case 0:  // opt_endofopt
                guard optionLength == 0 else { return false }
                break options
            case 9:  // if_tsresol
                guard optionLength == 1, exponent == nil else { return false }
                let resolution = value.load(as: UInt8.self)
                guard resolution & 0x80 == 0, resolution <= 19 else { return false }
                exponent = resolution
            case 14:  // if_tsoffset
                guard optionLength == 8, offset == nil else { return false }
                let raw = value.loadUnaligned(as: UInt64.self)
                offset = swapped ? raw.byteSwapped : raw
            default:
                break
            }
        }
        let digits = Int(exponent ?? 6)
        func tenTo(_ n: Int) -> UInt64 { (0..<n).reduce(1) { result, _ in result * 10 } }
        let clock = Interface(
            unitsPerSecond: tenTo(digits), scaleUp: digits < 9 ? tenTo(9 - digits) : 1,
            scaleDown: digits > 9 ? tenTo(digits - 9) : 1, offsetSeconds: offset ?? 0)
        if Int(interfaceCount) == interfaceCapacity {
            let larger = UnsafeMutablePointer<Interface>.allocate(capacity: interfaceCapacity * 2)
            larger.moveInitialize(from: interfaces, count: interfaceCapacity)
            interfaces.deallocate()
            interfaces = larger
            interfaceCapacity *= 2
        }
        (interfaces + Int(interfaceCount)).initialize(to: clock)
        interfaceCount += 1
        return true
    }
}
