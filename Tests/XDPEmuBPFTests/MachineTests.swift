import Testing
import XDPEmuTesting

@testable import XDPEmuBPF
@testable import XDPEmuCore

/// A frame buffer and the context a program sees for it, outside any network.
final class TestFrame {
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: 2048, alignment: 64)
    let record = UnsafeMutablePointer<FrameInfo>.allocate(capacity: 1)

    init(_ bytes: [UInt8]) {
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: 2048)
        reset(bytes)
    }

    func reset(_ bytes: [UInt8]) {
        (buffer + 256).copyMemory(from: bytes, byteCount: bytes.count)
        record.initialize(
            to: FrameInfo(
                dataOffset: 256, length: UInt32(bytes.count), metaLength: 0, ingress: 1, arrival: 0, sequence: 1,
                missingBytes: 0, gsoSize: 0))
    }

    var context: XDPContext {
        XDPContext(
            hardStart: buffer, bufferSize: 2048, record: record, rxQueueIndex: 0, now: 1000, programID: 1,
            semantics: .v4_18)
    }

    var bytes: [UInt8] {
        Array(UnsafeRawBufferPointer(start: buffer + Int(record.pointee.dataOffset), count: Int(record.pointee.length)))
    }

    deinit {
        buffer.deallocate()
        record.deallocate()
    }
}

/// Assembles one instruction.
func ins(_ opcode: UInt8, _ dst: UInt8 = 0, _ src: UInt8 = 0, off: Int16 = 0, imm: Int32 = 0) -> RawInstruction {
    RawInstruction(opcode: opcode, dst: dst, src: src, offset: off, imm: imm)
}

let exitInsn = ins(0x95)

/// Runs `code` on a 64-byte frame; returns the action and r0.
func execute(
    _ code: [RawInstruction], maps: [BPFMapDefinition] = [], relocations: [Int: Relocation] = [:],
    budget: Int = 10_000, frame: TestFrame = TestFrame([UInt8](repeating: 0xAB, count: 64))
) throws -> (action: XDPAction, r0: UInt64, machine: BPFMachine) {
    let loaded = try LoadedBPFObject(BPFObject(instructions: code, maps: maps, relocations: relocations), cpus: 2)
    let machine = BPFMachine(loaded: loaded, program: loaded.object.programs[0], budget: budget)
    var context = frame.context
    let action = machine.run(&context)
    return (action, machine.registers[0], machine)
}

/// The instruction semantics the kernel defines where C leaves them open, one assembled program each.
@Suite struct MachineTests {
    /// r0 = a; r1 = b; r0 OP= r1 (64 or 32 bits); exit.
    func binary(_ opcode: UInt8, _ a: Int32, _ b: Int32, off: Int16 = 0) throws -> UInt64 {
        try execute([ins(0xB7, 0, imm: a), ins(0xB7, 1, imm: b), ins(opcode, 0, 1, off: off), exitInsn]).r0
    }

    @Test func divisionByZeroGivesZeroAndModuloKeepsTheDividend() throws {
        #expect(try binary(0x3F, 7, 0) == 0)  // div64 reg
        #expect(try binary(0x9F, 7, 0) == 7)  // mod64 reg
        #expect(try binary(0x3C, 7, 0) == 0)  // div32
        #expect(try binary(0x9C, -7, 0) == 0xFFFF_FFF9)  // mod32: dividend kept, upper half cleared
        #expect(try binary(0x3F, 7, 0, off: 1) == 0)  // sdiv
        #expect(try binary(0x9F, -7, 0, off: 1) == UInt64(bitPattern: -7))  // smod
        #expect(try execute([ins(0xB7, 0, imm: 9), ins(0x37, 0, imm: 0), exitInsn]).r0 == 0)  // div64 imm 0
    }

    @Test func signedDivisionOfTheMinimumByMinusOne() throws {
        let min64: [RawInstruction] = [
            ins(0x18, 0, imm: 0), ins(0, imm: Int32(bitPattern: 0x8000_0000)), ins(0xB7, 1, imm: -1),
        ]
        #expect(try execute(min64 + [ins(0x3F, 0, 1, off: 1), exitInsn]).r0 == 0x8000_0000_0000_0000)
        #expect(try execute(min64 + [ins(0x9F, 0, 1, off: 1), exitInsn]).r0 == 0)
        #expect(try binary(0x3C, Int32.min, -1, off: 1) == 0x8000_0000)
        #expect(try binary(0x9C, Int32.min, -1, off: 1) == 0)
    }

    @Test func shiftsUseTheLowBitsOfTheCount() throws {
        #expect(try binary(0x6F, 1, 65) == 2)
        #expect(try binary(0x6C, 1, 33) == 2)
        #expect(try binary(0xCC, Int32.min, 31) == 0xFFFF_FFFF)
    }

