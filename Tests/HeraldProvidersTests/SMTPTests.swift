import Foundation
import HeraldTransport
import Testing
@testable import HeraldProviders

/// Decoders used only to check the encoders: RFC 2045 quoted-printable and RFC 2047 B-words.
enum Decode {
    static func quotedPrintable(_ encoded: String) -> String {
        var out: [UInt8] = []
        let bytes = Array(encoded.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "=") {
                if i + 2 < bytes.count + 0, bytes[i + 1] == 0x0D, bytes[i + 2] == 0x0A { i += 3; continue }
                out.append(UInt8(String(decoding: bytes[(i + 1)...(i + 2)], as: UTF8.self), radix: 16)!)
                i += 3
            } else {
                out.append(bytes[i]); i += 1
            }
        }
        return String(decoding: out, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n")
    }

    static func encodedWords(_ value: String) -> String {
        var data: [UInt8] = []
        for word in value.split(whereSeparator: { $0 == " " || $0 == "\r" || $0 == "\n" }) {
            #expect(word.hasPrefix("=?UTF-8?B?") && word.hasSuffix("?="))
            #expect(word.count <= 75)
            let base64 = word.dropFirst(10).dropLast(2)
            let chunk = Data(base64Encoded: String(base64))!
            // Each word holds whole characters.
            #expect(String(validating: chunk, as: UTF8.self) != nil)
            data.append(contentsOf: chunk)
        }
        return String(decoding: data, as: UTF8.self)
    }
}

@Suite struct SMTPMessageTests {
    let settings = SMTPSettings(url: "smtps://smtp.example.com:465", from: "Acme Shop <news@acme.example>",
                                usernameEnv: "U", passwordEnv: "P", requireTLS: true)
    let credentials = SMTPCredentials(username: "news", password: "pw")
    let date = Date(timeIntervalSince1970: 1_751_371_200) // Tue, 01 Jul 2025 12:00:00 UTC

    private func mail(_ content: OutgoingMessage.Content, id: Int64 = 42, to: String = "ada@example.org",
                      settings: SMTPSettings? = nil) throws -> (SMTPMail, String) {
        let mail = try SMTP.mail(for: OutgoingMessage(messageID: id, to: to, content: content),
                                         settings: settings ?? self.settings, credentials: credentials,
                                         date: date, uniqueToken: "abc123")
        return (mail, String(decoding: mail.envelope.message, as: UTF8.self))
    }

    private func header(_ name: String, in message: String) -> String? {
        let head = message.components(separatedBy: "\r\n\r\n")[0]
        let unfolded = head.replacingOccurrences(of: "\r\n ", with: " ")
        return unfolded.components(separatedBy: "\r\n").first { $0.hasPrefix(name + ": ") }
            .map { String($0.dropFirst(name.count + 2)) }
    }

