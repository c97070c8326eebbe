import Testing
import XDPEmuPcap
import XDPEmuTesting

/// Mutated and truncated files must end in records or a `PcapError`: never a trap, never an endless loop.
@Suite("Fuzz")
struct FuzzTests {
    static func seeds() -> [[UInt8]] {
        var littleMicro = ClassicPcapFile()
        var bigNano = ClassicPcapFile(bigEndian: true, nano: true, snapLength: 1514)
        var pcapng = PcapngFile()
        pcapng.interface(decimalResolution: 9)
        for (index, length) in [60, 0, 1514, 14, 300, 64].enumerated() {
            let frame = Frame.make(index, length: length, timestampNanos: 1_700_000_000_000_000_000 + UInt64(index))
            littleMicro.record(frame)
            bigNano.record(frame)
            pcapng.packet(frame)
        }
        return [littleMicro.bytes, bigNano.bytes, pcapng.bytes]
    }

    /// Values that sit on the edges of the checks.
    static let interesting: [UInt32] = [
        0, 1, 15, 16, 23, 24, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 1514, 1515, 65_535, 262_144, 262_145,
        999_999, 1_000_000, 999_999_999, 1_000_000_000, 0xa1b2_c3d4, 0x0a0d_0d0a,
    ]

    static func mutate(_ input: [UInt8], _ random: inout SplitMix64) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...4, using: &random) {
            switch Int.random(in: 0..<6, using: &random) {
            case 0:  // truncate
                bytes.removeLast(Int.random(in: 0...bytes.count, using: &random))
            case 1 where !bytes.isEmpty:  // flip a byte
                bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
            case 2 where bytes.count >= 4:  // overwrite a 32-bit field, aligned, in either byte order
                let at = Int.random(in: 0..<bytes.count / 4, using: &random) * 4
                var value = interesting.randomElement(using: &random)!
                if Bool.random(using: &random) { value = value.byteSwapped }
                withUnsafeBytes(of: value.littleEndian) { bytes.replaceSubrange(at..<at + 4, with: $0) }
            case 3:  // insert junk
                let at = Int.random(in: 0...bytes.count, using: &random)
                let junk = (0..<Int.random(in: 1...20, using: &random)).map { _ in
                    UInt8.random(in: 0...255, using: &random)
                }
                bytes.insert(contentsOf: junk, at: at)
            case 4 where !bytes.isEmpty:  // delete a range
                let start = Int.random(in: 0..<bytes.count, using: &random)
                let end = min(bytes.count, start + Int.random(in: 1...40, using: &random))
                bytes.removeSubrange(start..<end)
            default:  // duplicate a tail, so records repeat
                let start = Int.random(in: 0...bytes.count, using: &random)
                bytes += bytes[start...]
            }
        }
        return bytes
    }

    @Test("thousands of mutated files end in records or a PcapError")
    func mutatedFiles() {
        let directory = TemporaryDirectory()
        let path = directory.file("fuzz.pcap")
        let seeds = Self.seeds()
        var random = SplitMix64(seed: 0x5eed_cafe)
        var outcomes = (clean: 0, failed: 0)
        for iteration in 0..<3000 {
            let bytes = Self.mutate(seeds[iteration % seeds.count], &random)
            writeFile(path, bytes)
            // Every record consumes at least 12 bytes (a pcapng block header; a pcap record takes 16), so more
            // records than this means the reader stopped making progress.
            let limit = bytes.count / 12 + 1
            var count = 0
            do {
                let reader = try PcapReader(path: path)
                while let record = try reader.next() {
                    count += 1
                    // Plain checks: an #expect per record would dominate the run time.
                    if record.bytes.count != record.capturedLength || record.capturedLength > 262_144 {
                        Issue.record("iteration \(iteration): record \(count) claims \(record.capturedLength) bytes")
                    }
                    if count > limit {
                        Issue.record("iteration \(iteration): more than \(limit) records from \(bytes.count) bytes")
                        break
                    }
                }
                outcomes.clean += 1
            } catch {
                if error.path != path || error.description.isEmpty {
                    Issue.record("iteration \(iteration): unhelpful error \(error)")
                }
                outcomes.failed += 1
            }
        }
        // Both outcomes must actually occur, or the mutations are too weak or too strong to mean anything.
        #expect(outcomes.clean > 100)
        #expect(outcomes.failed > 100)
    }

    /// Classic pcap seeds with snap lengths that cut some of their records, and the same mutations: our reader must
    /// give what libpcap gives.
    static func classicSeeds() -> [[UInt8]] {
        var littleMicro = ClassicPcapFile()
        var bigNano = ClassicPcapFile(bigEndian: true, nano: true, snapLength: 1514)
        var littleShortSnap = ClassicPcapFile(nano: true, snapLength: 100)
        for (index, length) in [60, 0, 1514, 14, 300, 64, 1600].enumerated() {
            let frame = Frame.make(index, length: length, timestampNanos: 1_700_000_000_000_000_000 + UInt64(index))
            littleMicro.record(frame)
            bigNano.record(frame)
            littleShortSnap.record(frame)
        }
        return [littleMicro.bytes, bigNano.bytes, littleShortSnap.bytes]
    }

    /// How the comparisons with libpcap ended.
    struct Outcomes {
        var clean = 0, failed = 0, cut = 0
    }

    /// Reads `iterations` mutations of `seeds` with our reader and with libpcap and records an issue wherever the
    /// two differ: in the records (time, bytes, original length) or in whether the file ends in an error. Files our
    /// reader refuses at open for their link type are left out (libpcap hands out frames of any link type).
    static func compareWithLibpcap(_ seeds: [[UInt8]], iterations: Int, seed: UInt64, name: String) -> Outcomes {
        let directory = TemporaryDirectory()
        let path = directory.file(name)
        var random = SplitMix64(seed: seed)
        var outcomes = Outcomes()
        for iteration in 0..<iterations {
            let bytes = Self.mutate(seeds[iteration % seeds.count], &random)
            writeFile(path, bytes)
            let ours = readWithOurReader(path)
            if case .fileHeader(_, _, _, .unsupportedLinkType)? = ours.error { continue }
            let reference = readWithLibpcap(path)
            let records = ours.records.map(\.frame)
            if records != reference.records || (ours.error == nil) != (reference.error == nil) {
                Issue.record(
                    """
                    \(name) iteration \(iteration): ours \(records.count) records, error \
                    \(String(describing: ours.error)); libpcap \(reference.records.count), error \
                    \(reference.error ?? "none")
                    """)
                continue
            }
            if ours.error == nil { outcomes.clean += 1 } else { outcomes.failed += 1 }
            if ours.records.contains(where: { $0.capturedLength < $0.originalLength }) { outcomes.cut += 1 }
        }
        return outcomes
    }

    @Test("mutated classic files read as libpcap reads them: the same records, and an error where it fails")
    func sameAsLibpcap() {
        let outcomes = Self.compareWithLibpcap(
            Self.classicSeeds(), iterations: 3000, seed: 0x11b_9ca9,
            name: "fuzz.pcap")
        #expect(outcomes.clean > 100)
        #expect(outcomes.failed > 100)
        // Records cut to the snap length occur (the short-snap seed has them before any mutation).
        #expect(outcomes.cut > 100)
    }

    /// pcapng seeds: the plain case in both byte orders (several interfaces, resolutions and offsets, skipped
    /// blocks), and files that our parser hands to libpcap part way (a Simple Packet Block, a binary resolution).
    static func pcapngSeeds() -> [[UInt8]] {
        func bytes(_ value: Int64, bigEndian: Bool) -> [UInt8] {
            withUnsafeBytes(of: bigEndian ? value.bigEndian : value.littleEndian) { Array($0) }
        }
        let frames = [60, 0, 1514, 14, 300, 64, 99].enumerated().map {
            Frame.make($0.offset, length: $0.element, timestampNanos: 1_700_000_000_000_000_000 + UInt64($0.offset))
        }
        var seeds: [[UInt8]] = []
        for bigEndian in [false, true] {
            var file = PcapngFile(bigEndian: bigEndian)
            file.other(type: 4, [0, 0, 0, 0])  // name resolution, before the first interface
            file.interface(snapLength: 1514, options: [(2, Array("eth0".utf8)), (9, [9]), (0, [])])
            file.interface(snapLength: 1514, options: [(9, [3]), (14, bytes(-100, bigEndian: bigEndian))])
            for (index, frame) in frames.enumerated() {
                file.packet(
                    frame, interface: UInt32(index % 2),
                    units: index % 2 == 0
                        ? frame.timestampNanos
                        : frame.timestampNanos / 1_000_000)
                if index == 3 { file.other(type: 5, Array(repeating: 7, count: 20)) }  // interface statistics
            }
            seeds.append(file.bytes)
        }
        var small = PcapngFile()
        small.interface(snapLength: 100, options: [(9, [6]), (0, [])])
        for frame in frames where frame.bytes.count <= 100 { small.packet(frame) }
        small.simplePacket(Frame.make(9, length: 80))
        small.packet(frames[0])
        seeds.append(small.bytes)
        var binary = PcapngFile()
        binary.interface(options: [(9, [0x80 | 20])])
        for frame in frames { binary.packet(frame, interface: 0, units: frame.timestampNanos / 1_000_000_000 << 20) }
        seeds.append(binary.bytes)
        return seeds
    }

    @Test("mutated pcapng files read as libpcap reads them: the same records, and an error where it fails")
    func pcapngSameAsLibpcap() {
        let directory = TemporaryDirectory()
        let path = directory.file("seed.pcapng")
        let seeds = Self.pcapngSeeds()
        // The seeds themselves first: all read whole, the first two (plain) by our parser to the end, the others
        // handed to libpcap.
        for (index, seed) in seeds.enumerated() {
            writeFile(path, seed)
            let ours = readWithOurReader(path)
            #expect(ours.error == nil, "seed \(index): \(String(describing: ours.error))")
            #expect(ours.records.count >= 6, "seed \(index)")
            #expect(ours.records.map(\.frame) == readWithLibpcap(path).records, "seed \(index)")
            let reader = try? PcapReader(path: path)
            while let reader, (try? reader.next()) != nil {}
            #expect(reader?.isReadByLibpcap == (index >= 2), "seed \(index)")
        }
        let outcomes = Self.compareWithLibpcap(seeds, iterations: 4000, seed: 0x9c49_0a11, name: "fuzz.pcapng")
        #expect(outcomes.clean > 100)
        #expect(outcomes.failed > 100)
    }
}
