import Foundation
import HeraldPostgres
import HeraldServices
import HeraldTesting
import Logging

/// Builders for worker tests: channels, contacts, and a broadcast already expanded into
/// `sending` with one queued message and job per contact (what the scheduler leaves behind).
enum WorkerFixtures {
    static let whatsAppToken = "test-access-token"
    static let environment = ["WA_TOKEN": "test-access-token", "TW_TOKEN": "test-auth-token",
                              "HERALD_ALLOWED_HOSTS": "127.0.0.1,localhost"]

    static func whatsAppChannel(_ c: PostgresConnection, double: ProviderDouble, name: String = "wa",
                                extra: String = "") async throws -> Int64 {
        try await whatsAppChannel(c, baseURL: double.baseURL, name: name, extra: extra)
    }

    /// A WhatsApp Cloud channel whose Graph API is at `baseURL` (`/v21.0` appended), limited to
    /// `rate` msg/s with `burst`.
    static func whatsAppChannel(_ c: PostgresConnection, baseURL: String, name: String = "wa", rate: Int = 1000, burst: Int = 100,
                                extra: String = "") async throws -> Int64 {
        let settings = #"{"base_url":"\#(baseURL)/v21.0","phone_number_id":"1055","access_token_env":"WA_TOKEN"\#(extra)}"#
        return try await c.query("""
            INSERT INTO herald.channels (name, kind, provider, settings, rate_per_second, burst)
            VALUES (\(name), 'whatsapp', 'whatsapp_cloud', \(settings)::jsonb, \(rate), \(burst)) RETURNING id
            """)[0].decode(Int64.self, at: 0)
    }

    static func twilioChannel(_ c: PostgresConnection, double: ProviderDouble, name: String = "sms") async throws -> Int64 {
        let settings = #"{"base_url":"\#(double.baseURL)","account_sid":"\#(double.configuration.twilioAccountSID)","auth_token_env":"TW_TOKEN","from":"+15005550006"}"#
        return try await c.query("""
            INSERT INTO herald.channels (name, kind, provider, settings, rate_per_second, burst)
            VALUES (\(name), 'sms', 'twilio', \(settings)::jsonb, 1000, 100) RETURNING id
            """)[0].decode(Int64.self, at: 0)
    }

    static func smtpChannel(_ c: PostgresConnection, double: ProviderDouble, name: String = "mail",
                            extra: String = "") async throws -> Int64 {
        let settings = #"{"url":"\#(double.smtpURL)","from":"Shop <news@shop.example>","unsubscribe_url":"https://shop.example/u/{{ contact_id }}"\#(extra)}"#
        return try await c.query("""
            INSERT INTO herald.channels (name, kind, provider, settings, rate_per_second, burst)
            VALUES (\(name), 'email', 'smtp', \(settings)::jsonb, 1000, 100) RETURNING id
            """)[0].decode(Int64.self, at: 0)
    }

    static func sandboxChannel(_ c: PostgresConnection, name: String = "sandbox", kind: String = "sms",
                               latencyMs: Int = 0, failureRate: Double = 0) async throws -> Int64 {
        let settings = #"{"latency_ms":\#(latencyMs),"failure_rate":\#(failureRate)}"#
        return try await c.query("""
            INSERT INTO herald.channels (name, kind, provider, settings, rate_per_second, burst)
            VALUES (\(name), \(kind), 'sandbox', \(settings)::jsonb, 100000, 1000) RETURNING id
            """)[0].decode(Int64.self, at: 0)
    }

    /// What most worker tests start from: a WhatsApp channel on a provider double, contacts, and
    /// a `sending` template broadcast ("promo") to them, in a database of the test's own.
    struct PromoScene: Sendable {
        let double: ProviderDouble
        let db: TestDatabase
        let c: PostgresConnection
        let channel: Int64
        let contacts: [Int64]
        let broadcast: Int64
    }

    /// The kind of channel ``withChannel(_:extra:configure:body:)`` writes on its provider double.
    enum DoubleChannel {
        case whatsApp, twilio, smtp
    }

