// The interpreter: runs one program of a loaded object on one frame at a time.
//
// Memory safety replaces the verifier. Every load and store goes through `translate`, which checks the address
// against its region (VirtualMemory.swift); division follows the kernel (x / 0 = 0, x % 0 = x, signed
// INT_MIN / -1 = INT_MIN); everything else a verifier would have refused faults when it is reached: an invalid
// instruction, an unknown helper, a bad helper argument, a call deeper than 8 frames, or more instructions
// than the budget (checked at every taken jump and call, the only ways to run an instruction twice). A fault
// ends the frame with XDP_ABORTED, which the core traces as xdp_exception; its reason is logged once per
// instruction (`BPFMessageLog`). Nothing here allocates on the per-frame path: registers, stack, call frames and
// the region table are allocated with the machine.

import XDPEmuCore

/// Why a frame faulted (kept as numbers; the message is built only the first time an instruction faults).
enum Fault {
    case none
    case invalid(reason: Int)
    case memory(address: UInt64, size: Int, write: Bool)
    case budget
    case callDepth
    /// A helper refused its arguments (`BPFMachine.helperReason` says why).
    case helper
}

struct CallFrame {
    var returnPC: Int
    var r6: UInt64, r7: UInt64, r8: UInt64, r9: UInt64, r10: UInt64
}

public final class BPFMachine: @unchecked Sendable {
    // @unchecked Sendable: runs on the one worker thread that polls its port.
    public let loaded: LoadedBPFObject
    public let program: BPFProgramInfo
    let code: UnsafeMutablePointer<Instruction>
    let regions: UnsafeMutablePointer<Region>
    let regionCount: UInt64
    /// The regions as `translate` reads them: for loads, and for stores (a read-only region has no bytes here).
    let readSpans: UnsafeMutablePointer<Span>
    let writeSpans: UnsafeMutablePointer<Span>
    let registers: UnsafeMutablePointer<UInt64>
    let frames: UnsafeMutablePointer<CallFrame>
    let stack: UnsafeMutableRawPointer
    let context: UnsafeMutableRawPointer
    let maps: UnsafeMutablePointer<Unmanaged<BPFMap>>
    let mapCount: Int
    /// Instructions a frame may run.
    public let budget: Int
    /// The emulated CPU (`bpf_get_smp_processor_id`, the per-CPU maps' value).
    public let cpu: Int
    /// Instructions the last frame ran.
    @exclusivity(unchecked) public private(set) var lastInstructionCount = 0
    @exclusivity(unchecked) var fault = Fault.none
    @exclusivity(unchecked) var faultPC = 0
    @exclusivity(unchecked) var helperReason = ""
    @exclusivity(unchecked) var reported = Set<Int>()
    @exclusivity(unchecked) var random: UInt64

    public static let defaultBudget = 1_000_000

