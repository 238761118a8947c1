/// Value types shared by Herald's libcurl-based transport and the providers that build requests.
/// They carry no libcurl types, so providers can be tested without the network.

/// One HTTP request, fully described: method, absolute URL, headers and body.
public struct HTTPRequest: Sendable, Equatable {
    public var method: String
    public var url: String
    /// Header lines in order, e.g. `("Content-Type", "application/json")`.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Basic auth credentials (libcurl's `CURLOPT_USERNAME`/`CURLOPT_PASSWORD`).
    public var basicAuth: (user: String, password: String)?
    /// Whole-transfer timeout.
    public var timeout: Duration

    public init(method: String = "POST", url: String, headers: [(name: String, value: String)] = [],
                body: [UInt8] = [], basicAuth: (user: String, password: String)? = nil,
                timeout: Duration = .seconds(15)) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.basicAuth = basicAuth
        self.timeout = timeout
    }

    public static func == (a: HTTPRequest, b: HTTPRequest) -> Bool {
        a.method == b.method && a.url == b.url && a.body == b.body && a.timeout == b.timeout
            && a.headers.map { "\($0.name): \($0.value)" } == b.headers.map { "\($0.name): \($0.value)" }
            && a.basicAuth?.user == b.basicAuth?.user && a.basicAuth?.password == b.basicAuth?.password
    }
}

/// A complete HTTP answer.
public struct HTTPResponse: Sendable, Equatable {
    public var status: Int
    /// Header names lower-cased; the last value wins when a header repeats.
    public var headers: [String: String]
    public var body: [UInt8]

    public init(status: Int, headers: [String: String] = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }
}

/// One mail to hand to an SMTP server.
public struct SMTPEnvelope: Sendable, Equatable {
    /// `smtp://host:port` (STARTTLS when offered) or `smtps://host:port` (implicit TLS).
    public var url: String
    public var mailFrom: String
    public var recipients: [String]
    /// The full RFC 5322 message, CRLF line endings.
    public var message: [UInt8]
    public var username: String?
    public var password: String?
    /// Refuse to send unless the connection is encrypted (`CURLUSESSL_ALL`).
    public var requireTLS: Bool
    public var timeout: Duration

    public init(url: String, mailFrom: String, recipients: [String], message: [UInt8],
                username: String? = nil, password: String? = nil, requireTLS: Bool = false,
                timeout: Duration = .seconds(30)) {
        self.url = url
        self.mailFrom = mailFrom
        self.recipients = recipients
        self.message = message
        self.username = username
        self.password = password
        self.requireTLS = requireTLS
        self.timeout = timeout
    }
}

/// Why a transfer did not produce a response. The distinction matters to retries: when the
/// request provably never reached the server, a retry cannot duplicate the message.
public struct TransportError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        /// DNS failure, connection refused, TLS handshake failure: nothing was sent.
        case notSent = "not_sent"
        /// Timeout or reset after the request may have gone out: the server may have acted on it.
        case ambiguous
        /// The SMTP server answered with a code (see ``smtpCode``).
        case smtpRejected = "smtp_rejected"
    }
    public var kind: Kind
    /// libcurl's `CURLcode`, when it came from libcurl.
    public var curlCode: Int32
    /// SMTP reply code from the server, when known (4xx temporary, 5xx permanent).
    public var smtpCode: Int?
    public var message: String

    public init(kind: Kind, curlCode: Int32, smtpCode: Int? = nil, message: String) {
        self.kind = kind
        self.curlCode = curlCode
        self.smtpCode = smtpCode
        self.message = message
    }

    public var description: String { "\(kind.rawValue): \(message)" }
}
