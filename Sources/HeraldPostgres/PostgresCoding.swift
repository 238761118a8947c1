import Foundation

// MARK: Encoding

/// A Swift value that can be sent as a query parameter in PostgreSQL's text format.
public protocol PostgresEncodable: Sendable {
    /// The value in PostgreSQL's text format, or nil for NULL.
    var postgresText: String? { get }
}

extension String: PostgresEncodable { @inlinable public var postgresText: String? { self } }
extension Substring: PostgresEncodable { public var postgresText: String? { String(self) } }
extension Int: PostgresEncodable { @inlinable public var postgresText: String? { String(self) } }
extension Int64: PostgresEncodable { @inlinable public var postgresText: String? { String(self) } }
extension Int32: PostgresEncodable { @inlinable public var postgresText: String? { String(self) } }
extension Int16: PostgresEncodable { public var postgresText: String? { String(self) } }
extension Bool: PostgresEncodable { public var postgresText: String? { self ? "true" : "false" } }
extension Double: PostgresEncodable {
    public var postgresText: String? {
        if isNaN { return "NaN" }
        if isInfinite { return self > 0 ? "Infinity" : "-Infinity" }
        return "\(self)"
    }
}
extension Decimal: PostgresEncodable { public var postgresText: String? { "\(self)" } }
extension Date: PostgresEncodable {
    /// ISO 8601 in UTC with microseconds, which `timestamptz` parses exactly.
    public var postgresText: String? { PostgresTimestamp.format(self) }
}
extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    @inlinable public var postgresText: String? { self.flatMap { $0.postgresText } }
}
extension Array: PostgresEncodable where Element: PostgresEncodable {
    /// A one-dimensional array literal: every element double-quoted with `\` and `"` escaped,
    /// NULL unquoted, so the strings `NULL`, `""`, braces, commas and emoji all round-trip.
    /// Inlinable: specialized for the element type where it is used (every batch's outcomes).
    @inlinable
    public var postgresText: String? {
        var out = "{"
        out.reserveCapacity(count * 8 + 2)
        var first = true
        for element in self {
            if !first { out += "," }
            first = false
            guard let text = element.postgresText else { out += "NULL"; continue }
            out += "\""
            if text.utf8.contains(where: { $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "\"") }) {
                for ch in text.unicodeScalars {
                    if ch == "\\" || ch == "\"" { out += "\\" }
                    out.unicodeScalars.append(ch)
                }
            } else {
                out += text // the common case, appended whole (this encodes every batch's outcomes)
            }
            out += "\""
        }
        out += "}"
        return out
    }
}

/// A `json` or `jsonb` value, carried as its text.
public struct PostgresJSON: Sendable, Hashable, PostgresEncodable, PostgresDecodable, CustomStringConvertible {
    public var text: String
    public init(text: String) { self.text = text }
    /// Encodes `value` with `JSONEncoder`.
    public init(encoding value: some Encodable) throws {
        let data = try JSONEncoder().encode(value)
        self.text = String(decoding: data, as: UTF8.self)
    }
    /// Decodes the JSON text into `type` with `JSONDecoder`.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        try JSONDecoder().decode(type, from: Data(text.utf8))
    }
    public var postgresText: String? { text }
    public static func decode(postgresText: String?) throws(PostgresDecodingError) -> PostgresJSON {
        guard let postgresText else { throw .unexpectedNull }
        return PostgresJSON(text: postgresText)
    }
    public var description: String { text }
}

// MARK: Decoding

/// Why one value could not be decoded; ``PostgresRow`` adds the column to make a ``PostgresError``.
public enum PostgresDecodingError: Error, Sendable, Equatable {
    case unexpectedNull
    case invalid(text: String, type: String)
}

/// A Swift value that can be read from PostgreSQL's text format.
public protocol PostgresDecodable: Sendable {
    /// Decodes a value; `postgresText` is nil for SQL NULL.
    static func decode(postgresText: String?) throws(PostgresDecodingError) -> Self
}

