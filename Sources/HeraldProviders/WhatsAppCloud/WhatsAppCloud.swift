import Foundation
import HeraldTransport

/// Meta's WhatsApp Cloud API: the send request and the classification of its answer.
public enum WhatsAppCloud {
    /// Builds `POST {base_url}/{phone_number_id}/messages` for a template or text message.
    ///
    /// The body, byte for byte (keys in this order; no `components` when there are no parameters):
    /// ```
    /// {"messaging_product":"whatsapp","recipient_type":"individual","to":"+2348031234567",
    ///  "type":"template","template":{"name":"promo","language":{"code":"en_US"},
    ///  "components":[{"type":"body","parameters":[{"type":"text","text":"Ada"}]}]},
    ///  "biz_opaque_callback_data":"42"}
    /// ```
    /// or `"type":"text","text":{"preview_url":false,"body":"…"}`, or a media message
    /// `"type":"image","image":{"link":"https://…","caption":"…"}` (`id` instead of `link` for an
    /// upload at Meta; `filename` for a document; no caption for audio). A template's header and
    /// buttons: see ``writeComponents(parameters:header:buttons:to:)``. `biz_opaque_callback_data` carries
    /// Herald's message id, which Meta echoes in status webhooks.
    ///
    /// - Parameters:
    ///   - message: A message with `.whatsAppTemplate`, `.whatsAppText` or `.whatsAppMedia` content; `to` is sent as
    ///     given (Meta accepts `+E.164` or digits).
    ///   - settings: The channel's settings.
    ///   - credentials: The channel's resolved secrets.
    ///   - timeout: Whole-transfer timeout.
    /// - Throws: ``MessageBuildError`` for SMS or email content.
    public static func request(for message: OutgoingMessage, settings: WhatsAppCloudSettings,
                               credentials: WhatsAppCloudCredentials,
                               timeout: Duration = .seconds(15)) throws(MessageBuildError) -> HTTPRequest {
        HTTPRequest(
            method: "POST",
            url: "\(settings.baseURL)/\(settings.phoneNumberID)/messages",
            headers: [
                ("Authorization", "Bearer \(credentials.accessToken)"),
                ("Content-Type", "application/json"),
            ],
            body: try body(for: message),
            timeout: timeout)
    }

    /// The messages that carry `message` on WhatsApp, in order: the message itself, except an
    /// audio with a non-empty caption, which Meta refuses (audio takes no caption: error 131009).
    /// That goes as the audio alone, then the caption as a text message. Both carry Herald's
    /// message id in `biz_opaque_callback_data`, so both parts' status webhooks find the message.
    public static func parts(of message: OutgoingMessage) -> [OutgoingMessage] {
        guard case .whatsAppMedia(let media, let caption?) = message.content, media.kind == .audio,
              !caption.isEmpty else { return [message] }
        var audio = message, text = message
        audio.content = .whatsAppMedia(media, caption: nil)
        text.content = .whatsAppText(body: caption)
        return [audio, text]
    }