    /// Runs `body` with a provider double, a database of its own, and a channel of `kind` on the
    /// double (named as its builder's default; `extra` goes into a WhatsApp channel's settings).
    /// With `rejecting`, the double answers every send to that recipient on the channel's
    /// endpoint with `fault`. `configure` sets the double up further (faults, latency, templates)
    /// before anything is written;
    /// `rate` and `burst`, when given, replace the channel's (1000/s, 100) as an admin's edit would.
    /// The double and the database are gone when it returns.
    static func withChannel(_ kind: DoubleChannel, extra: String = "", rate: Int? = nil, burst: Int? = nil,
                            rejecting recipient: String? = nil, with fault: ProviderDouble.Fault? = nil,
                            configure: (ProviderDouble) -> Void = { _ in },
                            body: (ProviderDouble, TestDatabase, PostgresConnection, _ channel: Int64) async throws -> Void) async throws {
        try await ProviderDouble.with { double in
            if let recipient {
                double.reject(recipient: recipient, on: kind == .twilio ? .twilio : .whatsApp, with: fault)
            }
            configure(double)
            try await withTestConnection { db, c in
                let channel = switch kind {
                case .whatsApp: try await whatsAppChannel(c, double: double, extra: extra)
                case .twilio: try await twilioChannel(c, double: double)
                case .smtp: try await smtpChannel(c, double: double)
                }
                if let rate, let burst {
                    try await c.execute("UPDATE herald.channels SET rate_per_second = \(rate), burst = \(burst) WHERE id = \(channel)")
                }
                try await body(double, db, c, channel)
            }
        }
    }

    /// Runs `body` with a ``PromoScene`` of `count` contacts whose provider answers after
    /// `latency`; the double and the database are gone when it returns.
    static func withPromo(to count: Int, latency: Duration = .zero, _ body: (PromoScene) async throws -> Void) async throws {
        try await ProviderDouble.with { double in
            double.latency = latency
            try await withTestConnection { db, c in
                let channel = try await whatsAppChannel(c, double: double)
                let contacts = try await contacts(c, count: count)
                let broadcast = try await sendingBroadcast(c, channel: channel, contacts: contacts, template: ("promo", ["x"]))
                try await body(PromoScene(double: double, db: db, c: c, channel: channel, contacts: contacts, broadcast: broadcast))
            }
        }
    }

    /// A sandbox channel, contacts, and a `sending` broadcast to all of them: what the tests of
    /// the queue, the reports and the worker's bookkeeping start from when no provider is involved.
    struct SandboxScene: Sendable {
        let channel: Int64
        let contacts: [Int64]
        let broadcast: Int64
    }

    /// Writes a ``SandboxScene``: a sandbox channel named `channel` of `kind`, `count` contacts,
    /// and a broadcast of `body` to them, expanded and `sending`.
    static func sandboxBroadcast(_ c: PostgresConnection, to count: Int, channel name: String = "sandbox",
                                 kind: String = "sms", body: String = "hi") async throws -> SandboxScene {
        let channel = try await sandboxChannel(c, name: name, kind: kind)
        let contacts = try await contacts(c, count: count)
        let broadcast = try await sendingBroadcast(c, channel: channel, contacts: contacts, body: body)
        return SandboxScene(channel: channel, contacts: contacts, broadcast: broadcast)
    }

    /// Runs `body` in a database of its own holding a ``SandboxScene`` (see ``sandboxBroadcast``),
    /// with the scene's channel, contacts and broadcast as its last three arguments.
    static func withSandboxBroadcast(to count: Int, channel name: String = "sandbox", kind: String = "sms", body text: String = "hi",
                                     _ body: (TestDatabase, PostgresConnection, Int64, [Int64], Int64) async throws -> Void) async throws {
        try await withTestConnection { db, c in
            let s = try await sandboxBroadcast(c, to: count, channel: name, kind: kind, body: text)
            try await body(db, c, s.channel, s.contacts, s.broadcast)
        }
    }

