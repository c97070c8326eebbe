import Foundation
import Testing
import XDPEmuTesting

@testable import XDPEmuBPF
@testable import XDPEmuCore

/// Random and mutated instruction streams: whatever the program does, the machine never crashes, never writes
/// outside the frame's packet area (canaries around it stay intact) and ends every frame with an action.
@Suite struct BPFFuzzTests {
    static let opcodes: [UInt8] = {
        var list: [UInt8] = [0x18, 0x85, 0x95, 0x05, 0x06]
        for cls: UInt8 in [0x04, 0x07] {
            for op in stride(from: UInt8(0), through: 0xD0, by: 0x10) { list += [cls | op, cls | op | 8] }
        }
        for cls: UInt8 in [0x05, 0x06] {
            for op: UInt8 in [0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xA0, 0xB0, 0xC0, 0xD0] {
                list += [cls | op, cls | op | 8]
            }
        }
        for size: UInt8 in [0x00, 0x08, 0x10, 0x18] { list += [0x61 | size, 0x62 | size, 0x63 | size, 0x81 | size] }
        list += [0xC3, 0xDB]
        return list
    }()

    static let maps = [
        BPFMapDefinition(
            name: "arr", type: .array, keySize: 4, valueSize: 16, maxEntries: 4, flags: 0, initialValue: nil,
            readOnly: false),
        BPFMapDefinition(
            name: "h", type: .hash, keySize: 4, valueSize: 8, maxEntries: 4, flags: 0, initialValue: nil,
            readOnly: false),
        BPFMapDefinition(
            name: "ro", type: .array, keySize: 4, valueSize: 8, maxEntries: 1, flags: 0,
            initialValue: [1, 2, 3, 4, 5, 6, 7, 8], readOnly: true),
        BPFMapDefinition(
            name: "dev", type: .devmap, keySize: 4, valueSize: 4, maxEntries: 4, flags: 0, initialValue: nil,
            readOnly: false),
    ]

    static func randomProgram(_ rng: inout SplitMix64, length: Int) -> ([RawInstruction], [Int: Relocation]) {
        var code: [RawInstruction] = []
        var relocations: [Int: Relocation] = [:]
        let helpers: [Int32] = HelperID.allCases.map { Int32($0.rawValue) } + [99]
        while code.count < length {
            let opcode =
                rng.next() % 16 == 0
                ? UInt8(truncatingIfNeeded: rng.next()) : opcodes[Int(rng.next() % UInt64(opcodes.count))]
            let dst = UInt8(rng.next() % (rng.next() % 20 == 0 ? 16 : 11))
            let src = UInt8(rng.next() % 11)
            let off = Int16(truncatingIfNeeded: Int64(rng.next() % 64) - 24)
            var imm = Int32(truncatingIfNeeded: rng.next())
            if rng.next() % 2 == 0 { imm = Int32(rng.next() % 64) - 8 }
            if opcode == 0x85 { imm = helpers[Int(rng.next() % UInt64(helpers.count))] }
            if opcode == 0x18 {
                if rng.next() % 2 == 0 { relocations[code.count] = .map(Int(rng.next() % 4)) }
                if rng.next() % 4 == 0 {
                    relocations[code.count] = .mapValue(map: Int(rng.next() % 3), offset: Int(rng.next() % 8))
                }
                code.append(RawInstruction(opcode: 0x18, dst: dst, src: 0, offset: 0, imm: imm))
                code.append(
                    RawInstruction(opcode: 0, dst: 0, src: 0, offset: 0, imm: Int32(truncatingIfNeeded: rng.next() % 3))
                )
                continue
            }
            code.append(
                RawInstruction(
                    opcode: opcode, dst: dst, src: src == 0 && opcode == 0x85 && rng.next() % 8 == 0 ? 1 : src,
                    offset: off, imm: imm))
        }
        code.append(RawInstruction(opcode: 0x95, dst: 0, src: 0, offset: 0, imm: 0))
        return (code, relocations)
    }

    /// Runs `code` on a few frames in a 4 KiB buffer of which the program's frame uses the first 2 KiB; the
    /// second half and the xdp_frame reserve are canaries.
    static func runGuarded(_ code: [RawInstruction], relocations: [Int: Relocation], maps: [BPFMapDefinition]) throws {
        let loaded = try LoadedBPFObject(BPFObject(instructions: code, maps: maps, relocations: relocations), cpus: 2)
        let machine = BPFMachine(loaded: loaded, program: loaded.object.programs[0], budget: 3000)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 4096, alignment: 64)
        defer { buffer.deallocate() }
        let record = UnsafeMutablePointer<FrameInfo>.allocate(capacity: 1)
        defer { record.deallocate() }
        for length in [14, 60, 1500] {
            buffer.initializeMemory(as: UInt8.self, repeating: 0x5A, count: 4096)
            record.initialize(
                to: FrameInfo(
                    dataOffset: 256, length: UInt32(length), metaLength: 0, ingress: 1, arrival: 0, sequence: 1,
                    missingBytes: 0, gsoSize: 0))
            var context = XDPContext(
                hardStart: buffer, bufferSize: 2048, record: record, rxQueueIndex: 0, now: 5, programID: 1,
                semantics: .v4_18)
            _ = machine.run(&context)
            #expect(machine.lastInstructionCount <= 3000 + code.count)
            let reserve = UnsafeRawBufferPointer(start: buffer, count: KernelConstants.xdpFrameSize)
            let tail = UnsafeRawBufferPointer(start: buffer + 2048, count: 2048)
            if !reserve.allSatisfy({ $0 == 0x5A }) || !tail.allSatisfy({ $0 == 0x5A }) {
                Issue.record("a program wrote outside its frame: \(code)")
                return
            }
        }
    }

    @Test func randomInstructionStreams() throws {
        var rng = SplitMix64(seed: 0xB9F_F022)
        for _ in 0..<3000 {
            let (code, relocations) = Self.randomProgram(&rng, length: 4 + Int(rng.next() % 40))
            try Self.runGuarded(code, relocations: relocations, maps: Self.maps)
        }
    }

    @Test(.enabled(if: Clang.available, Clang.reason))
    func mutatedCompiledPrograms() throws {
        var rng = SplitMix64(seed: 0x3D17)
        for name in ["redirect_mac", "helpers"] {
            let object = try BPFObject(bytes: Array(try readFile(try Clang.bpf(name))))
            for _ in 0..<400 {
                var code = object.instructions
                for _ in 0..<(1 + rng.next() % 4) {
                    let at = Int(rng.next() % UInt64(code.count))
                    switch rng.next() % 4 {
                    case 0: code[at].opcode = Self.opcodes[Int(rng.next() % UInt64(Self.opcodes.count))]
                    case 1: code[at].offset = Int16(truncatingIfNeeded: rng.next())
                    case 2: code[at].imm = Int32(truncatingIfNeeded: rng.next())
                    default:
                        code[at].dst = UInt8(rng.next() % 12)
                        code[at].src = UInt8(rng.next() % 12)
                    }
                }
                try Self.runGuarded(code, relocations: object.relocations, maps: object.maps)
            }
        }
    }
}

func readFile(_ path: String) throws -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else { throw TestFailure("cannot read \(path)") }
    return [UInt8](data)
}
