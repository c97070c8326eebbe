// The interpreter's loop: one `switch` over the pre-decoded instruction, with the kernel's semantics for each
// (see Machine.swift for the memory and fault rules).

import XDPEmuCore

extension BPFMachine {
    /// The loop. Returns the instructions left of the budget; `fault` says whether it ended with a fault.
    func execute(_ c: inout XDPContext) -> Int {
        let R = registers
        let code = self.code
        let frames = self.frames
        var ip = code + program.entry
        var budget = self.budget
        var depth = 0
        while true {
            let i = ip.pointee
            let d = Int(i.dst)
            let s = Int(i.src)
            ip += 1
            budget &-= 1
            switch i.op {
            case .fault:
                fault = .invalid(reason: Int(i.imm))
                faultPC = ip - code - 1
                return budget
            // ALU64 immediate
            case .add64i: R[d] = R[d] &+ UInt64(bitPattern: i.imm)
            case .sub64i: R[d] = R[d] &- UInt64(bitPattern: i.imm)
            case .mul64i: R[d] = R[d] &* UInt64(bitPattern: i.imm)
            case .div64i:
                let v = UInt64(bitPattern: i.imm)
                R[d] = v == 0 ? 0 : R[d] / v
            case .or64i: R[d] = R[d] | UInt64(bitPattern: i.imm)
            case .and64i: R[d] = R[d] & UInt64(bitPattern: i.imm)
            case .lsh64i: R[d] = R[d] << (UInt64(bitPattern: i.imm) & 63)
            case .rsh64i: R[d] = R[d] >> (UInt64(bitPattern: i.imm) & 63)
            case .mod64i:
                let v = UInt64(bitPattern: i.imm)
                if v != 0 { R[d] = R[d] % v }
            case .xor64i: R[d] = R[d] ^ UInt64(bitPattern: i.imm)
            case .mov64i: R[d] = UInt64(bitPattern: i.imm)
            case .arsh64i: R[d] = UInt64(bitPattern: Int64(bitPattern: R[d]) >> (i.imm & 63))
            case .sdiv64i: R[d] = Self.sdiv64(R[d], UInt64(bitPattern: i.imm))
            case .smod64i: R[d] = Self.smod64(R[d], UInt64(bitPattern: i.imm))
            // ALU64 register
            case .add64r: R[d] = R[d] &+ R[s]
            case .sub64r: R[d] = R[d] &- R[s]
            case .mul64r: R[d] = R[d] &* R[s]
            case .div64r:
                let v = R[s]
                R[d] = v == 0 ? 0 : R[d] / v
            case .or64r: R[d] = R[d] | R[s]
            case .and64r: R[d] = R[d] & R[s]
            case .lsh64r: R[d] = R[d] << (R[s] & 63)
            case .rsh64r: R[d] = R[d] >> (R[s] & 63)
            case .mod64r:
                let v = R[s]
                if v != 0 { R[d] = R[d] % v }
            case .xor64r: R[d] = R[d] ^ R[s]
            case .mov64r: R[d] = R[s]
            case .arsh64r: R[d] = UInt64(bitPattern: Int64(bitPattern: R[d]) >> (R[s] & 63))
            case .sdiv64r: R[d] = Self.sdiv64(R[d], R[s])
            case .smod64r: R[d] = Self.smod64(R[d], R[s])
            case .neg64: R[d] = 0 &- R[d]
            case .movsx64b: R[d] = UInt64(bitPattern: Int64(Int8(truncatingIfNeeded: R[s])))
            case .movsx64h: R[d] = UInt64(bitPattern: Int64(Int16(truncatingIfNeeded: R[s])))
            case .movsx64w: R[d] = UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: R[s])))
            // ALU32 immediate
            case .add32i: R[d] = UInt64(UInt32(truncatingIfNeeded: R[d]) &+ UInt32(truncatingIfNeeded: i.imm))
            case .sub32i: R[d] = UInt64(UInt32(truncatingIfNeeded: R[d]) &- UInt32(truncatingIfNeeded: i.imm))
            case .mul32i: R[d] = UInt64(UInt32(truncatingIfNeeded: R[d]) &* UInt32(truncatingIfNeeded: i.imm))
            case .div32i:
                let v = UInt32(truncatingIfNeeded: i.imm)
                R[d] = v == 0 ? 0 : UInt64(UInt32(truncatingIfNeeded: R[d]) / v)
            case .or32i: R[d] = UInt64(UInt32(truncatingIfNeeded: R[d]) | UInt32(truncatingIfNeeded: i.imm))
            case .and32i: R[d] = UInt64(UInt32(truncatingIfNeeded: R[d]) & UInt32(truncatingIfNeeded: i.imm))
            case .lsh32i: R[d] = UInt64(UInt32(truncatingIfNeeded: R[d]) << (UInt32(truncatingIfNeeded: i.imm) & 31))
            case .rsh32i: R[d] = UInt64(UInt32(truncatingIfNeeded: R[d]) >> (UInt32(truncatingIfNeeded: i.imm) & 31))
            case .mod32i:
                let v = UInt32(truncatingIfNeeded: i.imm)
                let x = UInt32(truncatingIfNeeded: R[d])
                R[d] = UInt64(v == 0 ? x : x % v)
            case .xor32i: R[d] = UInt64(UInt32(truncatingIfNeeded: R[d]) ^ UInt32(truncatingIfNeeded: i.imm))
            case .mov32i: R[d] = UInt64(UInt32(truncatingIfNeeded: i.imm))
            case .arsh32i:
                R[d] = UInt64(
                    UInt32(bitPattern: Int32(truncatingIfNeeded: R[d]) >> (Int32(truncatingIfNeeded: i.imm) & 31)))
            case .sdiv32i: R[d] = Self.sdiv32(R[d], UInt64(bitPattern: i.imm))
            case .smod32i: R[d] = Self.smod32(R[d], UInt64(bitPattern: i.imm))
            // ALU32 register
            case .add32r: R[d] = UInt64(UInt32(truncatingIfNeeded: R[d]) &+ UInt32(truncatingIfNeeded: R[s]))
            case .sub32r: R[d] = UInt64(UInt32(truncatingIfNeeded: R[d]) &- UInt32(truncatingIfNeeded: R[s]))
            case .mul32r: R[d] = UInt64(UInt32(truncatingIfNeeded: R[d]) &* UInt32(truncatingIfNeeded: R[s]))
            case .div32r:
                let v = UInt32(truncatingIfNeeded: R[s])
                R[d] = v == 0 ? 0 : UInt64(UInt32(truncatingIfNeeded: R[d]) / v)
            case .or32r: R[d] = UInt64(UInt32(truncatingIfNeeded: R[d]) | UInt32(truncatingIfNeeded: R[s]))
            case .and32r: R[d] = UInt64(UInt32(truncatingIfNeeded: R[d]) & UInt32(truncatingIfNeeded: R[s]))
            case .lsh32r: R[d] = UInt64(UInt32(truncatingIfNeeded: R[d]) << (UInt32(truncatingIfNeeded: R[s]) & 31))
            case .rsh32r: R[d] = UInt64(UInt32(truncatingIfNeeded: R[d]) >> (UInt32(truncatingIfNeeded: R[s]) & 31))
            case .mod32r:
                let v = UInt32(truncatingIfNeeded: R[s])
                let x = UInt32(truncatingIfNeeded: R[d])
                R[d] = UInt64(v == 0 ? x : x % v)
            case .xor32r: R[d] = UInt64(UInt32(truncatingIfNeeded: R[d]) ^ UInt32(truncatingIfNeeded: R[s]))
            case .mov32r: R[d] = UInt64(UInt32(truncatingIfNeeded: R[s]))
            case .arsh32r:
                R[d] = UInt64(
                    UInt32(bitPattern: Int32(truncatingIfNeeded: R[d]) >> (Int32(truncatingIfNeeded: R[s]) & 31)))
            case .sdiv32r: R[d] = Self.sdiv32(R[d], R[s])
            case .smod32r: R[d] = Self.smod32(R[d], R[s])
            case .neg32: R[d] = UInt64(0 &- UInt32(truncatingIfNeeded: R[d]))
            case .movsx32b: R[d] = UInt64(UInt32(bitPattern: Int32(Int8(truncatingIfNeeded: R[s]))))
            case .movsx32h: R[d] = UInt64(UInt32(bitPattern: Int32(Int16(truncatingIfNeeded: R[s]))))
            // Byte order (the host is little-endian, as x86-64 and arm64 Linux are)
            case .le16: R[d] = R[d] & 0xFFFF
            case .le32: R[d] = R[d] & 0xFFFF_FFFF
            case .le64: break
            case .be16: R[d] = UInt64(UInt16(truncatingIfNeeded: R[d]).byteSwapped)
            case .be32: R[d] = UInt64(UInt32(truncatingIfNeeded: R[d]).byteSwapped)
            case .be64: R[d] = R[d].byteSwapped
            // Jumps
            case .ja:
                ip = code + Int(i.off)
                if budget < 0 { return exhausted(ip - code, budget) }
            case .jeq64i:
                if R[d] == UInt64(bitPattern: i.imm) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jgt64i:
                if R[d] > UInt64(bitPattern: i.imm) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jge64i:
                if R[d] >= UInt64(bitPattern: i.imm) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jset64i:
                if R[d] & UInt64(bitPattern: i.imm) != 0 {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jne64i:
                if R[d] != UInt64(bitPattern: i.imm) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jsgt64i:
                if Int64(bitPattern: R[d]) > i.imm {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jsge64i:
                if Int64(bitPattern: R[d]) >= i.imm {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jlt64i:
                if R[d] < UInt64(bitPattern: i.imm) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jle64i:
                if R[d] <= UInt64(bitPattern: i.imm) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jslt64i:
                if Int64(bitPattern: R[d]) < i.imm {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jsle64i:
                if Int64(bitPattern: R[d]) <= i.imm {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jeq64r:
                if R[d] == R[s] {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jgt64r:
                if R[d] > R[s] {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jge64r:
                if R[d] >= R[s] {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jset64r:
                if R[d] & R[s] != 0 {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jne64r:
                if R[d] != R[s] {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jsgt64r:
                if Int64(bitPattern: R[d]) > Int64(bitPattern: R[s]) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jsge64r:
                if Int64(bitPattern: R[d]) >= Int64(bitPattern: R[s]) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jlt64r:
                if R[d] < R[s] {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jle64r:
                if R[d] <= R[s] {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jslt64r:
                if Int64(bitPattern: R[d]) < Int64(bitPattern: R[s]) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jsle64r:
                if Int64(bitPattern: R[d]) <= Int64(bitPattern: R[s]) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jeq32i:
                if UInt32(truncatingIfNeeded: R[d]) == UInt32(truncatingIfNeeded: i.imm) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jgt32i:
                if UInt32(truncatingIfNeeded: R[d]) > UInt32(truncatingIfNeeded: i.imm) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jge32i:
                if UInt32(truncatingIfNeeded: R[d]) >= UInt32(truncatingIfNeeded: i.imm) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jset32i:
                if UInt32(truncatingIfNeeded: R[d]) & UInt32(truncatingIfNeeded: i.imm) != 0 {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jne32i:
                if UInt32(truncatingIfNeeded: R[d]) != UInt32(truncatingIfNeeded: i.imm) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jsgt32i:
                if Int32(truncatingIfNeeded: R[d]) > Int32(truncatingIfNeeded: i.imm) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jsge32i:
                if Int32(truncatingIfNeeded: R[d]) >= Int32(truncatingIfNeeded: i.imm) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jlt32i:
                if UInt32(truncatingIfNeeded: R[d]) < UInt32(truncatingIfNeeded: i.imm) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jle32i:
                if UInt32(truncatingIfNeeded: R[d]) <= UInt32(truncatingIfNeeded: i.imm) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jslt32i:
                if Int32(truncatingIfNeeded: R[d]) < Int32(truncatingIfNeeded: i.imm) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jsle32i:
                if Int32(truncatingIfNeeded: R[d]) <= Int32(truncatingIfNeeded: i.imm) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jeq32r:
                if UInt32(truncatingIfNeeded: R[d]) == UInt32(truncatingIfNeeded: R[s]) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jgt32r:
                if UInt32(truncatingIfNeeded: R[d]) > UInt32(truncatingIfNeeded: R[s]) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jge32r:
                if UInt32(truncatingIfNeeded: R[d]) >= UInt32(truncatingIfNeeded: R[s]) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jset32r:
                if UInt32(truncatingIfNeeded: R[d]) & UInt32(truncatingIfNeeded: R[s]) != 0 {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jne32r:
                if UInt32(truncatingIfNeeded: R[d]) != UInt32(truncatingIfNeeded: R[s]) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jsgt32r:
                if Int32(truncatingIfNeeded: R[d]) > Int32(truncatingIfNeeded: R[s]) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jsge32r:
                if Int32(truncatingIfNeeded: R[d]) >= Int32(truncatingIfNeeded: R[s]) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jlt32r:
                if UInt32(truncatingIfNeeded: R[d]) < UInt32(truncatingIfNeeded: R[s]) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jle32r:
                if UInt32(truncatingIfNeeded: R[d]) <= UInt32(truncatingIfNeeded: R[s]) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jslt32r:
                if Int32(truncatingIfNeeded: R[d]) < Int32(truncatingIfNeeded: R[s]) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .jsle32r:
                if Int32(truncatingIfNeeded: R[d]) <= Int32(truncatingIfNeeded: R[s]) {
                    ip = code + Int(i.off)
                    if budget < 0 { return exhausted(ip - code, budget) }
                }
            case .movAdd64:
                R[d] = R[s] &+ UInt64(bitPattern: i.imm)
                ip += 1
                budget &-= 1
            case .lookupConstant:
                R[1] = UInt64(bitPattern: i.imm)
                ip += 2
                budget &-= 1
                if !lookupFast(&c) {
                    faultPC = ip - code - 1
                    return budget
                }
            case .callLookup:
                if !lookupFast(&c) {
                    faultPC = ip - code - 1
                    return budget
                }
            case .callRedirectMap:
                if !redirectMapFast(&c) {
                    faultPC = ip - code - 1
                    return budget
                }
            case .callHelper:
                if !callHelper(i.imm, &c) {
                    faultPC = ip - code - 1
                    return budget
                }
            case .callLocal:
                guard depth < VirtualAddress.maxFrames - 1 else {
                    fault = .callDepth
                    faultPC = ip - code - 1
                    return budget
                }
                if budget < 0 { return exhausted(ip - code, budget) }
                frames[depth] = CallFrame(returnPC: ip - code, r6: R[6], r7: R[7], r8: R[8], r9: R[9], r10: R[10])
                depth += 1
                R[10] = R[10] &+ UInt64(VirtualAddress.frameSize)
                ip = code + Int(i.off)
            case .exit:
                if depth == 0 { return budget }
                depth -= 1
                let f = frames[depth]
                ip = code + f.returnPC
                R[6] = f.r6
                R[7] = f.r7
                R[8] = f.r8
                R[9] = f.r9
                R[10] = f.r10
            case .ldimm64:
                R[d] = UInt64(bitPattern: i.imm)
                ip += 1
            // Loads
            case .ldxb:
                guard let p = translate(R[s] &+ UInt64(bitPattern: Int64(i.off)), 1, write: false) else {
                    return memoryFault(R[s], i, 1, false, ip - code, budget)
                }
                R[d] = UInt64(p.load(as: UInt8.self))
            case .ldxh:
                guard let p = translate(R[s] &+ UInt64(bitPattern: Int64(i.off)), 2, write: false) else {
                    return memoryFault(R[s], i, 2, false, ip - code, budget)
                }
                R[d] = UInt64(p.loadUnaligned(as: UInt16.self))
            case .ldxw:
                guard let p = translate(R[s] &+ UInt64(bitPattern: Int64(i.off)), 4, write: false) else {
                    return memoryFault(R[s], i, 4, false, ip - code, budget)
                }
                R[d] = UInt64(p.loadUnaligned(as: UInt32.self))
            case .ldxdw:
                guard let p = translate(R[s] &+ UInt64(bitPattern: Int64(i.off)), 8, write: false) else {
                    return memoryFault(R[s], i, 8, false, ip - code, budget)
                }
                R[d] = p.loadUnaligned(as: UInt64.self)
            case .ldxsb:
                guard let p = translate(R[s] &+ UInt64(bitPattern: Int64(i.off)), 1, write: false) else {
                    return memoryFault(R[s], i, 1, false, ip - code, budget)
                }
                R[d] = UInt64(bitPattern: Int64(p.load(as: Int8.self)))
            case .ldxsh:
                guard let p = translate(R[s] &+ UInt64(bitPattern: Int64(i.off)), 2, write: false) else {
                    return memoryFault(R[s], i, 2, false, ip - code, budget)
                }
                R[d] = UInt64(bitPattern: Int64(p.loadUnaligned(as: Int16.self)))
            case .ldxsw:
                guard let p = translate(R[s] &+ UInt64(bitPattern: Int64(i.off)), 4, write: false) else {
                    return memoryFault(R[s], i, 4, false, ip - code, budget)
                }
                R[d] = UInt64(bitPattern: Int64(p.loadUnaligned(as: Int32.self)))
            // Stores of an immediate
            case .stb:
                guard let p = translate(R[d] &+ UInt64(bitPattern: Int64(i.off)), 1, write: true) else {
                    return memoryFault(R[d], i, 1, true, ip - code, budget)
                }
                p.storeBytes(of: UInt8(truncatingIfNeeded: i.imm), as: UInt8.self)
            case .sth:
                guard let p = translate(R[d] &+ UInt64(bitPattern: Int64(i.off)), 2, write: true) else {
                    return memoryFault(R[d], i, 2, true, ip - code, budget)
                }
                p.storeBytes(of: UInt16(truncatingIfNeeded: i.imm), as: UInt16.self)
            case .stw:
                guard let p = translate(R[d] &+ UInt64(bitPattern: Int64(i.off)), 4, write: true) else {
                    return memoryFault(R[d], i, 4, true, ip - code, budget)
                }
                p.storeBytes(of: UInt32(truncatingIfNeeded: i.imm), as: UInt32.self)
            case .stdw:
                guard let p = translate(R[d] &+ UInt64(bitPattern: Int64(i.off)), 8, write: true) else {
                    return memoryFault(R[d], i, 8, true, ip - code, budget)
                }
                p.storeBytes(of: UInt64(bitPattern: i.imm), as: UInt64.self)
            // Stores of a register
            case .stxb:
                guard let p = translate(R[d] &+ UInt64(bitPattern: Int64(i.off)), 1, write: true) else {
                    return memoryFault(R[d], i, 1, true, ip - code, budget)
                }
                p.storeBytes(of: UInt8(truncatingIfNeeded: R[s]), as: UInt8.self)
            case .stxh:
                guard let p = translate(R[d] &+ UInt64(bitPattern: Int64(i.off)), 2, write: true) else {
                    return memoryFault(R[d], i, 2, true, ip - code, budget)
                }
                p.storeBytes(of: UInt16(truncatingIfNeeded: R[s]), as: UInt16.self)
            case .stxw:
                guard let p = translate(R[d] &+ UInt64(bitPattern: Int64(i.off)), 4, write: true) else {
                    return memoryFault(R[d], i, 4, true, ip - code, budget)
                }
                p.storeBytes(of: UInt32(truncatingIfNeeded: R[s]), as: UInt32.self)
            case .stxdw:
                guard let p = translate(R[d] &+ UInt64(bitPattern: Int64(i.off)), 8, write: true) else {
                    return memoryFault(R[d], i, 8, true, ip - code, budget)
                }
                p.storeBytes(of: R[s], as: UInt64.self)
            case .atomic32:
                guard let p = translate(R[d] &+ UInt64(bitPattern: Int64(i.off)), 4, write: true) else {
                    return memoryFault(R[d], i, 4, true, ip - code, budget)
                }
                let old = p.loadUnaligned(as: UInt32.self)
                let operand = UInt32(truncatingIfNeeded: R[s])
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
                if i.imm & AtomicOp.fetch != 0 { R[s] = UInt64(old) }
            case .atomic64:
                guard let p = translate(R[d] &+ UInt64(bitPattern: Int64(i.off)), 8, write: true) else {
                    return memoryFault(R[d], i, 8, true, ip - code, budget)
                }
                let old = p.loadUnaligned(as: UInt64.self)
                let operand = R[s]
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
                if i.imm & AtomicOp.fetch != 0 { R[s] = old }
            }
        }
    }

    @inline(never)
    func exhausted(_ pc: Int, _ budget: Int) -> Int {
        fault = .budget
        faultPC = pc
        return budget
    }

    @inline(never)
    func memoryFault(
        _ base: UInt64, _ i: Instruction, _ size: Int, _ write: Bool, _ pc: Int, _ budget: Int
    ) -> Int {
        fault = .memory(address: base &+ UInt64(bitPattern: Int64(i.off)), size: size, write: write)
        faultPC = pc - 1
        return budget
    }

}