/// Non-optional scalar types: NULL is an error, text parsed by ``init(postgresScalar:)``.
public protocol PostgresScalarDecodable: PostgresDecodable {
    init?(postgresScalar text: String)
}

extension PostgresScalarDecodable {
    public static func decode(postgresText: String?) throws(PostgresDecodingError) -> Self {
        guard let postgresText else { throw .unexpectedNull }
        guard let value = Self(postgresScalar: postgresText) else {
            throw .invalid(text: String(postgresText.prefix(40)), type: "\(Self.self)")
        }
        return value
    }
}

extension String: PostgresScalarDecodable { public init?(postgresScalar text: String) { self = text } }
extension Int: PostgresScalarDecodable { public init?(postgresScalar text: String) { self.init(text) } }
extension Int64: PostgresScalarDecodable { public init?(postgresScalar text: String) { self.init(text) } }
extension Int32: PostgresScalarDecodable { public init?(postgresScalar text: String) { self.init(text) } }
extension Int16: PostgresScalarDecodable { public init?(postgresScalar text: String) { self.init(text) } }
extension Double: PostgresScalarDecodable {
    public init?(postgresScalar text: String) {
        switch text {
        case "NaN": self = .nan
        case "Infinity": self = .infinity
        case "-Infinity": self = -.infinity
        default: self.init(text)
        }
    }
}
extension Bool: PostgresScalarDecodable {
    public init?(postgresScalar text: String) {
        switch text {
        case "t", "true": self = true
        case "f", "false": self = false
        default: return nil
        }
    }
}
extension Decimal: PostgresScalarDecodable {
    /// `numeric` in text format; `NaN` is not representable and fails.
    public init?(postgresScalar text: String) {
        guard text != "NaN", let d = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")) else { return nil }
        self = d
    }
}
extension Date: PostgresScalarDecodable {
    /// `timestamptz` as PostgreSQL prints it in the session's ISO DateStyle.
    public init?(postgresScalar text: String) {
        guard let d = PostgresTimestamp.parse(text) else { return nil }
        self = d
    }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public static func decode(postgresText: String?) throws(PostgresDecodingError) -> Wrapped? {
        guard let postgresText else { return nil }
        return try Wrapped.decode(postgresText: postgresText)
    }
}

extension Array: PostgresDecodable where Element: PostgresDecodable {
    /// A one-dimensional array in text format (`{1,2,NULL}`, `{"a b","c\"d"}`).
    public static func decode(postgresText: String?) throws(PostgresDecodingError) -> [Element] {
        guard let postgresText else { throw .unexpectedNull }
        guard let items = PostgresArrayText.parse(postgresText) else {
            throw .invalid(text: String(postgresText.prefix(40)), type: "array")
        }
        var out: [Element] = []
        out.reserveCapacity(items.count)
        for item in items { out.append(try Element.decode(postgresText: item)) }
        return out
    }
}

/// Parser for one-dimensional arrays in PostgreSQL's text output.
enum PostgresArrayText {
    static func parse(_ text: String) -> [String?]? {
        var scalars = Array(text.unicodeScalars)
        // Arrays with explicit bounds print as `[0:2]={...}`.
        if scalars.first == "[", let eq = scalars.firstIndex(of: "=") { scalars.removeSubrange(0...eq) }
        guard scalars.first == "{", scalars.last == "}" else { return nil }
        var items: [String?] = []
        var i = 1
        let end = scalars.count - 1
        if i == end { return [] }
        while i < end {
            var item = String.UnicodeScalarView()
            if scalars[i] == "\"" {
                i += 1
                while i < end, scalars[i] != "\"" {
                    if scalars[i] == "\\", i + 1 < end { i += 1 }
                    item.append(scalars[i])
                    i += 1
                }
                guard i < end else { return nil }
                i += 1 // closing quote
                items.append(String(item))
            } else {
                if scalars[i] == "{" { return nil } // multi-dimensional arrays are not supported
                while i < end, scalars[i] != "," {
                    item.append(scalars[i])
                    i += 1
                }
                let s = String(item)
                items.append(s == "NULL" ? nil : s)
            }
            if i < end {
                guard scalars[i] == "," else { return nil }
                i += 1
            }
        }
        return items
    }
}

