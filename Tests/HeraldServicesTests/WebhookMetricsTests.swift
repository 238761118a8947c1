import Foundation
import HeraldPostgres
import HeraldServices
import HeraldTesting
import HeraldTransport
import Logging
import ServiceLifecycle
import Testing

/// `MetricsServer` (the `/metrics` of workers and schedulers) and ``HeraldMetrics``.
@Suite("Metrics: /metrics and /healthz of every process")
struct WebhookMetricsTests {
    /// Runs a MetricsServer on a free port; `body` gets its base URL.
    static func withMetricsServer<T: Sendable>(_ metrics: HeraldMetrics, databaseURL: String?,
                                               _ body: (String, CurlTransport) async throws -> T) async throws -> T {
        let logger = warningsOnlyLogger("test.metrics")
        let server = MetricsServer(metrics: metrics, databaseURL: databaseURL, host: "127.0.0.1", port: 0,
                                   sampleInterval: .zero, logger: logger)
        return try await withRunningServer(server, boundPort: { server.boundPort }, logger: logger, transportWindow: 4, body)
    }

    static func scrape(_ base: String, _ transport: CurlTransport) async throws -> [String: Double] {
        let page = try await transport.execute(HTTPRequest(method: "GET", url: base + "/metrics", timeout: .seconds(10)))
        #expect(page.status == 200)
        return try PrometheusText.parse(String(decoding: page.body, as: UTF8.self))
    }

    @Test("/metrics parses as Prometheus text and moves when messages are sent: outcome counters and queue gauges")
    func movesWhenSent() async throws {
        try await WorkerFixtures.withSandboxBroadcast(to: 20, channel: "promo-sms") { db, c, channel, contacts, b in
            let metrics = HeraldMetrics()
            try await Self.withMetricsServer(metrics, databaseURL: db.url) { base, transport in
                let before = try await Self.scrape(base, transport)
                #expect(before[#"herald_queue_depth{channel="promo-sms"}"#] == 20)
                #expect(before[#"herald_queue_due{channel="promo-sms"}"#] == 20)
                #expect((before[#"herald_queue_oldest_due_age_seconds{channel="promo-sms"}"#] ?? -1) >= 0)
                #expect(before[#"herald_messages_total{channel="promo-sms",outcome="sent",provider="sandbox"}"#] == 0)

                // Send them all (a worker), reporting as the worker's hooks do.
                let done = try await WorkerFixtures.runWorker(WorkerFixtures.configuration(db), until: WorkerFixtures.allDone(db, broadcast: b))
                #expect(done)
                metrics.claimed(channel: "promo-sms", provider: "sandbox", count: 20)
                metrics.sent(channel: "promo-sms", provider: "sandbox", count: 19)
                metrics.failed(channel: "promo-sms", provider: "sandbox")
                for _ in 0..<20 { metrics.providerLatency(channel: "promo-sms", provider: "sandbox", seconds: 0.03) }
                metrics.rateLimiterWait(channel: "promo-sms", seconds: 0.2)

                let after = try await Self.scrape(base, transport)
                #expect(after[#"herald_queue_depth{channel="promo-sms"}"#] == 0)
                #expect(after[#"herald_queue_due{channel="promo-sms"}"#] == 0)
                #expect(after[#"herald_messages_claimed_total{channel="promo-sms",provider="sandbox"}"#] == 20)
                #expect(after[#"herald_messages_total{channel="promo-sms",outcome="sent",provider="sandbox"}"#] == 19)
                #expect(after[#"herald_messages_total{channel="promo-sms",outcome="failed",provider="sandbox"}"#] == 1)
                #expect(after[#"herald_provider_latency_seconds_count{channel="promo-sms",provider="sandbox"}"#] == 20)
                #expect(after[#"herald_provider_latency_seconds_bucket{channel="promo-sms",provider="sandbox",le="0.05"}"#] == 20)
                #expect(after[#"herald_rate_limiter_wait_seconds_count{channel="promo-sms"}"#] == 1)
                let health = try await transport.execute(HTTPRequest(method: "GET", url: base + "/healthz", timeout: .seconds(10)))
                #expect(health.status == 200)
            }
        }
    }

