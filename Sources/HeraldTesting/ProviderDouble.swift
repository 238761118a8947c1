import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import Synchronization

/// A stand-in for the providers Herald talks to, on 127.0.0.1 with free ports, speaking their
/// real wire formats: Meta's WhatsApp Cloud API and Twilio's Messages API over HTTP, and SMTP.
///
/// It records everything it receives and can be told, while running, to misbehave: scripted
/// answers per endpoint (5xx, 429 with `Retry-After`, a provider error code, latency, a closed
/// connection), rejections of particular recipients, a default latency.
///
/// ```swift
/// let double = try await ProviderDouble.start()
/// defer { Task { await double.stop() } }  // or `await double.stop()` at the end of the test
/// double.enqueue(.rateLimited(retryAfter: 2), for: .whatsApp)
/// double.reject(recipient: "+2348030000000", on: .whatsApp, with: .error(code: 131026))
/// // point a channel's base_url at "\(double.baseURL)/v21.0" (WhatsApp) or double.baseURL (Twilio)
/// ```
///
/// - Important: Call ``stop()`` when done.
public final class ProviderDouble: Sendable {
    /// Credentials and identities the double accepts.
    public struct Configuration: Sendable {
        /// The bearer token Meta requests must carry.
        public var whatsAppAccessToken: String
        /// When set, only this phone number id is known; others get Meta's "does not exist" error.
        public var whatsAppPhoneNumberID: String?
        /// The Twilio account: the URL's `AccountSid` and the basic-auth user.
        public var twilioAccountSID: String
        /// The basic-auth password.
        public var twilioAuthToken: String
        /// When both are set the SMTP server offers `AUTH PLAIN LOGIN` and requires a login
        /// before `MAIL FROM`; otherwise it offers no AUTH and takes mail from anyone.
        public var smtpUsername: String?
        public var smtpPassword: String?
        /// The name in the SMTP greeting.
        public var smtpHostname: String
        /// Whether and how the SMTP server speaks TLS, with ``TestCertificates``.
        public var smtpTLS: SMTPTLS

        public init(whatsAppAccessToken: String = "test-access-token",
                    whatsAppPhoneNumberID: String? = nil,
                    twilioAccountSID: String = "AC00000000000000000000000000000001",
                    twilioAuthToken: String = "test-auth-token",
                    smtpUsername: String? = nil, smtpPassword: String? = nil,
                    smtpHostname: String = "double.herald.test", smtpTLS: SMTPTLS = .none) {
            self.whatsAppAccessToken = whatsAppAccessToken
            self.whatsAppPhoneNumberID = whatsAppPhoneNumberID
            self.twilioAccountSID = twilioAccountSID
            self.twilioAuthToken = twilioAuthToken
            self.smtpUsername = smtpUsername
            self.smtpPassword = smtpPassword
            self.smtpHostname = smtpHostname
            self.smtpTLS = smtpTLS
        }
    }

    /// How the SMTP server offers TLS. Its certificate is signed by
    /// ``TestCertificates/authorityPEM`` and names `127.0.0.1` and `localhost`.
    public enum SMTPTLS: Sendable, Equatable {
        /// Plain text only; `STARTTLS` is answered `454`.
        case none
        /// `STARTTLS` offered in the `EHLO` reply (RFC 3207), as on port 587.
        case startTLS
        /// TLS from the first byte (RFC 8314), as on port 465; ``smtpURL`` says `smtps://`.
        case implicit
    }

    /// An HTTP API the double imitates.
    public enum Endpoint: String, Sendable, Hashable, CaseIterable {
        /// `POST /{version}/{phone_number_id}/messages`
        case whatsApp = "whatsapp"
        /// `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`
        case twilio
    }

    /// How the double answers one HTTP request, instead of (or before) its normal answer.
    public struct Fault: Sendable {
        public enum Action: Sendable {
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

