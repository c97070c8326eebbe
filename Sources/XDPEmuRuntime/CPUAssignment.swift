import XDPEmuTopology

/// Which CPU (worker, NAPI context) polls each port's RX queue: the port's `cpu` (modulo the CPUs there are), else
/// round robin over the ports that name none, in topology order. The same rule for replay (`napi.cpus`) and live
/// mode (`--workers`).
public enum CPUAssignment {
    /// The CPU of each port, in topology order.
    public static func cpus(of ports: [PortSpec], cpuCount: Int) -> [Int] {
        precondition(cpuCount >= 1)
        var next = 0
        return ports.map { port in
            if let cpu = port.cpu { return cpu % cpuCount }
            defer { next = (next + 1) % cpuCount }
            return next
        }
    }
}
