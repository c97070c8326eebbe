import Testing

@testable import XDPEmuBPF
@testable import XDPEmuCore

/// The instructions chosen at load time (Decoder+Fuse.swift) behave as the instructions they stand for: each
/// program runs where the pair is fused and where a jump target keeps it apart.
@Suite struct FusedInstructionTests {
    let array = BPFMapDefinition(
        name: "counts", type: .array, keySize: 4, valueSize: 4, maxEntries: 4, flags: 0, initialValue: nil,
        readOnly: false)
    let hash = BPFMapDefinition(
        name: "macs", type: .hash, keySize: 6, valueSize: 4, maxEntries: 8, flags: 0, initialValue: nil,
        readOnly: false)

    /// Loads `code` with `maps` (LD_IMM64 of map 0 at the `mapLoads` indexes), lets `prepare` fill the maps, and
    /// runs it on a 64-byte frame.
    func run(
        _ code: [RawInstruction], maps: [BPFMapDefinition] = [], mapLoads: [Int] = [],
        prepare: (LoadedBPFObject) -> Void = { _ in }
    ) throws -> (action: XDPAction, r0: UInt64, machine: BPFMachine) {
        var relocations: [Int: Relocation] = [:]
        for index in mapLoads { relocations[index] = .map(0) }
        let loaded = try LoadedBPFObject(BPFObject(instructions: code, maps: maps, relocations: relocations), cpus: 1)
        prepare(loaded)
        let machine = BPFMachine(loaded: loaded, program: loaded.object.programs[0])
        let frame = TestFrame([UInt8](repeating: 0xAB, count: 64))
        var context = frame.context
        let action = machine.run(&context)
        return (action, machine.registers[0], machine)
    }

    @Test func pairedLoadsReadBothFieldsAndReportTheOneThatFaults() throws {
        // r2 = data, r3 = data_end (a pair), r0 = r3 - r2.
        let length = [ins(0x61, 2, 1, off: 0), ins(0x61, 3, 1, off: 4), ins(0xBF, 0, 3), ins(0x1F, 0, 2), exitInsn]
        #expect(try run(length).r0 == 64)
        // The same with the second load a jump target (not fused): r3 is still loaded by it.
        let apart = [
            ins(0x61, 2, 1, off: 0), ins(0x05, off: 0), ins(0x61, 3, 1, off: 4), ins(0xBF, 0, 3), ins(0x1F, 0, 2),
            exitInsn,
        ]
        #expect(try run(apart).r0 == 64)
        // The second of a pair reads past the 24-byte context: the fault names instruction 1.
        let result = try run([ins(0x61, 2, 1, off: 0), ins(0x61, 3, 1, off: 24), exitInsn])
        #expect(result.action == .aborted)
        let message = result.machine.loaded.log.drain().first
        #expect(message?.place == "section xdp, instruction 1")
        #expect(message?.text.contains("load of 4 bytes") == true)
    }

    @Test func contextLoadsKnownAtLoadTimeAndOthersReadTheSameFields() throws {
        // data_end - data through r1 at entry (known to be the context), then through r6 = r1 (not known), then
        // through r1 after a jump target (not known).
        let known = [ins(0x61, 2, 1, off: 0), ins(0x61, 3, 1, off: 4), ins(0xBF, 0, 3), ins(0x1F, 0, 2), exitInsn]
        let copied = [ins(0xBF, 6, 1)] + known.map { $0.src == 1 ? ins($0.opcode, $0.dst, 6, off: $0.offset) : $0 }
        let joined = [ins(0x05, off: 0)] + known
        for code in [known, copied, joined] { #expect(try run(code).r0 == 64) }
        // The ingress ifindex (offset 12) and a field past the context (24: faults).
        #expect(try run([ins(0x61, 0, 1, off: 12), exitInsn]).r0 == 1)
        #expect(try run([ins(0x61, 0, 1, off: 24), exitInsn]).action == .aborted)
    }

    @Test func boundsChecksJumpOnlyPastTheEnd() throws {
        // r2 = data, r3 = data_end; r1 = r2 + N; if r1 > r3 (or r3 < r1) goto drop; return 2 else 1.
        func check(_ n: Int32, reversed: Bool) throws -> UInt64 {
            let jump = reversed ? ins(0xAD, 3, 1, off: 2) : ins(0x2D, 1, 3, off: 2)
            return try run([
                ins(0x61, 2, 1, off: 0), ins(0x61, 3, 1, off: 4), ins(0xBF, 1, 2), ins(0x07, 1, imm: n), jump,
                ins(0xB7, 0, imm: 2), exitInsn, ins(0xB7, 0, imm: 1), exitInsn,
            ]).r0
        }
        for reversed in [false, true] {
            #expect(try check(64, reversed: reversed) == 2)
            #expect(try check(65, reversed: reversed) == 1)
        }
    }

    /// *(u32 *)(r10 - 4) = key; r2 = r10 - 4; r1 = map; call lookup; if r0 == 0 goto miss; r0 = *(u32 *)r0.
    func lookup(key: Int32, separate: Bool) -> (code: [RawInstruction], mapLoads: [Int]) {
        let head = [ins(0x62, 10, off: -4, imm: key), ins(0xBF, 2, 10), ins(0x07, 2, imm: -4)]
        let load = [ins(0x18, 1, 1), ins(0)]
        // `separate`: the map is loaded before the key pointer, so the LD_IMM64 is not next to the call.
        let body = separate ? load + head : head + load
        let code =
            body + [
                ins(0x85, imm: 1), ins(0x15, 0, off: 2), ins(0x61, 0, 0), exitInsn, ins(0xB7, 0, imm: 99), exitInsn,
            ]
        return (code, [separate ? 0 : 3])
    }

    @Test func lookupsOfKnownMapsFindHitsAndMisses() throws {
        for separate in [false, true] {
            let hit = lookup(key: 1, separate: separate)
            let found = try run(hit.code, maps: [array], mapLoads: hit.mapLoads) {
                _ = $0.maps[0].set(key: [1, 0, 0, 0], value: [7, 0, 0, 0])
            }
            #expect(found.r0 == 7)
            let miss = lookup(key: 4, separate: separate)
            #expect(try run(miss.code, maps: [array], mapLoads: miss.mapLoads).r0 == 99)
        }
        // A hash map keyed by the frame's first 6 bytes (ab:ab:ab:ab:ab:ab).
        let code = [
            ins(0x61, 2, 1, off: 0), ins(0x18, 1, 1), ins(0), ins(0x85, imm: 1), ins(0x15, 0, off: 2),
            ins(0x61, 0, 0), exitInsn, ins(0xB7, 0, imm: 99), exitInsn,
        ]
        let key = [UInt8](repeating: 0xAB, count: 6)
        #expect(
            try run(code, maps: [hash], mapLoads: [1]) { _ = $0.maps[0].set(key: key, value: [5, 0, 0, 0]) }.r0 == 5)
        #expect(try run(code, maps: [hash], mapLoads: [1]).r0 == 99)
    }