    @Test("a fresh process exposes its process-wide series at zero before anything happens")
    func processSeriesAtZero() throws {
        let samples = try PrometheusText.parse(HeraldMetrics().exposition())
        #expect(samples[#"herald_webhook_requests_total{outcome="unauthorized",provider="whatsapp_cloud"}"#] == 0)
        #expect(samples[#"herald_webhook_requests_total{outcome="unauthorized",provider="twilio"}"#] == 0)
        for outcome in ["accepted", "bad_request", "too_large", "busy", "error"] {
            #expect(samples[#"herald_webhook_requests_total{outcome="\#(outcome)",provider="whatsapp_cloud"}"#] == 0, "\(outcome)")
        }
        #expect(samples[#"herald_receipts_total{provider="twilio",status="delivered"}"#] == 0)
        #expect(samples["herald_receipts_applied_total"] == 0)
        #expect(samples[#"herald_broadcasts{status="sending"}"#] == 0)
        #expect(samples["herald_scheduler_leaders"] == 0)
    }

    @Test("the first scrape lists every channel's series at zero, its configured rate, throttle, live broadcasts and the scheduler leader")
    func channelSeriesFromTheDatabase() async throws {
        try await withTestConnection { db, c in
            let idle = try await WorkerFixtures.sandboxChannel(c, name: "idle-sms")
            _ = try await c.query("UPDATE herald.channels SET rate_per_second = 80, burst = 8 WHERE id = \(idle)")
            // A provider's slow-down: the bucket refreshes 120 s from now (migration 0004).
            _ = try await c.query("INSERT INTO herald.rate_buckets (channel_id, tokens, refreshed_at) VALUES (\(idle), 0, now() + interval '120 seconds')")
            let busy = try await WorkerFixtures.sandboxChannel(c, name: "busy-sms")
            let contacts = try await WorkerFixtures.contacts(c, count: 3)
            _ = try await WorkerFixtures.sendingBroadcast(c, channel: busy, contacts: contacts, body: "hi")
            // This session stands in for a leading scheduler.
            let leader = try await db.connect()
            _ = try await leader.query("SELECT pg_advisory_lock(\(Leadership.schedulerLockKey))")
            try await Self.withMetricsServer(HeraldMetrics(), databaseURL: db.url) { base, transport in
                let page = try await Self.scrape(base, transport)
                #expect(page[#"herald_messages_total{channel="idle-sms",outcome="failed",provider="sandbox"}"#] == 0)
                #expect(page[#"herald_messages_claimed_total{channel="idle-sms",provider="sandbox"}"#] == 0)
                #expect(page[#"herald_provider_latency_seconds_count{channel="idle-sms",provider="sandbox"}"#] == 0)
                #expect(page[#"herald_rate_limiter_wait_seconds_count{channel="idle-sms"}"#] == 0)
                #expect(page[#"herald_queue_due{channel="idle-sms"}"#] == 0)
                #expect(page[#"herald_queue_due{channel="busy-sms"}"#] == 3)
                #expect(page[#"herald_channel_rate_per_second{channel="idle-sms"}"#] == 80)
                #expect(page[#"herald_channel_burst{channel="idle-sms"}"#] == 8)
                #expect(page[#"herald_channel_throttled{channel="idle-sms"}"#] == 1)
                #expect(page[#"herald_channel_throttled{channel="busy-sms"}"#] == 0)
                #expect((page[#"herald_channel_throttle_remaining_seconds{channel="idle-sms"}"#] ?? 0) > 100)
                #expect(page[#"herald_broadcasts{status="sending"}"#] == 1)
                #expect(page["herald_scheduler_leaders"] == 1)
                #expect(page["herald_database_sample_success"] == 1)
                await leader.close()
                #expect(try await eventually(every: .milliseconds(50)) { try await Self.scrape(base, transport)["herald_scheduler_leaders"] == 0 })
            }
        }
    }

    @Test("/healthz is 503 when the database does not answer, and /metrics still serves")
    func unhealthy() async throws {
        try await Self.withMetricsServer(HeraldMetrics(), databaseURL: "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1") { base, transport in
            let health = try await transport.execute(HTTPRequest(method: "GET", url: base + "/healthz", timeout: .seconds(10)))
            #expect(health.status == 503)
            let page = try await transport.execute(HTTPRequest(method: "GET", url: base + "/metrics", timeout: .seconds(10)))
            #expect(page.status == 200)
        }
    }

    @Test("metric names and labels stay low-cardinality: unknown provider statuses fold into `other`")
    func boundedLabels() throws {
        let metrics = HeraldMetrics()
        metrics.receipts(provider: "twilio", status: "undelivered")
        metrics.receipts(provider: "twilio", status: "x-\(UUID())")
        let samples = try PrometheusText.parse(metrics.exposition())
        #expect(samples[#"herald_receipts_total{provider="twilio",status="undelivered"}"#] == 1)
        #expect(samples[#"herald_receipts_total{provider="twilio",status="other"}"#] == 1)
        #expect(samples.keys.allSatisfy { $0.hasPrefix("herald_") })
    }
}
