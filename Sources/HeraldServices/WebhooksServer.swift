import Foundation
import HeraldCore
import HeraldPostgres
import HeraldProviders
import HeraldStore
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization

/// How `herald webhooks` runs. Every field has a production default.
public struct WebhooksConfiguration: Sendable {
    /// `DATABASE_URL`, or nil for libpq's `PG*` variables.
    public var databaseURL: String?
    public var host: String = "0.0.0.0"
    /// 0 picks a free port (tests); see ``WebhooksServer/boundPort``.
    public var port: Int = 8080
    /// Where the secrets named by `*_env` settings are read.
    public var environment: [String: String]
    /// `HERALD_PUBLIC_URL`: Twilio signs `{publicURL}/webhooks/twilio`.
    public var publicURL: String?
    /// Bodies above this are refused with 413, before they are read when their length is declared.
    public var maxBodyBytes: Int = 1 << 20
    /// Bodies up to this size are read at once; larger ones (or of undeclared length) wait for
    /// one of ``largeBodiesAtOnce`` permits, see ``BodyAdmission``.
    public var smallBodyBytes: Int = 64 << 10
    public var largeBodiesAtOnce: Int = 2
    /// Large bodies waiting beyond this are refused with 503 and `Retry-After`.
    public var largeBodiesWaiting: Int = 32
    /// Large bodies are read at most this fast, all together, after a first ``maxBodyBytes`` at
    /// once: a flood of unsigned large bodies then takes a small, fixed share of the CPU.
    public var largeBodyBytesPerSecond: Int = 16 << 20
    /// Receipts stored per INSERT at most.
    public var maxBatch: Int = 2000
    /// Receipts applied per statement at most.
    public var maxApplyBatch: Int = 5000
    /// Insert statements in flight at once.
    public var writers: Int = 3
    /// Database connections of the server.
    public var connections: Int = 6
    /// The applier lets receipts gather this long after a busy pass.
    public var applyInterval: Duration = .milliseconds(5)
    /// How often receipts still waiting for their message are tried again.
    public var retryInterval: Duration = .seconds(1)
    /// Receipts still unmatched after this long are left alone (see ``ReceiptStore``).
    public var pendingWindow: Duration = .seconds(3600)
    /// How often channels (and their secrets) are re-read.
    public var channelRefresh: Duration = .seconds(5)
    /// A request naming an unknown secret, phone number or account re-reads the channels at most
    /// this often (single-flight: a burst shares one read).
    public var refreshOnDemandAfter: Duration = .seconds(1)
    /// A client must send a whole request within this long of connecting or of its previous
    /// response (and may stay idle no longer): slow clients are cut. Meta and Twilio send theirs
    /// in milliseconds.
    public var readTimeout: Duration = .seconds(10)
    /// Whether `GET /metrics` is served on ``port`` (`herald webhooks --metrics-port` serves it on
    /// a port of its own instead, so the public port carries only webhooks and `/healthz`).
    public var serveMetrics = true
    /// How often the report counters are folded.
    public var compactInterval: Duration = .seconds(5)
    /// The queue gauges of `/metrics` are sampled at most this often.
    public var queueSampleInterval: Duration = .seconds(2)