        /// Waited before answering, on top of nothing else (the default latency is replaced).
        public var delay: Duration?
        public var action: Action

        public init(delay: Duration? = nil, action: Action) {
            self.delay = delay
            self.action = action
        }

        /// The normal answer.
        public static let succeed = Fault(action: .respond)
        /// A 5xx in the provider's error shape.
        public static func serverError(_ status: Int = 500) -> Fault { Fault(action: .serverError(status: status)) }
        /// 429 in the provider's error shape.
        public static func rateLimited(retryAfter: Int? = nil) -> Fault { Fault(action: .rateLimited(retryAfter: retryAfter)) }
        /// The provider's error shape, e.g. `.error(code: 131026)` or `.error(code: 21211)`.
        public static func error(code: Int, status: Int? = nil, message: String? = nil) -> Fault {
            Fault(action: .providerError(code: code, httpStatus: status, message: message))
        }
        /// Exactly this answer.
        public static func raw(status: Int, headers: [String: String] = ["Content-Type": "application/json"],
                               body: String) -> Fault {
            Fault(action: .raw(status: status, headers: headers, body: body))
        }
        /// Close the connection without answering.
        public static let closeConnection = Fault(action: .closeConnection)
        /// Wait, then answer as `then` says.
        public static func delayed(by delay: Duration, then: Fault = .succeed) -> Fault {
            Fault(delay: delay, action: then.action)
        }
    }

    /// How the SMTP server answers the end of one mail's data.
    public struct MailFault: Sendable {
        public enum Action: Sendable {
            case accept
            /// Refuse the data with this code (4xx temporary, 5xx permanent).
            case reply(code: Int, message: String)
            /// Close the connection instead of answering the data.
            case closeConnection
        }

        public var delay: Duration?
        public var action: Action

        public init(delay: Duration? = nil, action: Action) {
            self.delay = delay
            self.action = action
        }

        public static let accept = MailFault(action: .accept)
        public static func reply(_ code: Int, _ message: String? = nil) -> MailFault {
            MailFault(action: .reply(code: code, message: message ?? (code < 500 ? "4.3.0 Try again later" : "5.7.1 Message rejected")))
        }
        public static let closeConnection = MailFault(action: .closeConnection)
        public static func delayed(by delay: Duration, then: MailFault = .accept) -> MailFault {
            MailFault(delay: delay, action: then.action)
        }
    }

    /// The double's configuration (credentials it accepts).
    public let configuration: Configuration
    /// `http://127.0.0.1:PORT`: Twilio's `base_url`; WhatsApp's is this plus a version, e.g. `/v21.0`.
    public let baseURL: String
    /// `smtp://127.0.0.1:PORT`, or `smtps://127.0.0.1:PORT` with implicit TLS.
    public let smtpURL: String
    /// The HTTP port.
    public let port: Int
    /// The SMTP port.
    public let smtpPort: Int

    let state: DoubleState
    private let http: Mutex<Task<Void, any Error>?>
    private let smtpServer: any Channel

    private init(configuration: Configuration, state: DoubleState, port: Int, smtpPort: Int,
                 http: Task<Void, any Error>, smtpServer: any Channel) {
        self.configuration = configuration
        self.state = state
        self.port = port
        self.smtpPort = smtpPort
        self.baseURL = "http://127.0.0.1:\(port)"
        self.smtpURL = "\(configuration.smtpTLS == .implicit ? "smtps" : "smtp")://127.0.0.1:\(smtpPort)"
        self.http = Mutex(http)
        self.smtpServer = smtpServer
    }

    deinit {
        http.withLock { $0?.cancel() }
        smtpServer.close(promise: nil)
    }

