/// How ``CompiledTemplate`` writes tag values into HTML and URLs.

extension CompiledTemplate {
    /// How tag values (and fallbacks) are written into the rendered text; the template's own text
    /// is never changed.
    public enum Encoding: Sendable, Equatable {
        /// As they are (SMS, WhatsApp text, subjects).
        case plain
        /// `&`, `<`, `>`, `"`, `'` as entities (email HTML bodies).
        case html
        /// Percent-encoded, every byte but RFC 3986's unreserved `A-Z a-z 0-9 - . _ ~` (URLs: the
        /// `unsubscribe_url` setting, media URLs), so a `+`, `&`, `/` or `#` in an address or a
        /// custom field stays inside its query value or path segment and cannot reshape the URL.
        case url
    }
}

/// Appends `text` with `&`, `<`, `>`, `"`, `'` replaced by `&amp;`, `&lt;`, `&gt;`, `&quot;`,
/// `&#39;`; text without any of them is appended in one go.
func appendEscapingHTML(_ text: String, to out: inout String) {
    let utf8 = text.utf8
    var chunkStart = utf8.startIndex
    var index = chunkStart
    while index != utf8.endIndex {
        let entity: String
        switch utf8[index] {
        case UInt8(ascii: "&"): entity = "&amp;"
        case UInt8(ascii: "<"): entity = "&lt;"
        case UInt8(ascii: ">"): entity = "&gt;"
        case UInt8(ascii: "\""): entity = "&quot;"
        case UInt8(ascii: "'"): entity = "&#39;"
        default:
            utf8.formIndex(after: &index)
            continue
        }
        // Splitting at an ASCII byte always leaves valid UTF-8 on both sides.
        if chunkStart != index { out.append(contentsOf: text[chunkStart..<index]) }
        out.append(entity)
        utf8.formIndex(after: &index)
        chunkStart = index
    }
    if chunkStart == utf8.startIndex {
        out.append(text)
    } else if chunkStart != utf8.endIndex {
        out.append(contentsOf: text[chunkStart...])
    }
}

/// Appends `text` percent-encoded: every UTF-8 byte except RFC 3986's unreserved characters
/// becomes `%XX` (uppercase hex).
func appendPercentEncoding(_ text: String, to out: inout String) {
    let hex = Array("0123456789ABCDEF".utf8)
    var bytes: [UInt8] = []
    bytes.reserveCapacity(text.utf8.count * 3)
    for b in text.utf8 {
        switch b {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            bytes.append(b)
        default:
            bytes.append(UInt8(ascii: "%"))
            bytes.append(hex[Int(b >> 4)])
            bytes.append(hex[Int(b & 0x0F)])
        }
    }
    out.append(String(decoding: bytes, as: UTF8.self))
}

func escapedHTML(_ text: String) -> String {
    var out = String()
    appendEscapingHTML(text, to: &out)
    return out
}