    @Test("text-only mail: golden message and envelope")
    func goldenText() throws {
        let (mail, text) = try mail(.email(subject: "Spring sale", text: "Hi Ada,\nprices = low.\n", html: nil,
                                           unsubscribeURL: "https://herald.example.com/u/42?t=x"))
        #expect(text == [
            "Date: Tue, 01 Jul 2025 12:00:00 +0000",
            "Message-ID: <herald.42.abc123@acme.example>",
            "From: Acme Shop <news@acme.example>",
            "To: ada@example.org",
            "Subject: Spring sale",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: quoted-printable",
            "List-Unsubscribe: <https://herald.example.com/u/42?t=x>",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            "X-Herald-Message-ID: 42",
            "",
            "Hi Ada,",
            "prices =3D low.",
            "",
        ].joined(separator: "\r\n"))
        #expect(mail.messageID == "herald.42.abc123@acme.example")
        #expect(mail.envelope == SMTPEnvelope(
            url: "smtps://smtp.example.com:465", mailFrom: "news@acme.example", recipients: ["ada@example.org"],
            message: mail.envelope.message, username: "news", password: "pw", requireTLS: true))
    }

    @Test("html makes multipart/alternative: golden message")
    func goldenMultipart() throws {
        let (_, text) = try mail(.email(subject: "Hi", text: "Hi Ada", html: "<p>Hi <b>Adé</b></p>", unsubscribeURL: nil), id: 7)
        #expect(text == [
            "Date: Tue, 01 Jul 2025 12:00:00 +0000",
            "Message-ID: <herald.7.abc123@acme.example>",
            "From: Acme Shop <news@acme.example>",
            "To: ada@example.org",
            "Subject: Hi",
            "MIME-Version: 1.0",
            #"Content-Type: multipart/alternative; boundary="=_herald_abc123""#,
            "X-Herald-Message-ID: 7",
            "",
            "--=_herald_abc123",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: quoted-printable",
            "",
            "Hi Ada",
            "--=_herald_abc123",
            "Content-Type: text/html; charset=utf-8",
            "Content-Transfer-Encoding: quoted-printable",
            "",
            "<p>Hi <b>Ad=C3=A9</b></p>",
            "--=_herald_abc123--",
            "",
        ].joined(separator: "\r\n"))
    }

    @Test("the boundary cannot occur in the parts, even when the content tries")
    func boundarySafety() throws {
        let hostile = "--=_herald_abc123\n--=_herald_abc123--\n"
        let (_, text) = try mail(.email(subject: "x", text: hostile, html: hostile, unsubscribeURL: nil))
        let lines = text.components(separatedBy: "\r\n")
        #expect(lines.filter { $0 == "--=_herald_abc123" }.count == 2)
        #expect(lines.filter { $0 == "--=_herald_abc123--" }.count == 1)
        #expect(lines.contains("--=3D_herald_abc123"))
    }

    @Test("every line ends with CRLF and none is longer than 78 characters")
    func crlfEverywhere() throws {
        let long = String(repeating: "Ẹ káàbọ̀ sí ìpolówó ọjà wa! ", count: 20)
        let (_, text) = try mail(.email(subject: long, text: long + "\n" + long, html: "<p>\(long)</p>\r\n",
                                        unsubscribeURL: "https://herald.example.com/u/1"))
        let bytes = Array(text.utf8)
        for (i, byte) in bytes.enumerated() where byte == 0x0A {
            #expect(i > 0 && bytes[i - 1] == 0x0D)
        }
        for (i, byte) in bytes.enumerated() where byte == 0x0D {
            #expect(i + 1 < bytes.count && bytes[i + 1] == 0x0A)
        }
        #expect(text.hasSuffix("\r\n"))
        for line in text.components(separatedBy: "\r\n") {
            #expect(line.utf8.count <= 78, "\(line)")
        }
    }

    @Test("a non-ASCII subject becomes RFC 2047 words")
    func encodedSubject() throws {
        let subject = "Ẹ káàbọ̀, Adé! 🎉"
        let (_, text) = try mail(.email(subject: subject, text: "", html: nil, unsubscribeURL: nil))
        #expect(text.contains("\r\nSubject: =?UTF-8?B?4bq4IGvDocOgYuG7jcyALCBBZMOpISDwn46J?=\r\n"))
        #expect(Decode.encodedWords(header("Subject", in: text)!) == subject)
    }

    @Test("a long non-ASCII subject is split into folded words of whole characters")
    func longEncodedSubject() throws {
        let subject = String(repeating: "Ìpolówó ọjà 🎉 ", count: 12)
        let (_, text) = try mail(.email(subject: subject, text: "", html: nil, unsubscribeURL: nil))
        let value = header("Subject", in: text)!
        #expect(value.split(separator: " ").count > 3)
        #expect(Decode.encodedWords(value) == subject)
        #expect(text.contains("?=\r\n =?UTF-8?B?"))
    }

    @Test("a long ASCII subject is folded at spaces and unfolds to itself")
    func longASCIISubject() throws {
        let subject = (1...30).map { "word\($0)" }.joined(separator: " ")
        let (_, text) = try mail(.email(subject: subject, text: "", html: nil, unsubscribeURL: nil))
        #expect(text.contains("Subject: word1 word2"))
        #expect(text.contains("\r\n word"))
        #expect(header("Subject", in: text) == subject)
    }

    @Test("line breaks in a subject cannot inject headers")
    func subjectInjection() throws {
        let (_, text) = try mail(.email(subject: "Hi\r\nBcc: victim@example.org\nX: y", text: "", html: nil, unsubscribeURL: nil))
        #expect(header("Subject", in: text) == "Hi Bcc: victim@example.org X: y")
        #expect(!text.contains("\r\nBcc:"))
    }

    @Test("an ASCII subject that looks like an encoded word is encoded")
    func subjectLooksEncoded() throws {
        let (_, text) = try mail(.email(subject: "=?UTF-8?B?x?=", text: "", html: nil, unsubscribeURL: nil))
        #expect(Decode.encodedWords(header("Subject", in: text)!) == "=?UTF-8?B?x?=")
    }

    @Test("From display names: plain, quoted, encoded, none", arguments: [
        ("Acme Shop <news@acme.example>", "Acme Shop <news@acme.example>"),
        (#""Acme, Inc." <news@acme.example>"#, #""Acme, Inc." <news@acme.example>"#),
        ("news@acme.example", "news@acme.example"),
        ("<news@acme.example>", "news@acme.example"),
        ("Ọjà Adé <news@acme.example>", "=?UTF-8?B?4buMasOgIEFkw6k=?= <news@acme.example>"),
    ])
    func fromHeader(from: String, expected: String) throws {
        let settings = SMTPSettings(url: "smtp://m:587", from: from)
        let (mail, text) = try mail(.email(subject: "s", text: "", html: nil, unsubscribeURL: nil), settings: settings)
        #expect(header("From", in: text) == expected)
        #expect(mail.envelope.mailFrom == "news@acme.example")
        #expect(header("Message-ID", in: text) == "<herald.42.abc123@acme.example>")
    }

    @Test("a mailto unsubscribe gets List-Unsubscribe but no one-click Post")
    func mailtoUnsubscribe() throws {
        let (_, text) = try mail(.email(subject: "s", text: "", html: nil, unsubscribeURL: "mailto:unsub@acme.example?subject=42"))
        #expect(header("List-Unsubscribe", in: text) == "<mailto:unsub@acme.example?subject=42>")
        #expect(header("List-Unsubscribe-Post", in: text) == nil)
    }

    @Test("no unsubscribe URL, no List-Unsubscribe")
    func noUnsubscribe() throws {
        let (_, text) = try mail(.email(subject: "s", text: "", html: nil, unsubscribeURL: nil))
        #expect(header("List-Unsubscribe", in: text) == nil)
        #expect(header("X-Herald-Message-ID", in: text) == "42")
    }

    @Test("unusable addresses and URLs are refused", arguments: [
        ("ada@example.org\r\nBcc: x@y.example", "https://u.example"),
        ("not-an-address", "https://u.example"),
        ("ada@example.org", "https://u.example/a b"),
        ("ada@example.org", "https://u.example/>x"),
    ])
    func refused(to: String, url: String) {
        #expect(throws: MessageBuildError.self) {
            try mail(.email(subject: "s", text: "", html: nil, unsubscribeURL: url), to: to)
        }
    }

    @Test("WhatsApp content is refused")
    func wrongContent() {
        #expect(throws: MessageBuildError.self) { try mail(.sms(body: "x")) }
    }

    @Test("without a token the Message-ID is random")
    func randomToken() throws {
        let message = OutgoingMessage(messageID: 1, to: "ada@example.org",
                                      content: .email(subject: "s", text: "", html: nil, unsubscribeURL: nil))
        let a = try SMTP.mail(for: message, settings: settings, credentials: credentials)
        let b = try SMTP.mail(for: message, settings: settings, credentials: credentials)
        #expect(a.messageID != b.messageID)
        #expect(a.messageID.hasPrefix("herald.1.") && a.messageID.hasSuffix("@acme.example"))
    }
}

