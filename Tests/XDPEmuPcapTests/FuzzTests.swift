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

    @Test("mutated classic files read as libpcap reads them: the same records, and an error where it fails")
    func sameAsLibpcap() {
        let directory = TemporaryDirectory()
        let path = directory.file("fuzz.pcap")
        let seeds = Self.classicSeeds()
        var random = SplitMix64(seed: 0x11b_9ca9)
        var outcomes = (clean: 0, failed: 0, cut: 0, notEthernet: 0)
        for iteration in 0..<3000 {
            let bytes = Self.mutate(seeds[iteration % seeds.count], &random)
            writeFile(path, bytes)
            let ours = readWithOurReader(path)
            if case .fileHeader(_, _, .notEthernet)? = ours.error {
                // Refused at open, where libpcap would hand out frames of another link type.
                outcomes.notEthernet += 1
                continue
            }
            let reference = readWithLibpcap(path)
            let records = ours.records.map(\.frame)
            if records != reference.records || (ours.error == nil) != (reference.error == nil) {
                Issue.record("""
                    iteration \(iteration): ours \(records.count) records, error \(String(describing: ours.error)); \
                    libpcap \(reference.records.count), error \(reference.error ?? "none")
                    """)
                continue
            }
            if ours.error == nil { outcomes.clean += 1 } else { outcomes.failed += 1 }
            if ours.records.contains(where: { $0.capturedLength < $0.originalLength }) { outcomes.cut += 1 }
        }
        #expect(outcomes.clean > 100)
        #expect(outcomes.failed > 100)
        // Records cut to the snap length occur (the short-snap seed has them before any mutation).
        #expect(outcomes.cut > 100)
    }
}
