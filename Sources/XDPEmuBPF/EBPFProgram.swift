import XDPEmuCore

/// A compiled eBPF program attached like any Swift program: each frame runs through its `BPFMachine`.
public struct EBPFProgram: XDPProgram {
    public let machine: BPFMachine
    public init(machine: BPFMachine) { self.machine = machine }
    @inlinable public mutating func run(_ context: inout XDPContext) -> XDPAction { machine.run(&context) }
}
