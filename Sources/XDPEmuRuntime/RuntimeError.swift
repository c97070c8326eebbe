/// Errors of the runtime, each with the exit code the CLI uses (documented in README).
public enum RuntimeError: Error, CustomStringConvertible, Equatable {
    /// Bad input: a topology, trace, map-events file or option that cannot be used. Exit code 2.
    case badInput(String)
    /// The run failed for another reason (an output could not be written...). Exit code 1.
    case failure(String)
    /// Missing privileges or kernel features for live mode. Exit code 77.
    case notPermitted(String)

    public var description: String {
        switch self {
        case .badInput(let m), .failure(let m), .notPermitted(let m): m
        }
    }

    public var exitCode: Int32 {
        switch self {
        case .badInput: 2
        case .failure: 1
        case .notPermitted: 77
        }
    }
}