    /// Starts the HTTP and SMTP servers on free ports of 127.0.0.1.
    /// - Parameters:
    ///   - configuration: credentials the double accepts.
    ///   - logger: for the HTTP server; by default a logger that reports only errors.
    public static func start(configuration: Configuration = Configuration(), logger: Logger? = nil) async throws -> ProviderDouble {
        let state = DoubleState(configuration: configuration)
        var serverLogger = logger ?? Logger(label: "herald.provider-double")
        if logger == nil { serverLogger.logLevel = .critical }

        let (ports, portSink) = AsyncStream<Int>.makeStream()
        let responder = CallbackResponder<DoubleRequestContext> { request, context in
            await HTTPDouble.respond(to: request, context: context, state: state)
        }
        let app = Application(
            responder: responder,
            configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0), serverName: nil),
            onServerRunning: { channel in
                portSink.yield(channel.localAddress?.port ?? 0)
            },
            logger: serverLogger
        )
        // Owned by the double: `stop()` cancels and awaits it (deinit cancels it as a last resort).
        let task = Task<Void, any Error> {
            defer { portSink.finish() }
            try await app.runService(gracefulShutdownSignals: [])
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else {
            task.cancel()
            _ = await task.result
            throw DoubleStartError(message: "the HTTP server did not start")
        }

        let smtpServer: any Channel
        do {
            smtpServer = try await SMTPDouble.bind(state: state)
        } catch {
            task.cancel()
            _ = await task.result
            throw error
        }
        return ProviderDouble(configuration: configuration, state: state, port: port,
                              smtpPort: smtpServer.localAddress?.port ?? 0, http: task, smtpServer: smtpServer)
    }

    /// Stops both servers and closes open connections. Idempotent.
    public func stop() async {
        let task = http.withLock { task -> Task<Void, any Error>? in
            defer { task = nil }
            return task
        }
        if let task {
            task.cancel()
            _ = await task.result
        }
        try? await smtpServer.close()
        for child in state.withLock({ $0.smtpChannels.values }) {
            try? await child.close()
        }
    }

    // MARK: What was received

    /// Every HTTP request received, in arrival order.
    public func received() -> [ReceivedRequest] { state.withLock { $0.requests } }

    /// The HTTP requests received for one endpoint.
    public func received(_ endpoint: Endpoint) -> [ReceivedRequest] {
        state.withLock { $0.requests.filter { $0.endpoint == endpoint } }
    }

    /// Every mail the SMTP server took the data of (accepted or refused at the end), in order.
    public func receivedMails() -> [ReceivedMail] { state.withLock { $0.mails } }

    /// How many HTTP requests arrived.
    public var requestCount: Int { state.withLock { $0.requests.count } }

    /// How many mails were accepted (answered 250 after the data).
    public var acceptedMailCount: Int { state.withLock { $0.mails.filter { $0.replyCode == 250 }.count } }

    /// Distinct HTTP client connections seen (by client port): far fewer than ``requestCount``
    /// when the client keeps connections alive.
    public var httpConnectionCount: Int { state.withLock { $0.httpConnections.count } }

    /// SMTP connections accepted so far.
    public var smtpConnectionCount: Int { state.withLock { $0.smtpConnectionsAccepted } }

    /// Forgets received requests and mails (not the scripted faults).
    public func clearReceived() {
        state.withLock {
            $0.requests.removeAll()
            $0.mails.removeAll()
            $0.httpConnections.removeAll()
        }
    }

    /// Waits until at least `count` HTTP requests have arrived; false when `timeout` passes first.
    public func waitForRequests(_ count: Int, timeout: Duration = .seconds(10)) async -> Bool {
        await poll(timeout: timeout) { self.requestCount >= count }
    }

    /// Waits until at least `count` mails were received; false when `timeout` passes first.
    public func waitForMails(_ count: Int, timeout: Duration = .seconds(10)) async -> Bool {
        await poll(timeout: timeout) { self.receivedMails().count >= count }
    }

