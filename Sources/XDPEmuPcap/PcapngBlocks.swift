import SystemPackage

// Places in a pcapng file, found by following its block lengths from the start, for the messages about pcapng
// files that libpcap reads: libpcap says what is wrong but not where (a failed open), or only at which stream
// position (a failed read). Runs only when there is something to report, so it favours simplicity over speed: it
// reads the file with pread(2) in 1 MiB windows and looks at block headers and trailers only.

/// Where a pcapng block starts and its 1-based number in the file.
struct PcapngPlace: Equatable {
    var offset: Int64
    var block: Int
}

/// The blocks of one pcapng file, followed from its start.
struct PcapngBlocks {
    private let fd: FileDescriptor
    private var window: [UInt8] = []
    private var windowOffset: Int64 = 0
    private var swapped = false

    private init(fd: FileDescriptor) { self.fd = fd }

    /// Walks the blocks of `path` with `body`, which gets each block's place, type and length (checked: at least
    /// 12, a multiple of 4, within the file, the same in the trailer) and says whether to go on. Returns the place
    /// where the walk stopped: the block `body` stopped at, the first block whose header or trailer is broken, or
    /// the end of the file (the number of a block that would come next). nil if the file cannot be read.
    static func walk(
        _ path: String, _ body: (PcapngPlace, _ type: UInt32, _ length: Int, _ sectionOK: Bool) -> Bool
    ) -> PcapngPlace? {
        guard let fd = try? systemCall({ try FileDescriptor.open(FilePath(path), .readOnly, options: [.closeOnExec]) })
        else { return nil }
        defer { try? fd.close() }
        var blocks = PcapngBlocks(fd: fd)
        var place = PcapngPlace(offset: 0, block: 1)
        while true {
            guard let header = blocks.bytes(at: place.offset, count: 8) else { return place }
            var sectionOK = true
            if blocks.load(header, 0, swapped: false) == PcapFormat.pcapngMagic {
                // A Section Header Block sets the byte order of its section, and must be of a version libpcap reads.
                guard let magic = blocks.bytes(at: place.offset + 8, count: 8) else { return place }
                let order = blocks.load(magic, 0, swapped: false)
                guard order == PcapngParser.byteOrderMagic || order == PcapngParser.byteOrderMagic.byteSwapped
                else { return place }
                blocks.swapped = order != PcapngParser.byteOrderMagic
                let major = blocks.load16(magic, 4)
                let minor = blocks.load16(magic, 6)
                sectionOK = major == 1 && (minor == 0 || minor == 2)
            }
            let type = blocks.load(header, 0, swapped: blocks.swapped)
            let length = Int(blocks.load(header, 4, swapped: blocks.swapped))
            guard length >= 12, length & 3 == 0,
                let trailer = blocks.bytes(at: place.offset + Int64(length) - 4, count: 4),
                blocks.load(trailer, 0, swapped: blocks.swapped) == UInt32(length),
                body(place, type, length, sectionOK)
            else { return place }
            place = PcapngPlace(offset: place.offset + Int64(length), block: place.block + 1)
        }
    }

    /// Where opening `path` with libpcap failed: the first block libpcap reads when it opens a file (the Section
    /// Header Block, then every block up to the first Interface Description Block) that is broken, or that first
    /// interface, or the end of the file when there is none.
    static func openingProblem(_ path: String) -> PcapngPlace? {
        walk(path) { place, type, _, sectionOK in
            place.block == 1 ? sectionOK : type != 1
        }
    }

    /// The first Interface Description Block of `path`.
    static func firstInterface(_ path: String) -> PcapngPlace? {
        walk(path) { _, type, _, _ in type != 1 }
    }

    /// The block that holds byte `offset` of `path`, or the broken block the walk stops at before it.
    static func block(holding offset: Int64, _ path: String) -> PcapngPlace? {
        walk(path) { place, _, length, _ in offset >= place.offset + Int64(length) }
    }

    // MARK: Reading

    private mutating func bytes(at offset: Int64, count: Int) -> ArraySlice<UInt8>? {
        guard offset >= 0 else { return nil }
        if offset < windowOffset || offset + Int64(count) > windowOffset + Int64(window.count) {
            let size = max(1 << 20, count)
            var buffer = [UInt8](repeating: 0, count: size)
            let got = buffer.withUnsafeMutableBytes { raw in
                try? systemCall { try fd.read(fromAbsoluteOffset: offset, into: raw) }
            }
            guard let got else { return nil }
            window = Array(buffer[..<got])
            windowOffset = offset
        }
        let start = Int(offset - windowOffset)
        guard start + count <= window.count else { return nil }
        return window[start..<start + count]
    }

    private func load(_ bytes: ArraySlice<UInt8>, _ at: Int, swapped: Bool) -> UInt32 {
        let i = bytes.startIndex + at
        let value =
            UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24
        return swapped ? value.byteSwapped : value
    }

    private func load16(_ bytes: ArraySlice<UInt8>, _ at: Int) -> UInt16 {
        let i = bytes.startIndex + at
        let value = UInt16(bytes[i]) | UInt16(bytes[i + 1]) << 8
        return swapped ? value.byteSwapped : value
    }
}
