import XDPEmuRuntime

/// Registers programs of your own so that topology files can name them by `"type"`. Called once at start-up,
/// before any topology is loaded. Example (see README, "Writing your own program"):
///
///     ProgramRegistry.register(type: "vlan_redirect") { config, context in
///         context.attach(VLANRedirectProgram(map: try context.map(config["map"]?.stringValue ?? "")))
///     }
func registerCustomPrograms() {}