    /// Inserts `count` contacts with phone numbers and emails; returns their ids.
    static func contacts(_ c: PostgresConnection, count: Int) async throws -> [Int64] {
        try await c.query("""
            INSERT INTO herald.contacts (first_name, last_name, phone, email, last_inbound_at)
            SELECT 'Contact' || i, 'N', '+23480' || lpad(i::text, 8, '0'), 'c' || i || '@example.com', now()
            FROM generate_series(1, \(count)) AS i RETURNING id
            """).map { try $0.decode(Int64.self, at: 0) }
    }

    static func contact(_ c: PostgresConnection, first: String?, last: String? = nil, phone: String? = nil,
                        email: String? = nil, attributes: String? = nil, lastInbound: Bool = true) async throws -> Int64 {
        try await c.query("""
            INSERT INTO herald.contacts (first_name, last_name, phone, email, attributes, last_inbound_at)
            VALUES (\(first), \(last), \(phone), \(email), \(attributes)::jsonb, CASE WHEN \(lastInbound) THEN now() END)
            RETURNING id
            """)[0].decode(Int64.self, at: 0)
    }

    /// A broadcast in `sending`, expanded: one queued message and one job per contact.
    ///
    /// Its media and template parameters are written with it, as the scheduler would find them when
    /// it starts the broadcast: an UPDATE of them once it is `sending` is an edit that waits for
    /// the scheduler's re-validation (migration 0016), and these fixtures run no scheduler.
    static func sendingBroadcast(_ c: PostgresConnection, channel: Int64, contacts: [Int64], body: String? = nil,
                                 subject: String? = nil, html: String? = nil, template: (name: String, params: [String])? = nil,
                                 media: String? = nil, headerParams: String? = nil, buttonParams: String? = nil) async throws -> Int64 {
        var templateID: Int64?
        if let template {
            let placeholders = (1...max(1, template.params.count)).map { "{{\($0)}}" }.joined(separator: " ")
            templateID = try await c.query("""
                INSERT INTO herald.templates (channel_id, name, language, body, status)
                VALUES (\(channel), \(template.name), 'en_US', \(placeholders), 'approved') RETURNING id
                """)[0].decode(Int64.self, at: 0)
        }
        let params = try template.map { try PostgresJSON(encoding: $0.params) }
        let id = try await c.query("""
            INSERT INTO herald.broadcasts (name, channel_id, subject, body, html_body, template_id, template_params,
                                           media, template_header_params, template_button_params, status, started_at, expanded_at)
            VALUES ('test', \(channel), \(subject), \(body), \(html), \(templateID), \(params)::jsonb,
                    \(media)::jsonb, \(headerParams)::jsonb, \(buttonParams)::jsonb, 'sending', now(), now())
            RETURNING id
            """)[0].decode(Int64.self, at: 0)
        try await c.execute("""
            WITH m AS (
                INSERT INTO herald.messages (broadcast_id, contact_id, channel_id, address)
                SELECT \(id), ct.id, \(channel), CASE ch.kind WHEN 'email' THEN ct.email ELSE ct.phone END
                FROM herald.contacts ct, herald.channels ch
                WHERE ct.id = ANY(\(contacts)::bigint[]) AND ch.id = \(channel)
                RETURNING id
            )
            INSERT INTO herald.jobs (message_id, broadcast_id, channel_id) SELECT id, \(id), \(channel) FROM m
            """)
        return id
    }

    /// Statuses of a broadcast's messages, by the contract's view.
    /// A message already `sent` to `contact` at `address`, in a `sending` broadcast of a new
    /// channel of `kind` on `provider` (settings `{}`: nothing sends it); what receipts and
    /// opt-outs start from. Returns (message, broadcast, channel).
    static func sentMessage(_ c: PostgresConnection, to contact: Int64, address: String, channel: String, kind: String,
                            provider: String, providerMessageID: String? = nil) async throws -> (Int64, Int64, Int64) {
        let r = try await c.query("""
            WITH ch AS (
                INSERT INTO herald.channels (name, kind, provider, settings) VALUES (\(channel), \(kind), \(provider), '{}') RETURNING id
            ), b AS (
                INSERT INTO herald.broadcasts (name, channel_id, status) SELECT 'b', id, 'sending' FROM ch RETURNING id, channel_id
            )
            INSERT INTO herald.messages (broadcast_id, contact_id, channel_id, address, status, sent_at, provider_message_id)
            SELECT b.id, \(contact), b.channel_id, \(address), 'sent', now(), \(providerMessageID) FROM b
            RETURNING id, broadcast_id, channel_id
            """)[0]
        return (try r.decode(Int64.self, at: 0), try r.decode(Int64.self, at: 1), try r.decode(Int64.self, at: 2))
    }