    public init(
        loaded: LoadedBPFObject, program: BPFProgramInfo, budget: Int = defaultBudget, cpu: Int = 0, seed: UInt64 = 0
    ) {
        self.loaded = loaded
        self.program = program
        code = loaded.code
        mapCount = loaded.maps.count
        regionCount = VirtualAddress.firstMapRegion + UInt64(mapCount)
        regions = .allocate(capacity: Int(regionCount))
        regions.initialize(repeating: .empty, count: Int(regionCount))
        readSpans = .allocate(capacity: Int(regionCount))
        readSpans.initialize(repeating: Span(.empty), count: Int(regionCount))
        writeSpans = .allocate(capacity: Int(regionCount))
        writeSpans.initialize(repeating: Span(.empty), count: Int(regionCount))
        registers = .allocate(capacity: 11)
        registers.initialize(repeating: 0, count: 11)
        frames = .allocate(capacity: VirtualAddress.maxFrames)
        stack = .allocate(byteCount: VirtualAddress.frameSize * VirtualAddress.maxFrames, alignment: 16)
        stack.initializeMemory(as: UInt8.self, repeating: 0, count: VirtualAddress.frameSize * VirtualAddress.maxFrames)
        context = .allocate(byteCount: VirtualAddress.contextSize, alignment: 8)
        context.initializeMemory(as: UInt8.self, repeating: 0, count: VirtualAddress.contextSize)
        maps = .allocate(capacity: max(mapCount, 1))
        for (i, map) in loaded.maps.enumerated() {
            (maps + i).initialize(to: Unmanaged.passUnretained(map))
            regions[Int(VirtualAddress.firstMapRegion) + i] = map.region
        }
        regions[Int(VirtualAddress.contextRegion)] = Region(
            bias: UInt(bitPattern: context), lo: 0, hi: UInt64(VirtualAddress.contextSize), writable: false)
        regions[Int(VirtualAddress.stackRegion)] = Region(
            bias: UInt(bitPattern: stack), lo: 0, hi: UInt64(VirtualAddress.frameSize * VirtualAddress.maxFrames),
            writable: true)
        self.budget = budget
        self.cpu = cpu
        random = seed ^ 0x9E37_79B9_7F4A_7C15
        for i in 0..<Int(regionCount) { setRegion(i, regions[i]) }
    }

    /// Sets region `index` and its spans.
    @inline(__always)
    func setRegion(_ index: Int, _ region: Region) {
        regions[index] = region
        readSpans[index] = Span(region)
        writeSpans[index] = region.writable ? Span(region) : Span(.empty)
    }

    deinit {
        regions.deallocate()
        readSpans.deallocate()
        writeSpans.deallocate()
        registers.deallocate()
        frames.deallocate()
        stack.deallocate()
        context.deallocate()
        maps.deallocate()
    }

    /// Points region 0 and the context's data, data_end and data_meta at the frame's current bounds.
    @inline(__always)
    func syncPacket(_ c: XDPContext) {
        let base = VirtualAddress.packetBase
        let meta = c.metaOffset
        let span = Span(
            base: c.hardStart + meta, lo: base &+ UInt64(truncatingIfNeeded: meta),
            span: UInt64(truncatingIfNeeded: c.dataEndOffset &- meta))
        readSpans[0] = span
        writeSpans[0] = span
        context.storeBytes(
            of: UInt32(truncatingIfNeeded: base &+ UInt64(c.dataOffset)), toByteOffset: 0, as: UInt32.self)
        context.storeBytes(of: UInt32(truncatingIfNeeded: span.lo &+ span.span), toByteOffset: 4, as: UInt32.self)
        context.storeBytes(of: UInt32(truncatingIfNeeded: span.lo), toByteOffset: 8, as: UInt32.self)
    }

    /// The host address of `size` bytes at `address`, or nil when they are not all in one region the program
    /// may touch (for a store: may write).
    @inline(__always)
    func translate(_ address: UInt64, _ size: UInt64, write: Bool) -> UnsafeMutableRawPointer? {
        let region = address >> 32
        guard region < regionCount else { return nil }
        let r = (write ? writeSpans : readSpans)[Int(truncatingIfNeeded: region)]
        let relative = (address & 0xFFFF_FFFF) &- r.lo
        guard relative < r.span, size <= r.span &- relative else { return nil }
        return r.base + Int(truncatingIfNeeded: relative)
    }

    /// Runs the program on the frame of `c` and returns its action (XDP_ABORTED after a fault).
    public func run(_ c: inout XDPContext) -> XDPAction {
        syncPacket(c)
        context.storeBytes(of: c.ingressIfindex.rawValue, toByteOffset: 12, as: UInt32.self)
        context.storeBytes(of: c.rxQueueIndex, toByteOffset: 16, as: UInt32.self)
        context.storeBytes(of: c.egressIfindex.rawValue, toByteOffset: 20, as: UInt32.self)
        let R = registers
        R[1] = VirtualAddress.contextRegion << 32
        R[10] = VirtualAddress.stackRegion << 32 | UInt64(VirtualAddress.frameSize)
        let remaining = execute(&c)
        lastInstructionCount = budget - remaining
        guard case .none = fault else {
            report(c)
            fault = .none
            return .aborted
        }
        return XDPAction(rawValue: UInt32(truncatingIfNeeded: R[0]))
    }

