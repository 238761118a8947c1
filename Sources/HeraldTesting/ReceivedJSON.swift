import Foundation

/// A parsed JSON document, as the ``ProviderDouble`` received it: Sendable and easy to assert on.
///
/// ```swift
/// #expect(request.json?["template"]?["name"]?.string == "order_update")
/// ```
public enum ReceivedJSON: Sendable, Equatable, Decodable, CustomStringConvertible {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([ReceivedJSON])
    case object([String: ReceivedJSON])

    /// Parses `bytes`; nil when they are not JSON.
    public init?(parsing bytes: [UInt8]) {
        guard !bytes.isEmpty, let value = try? JSONDecoder().decode(ReceivedJSON.self, from: Data(bytes)) else {
            return nil
        }
        self = value
    }

    public subscript(key: String) -> ReceivedJSON? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    public subscript(index: Int) -> ReceivedJSON? {
        if case .array(let elements) = self, elements.indices.contains(index) { return elements[index] }
        return nil
    }

    public var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var number: Double? {
        if case .number(let value) = self { return value }
        return nil
    }

    public var bool: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    public var array: [ReceivedJSON]? {
        if case .array(let value) = self { return value }
        return nil
    }

    public var object: [String: ReceivedJSON]? {
        if case .object(let value) = self { return value }
        return nil
    }

    public var description: String {
        switch self {
        case .null: "null"
        case .bool(let value): "\(value)"
        case .number(let value): value.rounded() == value && abs(value) < 1e15 ? "\(Int(value))" : "\(value)"
        case .string(let value): "\"\(value)\""
        case .array(let values): "[" + values.map(\.description).joined(separator: ",") + "]"
        case .object(let members):
            "{" + members.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",") + "}"
        }
    }
}

extension ReceivedJSON {
    /// Decodes any JSON value; JSONDecoder keeps booleans and numbers apart.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([ReceivedJSON].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: ReceivedJSON].self))
        }
    }
}
