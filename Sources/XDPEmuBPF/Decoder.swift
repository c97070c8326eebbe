// Decoding raw instructions into `Instruction`s, once per object (see Instruction.swift).

struct DecodedCode {
    var instructions: [Instruction]
    /// Why each `.fault` instruction faults (its `imm` indexes this).
    var faultReasons: [String]
    /// Helper numbers called that the emulator does not implement, with the first instruction calling each.
    var unknownHelpers: [(helper: Int32, index: Int)]
}

enum Decoder {
    static let aluOrder: [UInt8: UInt8] = [
        0x00: 0, 0x10: 1, 0x20: 2, 0x30: 3, 0x40: 4, 0x50: 5, 0x60: 6, 0x70: 7, 0x90: 8, 0xA0: 9, 0xB0: 10,
        0xC0: 11,
    ]
    static let jumpOrder: [UInt8: UInt8] = [
        0x10: 0, 0x20: 1, 0x30: 2, 0x40: 3, 0x50: 4, 0x60: 5, 0x70: 6, 0xA0: 7, 0xB0: 8, 0xC0: 9, 0xD0: 10,
    ]

    /// - Parameters:
    ///   - mapAddress: the value an LD_IMM64 of map `i` loads.
    ///   - valueAddress: the value an LD_IMM64 of offset `o` in global data map `i` loads.
    ///   - specialise: whether to choose instructions at load time (`fuse`).
    static func decode(
        _ object: BPFObject, mapAddress: (Int) -> UInt64, valueAddress: (Int, Int) -> UInt64, specialise: Bool = true
    ) -> DecodedCode {
        let raw = object.instructions
        var out: [Instruction] = []
        out.reserveCapacity(raw.count)
        var reasons: [String] = []
        var unknown: [(Int32, Int)] = []
        var index = 0
        func fault(_ reason: String) -> Instruction {
            reasons.append(reason)
            return Instruction(op: .fault, dst: 0, src: 0, off: 0, imm: Int64(reasons.count - 1))
        }
        func target(_ from: Int, _ delta: Int) -> Int32? {
            let to = from + 1 + delta
            return to >= 0 && to < raw.count ? Int32(to) : nil
        }
        while index < raw.count {
            let r = raw[index]
            let code = r.opcode
            let cls = code & 7
            var decoded: Instruction
            let operands = Instruction(op: .fault, dst: r.dst, src: r.src, off: Int32(r.offset), imm: Int64(r.imm))
            if r.dst > 10 || r.src > 10 {
                decoded = fault("register r\(max(r.dst, r.src)) does not exist")
            } else {
                switch cls {
                case 4, 7:  // ALU, ALU64
                    decoded =
                        decodeALU(r, is64: cls == 7, operands: operands)
                        ?? fault(
                            "unknown ALU opcode 0x\(String(code, radix: 16)) (offset \(r.offset), imm \(r.imm))")
                    if decoded.op != .fault && r.dst == 10 { decoded = fault("r10 is read-only") }
                case 5, 6:  // JMP, JMP32
                    let op = code & 0xF0
                    if cls == 5 && op == 0x80 {
                        if r.src == 1 {
                            if case .call(let to)? = object.relocations[index] {
                                decoded = Instruction(op: .callLocal, dst: 0, src: 0, off: Int32(to), imm: 0)
                            } else if let to = target(index, Int(r.imm)) {
                                decoded = Instruction(op: .callLocal, dst: 0, src: 0, off: to, imm: 0)
                            } else {
                                decoded = fault("call to instruction \(index + 1 + Int(r.imm)), outside the code")
                            }
                        } else if r.src == 0, HelperID(rawValue: Int64(r.imm)) != nil {
                            let op: Op =
                                switch HelperID(rawValue: Int64(r.imm)) {
                                case .mapLookupElem: .callLookup
                                case .redirectMap: .callRedirectMap
                                case .tailCall: .tailCall
                                default: .callHelper
                                }
                            decoded = Instruction(op: op, dst: 0, src: 0, off: 0, imm: Int64(r.imm))
                        } else {
                            unknown.append((r.imm, index))
                            decoded = fault("helper \(r.imm) is not supported by xdpemu")
                        }
                    } else if cls == 5 && op == 0x90 {
                        decoded = Instruction(op: .exit, dst: 0, src: 0, off: 0, imm: 0)
                    } else if op == 0x00 {
                        let delta = cls == 5 ? Int(r.offset) : Int(r.imm)
                        if let to = target(index, delta) {
                            decoded = Instruction(op: .ja, dst: 0, src: 0, off: to, imm: 0)
                        } else {
                            decoded = fault("jump to instruction \(index + 1 + delta), outside the code")
                        }
                    } else if let order = jumpOrder[op] {
                        let base: Op =
                            cls == 5 ? (code & 8 == 0 ? .jeq64i : .jeq64r) : (code & 8 == 0 ? .jeq32i : .jeq32r)
                        if let to = target(index, Int(r.offset)) {
                            decoded = operands
                            decoded.op = Op(rawValue: base.rawValue + order)!
                            decoded.off = to
                        } else {
                            decoded = fault("jump to instruction \(index + 1 + Int(r.offset)), outside the code")
                        }
                    } else {
                        decoded = fault("unknown jump opcode 0x\(String(code, radix: 16))")
                    }
                case 0:  // LD
                    if code == 0x18 && index + 1 < raw.count && raw[index + 1].opcode == 0 {
                        var value =
                            UInt64(UInt32(bitPattern: r.imm)) | UInt64(UInt32(bitPattern: raw[index + 1].imm)) << 32
                        switch object.relocations[index] {
                        case .map(let map)?: value = mapAddress(map)
                        case .mapValue(let map, let offset)?: value = valueAddress(map, offset)
                        default:
                            if r.src != 0 {
                                decoded = fault("64-bit load with pseudo source \(r.src) and no relocation")
                                out.append(decoded)
                                out.append(fault("second half of a 64-bit load"))
                                index += 2
                                continue
                            }
                        }
                        decoded = Instruction(op: .ldimm64, dst: r.dst, src: 0, off: 0, imm: Int64(bitPattern: value))
                        if r.dst == 10 { decoded = fault("r10 is read-only") }
                        out.append(decoded)
                        out.append(fault("jump into the middle of a 64-bit load"))
                        index += 2
                        continue
                    }
                    decoded = fault("opcode 0x\(String(code, radix: 16)) (legacy packet access) is not supported")
                case 1:  // LDX
                    let mode = code & 0xE0
                    let size = code & 0x18
                    let ops: [UInt8: Op] =
                        mode == 0x60
                        ? [0x10: .ldxb, 0x08: .ldxh, 0x00: .ldxw, 0x18: .ldxdw]
                        : mode == 0x80 ? [0x10: .ldxsb, 0x08: .ldxsh, 0x00: .ldxsw] : [:]
                    if let op = ops[size], r.dst != 10 {
                        decoded = operands
                        decoded.op = op
                    } else {
                        decoded = fault(
                            r.dst == 10 ? "r10 is read-only" : "unknown load opcode 0x\(String(code, radix: 16))")
                    }
                case 2, 3:  // ST, STX
                    let mode = code & 0xE0
                    let size = code & 0x18
                    decoded = operands
                    if mode == 0x60 {
                        let ops: [UInt8: Op] =
                            cls == 2
                            ? [0x10: .stb, 0x08: .sth, 0x00: .stw, 0x18: .stdw]
                            : [0x10: .stxb, 0x08: .stxh, 0x00: .stxw, 0x18: .stxdw]
                        decoded.op = ops[size]!
                    } else if mode == 0xC0 && cls == 3 && (size == 0x00 || size == 0x18) {
                        let known: Set<Int64> = [0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xA0, 0xA1, 0xE1, 0xF1]
                        if known.contains(Int64(r.imm)) {
                            decoded.op = size == 0 ? .atomic32 : .atomic64
                        } else {
                            decoded = fault("unknown atomic operation 0x\(String(r.imm, radix: 16))")
                        }
                    } else {
                        decoded = fault("unknown store opcode 0x\(String(code, radix: 16))")
                    }
                default:
                    decoded = fault("unknown opcode 0x\(String(code, radix: 16))")
                }
            }
            out.append(decoded)
            index += 1
        }
        if specialise {
            fuse(
                &out, entries: object.programs.map(\.entry), xdpEntries: object.programs.filter(\.isXDP).map(\.entry),
                maps: object.maps.map(\.type))
        }
        return DecodedCode(instructions: out, faultReasons: reasons, unknownHelpers: unknown)
    }

