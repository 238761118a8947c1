import Foundation
import HeraldTransport

/// A mail ready for ``HeraldTransport``'s SMTP client, with the `Message-ID` it carries.
public struct SMTPMail: Sendable, Equatable {
    public var envelope: SMTPEnvelope
    /// The `Message-ID` without angle brackets (`herald.42.9f1c…@example.com`): the provider
    /// message id recorded when the server accepts the mail.
    public var messageID: String
}

/// Mail over SMTP: the RFC 5322 message and the classification of the server's answer.
public enum SMTP {
    /// Builds the mail for an `.email` message.
    ///
    /// The message has CRLF line endings and these headers, in order: `Date`, `Message-ID`
    /// (`<herald.{messageID}.{token}@{from-domain}>`), `From`, `To`, `Subject` (RFC 2047
    /// `=?UTF-8?B?…?=` words when not plain ASCII), `MIME-Version`, `Content-Type`,
    /// `Content-Transfer-Encoding`, `List-Unsubscribe` and `List-Unsubscribe-Post` (when there is an
    /// unsubscribe URL), `X-Herald-Message-ID`. Bodies are UTF-8 in quoted-printable. With
    /// attachments the mail is `multipart/mixed` (boundary `=_herald_mixed_{token}`): the text or
    /// the alternative first, then each file in base64 (``MailAttachment``). With `html`
    /// the mail is `multipart/alternative` (text part, then HTML part) with the boundary
    /// `=_herald_{token}`, which cannot occur in quoted-printable text: there `=` is always followed
    /// by a hex digit or a line break.
    ///
    /// - Parameters:
    ///   - message: A message with `.email` content; `to` is the recipient address.
    ///   - settings: The channel's settings (`url`, `from`, `require_tls`, `ca_file`).
    ///   - credentials: The channel's resolved SMTP login.
    ///   - date: The `Date` header (injected for tests).
    ///   - uniqueToken: Makes the `Message-ID` and the boundary unique; letters, digits, `.`, `-`
    ///     and `_` are kept, other characters dropped. Nil draws 16 random hex digits.
    ///   - timeout: Whole-transfer timeout.
    /// - Throws: ``MessageBuildError`` for non-email content, an unusable address, or an
    ///   unsubscribe URL that cannot be written in a header.
    public static func mail(for message: OutgoingMessage, settings: SMTPSettings,
                            credentials: SMTPCredentials, date: Date = Date(),
                            uniqueToken: String? = nil, timeout: Duration = .seconds(30)) throws(MessageBuildError) -> SMTPMail {
        guard case .email(let subject, let text, let html, let unsubscribeURL, let attachments) = message.content else {
            throw MessageBuildError("smtp sends only email content")
        }
        guard let from = MailAddress(parsing: settings.from) else {
            throw MessageBuildError("smtp \"from\" is not a usable address")
        }
        guard MailAddress.isValidAddress(message.to) else {
            throw MessageBuildError("recipient is not a usable email address")
        }
        let token = sanitizedToken(uniqueToken ?? randomToken())
        let messageID = "herald.\(message.messageID).\(token)@\(from.domain)"

        var mime = MIMEWriter()
        mime.header("Date", HTTPDate.rfc5322(date))
        mime.header("Message-ID", "<\(messageID)>")
        mime.header("From", MIME.mailbox(name: from.name, address: from.address, headerName: "From"))
        mime.header("To", message.to)
        mime.header("Subject", MIME.unstructured(subject, headerName: "Subject"))
        mime.header("MIME-Version", "1.0")
        let boundary = "=_herald_\(token)"
        // Attachments: multipart/mixed around the text (or the alternative), then the files.
        let mixedBoundary = "=_herald_mixed_\(token)"
        if !attachments.isEmpty {
            mime.header("Content-Type", "multipart/mixed; boundary=\"\(mixedBoundary)\"")
        } else if html != nil {
            mime.header("Content-Type", "multipart/alternative; boundary=\"\(boundary)\"")
        } else {
            mime.header("Content-Type", "text/plain; charset=utf-8")
            mime.header("Content-Transfer-Encoding", "quoted-printable")
        }
        if let url = unsubscribeURL?.trimmingCharacters(in: .whitespaces), !url.isEmpty {
            guard url.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F && $0 != "<" && $0 != ">" }) else {
                throw MessageBuildError("unsubscribe URL cannot be written in a header (spaces, controls, non-ASCII or angle brackets)")
            }
            mime.header("List-Unsubscribe", "<\(url)>")
            // RFC 8058 one-click needs an HTTP(S) URI that accepts the POST.
            if url.lowercased().hasPrefix("https://") || url.lowercased().hasPrefix("http://") {
                mime.header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
            }
        }
        mime.header("X-Herald-Message-ID", String(message.messageID))
        mime.line("")
        if !attachments.isEmpty {
            mime.line("--\(mixedBoundary)")
            if html != nil {
                mime.line("Content-Type: multipart/alternative; boundary=\"\(boundary)\"")
            } else {
                mime.line("Content-Type: text/plain; charset=utf-8")
                mime.line("Content-Transfer-Encoding: quoted-printable")
            }
            mime.line("")
        }
        if let html {
            mime.line("--\(boundary)")
            mime.line("Content-Type: text/plain; charset=utf-8")
            mime.line("Content-Transfer-Encoding: quoted-printable")
            mime.line("")
            mime.part(MIME.quotedPrintable(text))
            mime.line("--\(boundary)")
            mime.line("Content-Type: text/html; charset=utf-8")
            mime.line("Content-Transfer-Encoding: quoted-printable")
            mime.line("")
            mime.part(MIME.quotedPrintable(html))
            mime.line("--\(boundary)--")
        } else if !attachments.isEmpty {
            mime.part(MIME.quotedPrintable(text))
        } else {
            mime.body(MIME.quotedPrintable(text))
        }
        if !attachments.isEmpty {
            for file in attachments {
                mime.line("--\(mixedBoundary)")
                mime.attachment(file)
            }
            mime.line("--\(mixedBoundary)--")
        }

        let envelope = SMTPEnvelope(
            url: settings.url, mailFrom: from.address, recipients: [message.to], message: mime.bytes,
            username: credentials.username, password: credentials.password,
            requireTLS: settings.requireTLS || mustEncryptLogin(url: settings.url, credentials: credentials),
            caFile: settings.caFile, timeout: timeout)
        return SMTPMail(envelope: envelope, messageID: messageID)
    }

    /// Whether a session to `url` must be encrypted because it would carry credentials: a
    /// username or password is set, the URL is `smtp://` (STARTTLS is optional there, so a
    /// man in the middle could strip it), and the relay is not on this machine (`localhost`,
    /// `127.0.0.0/8`, `::1`: a local MTA, where there is no wire to listen on).
    /// `smtps://` is encrypted from the first byte anyway.
    public static func mustEncryptLogin(url: String, credentials: SMTPCredentials) -> Bool {
        guard credentials.username != nil || credentials.password != nil else { return false }
        guard let parsed = try? ParsedURL(url) else { return true } // unknown: be safe
        return parsed.scheme == "smtp" && !isLoopback(host: parsed.host)
    }

    /// `localhost`, `127.x.x.x`, `::1` (hosts as ``ParsedURL`` normalizes them).
    static func isLoopback(host: String) -> Bool {
        if host == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { UInt8($0) != nil }
    }

    /// Classifies the outcome of handing a mail to the SMTP server.
    ///
    /// - nil (the server accepted the mail) → ``DeliveryOutcome/accepted(providerMessageID:)``
    ///   with `messageID` (see ``SMTPMail/messageID``).
    /// - `notSent` → retry; `ambiguous` (e.g. a timeout after the message data went out) → retry,
    ///   ambiguous.
    /// - a rejection with a 4xx reply → retry (code `"smtp 451"`), rate-limited when the reply says
    ///   so ("rate limit", "too many", "throttl"); 5xx → permanent (code `"smtp 550"`).
    public static func classify(_ error: TransportError?, messageID: String) -> DeliveryOutcome {
        guard let error else { return .accepted(providerMessageID: messageID) }
        return DeliveryOutcome.classify(transportError: error)
    }

    /// The `smtpRejected` branch of ``classify(_:messageID:)``.
    static func classifyRejection(_ error: TransportError) -> DeliveryOutcome {
        let message = Text.clip(error.message)
        guard let reply = error.smtpCode else {
            return .retry(code: nil, message: message, retryAfter: nil, ambiguous: false, rateLimited: false)
        }
        let code = "smtp \(reply)"
        switch reply {
        case 400...499:
            let lower = message.lowercased()
            let rateLimited = ["rate limit", "ratelimit", "rate-limit", "too many", "throttl", "4.7.28"]
                .contains { lower.contains($0) }
            return .retry(code: code, message: message, retryAfter: nil, ambiguous: false, rateLimited: rateLimited)
        case 500...599:
            return .permanent(code: code, message: message)
        default:
            return .retry(code: code, message: message, retryAfter: nil, ambiguous: false, rateLimited: false)
        }
    }

    private static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let value = generator.next() as UInt64
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    private static func sanitizedToken(_ token: String) -> String {
        let kept = token.unicodeScalars.filter {
            ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || $0 == "." || $0 == "-" || $0 == "_"
        }
        return kept.isEmpty ? "0" : String(String.UnicodeScalarView(kept))
    }
}

