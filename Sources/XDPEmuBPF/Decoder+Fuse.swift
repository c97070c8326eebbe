// After decoding: instructions chosen at load time for what clang emits around every packet access
// and every map access (see `Op`). Pairs are fused only where the second instruction is neither a jump or call
// target nor a program's entry, so nothing can start there and running both as one is the same. A helper
// call's map is known when r1 was last set, in the same straight run of code, by an LD_IMM64 of a map
// reference: a straight run is entered only at its top, so that load is what r1 holds at the call.

extension Decoder {
    /// - Parameter xdpEntries: the entries of the XDP programs, where r1 holds the context.
    static func fuse(_ code: inout [Instruction], entries: [Int], xdpEntries: [Int], maps: [BPFMapType]) {
        var targets = Set(entries)
        var called = Set<Int>()
        for i in code where i.op == .ja || i.op == .callLocal || i.op.isConditionalJump {
            targets.insert(Int(i.off))
            if i.op == .callLocal { called.insert(Int(i.off)) }
        }
        let contextEntries = Set(xdpEntries).subtracting(called)
        for index in code.indices {
            let i = code[index]
            switch i.op {
            case .mov64r where index + 1 < code.count && code[index + 1].op == .add64i:
                guard !targets.contains(index + 1), code[index + 1].dst == i.dst else { break }
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
                // (Not `r |= r`: the fused form reads the OR's source before the shift.)
                guard index + 1 < code.count, !targets.contains(index + 1), code[index + 1].op == or,
                    code[index + 1].dst == i.dst, code[index + 1].src != i.dst
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
            case .ldxw
            where i.src == 1 && isContextField(i.off)
                && holdsContext(code, at: index, targets: targets, contextEntries: contextEntries):
                var load = i
                load.op = .ctxLoad
                let next = index + 1 < code.count ? code[index + 1] : i
                if index + 1 < code.count, !targets.contains(index + 1), next.op == .ldxw, next.src == 1,
                    i.dst != 1, isContextField(next.off)
                {
                    load.op = .ctxLoad2
                    load.aux = next.dst
                    load.imm = Int64(next.off)
                }
                code[index] = load
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
                // (A lookup in a devmap or a prog_array stays a helper call, which refuses it.)
                guard let (map, at) = mapInR1(code, before: index, targets: targets), map < 256, !maps[map].isDevMap,
                    maps[map] != .progArray
                else { break }
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

    /// Whether `offset` is that of a 32-bit field of `struct xdp_md`.
    private static func isContextField(_ offset: Int32) -> Bool {
        offset >= 0 && offset % 4 == 0 && offset < Int32(VirtualAddress.contextSize)
    }

    /// Whether r1 holds the context at instruction `index`: the straight run of code it is in starts at the
    /// entry of an XDP program (not also called as a function) and nothing on the way writes r1.
    private static func holdsContext(
        _ code: [Instruction], at index: Int, targets: Set<Int>, contextEntries: Set<Int>
    ) -> Bool {
        let walk = walkBack(code, from: index, targets: targets) { code[$0].fallsThroughKeeping(register: 1) }
        return walk.reachedTop && contextEntries.contains(walk.index)
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
        var found: (Int, Int)?
        _ = walkBack(code, from: call, targets: targets) { index in
            let i = code[index]
            // (An `.ldimm64Mov` whose MOV sets r1 was passed on the way: it stopped the walk.)
            guard (i.op == .ldimm64 || i.op == .ldimm64Mov) && i.dst == 1 else {
                return i.fallsThroughKeeping(register: 1)
            }
            found = VirtualAddress.mapIndex(ofHandle: UInt64(bitPattern: i.imm)).map { ($0, index) }
            return false
        }
        return found
    }

    /// Walks back from instruction `index` through the straight run of code it is in, nearest first (an
    /// LD_IMM64 by its first slot), while `goOn` says so. Returns where the walk ended, and whether that is the
    /// run's top (a jump or call target, a program's entry or the first instruction) reached by going on past
    /// everything before `index`.
    private static func walkBack(
        _ code: [Instruction], from index: Int, targets: Set<Int>, goOn: (Int) -> Bool
    ) -> (index: Int, reachedTop: Bool) {
        var index = index
        while index > 0, !targets.contains(index) {
            index -= 1
            // The second half of an LD_IMM64 is a `.fault` placeholder after its first slot.
            if index > 0, code[index - 1].op == .ldimm64 || code[index - 1].op == .ldimm64Mov { index -= 1 }
            guard goOn(index) else { return (index, false) }
        }
        return (index, true)
    }
}

extension Instruction {
    /// Whether the instruction goes on to the next one leaving `register` as it was (false for anything that
    /// may write it, any call, and jumps that always leave).
    func fallsThroughKeeping(register: UInt8) -> Bool {
        switch op {
        case .stb, .sth, .stw, .stdw, .stxb, .stxh, .stxw, .stxdw: true
        case .atomic32, .atomic64: src != register && register != 0
        case .ja, .exit, .fault, .callHelper, .callLocal, .tailCall, .callLookup, .callRedirectMap, .lookupConstant,
            .lookupArray, .lookupHash, .redirectDevMap:
            false
        case .ldxb2, .ldxh2, .ldxw2, .ldxdw2, .ldimm64Mov, .ctxLoad2: dst != register && aux != register
        case .movExit32, .movExit64: false
        default: op.isConditionalJump || dst != register
        }
    }
}
