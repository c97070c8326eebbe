// swift-tools-version: 6.1
import PackageDescription

// The eBPF interpreter's benchmark (scripts/bench/ebpf-vs-ubpf.sh builds and runs it): its own package, like
// Benchmarks/, so the root package does not carry it.
let package = Package(
    name: "ebpf-bench",
    dependencies: [.package(name: "xdpemu", path: "../../..")],
    targets: [
        .executableTarget(
            name: "ebpf-bench",
            dependencies: [
                .product(name: "XDPEmuBPF", package: "xdpemu"),
                .product(name: "XDPEmuCore", package: "xdpemu"),
                .product(name: "XDPEmuPrograms", package: "xdpemu"),
            ]
        )
    ]
)
