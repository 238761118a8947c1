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
        var logger = Logger(label: "test.metrics")
        logger.logLevel = .warning
        let server = MetricsServer(metrics: metrics, databaseURL: databaseURL, host: "127.0.0.1", port: 0,
                                   sampleInterval: .zero, logger: logger)
        let group = ServiceGroup(services: [server], logger: logger)
        let transport = CurlTransport(maxInFlight: 4, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var port: Int?
            for _ in 0..<200 where port == nil {
                port = server.boundPort
                if port == nil { try await Task.sleep(for: .milliseconds(25)) }
            }
            let base = "http://127.0.0.1:\(try #require(port))"
            do {
                let value = try await body(base, transport)
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                transport.shutdown()
                return value
            } catch {
                await group.triggerGracefulShutdown()
                try? await tasks.waitForAll()
                transport.shutdown()
                throw error
            }
        }
    }

    static func scrape(_ base: String, _ transport: CurlTransport) async throws -> [String: Double] {
        let page = try await transport.execute(HTTPRequest(method: "GET", url: base + "/metrics", timeout: .seconds(10)))
        #expect(page.status == 200)
        return try PrometheusText.parse(String(decoding: page.body, as: UTF8.self))
    }

    @Test("/metrics parses as Prometheus text and moves when messages are sent: outcome counters and queue gauges")
    func movesWhenSent() async throws {
        try await withTestDatabase { db in
            let c = try await db.connect()
            let channel = try await WorkerFixtures.sandboxChannel(c, name: "promo-sms")
            let contacts = try await WorkerFixtures.contacts(c, count: 20)
            let b = try await WorkerFixtures.sendingBroadcast(c, channel: channel, contacts: contacts, body: "hi")
            let metrics = HeraldMetrics()
            try await Self.withMetricsServer(metrics, databaseURL: db.url) { base, transport in
                let before = try await Self.scrape(base, transport)
                #expect(before[#"herald_queue_depth{channel="promo-sms"}"#] == 20)
                #expect(before[#"herald_queue_due{channel="promo-sms"}"#] == 20)
                #expect((before[#"herald_queue_oldest_due_age_seconds{channel="promo-sms"}"#] ?? -1) >= 0)
                #expect(before[#"herald_messages_total{channel="promo-sms",outcome="sent",provider="sandbox"}"#] == nil)

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