    static func statuses(_ c: PostgresConnection, broadcast: Int64) async throws -> [String: Int] {
        var out: [String: Int] = [:]
        for r in try await c.query("SELECT status, count(*) FROM herald.message_status WHERE broadcast_id = \(broadcast) GROUP BY status") {
            out[try r.decode(String.self, at: 0)] = try r.decode(Int.self, at: 1)
        }
        return out
    }

    /// A worker's configuration for tests: quick polls and backoff, and by default a lease and a
    /// request timeout long enough that a busy machine does not end either; tests of leases and
    /// timeouts pass their own.
    static func configuration(_ db: TestDatabase, id: String = WorkerConfiguration.defaultWorkerID(),
                              lease: Duration = .seconds(30), requestTimeout: Duration = .seconds(10)) -> WorkerConfiguration {
        var config = WorkerConfiguration(databaseURL: db.url, workerID: id, environment: environment)
        config.idlePoll = .milliseconds(100)
        config.backoff = .init(base: .milliseconds(50), cap: .milliseconds(200))
        // 10 s by default: a request never times out because the machine is busy (a timed-out
        // send is retried as ambiguous and reaches the double twice).
        config.requestTimeout = requestTimeout
        config.lease = lease
        return config
    }

    /// ``configuration(_:id:lease:requestTimeout:)`` for a provider over HTTPS/1.1 signed by
    /// `authority`: every send holds one of 16 TLS connections, in a window of 64 of which one
    /// channel may hold 56 (so 14 of the connections).
    static func sixteenTLSConnections(_ db: TestDatabase, authority: String) -> WorkerConfiguration {
        var config = configuration(db)
        config.providerAuthorityFile = authority
        config.httpVersion = .http1
        config.maxInFlight = 64
        config.maxInFlightPerChannel = 56
        config.maxTLSConnections = 16
        return config
    }

    /// Runs a worker until `until` holds (checked every 50 ms) or `timeout`, then stops it.
    static func runWorker(_ config: WorkerConfiguration, timeout: Duration = .seconds(30), metrics: HeraldMetrics = HeraldMetrics(),
                          until: @escaping @Sendable () async throws -> Bool) async throws -> Bool {
        var logger = Logger(label: "test.worker")
        logger.logLevel = .warning
        let worker = Worker(configuration: config, logger: logger, metrics: metrics)
        return try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask { try await worker.run(); return true }
            let deadline = ContinuousClock.now + timeout
            var reached = false
            while ContinuousClock.now < deadline {
                if try await until() { reached = true; break }
                try await Task.sleep(for: .milliseconds(50))
            }
            worker.requestStop()
            try await group.waitForAll()
            return reached
        }
    }

    /// Tries recorded for a broadcast's messages (`sum(attempts)`): what the provider should
    /// have seen when every send happened under a valid lease and was recorded.
    static func recordedAttempts(_ c: PostgresConnection, broadcast: Int64) async throws -> Int {
        try await c.query("SELECT coalesce(sum(attempts), 0)::int FROM herald.messages WHERE broadcast_id = \(broadcast)")[0].decode(Int.self, at: 0)
    }

    /// Waits until no message of the broadcast is queued or sending.
    static func allDone(_ db: TestDatabase, broadcast: Int64) -> @Sendable () async throws -> Bool {
        { @Sendable in
            let c = try await db.connect()
            let left = try await c.query("SELECT count(*) FROM herald.jobs WHERE broadcast_id = \(broadcast)")[0].decode(Int.self, at: 0)
            await c.close()
            return left == 0
        }
    }
}
