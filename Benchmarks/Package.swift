// swift-tools-version: 6.1
import PackageDescription

// The benchmarks of the core datapath, in their own package so that the root package does not depend on
// ordo-one/benchmark. CoreBenchmarks is what `swift package benchmark` runs (the plugin picks executable targets
// whose folder sits in a folder named Benchmarks); core-loop is a plain executable for callgrind and quick runs.
// Both drive the same scenarios from BenchSupport.
let package = Package(
    name: "xdpemu-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        // `name:` so that products resolve whatever the checkout folder is called (main, a worktree, CI's clone).
        .package(name: "xdpemu", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
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
    ]
)
