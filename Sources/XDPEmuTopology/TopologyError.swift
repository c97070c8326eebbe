/// Everything wrong with a topology file, all at once.
///
/// ``description`` has one line per problem, `source: path: message`, for example
/// `topologies/x.json: $.ports[2].mtu: must be an integer 68...65535, got "abc"`.
public struct TopologyError: Error, Sendable, Equatable, CustomStringConvertible {
    /// One thing wrong with the file.
    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        /// A JSONPath to the offending value, or to the object that lacks a required member: `$.ports[2].mtu`.
        public var path: String
        /// What is wrong and, where it helps, what would be right.
        public var message: String
        /// Where the offending value starts in the file, when known.
        public var position: SourcePosition?

        public init(path: String, message: String, position: SourcePosition? = nil) {
            self.path = path
            self.message = message
            self.position = position
        }

        /// `path: message`.
        public var description: String { "\(path): \(message)" }
    }

    /// The file path or label the topology was loaded from.
    public var source: String
    /// In document order; never empty.
    public var problems: [Problem]

    public init(source: String, problems: [Problem]) {
        self.source = source
        self.problems = problems
    }

    public var description: String {
        problems.map { "\(source): \($0)" }.joined(separator: "\n")
    }
}
