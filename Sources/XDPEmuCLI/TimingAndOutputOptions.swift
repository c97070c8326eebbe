import ArgumentParser

/// The options `run` and `replay` share: how traces are paced, scheduled map operations, and the outputs beside
/// the captures.
struct TimingAndOutputOptions: ParsableArguments {
    @Option(help: "recorded: frames arrive at their timestamps; topspeed: as fast as the rings take them.")
    var timing: String = "recorded"

    @Option(
        name: .customLong("map-events"),
        help: ArgumentHelp(
            "Scheduled map updates and deletes (times after the first frame in replay, after the start live).",
            valueName: "FILE.json"))
    var mapEvents: String?

    @Option(help: ArgumentHelp("Write the event log (JSON lines).", valueName: "FILE.jsonl"))
    var events: String?

    @Option(help: ArgumentHelp("Write the statistics as JSON at the end.", valueName: "FILE.json"))
    var stats: String?

    @Option(
        name: .customLong("maps-out"),
        help: ArgumentHelp("Write every map's final contents as JSON at the end.", valueName: "FILE.json"))
    var mapsOut: String?
}
