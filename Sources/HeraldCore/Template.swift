/// Why a personalization template was refused, naming the offending tag.
///
/// ``description`` reads `"<reason> <tag>"`, e.g.
/// `unknown personalization tag {{ frist_name }}`; it is what the scheduler writes to
/// `broadcasts.error`. It holds template text only, never contact data.
public struct TemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The tag as written in the source, e.g. `{{ frist_name }}`.
    ///
    /// For an unclosed tag this is the text from its `{{` to the end of that line (or to the next
    /// `{{`), at most 64 characters.
    public var tag: String
    /// What is wrong with it; one of ``unknownTag``, ``unknownFilter``, ``malformedTag``,
    /// ``unclosedTag``.
    public var reason: String

    /// The reason for a tag name that is not a personalization field: `{{ frist_name }}`.
    public static let unknownTag = "unknown personalization tag"
    /// The reason for a filter other than `default`: `{{ name | upcase }}`.
    public static let unknownFilter = "unknown personalization filter in"
    /// The reason for a tag whose syntax is wrong: `{{ first_name | default: }}`, `{{ }}`,
    /// `{{ first name }}`.
    public static let malformedTag = "malformed personalization tag"
    /// The reason for a `{{` that has no matching `}}` before the next `{{` or the end of the text.
    public static let unclosedTag = "unclosed personalization tag"

    /// Creates an error.
    ///
    /// - Parameters:
    ///   - tag: The tag as written in the source.
    ///   - reason: What is wrong with it.
    public init(tag: String, reason: String) {
        self.tag = tag
        self.reason = reason
    }

    /// `"<reason> <tag>"`, e.g. `unknown personalization tag {{ frist_name }}`.
    public var description: String { "\(reason) \(tag)" }
}

/// A personalization template, parsed once and rendered for many contacts.
///
/// Grammar of a tag (spaces, tabs and newlines inside the braces are optional):
///
/// ```
/// {{ FIELD }}
/// {{ FIELD | default: "fallback" }}     (or 'fallback')
/// ```
///
/// where `FIELD` is one of `first_name`, `last_name`, `name` (first and last name, each trimmed,
/// joined by one space), `phone`, `email`, `contact_id`, `unsubscribe_url` (the message's one-click
/// unsubscribe link, ``Contact/unsubscribeURL``), or `attributes.KEY` with `KEY` matching
/// `[A-Za-z0-9_-]+` (a key of the contact's `attributes`). Names are case-sensitive.
///
/// - A missing value (`nil`, or an absent attribute) renders as the empty string, unless a
///   fallback is given. The fallback is used when the value is missing, empty or whitespace-only.
/// - A fallback is rendered as written: it has no escape sequences, so it cannot contain its own
///   quote character (write `"it's"` or `'say "hi"'`).
/// - Text outside tags is copied verbatim; a lone `}}` is ordinary text. There is no way to write a
///   literal `{{`: every `{{` starts a tag, and a `{{` without a closing `}}` (before the next `{{`
///   or the end of the text) is an "unclosed tag" error. That makes a typo such as
///   `{{ first_name }` fail validation instead of reaching customers.
///
/// Rendering is a single pass over pre-split segments into a `String` whose capacity is reserved
/// up front, so a template can be rendered millions of times per second.
///
/// ```swift
/// let t = try CompiledTemplate.compile("Hi {{ first_name | default: \"there\" }}!")
/// t.render(Contact(id: 1, firstName: "Ada"))   // "Hi Ada!"
/// t.render(Contact(id: 2))                      // "Hi there!"
/// ```
public struct CompiledTemplate: Sendable {
    /// A value a tag stands for.
    enum Field: Sendable, Equatable {
        case firstName, lastName, name, phone, email, contactID, unsubscribeURL
        case attribute(String)
    }