    private static func decodeALU(_ r: RawInstruction, is64: Bool, operands: Instruction) -> Instruction? {
        let code = r.opcode
        let op = code & 0xF0
        let isReg = code & 8 != 0
        var out = operands
        switch op {
        case 0x80:
            guard !isReg else { return nil }
            out.op = is64 ? .neg64 : .neg32
        case 0xD0:
            let widths: [Int32: Int] = [16: 0, 32: 1, 64: 2]
            guard let width = widths[r.imm] else { return nil }
            if is64 {  // BPF_ALU64 | BPF_END: unconditional swap (ISA v4 bswap)
                guard !isReg else { return nil }
                out.op = Op(rawValue: Op.be16.rawValue + UInt8(width))!
            } else {
                out.op = Op(rawValue: (isReg ? Op.be16 : Op.le16).rawValue + UInt8(width))!
            }
        default:
            guard let order = aluOrder[op] else { return nil }
            if op == 0xB0 && r.offset != 0 {
                guard isReg else { return nil }
                switch (is64, r.offset) {
                case (true, 8): out.op = .movsx64b
                case (true, 16): out.op = .movsx64h
                case (true, 32): out.op = .movsx64w
                case (false, 8): out.op = .movsx32b
                case (false, 16): out.op = .movsx32h
                default: return nil
                }
                return out
            }
            let signed = (op == 0x30 || op == 0x90) && r.offset == 1
            guard r.offset == 0 || signed else { return nil }
            let base: Op =
                switch (is64, isReg, signed) {
                case (true, false, false): .add64i
                case (true, true, false): .add64r
                case (false, false, false): .add32i
                case (false, true, false): .add32r
                case (true, false, true): op == 0x30 ? .sdiv64i : .smod64i
                case (true, true, true): op == 0x30 ? .sdiv64r : .smod64r
                case (false, false, true): op == 0x30 ? .sdiv32i : .smod32i
                case (false, true, true): op == 0x30 ? .sdiv32r : .smod32r
                }
            out.op = signed ? base : Op(rawValue: base.rawValue + order)!
        }
        return out
    }
}