    public init(databaseURL: String?, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.databaseURL = databaseURL
        self.environment = environment
        self.publicURL = environment["HERALD_PUBLIC_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }
}

/// `herald webhooks`: the HTTP server for provider delivery receipts, `/metrics` and `/healthz`.
///
/// | route | does |
/// |---|---|
/// | `GET /webhooks/whatsapp` | Meta's subscription handshake: echoes `hub.challenge` when `hub.verify_token` is the verify token of a `whatsapp_cloud` channel, else 403 |
/// | `POST /webhooks/whatsapp` | Meta's notifications: statuses become receipts, incoming messages move `contacts.last_inbound_at` |
/// | `POST /webhooks/twilio` | Twilio's status callbacks |
/// | `GET /metrics` | Prometheus text format |
/// | `GET /healthz` | 200 when the database answered the latest probe (at most one a second, shared by all requests), else 503 |
///
/// - Important: a request is authenticated before its body is interpreted, and a verified request
///   speaks only for the channels that share the secret that verified it: a missing or wrong
///   signature is 401 and changes nothing; a body that is too big or not what the provider
///   documents is 400 and changes nothing. 200 means the receipts are committed; a database
///   failure is 503, so the provider delivers the notification again later.
public final class WebhooksServer: Service, Sendable {
    public let configuration: WebhooksConfiguration
    public let metrics: HeraldMetrics
    private let logger: Logger
    private let port = BoundPort()
    /// The channels and their secrets (internal: tests watch its refreshes).
    let directory: WebhookDirectory
    /// Which large bodies are read now (internal: tests watch it fill and drain).
    let admission: BodyAdmission

    public init(configuration: WebhooksConfiguration, metrics: HeraldMetrics = HeraldMetrics(), logger: Logger) {
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        self.directory = WebhookDirectory(environment: configuration.environment, publicURL: configuration.publicURL, logger: logger)
        self.admission = BodyAdmission(smallBodyBytes: configuration.smallBodyBytes, atOnce: configuration.largeBodiesAtOnce,
                                       maxWaiting: configuration.largeBodiesWaiting)
    }

    /// The port the server listens on, once it does.
    public var boundPort: Int? { port.value }

    public func run() async throws {
        let pool = PostgresPool(connectionString: configuration.databaseURL, maxConnections: configuration.connections,
                                applicationName: "herald-webhooks", logger: logger)
        do {
            try await directory.refresh(pool: pool)
        } catch {
            logger.warning("cannot read channels yet; retrying in the background", metadata: ["error": "\(error)"])
        }
        let pipeline = ReceiptPipeline(configuration: configuration, pool: pool, directory: directory, metrics: metrics, logger: logger)
        let handler = WebhookHandler(configuration: configuration, pool: pool, directory: directory, pipeline: pipeline,
                                     metrics: metrics, sampler: QueueSampler(metrics: metrics, pool: pool, interval: configuration.queueSampleInterval),
                                     healthCheck: HealthCheck(pool: pool),
                                     bodies: WebhookBodyReader(maxBodyBytes: configuration.maxBodyBytes, admission: admission,
                                                               pace: ReadPace(bytesPerSecond: configuration.largeBodyBytesPerSecond,
                                                                              burst: configuration.maxBodyBytes)),
                                     logger: logger)
        let router = Router()
        handler.register(on: router)
        ConsentRoutes(configuration: configuration, pool: pool, directory: directory, metrics: metrics, logger: logger).register(on: router) // consent (issue 19)
        try await port.serve(router, host: configuration.host, port: configuration.port, readTimeout: configuration.readTimeout,
                             services: [pipeline], name: "webhooks server", closing: pool, logger: logger)
        logger.info("webhooks server stopped")
    }
}

/// The routes of ``WebhooksServer``.
struct WebhookHandler: Sendable {
    let configuration: WebhooksConfiguration
    let pool: PostgresPool
    let directory: WebhookDirectory
    let pipeline: ReceiptPipeline
    let metrics: HeraldMetrics
    let sampler: QueueSampler
    let healthCheck: HealthCheck
    let bodies: WebhookBodyReader
    let logger: Logger

    func register(on router: Router<BasicRequestContext>) {
        router.get("/webhooks/whatsapp") { request, _ in await self.handshake(request) }
        router.post("/webhooks/whatsapp") { request, _ in await self.whatsApp(request) }
        router.post("/webhooks/twilio") { request, _ in await self.twilio(request) }
        if configuration.serveMetrics { router.get("/metrics") { _, _ in await self.metricsPage() } }
        router.get("/healthz") { _, _ in await self.health() }
    }

    // MARK: Meta

    func handshake(_ request: Request) async -> Response {
        let query = request.uri.queryParameters
        guard query["hub.mode"] == "subscribe", let token = query["hub.verify_token"].map(String.init),
              let challenge = query["hub.challenge"].map(String.init) else {
            return Self.text(.forbidden, "forbidden")
        }
        var tokens = directory.snapshot.whatsApp.compactMap(\.verifyToken)
        if tokens.isEmpty {
            try? await directory.refresh(pool: pool, ifOlderThan: .seconds(1))
            tokens = directory.snapshot.whatsApp.compactMap(\.verifyToken)
        }
        // Compare with every token (no early exit), each in constant time.
        var matched = false
        for t in tokens where WebhookSignature.constantTimeEquals(t, token) { matched = true }
        guard matched else {
            logger.info("webhook handshake refused: unknown verify token")
            return Self.text(.forbidden, "forbidden")
        }
        return Self.text(.ok, challenge)
    }

    /// Meta's notifications. The signature is checked over the raw body before any of it is read:
    /// with every configured app secret, each in constant time. Only then is the JSON parsed, and
    /// each status or incoming message is applied only when its `phone_number_id` is one of the
    /// channels that use the secret that verified the request; the rest is ignored and counted
    /// (`herald_webhook_ignored_total`).
    func whatsApp(_ request: Request) async -> Response {
        let provider = "whatsapp_cloud"
        guard let signature = Self.header(request, "x-hub-signature-256") else { return refuse(provider, .unauthorized, "missing signature") }
        // A malformed signature or a declared length over the limit is refused before the body is
        // read; the body is read and hashed under admission (see WebhookBodyReader).
        let read = await bodies.read(request, signatureWellFormed: WebhookBodyReader.isMetaSignature(signature)) { body in
            let snapshot = directory.snapshot
            return (snapshot: snapshot, trusted: Self.verifiedApp(snapshot, signature: signature, body: body))
        }
        let body: [UInt8], first: WebhookDirectory.Snapshot, firstTrust: (secret: String, channels: [WebhookDirectory.WhatsApp])?
        switch read {
        case .success(let r): (body, first, firstTrust) = (r.body, r.verified.snapshot, r.verified.trusted)
        case .failure(let refusal): return refuse(provider, refusal)
        }

        var snapshot = first
        var trusted = firstTrust
        if trusted == nil {
            // A channel (and secret) the admin tool added since the last refresh? Single-flight and
            // at most once a second, so unsigned floods cannot turn this into database load.
            try? await directory.refresh(pool: pool, ifOlderThan: configuration.refreshOnDemandAfter)
            let next = directory.snapshot
            if next.generation != snapshot.generation {
                snapshot = next
                trusted = Self.verifiedApp(snapshot, signature: signature, body: body)
            }
        }
        guard var trusted else { return refuse(provider, .unauthorized, "wrong signature") }

        let notification: WhatsAppNotification
        do {
            notification = try WhatsAppNotification.parse(body)
        } catch {
            return refuse(provider, .badRequest, "\(error)")
        }
        var scope = Self.channelsByPhone(trusted.channels)
        if notification.phoneNumberIDs.contains(where: { scope[$0] == nil }) {
            // Signed by a known secret but naming a number not known yet (a channel just added to
            // the same Meta app): look once more before ignoring it.
            try? await directory.refresh(pool: pool, ifOlderThan: configuration.refreshOnDemandAfter)
            if let again = Self.verifiedApp(directory.snapshot, signature: signature, body: body) {
                trusted = again
                scope = Self.channelsByPhone(trusted.channels)
            }
        }

        var receipts: [NewReceipt] = []
        var ignored = 0
        for s in notification.statuses {
            guard let channels = scope[s.phoneNumberID] else { ignored += 1; continue }
            receipts.append(NewReceipt(provider: provider, providerMessageID: s.messageID, status: s.status,
                                       effect: s.receipt?.rawValue, errorCode: s.errorCode, error: s.errorText,
                                       occurredAt: s.timestamp, payload: s.payload, callbackMessageID: s.heraldMessageID,
                                       channelIDs: channels))
        }
        var inbound: [(phone: String, at: Date)] = []
        for m in notification.inbound {
            guard scope[m.phoneNumberID] != nil else { ignored += 1; continue }
            inbound.append((m.phone, m.timestamp ?? Date()))
        }
        if ignored > 0 {
            metrics.webhookIgnored(provider: provider, count: ignored)
            logger.info("webhook items ignored: their phone number is not a channel of the app secret that signed them",
                        metadata: ["provider": "\(provider)", "items.count": "\(ignored)"])
        }
        do {
            try await pipeline.store(receipts)
            if !inbound.isEmpty {
                let senders = inbound
                _ = try await pool.withConnection { try await ReceiptStore().recordInbound(senders, on: $0) }
            }
            try await ConsentRoutes.recordWhatsAppKeywords(body, channels: scope.keys, pool: pool) // consent (issue 19): only numbers the verifying secret covers
            try await TemplateStatusWebhook.apply(body, channelIDs: trusted.channels.map(\.channelID), pool: pool) // templates (issue 18): only the verifying secret's channels
        } catch {
            return unavailable(provider, error)
        }
        metrics.webhookRequest(provider: provider, outcome: .accepted)
        return Self.text(.ok, "ok")
    }

    /// The app secret that signed `body`, with its channels, or nil. Every distinct secret is
    /// tried, each comparison in constant time, with no early exit.
    static func verifiedApp(_ snapshot: WebhookDirectory.Snapshot, signature: String,
                            body: [UInt8]) -> (secret: String, channels: [WebhookDirectory.WhatsApp])? {
        var found: (secret: String, channels: [WebhookDirectory.WhatsApp])?
        for app in snapshot.byAppSecret where WebhookSignature.verifyMeta(header: signature, body: body, appSecret: app.secret) {
            if found == nil { found = app }
        }
        return found
    }

    /// `phone_number_id` → the channels (of one app) that use it.
    static func channelsByPhone(_ channels: [WebhookDirectory.WhatsApp]) -> [String: [Int64]] {
        var byPhone: [String: [Int64]] = [:]
        for c in channels { byPhone[c.phoneNumberID, default: []].append(c.channelID) }
        return byPhone
    }

    // MARK: Twilio

    /// Twilio's status callbacks. The form body is decoded (linear, no interpretation) because
    /// the signature covers its parameters, and checked with the auth token of every channel of the
    /// `AccountSid` it names; the receipt then applies only to the messages of the channels whose
    /// URL and token verified it.
    func twilio(_ request: Request) async -> Response {
        let provider = "twilio"
        guard let signature = Self.header(request, "x-twilio-signature") else { return refuse(provider, .unauthorized, "missing signature") }
        let body: [UInt8]
        switch await bodies.read(request, signatureWellFormed: WebhookBodyReader.isTwilioSignature(signature), verify: { _ in () }) {
        case .success(let r): body = r.body
        case .failure(let refusal): return refuse(provider, refusal)
        }
        let fields: [FormField]
        do {
            fields = try FormURLEncoded.parse(body)
        } catch {
            return refuse(provider, .badRequest, "\(error)")
        }
        guard let account = fields.first(where: { $0.name == "AccountSid" })?.value, !account.isEmpty else {
            return refuse(provider, .unauthorized, "no AccountSid: nothing can verify it")
        }
        // Herald's sends put their message id in the StatusCallback URL's query; Twilio signs the
        // URL it posted to, so the parameter is part of what the signature covers.
        // A value that is not a message id is ignored, and then the signature does not match.
        let messageID = request.uri.queryParameters.get(Twilio.messageIDParameter, as: Int64.self).flatMap { $0 > 0 ? $0 : nil }
        func verified(_ snapshot: WebhookDirectory.Snapshot) -> [Int64] {
            var scope: [Int64] = []
            for c in snapshot.twilio where c.accountSID == account {
                guard let base = c.callbackURL, let token = c.authToken else { continue }
                let url = messageID.map { Twilio.statusCallback(base, messageID: $0) } ?? base
                if WebhookSignature.verifyTwilio(header: signature, url: url, parameters: fields, authToken: token) {
                    scope.append(c.channelID)
                }
            }
            return scope
        }
        let before = directory.snapshot
        var scope = verified(before)
        if scope.isEmpty {
            try? await directory.refresh(pool: pool, ifOlderThan: configuration.refreshOnDemandAfter)
            let after = directory.snapshot
            if after.generation != before.generation { scope = verified(after) }
        }
        guard !scope.isEmpty else { return refuse(provider, .unauthorized, "wrong signature") }
        let callback: TwilioStatusCallback
        do {
            callback = try TwilioStatusCallback.parse(fields: fields)
        } catch {
            return refuse(provider, .badRequest, "\(error)")
        }
        let receipt = NewReceipt(provider: provider, providerMessageID: callback.messageSID, status: callback.messageStatus,
                                 effect: callback.receipt?.rawValue, errorCode: callback.errorCode, error: callback.errorMessage,
                                 occurredAt: nil, payload: callback.payload,
                                 callbackMessageID: messageID, channelIDs: scope)
        do {
            try await pipeline.store([receipt])
        } catch {
            return unavailable(provider, error)
        }
        metrics.webhookRequest(provider: provider, outcome: .accepted)
        return Self.text(.ok, "")
    }

    // MARK: Metrics and health

    func metricsPage() async -> Response {
        await sampler.refresh(logger: logger)
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: metrics.exposition())))
    }

    func health() async -> Response {
        await healthCheck.response()
    }

    // MARK: Helpers

    /// A header's value by case-insensitive name.
    static func header(_ request: Request, _ name: String) -> String? {
        request.headers.first(where: { $0.name.canonicalName == name })?.value
    }

    /// A body refused before or while it was read (see ``WebhookBodyReader``).
    private func refuse(_ provider: String, _ refusal: WebhookBodyReader.Refusal) -> Response {
        let (status, why, headers) = bodies.response(to: refusal)
        metrics.webhookRequest(provider: provider, outcome: refusal.outcome)
        logger.log(level: status == .unauthorized ? .info : .debug, "webhook refused",
                   metadata: ["provider": "\(provider)", "status": "\(status.code)", "reason": "\(why)"])
        var response = Self.text(status, status == .serviceUnavailable ? "busy, try again later" : status.reasonPhrase.lowercased())
        response.headers.append(contentsOf: headers)
        return response
    }

    private func refuse(_ provider: String, _ status: HTTPResponse.Status, _ why: String) -> Response {
        metrics.webhookRequest(provider: provider, outcome: status == .unauthorized ? .unauthorized : .badRequest)
        // A wrong signature is worth an operator's attention (a secret that does not match Meta's or
        // Twilio's); a malformed body is the sender's problem and only counted.
        let level: Logger.Level = status == .unauthorized ? .info : .debug
        logger.log(level: level, "webhook refused", metadata: ["provider": "\(provider)", "status": "\(status.code)", "reason": "\(why)"])
        return Self.text(status, status == .unauthorized ? "unauthorized" : "bad request")
    }

    private func unavailable(_ provider: String, _ error: any Error) -> Response {
        metrics.webhookRequest(provider: provider, outcome: .error)
        logger.error("cannot store receipts; the provider will retry", metadata: ["provider": "\(provider)", "error": "\(error)"])
        return Self.text(.serviceUnavailable, "try again later")
    }

    static func text(_ status: HTTPResponse.Status, _ text: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/plain; charset=utf-8"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