@Suite struct QuotedPrintableTests {
    @Test("= is encoded; plain ASCII passes")
    func equals() {
        #expect(MIME.quotedPrintable("a=b, c") == "a=3Db, c")
    }

    @Test("trailing spaces and tabs are encoded, inner ones are not")
    func trailingWhitespace() {
        #expect(MIME.quotedPrintable("hello \nworld\t\nin side") == "hello=20\r\nworld=09\r\nin side")
    }

    @Test("non-ASCII and control bytes are encoded")
    func nonASCII() {
        #expect(MIME.quotedPrintable("Adé 😀\u{7F}") == "Ad=C3=A9 =F0=9F=98=80=7F")
        #expect(MIME.quotedPrintable("a\rb\r\nc") == "a=0Db\r\nc")
    }

    @Test("a leading dot is encoded")
    func leadingDot() {
        #expect(MIME.quotedPrintable(".\n..x\na.") == "=2E\r\n=2E.x\r\na.")
    }

    @Test("long lines get soft breaks at 76 characters")
    func longLines() {
        let encoded = MIME.quotedPrintable(String(repeating: "x", count: 100))
        #expect(encoded == String(repeating: "x", count: 75) + "=\r\n" + String(repeating: "x", count: 25))
        #expect(MIME.quotedPrintable(String(repeating: "x", count: 76)) == String(repeating: "x", count: 76))
        #expect(MIME.quotedPrintable(String(repeating: "x", count: 77)) == String(repeating: "x", count: 75) + "=\r\nxx")
    }