/// A mailbox parsed from `Name <addr>`, `"Name" <addr>` or `addr`.
struct MailAddress: Equatable {
    var name: String?
    var address: String

    var domain: String {
        address.lastIndex(of: "@").map { String(address[address.index(after: $0)...]) } ?? address
    }

    init?(parsing text: String) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.hasSuffix(">"), let open = trimmed.lastIndex(of: "<") {
            let address = String(trimmed[trimmed.index(after: open)..<trimmed.index(before: trimmed.endIndex)])
            var name = trimmed[..<open].trimmingCharacters(in: .whitespaces)
            if name.count >= 2, name.hasPrefix("\""), name.hasSuffix("\"") {
                name = String(name.dropFirst().dropLast())
                    .replacingOccurrences(of: "\\\"", with: "\"")
                    .replacingOccurrences(of: "\\\\", with: "\\")
            }
            guard MailAddress.isValidAddress(address), !name.contains(where: { $0.isNewline }) else { return nil }
            self.name = name.isEmpty ? nil : name
            self.address = address
        } else {
            guard MailAddress.isValidAddress(trimmed) else { return nil }
            self.name = nil
            self.address = trimmed
        }
    }

    /// A plain ASCII `local@domain` with nothing that could break a header or an SMTP command.
    static func isValidAddress(_ address: String) -> Bool {
        guard let at = address.lastIndex(of: "@"),
              at != address.startIndex, address.index(after: at) != address.endIndex else { return false }
        let forbidden: Set<Unicode.Scalar> = ["<", ">", "(", ")", ",", ";", ":", "\\", "\"", "[", "]"]
        guard address.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F && !forbidden.contains($0) })
        else { return false }
        return !address[address.index(after: at)...].contains("@")
    }
}

