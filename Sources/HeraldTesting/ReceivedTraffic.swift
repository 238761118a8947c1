import Foundation

/// One HTTP request as the double received it.
public struct ReceivedRequest: Sendable {
    /// Which API the path belongs to; nil for an unknown path (answered 404).
    public var endpoint: ProviderDouble.Endpoint?
    public var receivedAt: ContinuousClock.Instant
    public var receivedDate: Date
    public var method: String
    /// The path without the query, e.g. `/v21.0/1234/messages`.
    public var path: String
    public var query: String
    /// Header names lower-cased; a repeated header's values joined with `, `.
    public var headers: [String: String]
    public var body: [UInt8]
    /// The body parsed as JSON, when it is JSON.
    public var json: ReceivedJSON?
    /// The body parsed as `application/x-www-form-urlencoded`, when it is a form.
    public var form: [String: String]
    /// The client's port: one per connection.
    public var clientPort: Int?
    /// The status the double answered; nil while answering or when it closed the connection.
    public var responseStatus: Int?

    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    /// A header by name, case-insensitively.
    public func header(_ name: String) -> String? { headers[name.lowercased()] }
}

/// One mail as the SMTP server received it.
public struct ReceivedMail: Sendable {
    public var receivedAt: ContinuousClock.Instant
    public var receivedDate: Date
    /// The `EHLO`/`HELO` argument.
    public var clientName: String?
    /// The user that logged in, when AUTH was used.
    public var authenticatedUser: String?
    /// The `MAIL FROM` address, without angle brackets.
    public var mailFrom: String
    /// The accepted `RCPT TO` addresses, without angle brackets.
    public var recipients: [String]
    /// The message after dot-unstuffing, without the terminating `.` line, line endings as sent.
    public var data: [UInt8]
    /// The code the server answered the data with (250 accepted).
    public var replyCode: Int
    /// Whether the session was encrypted (implicit TLS, or after `STARTTLS`) when the mail came.
    public var tls: Bool

    public var text: String { String(decoding: data, as: UTF8.self) }
}
