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

    /// Runs `body` with a double started for it and stops the double when `body` ends, also when
    /// it throws: its ports are closed and its server tasks ended before the test goes on.
    public static func with<T: Sendable>(configuration: Configuration = Configuration(),
                                         _ body: (ProviderDouble) async throws -> T) async throws -> T {
        try await scoped(try await start(configuration: configuration), cleanUp: { await $0.stop() }, body)
    }

    /// Starts the HTTP and SMTP servers on free ports of 127.0.0.1.
    /// - Parameters:
    ///   - configuration: credentials the double accepts.
    ///   - logger: for the HTTP server; by default a logger that reports only errors.
    public static func start(configuration: Configuration = Configuration(), logger: Logger? = nil) async throws -> ProviderDouble {
        let state = DoubleState(configuration: configuration)
        var serverLogger = logger ?? Logger(label: "herald.provider-double")
        if logger == nil { serverLogger.logLevel = .critical }

        let responder = CallbackResponder<DoubleRequestContext> { request, context in
            await HTTPDouble.respond(to: request, context: context, state: state)
        }
        // The task is owned by the double: `stop()` cancels and awaits it (deinit cancels it as a last resort).
        let (port, task) = try await LocalHTTPServer.start(responder, logger: serverLogger, name: "the HTTP server")

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
        await LocalHTTPServer.stop(http)
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

    /// Waits until at least `count` HTTP requests have arrived; false when `timeout` passes first.
    public func waitForRequests(_ count: Int, timeout: Duration = .seconds(10)) async -> Bool {
        await poll(timeout: timeout) { self.requestCount >= count }
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
