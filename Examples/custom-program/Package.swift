// swift-tools-version: 6.1
import PackageDescription

// An xdpemu of your own, with a program of your own: this package depends on xdpemu's XDPEmuCLI (the whole
// command line) and XDPEmuCore (the API programs are written against), and its executable registers the program
// so that topology files can name it. Build it with `swift build` here; a real package would name xdpemu by its
// git URL instead of this path.
let package = Package(
    name: "custom-program",
    dependencies: [
        .package(name: "xdpemu", path: "../..")
    ],
    targets: [
        .executableTarget(
            name: "xdpemu-vlan",
            dependencies: [
                .product(name: "XDPEmuCLI", package: "xdpemu"),
                .product(name: "XDPEmuCore", package: "xdpemu"),
                .product(name: "XDPEmuRuntime", package: "xdpemu"),
            ]
        )
    ]
)