/// MIME encodings: RFC 2045 quoted-printable, RFC 2047 encoded words, RFC 5322 folding.
enum MIME {
    /// Longest line RFC 5322 recommends (without CRLF).
    static let lineLimit = 78
    /// UTF-8 bytes per encoded word: 42 bytes make 56 base64 characters, so a word
    /// (`=?UTF-8?B?` + 56 + `?=`) is 68 characters, inside RFC 2047's 75, and `Subject: ` plus one
    /// word stays inside 78.
    static let bytesPerEncodedWord = 42

    /// An unstructured header value (`Subject`): line breaks and tabs become spaces; plain ASCII
    /// is folded at spaces to 78-character lines; anything else becomes RFC 2047 words, one per
    /// line.
    static func unstructured(_ value: String, headerName: String) -> String {
        var flat = ""
        flat.unicodeScalars.reserveCapacity(value.unicodeScalars.count)
        var previousCR = false
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\r": flat.unicodeScalars.append(" "); previousCR = true; continue
            case "\n": if !previousCR { flat.unicodeScalars.append(" ") }
            case "\t": flat.unicodeScalars.append(" ")
            default: flat.unicodeScalars.append(scalar)
            }
            previousCR = false
        }
        let plain = flat.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value < 0x7F }
            && !flat.contains("=?")
            && flat.split(separator: " ").allSatisfy { $0.utf8.count <= 900 }
        if plain {
            return fold(flat, used: headerName.utf8.count + 2)
        }
        return encodedWords(flat).joined(separator: "\r\n ")
    }

    /// A `From`-style mailbox: `addr`, `Name <addr>`, `"Name, Inc." <addr>` or
    /// `=?UTF-8?B?…?= <addr>`.
    static func mailbox(name: String?, address: String, headerName: String) -> String {
        guard let name, !name.isEmpty else { return address }
        let atext = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~ ".unicodeScalars)
        if name.unicodeScalars.allSatisfy({ atext.contains($0) }) && !name.contains("=?") {
            return "\(name) <\(address)>"
        }
        if name.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7F }) && !name.contains("=?") {
            let escaped = name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            return "\"\(escaped)\" <\(address)>"
        }
        return encodedWords(name).joined(separator: "\r\n ") + " <\(address)>"
    }

    /// `=?UTF-8?B?…?=` words of at most ``bytesPerEncodedWord`` UTF-8 bytes each, never
    /// splitting a character's bytes between words (RFC 2047 §5).
    static func encodedWords(_ text: String) -> [String] {
        var words: [String] = []
        var chunk: [UInt8] = []
        for scalar in text.unicodeScalars {
            let bytes = Array(String(scalar).utf8)
            if chunk.count + bytes.count > bytesPerEncodedWord {
                words.append("=?UTF-8?B?\(Data(chunk).base64EncodedString())?=")
                chunk.removeAll(keepingCapacity: true)
            }
            chunk.append(contentsOf: bytes)
        }
        if !chunk.isEmpty || words.isEmpty {
            words.append("=?UTF-8?B?\(Data(chunk).base64EncodedString())?=")
        }
        return words
    }

    /// Folds an ASCII header value at spaces so lines stay within 78 characters where the words
    /// allow; `used` is the length of `Name: ` already on the first line.
    static func fold(_ value: String, used: Int) -> String {
        var out = ""
        var column = used
        for (index, word) in value.split(separator: " ", omittingEmptySubsequences: false).enumerated() {
            if index > 0 {
                if column + 1 + word.utf8.count > lineLimit && column > 1 && !word.isEmpty {
                    out += "\r\n"
                    column = 0
                }
                out += " "
                column += 1
            }
            out += word
            column += word.utf8.count
        }
        return out
    }

    /// RFC 2045 §6.7 quoted-printable of `text`'s UTF-8 bytes, with CRLF line endings.
    ///
    /// Line breaks (`\r\n`, `\n`) become CRLF hard breaks; a lone `\r` is encoded. `=`, control
    /// characters and non-ASCII bytes become `=XX`; a space or tab at the end of a line becomes
    /// `=20`/`=09`; a `.` opening a line becomes `=2E` (no SMTP dot-stuffing surprises). Lines are at
    /// most 76 characters, with `=` soft breaks.
    static func quotedPrintable(_ text: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count + text.utf8.count / 8 + 16)
        let bytes = Array(text.utf8)
        var lineStart = 0
        var index = 0
        while index <= bytes.count {
            if index == bytes.count || bytes[index] == 0x0A {
                var lineEnd = index
                if lineEnd > lineStart && bytes[lineEnd - 1] == 0x0D && index < bytes.count { lineEnd -= 1 }
                encodeLine(bytes[lineStart..<lineEnd], into: &out)
                if index < bytes.count { out.append(contentsOf: [0x0D, 0x0A]) }
                lineStart = index + 1
            }
            index += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static let hex: [UInt8] = Array("0123456789ABCDEF".utf8)

    private static func encodeLine(_ line: ArraySlice<UInt8>, into out: inout [UInt8]) {
        var column = 0
        var token: [UInt8] = []
        token.reserveCapacity(3)
        for position in line.indices {
            let byte = line[position]
            let isLast = position == line.index(before: line.endIndex)
            token.removeAll(keepingCapacity: true)
            let literal: Bool
            switch byte {
            case 0x20, 0x09: literal = !isLast
            case UInt8(ascii: "="): literal = false
            case 0x21...0x7E: literal = true
            default: literal = false
            }
            if literal {
                token.append(byte)
            } else {
                token.append(UInt8(ascii: "="))
                token.append(hex[Int(byte >> 4)])
                token.append(hex[Int(byte & 0x0F)])
            }
            // Room for a soft break's "=" unless this token ends the line.
            let limit = isLast ? 76 : 75
            if column + token.count > limit {
                out.append(contentsOf: [UInt8(ascii: "="), 0x0D, 0x0A])
                column = 0
            }
            if column == 0 && token == [UInt8(ascii: ".")] {
                token = Array("=2E".utf8)
            }
            out.append(contentsOf: token)
            column += token.count
        }
    }
}