    /// One piece of the template: text copied as is, or a field looked up per contact.
    enum Segment: Sendable {
        case literal(String)
        /// `escapedFallback` is `fallback` with HTML escaping applied, computed once.
        case field(Field, fallback: String?, escapedFallback: String?)
    }

    let segments: [Segment]
    /// UTF-8 length of all literal text, used to reserve capacity.
    let literalUTF8Count: Int

    /// Whether the template has no tags: every contact gets the same text.
    public var isConstant: Bool {
        for segment in segments {
            if case .field = segment { return false }
        }
        return true
    }

    /// The custom-field keys the template reads (`{{ attributes.KEY }}`), each once, in order of
    /// first use. Lets a caller fetch only these fields of each contact.
    public var attributeKeys: [String] {
        var keys: [String] = []
        for segment in segments {
            if case .field(.attribute(let key), _, _) = segment, !keys.contains(key) { keys.append(key) }
        }
        return keys
    }

    /// Whether the template renders `{{ unsubscribe_url }}` (which needs the link configured).
    public var usesUnsubscribeURL: Bool {
        segments.contains { if case .field(.unsubscribeURL, _, _) = $0 { true } else { false } }
    }

    /// Parses a template.
    ///
    /// - Parameter source: The template text (a broadcast's `body`, `subject`, `html_body`, a
    ///   `template_params` entry or an `unsubscribe_url`).
    /// - Returns: The template, ready to ``render(_:encoding:)``.
    /// - Throws: ``TemplateError`` for the first tag, in reading order, that is unknown, has an
    ///   unknown filter, is malformed, or is unclosed.
    public static func compile(_ source: String) throws(TemplateError) -> CompiledTemplate {
        var parser = TemplateParser(Array(source.utf8))
        return try parser.parse()
    }

    /// Renders the template for one contact.
    ///
    /// - Parameters:
    ///   - contact: Whose values fill the tags.
    ///   - escapeHTML: When `true` (email HTML bodies), values and fallbacks have `&`, `<`, `>`,
    ///     `"` and `'` replaced by entities; the template's own text is never escaped.
    /// - Returns: The personalized text.
    public func render(_ contact: Contact, escapeHTML: Bool = false) -> String {
        render(contact, encoding: escapeHTML ? .html : .plain)
    }

    /// Renders the template for one contact, writing values as `encoding` says.
    ///
    /// ```swift
    /// let t = try CompiledTemplate.compile("https://x.example/u?e={{ email }}")
    /// t.render(Contact(id: 1, email: "a+b@c.example"), encoding: .url)
    /// // "https://x.example/u?e=a%2Bb%40c.example"
    /// ```
    public func render(_ contact: Contact, encoding: Encoding) -> String {
        if segments.count == 1, case .literal(let text) = segments[0] { return text }
        var out = String()
        out.reserveCapacity(literalUTF8Count &+ 24 &* segments.count)
        for segment in segments {
            switch segment {
            case .literal(let text):
                out.append(text)
            case .field(let field, let fallback, let escapedFallback):
                let value = Self.value(of: field, for: contact)
                if let fallback, value.map(isBlank) ?? true {
                    switch encoding {
                    case .plain: out.append(fallback)
                    case .html: out.append(escapedFallback ?? fallback)
                    case .url: appendPercentEncoding(fallback, to: &out)
                    }
                } else if let value {
                    switch encoding {
                    case .plain: out.append(value)
                    case .html: appendEscapingHTML(value, to: &out)
                    // The unsubscribe link is a whole URL Herald built (its token is base64url):
                    // written as it is, it stays a link; encoded, it would not be one.
                    case .url where field == .unsubscribeURL: out.append(value)
                    case .url: appendPercentEncoding(value, to: &out)
                    }
                }
            }
        }
        return out
    }

