/// How many SMS parts ("segments") a text takes, as carriers bill them.
///
/// - A text made only of characters of the GSM 03.38 7-bit alphabet (basic table, plus the
///   extension table's form feed and `^ { } \ [ ~ ] |` and `€`, which take two septets each
///   because they are sent as an escape pair) is GSM-7: up to 160 septets fit in one part;
///   a longer text is split into parts of up to 153 septets (7 go to the concatenation header).
/// - Any other character makes the whole text UCS-2 (UTF-16): up to 70 code units in one part,
///   otherwise parts of up to 67. Characters outside the Basic Multilingual Plane, such as most
///   emoji, take 2 code units.
///
/// Parts are filled greedily and an escape pair or a surrogate pair is never split across two
/// parts, as handsets and Twilio do; so a long text can need one part more than
/// `ceil(septets / 153)` (or `ceil(units / 67)`) when such a pair straddles a boundary.
///
/// Characters are counted per Unicode scalar: a letter with a combining accent (`e` + U+0301) is
/// two scalars and, the accent not being GSM-7, makes the text UCS-2, whereas the precomposed
/// `é` is GSM-7. Herald sends text as stored, without normalizing it.
public enum SMSSegments {
    /// The number of parts `text` is sent as.
    ///
    /// - Parameter text: The rendered message text.
    /// - Returns: The number of parts; 0 for the empty text (nothing is sent).
    public static func count(_ text: String) -> Int {
        if text.isEmpty { return 0 }
        var septets = 0
        var gsm = true
        for scalar in text.unicodeScalars {
            let cost = septetCost(scalar)
            if cost == 0 { gsm = false; break }
            septets += cost
        }
        if gsm {
            if septets <= 160 { return 1 }
            return packedParts(text.unicodeScalars.lazy.map(septetCost), capacity: 153)
        }
        let units = text.utf16.count
        if units <= 70 { return 1 }
        return packedParts(text.unicodeScalars.lazy.map { $0.utf16.count }, capacity: 67)
    }

    /// Whether every character of `text` is in the GSM-7 alphabet (basic or extension table).
    ///
    /// - Parameter text: The text to check; the empty text is GSM-7.
    /// - Returns: `true` when the text can be sent with the 7-bit encoding.
    public static func isGSM7(_ text: String) -> Bool {
        for scalar in text.unicodeScalars where septetCost(scalar) == 0 { return false }
        return true
    }

    /// Parts needed when items of the given sizes are packed in order, none split.
    private static func packedParts(_ sizes: some Sequence<Int>, capacity: Int) -> Int {
        var parts = 1
        var used = 0
        for size in sizes {
            if used + size > capacity {
                parts += 1
                used = 0
            }
            used += size
        }
        return parts
    }

    /// Septets `scalar` takes in GSM-7: 1 (basic table), 2 (extension table), 0 (not GSM-7).
    @inline(__always)
    static func septetCost(_ scalar: Unicode.Scalar) -> Int {
        let v = scalar.value
        if v < 0x80 {
            switch v {
            case 0x0A, 0x0D: return 1 // LF, CR
            case 0x0C: return 2 // form feed (extension table)
            case 0x60: return 0 // ` is not in GSM-7
            case 0x5B, 0x5C, 0x5D, 0x5E, 0x7B, 0x7C, 0x7D, 0x7E: return 2 // [ \ ] ^ { | } ~
            case 0x20...0x7E: return 1
            default: return 0 // other control characters
            }
        }
        switch v {
        case 0x20AC: return 2 // €
        case 0x00A3, 0x00A5, 0x00E8, 0x00E9, 0x00F9, 0x00EC, 0x00F2, 0x00C7, // £ ¥ è é ù ì ò Ç
             0x00D8, 0x00F8, 0x00C5, 0x00E5, // Ø ø Å å
             0x0394, 0x03A6, 0x0393, 0x039B, 0x03A9, 0x03A0, 0x03A8, 0x03A3, 0x0398, 0x039E, // Δ Φ Γ Λ Ω Π Ψ Σ Θ Ξ
             0x00C6, 0x00E6, 0x00DF, 0x00C9, // Æ æ ß É
             0x00A4, 0x00A1, 0x00C4, 0x00D6, 0x00D1, 0x00DC, 0x00A7, // ¤ ¡ Ä Ö Ñ Ü §
             0x00BF, 0x00E4, 0x00F6, 0x00F1, 0x00FC, 0x00E0: // ¿ ä ö ñ ü à
            return 1
        default:
            return 0
        }
    }
}
