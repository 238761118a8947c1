import Foundation
import HeraldCore
import HeraldPostgres
import HeraldProviders
import HeraldStore
import Hummingbird
import Logging

/// The consent routes of `herald webhooks` (docs/consent.md):
///
/// | route | does |
/// |---|---|
/// | `POST /webhooks/twilio/inbound` | Twilio's incoming-message webhook, signed like status callbacks over `HERALD_PUBLIC_URL/webhooks/twilio/inbound`: STOP-type keywords opt the sender out of SMS, START-type keywords undo a keyword opt-out; answered with an empty TwiML `<Response/>` |
/// | `GET /unsubscribe/TOKEN` | a short confirmation page with one button |
/// | `POST /unsubscribe/TOKEN` | the button, or RFC 8058's `List-Unsubscribe=One-Click`: opts the message's contact out of its channel's kind; 200 |
///
/// WhatsApp texts arrive with Meta's other notifications on `POST /webhooks/whatsapp`, whose
/// handler hands the verified body to ``recordWhatsAppKeywords(_:channels:pool:)``.
///
/// - Important: nothing is written before the request is authenticated: a wrong Twilio signature
///   is 401, a wrong, altered or truncated unsubscribe token is 400.
struct ConsentRoutes: Sendable {
    static let inboundPath = "/webhooks/twilio/inbound"

    let pool: PostgresPool
    let directory: WebhookDirectory
    let publicURL: String?
    /// nil when `HERALD_PUBLIC_URL` or `HERALD_UNSUBSCRIBE_SECRET` is missing: every token is refused.
    let links: UnsubscribeLinks?
    let metrics: HeraldMetrics
    let maxBodyBytes: Int
    let logger: Logger

    init(configuration: WebhooksConfiguration, pool: PostgresPool, directory: WebhookDirectory, metrics: HeraldMetrics, logger: Logger) {
        self.pool = pool
        self.directory = directory
        self.publicURL = configuration.publicURL
        self.links = UnsubscribeLinks(publicURL: configuration.publicURL,
                                      secret: configuration.environment["HERALD_UNSUBSCRIBE_SECRET"])
        self.metrics = metrics
        self.maxBodyBytes = configuration.maxBodyBytes
        self.logger = logger
    }

    func register(on router: Router<BasicRequestContext>) {
        router.post("/webhooks/twilio/inbound") { request, _ in await self.twilioInbound(request) }
        router.get("/unsubscribe/:token") { _, context in self.unsubscribePage(context.parameters.get("token") ?? "") }
        router.post("/unsubscribe/:token") { request, context in
            await self.unsubscribe(request, token: context.parameters.get("token") ?? "")
        }
    }

    // MARK: Keywords

    /// Records the keywords among the texts of a WhatsApp notification whose signature was
    /// checked, for the senders on the given channels (`phone_number_id`s of this Herald).
    /// Throws when the database fails (the handler answers 503 and Meta delivers it again;
    /// recording a keyword twice changes nothing).
    static func recordWhatsAppKeywords(_ body: [UInt8], channels phoneNumberIDs: some Collection<String>,
                                       pool: PostgresPool) async throws {
        let texts = InboundText.whatsApp(body).filter { phoneNumberIDs.contains($0.account) }
        try await record(texts, kind: .whatsapp, pool: pool)
    }

    private static func record(_ texts: [InboundText], kind: ChannelKind, pool: PostgresPool) async throws {
        let keywords = texts.compactMap { t in ConsentKeyword(message: t.body).map { (t.phone, $0) } }
        guard !keywords.isEmpty else { return }
        try await pool.withConnection { c in
            for (phone, keyword) in keywords { try await ConsentStore().recordKeyword(keyword, phone: phone, kind: kind, on: c) }
        }
    }

