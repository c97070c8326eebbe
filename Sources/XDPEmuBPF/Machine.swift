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

struct CallFrame {
    var returnPC: Int
    var r6: UInt64, r7: UInt64, r8: UInt64, r9: UInt64, r10: UInt64
}

public final class BPFMachine: @unchecked Sendable {
    // @unchecked Sendable: runs on the one worker thread that polls its port.
    public let loaded: LoadedBPFObject
    public let program: BPFProgramInfo
    let code: UnsafeMutablePointer<Instruction>
    let regionCount: UInt64
    /// The regions (VirtualMemory.swift) as `translate` reads them: for loads, and for stores (a read-only
    /// region has no bytes here).
    ///
    /// Both tables are one block of 2 * 256 - 1 spans, read forward from the middle for loads and backward for
    /// stores, so that region 0, the packet, is one span for both: set once per frame.
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
    /// The routes `bpf_fib_lookup` searches (set before the first frame; see FIB.swift).
    public var fib: [FIBRoute] = []
    /// Whether runs take the object's lock (set before the first frame when several workers run the object's
    /// programs: RunLock.swift).
    @exclusivity(unchecked) public var serialised = false
    /// Instructions the last frame ran.
    @exclusivity(unchecked) public private(set) var lastInstructionCount = 0
    @exclusivity(unchecked) var fault = Fault.none { didSet { faulted = true } }
    /// Whether `fault` was set since the last frame (one test of a flag after each frame, not of the enum).
    @exclusivity(unchecked) var faulted = false
    @exclusivity(unchecked) var faultPC = 0
    @exclusivity(unchecked) var helperReason = ""
    @exclusivity(unchecked) var reported = Set<Int>()
    @exclusivity(unchecked) var random: UInt64
    /// Tail calls made in the current frame.
    @exclusivity(unchecked) var tailCalls = 0

    public static let defaultBudget = 1_000_000

    public init(
        loaded: LoadedBPFObject, program: BPFProgramInfo, budget: Int = defaultBudget, cpu: Int = 0, seed: UInt64 = 0
    ) {
        self.loaded = loaded
        self.program = program
        code = loaded.code
        mapCount = loaded.maps.count
        regionCount = VirtualAddress.firstMapRegion + UInt64(mapCount)
        let table = VirtualAddress.regionTableSize
        writeSpans = .allocate(capacity: 2 * table - 1) + (table - 1)
        (writeSpans - (table - 1)).initialize(repeating: Span(.empty, index: 0), count: 2 * table - 1)
        readSpans = writeSpans
        registers = .allocate(capacity: 11)
        registers.initialize(repeating: 0, count: 11)
        frames = .allocate(capacity: VirtualAddress.maxFrames)
        stack = .allocate(byteCount: VirtualAddress.frameSize * VirtualAddress.maxFrames, alignment: 16)
        stack.initializeMemory(as: UInt8.self, repeating: 0, count: VirtualAddress.frameSize * VirtualAddress.maxFrames)
        context = .allocate(byteCount: VirtualAddress.contextSize, alignment: 8)
        context.initializeMemory(as: UInt8.self, repeating: 0, count: VirtualAddress.contextSize)
        maps = .allocate(capacity: max(mapCount, 1))
        var regions = [Region](repeating: .empty, count: Int(regionCount))
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
        for (i, region) in regions.enumerated() { setRegion(i, region) }
    }

    /// Sets the spans of region `index`.
    @inline(__always)
    func setRegion(_ index: Int, _ region: Region) {
        readSpans[index] = Span(region, index: index)
        if index != 0 { writeSpans[-index] = region.writable ? Span(region, index: index) : Span(.empty, index: index) }
    }

