import Foundation

/// A parsed JSON value, strict about types: `1` is not `true`, `"5"` is not `5`.
///
/// Used to read channel settings and providers' answers. Parsed by ``WebhookJSON``'s byte parser
/// (see ``parse(_:)``), which keeps literals apart, so the settings parser can tell an admin
/// exactly which setting has the wrong type.
enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Parses `bytes`, or returns nil when they are not JSON (RFC 8259).
    ///
    /// Built on ``WebhookJSON``'s byte parser rather than `JSONDecoder`: every provider answer goes
    /// through here, and the Codable path cost 13% of a worker's CPU at 10,000 sends per second
    /// (perf, HTTP benchmark).
    static func parse(_ bytes: some Collection<UInt8>) -> JSONValue? {
        guard !bytes.isEmpty, let parsed = try? WebhookJSON.parse(bytes) else { return nil }
        return JSONValue(parsed)
    }

    /// The same value with numbers as `Double` and objects as dictionaries (the first of repeated
    /// keys wins, as in ``WebhookJSON``'s lookups).
    init(_ value: WebhookJSON) {
        switch value {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .number(let text): self = .number(Double(text) ?? .nan)
        case .string(let s): self = .string(s)
        case .array(let items): self = .array(items.map(JSONValue.init))
        case .object(let members):
            var dict: [String: JSONValue] = [:]
            for m in members where dict[m.key] == nil { dict[m.key] = JSONValue(m.value) }
            self = .object(dict)
        }
    }

    subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    subscript(index: Int) -> JSONValue? {
        if case .array(let items) = self, items.indices.contains(index) { return items[index] }
        return nil
    }

    var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    /// An integral number, or a string holding one (some gateways quote Meta's codes).
    var integerValue: Int? {
        switch self {
        case .number(let value):
            guard value.rounded() == value, abs(value) < 9_007_199_254_740_992 else { return nil }
            return Int(value)
        case .string(let value):
            return Int(value)
        default:
            return nil
        }
    }

    var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }
}

/// Appends JSON text to a byte buffer.
///
/// Herald writes provider request bodies by hand instead of with `JSONEncoder`: the key order is
/// fixed (so golden wire fixtures compare byte for byte, and Meta's examples read the same), there is
/// no intermediate `Encodable` tree or `Data` copy on the hot sending path, and the escaping rules
/// are spelled out below rather than left to a Foundation version (which, for one, escapes `/`).
struct JSONWriter {
    private(set) var bytes: [UInt8] = []

    init(reservingCapacity capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    /// Appends JSON punctuation or other text that needs no escaping.
    mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    /// Appends `value` as a quoted JSON string.
    mutating func string(_ value: String) {
        bytes.append(UInt8(ascii: "\""))
        JSONWriter.appendEscaped(value, to: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    /// Appends the body of a JSON string (without the quotes) for `value` to `out`.
    ///
    /// Escapes `"` and `\`, writes the control characters U+0000–U+001F as `\b`, `\f`, `\n`, `\r`,
    /// `\t` or `\u00XX`, and copies everything else, non-ASCII included, as UTF-8 (RFC 8259 §7).
    static func appendEscaped(_ value: String, to out: inout [UInt8]) {
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "\\"))
            case 0x0A: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
            case 0x09: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
            case 0x08: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "b"))
            case 0x0C: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "f"))
            case 0x00..<0x20:
                out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "u"))
                out.append(UInt8(ascii: "0")); out.append(UInt8(ascii: "0"))
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0x0F)])
            default:
                out.append(byte)
            }
        }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// `value` escaped as the body of a JSON string, without the quotes.
    static func escape(_ value: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(value.utf8.count + 8)
        appendEscaped(value, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}
