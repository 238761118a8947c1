import Foundation
import HeraldDemo
import HeraldPostgres
import HeraldProviders
import HeraldServices
import HeraldStore
import HeraldTesting
import HeraldTransport
import Logging
import ServiceLifecycle
import Testing

/// The sandbox's delivery receipts (`herald demo`'s funnel): sent by ``SandboxReceiptEmitter``
/// through a real `herald webhooks` over HTTP, signed as Meta signs, applied by its pipeline.
@Suite("Sandbox: delivery receipts through herald webhooks")
struct SandboxReceiptTests {
    static let secretVariable = "SANDBOX_APP_SECRET"
    static let secret = "sandbox-app-secret"
    static let phoneNumberID = "sandbox-sms"
    static let plan = SandboxReceipts(seed: 7, readShare: 0.5, failedShare: 0.1)

    /// A sandbox channel that signs its receipts, 300 messages the real worker sent through it,
    /// and their ids.
    static func sentThroughSandbox(_ db: TestDatabase, _ c: PostgresConnection) async throws -> (channel: Int64, broadcast: Int64, messages: [Int64]) {
        let settings = #"{"latency_ms":0,"failure_rate":0,"phone_number_id":"\#(phoneNumberID)","app_secret_env":"\#(secretVariable)"}"#
        let channel = try await c.query("""
            INSERT INTO herald.channels (name, kind, provider, settings, rate_per_second, burst)
            VALUES ('sandbox-receipts', 'sms', 'sandbox', \(settings)::jsonb, 100000, 1000) RETURNING id
            """)[0].decode(Int64.self, at: 0)
        let contacts = try await WorkerFixtures.contacts(c, count: 300)
        let broadcast = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: contacts, body: "Hi {{ first_name }}")
        #expect(try await WorkerFixtures.runWorker(WorkerFixtures.configuration(db), until: WorkerFixtures.allDone(db, broadcast: broadcast)))
        let messages = try await c.query("SELECT id FROM herald.messages WHERE broadcast_id = \(broadcast) AND status = 'sent' ORDER BY id")
            .map { try $0.decode(Int64.self, at: 0) }
        try #require(messages.count == 300)
        return (channel, broadcast, messages)
    }

    /// The emitter of the test channel's receipts, signing with `secret`, posting to `harness`' server.
    static func emitter(_ harness: WebhookServerTests.Harness, channel: Int64, secret: String) -> SandboxReceiptEmitter {
        var config = SandboxReceiptEmitter.Configuration(
            channels: [.init(id: channel, phoneNumberID: phoneNumberID, appSecret: secret)], receipts: plan, floor: 0)
        config.readAfter = .milliseconds(100)
        config.batch = 64
        var logger = Logger(label: "test.sandbox-receipts")
        logger.logLevel = .critical
        let base = harness.base
        return SandboxReceiptEmitter(configuration: config, connectionString: harness.db.url, webhooksURL: { base },
                                     transport: harness.transport, logger: logger)
    }

    /// `herald webhooks` knowing the sandbox's secret (beside the WhatsApp and Twilio channels of
    /// ``WebhookServerTests``).
    static func withServer<T: Sendable>(_ body: (WebhookServerTests.Harness) async throws -> T) async throws -> T {
        try await WebhookServerTests.withServer(environment: WebhookServerTests.environment.merging([secretVariable: secret]) { a, _ in a }, body)
    }

    @Test("every message the sandbox sent ends delivered, read or failed as the seed decides, through signed webhooks")
    func receiptsApplied() async throws {
        try await Self.withServer { h in
            let c = h.c
            let (channel, broadcast, messages) = try await Self.sentThroughSandbox(h.db, c)
            var expected: [String: Int] = [:]
            for id in messages {
                switch Self.plan.fate(of: id) {
                case .delivered: expected["delivered", default: 0] += 1
                case .read: expected["read", default: 0] += 1
                case .failed: expected["failed", default: 0] += 1
                }
            }
            // The seed's fates are a fair draw, not all one kind (shares 0.4, 0.5, 0.1 of 300).
            #expect((80...160).contains(expected["delivered"] ?? 0))
            #expect((110...190).contains(expected["read"] ?? 0))
            #expect((10...55).contains(expected["failed"] ?? 0))

            // The emitter's passes, as its service runs them, until the funnel is complete.
            let emitter = Self.emitter(h, channel: channel, secret: Self.secret)
            var statuses: [String: Int] = [:]
            _ = try await eventually(within: .seconds(60), every: .milliseconds(50)) {
                try await emitter.pass(on: c)
                statuses = try await WorkerFixtures.statuses(c, broadcast: broadcast)
                return statuses == expected && emitter.isIdle
            }
            let tally = emitter.tally
            #expect(statuses == expected)
            #expect(tally.refused == 0)
            #expect(tally.read == expected["read"])
            #expect(tally.failed == expected["failed"])
            // Each receipt came in as Meta's, verified, and points at its message.
            let receipts = try await c.query("""
                SELECT count(*) FILTER (WHERE r.provider = 'whatsapp_cloud' AND r.channel_id = \(channel)
                                          AND r.provider_message_id = 'sandbox-' || m.id AND r.applied_at IS NOT NULL),
                       count(*)
                FROM herald.delivery_receipts r JOIN herald.messages m ON m.id = r.callback_message_id
                """)[0]
            #expect(try receipts.decode(Int.self, at: 0) == messages.count + (expected["read"] ?? 0))
            #expect(try receipts.decode(Int.self, at: 1) == messages.count + (expected["read"] ?? 0))
            let failure = try await c.query("SELECT DISTINCT error_code FROM herald.messages WHERE broadcast_id = \(broadcast) AND status = 'failed'")
            #expect(try failure.map { try $0.decode(String?.self, at: 0) } == [String(SandboxReceipts.failureCode)])
        }
    }

    @Test("a sandbox receipt signed with another secret is refused with 401 and changes nothing")
    func wrongSecretRefused() async throws {
        try await Self.withServer { h in
            let c = h.c
            let (channel, broadcast, _) = try await Self.sentThroughSandbox(h.db, c)
            let emitter = Self.emitter(h, channel: channel, secret: "not-" + Self.secret)
            try await emitter.pass(on: c)
            let tally = emitter.tally
            #expect(tally.refused == (300 + 63) / 64)
            #expect(tally.delivered == 0 && tally.failed == 0)
            #expect(try await WorkerFixtures.statuses(c, broadcast: broadcast) == ["sent": 300])
            #expect(try await c.query("SELECT count(*) FROM herald.delivery_receipts")[0].decode(Int.self, at: 0) == 0)
        }
    }

    @Test("the fates are a function of the seed and the message id, and the body verifies as Meta's")
    func fatesAndBody() throws {
        let other = SandboxReceipts(seed: 8, readShare: 0.5, failedShare: 0.1)
        let ids = Array(Int64(1)...2000)
        #expect(ids.map(Self.plan.fate(of:)) == ids.map(SandboxReceipts(seed: 7, readShare: 0.5, failedShare: 0.1).fate(of:)))
        #expect(ids.map(Self.plan.fate(of:)) != ids.map(other.fate(of:)))
        let body = SandboxReceipts.whatsAppNotification(phoneNumberID: "p1", statuses: [
            .init(providerMessageID: "sandbox-5", messageID: 5, status: "failed", timestamp: 1_750_000_000)])
        let parsed = try WhatsAppNotification.parse(body)
        #expect(parsed.statuses.map(\.heraldMessageID) == [5])
        #expect(parsed.statuses.first?.receipt == .failed)
        #expect(parsed.statuses.first?.errorCode == String(SandboxReceipts.failureCode))
        #expect(WebhookSignature.verifyMeta(header: WebhookSignature.meta(body: body, appSecret: "s"), body: body, appSecret: "s"))
    }
}
