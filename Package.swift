// swift-tools-version: 6.1
import PackageDescription

// Dependency direction: xdpemu -> XDPEmuCLI -> XDPEmuRuntime -> {XDPEmuCore, XDPEmuPrograms, XDPEmuPcap,
// XDPEmuTopology, XDPEmuOS}; XDPEmuTopology reads its files through XDPEmuOS and is written in the types of
// XDPEmuCore and XDPEmuPrograms (addresses, semantics, the built-in programs' configurations); XDPEmuOS sets up
// XDPEmuCore's HostSpec.
// XDPEmuCore is pure: no I/O, no clock, no Foundation. Benchmarks live in Benchmarks/ (their own package).
let package = Package(
    name: "xdpemu",
    products: [
        .executable(name: "xdpemu", targets: ["xdpemu"]),
        // The command line as a library: a package of your own builds its own xdpemu with its programs
        // (Examples/custom-program).
        .library(name: "XDPEmuCLI", targets: ["XDPEmuCLI"]),
        .library(name: "XDPEmuCore", targets: ["XDPEmuCore"]),
        .library(name: "XDPEmuPrograms", targets: ["XDPEmuPrograms"]),
        .library(name: "XDPEmuBPF", targets: ["XDPEmuBPF"]),
        .library(name: "XDPEmuTesting", targets: ["XDPEmuTesting"]),
        .library(name: "XDPEmuPcap", targets: ["XDPEmuPcap"]),
        .library(name: "XDPEmuRuntime", targets: ["XDPEmuRuntime"]),
        // For Benchmarks/: the replay and live benchmarks build topologies and clean up namespaces.
        .library(name: "XDPEmuTopology", targets: ["XDPEmuTopology"]),
        .library(name: "XDPEmuOS", targets: ["XDPEmuOS"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
    ],
    targets: [
        .systemLibrary(name: "CPcap", providers: [.apt(["libpcap-dev"])]),
        .target(name: "CTapShim"),
        .target(name: "XDPEmuCore"),
        .target(name: "XDPEmuPrograms", dependencies: ["XDPEmuCore"]),
        // Compiled eBPF objects: the ELF/BTF loader, the interpreter, the maps and helpers. Pure, like the core.
        .target(name: "XDPEmuBPF", dependencies: ["XDPEmuCore"]),
        .target(name: "XDPEmuTesting", dependencies: ["XDPEmuCore"]),
        .target(name: "XDPEmuPcap", dependencies: ["CPcap", .product(name: "SystemPackage", package: "swift-system")]),
        .target(name: "XDPEmuTopology", dependencies: ["XDPEmuCore", "XDPEmuPrograms", "XDPEmuOS"]),
        .target(
            name: "XDPEmuOS",
            dependencies: ["CTapShim", "XDPEmuCore", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .target(
            name: "XDPEmuRuntime",
            dependencies: [
                "XDPEmuCore", "XDPEmuPrograms", "XDPEmuPcap", "XDPEmuTopology", "XDPEmuOS", "XDPEmuBPF",
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        .target(
            name: "XDPEmuCLI",
            dependencies: [
                "XDPEmuRuntime", "XDPEmuOS", "XDPEmuTopology",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "xdpemu", dependencies: ["XDPEmuCLI"]),
        .testTarget(name: "XDPEmuCoreTests", dependencies: ["XDPEmuCore", "XDPEmuTesting"]),
        .testTarget(
            name: "XDPEmuBPFTests",
            dependencies: ["XDPEmuBPF", "XDPEmuCore", "XDPEmuRuntime", "XDPEmuTopology", "XDPEmuTesting"],
            exclude: ["Programs", "Kernel"]
        ),
        .testTarget(name: "XDPEmuProgramsTests", dependencies: ["XDPEmuPrograms", "XDPEmuCore", "XDPEmuTesting"]),
        .testTarget(name: "XDPEmuPcapTests", dependencies: ["XDPEmuPcap", "CPcap", "XDPEmuTesting"]),
        .testTarget(name: "XDPEmuTopologyTests", dependencies: ["XDPEmuTopology", "XDPEmuCore", "XDPEmuPrograms"]),
        .testTarget(
            name: "XDPEmuOSTests",
            dependencies: ["XDPEmuOS", "XDPEmuCore", .product(name: "SystemPackage", package: "swift-system")]
        ),
        .testTarget(
            name: "XDPEmuRuntimeTests",
            dependencies: [
                "XDPEmuRuntime", "XDPEmuTesting", "XDPEmuPcap", "XDPEmuPrograms", "XDPEmuOS", "XDPEmuTopology",
                "CTapShim",
            ],
            exclude: ["Golden"]
        ),
    ]
)
