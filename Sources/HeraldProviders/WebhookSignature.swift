import Crypto
import Foundation

/// Signatures of provider webhooks: computing them (tests, benchmarks, test doubles) and checking
/// them in constant time.
///
/// - Important: a check compares the whole MAC with `HMAC.isValidAuthenticationCode`, whose
///   comparison does not stop at the first differing byte, so response timing reveals nothing about
///   how much of a forged signature was right. Parsing the header (its length, its hex or base64)
///   may take variable time: it depends only on what the sender wrote, not on the secret.
public enum WebhookSignature {
    // MARK: Meta: X-Hub-Signature-256

    /// The `X-Hub-Signature-256` header Meta sends: `sha256=` + lowercase hex HMAC-SHA256 of the
    /// raw body, keyed with the app secret.
    public static func meta(body: some DataProtocol, appSecret: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: SymmetricKey(data: Array(appSecret.utf8)))
        return "sha256=" + hex(mac)
    }

    /// Whether `header` is the right `X-Hub-Signature-256` of `body` for `appSecret`.
    ///
    /// - Parameters:
    ///   - header: the header's value, nil when absent (then false).
    ///   - body: the raw body bytes exactly as received (never a re-encoded JSON).
    ///   - appSecret: the app secret of the channel's Meta app.
    public static func verifyMeta(header: String?, body: some DataProtocol, appSecret: String) -> Bool {
        guard let header = header?.trimmingCharacters(in: .whitespaces) else { return false }
        let prefix = "sha256="
        guard header.count == prefix.count + 64, header.lowercased().hasPrefix(prefix),
              let mac = bytes(hex: header.dropFirst(prefix.count)) else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: body,
                                                       using: SymmetricKey(data: Array(appSecret.utf8)))
    }

    // MARK: Twilio: X-Twilio-Signature

    /// The text Twilio signs: the full URL it posted to, then every POST parameter's name and
    /// value concatenated, sorted by name (and by value for a repeated name).
    public static func twilioSignedText(url: String, parameters: [FormField]) -> String {
        let sorted = parameters.sorted { a, b in
            a.name == b.name ? Array(a.value.utf8).lexicographicallyPrecedes(Array(b.value.utf8))
                             : Array(a.name.utf8).lexicographicallyPrecedes(Array(b.name.utf8))
        }
        var text = url
        for field in sorted { text += field.name + field.value }
        return text
    }

    /// The `X-Twilio-Signature` header: base64 of HMAC-SHA1 of ``twilioSignedText(url:parameters:)``
    /// keyed with the account's auth token.
    public static func twilio(url: String, parameters: [FormField], authToken: String) -> String {
        let text = twilioSignedText(url: url, parameters: parameters)
        let mac = HMAC<Insecure.SHA1>.authenticationCode(for: Array(text.utf8), using: SymmetricKey(data: Array(authToken.utf8)))
        return Data(mac).base64EncodedString()
    }

    /// Whether `header` is the right `X-Twilio-Signature` for a POST of `parameters` to `url`.
    ///
    /// - Parameters:
    ///   - header: the header's value, nil when absent (then false).
    ///   - url: the public URL Twilio posted to (`HERALD_PUBLIC_URL` + `/webhooks/twilio`, or the
    ///     channel's `status_callback_url`).
    ///   - parameters: every form parameter of the body, as decoded.
    ///   - authToken: the account's auth token.
    public static func verifyTwilio(header: String?, url: String, parameters: [FormField], authToken: String) -> Bool {
        guard let header = header?.trimmingCharacters(in: .whitespaces),
              let mac = Data(base64Encoded: header), mac.count == Insecure.SHA1.byteCount else { return false }
        let text = twilioSignedText(url: url, parameters: parameters)
        return HMAC<Insecure.SHA1>.isValidAuthenticationCode(mac, authenticating: Array(text.utf8),
                                                             using: SymmetricKey(data: Array(authToken.utf8)))
    }

    // MARK: Tokens

    /// Compares two secrets in time that depends only on their lengths (Meta's verify token).
    public static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for i in 0..<x.count { difference |= x[i] ^ y[i] }
        return difference == 0
    }

    // MARK: Hex

    private static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func bytes(hex: Substring) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(hex.utf8.count / 2)
        var high: UInt8?
        for c in hex.utf8 {
            let v: UInt8
            switch c {
            case 0x30...0x39: v = c - 0x30
            case 0x41...0x46: v = c - 0x41 + 10
            case 0x61...0x66: v = c - 0x61 + 10
            default: return nil
            }
            if let h = high { out.append(h << 4 | v); high = nil } else { high = v }
        }
        return high == nil ? out : nil
    }
}