    @Test func aLookupReachedByAJumpIsNotSpecialised() throws {
        // r1 = 12345; if r0 == 2 goto call; r1 = map; call: lookup; return XDP_PASS. Falling through, r1 is the
        // map; jumping, it is no map reference and the lookup faults, although an LD_IMM64 of the map comes
        // right before the call.
        func code(_ r0: Int32) -> [RawInstruction] {
            [
                ins(0x62, 10, off: -4, imm: 0), ins(0xBF, 2, 10), ins(0x07, 2, imm: -4), ins(0xB7, 0, imm: r0),
                ins(0xB7, 1, imm: 12345), ins(0x15, 0, off: 2, imm: 2), ins(0x18, 1, 1), ins(0), ins(0x85, imm: 1),
                ins(0xB7, 0, imm: 2), exitInsn,
            ]
        }
        #expect(try run(code(1), maps: [array], mapLoads: [6]).action == .pass)
        #expect(try run(code(2), maps: [array], mapLoads: [6]).action == .aborted)
    }

    @Test func shiftOrLoadImmediateAndMoveExitMatchTheirPairs() throws {
        // w1 = 0x12; w3 = 0x34; w1 <<= 8; w1 |= w3 (fused), and the same with the OR a jump target.
        let shiftOr = [
            ins(0xB4, 1, imm: 0x12), ins(0xB4, 3, imm: 0x34), ins(0x64, 1, imm: 8), ins(0x4C, 1, 3), ins(0xBF, 0, 1),
            exitInsn,
        ]
        #expect(try run(shiftOr).r0 == 0x1234)
        var apart = shiftOr
        apart.insert(ins(0x05, off: 0), at: 3)
        #expect(try run(apart).r0 == 0x1234)
        // 64-bit: r1 = 0xAB; r1 <<= 40; r1 |= r3 (0x34).
        let wide = [
            ins(0xB7, 1, imm: 0xAB), ins(0xB7, 3, imm: 0x34), ins(0x67, 1, imm: 40), ins(0x4F, 1, 3), ins(0xBF, 0, 1),
            exitInsn,
        ]
        #expect(try run(wide).r0 == 0xAB00_0000_0034)
        // r1 = 3; r1 <<= 4; r1 |= r1: the OR sees the shifted value (0x30).
        #expect(
            try run([ins(0xB7, 1, imm: 3), ins(0x67, 1, imm: 4), ins(0x4F, 1, 1), ins(0xBF, 0, 1), exitInsn]).r0 == 0x30
        )
        // r1 = 0x1_0000_0002 (LD_IMM64); r3 = -1 (sign-extended); r0 = r1 + r3.
        let load = [
            ins(0x18, 1, imm: 2), ins(0, imm: 1), ins(0xB7, 3, imm: -1), ins(0xBF, 0, 1), ins(0x0F, 0, 3), exitInsn,
        ]
        #expect(try run(load).r0 == 0x1_0000_0001)
        // r6 = 0xFFFF_FFFF_0000_0002; w0 = w6 (zero-extends) or r0 = r6; exit.
        let value = [ins(0x18, 6, imm: 2), ins(0, imm: -1)]
        let narrow = try run(value + [ins(0xBC, 0, 6), exitInsn])
        #expect(narrow.r0 == 2 && narrow.action == .pass)
        let wide64 = try run(value + [ins(0xBF, 0, 6), exitInsn])
        #expect(wide64.r0 == 0xFFFF_FFFF_0000_0002)
        #expect(narrow.machine.code[2].op == .movExit32 && wide64.machine.code[2].op == .movExit64)
    }

    @Test func instructionsAreCountedInSlots() throws {
        let result = try run([
            ins(0x61, 2, 1, off: 0), ins(0x61, 3, 1, off: 4), ins(0x18, 4), ins(0), ins(0xB7, 0, imm: 2), exitInsn,
        ])
        #expect(result.action == .pass)
        #expect(result.machine.lastInstructionCount == 6)
    }

    @Test func objectsWithMoreMapsThanTheRegionTableAreRefused() {
        let many = (0...VirtualAddress.maxMaps).map { i in
            BPFMapDefinition(
                name: "m\(i)", type: .array, keySize: 4, valueSize: 4, maxEntries: 1, flags: 0, initialValue: nil,
                readOnly: false)
        }
        #expect(throws: BPFObjectError.self) {
            _ = try LoadedBPFObject(BPFObject(instructions: [exitInsn], maps: many, relocations: [:]), cpus: 1)
        }
    }
}