    deinit {
        (writeSpans - (VirtualAddress.regionTableSize - 1)).deallocate()
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
            base: c.hardStart + meta, start: base &+ UInt64(truncatingIfNeeded: meta),
            span: UInt64(truncatingIfNeeded: c.dataEndOffset &- meta))
        readSpans[0] = span
        context.storeBytes(
            of: UInt32(truncatingIfNeeded: base &+ UInt64(c.dataOffset)), toByteOffset: 0, as: UInt32.self)
        context.storeBytes(of: UInt32(truncatingIfNeeded: span.start &+ span.span), toByteOffset: 4, as: UInt32.self)
        context.storeBytes(of: UInt32(truncatingIfNeeded: span.start), toByteOffset: 8, as: UInt32.self)
    }

    /// The host address of `size` bytes at `address`, or nil when they are not all in one region the program
    /// may touch (for a store: may write).
    @inline(__always)
    func translate(_ address: UInt64, _ size: UInt64, write: Bool) -> UnsafeMutableRawPointer? {
        translate(address, write: write) { $0.limit(size) }
    }

    /// `translate` for a size known only when the program runs (a map's key or value).
    @inline(__always)
    func translate(_ address: UInt64, anySize size: UInt64, write: Bool) -> UnsafeMutableRawPointer? {
        translate(address, write: write) { $0.limit(anySize: size) }
    }

    @inline(__always)
    private func translate(
        _ address: UInt64, write: Bool, limit: (Span) -> UInt64
    ) -> UnsafeMutableRawPointer? {
        let region = Int(truncatingIfNeeded: UInt8(truncatingIfNeeded: address >> 32))
        let span = write ? writeSpans - region : readSpans + region
        let relative = address &- span.pointee.start
        guard relative < limit(span.pointee) else { return nil }
        return span.pointee.base + Int(truncatingIfNeeded: relative)
    }

    /// Runs the program on the frame of `c` and returns its action (XDP_ABORTED after a fault).
    public func run(_ c: inout XDPContext) -> XDPAction {
        if _slowPath(serialised) { return runSerialised(&c) }
        return runFrame(&c)
    }

    @inline(never)
    private func runSerialised(_ c: inout XDPContext) -> XDPAction {
        loaded.runLock.lock()
        defer { loaded.runLock.unlock() }
        return runFrame(&c)
    }

    @inline(__always)
    private func runFrame(_ c: inout XDPContext) -> XDPAction {
        syncPacket(c)
        context.storeBytes(of: c.ingressIfindex.rawValue, toByteOffset: 12, as: UInt32.self)
        context.storeBytes(of: c.rxQueueIndex, toByteOffset: 16, as: UInt32.self)
        context.storeBytes(of: c.egressIfindex.rawValue, toByteOffset: 20, as: UInt32.self)
        tailCalls = 0
        let R = registers
        R[1] = VirtualAddress.contextRegion << 32
        R[10] = VirtualAddress.stackRegion << 32 | UInt64(VirtualAddress.frameSize)
        let remaining = execute(&c)
        lastInstructionCount = budget &- remaining
        if _slowPath(faulted) {
            report(c)
            fault = .none
            faulted = false
            return .aborted
        }
        return XDPAction(rawValue: UInt32(truncatingIfNeeded: R[0]))
    }

    /// Instruction slots from `start` to `end`.
    @inline(__always)
    func slots(_ start: UnsafeMutablePointer<Instruction>, _ end: UnsafeMutablePointer<Instruction>) -> Int {
        (Int(bitPattern: end) &- Int(bitPattern: start)) &>> MemoryLayout<Instruction>.stride.trailingZeroBitCount
    }

    /// The fused loads at `i` (Op.ldxb2...): nil, or the instruction that faulted (`i`, or the second at `i + 1`).
    @inline(__always)
    func loadPair<T: FixedWidthInteger & UnsignedInteger>(
        _ i: UnsafeMutablePointer<Instruction>, _: T.Type
    ) -> UnsafeMutablePointer<Instruction>? {
        let R = registers
        let base = R[i.s]
        let size = UInt64(MemoryLayout<T>.size)
        guard let p = translate(base &+ UInt64(bitPattern: Int64(i.off)), size, write: false) else { return i }
        R[i.d] = UInt64(p.loadUnaligned(as: T.self))
        guard let q = translate(base &+ UInt64(bitPattern: i.imm), size, write: false) else { return i + 1 }
        R[Int(i.pointee.aux)] = UInt64(q.loadUnaligned(as: T.self))
        return nil
    }
}