    private func poll(timeout: Duration, _ condition: () -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !condition() {
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return true
    }

    // MARK: Fault injection

    /// Latency before every HTTP answer that has no scripted delay of its own. Default zero.
    public var latency: Duration {
        get { state.withLock { $0.latency } }
        set { state.withLock { $0.latency = newValue } }
    }

    /// Latency before the SMTP server answers the end of a mail's data. Default zero.
    public var mailLatency: Duration {
        get { state.withLock { $0.mailLatency } }
        set { state.withLock { $0.mailLatency = newValue } }
    }

    /// The next requests to `endpoint` are answered by `faults`, one each, in order; after that,
    /// normally again.
    public func enqueue(_ faults: [Fault], for endpoint: Endpoint) {
        state.withLock { $0.scripts[endpoint, default: []].append(contentsOf: faults) }
    }

    /// The next `times` requests to `endpoint` are answered by `fault`.
    public func enqueue(_ fault: Fault, times: Int = 1, for endpoint: Endpoint) {
        enqueue(Array(repeating: fault, count: max(0, times)), for: endpoint)
    }

    /// Every request to `endpoint` for this recipient (`to`; compared by its digits) is answered
    /// by `fault`, e.g. `.error(code: 131026)` or `.error(code: 21211)`; nil removes the rule.
    /// Scripted faults (``enqueue(_:for:)``) come first.
    public func reject(recipient: String, on endpoint: Endpoint, with fault: Fault?) {
        state.withLock { $0.recipientRules[endpoint, default: [:]][DoubleState.digits(recipient)] = fault }
    }

    /// The SMTP server answers `RCPT TO` for this address with `code` (e.g. 450, 550); nil
    /// `code` removes the rule. Compared case-insensitively.
    public func rejectMail(recipient: String, code: Int?, message: String? = nil) {
        state.withLock {
            let key = recipient.lowercased()
            if let code {
                let text = message ?? (code < 500 ? "4.2.1 Mailbox temporarily unavailable" : "5.1.1 No such user here")
                $0.mailRecipientRules[key] = (code, text)
            } else {
                $0.mailRecipientRules[key] = nil
            }
        }
    }

    /// The next mails' data are answered by `faults`, one each, in order.
    public func enqueueMail(_ faults: [MailFault]) {
        state.withLock { $0.mailScripts.append(contentsOf: faults) }
    }

    /// Drops every scripted fault and rule and sets latencies back to zero.
    public func resetFaults() {
        state.withLock {
            $0.scripts.removeAll()
            $0.recipientRules.removeAll()
            $0.mailRecipientRules.removeAll()
            $0.mailScripts.removeAll()
            $0.latency = .zero
            $0.mailLatency = .zero
        }
    }
}

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

struct DoubleStartError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// The double's mutable state, shared by its HTTP and SMTP servers.
final class DoubleState: Sendable {
    struct Inner {
        var requests: [ReceivedRequest] = []
        var mails: [ReceivedMail] = []
        var httpConnections: Set<Int> = []
        var smtpConnectionsAccepted = 0
        var smtpChannels: [ObjectIdentifier: any Channel] = [:]
        var scripts: [ProviderDouble.Endpoint: [ProviderDouble.Fault]] = [:]
        var recipientRules: [ProviderDouble.Endpoint: [String: ProviderDouble.Fault]] = [:]
        var mailRecipientRules: [String: (Int, String)] = [:]
        var mailScripts: [ProviderDouble.MailFault] = []
        var latency: Duration = .zero
        var mailLatency: Duration = .zero
        var mailSequence = 0
        var whatsAppTemplates: [String: ProviderDouble.WhatsAppTemplate] = [:]
    }

    let configuration: ProviderDouble.Configuration
    private let inner = Mutex(Inner())

    init(configuration: ProviderDouble.Configuration) {
        self.configuration = configuration
    }

    func withLock<R>(_ body: (inout Inner) -> R) -> R {
        inner.withLock { body(&$0) }
    }

    static func digits(_ phone: String) -> String {
        String(phone.filter(\.isASCII).filter(\.isNumber))
    }
}