    @inline(__always)
    static func value(of field: Field, for contact: Contact) -> String? {
        switch field {
        case .firstName: return contact.firstName
        case .lastName: return contact.lastName
        case .phone: return contact.phone
        case .email: return contact.email
        case .contactID: return String(contact.id)
        case .unsubscribeURL: return contact.unsubscribeURL
        case .attribute(let key): return contact.attributes[key]
        case .name:
            let first = contact.firstName.map(trimmed) ?? ""
            let last = contact.lastName.map(trimmed) ?? ""
            if last.isEmpty { return first.isEmpty ? nil : String(first) }
            if first.isEmpty { return String(last) }
            var joined = String()
            joined.reserveCapacity(first.utf8.count + last.utf8.count + 1)
            joined.append(contentsOf: first)
            joined.append(" ")
            joined.append(contentsOf: last)
            return joined
        }
    }
}

// MARK: - Text helpers

@inline(__always)
fileprivate func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
    if scalar.value < 0x80 {
        return scalar.value == 0x20 || (scalar.value >= 0x09 && scalar.value <= 0x0D)
    }
    return scalar.properties.isWhitespace
}

/// Whether `text` is empty or only whitespace.
@inline(__always)
fileprivate func isBlank(_ text: String) -> Bool {
    for scalar in text.unicodeScalars where !isWhitespace(scalar) { return false }
    return true
}

/// `text` without leading and trailing whitespace.
fileprivate func trimmed(_ text: String) -> Substring {
    let scalars = text.unicodeScalars
    guard let first = scalars.firstIndex(where: { !isWhitespace($0) }) else { return "" }
    let last = scalars.lastIndex(where: { !isWhitespace($0) })!
    return Substring(scalars[first...last])
}

// MARK: - Parser

