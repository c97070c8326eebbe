// The second decoding pass: instructions chosen at load time for what clang emits around every packet access
// and every map access (see `Op`). Pairs are fused only where the second instruction is neither a jump or call
// target nor a program's entry, so nothing can start there and running both as one is the same. A helper
// call's map is known when r1 was last set, in the same straight run of code, by an LD_IMM64 of a map
// reference: a straight run is entered only at its top, so that load is what r1 holds at the call.

extension Decoder {
    static func fuse(_ code: inout [Instruction], entries: [Int], maps: [BPFMapType]) {
        var targets = Set(entries)
        for i in code where i.op == .ja || i.op == .callLocal || i.op.isConditionalJump {
            targets.insert(Int(i.off))
        }
        for index in code.indices {
            let i = code[index]
            switch i.op {
            case .mov64r:
                guard index + 1 < code.count, !targets.contains(index + 1), code[index + 1].op == .add64i,
                    code[index + 1].dst == i.dst
                else { break }
                var fused = Instruction(op: .movAdd64, dst: i.dst, src: i.src, off: 0, imm: code[index + 1].imm)
                if index + 2 < code.count, !targets.contains(index + 2), let other = boundsCheck(code[index + 2], i.dst)
                {
                    fused.op = .movAddJgt
                    fused.aux = other
                    fused.off = code[index + 2].off
                }
                code[index] = fused
            case .lsh32i, .lsh64i:
                let or: Op = i.op == .lsh32i ? .or32r : .or64r
                guard index + 1 < code.count, !targets.contains(index + 1), code[index + 1].op == or,
                    code[index + 1].dst == i.dst
                else { break }
                var fused = i
                fused.op = i.op == .lsh32i ? .lshOr32 : .lshOr64
                fused.aux = code[index + 1].src
                code[index] = fused
            case .mov32r, .mov64r:
                guard i.dst == 0, index + 1 < code.count, !targets.contains(index + 1), code[index + 1].op == .exit
                else { break }
                code[index].op = i.op == .mov32r ? .movExit32 : .movExit64
            case .ldimm64:
                guard index + 2 < code.count, !targets.contains(index + 2), code[index + 2].op == .mov64i else { break }
                code[index].op = .ldimm64Mov
                code[index].aux = code[index + 2].dst
                code[index].off = Int32(truncatingIfNeeded: code[index + 2].imm)
            case .ldxb, .ldxh, .ldxw, .ldxdw:
                guard index + 1 < code.count, !targets.contains(index + 1), code[index + 1].op == i.op,
                    code[index + 1].src == i.src, i.dst != i.src
                else { break }
                var pair = i
                pair.op = Op(rawValue: Op.ldxb2.rawValue + (i.op.rawValue - Op.ldxb.rawValue))!
                pair.aux = code[index + 1].dst
                pair.imm = Int64(code[index + 1].off)
                code[index] = pair
            case .callLookup:
                guard let (map, at) = mapInR1(code, before: index, targets: targets), map < 256 else { break }
                let type = maps[map]
                let op: Op =
                    type == .array || type == .percpuArray
                    ? .lookupArray
                    : type == .hash || type == .percpuHash || type == .lruHash || type == .lruPercpuHash
                        ? .lookupHash : .lookupConstant
                // Fused with the LD_IMM64 when it comes right before the call.
                let head = at + 2 == index && !targets.contains(index) ? at : index
                var lookup = Instruction(
                    op: op, dst: UInt8(index - head), src: 0, off: 0, imm: code[at].imm)
                lookup.aux = UInt8(map)
                let check = index + 1
                if check < code.count, !targets.contains(check), code[check].op == .jeq64i, code[check].dst == 0,
                    code[check].imm == 0
                {
                    lookup.src = 1
                    lookup.off = code[check].off
                }
                code[head] = lookup
            case .callRedirectMap:
                guard let (map, _) = mapInR1(code, before: index, targets: targets), map < 256,
                    maps[map].isDevMap
                else { break }
                var redirect = Instruction(op: .redirectDevMap, dst: 0, src: 0, off: 0, imm: i.imm)
                redirect.aux = UInt8(map)
                code[index] = redirect
            default: break
            }
        }
    }

    /// The register compared with `register` by `jump` when it is `if register > rX` or `if rX < register`
    /// (64-bit, unsigned).
    private static func boundsCheck(_ jump: Instruction, _ register: UInt8) -> UInt8? {
        if jump.op == .jgt64r && jump.dst == register { return jump.src }
        if jump.op == .jlt64r && jump.src == register { return jump.dst }
        return nil
    }

    /// The map whose reference r1 holds at instruction `call`, and the LD_IMM64 that put it there, when that
    /// load is in the same straight run of code.
    private static func mapInR1(_ code: [Instruction], before call: Int, targets: Set<Int>) -> (Int, Int)? {
        var index = call
        while index > 0, !targets.contains(index) {
            index -= 1
            // The second half of an LD_IMM64 is a `.fault` placeholder after its `.ldimm64`.
            if index > 0, code[index - 1].op == .ldimm64 || code[index - 1].op == .ldimm64Mov { index -= 1 }
            let i = code[index]
            // (An `.ldimm64Mov` whose MOV sets r1 was passed on the way: it stopped the search.)
            if (i.op == .ldimm64 || i.op == .ldimm64Mov) && i.dst == 1 {
                guard let map = VirtualAddress.mapIndex(ofHandle: UInt64(bitPattern: i.imm)) else { return nil }
                return (map, index)
            }
            guard i.fallsThroughKeeping(register: 1) else { return nil }
        }
        return nil
    }
}

extension Instruction {
    /// Whether the instruction goes on to the next one leaving `register` as it was (false for anything that
    /// may write it, any call, and jumps that always leave).
    func fallsThroughKeeping(register: UInt8) -> Bool {
        switch op {
        case .stb, .sth, .stw, .stdw, .stxb, .stxh, .stxw, .stxdw: true
        case .atomic32, .atomic64: src != register && register != 0
        case .ja, .exit, .fault, .callHelper, .callLocal, .callLookup, .callRedirectMap, .lookupConstant,
            .lookupArray, .lookupHash, .redirectDevMap:
            false
        case .ldxb2, .ldxh2, .ldxw2, .ldxdw2, .ldimm64Mov: dst != register && aux != register
        case .movExit32, .movExit64: false
        default: op.isConditionalJump || dst != register
        }
    }
}