    @Test("an escape is never split by a soft break")
    func escapesStayWhole() {
        let text = String(repeating: "é", count: 40) + " end \n" + String(repeating: "a =", count: 40)
        let encoded = MIME.quotedPrintable(text)
        for line in encoded.components(separatedBy: "\r\n") {
            #expect(line.utf8.count <= 76)
            let body = line.hasSuffix("=") ? String(line.dropLast()) : line
            #expect(!body.hasSuffix("=") && !body.dropLast().hasSuffix("="))
            #expect(!line.hasSuffix(" ") && !line.hasSuffix("\t"))
        }
        #expect(Decode.quotedPrintable(encoded) == text)
    }

    @Test("round trip of varied text")
    func roundTrip() {
        let samples = ["", "\n", "a\n\nb\n", "Ẹ káàbọ̀ 👩🏾‍💻 \t \n", String(repeating: "ọ ", count: 200),
                       "Line with = and == at the end ==\n", String(repeating: " ", count: 90)]
        for sample in samples {
            #expect(Decode.quotedPrintable(MIME.quotedPrintable(sample)) == sample)
        }
    }
}

@Suite struct SMTPClassificationTests {
    @Test("accepted, 4xx retry, 5xx permanent, transport failures")
    func table() {
        #expect(SMTP.classify(nil, messageID: "herald.1.x@acme.example")
            == .accepted(providerMessageID: "herald.1.x@acme.example"))
        #expect(SMTP.classify(TransportError(kind: .smtpRejected, curlCode: 55, smtpCode: 451, message: "451 4.3.0 Temporary failure"), messageID: "m")
            == .retry(code: "smtp 451", message: "451 4.3.0 Temporary failure", retryAfter: nil, ambiguous: false, rateLimited: false))
        #expect(SMTP.classify(TransportError(kind: .smtpRejected, curlCode: 55, smtpCode: 421, message: "421 4.7.0 Too many connections"), messageID: "m")
            == .retry(code: "smtp 421", message: "421 4.7.0 Too many connections", retryAfter: nil, ambiguous: false, rateLimited: true))
        #expect(SMTP.classify(TransportError(kind: .smtpRejected, curlCode: 55, smtpCode: 550, message: "550 5.1.1 No such user"), messageID: "m")
            == .permanent(code: "smtp 550", message: "550 5.1.1 No such user"))
        #expect(SMTP.classify(TransportError(kind: .smtpRejected, curlCode: 67, smtpCode: 535, message: "535 5.7.8 Authentication failed"), messageID: "m")
            == .permanent(code: "smtp 535", message: "535 5.7.8 Authentication failed"))
        #expect(SMTP.classify(TransportError(kind: .notSent, curlCode: 7, message: "connection refused"), messageID: "m")
            == .retry(code: nil, message: "not sent: connection refused", retryAfter: nil, ambiguous: false, rateLimited: false))
        #expect(SMTP.classify(TransportError(kind: .ambiguous, curlCode: 28, message: "timeout after DATA"), messageID: "m")
            == .retry(code: nil, message: "no answer: timeout after DATA", retryAfter: nil, ambiguous: true, rateLimited: false))
    }
}
