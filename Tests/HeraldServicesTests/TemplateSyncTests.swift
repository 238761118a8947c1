import Foundation
import HeraldPostgres
import HeraldProviders
import HeraldServices
import HeraldStore
import HeraldTesting
import HeraldTransport
import Logging
import Testing

/// `herald templates sync` and the scheduler leader's periodic sync, against real PostgreSQL and
/// a Graph API double that pages its template list as Meta does.
@Suite("Templates: sync with Meta")
struct TemplateSyncTests {
    static let waba = "102290129340398"
    static let environment = ["WA_TOKEN": "test-access-token", "WA_BAD": "expired-token", "HERALD_ALLOWED_HOSTS": "127.0.0.1"]
    static let logger = Logger(label: "test.templates") { _ in SwiftLogNoOpLogHandler() }

    @discardableResult
    /// A Graph double listing `templates`, and in a database of the test's own one `wa` channel on it.
    static func withChannel(listing templates: [GraphTemplatesDouble.Template],
                            _ body: (GraphTemplatesDouble, TestDatabase, PostgresConnection, Int64) async throws -> Void) async throws {
        try await GraphTemplatesDouble.with(wabaID: waba) { graph in
            graph.setTemplates(templates)
            try await withTestConnection { db, c in
                try await body(graph, db, c, try await channel(c, graph))
            }
        }
    }

