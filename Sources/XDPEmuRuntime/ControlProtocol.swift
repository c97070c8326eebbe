import Foundation

// The control protocol of a live instance (docs/control.md): over its Unix socket, a client sends requests and
// reads responses, each one JSON object on one line.
//
//   request   {"v": 1, "op": "map.update", "map": "fwd", "key": 0, "device": "xe1", "flags": "any"}
//   response  {"v": 1, "ok": true, ...}  |  {"v": 1, "ok": false, "errno": "EEXIST"}
//             |  {"v": 1, "ok": false, "error": "unknown map \"x\" (maps: fwd)"}
//
// A request is at most `ControlProtocol.maxRequestBytes` bytes with its newline; its "v" must be 1. Responses come
// in request order. `events` turns the connection into a stream of event lines (the event log's JSON lines) that
// ends when the client closes it or the instance stops. Answers from the devmap carry the errno name the kernel
// would give (`errno`), as `xdpemu map batch` prints them; everything else that goes wrong is an `error` message.

/// Limits and helpers of the control protocol.
public enum ControlProtocol {
    /// The protocol version this xdpemu speaks.
    public static let version = 1
    /// The longest request line, newline included.
    public static let maxRequestBytes = 4096
    /// The longest response a client reads (a dump of a large map).
    public static let maxResponseBytes = 64 << 20

    /// A request line's object, or an error message for a line that is not one.
    static func parse(_ line: ArraySlice<UInt8>) -> Result<[String: Any], ControlFailure> {
        guard let object = try? JSONSerialization.jsonObject(with: Data(line), options: []),
            let request = object as? [String: Any]
        else {
            return .failure(.error("malformed request: not a JSON object on one line"))
        }
        guard let version = request["v"] else {
            return .failure(.error("malformed request: no protocol version (\"v\")"))
        }
        guard let number = version as? NSNumber, "\(number)" == "\(ControlProtocol.version)" else {
            return .failure(
                .error("unsupported protocol version \(version) (this xdpemu speaks \(ControlProtocol.version))"))
        }
        return .success(request)
    }

    /// A response line: `{"v":1,"ok":true` + `fields` (already JSON, comma-led) + `}` and a newline.
    static func success(_ fields: String = "") -> [UInt8] {
        Array("{\"v\":\(version),\"ok\":true\(fields)}\n".utf8)
    }

    /// A failure's response line.
    static func failure(_ failure: ControlFailure) -> [UInt8] {
        switch failure {
        case .errno(let name): Array("{\"v\":\(version),\"ok\":false,\"errno\":\"\(name)\"}\n".utf8)
        case .error(let message): Array("{\"v\":\(version),\"ok\":false,\"error\":\(jsonString(message))}\n".utf8)
        }
    }

    /// A request line for `fields` (the client's side).
    public static func request(_ op: String, _ fields: [String: Any] = [:]) -> [UInt8] {
        var object = fields
        object["v"] = version
        object["op"] = op
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return Array(data) + [UInt8(ascii: "\n")]
    }
}

/// Why a request failed: a devmap errno (by name) or a message.
enum ControlFailure: Error, Equatable {
    case errno(String)
    case error(String)
}

/// `text` as a JSON string.
func jsonString(_ text: String) -> String {
    let data = (try? JSONSerialization.data(withJSONObject: [text], options: [])) ?? Data("[\"\"]".utf8)
    return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
}