    private func report(_ c: XDPContext) {
        guard reported.insert(faultPC).inserted else { return }
        let text: String
        switch fault {
        case .none: return
        case .invalid(let reason): text = loaded.faultReasons[reason]
        case .memory(let address, let size, let write):
            text =
                "\(write ? "store" : "load") of \(size) bytes at 0x\(String(address, radix: 16)) is outside "
                + "the memory the program may \(write ? "write" : "read") (\(describe(address)))"
        case .budget: text = "more than \(budget) instructions in one frame"
        case .callDepth: text = "BPF-to-BPF calls nested deeper than \(VirtualAddress.maxFrames) frames"
        case .helper: text = helperReason
        }
        loaded.log.append(
            BPFMessage(
                kind: .fault, time: c.now, program: program.name, place: loaded.object.place(of: faultPC), text: text))
    }

    private func describe(_ address: UInt64) -> String {
        let region = address >> 32
        let offset = address & 0xFFFF_FFFF
        switch region {
        case 0:
            let r = readSpans[0]
            return offset >= VirtualAddress.packetBase
                ? "packet offset \(Int64(offset) - Int64(r.lo)) from data_meta, the packet has \(r.span) bytes"
                : "not a pointer"
        case VirtualAddress.contextRegion: return "context offset \(offset), xdp_md has 24 bytes, read only"
        case VirtualAddress.stackRegion: return "stack offset \(offset), the stack has 8 frames of 512 bytes"
        case VirtualAddress.firstMapRegion..<regionCount:
            let map = loaded.maps[Int(region - VirtualAddress.firstMapRegion)]
            return "offset \(offset) in the values of map \(map.definition.name)"
                + (map.definition.readOnly ? ", read only" : "")
        default:
            return VirtualAddress.mapIndex(ofHandle: address) != nil
                ? "a map reference, not a pointer" : "not a pointer"
        }
    }

    /// The loop. Returns the instructions left of the budget; `fault` says whether it ended with a fault.
    private func execute(_ c: inout XDPContext) -> Int {
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
    private func exhausted(_ pc: Int, _ budget: Int) -> Int {
        fault = .budget
        faultPC = pc
        return budget
    }

    @inline(never)
    private func memoryFault(
        _ base: UInt64, _ i: Instruction, _ size: Int, _ write: Bool, _ pc: Int, _ budget: Int
    ) -> Int {
        fault = .memory(address: base &+ UInt64(bitPattern: Int64(i.off)), size: size, write: write)
        faultPC = pc - 1
        return budget
    }

    @inline(__always) static func sdiv64(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let x = Int64(bitPattern: a)
        let y = Int64(bitPattern: b)
        if y == 0 { return 0 }
        if y == -1 { return UInt64(bitPattern: 0 &- x) }
        return UInt64(bitPattern: x / y)
    }

    @inline(__always) static func smod64(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let x = Int64(bitPattern: a)
        let y = Int64(bitPattern: b)
        if y == 0 { return a }
        if y == -1 { return 0 }
        return UInt64(bitPattern: x % y)
    }

    @inline(__always) static func sdiv32(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let x = Int32(truncatingIfNeeded: a)
        let y = Int32(truncatingIfNeeded: b)
        if y == 0 { return 0 }
        if y == -1 { return UInt64(UInt32(bitPattern: 0 &- x)) }
        return UInt64(UInt32(bitPattern: x / y))
    }

    @inline(__always) static func smod32(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let x = Int32(truncatingIfNeeded: a)
        let y = Int32(truncatingIfNeeded: b)
        if y == 0 { return UInt64(UInt32(bitPattern: x)) }
        if y == -1 { return 0 }
        return UInt64(UInt32(bitPattern: x % y))
    }
}
