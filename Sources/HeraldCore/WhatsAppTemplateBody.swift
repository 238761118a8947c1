/// The body of an approved WhatsApp message template (`herald.templates.body`), whose
/// placeholders `{{1}}`, `{{2}}`, … are filled by a broadcast's `template_params`.
public enum WhatsAppTemplateBody {
    /// The number of parameters the body needs: the highest placeholder index in it.
    ///
    /// A placeholder is exactly `{{` + decimal digits + `}}`, as Meta writes them (no spaces;
    /// `{{0}}` and indexes above 9999 are not placeholders). Repeats count once, and gaps count
    /// as if filled, because Meta numbers parameters by position: `"{{1}} and {{3}}"` needs 3
    /// parameters, `"{{1}}, again {{1}}"` needs 1, a body without placeholders needs 0.
    ///
    /// - Parameter body: The template body.
    /// - Returns: The highest placeholder index, or 0 when there is none.
    public static func placeholderCount(_ body: String) -> Int {
        let open = UInt8(ascii: "{"), close = UInt8(ascii: "}")
        let zero = UInt8(ascii: "0"), nine = UInt8(ascii: "9")
        var highest = 0
        var bytes = body.utf8.makeIterator()
        // A tiny state machine over the bytes: 0 = text, 1 = saw "{", 2 = in "{{digits",
        // 3 = saw "{{digits}".
        var state = 0
        var value = 0
        var digits = 0
        while let b = bytes.next() {
            switch state {
            case 0:
                if b == open { state = 1 }
            case 1:
                if b == open { state = 2; value = 0; digits = 0 } else { state = 0 }
            case 2:
                if b >= zero && b <= nine {
                    value = value * 10 + Int(b - zero)
                    digits += 1
                    if digits > 4 { state = 0 }
                } else if b == close && digits > 0 {
                    state = 3
                } else if b == open {
                    state = digits == 0 ? 2 : 1 // "{{{1}}" still holds "{{1}}"
                    value = 0; digits = 0
                } else {
                    state = 0
                }
            default: // 3
                if b == close, value > 0 { highest = max(highest, value) }
                state = b == open ? 1 : 0
            }
        }
        return highest
    }
}