    @Test func outOfBoundsAccessAbortsAndIsReportedOnce() throws {
        // r2 = ctx->data_end; r0 = *(u8 *)(r2 + 0): one byte past the packet.
        let code = [ins(0x61, 2, 1, off: 4), ins(0x71, 0, 2), exitInsn]
        let frame = TestFrame([UInt8](repeating: 1, count: 64))
        let loaded = try LoadedBPFObject(BPFObject(instructions: code), cpus: 1)
        let machine = BPFMachine(loaded: loaded, program: loaded.object.programs[0])
        for _ in 0..<3 {
            var context = frame.context
            #expect(machine.run(&context) == .aborted)
        }
        let messages = loaded.log.drain()
        #expect(messages.count == 1)
        #expect(messages.first?.place == "section xdp, instruction 1")
        #expect(messages.first?.text.contains("load of 1 bytes") == true)
        #expect(messages.first?.text.contains("packet offset 64 from data_meta, the packet has 64 bytes") == true)
    }

    @Test func contextIsReadOnlyAndMapReferencesAreNotPointers() throws {
        #expect(try execute([ins(0x62, 1, off: 0, imm: 5), ins(0xB7, 0, imm: 2), exitInsn]).action == .aborted)
        let map = BPFMapDefinition(
            name: "a", type: .array, keySize: 4, valueSize: 8, maxEntries: 4, flags: 0, initialValue: nil,
            readOnly: false)
        let load = [ins(0x18, 1, 1), ins(0), ins(0x79, 0, 1), exitInsn]
        #expect(try execute(load, maps: [map], relocations: [0: .map(0)]).action == .aborted)
    }

    @Test func theBudgetEndsEndlessLoops() throws {
        let result = try execute([ins(0x05, off: -1)], budget: 1000)
        #expect(result.action == .aborted)
        #expect(result.machine.lastInstructionCount >= 1000 && result.machine.lastInstructionCount <= 1002)
    }

    @Test func packetWritesReachTheFrame() throws {
        // r2 = data; *(u16 *)(r2 + 2) = 0xbeef; r0 = XDP_PASS
        let frame = TestFrame([UInt8](repeating: 0, count: 64))
        let result = try execute(
            [ins(0x61, 2, 1), ins(0x6A, 2, off: 2, imm: 0xBEEF), ins(0xB7, 0, imm: 2), exitInsn], frame: frame)
        #expect(result.action == .pass)
        #expect(Array(frame.bytes.prefix(4)) == [0, 0, 0xEF, 0xBE])
    }

    @Test func byteSwapsAndSignExtension() throws {
        let value: [RawInstruction] = [ins(0x18, 0, imm: Int32(bitPattern: 0x8899_AABB)), ins(0, imm: 0x1122_3344)]
        #expect(try execute(value + [ins(0xDC, 0, imm: 16), exitInsn]).r0 == 0xBBAA)
        #expect(try execute(value + [ins(0xDC, 0, imm: 64), exitInsn]).r0 == 0xBBAA_9988_4433_2211)
        #expect(try execute(value + [ins(0xD4, 0, imm: 32), exitInsn]).r0 == 0x8899_AABB)
        // le64 changes nothing on a little-endian host, and the program goes on after it.
        let le64 = try execute(value + [ins(0xD4, 0, imm: 64), ins(0x07, 0, imm: 1), exitInsn])
        #expect(le64.r0 == 0x1122_3344_8899_AABC && le64.machine.lastInstructionCount == 5)
        #expect(try execute(value + [ins(0xD7, 0, imm: 32), exitInsn]).r0 == 0xBBAA_9988)
        #expect(try execute(value + [ins(0xBF, 1, 0, off: 8), ins(0xBF, 0, 1), exitInsn]).r0 == 0xFFFF_FFFF_FFFF_FFBB)
        #expect(try execute(value + [ins(0xBC, 1, 0, off: 16), ins(0xBF, 0, 1), exitInsn]).r0 == 0xFFFF_AABB)
    }

    @Test func invalidInstructionsFaultOnlyWhenReached() throws {
        // An unknown opcode behind a jump that is always taken: the program runs.
        #expect(try execute([ins(0xB7, 0, imm: 2), ins(0x05, off: 1), ins(0xFF), exitInsn]).action == .pass)
        #expect(try execute([ins(0xB7, 0, imm: 2), ins(0xFF), exitInsn]).action == .aborted)
        #expect(try execute([ins(0xB7, 10, imm: 2), exitInsn]).action == .aborted)  // r10 is read-only
        #expect(try execute([ins(0x05, off: 100)]).action == .aborted)  // jump outside the code
        #expect(try execute([ins(0xB7, 0, imm: 2)]).action == .aborted)  // runs off the end
    }
}
