import Foundation
import HeraldCore
import HeraldPostgres
import HeraldServices
import HeraldStore
import HeraldTesting
import Testing

/// `herald preview`: a dry run that writes nothing and whose figures the real send then produces.
@Suite("herald preview")
struct PreviewTests {
    typealias F = SchedulerFixtures
    typealias W = WorkerFixtures

    /// A send window open now and for the next two hours, in UTC: the real send goes at once.
    static func windowOpenNow() -> String {
        let hour = Calendar(identifier: .gregorian).dateComponents(in: TimeZone(identifier: "UTC")!, from: Date()).hour!
        let from = (hour + 23) % 24, to = (hour + 2) % 24
        return String(format: #"{"from": "%02d:00", "to": "%02d:00"}"#, from, to)
    }

    /// Inserts a contact with everything a preview looks at.
    static func contact(_ c: PostgresConnection, first: String, phone: String?, note: String = "",
                        inbound: String? = "1 hour", zone: String? = nil) async throws -> Int64 {
        try await c.query("""
            INSERT INTO herald.contacts (first_name, phone, attributes, last_inbound_at, time_zone)
            VALUES (\(first), \(phone), jsonb_build_object('note', \(note)::text), now() - \(inbound)::interval, \(zone)) RETURNING id
            """)[0].decode(Int64.self, at: 0)
    }

    /// Runs `herald preview ID --json --samples N` and decodes its output.
    static func runPreview(_ db: TestDatabase, _ id: Int64, samples: Int = 2) async throws -> [String: Any] {
        let bin = try #require(ProcessInfo.processInfo.environment["HERALD_BIN"], "scripts/test sets HERALD_BIN")
        let p = try HeraldProcess.start(bin, ["preview", String(id), "--json", "--samples", String(samples)], databaseURL: db.url)
        #expect(await p.wait() == 0, "stderr: \(p.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(p.stdout.utf8)) as? [String: Any])
    }

    /// What the real send produced: recipients, skips by reason, segments of the sent messages.
    static func reality(_ c: PostgresConnection, _ id: Int64) async throws -> (audience: Int, skipped: [String: Int], segments: Int, sent: Int) {
        let audience = try await F.count(c, "SELECT recipients::int FROM herald.broadcast_report WHERE broadcast_id = \(id)")
        var skipped: [String: Int] = [:]
        for r in try await c.query("SELECT skip_reason, count(*) FROM herald.messages WHERE broadcast_id = \(id) AND status = 'skipped' GROUP BY 1") {
            skipped[try r.decode(String.self, at: 0)] = try r.decode(Int.self, at: 1)
        }
        let segments = try await F.count(c, "SELECT coalesce(sum(segments), 0)::int FROM herald.messages WHERE broadcast_id = \(id)")
        let sent = try await F.count(c, "SELECT count(*) FROM herald.messages WHERE broadcast_id = \(id) AND status = 'sent'")
        return (audience, skipped, segments, sent)
    }

    /// Schedules a draft and lets the scheduler and a worker send it to the end.
    static func send(_ db: TestDatabase, _ c: PostgresConnection, _ id: Int64) async throws {
        try await c.execute("UPDATE herald.broadcasts SET status = 'scheduled' WHERE id = \(id)")
        try await F.withScheduler(db) {
            try await F.waitUntil("it is expanded") { try await F.expanded(c, id) }
            #expect(try await W.runWorker(W.configuration(db), until: W.allDone(db, broadcast: id)))
        }
    }

    @Test("SMS with skips, both encodings and a send window: preview's audience, skips and segments are the real send's")
    func smsPreviewEqualsReality() async throws {
        try await withTestConnection { db, c in
            let channel = try await c.query("""
                INSERT INTO herald.channels (name, kind, provider, settings, rate_per_second, burst)
                VALUES ('sms', 'sms', 'sandbox', '{"latency_ms": 0, "failure_rate": 0, "price_per_message": 0.01, "price_per_segment": 0.005}',
                        1000, 100) RETURNING id
                """)[0].decode(Int64.self, at: 0)
            let gsm = try await Self.contact(c, first: "Ada", phone: "+2348031234567")
            let ucs2 = try await Self.contact(c, first: "Zoë", phone: "+2348031234568")
            let long = try await Self.contact(c, first: "Bola", phone: "+2348031234569", note: String(repeating: "long text ", count: 20))
            let longUCS2 = try await Self.contact(c, first: "Ọ̀ṣun", phone: "+2348031234570", note: String(repeating: "ẹ ", count: 40))
            let optedOut = try await Self.contact(c, first: "Cy", phone: "+2348031234571")
            let invalid = try await Self.contact(c, first: "Dee", phone: "0803 123")
            let noPhone = try await Self.contact(c, first: "Eve", phone: nil)
            let unknownZone = try await Self.contact(c, first: "Fay", phone: "+2348031234572", zone: "Mars/Olympus_Mons")
            try await c.execute("INSERT INTO herald.opt_outs (contact_id, channel_kind) VALUES (\(optedOut), 'sms')")
            let everyone = [gsm, ucs2, long, longUCS2, optedOut, invalid, noPhone, unknownZone]
            let g = try await F.group(c, "g", members: Array(everyone.prefix(5)))
            let id = try await c.query("""
                INSERT INTO herald.broadcasts (name, channel_id, body, send_window, status)
                VALUES ('p', \(channel), 'Hi {{ first_name }} {{ attributes.note }}', \(Self.windowOpenNow())::jsonb, 'draft') RETURNING id
                """)[0].decode(Int64.self, at: 0)
            try await c.execute("INSERT INTO herald.broadcast_groups VALUES (\(id), \(g))")
            try await c.execute("INSERT INTO herald.broadcast_contacts SELECT \(id), unnest(\(Array(everyone.suffix(4)))::bigint[])")

            let preview = try await Self.runPreview(db, id)
            // Nothing written: still a draft, no messages, no jobs, no error.
            #expect(try await F.status(c, id) == "draft")
            #expect(try await F.messageCount(c, id) == 0)
            #expect(try await F.jobCount(c, id) == 0)
            #expect(try await F.error(c, id) == nil)

            #expect(preview["errors"] as? [String] == [])
            #expect(preview["audience"] as? Int == 8)
            #expect(preview["eligible"] as? Int == 5)
            let sms = try #require(preview["sms"] as? [String: Any])
            #expect(sms["gsm7_messages"] as? Int == 3 && sms["ucs2_messages"] as? Int == 2)
            #expect(sms["gsm7_segments"] as? Int == 4 && sms["ucs2_segments"] as? Int == 3)
            let cost = try #require(preview["cost"] as? [String: Any])
            #expect(abs((cost["total"] as? Double ?? 0) - (5 * 0.01 + 7 * 0.005)) < 1e-9)
            let timing = try #require(preview["timing"] as? [String: Any])
            #expect(timing["held_by_window"] as? Int == 0)
            #expect(timing["estimated_duration_seconds"] is Double)
            #expect((preview["samples"] as? [[String: Any]])?.map { $0["contact_id"] as? Int } == [Int(gsm), Int(ucs2)])
            // Two segments each; the GSM-7 one has more characters.
            #expect((preview["longest"] as? [String: Any])?["contact_id"] as? Int == Int(long))
            #expect((preview["warnings"] as? [String])?.first?.contains("1 contact(s) have an unknown time_zone") == true)

            try await Self.send(db, c, id)
            let real = try await Self.reality(c, id)
            #expect(real.audience == preview["audience"] as? Int)
            #expect(real.sent == preview["eligible"] as? Int)
            #expect(real.skipped == (preview["skipped"] as? [String: Int])?.filter { $0.value > 0 })
            #expect(real.segments == sms["segments"] as? Int)
            #expect(real.skipped == ["opted_out": 1, "invalid_address": 2])
        }
    }

    @Test("WhatsApp without a template: outside_whatsapp_window skips match the real send")
    func whatsAppPreviewEqualsReality() async throws {
        try await withTestConnection { db, c in
            let channel = try await W.sandboxChannel(c, name: "wa", kind: "whatsapp")
            let recent = try await Self.contact(c, first: "Ada", phone: "+2348031234567")
            let old = try await Self.contact(c, first: "Bo", phone: "+2348031234568", inbound: "2 days")
            let never = try await Self.contact(c, first: "Cy", phone: "+2348031234569", inbound: nil)
            let id = try await F.broadcast(c, channel: channel, status: "draft", contacts: [recent, old, never])
            let preview = try await Self.runPreview(db, id)
            #expect(preview["sms"] is NSNull)
            #expect(preview["cost"] is NSNull)
            try await Self.send(db, c, id)
            let real = try await Self.reality(c, id)
            #expect(real.skipped == ["outside_whatsapp_window": 2])
            #expect(real.skipped == (preview["skipped"] as? [String: Int])?.filter { $0.value > 0 })
            #expect(real.sent == preview["eligible"] as? Int)
        }
    }

    @Test("validation errors are listed as the scheduler would write them, for a draft, and nothing is written")
    func validationErrors() async throws {
        try await withTestConnection { db, c in
            let channel = try await F.channel(c)
            let contact = try await Self.contact(c, first: "Ada", phone: "+2348031234567")
            let id = try await F.broadcast(c, channel: channel, body: "Hi {{ shoe_size }}", status: "draft", contacts: [contact])
            let preview = try await Self.runPreview(db, id)
            let errors = try #require(preview["errors"] as? [String])
            try await c.execute("UPDATE herald.broadcasts SET status = 'scheduled' WHERE id = \(id)")
            try await F.withScheduler(db) {
                try await F.waitUntil("it fails") { try await F.status(c, id) == "failed" }
            }
            #expect(errors == [try await F.error(c, id)].compactMap { $0 })
            #expect(errors.count == 1)
        }
    }

    @Test("the estimate waits for a closed window and follows the rate")
    func estimateWithWindow() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let opens = now.addingTimeInterval(3600)
        let groups = [DeliveryEstimate.Group(messages: 100, dueAt: now, windows: [opens..<opens.addingTimeInterval(60)]),
                      DeliveryEstimate.Group(messages: 50, dueAt: now, windows: nil)]
        let e = DeliveryEstimate.estimate(groups: groups, ratePerSecond: 10, dailyLimit: nil)
        #expect(e.firstSendAt == now)
        // 50 go at once (5 s), the 100 held ones from the opening (10 s).
        #expect(e.lastSendAt == opens.addingTimeInterval(10))
        // A window too short for them: 60 s at 1/s places 60 of 100.
        let slow = DeliveryEstimate.estimate(groups: [groups[0]], ratePerSecond: 1, dailyLimit: nil)
        #expect(slow.lastSendAt == nil && slow.unplaced == 40)
        // A daily limit of 30 for 50 messages: 30 today, the other 20 a day later.
        let limited = DeliveryEstimate.estimate(groups: [groups[1]], ratePerSecond: 1000, dailyLimit: 30)
        #expect(abs((limited.lastSendAt ?? now).timeIntervalSince(now) - 86_400.02) < 1e-6)
    }
}
