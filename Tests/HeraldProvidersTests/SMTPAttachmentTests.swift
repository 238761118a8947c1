import Foundation
import HeraldTesting
import Testing
@testable import HeraldProviders

/// A mail with attachments, read back by a standard MIME parser (Python's `email` package,
/// `policy.default`): exact bytes, file names and content types, text and HTML unchanged.
@Suite("SMTP: attachments in multipart/mixed")
struct SMTPAttachmentTests {
    let settings = SMTPSettings(url: "smtp://127.0.0.1:2525", from: "Acme Shop <news@acme.example>")
    let date = Date(timeIntervalSince1970: 1_751_371_200)

    /// Every byte value, so base64 carries everything a binary file can hold.
    static let binary: [UInt8] = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
    static let pdf: [UInt8] = Array("%PDF-1.4\n%âãÏÓ\n1 0 obj\n<<>>\nendobj\n%%EOF\n".utf8)
    /// Needs RFC 2231 (non-ASCII) and continuations (long).
    static let longName = "Каталог весна-лето 2026 — цены «специальные» для постоянных клиентов.pdf"

    func parse(_ message: [UInt8]) throws -> ParsedMail { try ParsedMail.parse(message) }

    func mail(html: String?, attachments: [MailAttachment]) throws -> [UInt8] {
        try SMTP.mail(for: OutgoingMessage(messageID: 7, to: "ada@example.org",
                                           content: .email(subject: "Spring", text: "Hi Ada,\nsee the catalogue.\n", html: html,
                                                           unsubscribeURL: nil, attachments: attachments)),
                      settings: settings, credentials: SMTPCredentials(), date: date, uniqueToken: "abc123").envelope.message
    }

    @Test("text and HTML with two attachments: the parser gets the exact bytes, names and types back")
    func twoAttachmentsWithAlternative() throws {
        let files = [MailAttachment(filename: Self.longName, contentType: "application/pdf", bytes: Self.pdf),
                     MailAttachment(filename: "data.bin", contentType: "application/octet-stream", bytes: Self.binary)]
        let parsed = try parse(try mail(html: "<p>Hi <b>Adé</b></p>", attachments: files))
        #expect(parsed.type == "multipart/mixed")
        #expect(parsed.parts.map(\.type) == ["multipart/mixed", "multipart/alternative", "text/plain", "text/html",
                                             "application/pdf", "application/octet-stream"])
        #expect(parsed.parts[2].text == "Hi Ada,\nsee the catalogue.\n")
        #expect(parsed.parts[3].text == "<p>Hi <b>Adé</b></p>")
        #expect(parsed.parts[4].filename == Self.longName)
        #expect(parsed.parts[4].disposition == "attachment")
        #expect(parsed.parts[4].base64 == Data(Self.pdf).base64EncodedString())
        #expect(parsed.parts[5].filename == "data.bin")
        #expect(parsed.parts[5].base64 == Data(Self.binary).base64EncodedString())
        #expect(parsed.longestLine <= 78)
    }

    @Test("plain text with one attachment: the text part, then the file")
    func textOnlyWithAttachment() throws {
        let file = MailAttachment(filename: "coupon \"spring\".png", contentType: "image/png", bytes: Self.binary)
        let parsed = try parse(try mail(html: nil, attachments: [file]))
        #expect(parsed.parts.map(\.type) == ["multipart/mixed", "text/plain", "image/png"])
        #expect(parsed.parts[1].text == "Hi Ada,\nsee the catalogue.\n")
        #expect(parsed.parts[2].filename == "coupon \"spring\".png")
        #expect(parsed.parts[2].base64 == Data(Self.binary).base64EncodedString())
    }

    @Test("base64 lines are 76 characters and the parts are laid out as in the golden text")
    func golden() throws {
        let bytes: [UInt8] = Array(repeating: 0xFF, count: 60)
        let text = String(decoding: try mail(html: nil, attachments: [MailAttachment(filename: "a.bin", contentType: "application/octet-stream", bytes: bytes)]), as: UTF8.self)
        let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        #expect(text.contains("\r\nContent-Type: multipart/mixed; boundary=\"=_herald_mixed_abc123\"\r\n"))
        #expect(body == """
            --=_herald_mixed_abc123\r
            Content-Type: text/plain; charset=utf-8\r
            Content-Transfer-Encoding: quoted-printable\r
            \r
            Hi Ada,\r
            see the catalogue.\r
            \r
            --=_herald_mixed_abc123\r
            Content-Type: application/octet-stream; name="a.bin"\r
            Content-Transfer-Encoding: base64\r
            Content-Disposition: attachment; filename="a.bin"\r
            \r
            \(String(repeating: "/", count: 76))\r
            \(String(repeating: "/", count: 4))\r
            --=_herald_mixed_abc123--\r

            """)
    }

    @Test("content type: the server's when usable, else the file name's, never a header injection")
    func contentTypes() {
        #expect(MailAttachment.contentType(answered: "application/pdf", filename: "x") == "application/pdf")
        #expect(MailAttachment.contentType(answered: "Text/CSV; Charset=UTF-8; x=y", filename: "x") == "text/csv; charset=utf-8")
        #expect(MailAttachment.contentType(answered: "application/octet-stream", filename: "a.PDF") == "application/pdf")
        #expect(MailAttachment.contentType(answered: nil, filename: "a.jpg") == "image/jpeg")
        #expect(MailAttachment.contentType(answered: "text/html\r\nBcc: x@y", filename: "a") == "application/octet-stream")
        #expect(MailAttachment.filename(fromURL: "https://cdn.example/c/Cat%C3%A1logo%202026.pdf?v=2") == "Catálogo 2026.pdf")
        #expect(MailAttachment.filename(fromURL: "https://cdn.example") == "attachment")
    }
}
