// The interpreter's form of an instruction, decoded once when a program is loaded: one opcode per
// (class, operation, operand source, size) combination, jump and call targets as absolute indexes, LD_IMM64 as
// one instruction holding its 64-bit value (a map or global-data address already resolved), helpers as the
// emulator's own numbers. Whatever a verifier would refuse (an unknown opcode, a register that does not exist,
// a write to r10, a jump outside the code) decodes to `.fault`, whose `imm` indexes the reason: it faults only if
// it is reached, as a program that takes another path is still run.

/// A decoded instruction (16 bytes).
struct Instruction {
    var op: Op
    var dst: UInt8
    var src: UInt8
    /// A third operand of the instructions chosen at load time (see `Op`).
    var aux: UInt8 = 0
    /// Memory offset, or absolute jump/call target.
    var off: Int32
    var imm: Int64
}

enum Op: UInt8 {
    case fault
    // ALU64, immediate then register.
    case add64i, sub64i, mul64i, div64i, or64i, and64i, lsh64i, rsh64i, mod64i, xor64i, mov64i, arsh64i
    case sdiv64i, smod64i
    case add64r, sub64r, mul64r, div64r, or64r, and64r, lsh64r, rsh64r, mod64r, xor64r, mov64r, arsh64r
    case sdiv64r, smod64r, neg64, movsx64b, movsx64h, movsx64w
    // ALU32.
    case add32i, sub32i, mul32i, div32i, or32i, and32i, lsh32i, rsh32i, mod32i, xor32i, mov32i, arsh32i
    case sdiv32i, smod32i
    case add32r, sub32r, mul32r, div32r, or32r, and32r, lsh32r, rsh32r, mod32r, xor32r, mov32r, arsh32r
    case sdiv32r, smod32r, neg32, movsx32b, movsx32h
    // Byte order.
    case le16, le32, le64, be16, be32, be64
    // Jumps.
    case ja
    case jeq64i, jgt64i, jge64i, jset64i, jne64i, jsgt64i, jsge64i, jlt64i, jle64i, jslt64i, jsle64i
    case jeq64r, jgt64r, jge64r, jset64r, jne64r, jsgt64r, jsge64r, jlt64r, jle64r, jslt64r, jsle64r
    case jeq32i, jgt32i, jge32i, jset32i, jne32i, jsgt32i, jsge32i, jlt32i, jle32i, jslt32i, jsle32i
    case jeq32r, jgt32r, jge32r, jset32r, jne32r, jsgt32r, jsge32r, jlt32r, jle32r, jslt32r, jsle32r
    case callHelper, callLocal, exit, tailCall
    /// map_lookup_elem and redirect_map, the helpers of every redirect program, with a fast path of their own.
    case callLookup, callRedirectMap
    // Chosen at load time (Decoder+Fuse.swift). Fused pairs, where the second is no jump target: the first
    // instruction does both and the second is skipped. `dst = src; dst += imm` (pointer arithmetic, mostly);
    // the same followed by the bounds check `if dst > rX goto` (or `if rX < dst`), with rX in `aux` and the
    // target in `off`.
    case movAdd64, movAddJgt
    // Two loads of one width from one base register that the first does not change: the first as decoded, the
    // second's destination in `aux` and its offset in `imm`.
    case ldxb2, ldxh2, ldxw2, ldxdw2
    // 32-bit loads of `struct xdp_md` fields through r1 where r1 still holds the context it had at the program's
    // entry (known at load time, as the kernel rewrites context accesses when it loads a program): one, or two
    // (the second's destination in `aux`, its offset in `imm`).
    case ctxLoad, ctxLoad2
    // `dst <<= imm; dst |= aux` (32- and 64-bit: how clang assembles a field from bytes).
    case lshOr32, lshOr64
    // An LD_IMM64 followed by `aux = off` (a 64-bit MOV of an immediate; helper arguments, mostly).
    case ldimm64Mov
    // `r0 = src` (32- or 64-bit) followed by `exit`.
    case movExit32, movExit64
    // map_lookup_elem of a map known at load time (r1 set by an LD_IMM64 earlier in the same straight run):
    // `imm` the map reference, `aux` the map's index, `dst` the slots to skip first (2 when fused with the
    // LD_IMM64 itself, else 0); `src` 1 when the `if r0 == 0 goto off` that follows is fused too. By the map's
    // class: any map but a devmap, an array, a hash map.
    case lookupConstant, lookupArray, lookupHash
    /// redirect_map into a devmap known at load time (`aux` its index).
    case redirectDevMap
    // Memory.
    case ldimm64
    case ldxb, ldxh, ldxw, ldxdw, ldxsb, ldxsh, ldxsw
    case stb, sth, stw, stdw
    case stxb, stxh, stxw, stxdw
    case atomic32, atomic64
}

extension Op {
    var isConditionalJump: Bool { rawValue >= Op.jeq64i.rawValue && rawValue <= Op.jsle32r.rawValue }
}

/// Atomic operations (the `imm` of BPF_ATOMIC).
enum AtomicOp {
    static let add: Int64 = 0x00
    static let or: Int64 = 0x40
    static let and: Int64 = 0x50
    static let xor: Int64 = 0xA0
    static let fetch: Int64 = 0x01
    static let xchg: Int64 = 0xE1
    static let cmpxchg: Int64 = 0xF1
}

/// The helpers the emulator implements, by their kernel numbers (`BPF_FUNC_*`).
public enum HelperID: Int64, CaseIterable, Sendable {
    case mapLookupElem = 1
    case mapUpdateElem = 2
    case mapDeleteElem = 3
    case ktimeGetNs = 5
    case tracePrintk = 6
    case getPrandomU32 = 7
    case getSmpProcessorId = 8
    case tailCall = 12
    case redirect = 23
    case csumDiff = 28
    case xdpAdjustHead = 44
    case redirectMap = 51
    case xdpAdjustMeta = 54
    case xdpAdjustTail = 65
    case fibLookup = 69
    case ktimeGetCoarseNs = 160
    case xdpGetBuffLen = 188
    case xdpLoadBytes = 189
    case xdpStoreBytes = 190

    public var name: String {
        switch self {
        case .mapLookupElem: "map_lookup_elem"
        case .mapUpdateElem: "map_update_elem"
        case .mapDeleteElem: "map_delete_elem"
        case .ktimeGetNs: "ktime_get_ns"
        case .tracePrintk: "trace_printk"
        case .getPrandomU32: "get_prandom_u32"
        case .getSmpProcessorId: "get_smp_processor_id"
        case .tailCall: "tail_call"
        case .redirect: "redirect"
        case .csumDiff: "csum_diff"
        case .xdpAdjustHead: "xdp_adjust_head"
        case .redirectMap: "redirect_map"
        case .xdpAdjustMeta: "xdp_adjust_meta"
        case .xdpAdjustTail: "xdp_adjust_tail"
        case .fibLookup: "fib_lookup"
        case .ktimeGetCoarseNs: "ktime_get_coarse_ns"
        case .xdpGetBuffLen: "xdp_get_buff_len"
        case .xdpLoadBytes: "xdp_load_bytes"
        case .xdpStoreBytes: "xdp_store_bytes"
        }
    }
}
