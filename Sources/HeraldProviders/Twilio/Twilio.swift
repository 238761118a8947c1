import Foundation
import HeraldTransport

/// Twilio Programmable Messaging (SMS): the send request and the classification of its answer.
public enum Twilio {
    /// Builds `POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json` with basic auth
    /// (account SID, auth token) and a form body with, in order, `To`, `From` (when set),
    /// `MessagingServiceSid` (when set), `Body`, one `MediaUrl` per media item (an MMS, at most
    /// ``maxMediaURLs``, in the broadcast's order) and `StatusCallback` (when known).
    ///
    /// `StatusCallback` carries Herald's message id as the query parameter
    /// ``messageIDParameter`` (see ``statusCallback(_:messageID:)``): Twilio posts every status of
    /// the message to that URL exactly as given, so a receipt finds its message by primary key.
    ///
    /// - Parameters:
    ///   - message: A message with `.sms` content; `to` is sent as given (E.164).
    ///   - settings: The channel's settings.
    ///   - credentials: The channel's resolved secrets.
    ///   - publicURL: `HERALD_PUBLIC_URL`, used for `StatusCallback` when the channel sets no
    ///     `status_callback_url` (see ``TwilioSettings/statusCallback(publicURL:)``).
    ///   - timeout: Whole-transfer timeout.
    /// - Throws: ``MessageBuildError`` for content other than SMS.
    public static func request(for message: OutgoingMessage, settings: TwilioSettings,
                               credentials: TwilioCredentials, publicURL: String? = nil,
                               timeout: Duration = .seconds(15)) throws(MessageBuildError) -> HTTPRequest {
        guard case .sms(let body, let mediaURLs) = message.content else {
            throw MessageBuildError("twilio sends only SMS content")
        }
        guard mediaURLs.count <= maxMediaURLs else {
            throw MessageBuildError("twilio takes at most \(maxMediaURLs) media URLs in one message, not \(mediaURLs.count)")
        }
        var fields: [(String, String)] = [("To", message.to)]
        if let from = settings.sender.from { fields.append(("From", from)) }
        if let service = settings.sender.messagingServiceSID { fields.append(("MessagingServiceSid", service)) }
        fields.append(("Body", body))
        for url in mediaURLs { fields.append(("MediaUrl", url)) }
        if let callback = settings.statusCallback(publicURL: publicURL) {
            fields.append(("StatusCallback", statusCallback(callback, messageID: message.messageID)))
        }
        return HTTPRequest(
            method: "POST",
            url: "\(settings.baseURL)/2010-04-01/Accounts/\(settings.accountSID)/Messages.json",
            headers: [("Content-Type", "application/x-www-form-urlencoded")],
            body: FormEncoding.encode(fields),
            basicAuth: (user: settings.accountSID, password: credentials.authToken),
            timeout: timeout)
    }

    /// Twilio takes at most 10 `MediaUrl`s per message.
    public static let maxMediaURLs = 10

    /// The query parameter of `StatusCallback` that carries Herald's message id.
    public static let messageIDParameter = "herald_message_id"

    /// `url` with Herald's message id added as ``messageIDParameter`` (after `&` when the URL
    /// already has a query, else `?`).
    public static func statusCallback(_ url: String, messageID: Int64) -> String {
        url + (url.contains("?") ? "&" : "?") + messageIDParameter + "=" + String(messageID)
    }

    /// Classifies Twilio's answer to a create-message request.
    ///
    /// - 200/201 with `sid` → ``DeliveryOutcome/accepted(providerMessageID:)``; without one →
    ///   permanent (Twilio took the request; a retry could send it twice).
    /// - 429, or code 20429 (too many requests) or 14107 (SMS rate limit) → retry, `rateLimited`.
    /// - 5xx → retry (ambiguous, except 503: Twilio may have created the message before failing).
    /// - other 4xx → permanent with Twilio's code, e.g. 21211 (invalid `To`), 21610 (recipient
    ///   replied STOP), 21408 (region not enabled), 20003 (authentication).
    ///
    /// A `Retry-After` header (seconds or HTTP-date) becomes the outcome's `retryAfter`.
    ///
    /// - Parameters:
    ///   - response: The HTTP answer.
    ///   - now: The current time, to measure an HTTP-date `Retry-After` against.
    public static func classify(_ response: HTTPResponse, now: Date = Date()) -> DeliveryOutcome {
        if (200...299).contains(response.status) {
            // The common answer: only the sid is built from the document (no JSONValue, no headers).
            if let found = try? WebhookJSON.value(at: [.key("sid")], in: response.body), let sid = found.string, !sid.isEmpty {
                return .accepted(providerMessageID: sid)
            }
            return .permanent(code: nil, message: "provider answered \(response.status) without a message sid")
        }
        let json = JSONValue.parse(response.body)
        let retryAfter = response.headers["retry-after"].flatMap { RetryAfter.parse($0, now: now) }

        guard let code = json?["code"]?.integerValue else {
            return classifyBareStatus(response, retryAfter: retryAfter)
        }
        let codeString = String(code)
        let message = json?["message"]?.stringValue.map(Text.clip) ?? "HTTP \(response.status)"
        if response.status == 429 || rateLimitCodes.contains(code) {
            return .retry(code: codeString, message: message, retryAfter: retryAfter, ambiguous: false, rateLimited: true)
        }
        if response.status >= 500 {
            return .retry(code: codeString, message: message, retryAfter: retryAfter,
                          ambiguous: response.status != 503, rateLimited: false)
        }
        return .permanent(code: codeString, message: message)
    }

    /// Twilio error codes that mean "too fast": 20429 (too many requests), 14107 (SMS rate limit).
    public static let rateLimitCodes: Set<Int> = [20429, 14107]
}

/// `application/x-www-form-urlencoded` serialization (WHATWG URL standard §5.2).
enum FormEncoding {
    /// `name=value&…`, each side UTF-8 percent-encoded: `A–Z a–z 0–9 * - . _` stay as they are,
    /// space becomes `+`, every other byte `%XX` (upper-case hex).
    static func encode(_ fields: [(String, String)]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(fields.reduce(0) { $0 + $1.0.utf8.count + $1.1.utf8.count + 2 } * 2)
        for (index, (name, value)) in fields.enumerated() {
            if index > 0 { out.append(UInt8(ascii: "&")) }
            append(name, to: &out)
            out.append(UInt8(ascii: "="))
            append(value, to: &out)
        }
        return out
    }

    private static let hex: [UInt8] = Array("0123456789ABCDEF".utf8)

    private static func append(_ text: String, to out: inout [UInt8]) {
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "*"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"):
                out.append(byte)
            case UInt8(ascii: " "):
                out.append(UInt8(ascii: "+"))
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0F)])
            }
        }
    }
}
