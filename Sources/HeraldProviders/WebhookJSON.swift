/// A JSON value read from a provider's webhook body.
///
/// Webhooks are the one place where Herald reads JSON written by someone else at high rate. The
/// server checks the signature over the raw bytes first (with every configured app secret), so
/// only signed bodies get here; even so this parser is strict and bounded rather than general
/// (linear in the body): it keeps numbers as their
/// text (a `wamid` or an error code never goes through `Double`), rejects nesting deeper than
/// ``maxDepth``, and re-serializes to text PostgreSQL's `jsonb` always accepts (see
/// ``jsonbText``), so one odd payload can never fail the batch it is stored with.
enum WebhookJSON: Sendable, Equatable {
    case null
    case bool(Bool)
    /// The number's text exactly as it appeared (already checked against JSON's grammar).
    case number(String)
    case string(String)
    case array([WebhookJSON])
    /// Members in document order; a repeated key keeps every occurrence (lookups take the first).
    case object([Member])

    struct Member: Sendable, Equatable {
        var key: String
        var value: WebhookJSON
    }

    /// Deeper nesting is refused: no recursion bomb can exhaust the stack.
    static let maxDepth = 64

    /// Parses a complete JSON text (RFC 8259; surrounding whitespace allowed).
    /// - Throws: ``WebhookParseError`` saying where the text stops being JSON.
    static func parse(_ bytes: some Collection<UInt8>) throws(WebhookParseError) -> WebhookJSON {
        let array = Array(bytes)
        var parser = Parser(bytes: array)
        parser.skipWhitespace()
        let value = try parser.value(depth: 0)
        parser.skipWhitespace()
        guard parser.index == array.count else { throw parser.error("unexpected text after the JSON value") }
        return value
    }

    /// One step of a path into a document (``value(at:in:)``).
    enum PathStep: Sendable, Equatable {
        /// An object's member (the first of repeated ones, as ``subscript(_:)`` takes).
        case key(String)
        /// An array's element, from 0.
        case index(Int)
    }

    /// The value at `path` in a complete JSON text, or nil when the text has none there: what
    /// ``parse(_:)`` and lookups along `path` give, checked as strictly, but building only that
    /// value. Every other member and element is read past without making a string or an array
    /// of it. This is how a provider's answer to a send is read: only its message id matters, and
    /// the full document cost several allocations an answer (a Twilio answer carries about thirty
    /// fields) at thousands of answers a second.
    /// - Throws: ``WebhookParseError`` where the text stops being JSON, also past the value found.
    static func value(at path: [PathStep], in bytes: some Collection<UInt8>) throws(WebhookParseError) -> WebhookJSON? {
        let array = Array(bytes)
        var parser = Parser(bytes: array)
        parser.skipWhitespace()
        let found = try parser.find(path[...], depth: 0)
        parser.skipWhitespace()
        guard parser.index == array.count else { throw parser.error("unexpected text after the JSON value") }
        return found
    }

    subscript(key: String) -> WebhookJSON? {
        guard case .object(let members) = self else { return nil }
        return members.first(where: { $0.key == key })?.value
    }

    var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    var array: [WebhookJSON]? {
        if case .array(let a) = self { return a }
        return nil
    }

    var isObject: Bool {
        if case .object = self { return true }
        return false
    }

    /// A string, or a number's text: Meta writes some ids and codes either way.
    var scalarText: String? {
        switch self {
        case .string(let s): s
        case .number(let n): n
        default: nil
        }
    }

    /// JSON text that `jsonb` accepts: NUL characters (which `jsonb` refuses, also as `\u0000`)
    /// become U+FFFD, and numbers whose exponent `numeric` cannot hold are written as strings.
    var jsonbText: String {
        var out = ""
        write(into: &out)
        return out
    }