    /// The JSON body of the send request; see ``request(for:settings:credentials:timeout:)``.
    ///
    /// - Throws: ``MessageBuildError`` for SMS or email content.
    public static func body(for message: OutgoingMessage) throws(MessageBuildError) -> [UInt8] {
        var json = JSONWriter()
        json.raw(#"{"messaging_product":"whatsapp","recipient_type":"individual","to":"#)
        json.string(message.to)
        switch message.content {
        case .whatsAppTemplate(let name, let language, let parameters, let header, let buttons):
            json.raw(#","type":"template","template":{"name":"#)
            json.string(name)
            json.raw(#","language":{"code":"#)
            json.string(language)
            json.raw("}")
            writeComponents(parameters: parameters, header: header, buttons: buttons, to: &json)
            json.raw("}")
        case .whatsAppText(let body):
            json.raw(#","type":"text","text":{"preview_url":false,"body":"#)
            json.string(body)
            json.raw("}")
        case .whatsAppMedia(let media, let caption):
            json.raw(#","type":"#)
            json.string(media.kind.rawValue)
            json.raw(",")
            json.string(media.kind.rawValue)
            json.raw(":")
            writeMediaObject(media, caption: media.kind == .audio ? nil : caption, to: &json)
        case .sms, .email:
            throw MessageBuildError("whatsapp_cloud sends only WhatsApp template, text or media content")
        }
        json.raw(#","biz_opaque_callback_data":"#)
        json.string(String(message.messageID))
        json.raw("}")
        return json.bytes
    }

    /// A template's `components`, in Meta's order (header, body, buttons); none at all when no
    /// component takes a value.
    ///
    /// ```
    /// "components":[
    ///  {"type":"header","parameters":[{"type":"image","image":{"link":"https://…"}}]},
    ///  {"type":"body","parameters":[{"type":"text","text":"Ada"}]},
    ///  {"type":"button","sub_type":"url","index":"0","parameters":[{"type":"text","text":"A1"}]},
    ///  {"type":"button","sub_type":"quick_reply","index":"1","parameters":[{"type":"payload","payload":"stop"}]},
    ///  {"type":"button","sub_type":"copy_code","index":"2","parameters":[{"type":"coupon_code","coupon_code":"X"}]}]
    /// ```
    /// A text header's value is `{"type":"text","text":…}`; a media header's is its kind with
    /// `link` or `id` (and `filename` for a document). Meta takes `index` as a string.
    private static func writeComponents(parameters: [String], header: WhatsAppTemplateHeader?,
                                        buttons: [WhatsAppTemplateButton], to json: inout JSONWriter) {
        guard header != nil || !parameters.isEmpty || !buttons.isEmpty else { return }
        json.raw(#","components":["#)
        var first = true
        func separate(_ json: inout JSONWriter) {
            if !first { json.raw(",") }
            first = false
        }
        if let header {
            separate(&json)
            json.raw(#"{"type":"header","parameters":["#)
            switch header {
            case .text(let text):
                json.raw(#"{"type":"text","text":"#)
                json.string(text)
                json.raw("}")
            case .media(let media):
                json.raw(#"{"type":"#)
                json.string(media.kind.rawValue)
                json.raw(",")
                json.string(media.kind.rawValue)
                json.raw(":")
                writeMediaObject(media, caption: nil, to: &json)
                json.raw("}")
            }
            json.raw("]}")
        }
        if !parameters.isEmpty {
            separate(&json)
            json.raw(#"{"type":"body","parameters":["#)
            for (index, parameter) in parameters.enumerated() {
                if index > 0 { json.raw(",") }
                json.raw(#"{"type":"text","text":"#)
                json.string(parameter)
                json.raw("}")
            }
            json.raw("]}")
        }
        for button in buttons {
            separate(&json)
            json.raw(#"{"type":"button","sub_type":"#)
            json.string(button.kind.rawValue)
            json.raw(#","index":"#)
            json.string(String(button.index))
            json.raw(#","parameters":[{"type":"#)
            let parameterType = switch button.kind {
            case .url: "text"
            case .quickReply: "payload"
            case .copyCode: "coupon_code"
            }
            json.string(parameterType)
            json.raw(",")
            json.string(parameterType)
            json.raw(":")
            json.string(button.value)
            json.raw("}]}")
        }
        json.raw("]")
    }

    /// `{"link":…}` or `{"id":…}`, then `caption` when given, then `filename` for a document.
    private static func writeMediaObject(_ media: OutgoingMedia, caption: String?, to json: inout JSONWriter) {
        switch media.source {
        case .link(let url):
            json.raw(#"{"link":"#)
            json.string(url)
        case .whatsAppMediaID(let id):
            json.raw(#"{"id":"#)
            json.string(id)
        }
        if let caption, !caption.isEmpty {
            json.raw(#","caption":"#)
            json.string(caption)
        }
        if media.kind == .document, let filename = media.filename, !filename.isEmpty {
            json.raw(#","filename":"#)
            json.string(filename)
        }
        json.raw("}")
    }

    /// Error codes that mean "too fast": retried later, and the channel should slow down.
    /// 4, 17, 32, 613: Graph API call limits; 80004, 80007: WhatsApp Business Account rate
    /// limits; 130429: Cloud API throughput; 131048: spam rate limit.
    public static let rateLimitCodes: Set<Int> = [4, 17, 32, 613, 80004, 80007, 130429, 131048]

    /// 131056: the same business/consumer pair was messaged too often. A limit on one
    /// recipient, not on the phone number: the message is retried, no sooner than
    /// ``pairRateLimitPause``, while the channel goes on sending to everyone else (pausing the
    /// whole channel for one contact who also got another broadcast would stall them all).
    public static let pairRateLimitCode = 131056

    /// The least wait before retrying after a pair rate limit: Meta allows about one message
    /// every 6 seconds to the same recipient once its burst allowance is used up.
    public static let pairRateLimitPause: Duration = .seconds(6)

    /// 132015 (template paused for low quality) and 132016 (template disabled after repeated
    /// pauses): Meta refuses every send of the template, the message itself is fine. Classified
    /// as a retry, so the message goes back to its job; migration 0014 then pauses the broadcast
    /// with the reason (contract section 4) and does not count the attempt, so the message goes
    /// out when the broadcast is resumed after Meta approves the template again.
    public static let templateUnavailableCodes: Set<Int> = [132015, 132016]

    /// Error codes that mean a temporary failure at Meta: retried later.
    /// 1, 2: Graph API unknown / service error; 131000–131002: something went wrong; 131016:
    /// service unavailable; 131057: account in maintenance mode; 133004: server temporarily
    /// unavailable.
    public static let transientCodes: Set<Int> = [1, 2, 131000, 131001, 131002, 131016, 131057, 133004]

    /// Classifies Meta's answer to a send request.
    ///
    /// Decides by the Graph API `error.code` rather than the HTTP status (Meta answers most errors
    /// with 400, whatever their nature):
    /// - 2xx with `messages[0].id` → ``DeliveryOutcome/accepted(providerMessageID:)``.
    /// - 2xx without it → permanent. Meta took the request, so a retry could send the message twice;
    ///   the failure is recorded, with the reason, for an analyst to see rather than risking spam.
    /// - a code in ``rateLimitCodes`` → retry, `rateLimited`; in ``transientCodes`` → retry;
    ///   ``pairRateLimitCode`` → retry after at least ``pairRateLimitPause``, not `rateLimited`;
    ///   ``templateUnavailableCodes`` → retry (the broadcast pauses; see there).
    /// - any other code → permanent (e.g. 131047 outside the 24-hour window, 131026 undeliverable,
    ///   131051 unsupported type, 132000/132001 template parameters / template missing, 100 bad
    ///   parameter, 190 expired token), unless Meta flags it `is_transient`, or answered 429 or 5xx.
    /// - no readable error: 429 → retry rate-limited; 408 → retry; 5xx → retry (ambiguous, since a
    ///   gateway may have forwarded the request, except 503); others → permanent.
    ///
    /// A `Retry-After` header (seconds or HTTP-date) becomes the outcome's `retryAfter`.
    ///
    /// - Parameters:
    ///   - response: The HTTP answer.
    ///   - now: The current time, to measure an HTTP-date `Retry-After` against.
    public static func classify(_ response: HTTPResponse, now: Date = Date()) -> DeliveryOutcome {
        if (200...299).contains(response.status) {
            // The answer to almost every send: only `messages[0].id` is built from the document
            // (which is still checked whole), without a JSONValue or a look at the headers.
            if let found = try? WebhookJSON.value(at: [.key("messages"), .index(0), .key("id")], in: response.body),
               let id = found.string, !id.isEmpty {
                return .accepted(providerMessageID: id)
            }
            return .permanent(code: nil, message: "provider answered \(response.status) without a message id")
        }
        let json = JSONValue.parse(response.body)
        let retryAfter = response.headers["retry-after"].flatMap { RetryAfter.parse($0, now: now) }

        if let error = json?["error"], let code = error["code"]?.integerValue {
            let text = describe(error) ?? "HTTP \(response.status)"
            let codeString = String(code)
            if code == pairRateLimitCode {
                let wait = max(retryAfter ?? .zero, pairRateLimitPause)
                return .retry(code: codeString, message: text, retryAfter: wait, ambiguous: false, rateLimited: false)
            }
            if rateLimitCodes.contains(code) {
                return .retry(code: codeString, message: text, retryAfter: retryAfter, ambiguous: false, rateLimited: true)
            }
            if templateUnavailableCodes.contains(code) {
                return .retry(code: codeString, message: text, retryAfter: retryAfter, ambiguous: false, rateLimited: false)
            }
            if transientCodes.contains(code) || error["is_transient"]?.boolValue == true
                || (response.status >= 500 && !permanentCodes.contains(code)) {
                return .retry(code: codeString, message: text, retryAfter: retryAfter, ambiguous: false, rateLimited: false)
            }
            if response.status == 429 && !permanentCodes.contains(code) {
                return .retry(code: codeString, message: text, retryAfter: retryAfter, ambiguous: false, rateLimited: true)
            }
            return .permanent(code: codeString, message: text)
        }

        return classifyBareStatus(response, retryAfter: retryAfter)
    }

    /// Codes known to be final, so that neither a 5xx nor a 429 status turns them into retries.
    static let permanentCodes: Set<Int> = [
        0, 3, 10, 100, 190, 200, 368, 130472, 131005, 131008, 131009, 131021, 131026, 131030, 131031, 131042,
        131045, 131047, 131049, 131050, 131051, 131052, 131053, 132000, 132001, 132005, 132007,
        132012, 133000, 133010, 135000,
    ]

    /// `error.message`, plus `error.error_data.details` when that says more.
    private static func describe(_ error: JSONValue) -> String? {
        let message = error["message"]?.stringValue.map(Text.clip)
        let details = error["error_data"]?["details"]?.stringValue.map(Text.clip)
        switch (message, details) {
        case (let m?, let d?) where !d.isEmpty && d != m: return Text.clip("\(m): \(d)")
        case (let m?, _): return m
        case (nil, let d?): return d
        case (nil, nil): return nil
        }
    }
}

/// Classification of an HTTP status whose body says nothing usable.
func classifyBareStatus(_ response: HTTPResponse, retryAfter: Duration?) -> DeliveryOutcome {
    let code = "http \(response.status)"
    let snippet = Text.snippet(response.body)
    let message = snippet.isEmpty ? "HTTP \(response.status)" : "HTTP \(response.status): \(snippet)"
    switch response.status {
    case 429:
        return .retry(code: code, message: message, retryAfter: retryAfter, ambiguous: false, rateLimited: true)
    case 408:
        return .retry(code: code, message: message, retryAfter: retryAfter, ambiguous: false, rateLimited: false)
    case 503:
        return .retry(code: code, message: message, retryAfter: retryAfter, ambiguous: false, rateLimited: false)
    case 500...599:
        return .retry(code: code, message: message, retryAfter: retryAfter, ambiguous: true, rateLimited: false)
    default:
        return .permanent(code: code, message: message)
    }
}

/// Short, single-line texts for outcome messages.
enum Text {
    static let limit = 300

    /// `text` on one line (runs of whitespace become one space), at most ``limit`` characters.
    static func clip(_ text: String) -> String {
        var out = ""
        var pendingSpace = false
        for character in text {
            if character.isWhitespace {
                pendingSpace = !out.isEmpty
                continue
            }
            if pendingSpace { out.append(" "); pendingSpace = false }
            if out.count >= limit { out.append("…"); break }
            out.append(character)
        }
        return out
    }

    /// The start of a response body, when it is text.
    static func snippet(_ body: [UInt8]) -> String {
        clip(String(decoding: body.prefix(600), as: UTF8.self))
    }
}