/// Splits a template's UTF-8 bytes into segments; every boundary is an ASCII byte, so every piece
/// is valid UTF-8.
fileprivate struct TemplateParser {
    let bytes: [UInt8]
    var segments: [CompiledTemplate.Segment] = []
    var literalUTF8Count = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    private static let openBrace = UInt8(ascii: "{")
    private static let closeBrace = UInt8(ascii: "}")

    mutating func parse() throws(TemplateError) -> CompiledTemplate {
        var literalStart = 0
        var i = 0
        while i < bytes.count {
            if isOpen(at: i) {
                appendLiteral(literalStart..<i)
                i = try parseTag(at: i)
                literalStart = i
            } else {
                i += 1
            }
        }
        appendLiteral(literalStart..<bytes.count)
        return CompiledTemplate(segments: segments, literalUTF8Count: literalUTF8Count)
    }

    private func isOpen(at i: Int) -> Bool {
        i + 1 < bytes.count && bytes[i] == Self.openBrace && bytes[i + 1] == Self.openBrace
    }

    private func isClose(at i: Int) -> Bool {
        i + 1 < bytes.count && bytes[i] == Self.closeBrace && bytes[i + 1] == Self.closeBrace
    }

    private mutating func appendLiteral(_ range: Range<Int>) {
        guard !range.isEmpty else { return }
        literalUTF8Count += range.count
        segments.append(.literal(text(range)))
    }

    private func text(_ range: Range<Int>) -> String {
        String(decoding: bytes[range], as: UTF8.self)
    }

    private func skipSpace(_ i: inout Int) {
        while i < bytes.count {
            switch bytes[i] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): i += 1
            default: return
            }
        }
    }

    private static func isWordByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"):
            return true
        default:
            return false
        }
    }

    private static func isNameByte(_ b: UInt8) -> Bool {
        isWordByte(b) || b == UInt8(ascii: ".") || b == UInt8(ascii: "-")
    }

    private func scanWhile(_ i: inout Int, _ predicate: (UInt8) -> Bool) -> Range<Int> {
        let start = i
        while i < bytes.count, predicate(bytes[i]) { i += 1 }
        return start..<i
    }

    /// Parses the tag whose `{{` is at `start`; returns the index just past its `}}`.
    private mutating func parseTag(at start: Int) throws(TemplateError) -> Int {
        var i = start + 2
        skipSpace(&i)
        let name = scanWhile(&i, Self.isNameByte)
        skipSpace(&i)
        var filter: Range<Int>? = nil
        var argument: Range<Int>? = nil
        if i < bytes.count, bytes[i] == UInt8(ascii: "|") {
            i += 1
            skipSpace(&i)
            filter = scanWhile(&i, Self.isWordByte)
            skipSpace(&i)
            if i < bytes.count, bytes[i] == UInt8(ascii: ":") {
                i += 1
                skipSpace(&i)
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") || bytes[i] == UInt8(ascii: "'") else {
                    throw syntaxError(start: start, at: i)
                }
                let quote = bytes[i]
                i += 1
                let argStart = i
                while i < bytes.count, bytes[i] != quote { i += 1 }
                guard i < bytes.count else { throw syntaxError(start: start, at: argStart) }
                argument = argStart..<i
                i += 1
                skipSpace(&i)
            }
        }
        guard isClose(at: i) else { throw syntaxError(start: start, at: i) }
        let end = i + 2
        let tag = text(start..<end)

        // Syntax is fine; now the meaning.
        guard !name.isEmpty else { throw TemplateError(tag: tag, reason: TemplateError.malformedTag) }
        guard let field = Self.field(named: bytes[name]) else {
            throw TemplateError(tag: tag, reason: TemplateError.unknownTag)
        }
        var fallback: String? = nil
        if let filter {
            guard !filter.isEmpty else { throw TemplateError(tag: tag, reason: TemplateError.malformedTag) }
            guard bytes[filter].elementsEqual("default".utf8) else {
                throw TemplateError(tag: tag, reason: TemplateError.unknownFilter)
            }
            guard let argument else { throw TemplateError(tag: tag, reason: TemplateError.malformedTag) }
            fallback = text(argument)
        }
        segments.append(.field(field, fallback: fallback, escapedFallback: fallback.map(escapedHTML)))
        return end
    }

    /// The error for a tag starting at `start` whose syntax breaks at `failure`: "malformed" when
    /// a `}}` follows before any other `{{`, "unclosed" otherwise.
    private func syntaxError(start: Int, at failure: Int) -> TemplateError {
        var i = max(failure, start + 2)
        while i < bytes.count, !isOpen(at: i) {
            if isClose(at: i) {
                return TemplateError(tag: text(start..<(i + 2)), reason: TemplateError.malformedTag)
            }
            i += 1
        }
        // Unclosed: show the rest of the line, at most 64 characters, without trailing spaces.
        var end = start + 2
        while end < i, bytes[end] != UInt8(ascii: "\n"), bytes[end] != UInt8(ascii: "\r") { end += 1 }
        var shown = String(text(start..<end).prefix(64))
        while let last = shown.unicodeScalars.last, isWhitespace(last) { shown.unicodeScalars.removeLast() }
        return TemplateError(tag: shown, reason: TemplateError.unclosedTag)
    }

    private static func field(named name: ArraySlice<UInt8>) -> CompiledTemplate.Field? {
        func equals(_ literal: StaticString) -> Bool {
            literal.withUTF8Buffer { name.elementsEqual($0) }
        }
        if equals("first_name") { return .firstName }
        if equals("last_name") { return .lastName }
        if equals("name") { return .name }
        if equals("phone") { return .phone }
        if equals("email") { return .email }
        if equals("contact_id") { return .contactID }
        if equals("unsubscribe_url") { return .unsubscribeURL }
        let prefix = "attributes.".utf8
        guard name.starts(with: prefix) else { return nil }
        let key = name.dropFirst(prefix.count)
        guard !key.isEmpty, key.allSatisfy({ isWordByte($0) || $0 == UInt8(ascii: "-") }) else { return nil }
        return .attribute(String(decoding: key, as: UTF8.self))
    }
}