    private func write(into out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n):
            if Self.numberFitsNumeric(n) { out += n } else { Self.writeString(n, into: &out) }
        case .string(let s): Self.writeString(s, into: &out)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.write(into: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (i, member) in members.enumerated() {
                if i > 0 { out += "," }
                Self.writeString(member.key, into: &out)
                out += ":"
                member.value.write(into: &out)
            }
            out += "}"
        }
    }

    /// `numeric` holds exponents up to about ±131,000 digits; anything near that is nonsense.
    private static func numberFitsNumeric(_ text: String) -> Bool {
        guard let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) else { return text.utf8.count <= 1000 }
        guard let exponent = Int(text[text.index(after: e)...].drop(while: { $0 == "+" })) else { return false }
        return abs(exponent) <= 1000 && text.utf8.count <= 1000
    }

    static func writeString(_ s: String, into out: inout String) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{0}": out.unicodeScalars.append("\u{FFFD}")
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    private struct Parser {
        let bytes: [UInt8]
        var index = 0

        func error(_ what: String) -> WebhookParseError {
            WebhookParseError("not valid JSON at byte \(index): \(what)")
        }

        mutating func skipWhitespace() {
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x0A || bytes[index] == 0x0D || bytes[index] == 0x09 {
                index += 1
            }
        }

        mutating func value(depth: Int) throws(WebhookParseError) -> WebhookJSON {
            guard depth < WebhookJSON.maxDepth else { throw error("nested deeper than \(WebhookJSON.maxDepth) levels") }
            guard index < bytes.count else { throw error("unexpected end") }
            switch bytes[index] {
            case UInt8(ascii: "{"):
                var members: [Member] = []
                try elements(closing: UInt8(ascii: "}")) { (p: inout Parser) throws(WebhookParseError) in
                    try p.expectMemberName()
                    let key = try p.string()
                    try p.readNameSeparator()
                    members.append(Member(key: key, value: try p.value(depth: depth + 1)))
                }
                return .object(members)
            case UInt8(ascii: "["):
                var items: [WebhookJSON] = []
                try elements(closing: UInt8(ascii: "]")) { (p: inout Parser) throws(WebhookParseError) in
                    items.append(try p.value(depth: depth + 1))
                }
                return .array(items)
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "t"):
                try literal("true")
                return .bool(true)
            case UInt8(ascii: "f"):
                try literal("false")
                return .bool(false)
            case UInt8(ascii: "n"):
                try literal("null")
                return .null
            default:
                return .number(try number())
            }
        }

        /// The value at `path` within the value here (which is read to its end either way), or
        /// nil when it has none there; see ``WebhookJSON/value(at:in:)``.
        mutating func find(_ path: ArraySlice<PathStep>, depth: Int) throws(WebhookParseError) -> WebhookJSON? {
            guard let step = path.first else { return try value(depth: depth) }
            guard depth < WebhookJSON.maxDepth else { throw error("nested deeper than \(WebhookJSON.maxDepth) levels") }
            guard index < bytes.count else { throw error("unexpected end") }
            var found: WebhookJSON?
            switch (bytes[index], step) {
            case (UInt8(ascii: "{"), .key(let wanted)):
                var matched = false
                try elements(closing: UInt8(ascii: "}")) { (p: inout Parser) throws(WebhookParseError) in
                    try p.expectMemberName()
                    let isWanted = try p.stringEquals(wanted)
                    try p.readNameSeparator()
                    if isWanted && !matched {
                        matched = true
                        found = try p.find(path.dropFirst(), depth: depth + 1)
                    } else {
                        try p.skipValue(depth: depth + 1)
                    }
                }
            case (UInt8(ascii: "["), .index(let wanted)):
                var position = 0
                try elements(closing: UInt8(ascii: "]")) { (p: inout Parser) throws(WebhookParseError) in
                    if position == wanted {
                        found = try p.find(path.dropFirst(), depth: depth + 1)
                    } else {
                        try p.skipValue(depth: depth + 1)
                    }
                    position += 1
                }
            default:
                try skipValue(depth: depth)
            }
            return found
        }

        /// Reads past one value, checking it as ``value(depth:)`` does, without building it.
        mutating func skipValue(depth: Int) throws(WebhookParseError) {
            guard depth < WebhookJSON.maxDepth else { throw error("nested deeper than \(WebhookJSON.maxDepth) levels") }
            guard index < bytes.count else { throw error("unexpected end") }
            switch bytes[index] {
            case UInt8(ascii: "{"):
                try elements(closing: UInt8(ascii: "}")) { (p: inout Parser) throws(WebhookParseError) in
                    try p.expectMemberName()
                    try p.skipString()
                    try p.readNameSeparator()
                    try p.skipValue(depth: depth + 1)
                }
            case UInt8(ascii: "["):
                try elements(closing: UInt8(ascii: "]")) { (p: inout Parser) throws(WebhookParseError) in
                    try p.skipValue(depth: depth + 1)
                }
            case UInt8(ascii: "\""): try skipString()
            case UInt8(ascii: "t"): try literal("true")
            case UInt8(ascii: "f"): try literal("false")
            case UInt8(ascii: "n"): try literal("null")
            default: _ = try numberEnd()
            }
        }

        /// Whether the string starting at the opening quote is `wanted`, read past. Compared in
        /// place unless it holds an escape, which only the decoded text can be compared by.
        mutating func stringEquals(_ wanted: String) throws(WebhookParseError) -> Bool {
            let start = index + 1
            var end = start
            while end < bytes.count, bytes[end] != UInt8(ascii: "\""), bytes[end] != UInt8(ascii: "\\"), bytes[end] >= 0x20 {
                end += 1
            }
            if end < bytes.count, bytes[end] == UInt8(ascii: "\"") {
                index = end + 1
                return bytes[start..<end].elementsEqual(wanted.utf8)
            }
            return try string() == wanted
        }

        /// Reads past the string starting at the opening quote, checking it as ``string()`` does.
        mutating func skipString() throws(WebhookParseError) {
            index += 1 // opening quote
            while true {
                guard index < bytes.count else { throw error("unterminated string") }
                let b = bytes[index]
                index += 1
                if b == UInt8(ascii: "\"") { return }
                if b < 0x20 { index -= 1; throw error("control character in a string") }
                guard b == UInt8(ascii: "\\") else { continue }
                guard index < bytes.count else { throw error("unterminated string") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    continue
                case UInt8(ascii: "u"):
                    _ = try hex4()
                default:
                    throw error("unknown escape")
                }
            }
        }

        /// At a member's name: its opening quote must be here.
        func expectMemberName() throws(WebhookParseError) {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("expected a member name") }
        }

        /// After a member's name: the `:` and the whitespace around it, up to the value.
        mutating func readNameSeparator() throws(WebhookParseError) {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':'") }
            index += 1
            skipWhitespace()
        }

        /// The elements of an object or array, from its opening bracket to `closing`: `element`
        /// reads one (at a non-space byte), a comma goes on to the next.
        mutating func elements(closing: UInt8, _ element: (inout Parser) throws(WebhookParseError) -> Void) throws(WebhookParseError) {
            index += 1
            skipWhitespace()
            if index < bytes.count, bytes[index] == closing { index += 1; return }
            while true {
                skipWhitespace()
                try element(&self)
                skipWhitespace()
                guard index < bytes.count else { throw error("unexpected end") }
                if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
                if bytes[index] == closing { index += 1; return }
                throw error("expected ',' or '\(Character(Unicode.Scalar(closing)))'")
            }
        }

        mutating func literal(_ word: StaticString) throws(WebhookParseError) {
            let count = word.utf8CodeUnitCount
            guard index + count <= bytes.count else { throw error("unexpected end") }
            let matches = word.withUTF8Buffer { bytes[index..<(index + count)].elementsEqual($0) }
            guard matches else { throw error("unknown literal") }
            index += count
        }

        mutating func number() throws(WebhookParseError) -> String {
            let start = index
            return String(decoding: bytes[start..<(try numberEnd())], as: UTF8.self)
        }

        /// Reads past a number, checked against JSON's grammar; returns where it ends.
        mutating func numberEnd() throws(WebhookParseError) -> Int {
            func digit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
            if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count, digit(bytes[index]) else { throw error("expected a value") }
            if bytes[index] == UInt8(ascii: "0") {
                index += 1
            } else {
                while index < bytes.count, digit(bytes[index]) { index += 1 }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard index < bytes.count, digit(bytes[index]) else { throw error("expected a digit after '.'") }
                while index < bytes.count, digit(bytes[index]) { index += 1 }
            }
            if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
                guard index < bytes.count, digit(bytes[index]) else { throw error("expected an exponent") }
                while index < bytes.count, digit(bytes[index]) { index += 1 }
            }
            return index
        }

        /// A string starting at the opening quote. Invalid UTF-8 and lone surrogates become U+FFFD.
        mutating func string() throws(WebhookParseError) -> String {
            index += 1 // opening quote
            var out: [UInt8] = []
            var runStart = index
            while true {
                guard index < bytes.count else { throw error("unterminated string") }
                let b = bytes[index]
                if b == UInt8(ascii: "\"") {
                    out.append(contentsOf: bytes[runStart..<index])
                    index += 1
                    return String(decoding: out, as: UTF8.self)
                }
                if b < 0x20 { throw error("control character in a string") }
                if b != UInt8(ascii: "\\") { index += 1; continue }
                out.append(contentsOf: bytes[runStart..<index])
                index += 1
                guard index < bytes.count else { throw error("unterminated string") }
                let escape = bytes[index]
                index += 1
                switch escape {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try hex4()
                    if (0xD800...0xDBFF).contains(code), index + 1 < bytes.count,
                       bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") {
                        let save = index
                        index += 2
                        let low = try hex4()
                        if (0xDC00...0xDFFF).contains(low) {
                            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            index = save
                        }
                    }
                    let scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
                    out.append(contentsOf: String(scalar).utf8)
                default:
                    throw error("unknown escape")
                }
                runStart = index
            }
        }

        mutating func hex4() throws(WebhookParseError) -> UInt32 {
            guard index + 4 <= bytes.count else { throw error("short \\u escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let b = bytes[index]
                let v: UInt32
                switch b {
                case 0x30...0x39: v = UInt32(b - 0x30)
                case 0x41...0x46: v = UInt32(b - 0x41 + 10)
                case 0x61...0x66: v = UInt32(b - 0x61 + 10)
                default: throw error("bad \\u escape")
                }
                value = value << 4 | v
                index += 1
            }
            return value
        }
    }
}

/// A webhook body that is not what the provider documents (not JSON, missing fields, bad form
/// encoding). The server answers 400 and stores nothing.
public struct WebhookParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
