import Testing
import XDPEmuTesting

@testable import XDPEmuBPF
@testable import XDPEmuCore

/// Random programs built from the patterns the load-time pass fuses (and from random instructions between
/// them), run decoded with and without that pass: the action, every register, the packet, the maps' contents
/// and the fault reports must be the same.
@Suite struct FusedDifferentialTests {
    static let maps = [
        BPFMapDefinition(
            name: "arr", type: .array, keySize: 4, valueSize: 8, maxEntries: 4, flags: 0, initialValue: nil,
            readOnly: false),
        BPFMapDefinition(
            name: "h", type: .hash, keySize: 6, valueSize: 8, maxEntries: 8, flags: 0, initialValue: nil,
            readOnly: false),
        BPFMapDefinition(
            name: "dev", type: .devmap, keySize: 4, valueSize: 4, maxEntries: 4, flags: 0, initialValue: nil,
            readOnly: false),
    ]

    /// One pattern (or one random instruction), with registers, offsets and immediates drawn from `rng`.
    static func snippet(
        _ rng: inout SplitMix64, at index: Int, relocations: inout [Int: Relocation]
    )
        -> [RawInstruction]
    {
        func reg() -> UInt8 { UInt8(rng.next() % 10) }
        func small() -> Int32 { Int32(rng.next() % 80) - 8 }
        func jump() -> Int16 { Int16(rng.next() % 4) }
        switch rng.next() % 12 {
        case 0:  // bounds check: rA = rB; rA += n; if rA > rC (or rC < rA) goto
            let a = reg()
            let c = reg()
            let check = rng.next() % 2 == 0 ? ins(0x2D, a, c, off: jump()) : ins(0xAD, c, a, off: jump())
            return [ins(0xBF, a, reg()), ins(0x07, a, imm: small()), check]
        case 1:  // two loads of one width from one base
            let size = [UInt8(0x10), 0x08, 0x00, 0x18][Int(rng.next() % 4)]
            let base = reg()
            return [
                ins(0x61 | size, reg(), base, off: Int16(small())), ins(0x61 | size, reg(), base, off: Int16(small())),
            ]
        case 2:  // r <<= n; r |= s (32 or 64 bits)
            let a = reg()
            let wide: UInt8 = rng.next() % 2 == 0 ? 0x03 : 0x00
            return [ins(0x64 | wide, a, imm: Int32(rng.next() % 40)), ins(0x4C | wide, a, reg())]
        case 3:  // LD_IMM64 (a map, sometimes) and a MOV of an immediate
            if rng.next() % 2 == 0 { relocations[index] = .map(Int(rng.next() % 3)) }
            return [ins(0x18, reg(), imm: small()), ins(0, imm: small()), ins(0xB7, reg(), imm: small())]
        case 4:  // r0 = rX; exit (32 or 64 bits)
            return [ins(rng.next() % 2 == 0 ? 0xBC : 0xBF, 0, reg()), ins(0x95)]
        case 5:  // context loads through r1
            return [
                ins(0x61, reg(), 1, off: Int16(rng.next() % 7) * 4),
                ins(0x61, reg(), 1, off: Int16(rng.next() % 7) * 4),
            ]
        case 6, 7:  // a lookup with its key on the stack, the null check, a load of the value
            relocations[index + 4] = .map(Int(rng.next() % 3))
            return [
                ins(0x62, 10, off: -8, imm: Int32(rng.next() % 5)), ins(0x6A, 10, off: -4, imm: 0),
                ins(0xBF, 2, 10), ins(0x07, 2, imm: -8), ins(0x18, 1), ins(0), ins(0x85, imm: 1),
                ins(0x15, 0, off: 1), ins(0x79, 0, 0),
            ]
        case 8:  // redirect_map
            relocations[index] = .map(Int(rng.next() % 3))
            return [
                ins(0x18, 1), ins(0), ins(0xB7, 2, imm: Int32(rng.next() % 5)), ins(0xB7, 3, imm: 0),
                ins(0x85, imm: 51),
            ]
        default:  // a random ALU, jump or store
            let opcodes: [UInt8] = [
                0x07, 0x0F, 0x17, 0x1F, 0xB7, 0xBF, 0xB4, 0xBC, 0x57, 0x67, 0x77, 0x15, 0x55, 0x2D, 0x63, 0x7B,
            ]
            let opcode = opcodes[Int(rng.next() % UInt64(opcodes.count))]
            return [
                ins(
                    opcode, opcode == 0x63 || opcode == 0x7B ? 10 : reg(), reg(),
                    off: opcode == 0x63 || opcode == 0x7B ? -16 : jump(), imm: small())
            ]
        }
    }

    struct Outcome: Equatable {
        var action: UInt32
        var registers: [UInt64]
        var packet: [UInt8]
        var maps: [String]
        var reports: [String]
    }

    static func run(_ code: [RawInstruction], _ relocations: [Int: Relocation], specialise: Bool) throws -> Outcome {
        let object = BPFObject(instructions: code, maps: maps, relocations: relocations)
        let loaded = try LoadedBPFObject(object, cpus: 1, specialise: specialise)
        _ = loaded.maps[0].set(key: [1, 0, 0, 0], value: [7, 0, 0, 0, 0, 0, 0, 0])
        _ = loaded.maps[1].set(key: [2, 0, 0, 0, 0, 0], value: [9, 0, 0, 0, 0, 0, 0, 0])
        let machine = BPFMachine(loaded: loaded, program: loaded.object.programs[0], budget: 2000)
        let frame = TestFrame((0..<60).map { UInt8($0) })
        var context = frame.context
        let action = machine.run(&context)
        return Outcome(
            action: action.rawValue, registers: (0...10).map { machine.registers[$0] }, packet: frame.bytes,
            maps: loaded.maps.map { "\($0.entries())" }, reports: loaded.log.drain().map { "\($0.place): \($0.text)" })
    }

    @Test func fusedAndPlainDecodingsAgree() throws {
        var rng = SplitMix64(seed: 0xF05E)
        var fused = 0
        for _ in 0..<2000 {
            var code: [RawInstruction] = []
            var relocations: [Int: Relocation] = [:]
            for _ in 0..<(2 + rng.next() % 8) { code += Self.snippet(&rng, at: code.count, relocations: &relocations) }
            code.append(ins(0x95))
            let plain = try Self.run(code, relocations, specialise: false)
            let special = try Self.run(code, relocations, specialise: true)
            #expect(plain == special, "\(code)")
            if plain != special { return }
            let loaded = try LoadedBPFObject(
                BPFObject(instructions: code, maps: Self.maps, relocations: relocations), cpus: 1)
            fused +=
                (0..<code.count).filter {
                    loaded.code[$0].op.rawValue >= Op.movAdd64.rawValue
                        && loaded.code[$0].op.rawValue < Op.ldimm64.rawValue
                }.count
        }
        // The patterns were fused, not merely decoded alike.
        #expect(fused > 2000)
    }
}
