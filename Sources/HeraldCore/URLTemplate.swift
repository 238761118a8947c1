/// A personalized URL (a WhatsApp or SMS media URL): the template's own text is copied as
/// written, each tag's value (or fallback) is percent-encoded, so a contact's name with spaces,
/// `&`, `+`, `/` or non-Latin letters stays one value and cannot change the URL's shape.
///
/// Values are UTF-8 percent-encoded except RFC 3986's unreserved characters
/// (`A–Z a–z 0–9 - . _ ~`), which every part of a URL (path segment, query value) accepts as is.
///
/// ```swift
/// let u = try URLTemplate.compile("https://cdn.example/c/{{ first_name }}.png")
/// u.render(Contact(id: 1, firstName: "Ada Lovelace & co"))
/// // "https://cdn.example/c/Ada%20Lovelace%20%26%20co.png"
/// ```
///
/// Tags are the same as in ``CompiledTemplate`` (one parser).
public struct URLTemplate: Sendable {
    let template: CompiledTemplate

    /// The URL text up to its first tag (all of it when it has none): where a caller checks the
    /// scheme and host, which a tag must never provide.
    public let literalPrefix: String

    /// Whether the URL has no tags.
    public var isConstant: Bool { template.isConstant }

    /// The custom-field keys the URL reads.
    public var attributeKeys: [String] { template.attributeKeys }

    /// Parses a URL template.
    ///
    /// - Throws: ``TemplateError`` for the first bad tag, as ``CompiledTemplate/compile(_:)``.
    public static func compile(_ source: String) throws(TemplateError) -> URLTemplate {
        let template = try CompiledTemplate.compile(source)
        var prefix = ""
        for segment in template.segments {
            guard case .literal(let text) = segment else { break }
            prefix.append(text)
        }
        return URLTemplate(template: template, literalPrefix: prefix)
    }

    /// The URL for one contact, every value percent-encoded.
    public func render(_ contact: Contact) -> String {
        var out = String()
        out.reserveCapacity(template.literalUTF8Count &+ 32 &* template.segments.count)
        for segment in template.segments {
            switch segment {
            case .literal(let text):
                out.append(text)
            case .field(let field, let fallback, _):
                let value = CompiledTemplate.value(of: field, for: contact)
                let blank = value.map { $0.unicodeScalars.allSatisfy { $0.properties.isWhitespace } } ?? true
                if let fallback, blank {
                    Self.appendPercentEncoded(fallback, to: &out)
                } else if let value {
                    Self.appendPercentEncoded(value, to: &out)
                }
            }
        }
        return out
    }

    private static let hex: [Character] = Array("0123456789ABCDEF")

    /// Appends `text` UTF-8 percent-encoded, keeping RFC 3986's unreserved characters.
    public static func appendPercentEncoded(_ text: String, to out: inout String) {
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out.append("%")
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            }
        }
    }
}
