import Foundation
import HeraldCore
import HeraldTransport

/// One message ready to send: addressed and fully rendered (personalization already applied).
public struct OutgoingMessage: Sendable, Equatable {
    /// Herald's own message id; echoed to the provider where it allows (WhatsApp's
    /// `biz_opaque_callback_data`, the mail's `X-Herald-Message-ID`).
    public var messageID: Int64
    /// E.164 phone number (`+2348031234567`) or email address.
    public var to: String
    public var content: Content

    /// What to send.
    public enum Content: Sendable, Equatable {
        /// An approved WhatsApp template with its body parameters (`{{1}}`, `{{2}}`, … in order),
        /// its header's value when the header takes one (a text header's placeholder, a media
        /// header's file), and the values of the buttons that take one, in button order.
        case whatsAppTemplate(name: String, language: String, parameters: [String],
                              header: WhatsAppTemplateHeader? = nil, buttons: [WhatsAppTemplateButton] = [])
        /// Free-form WhatsApp text (only inside the 24-hour customer service window).
        case whatsAppText(body: String)
        /// A free-form WhatsApp media message (only inside the 24-hour window); `caption` for an
        /// image, video or document (audio takes none).
        case whatsAppMedia(OutgoingMedia, caption: String?)
        /// An SMS, or an MMS when `mediaURLs` is not empty (at most 10).
        case sms(body: String, mediaURLs: [String] = [])
        /// A mail; with `html` it becomes `multipart/alternative`. `unsubscribeURL` is the rendered,
        /// per-contact URL for `List-Unsubscribe`. With `attachments` the mail is `multipart/mixed`:
        /// the text (or the alternative) first, then each file.
        case email(subject: String, text: String, html: String?, unsubscribeURL: String?, attachments: [MailAttachment] = [])
    }

    public init(messageID: Int64, to: String, content: Content) {
        self.messageID = messageID
        self.to = to
        self.content = content
    }
}

/// A message could not be turned into a provider request: wrong content for the provider, or an
/// address or header value that cannot be written safely.
public struct MessageBuildError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// What became of one send attempt, as far as the provider's answer tells.
public enum DeliveryOutcome: Sendable, Equatable {
    /// The provider took the message; later receipts refer to it by `providerMessageID`.
    case accepted(providerMessageID: String)
    /// Worth another attempt later.
    ///
    /// - `code`: the provider's error code (`"130429"`, `"20429"`, `"smtp 451"`), when it gave one.
    /// - `retryAfter`: how long the provider asked us to wait (`Retry-After`), when it did.
    /// - `ambiguous`: the provider may have acted on the request (timeout after sending, a gateway
    ///   error); retrying risks a duplicate. See ``applying(retryAmbiguous:)``.
    /// - `rateLimited`: a throughput limit; the caller should slow the whole channel down, not just
    ///   back off this message.
    case retry(code: String?, message: String, retryAfter: Duration?, ambiguous: Bool, rateLimited: Bool)
    /// Retrying cannot help: the message fails for good.
    case permanent(code: String?, message: String)

    /// Turns an ambiguous retry into a permanent failure when the channel's `retry_ambiguous` is
    /// false (the operator prefers a lost message to a possible duplicate). Other outcomes pass.
    public func applying(retryAmbiguous: Bool) -> DeliveryOutcome {
        if !retryAmbiguous, case .retry(let code, let message, _, true, _) = self {
            return .permanent(code: code, message: message + " (not retried: the provider may have received it)")
        }
        return self
    }

    /// Classifies an HTTP transfer that produced no response.
    ///
    /// `notSent` (DNS, refused connection, TLS handshake) retries without risk; `ambiguous`
    /// (timeout or reset after the request may have left) retries with `ambiguous: true`. An
    /// `smtpRejected` error is classified by ``SMTP/classify(_:messageID:)``'s rules.
    public static func classify(transportError error: TransportError) -> DeliveryOutcome {
        switch error.kind {
        case .notSent:
            .retry(code: nil, message: "not sent: \(error.message)", retryAfter: nil, ambiguous: false, rateLimited: false)
        case .ambiguous:
            .retry(code: nil, message: "no answer: \(error.message)", retryAfter: nil, ambiguous: true, rateLimited: false)
        case .smtpRejected:
            SMTP.classifyRejection(error)
        }
    }
}

/// Parsing of the HTTP `Retry-After` header (RFC 9110 §10.2.3).
public enum RetryAfter {
    /// The wait a `Retry-After` value asks for: delay-seconds (`120`) or an HTTP-date
    /// (`Wed, 21 Oct 2015 07:28:00 GMT`, also the obsolete RFC 850 and asctime forms) measured
    /// from `now`. A date in the past gives zero; an unreadable value gives nil.
    ///
    /// **Bounded.** The header comes from outside: the result is clamped to `0...maximum` (one hour
    /// by default), so `Retry-After: 9999999999999` means "an hour", never an overflow when the
    /// retry time is computed or written, nor a channel paused until the year 2343. Nothing here
    /// converts without a bound.
    ///
    /// - Parameters:
    ///   - value: The header value.
    ///   - now: The current time (injected for tests).
    ///   - maximum: The longest wait honoured (default ``Duration/defaultMaximumWait``, one hour).
    public static func parse(_ value: String, now: Date, maximum: Duration = .defaultMaximumWait) -> Duration? {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { return nil }
        if trimmed.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            // An absurdly long number still means "much later", not "unreadable".
            guard let seconds = Int64(trimmed) else { return Swift.max(maximum, .zero) }
            return .clampedSeconds(Double(seconds), max: maximum)
        }
        guard let date = HTTPDate.parse(trimmed) else { return nil }
        let nowSeconds = now.timeIntervalSince1970
        guard nowSeconds.isFinite else { return nil }
        return .clampedSeconds((Double(date) - nowSeconds).rounded(.up), max: maximum)
    }
}
