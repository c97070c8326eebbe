// swift-tools-version: 6.1
import PackageDescription

// The benchmarks, in their own package so that the root package does not depend on ordo-one/benchmark.
// CoreBenchmarks (the core datapath) and PipelineBenchmarks (pcap reader and writer, replay end to end, live
// forwarding) are what `swift package benchmark` runs (the plugin picks executable targets whose folder sits in a
// folder named Benchmarks; `--target` picks one); core-loop is a plain executable for callgrind and quick runs of
// the core scenarios in BenchSupport. PipelineSupport holds the pipeline benchmarks' scenarios.
let package = Package(
    name: "xdpemu-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        // `name:` so that products resolve whatever the checkout folder is called (main, a worktree, CI's clone).
        .package(name: "xdpemu", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
        // Already a dependency of benchmark; named here so that the live benchmark can read the allocation counters
        // inside its measured window (mallocs per forwarded frame).
        .package(url: "https://github.com/ordo-one/malloc-interposer.git", from: "1.6.1"),
    ],
    targets: [
        .target(name: "CBenchShim", path: "Sources/CBenchShim"),
        .target(
            name: "BenchSupport",
            dependencies: [
                "CBenchShim",
                .product(name: "XDPEmuCore", package: "xdpemu"),
                .product(name: "XDPEmuTesting", package: "xdpemu"),
            ],
            path: "Sources/BenchSupport"
        ),
        // libpcap's reader and pcap_dump, for comparison (links libpcap; the root package's CPcap is not a product).
        .target(name: "CBenchPcap", path: "Sources/CBenchPcap", linkerSettings: [.linkedLibrary("pcap")]),
        .target(
            name: "PipelineSupport",
            dependencies: [
                "BenchSupport", "CBenchPcap", "CBenchShim",
                .product(name: "XDPEmuPcap", package: "xdpemu"),
                .product(name: "XDPEmuRuntime", package: "xdpemu"),
                .product(name: "XDPEmuTopology", package: "xdpemu"),
                .product(name: "XDPEmuOS", package: "xdpemu"),
            ],
            path: "Sources/PipelineSupport"
        ),
        .executableTarget(name: "core-loop", dependencies: ["BenchSupport"], path: "Sources/core-loop"),
        .executableTarget(
            name: "CoreBenchmarks",
            dependencies: [
                "BenchSupport",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "XDPEmuCore", package: "xdpemu"),
            ],
            path: "CoreBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        .executableTarget(
            name: "PipelineBenchmarks",
            dependencies: [
                "BenchSupport", "CBenchPcap", "PipelineSupport",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
                .product(name: "XDPEmuPcap", package: "xdpemu"),
                .product(name: "XDPEmuRuntime", package: "xdpemu"),
            ],
            path: "PipelineBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