/// `timestamptz` text conversion. Herald's sessions run with `TimeZone = 'UTC'` and
/// `DateStyle = 'ISO'`, so values print as `2026-11-26 00:53:52.123456+00`.
enum PostgresTimestamp {
    /// 0001-01-01T00:00:00Z and 10000-01-01T00:00:00Z in seconds since 1970: the four-digit years
    /// this formatter writes.
    static let earliestSecond: Double = -62_135_596_800
    static let endSecond: Double = 253_402_300_800

    /// ISO 8601 text for `date`. A date outside the years 1...9999 (or NaN) is written as
    /// PostgreSQL's `infinity` or `-infinity`, which keep their order against every finite time,
    /// instead of trapping on the conversion to microseconds.
    static func format(_ date: Date) -> String {
        let raw = date.timeIntervalSince1970
        if raw.isNaN || raw >= endSecond { return "infinity" }
        if raw < earliestSecond { return "-infinity" }
        var t = Int64((raw * 1_000_000).rounded(.down))
        let micros = ((t % 1_000_000) + 1_000_000) % 1_000_000
        t = (t - micros) / 1_000_000
        var days = t / 86_400
        var secs = t % 86_400
        if secs < 0 { secs += 86_400; days -= 1 }
        let (y, m, d) = civil(fromDays: days)
        func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
        var us = String(micros)
        us = String(repeating: "0", count: 6 - us.count) + us
        return "\(y)-\(two(m))-\(two(d))T\(two(secs / 3600)):\(two(secs / 60 % 60)):\(two(secs % 60)).\(us)Z"
    }

    static func parse(_ text: String) -> Date? {
        switch text {
        case "infinity": return .distantFuture
        case "-infinity": return .distantPast
        default: break
        }
        let u = Array(text.utf8)
        func num(_ from: Int, _ len: Int) -> Int64? {
            guard from + len <= u.count else { return nil }
            var v: Int64 = 0
            for c in u[from..<from + len] {
                guard c >= 48, c <= 57 else { return nil }
                v = v * 10 + Int64(c - 48)
            }
            return v
        }
        guard u.count >= 19, let y = num(0, 4), let mo = num(5, 2), let d = num(8, 2),
              let h = num(11, 2), let mi = num(14, 2), let s = num(17, 2) else { return nil }
        var i = 19
        var micros: Int64 = 0
        if i < u.count, u[i] == UInt8(ascii: ".") {
            i += 1
            var digits = 0
            while i < u.count, u[i] >= 48, u[i] <= 57 {
                if digits < 6 { micros = micros * 10 + Int64(u[i] - 48) }
                digits += 1
                i += 1
            }
            for _ in digits..<max(digits, 6) { micros *= 10 }
        }
        var offset: Int64 = 0
        if i < u.count {
            let sign: Int64 = u[i] == UInt8(ascii: "-") ? -1 : 1
            guard u[i] == UInt8(ascii: "+") || u[i] == UInt8(ascii: "-") || u[i] == UInt8(ascii: "Z") else { return nil }
            if u[i] != UInt8(ascii: "Z") {
                guard let oh = num(i + 1, 2) else { return nil }
                var om: Int64 = 0, os: Int64 = 0
                if let m = num(i + 4, 2) { om = m }
                if let sec = num(i + 7, 2) { os = sec }
                offset = sign * (oh * 3600 + om * 60 + os)
            }
        }
        let days = daysFromCivil(y, mo, d)
        let seconds = days * 86_400 + h * 3600 + mi * 60 + s - offset
        return Date(timeIntervalSince1970: Double(seconds) + Double(micros) / 1_000_000)
    }

    // Howard Hinnant's civil-date algorithms (proleptic Gregorian calendar).
    static func daysFromCivil(_ y0: Int64, _ m: Int64, _ d: Int64) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civil(fromDays z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp + (mp < 10 ? 3 : -9)
        return (m <= 2 ? y + 1 : y, m, d)
    }
}
