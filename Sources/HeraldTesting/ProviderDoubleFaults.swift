import Foundation

/// How the double misbehaves on request: scripted answers for HTTP requests and mails.
extension ProviderDouble {
    /// An answer the double gives instead of (or before) its normal one: ``Fault`` for an HTTP
    /// request, ``MailFault`` for the end of a mail's data.
    public struct ScriptedAnswer<Action: Sendable>: Sendable {
        /// Waited before answering, on top of nothing else (the default latency is replaced).
        public var delay: Duration?
        public var action: Action

        public init(delay: Duration? = nil, action: Action) {
            self.delay = delay
            self.action = action
        }

        /// Wait, then answer as `then` says.
        public static func delayed(by delay: Duration, then: Self) -> Self {
            Self(delay: delay, action: then.action)
        }
    }

    /// How the double answers one HTTP request.
    public enum HTTPAction: Sendable {
        /// The normal answer (auth and validation still apply).
        case respond
        /// The provider's error shape with this code. `httpStatus` nil: the status the
        /// provider uses for the code (Meta 400 for most, 429 for throttling; Twilio 400).
        case providerError(code: Int, httpStatus: Int?, message: String?)
        /// 429 in the provider's shape (Meta 130429, Twilio 20429), `Retry-After` when given.
        case rateLimited(retryAfter: Int?)
        /// A 5xx in the provider's shape.
        case serverError(status: Int)
        /// Exactly this answer.
        case raw(status: Int, headers: [String: String], body: String)
        /// Close the connection without answering: the request arrived, the client learns
        /// nothing (an ambiguous failure).
        case closeConnection
    }

    /// How the SMTP server answers the end of one mail's data.
    public enum MailAction: Sendable {
        case accept
        /// Refuse the data with this code (4xx temporary, 5xx permanent).
        case reply(code: Int, message: String)
        /// Close the connection instead of answering the data.
        case closeConnection
    }

    /// How the double answers one HTTP request, instead of (or before) its normal answer.
    public typealias Fault = ScriptedAnswer<HTTPAction>
    /// How the SMTP server answers the end of one mail's data.
    public typealias MailFault = ScriptedAnswer<MailAction>
}

extension ProviderDouble.ScriptedAnswer where Action == ProviderDouble.HTTPAction {
    /// The normal answer.
    public static var succeed: Self { Self(action: .respond) }
    /// A 5xx in the provider's error shape.
    public static func serverError(_ status: Int = 500) -> Self { Self(action: .serverError(status: status)) }
    /// 429 in the provider's error shape.
    public static func rateLimited(retryAfter: Int? = nil) -> Self { Self(action: .rateLimited(retryAfter: retryAfter)) }
    /// The provider's error shape, e.g. `.error(code: 131026)` or `.error(code: 21211)`.
    public static func error(code: Int, status: Int? = nil, message: String? = nil) -> Self {
        Self(action: .providerError(code: code, httpStatus: status, message: message))
    }
    /// Exactly this answer.
    public static func raw(status: Int, headers: [String: String] = ["Content-Type": "application/json"],
                           body: String) -> Self {
        Self(action: .raw(status: status, headers: headers, body: body))
    }
    /// Close the connection without answering.
    public static var closeConnection: Self { Self(action: .closeConnection) }
    /// Wait, then give the normal answer.
    public static func delayed(by delay: Duration) -> Self { delayed(by: delay, then: .succeed) }
}

extension ProviderDouble.ScriptedAnswer where Action == ProviderDouble.MailAction {
    /// Take the mail.
    public static var accept: Self { Self(action: .accept) }
    /// Refuse the data with `code` (4xx temporary, 5xx permanent) and a default text for its class.
    public static func reply(_ code: Int, _ message: String? = nil) -> Self {
        Self(action: .reply(code: code, message: message ?? (code < 500 ? "4.3.0 Try again later" : "5.7.1 Message rejected")))
    }
    /// Close the connection instead of answering the data.
    public static var closeConnection: Self { Self(action: .closeConnection) }
    /// Wait, then take the mail.
    public static func delayed(by delay: Duration) -> Self { delayed(by: delay, then: .accept) }
}