    func twilioInbound(_ request: Request) async -> Response {
        let provider = "twilio_inbound"
        guard let body = try? await request.body.collect(upTo: maxBodyBytes),
              let parameters = try? FormURLEncoded.parse(Array(body.readableBytesView)),
              let text = InboundText.twilio(parameters) else {
            metrics.webhookRequest(provider: provider, outcome: .badRequest)
            return WebhookHandler.text(.badRequest, "bad request")
        }
        var channels = directory.snapshot.twilio.filter { $0.accountSID == text.account }
        if channels.isEmpty {
            try? await directory.refresh(pool: pool, ifOlderThan: .seconds(1))
            channels = directory.snapshot.twilio.filter { $0.accountSID == text.account }
        }
        let signature = WebhookHandler.header(request, "x-twilio-signature")
        var verified = false
        if let publicURL {
            let url = Self.trimmed(publicURL) + Self.inboundPath
            for c in channels {
                guard let token = c.authToken else { continue }
                if WebhookSignature.verifyTwilio(header: signature, url: url, parameters: parameters, authToken: token) { verified = true }
            }
        }
        guard verified else {
            metrics.webhookRequest(provider: provider, outcome: .unauthorized)
            logger.info("webhook refused", metadata: ["provider": "\(provider)", "reason": "missing or wrong signature"])
            return WebhookHandler.text(.unauthorized, "unauthorized")
        }
        do {
            try await Self.record([text], kind: .sms, pool: pool)
        } catch {
            metrics.webhookRequest(provider: provider, outcome: .error)
            logger.error("cannot record an incoming message; Twilio will retry", metadata: ["error": "\(error)"])
            return WebhookHandler.text(.serviceUnavailable, "try again later")
        }
        metrics.webhookRequest(provider: provider, outcome: .accepted)
        // An empty TwiML answer: Herald replies nothing itself (Twilio's own opt-out handling
        // answers STOP and START on the carrier's side).
        var headers = HTTPFields()
        headers[.contentType] = "text/xml; charset=utf-8"
        return Response(status: .ok, headers: headers,
                        body: .init(byteBuffer: ByteBuffer(string: #"<?xml version="1.0" encoding="UTF-8"?><Response/>"#)))
    }

    // MARK: Unsubscribe links

    func unsubscribePage(_ token: String) -> Response {
        guard links?.messageID(fromToken: Substring(token)) != nil else { return Self.refusedToken() }
        // The token is digits, "." and base64url: safe inside the attribute as it is.
        return Self.page(.ok, title: "Unsubscribe", body: """
            <h1>Unsubscribe</h1>
            <p>Stop receiving these messages?</p>
            <form method="post" action="/unsubscribe/\(token)">
            <button type="submit" name="List-Unsubscribe" value="One-Click">Unsubscribe</button>
            </form>
            """)
    }

    func unsubscribe(_ request: Request, token: String) async -> Response {
        guard let messageID = links?.messageID(fromToken: Substring(token)) else { return Self.refusedToken() }
        do {
            _ = try await pool.withConnection { try await ConsentStore().recordLinkOptOut(messageID: messageID, on: $0) }
        } catch {
            logger.error("cannot record an unsubscribe", metadata: ["error": "\(error)"])
            return Self.page(.serviceUnavailable, title: "Try again", body: "<h1>Something went wrong</h1><p>Please try again in a minute.</p>")
        }
        return Self.page(.ok, title: "Unsubscribed", body: "<h1>You are unsubscribed</h1><p>You will not receive these messages any more.</p>")
    }

    private static func refusedToken() -> Response {
        page(.badRequest, title: "Invalid link", body: "<h1>This link is not valid</h1><p>Please use the link exactly as it appears in the message.</p>")
    }

    /// A small, self-contained, accessible page: no scripts, styles or external resources.
    private static func page(_ status: HTTPResponse.Status, title: String, body: String) -> Response {
        let html = """
            <!doctype html>
            <html lang="en">
            <head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <meta name="robots" content="noindex"><title>\(title)</title></head>
            <body><main>
            \(body)
            </main></body>
            </html>
            """
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    private static func trimmed(_ url: String) -> String {
        var url = url
        while url.hasSuffix("/") { url.removeLast() }
        return url
    }
}
