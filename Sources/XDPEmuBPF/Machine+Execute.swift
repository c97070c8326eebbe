// The interpreter's loop: one `switch` over the pre-decoded instruction, with the kernel's semantics for each
// (see Machine.swift for the memory and fault rules).
//
// Each case reads only the fields it needs, through the instruction's pointer, so that a dispatch is a load of
// the opcode and an indirect jump. Cases that go on to the next instruction end with `continue`; a jump (and
// a call) leaves the `switch` for the code after it, which moves to the target. Instructions are counted per
// straight run: a taken jump, a call and an exit charge the budget with the slots run since the last target
// (fused pairs and LD_IMM64 count as the slots they take), and a jump or call past the budget faults.

import XDPEmuCore

extension UnsafeMutablePointer where Pointee == Instruction {
    @inline(__always) var d: Int { Int(pointee.dst) }
    @inline(__always) var s: Int { Int(pointee.src) }
    @inline(__always) var imm: Int64 { pointee.imm }
    @inline(__always) var off: Int32 { pointee.off }
}

extension BPFMachine {
    /// The loop. Returns the instructions left of the budget; `fault` says whether it ended with a fault.
    @inline(__always)
    func execute(_ c: inout XDPContext) -> Int {
        let R = registers
        let code = self.code
        let frames = self.frames
        var ip = code + program.entry
        var segment = ip
        var budget = self.budget
        var depth = 0
        while true {
            let i = ip
            ip += 1
            switch i.pointee.op {
            case .fault:
                fault = .invalid(reason: Int(i.imm))
                faultPC = i - code
                return budget &- slots(segment, ip)
            // ALU64 immediate
            case .add64i:
                R[i.d] = R[i.d] &+ UInt64(bitPattern: i.imm)
                continue
            case .sub64i:
                R[i.d] = R[i.d] &- UInt64(bitPattern: i.imm)
                continue
            case .mul64i:
                R[i.d] = R[i.d] &* UInt64(bitPattern: i.imm)
                continue
            case .div64i:
                let v = UInt64(bitPattern: i.imm)
                R[i.d] = v == 0 ? 0 : R[i.d] / v
                continue
            case .or64i:
                R[i.d] = R[i.d] | UInt64(bitPattern: i.imm)
                continue
            case .and64i:
                R[i.d] = R[i.d] & UInt64(bitPattern: i.imm)
                continue
            case .lsh64i:
                R[i.d] = R[i.d] << (UInt64(bitPattern: i.imm) & 63)
                continue
            case .rsh64i:
                R[i.d] = R[i.d] >> (UInt64(bitPattern: i.imm) & 63)
                continue
            case .mod64i:
                let v = UInt64(bitPattern: i.imm)
                if v != 0 { R[i.d] = R[i.d] % v }
                continue
            case .xor64i:
                R[i.d] = R[i.d] ^ UInt64(bitPattern: i.imm)
                continue
            case .mov64i:
                R[i.d] = UInt64(bitPattern: i.imm)
                continue
            case .arsh64i:
                R[i.d] = UInt64(bitPattern: Int64(bitPattern: R[i.d]) >> (i.imm & 63))
                continue
            case .sdiv64i:
                R[i.d] = Self.sdiv64(R[i.d], UInt64(bitPattern: i.imm))
                continue
            case .smod64i:
                R[i.d] = Self.smod64(R[i.d], UInt64(bitPattern: i.imm))
                continue
            // ALU64 register
            case .add64r:
                R[i.d] = R[i.d] &+ R[i.s]
                continue
            case .sub64r:
                R[i.d] = R[i.d] &- R[i.s]
                continue
            case .mul64r:
                R[i.d] = R[i.d] &* R[i.s]
                continue
            case .div64r:
                let v = R[i.s]
                R[i.d] = v == 0 ? 0 : R[i.d] / v
                continue
            case .or64r:
                R[i.d] = R[i.d] | R[i.s]
                continue
            case .and64r:
                R[i.d] = R[i.d] & R[i.s]
                continue
            case .lsh64r:
                R[i.d] = R[i.d] << (R[i.s] & 63)
                continue
            case .rsh64r:
                R[i.d] = R[i.d] >> (R[i.s] & 63)
                continue
            case .mod64r:
                let v = R[i.s]
                if v != 0 { R[i.d] = R[i.d] % v }
                continue
            case .xor64r:
                R[i.d] = R[i.d] ^ R[i.s]
                continue
            case .mov64r:
                R[i.d] = R[i.s]
                continue
            case .arsh64r:
                R[i.d] = UInt64(bitPattern: Int64(bitPattern: R[i.d]) >> (R[i.s] & 63))
                continue
            case .sdiv64r:
                R[i.d] = Self.sdiv64(R[i.d], R[i.s])
                continue
            case .smod64r:
                R[i.d] = Self.smod64(R[i.d], R[i.s])
                continue
            case .neg64:
                R[i.d] = 0 &- R[i.d]
                continue
            case .movsx64b:
                R[i.d] = UInt64(bitPattern: Int64(Int8(truncatingIfNeeded: R[i.s])))
                continue
            case .movsx64h:
                R[i.d] = UInt64(bitPattern: Int64(Int16(truncatingIfNeeded: R[i.s])))
                continue
            case .movsx64w:
                R[i.d] = UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: R[i.s])))
                continue
            // ALU32 immediate
            case .add32i:
                R[i.d] = UInt64(UInt32(truncatingIfNeeded: R[i.d]) &+ UInt32(truncatingIfNeeded: i.imm))
                continue
            case .sub32i:
                R[i.d] = UInt64(UInt32(truncatingIfNeeded: R[i.d]) &- UInt32(truncatingIfNeeded: i.imm))
                continue
            case .mul32i:
                R[i.d] = UInt64(UInt32(truncatingIfNeeded: R[i.d]) &* UInt32(truncatingIfNeeded: i.imm))
                continue
            case .div32i:
                let v = UInt32(truncatingIfNeeded: i.imm)
                R[i.d] = v == 0 ? 0 : UInt64(UInt32(truncatingIfNeeded: R[i.d]) / v)
                continue
            case .or32i:
                R[i.d] = UInt64(UInt32(truncatingIfNeeded: R[i.d]) | UInt32(truncatingIfNeeded: i.imm))
                continue
            case .and32i:
                R[i.d] = UInt64(UInt32(truncatingIfNeeded: R[i.d]) & UInt32(truncatingIfNeeded: i.imm))
                continue
            case .lsh32i:
                R[i.d] = UInt64(UInt32(truncatingIfNeeded: R[i.d]) << (UInt32(truncatingIfNeeded: i.imm) & 31))
                continue
            case .rsh32i:
                R[i.d] = UInt64(UInt32(truncatingIfNeeded: R[i.d]) >> (UInt32(truncatingIfNeeded: i.imm) & 31))
                continue
            case .mod32i:
                let v = UInt32(truncatingIfNeeded: i.imm)
                let x = UInt32(truncatingIfNeeded: R[i.d])
                R[i.d] = UInt64(v == 0 ? x : x % v)
                continue
            case .xor32i:
                R[i.d] = UInt64(UInt32(truncatingIfNeeded: R[i.d]) ^ UInt32(truncatingIfNeeded: i.imm))
                continue
            case .mov32i:
                R[i.d] = UInt64(UInt32(truncatingIfNeeded: i.imm))
                continue
            case .arsh32i:
                R[i.d] = UInt64(
                    UInt32(bitPattern: Int32(truncatingIfNeeded: R[i.d]) >> (Int32(truncatingIfNeeded: i.imm) & 31)))
                continue
            case .sdiv32i:
                R[i.d] = Self.sdiv32(R[i.d], UInt64(bitPattern: i.imm))
                continue
            case .smod32i:
                R[i.d] = Self.smod32(R[i.d], UInt64(bitPattern: i.imm))
                continue
            // ALU32 register
            case .add32r:
                R[i.d] = UInt64(UInt32(truncatingIfNeeded: R[i.d]) &+ UInt32(truncatingIfNeeded: R[i.s]))
                continue
            case .sub32r:
                R[i.d] = UInt64(UInt32(truncatingIfNeeded: R[i.d]) &- UInt32(truncatingIfNeeded: R[i.s]))
                continue
            case .mul32r:
                R[i.d] = UInt64(UInt32(truncatingIfNeeded: R[i.d]) &* UInt32(truncatingIfNeeded: R[i.s]))
                continue
            case .div32r:
                let v = UInt32(truncatingIfNeeded: R[i.s])
                R[i.d] = v == 0 ? 0 : UInt64(UInt32(truncatingIfNeeded: R[i.d]) / v)
                continue
            case .or32r:
                R[i.d] = UInt64(UInt32(truncatingIfNeeded: R[i.d]) | UInt32(truncatingIfNeeded: R[i.s]))
                continue
            case .and32r:
                R[i.d] = UInt64(UInt32(truncatingIfNeeded: R[i.d]) & UInt32(truncatingIfNeeded: R[i.s]))
                continue
            case .lsh32r:
                R[i.d] = UInt64(UInt32(truncatingIfNeeded: R[i.d]) << (UInt32(truncatingIfNeeded: R[i.s]) & 31))
                continue
            case .rsh32r:
                R[i.d] = UInt64(UInt32(truncatingIfNeeded: R[i.d]) >> (UInt32(truncatingIfNeeded: R[i.s]) & 31))
                continue
            case .mod32r:
                let v = UInt32(truncatingIfNeeded: R[i.s])
                let x = UInt32(truncatingIfNeeded: R[i.d])
                R[i.d] = UInt64(v == 0 ? x : x % v)
                continue
            case .xor32r:
                R[i.d] = UInt64(UInt32(truncatingIfNeeded: R[i.d]) ^ UInt32(truncatingIfNeeded: R[i.s]))
                continue
            case .mov32r:
                R[i.d] = UInt64(UInt32(truncatingIfNeeded: R[i.s]))
                continue
            case .arsh32r:
                R[i.d] = UInt64(
                    UInt32(bitPattern: Int32(truncatingIfNeeded: R[i.d]) >> (Int32(truncatingIfNeeded: R[i.s]) & 31)))
                continue
            case .sdiv32r:
                R[i.d] = Self.sdiv32(R[i.d], R[i.s])
                continue
            case .smod32r:
                R[i.d] = Self.smod32(R[i.d], R[i.s])
                continue
            case .neg32:
                R[i.d] = UInt64(0 &- UInt32(truncatingIfNeeded: R[i.d]))
                continue
            case .movsx32b:
                R[i.d] = UInt64(UInt32(bitPattern: Int32(Int8(truncatingIfNeeded: R[i.s]))))
                continue
            case .movsx32h:
                R[i.d] = UInt64(UInt32(bitPattern: Int32(Int16(truncatingIfNeeded: R[i.s]))))
                continue
            // Byte order (the host is little-endian, as x86-64 and arm64 Linux are)
            case .le16:
                R[i.d] = R[i.d] & 0xFFFF
                continue
            case .le32:
                R[i.d] = R[i.d] & 0xFFFF_FFFF
                continue
            case .le64: continue
            case .be16:
                R[i.d] = UInt64(UInt16(truncatingIfNeeded: R[i.d]).byteSwapped)
                continue
            case .be32:
                R[i.d] = UInt64(UInt32(truncatingIfNeeded: R[i.d]).byteSwapped)
                continue
            case .be64:
                R[i.d] = R[i.d].byteSwapped
                continue
            // Jumps
            case .ja: break
            case .jeq64i: guard R[i.d] == UInt64(bitPattern: i.imm) else { continue }
            case .jgt64i: guard R[i.d] > UInt64(bitPattern: i.imm) else { continue }
            case .jge64i: guard R[i.d] >= UInt64(bitPattern: i.imm) else { continue }
            case .jset64i: guard R[i.d] & UInt64(bitPattern: i.imm) != 0 else { continue }
            case .jne64i: guard R[i.d] != UInt64(bitPattern: i.imm) else { continue }
            case .jsgt64i: guard Int64(bitPattern: R[i.d]) > i.imm else { continue }
            case .jsge64i: guard Int64(bitPattern: R[i.d]) >= i.imm else { continue }
            case .jlt64i: guard R[i.d] < UInt64(bitPattern: i.imm) else { continue }
            case .jle64i: guard R[i.d] <= UInt64(bitPattern: i.imm) else { continue }
            case .jslt64i: guard Int64(bitPattern: R[i.d]) < i.imm else { continue }
            case .jsle64i: guard Int64(bitPattern: R[i.d]) <= i.imm else { continue }
            case .jeq64r: guard R[i.d] == R[i.s] else { continue }
            case .jgt64r: guard R[i.d] > R[i.s] else { continue }
            case .jge64r: guard R[i.d] >= R[i.s] else { continue }
            case .jset64r: guard R[i.d] & R[i.s] != 0 else { continue }
            case .jne64r: guard R[i.d] != R[i.s] else { continue }
            case .jsgt64r: guard Int64(bitPattern: R[i.d]) > Int64(bitPattern: R[i.s]) else { continue }
            case .jsge64r: guard Int64(bitPattern: R[i.d]) >= Int64(bitPattern: R[i.s]) else { continue }
            case .jlt64r: guard R[i.d] < R[i.s] else { continue }
            case .jle64r: guard R[i.d] <= R[i.s] else { continue }
            case .jslt64r: guard Int64(bitPattern: R[i.d]) < Int64(bitPattern: R[i.s]) else { continue }
            case .jsle64r: guard Int64(bitPattern: R[i.d]) <= Int64(bitPattern: R[i.s]) else { continue }
            case .jeq32i:
                guard UInt32(truncatingIfNeeded: R[i.d]) == UInt32(truncatingIfNeeded: i.imm) else { continue }
            case .jgt32i: guard UInt32(truncatingIfNeeded: R[i.d]) > UInt32(truncatingIfNeeded: i.imm) else { continue }
            case .jge32i:
                guard UInt32(truncatingIfNeeded: R[i.d]) >= UInt32(truncatingIfNeeded: i.imm) else { continue }
            case .jset32i:
                guard UInt32(truncatingIfNeeded: R[i.d]) & UInt32(truncatingIfNeeded: i.imm) != 0 else { continue }
            case .jne32i:
                guard UInt32(truncatingIfNeeded: R[i.d]) != UInt32(truncatingIfNeeded: i.imm) else { continue }
            case .jsgt32i: guard Int32(truncatingIfNeeded: R[i.d]) > Int32(truncatingIfNeeded: i.imm) else { continue }
            case .jsge32i: guard Int32(truncatingIfNeeded: R[i.d]) >= Int32(truncatingIfNeeded: i.imm) else { continue }
            case .jlt32i: guard UInt32(truncatingIfNeeded: R[i.d]) < UInt32(truncatingIfNeeded: i.imm) else { continue }
            case .jle32i:
                guard UInt32(truncatingIfNeeded: R[i.d]) <= UInt32(truncatingIfNeeded: i.imm) else { continue }
            case .jslt32i: guard Int32(truncatingIfNeeded: R[i.d]) < Int32(truncatingIfNeeded: i.imm) else { continue }
            case .jsle32i: guard Int32(truncatingIfNeeded: R[i.d]) <= Int32(truncatingIfNeeded: i.imm) else { continue }
            case .jeq32r:
                guard UInt32(truncatingIfNeeded: R[i.d]) == UInt32(truncatingIfNeeded: R[i.s]) else { continue }
            case .jgt32r:
                guard UInt32(truncatingIfNeeded: R[i.d]) > UInt32(truncatingIfNeeded: R[i.s]) else { continue }
            case .jge32r:
                guard UInt32(truncatingIfNeeded: R[i.d]) >= UInt32(truncatingIfNeeded: R[i.s]) else { continue }
            case .jset32r:
                guard UInt32(truncatingIfNeeded: R[i.d]) & UInt32(truncatingIfNeeded: R[i.s]) != 0 else { continue }
            case .jne32r:
                guard UInt32(truncatingIfNeeded: R[i.d]) != UInt32(truncatingIfNeeded: R[i.s]) else { continue }
            case .jsgt32r: guard Int32(truncatingIfNeeded: R[i.d]) > Int32(truncatingIfNeeded: R[i.s]) else { continue }
            case .jsge32r:
                guard Int32(truncatingIfNeeded: R[i.d]) >= Int32(truncatingIfNeeded: R[i.s]) else { continue }
            case .jlt32r:
                guard UInt32(truncatingIfNeeded: R[i.d]) < UInt32(truncatingIfNeeded: R[i.s]) else { continue }
            case .jle32r:
                guard UInt32(truncatingIfNeeded: R[i.d]) <= UInt32(truncatingIfNeeded: R[i.s]) else { continue }
            case .jslt32r: guard Int32(truncatingIfNeeded: R[i.d]) < Int32(truncatingIfNeeded: R[i.s]) else { continue }
            case .jsle32r:
                guard Int32(truncatingIfNeeded: R[i.d]) <= Int32(truncatingIfNeeded: R[i.s]) else { continue }
            case .movAdd64:
                R[i.d] = R[i.s] &+ UInt64(bitPattern: i.imm)
                ip += 1
                continue
            case .movAddJgt:
                R[i.d] = R[i.s] &+ UInt64(bitPattern: i.imm)
                ip += 2
                guard R[i.d] > R[Int(i.pointee.aux)] else { continue }
            case .lookupConstant, .lookupArray, .lookupHash:
                R[1] = UInt64(bitPattern: i.imm)
                ip += Int(i.pointee.dst)
                let index = Int(i.pointee.aux)
                let done =
                    switch i.pointee.op {
                    case .lookupArray: lookup(ArrayMap.self, index, &c)
                    case .lookupHash: lookup(HashMap.self, index, &c)
                    default: lookup(BPFMap.self, index, &c)
                    }
                if !done {
                    faultPC = ip - code - 1
                    return budget
                }
                if i.pointee.src == 0 { continue }
                ip += 1
                guard R[0] == 0 else { continue }
            case .callLookup:
                if !lookupFast(&c) {
                    faultPC = i - code
                    return budget
                }
                continue
            case .callRedirectMap:
                if _slowPath(R[3] != 0) { noteRedirectFlags(i - code, c) }
                if !redirectMapFast(&c) {
                    faultPC = i - code
                    return budget
                }
                continue
            case .redirectDevMap:
                if _slowPath(R[3] != 0) { noteRedirectFlags(i - code, c) }
                if !redirect(intoDevMap: Int(i.pointee.aux), &c) {
                    faultPC = i - code
                    return budget
                }
                continue
            case .callHelper:
                if !callHelper(i.imm, &c) {
                    faultPC = i - code
                    return budget
                }
                continue
            case .tailCall:
                var ok = true
                guard let target = tailCallTarget(depth: depth, ok: &ok) else {
                    if ok { continue }
                    faultPC = i - code
                    return budget
                }
                // As a jump to the other program's entry, with the same context in r1 and the same stack frame.
                budget &-= slots(segment, ip)
                ip = code + target
                segment = ip
                if budget < 0 { return exhausted(ip - code, budget) }
                continue
            case .callLocal:
                guard depth < VirtualAddress.maxFrames - 1 else {
                    fault = .callDepth
                    faultPC = i - code
                    return budget
                }
                frames[depth] = CallFrame(returnPC: ip - code, r6: R[6], r7: R[7], r8: R[8], r9: R[9], r10: R[10])
                depth += 1
                R[10] = R[10] &+ UInt64(VirtualAddress.frameSize)
            case .movExit32, .movExit64:
                R[0] = i.pointee.op == .movExit32 ? UInt64(UInt32(truncatingIfNeeded: R[i.s])) : R[i.s]
                ip += 1
                fallthrough
            case .exit:
                budget &-= slots(segment, ip)
                if depth == 0 { return budget }
                depth -= 1
                let f = frames[depth]
                ip = code + f.returnPC
                segment = ip
                R[6] = f.r6
                R[7] = f.r7
                R[8] = f.r8
                R[9] = f.r9
                R[10] = f.r10
                continue
            case .ldimm64:
                R[i.d] = UInt64(bitPattern: i.imm)
                ip += 1
                continue
            case .ldimm64Mov:
                R[i.d] = UInt64(bitPattern: i.imm)
                R[Int(i.pointee.aux)] = UInt64(bitPattern: Int64(i.off))
                ip += 2
                continue
            case .lshOr32:
                R[i.d] = UInt64(
                    UInt32(truncatingIfNeeded: R[i.d]) << (UInt32(truncatingIfNeeded: i.imm) & 31)
                        | UInt32(truncatingIfNeeded: R[Int(i.pointee.aux)]))
                ip += 1
                continue
            case .lshOr64:
                R[i.d] = R[i.d] << (UInt64(bitPattern: i.imm) & 63) | R[Int(i.pointee.aux)]
                ip += 1
                continue
            // Loads
            case .ctxLoad:
                R[i.d] = UInt64(context.load(fromByteOffset: Int(i.off), as: UInt32.self))
                continue
            case .ctxLoad2:
                R[i.d] = UInt64(context.load(fromByteOffset: Int(i.off), as: UInt32.self))
                R[Int(i.pointee.aux)] = UInt64(context.load(fromByteOffset: Int(i.imm), as: UInt32.self))
                ip += 1
                continue
            case .ldxb2:
                if let f = loadPair(i, UInt8.self) { return memoryFault(R[f.s], f.pointee, 1, false, f - code, budget) }
                ip += 1
                continue
            case .ldxh2:
                if let f = loadPair(i, UInt16.self) {
                    return memoryFault(R[f.s], f.pointee, 2, false, f - code, budget)
                }
                ip += 1
                continue
            case .ldxw2:
                if let f = loadPair(i, UInt32.self) {
                    return memoryFault(R[f.s], f.pointee, 4, false, f - code, budget)
                }
                ip += 1
                continue
            case .ldxdw2:
                if let f = loadPair(i, UInt64.self) {
                    return memoryFault(R[f.s], f.pointee, 8, false, f - code, budget)
                }
                ip += 1
                continue
            case .ldxb:
                guard let p = translate(R[i.s] &+ UInt64(bitPattern: Int64(i.off)), 1, write: false) else {
                    return memoryFault(R[i.s], i.pointee, 1, false, i - code, budget)
                }
                R[i.d] = UInt64(p.load(as: UInt8.self))
                continue
            case .ldxh:
                guard let p = translate(R[i.s] &+ UInt64(bitPattern: Int64(i.off)), 2, write: false) else {
                    return memoryFault(R[i.s], i.pointee, 2, false, i - code, budget)
                }
                R[i.d] = UInt64(p.loadUnaligned(as: UInt16.self))
                continue
            case .ldxw:
                guard let p = translate(R[i.s] &+ UInt64(bitPattern: Int64(i.off)), 4, write: false) else {
                    return memoryFault(R[i.s], i.pointee, 4, false, i - code, budget)
                }
                R[i.d] = UInt64(p.loadUnaligned(as: UInt32.self))
                continue
            case .ldxdw:
                guard let p = translate(R[i.s] &+ UInt64(bitPattern: Int64(i.off)), 8, write: false) else {
                    return memoryFault(R[i.s], i.pointee, 8, false, i - code, budget)
                }
                R[i.d] = p.loadUnaligned(as: UInt64.self)
                continue
            case .ldxsb:
                guard let p = translate(R[i.s] &+ UInt64(bitPattern: Int64(i.off)), 1, write: false) else {
                    return memoryFault(R[i.s], i.pointee, 1, false, i - code, budget)
                }
                R[i.d] = UInt64(bitPattern: Int64(p.load(as: Int8.self)))
                continue
            case .ldxsh:
                guard let p = translate(R[i.s] &+ UInt64(bitPattern: Int64(i.off)), 2, write: false) else {
                    return memoryFault(R[i.s], i.pointee, 2, false, i - code, budget)
                }
                R[i.d] = UInt64(bitPattern: Int64(p.loadUnaligned(as: Int16.self)))
                continue
            case .ldxsw:
                guard let p = translate(R[i.s] &+ UInt64(bitPattern: Int64(i.off)), 4, write: false) else {
                    return memoryFault(R[i.s], i.pointee, 4, false, i - code, budget)
                }
                R[i.d] = UInt64(bitPattern: Int64(p.loadUnaligned(as: Int32.self)))
                continue
            // Stores of an immediate
            case .stb:
                guard let p = translate(R[i.d] &+ UInt64(bitPattern: Int64(i.off)), 1, write: true) else {
                    return memoryFault(R[i.d], i.pointee, 1, true, i - code, budget)
                }
                p.storeBytes(of: UInt8(truncatingIfNeeded: i.imm), as: UInt8.self)
                continue
            case .sth:
                guard let p = translate(R[i.d] &+ UInt64(bitPattern: Int64(i.off)), 2, write: true) else {
                    return memoryFault(R[i.d], i.pointee, 2, true, i - code, budget)
                }
                p.storeBytes(of: UInt16(truncatingIfNeeded: i.imm), as: UInt16.self)
                continue
            case .stw:
                guard let p = translate(R[i.d] &+ UInt64(bitPattern: Int64(i.off)), 4, write: true) else {
                    return memoryFault(R[i.d], i.pointee, 4, true, i - code, budget)
                }
                p.storeBytes(of: UInt32(truncatingIfNeeded: i.imm), as: UInt32.self)
                continue
            case .stdw:
                guard let p = translate(R[i.d] &+ UInt64(bitPattern: Int64(i.off)), 8, write: true) else {
                    return memoryFault(R[i.d], i.pointee, 8, true, i - code, budget)
                }
                p.storeBytes(of: UInt64(bitPattern: i.imm), as: UInt64.self)
                continue
            // Stores of a register
            case .stxb:
                guard let p = translate(R[i.d] &+ UInt64(bitPattern: Int64(i.off)), 1, write: true) else {
                    return memoryFault(R[i.d], i.pointee, 1, true, i - code, budget)
                }
                p.storeBytes(of: UInt8(truncatingIfNeeded: R[i.s]), as: UInt8.self)
                continue
            case .stxh:
                guard let p = translate(R[i.d] &+ UInt64(bitPattern: Int64(i.off)), 2, write: true) else {
                    return memoryFault(R[i.d], i.pointee, 2, true, i - code, budget)
                }
                p.storeBytes(of: UInt16(truncatingIfNeeded: R[i.s]), as: UInt16.self)
                continue
            case .stxw:
                guard let p = translate(R[i.d] &+ UInt64(bitPattern: Int64(i.off)), 4, write: true) else {
                    return memoryFault(R[i.d], i.pointee, 4, true, i - code, budget)
                }
                p.storeBytes(of: UInt32(truncatingIfNeeded: R[i.s]), as: UInt32.self)
                continue
            case .stxdw:
                guard let p = translate(R[i.d] &+ UInt64(bitPattern: Int64(i.off)), 8, write: true) else {
                    return memoryFault(R[i.d], i.pointee, 8, true, i - code, budget)
                }
                p.storeBytes(of: R[i.s], as: UInt64.self)
                continue
            case .atomic32:
                guard let p = translate(R[i.d] &+ UInt64(bitPattern: Int64(i.off)), 4, write: true) else {
                    return memoryFault(R[i.d], i.pointee, 4, true, i - code, budget)
                }
                let old = p.loadUnaligned(as: UInt32.self)
                let operand = UInt32(truncatingIfNeeded: R[i.s])
                switch i.imm & ~AtomicOp.fetch {
                case AtomicOp.add: p.storeBytes(of: old &+ operand, as: UInt32.self)
                case AtomicOp.or: p.storeBytes(of: old | operand, as: UInt32.self)
                case AtomicOp.and: p.storeBytes(of: old & operand, as: UInt32.self)
                case AtomicOp.xor: p.storeBytes(of: old ^ operand, as: UInt32.self)
                case AtomicOp.xchg & ~AtomicOp.fetch: p.storeBytes(of: operand, as: UInt32.self)
                default:  // cmpxchg
                    if old == UInt32(truncatingIfNeeded: R[0]) { p.storeBytes(of: operand, as: UInt32.self) }
                    R[0] = UInt64(old)
                    continue
                }
                if i.imm & AtomicOp.fetch != 0 { R[i.s] = UInt64(old) }
                continue
            case .atomic64:
                guard let p = translate(R[i.d] &+ UInt64(bitPattern: Int64(i.off)), 8, write: true) else {
                    return memoryFault(R[i.d], i.pointee, 8, true, i - code, budget)
                }
                let old = p.loadUnaligned(as: UInt64.self)
                let operand = R[i.s]
                switch i.imm & ~AtomicOp.fetch {
                case AtomicOp.add: p.storeBytes(of: old &+ operand, as: UInt64.self)
                case AtomicOp.or: p.storeBytes(of: old | operand, as: UInt64.self)
                case AtomicOp.and: p.storeBytes(of: old & operand, as: UInt64.self)
                case AtomicOp.xor: p.storeBytes(of: old ^ operand, as: UInt64.self)
                case AtomicOp.xchg & ~AtomicOp.fetch: p.storeBytes(of: operand, as: UInt64.self)
                default:
                    if old == R[0] { p.storeBytes(of: operand, as: UInt64.self) }
                    R[0] = old
                    continue
                }
                if i.imm & AtomicOp.fetch != 0 { R[i.s] = old }
                continue
            }
            // A taken jump, or a call.
            budget &-= slots(segment, ip)
            ip = code + Int(i.off)
            segment = ip
            if budget < 0 { return exhausted(ip - code, budget) }
        }
    }
}