    static func channel(_ c: PostgresConnection, _ graph: GraphTemplatesDouble, name: String = "wa", token: String = "WA_TOKEN",
                        waba: String? = TemplateSyncTests.waba) async throws -> Int64 {
        let wabaSetting = waba.map { #","waba_id":"\#($0)""# } ?? ""
        let settings = #"{"base_url":"\#(graph.baseURL)/v21.0","phone_number_id":"1055","access_token_env":"\#(token)"\#(wabaSetting)}"#
        return try await c.query("""
            INSERT INTO herald.channels (name, kind, provider, settings) VALUES (\(name), 'whatsapp', 'whatsapp_cloud', \(settings)::jsonb)
            RETURNING id
            """)[0].decode(Int64.self, at: 0)
    }

    static func sync(_ db: TestDatabase, channel: String? = nil,
                     environment: [String: String] = TemplateSyncTests.environment) async throws -> [TemplateSync.ChannelResult] {
        try await TemplateSync(environment: ProviderEnvironment(variables: environment), logger: logger)
            .run(channel: channel, connectionString: db.url)
    }

    /// Every template row of a channel as one line, by name and language.
    static func rows(_ c: PostgresConnection, channel: Int64) async throws -> [String] {
        try await c.query("""
            SELECT concat_ws('|', name, language, status, coalesce(category, '-'), header_format, coalesce(header_text, '-'),
                             coalesce(buttons::text, '-'), coalesce(meta_template_id, '-'), coalesce(status_reason, '-'), body)
            FROM herald.templates WHERE channel_id = \(channel) ORDER BY name, language
            """).map { try $0.decode(String.self, at: 0) }
    }

    static let fivePages: [GraphTemplatesDouble.Template] = [
        .init(id: "11", name: "spring_sale", body: "Hi {{1}}",
              components: #"[{"type":"HEADER","format":"IMAGE"},{"type":"BODY","text":"Hi {{1}}"},{"type":"BUTTONS","buttons":[{"type":"URL","text":"Shop","url":"https://s.example/{{1}}"},{"type":"QUICK_REPLY","text":"Stop"}]}]"#),
        .init(id: "12", name: "welcome", language: "pt_BR", status: "PENDING", category: "UTILITY", body: "Olá {{1}}"),
        .init(id: "13", name: "coupon", status: "REJECTED", body: "Code {{1}}", rejectedReason: "INVALID_FORMAT"),
        .init(id: "14", name: "header_text", status: "PAUSED",
              components: #"[{"type":"HEADER","format":"TEXT","text":"Dear {{1}}"},{"type":"BODY","text":"News"}]"#),
        .init(id: "15", name: "promo", body: "Now {{1}}"),
    ]

    @Test("three pages end as the right rows: new ones inserted, a changed one updated, one Meta no longer lists disabled, never deleted")
    func threePages() async throws {
        try await GraphTemplatesDouble.with(wabaID: Self.waba) { graph in
            graph.setTemplates(Self.fivePages)
            graph.setPageSize(2)
            try await withTestConnection { db, c in
                let wa = try await Self.channel(c, graph)
                try await c.execute("""
                    INSERT INTO herald.templates (channel_id, name, language, body, status) VALUES
                        (\(wa), 'promo', 'en_US', 'Old {{1}}', 'pending'), (\(wa), 'retired', 'en_US', 'Bye', 'approved')
                    """)
                let results = try await Self.sync(db)
                #expect(results.map(\.line) == ["wa: 5 template(s) at Meta: 4 inserted, 1 updated, 1 disabled"])
                #expect(try await Self.rows(c, channel: wa) == [
                    "coupon|en_US|rejected|marketing|none|-|-|13|INVALID_FORMAT|Code {{1}}",
                    "header_text|en_US|paused|marketing|text|Dear {{1}}|-|14|-|News",
                    "promo|en_US|approved|marketing|none|-|-|15|-|Now {{1}}",
                    "retired|en_US|disabled|-|none|-|-|-|no longer listed by Meta|Bye",
                    #"spring_sale|en_US|approved|marketing|image|-|[{"url": "https://s.example/{{1}}", "text": "Shop", "type": "url"}, {"text": "Stop", "type": "quick_reply"}]|11|-|Hi {{1}}"#,
                    "welcome|pt_BR|pending|utility|none|-|-|12|-|Olá {{1}}",
                ])
                let requests = graph.received()
                #expect(requests.count == 3, "three pages of two")
                #expect(requests.allSatisfy { $0.authorization == "Bearer test-access-token" && $0.path == "/v21.0/\(Self.waba)/message_templates" })
                #expect(requests.allSatisfy { $0.query["fields"] == "name,language,status,category,components,id,rejected_reason" })
                #expect(requests.map { $0.query["after"] != nil } == [false, true, true])
            }
        }
    }

    @Test("a second sync: a status change and a rename in language update the same rows, never duplicate; nothing changed, nothing counted")
    func resync() async throws {
        try await Self.withChannel(listing: Self.fivePages) { graph, db, c, wa in
            _ = try await Self.sync(db)
            let ids = try await c.query("SELECT name, id FROM herald.templates WHERE channel_id = \(wa)")
                .reduce(into: [String: Int64]()) { $0[try $1.decode(String.self, at: 0)] = try $1.decode(Int64.self, at: 1) }
            #expect(try await Self.sync(db).map(\.line) == ["wa: 5 template(s) at Meta: 0 inserted, 0 updated, 0 disabled"])
            var changed = Self.fivePages
            changed[4].status = "PAUSED"     // promo
            changed[1].language = "pt_PT"    // welcome, same Meta id 12
            graph.setTemplates(changed)
            #expect(try await Self.sync(db).map(\.line) == ["wa: 5 template(s) at Meta: 0 inserted, 2 updated, 0 disabled"])
            let after = try await c.query("SELECT name, id, language, status FROM herald.templates WHERE channel_id = \(wa) ORDER BY name")
                .map { "\(try $0.decode(String.self, at: 0))|\(try $0.decode(Int64.self, at: 1))|\(try $0.decode(String.self, at: 2))|\(try $0.decode(String.self, at: 3))" }
            #expect(after.count == 5)
            #expect(after.contains("promo|\(try #require(ids["promo"]))|en_US|paused"))
            #expect(after.contains("welcome|\(try #require(ids["welcome"]))|pt_PT|pending"))
        }
    }

    @Test("a sync that finds a template newly paused pauses its running broadcast once; a later sync leaves the admin tool's resume alone")
    func syncPausesBroadcast() async throws {
        try await Self.withChannel(listing: Array(Self.fivePages.suffix(1))) { graph, db, c, wa in
            _ = try await Self.sync(db)
            let b = try await c.query("""
                INSERT INTO herald.broadcasts (name, channel_id, template_id, template_params, status, started_at, expanded_at)
                SELECT 'b', \(wa), id, '["x"]', 'sending', now(), now() FROM herald.templates WHERE name = 'promo' RETURNING id
                """)[0].decode(Int64.self, at: 0)
            func status() async throws -> String {
                try await c.query("SELECT status FROM herald.broadcasts WHERE id = \(b)")[0].decode(String.self, at: 0)
            }
            var paused = Array(Self.fivePages.suffix(1))
            paused[0].status = "PAUSED"
            graph.setTemplates(paused)
            _ = try await Self.sync(db)
            #expect(try await status() == "paused")
            try await c.execute("UPDATE herald.broadcasts SET status = 'sending' WHERE id = \(b)")
            paused[0].body = "Edited {{1}}" // the row changes, its status does not
            graph.setTemplates(paused)
            #expect(try await Self.sync(db).map(\.line) == ["wa: 1 template(s) at Meta: 0 inserted, 1 updated, 0 disabled"])
            #expect(try await status() == "sending")
        }
    }

    @Test("a base_url whose host is not allowed is refused before the token leaves; nothing reaches the host")
    func hostNotAllowed() async throws {
        try await Self.withChannel(listing: Self.fivePages) { graph, db, c, wa in
            var environment = Self.environment
            environment["HERALD_ALLOWED_HOSTS"] = nil
            let results = try await Self.sync(db, environment: environment)
            #expect(results.count == 1)
            #expect(results.first?.line.hasPrefix("wa: host not allowed: 127.0.0.1") == true, "\(results.map(\.line))")
            #expect(graph.received().isEmpty)
            #expect(try await Self.rows(c, channel: wa).isEmpty)
        }
    }

    @Test("a bad token fails its channel with Meta's message; the other channels are still synced")
    func badToken() async throws {
        try await GraphTemplatesDouble.with(wabaID: Self.waba) { graph in
            graph.setTemplates(Array(Self.fivePages.prefix(1)))
            try await withTestConnection { db, c in
                let bad = try await Self.channel(c, graph, name: "a_bad", token: "WA_BAD")
                let good = try await Self.channel(c, graph, name: "b_good")
                try await Self.channel(c, graph, name: "c_no_waba", waba: nil)
                let results = try await Self.sync(db)
                #expect(results.map(\.line) == [
                    "a_bad: Meta answered 401: Invalid OAuth access token - Cannot parse access token, code 190",
                    "b_good: 1 template(s) at Meta: 1 inserted, 0 updated, 0 disabled",
                ])
                #expect(try await Self.rows(c, channel: bad).isEmpty)
                #expect(try await Self.rows(c, channel: good).count == 1)
                let named = try await Self.sync(db, channel: "c_no_waba")
                #expect(named.first?.line.hasPrefix("c_no_waba: setting \"waba_id\" is not set") == true)
                #expect(try await Self.sync(db, channel: "nope").map(\.line) == ["nope: no channel has this name"])
            }
        }
    }

    @Test("herald templates sync: one line per channel on stdout, a failing channel on stderr with exit status 1, --channel syncs one")
    func command() async throws {
        let bin = try #require(ProcessInfo.processInfo.environment["HERALD_BIN"], "scripts/test sets HERALD_BIN")
        try await GraphTemplatesDouble.with(wabaID: Self.waba) { graph in
            graph.setTemplates(Array(Self.fivePages.prefix(3)))
            try await withTestConnection { db, c in
                try await Self.channel(c, graph, name: "a_bad", token: "WA_BAD")
                try await Self.channel(c, graph, name: "b_good")
                let all = try HeraldProcess.start(bin, ["templates", "sync"], databaseURL: db.url, environment: Self.environment)
                #expect(await all.wait() == 1)
                #expect(all.stdout == "b_good: 3 template(s) at Meta: 3 inserted, 0 updated, 0 disabled\n")
                #expect(all.stderr == "herald: a_bad: Meta answered 401: Invalid OAuth access token - Cannot parse access token, code 190\n")
                let one = try HeraldProcess.start(bin, ["templates", "sync", "--channel", "b_good"], databaseURL: db.url, environment: Self.environment)
                #expect(await one.wait() == 0)
                #expect(one.stdout == "b_good: 3 template(s) at Meta: 0 inserted, 0 updated, 0 disabled\n")
                #expect(one.stderr == "")
            }
        }
    }

    @Test("the scheduler's leader syncs at once and again every interval")
    func leaderSyncs() async throws {
        try await Self.withChannel(listing: Array(Self.fivePages.prefix(1))) { graph, db, c, wa in
            var configuration = SchedulerConfiguration(connectionString: db.url, leadership: Leadership(retryInterval: .milliseconds(200)),
                                                       providerEnvironment: ProviderEnvironment(variables: Self.environment))
            configuration.templateSync = TemplateSyncSchedule(
                interval: .milliseconds(300),
                sync: TemplateSync(environment: ProviderEnvironment(variables: Self.environment), logger: Self.logger),
                connectionString: db.url)
            let service = SchedulerService(configuration: configuration, logger: Self.logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await service.run() }
                try await SchedulerFixtures.waitUntil("the first sync inserted the template") {
                    try await Self.rows(c, channel: wa).count == 1
                }
                var next = Array(Self.fivePages.prefix(1))
                next[0].status = "PAUSED"
                graph.setTemplates(next)
                try await SchedulerFixtures.waitUntil("a later sync paused it") {
                    try await c.query("SELECT status FROM herald.templates WHERE channel_id = \(wa)")[0].decode(String.self, at: 0) == "paused"
                }
                group.cancelAll()
            }
        }
    }
}
