import XDPEmuCLI

// The xdpemu command with the built-in programs. To add programs of your own, build your own executable the
// same way with `XDPEmuCLI.main(programs: [...])` (see Examples/custom-program).
XDPEmuCLI.main()
