/// Whether a contact's address is usable, deciding the `invalid_address` skip reason.
///
/// - Important: These functions must accept exactly what the SQL check used at audience
///   expansion accepts, so that the re-check just before sending never disagrees with it. The
///   reference is these two PostgreSQL regular expressions:
///
///   ```
///   phone ~ '^\+[1-9][0-9]{7,14}$'
///   email ~ '^[^@\s]{1,64}@([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$'
///   ```
///
///   They are implemented by hand here (no regex engine), byte by byte.
public enum AddressCheck {
    /// Whether `s` is an E.164 phone number: `+`, then 8 to 15 ASCII digits, the first 1–9.
    ///
    /// Mirrors `^\+[1-9][0-9]{7,14}$`. Nothing else is allowed: no spaces, dashes or parentheses.
    ///
    /// - Parameter s: The stored phone number.
    /// - Returns: `true` when the number can be sent to.
    public static func isE164(_ s: String) -> Bool {
        let utf8 = s.utf8
        let count = utf8.count
        guard count >= 9, count <= 16 else { return false }
        var index = utf8.startIndex
        guard utf8[index] == UInt8(ascii: "+") else { return false }
        utf8.formIndex(after: &index)
        guard utf8[index] >= UInt8(ascii: "1"), utf8[index] <= UInt8(ascii: "9") else { return false }
        utf8.formIndex(after: &index)
        while index != utf8.endIndex {
            guard utf8[index] >= UInt8(ascii: "0"), utf8[index] <= UInt8(ascii: "9") else { return false }
            utf8.formIndex(after: &index)
        }
        return true
    }

    /// Whether `s` has the shape of an email address.
    ///
    /// Mirrors
    /// `^[^@\s]{1,64}@([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$`:
    /// - exactly one `@`;
    /// - a local part of 1 to 64 characters (Unicode scalars, as PostgreSQL counts them) with no
    ///   whitespace;
    /// - a domain of at least two dot-separated labels, each non-empty, made of ASCII letters,
    ///   digits and hyphens, not starting or ending with a hyphen. No trailing dot.
    ///
    /// There is no limit on the total length, because the regular expression has none (add one to
    /// both sides together, or neither).
    ///
    /// Whitespace (`\s`) is taken as glibc's `iswspace` in a UTF-8 locale, which PostgreSQL uses:
    /// ASCII space, tab, LF, VT, FF, CR, and U+1680, U+2000–U+2006, U+2008–U+200A, U+2028, U+2029,
    /// U+205F, U+3000 (the no-break spaces U+00A0, U+2007, U+202F are not whitespace there).
    ///
    /// - Parameter s: The stored email address.
    /// - Returns: `true` when the address can be sent to.
    public static func isEmail(_ s: String) -> Bool {
        let utf8 = s.utf8
        // Local part: scan scalars up to the first "@".
        var localLength = 0
        var scalars = s.unicodeScalars.makeIterator()
        var sawAt = false
        while let scalar = scalars.next() {
            if scalar == "@" { sawAt = true; break }
            if isRegexSpace(scalar) { return false }
            localLength += 1
            if localLength > 64 { return false }
        }
        guard sawAt, localLength >= 1 else { return false }

        // Domain: the bytes after the "@" (found again on the UTF-8 view; the local part holds none).
        guard let at = utf8.firstIndex(of: UInt8(ascii: "@")) else { return false }
        var labels = 0
        var labelLength = 0
        var previous: UInt8 = 0
        for b in utf8[utf8.index(after: at)...] {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"):
                labelLength += 1
            case UInt8(ascii: "-"):
                guard labelLength > 0 else { return false } // a label cannot start with "-"
                labelLength += 1
            case UInt8(ascii: "."):
                guard labelLength > 0, previous != UInt8(ascii: "-") else { return false }
                labels += 1
                labelLength = 0
            default:
                return false // a second "@", whitespace, non-ASCII, "_" …
            }
            previous = b
        }
        guard labelLength > 0, previous != UInt8(ascii: "-") else { return false }
        return labels + 1 >= 2
    }

    /// `\s` in a PostgreSQL regular expression under a glibc UTF-8 locale (`iswspace`).
    @inline(__always)
    static func isRegexSpace(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x09...0x0D, 0x20, 0x1680, 0x2000...0x2006, 0x2008...0x200A, 0x2028, 0x2029, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }
}
