import Foundation
import HeraldPostgres
@testable import HeraldServices
import HeraldTesting
import Testing

/// Email attachments (contract "Media"): fetched once per broadcast by the scheduler, bounded by
/// `max_attachment_bytes`, attached to every mail; a file that cannot be fetched fails the
/// broadcast with the item, its URL and the reason, and no message is made.
@Suite("Email attachments: fetched once, attached to every mail")
struct EmailAttachmentTests {
    typealias F = SchedulerFixtures
    typealias W = WorkerFixtures

    /// Every byte value.
    static let binary: [UInt8] = (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
    static let pdf: [UInt8] = Array("%PDF-1.4\n%âãÏÓ\n1 0 obj\n<<>>\nendobj\n%%EOF\n".utf8)

    /// A scheduled email broadcast with `media` to `contacts`, on an smtp channel with `extra` settings.
    static func emailBroadcast(_ c: PostgresConnection, smtpURL: String = "smtp://127.0.0.1:2525", extra: String = "",
                               media: String, contacts: [Int64], html: String? = nil) async throws -> Int64 {
        let settings = #"{"url": "\#(smtpURL)", "from": "Shop <shop@example.com>"\#(extra)}"#
        let ch = try await F.channel(c, name: "mail", kind: "email", provider: "smtp", settings: settings)
        let id = try await F.broadcast(c, channel: ch, body: "Hi {{ first_name }},\nthe catalogue is attached.\n",
                                       subject: "Spring", htmlBody: html, status: "draft", contacts: contacts)
        try await c.execute("UPDATE herald.broadcasts SET media = \(media)::jsonb, status = 'scheduled' WHERE id = \(id)")
        return id
    }

    /// Runs the scheduler until the broadcast leaves `scheduled`; returns its error.
    static func validate(_ db: TestDatabase, _ c: PostgresConnection, _ id: Int64) async throws -> String? {
        try await F.withScheduler(db) {
            try await F.waitUntil("it is validated", timeout: .seconds(30)) { try await F.status(c, id) != "scheduled" }
        }
        #expect(try await F.status(c, id) == "failed")
        #expect(try await F.count(c, "SELECT count(*) FROM herald.messages") == 0)
        #expect(try await F.count(c, "SELECT count(*) FROM herald.broadcast_attachments") == 0)
        return try await F.error(c, id)
    }

    /// In a database of its own, writes an ``emailBroadcast(_:smtpURL:extra:media:contacts:html:)``
    /// of `media` to one contact and returns the error ``validate(_:_:_:)`` finds.
    static func validationError(extra: String = "", media: String) async throws -> String? {
        try await withTestConnection { db, c in
            let id = try await emailBroadcast(c, extra: extra, media: media, contacts: [try await F.contact(c)])
            return try await validate(db, c, id)
        }
    }

    @Test("an attachment over max_attachment_bytes fails the broadcast with its size and the limit")
    func overLimit() async throws {
        try await FileServerDouble.with { files in
            let big = [UInt8](repeating: 0x41, count: Int(12.3 * 1_048_576))
            files.serve("/big.pdf", bytes: big, contentType: "application/pdf")
            let error = try await Self.validationError(media: #"[{"type": "document", "url": "\#(files.baseURL)/big.pdf"}]"#)
            #expect(error
                    == "media[0]: attachment \(files.baseURL)/big.pdf is 12.3 MiB; max_attachment_bytes is 10 MiB")
        }
    }

    @Test("an attachment of unannounced size is stopped while it downloads, past the limit")
    func overLimitWhileStreaming() async throws {
        try await FileServerDouble.with { files in
            files.serve("/stream.bin", bytes: [UInt8](repeating: 0x42, count: 200_000), announcesLength: false)
            let error = try await Self.validationError(extra: #", "max_attachment_bytes": 65536"#, media: #"[{"type": "document", "url": "\#(files.baseURL)/stream.bin"}]"#)
            #expect(error == "media[0]: attachment \(files.baseURL)/stream.bin is more than 64 KiB; max_attachment_bytes is 64 KiB")
        }
    }

    @Test("attachments over max_attachment_bytes together fail the broadcast at the item that overflows")
    func overLimitTogether() async throws {
        try await FileServerDouble.with { files in
            files.serve("/a.bin", bytes: Array(Self.binary[..<2048]))
            files.serve("/b.bin", bytes: Array(Self.binary[..<2048]))
            let media = #"[{"type": "document", "url": "\#(files.baseURL)/a.bin"}, {"type": "document", "url": "\#(files.baseURL)/b.bin"}]"#
            let error = try await Self.validationError(extra: #", "max_attachment_bytes": 3000"#, media: media)
            #expect(error
                    == "media[1]: attachment \(files.baseURL)/b.bin does not fit in the 952 bytes left after the items before it; max_attachment_bytes is 3000 bytes for all attachments together")
        }
    }

    @Test("an attachment the server does not have fails the broadcast with the HTTP status")
    func notFound() async throws {
        try await FileServerDouble.with { files in
            let error = try await Self.validationError(media: #"[{"type": "document", "url": "\#(files.baseURL)/gone.pdf"}]"#)
            #expect(error
                    == "media[0]: attachment \(files.baseURL)/gone.pdf could not be fetched: the server answered HTTP 404")
        }
    }

    @Test("an unreachable attachment host fails the broadcast with the URL and curl's reason")
    func unreachable() async throws {
        let files = try await FileServerDouble.start()
        let url = "\(files.baseURL)/a.pdf"
        await files.stop()  // nothing listens on that port any more
        let error = try await Self.validationError(media: #"[{"type": "document", "url": "\#(url)"}]"#) ?? ""
        #expect(error.hasPrefix("media[0]: attachment \(url) could not be fetched: "), "\(error)")
    }

    @Test("an edit of a started email broadcast that changes its media is rejected; one that keeps it is accepted")
    func mediaEditRejected() async throws {
        try await FileServerDouble.with { files in
            files.serve("/a.pdf", bytes: Self.pdf)
            try await withTestConnection { db, c in
                let id = try await Self.emailBroadcast(c, media: #"[{"type": "document", "url": "\#(files.baseURL)/a.pdf"}]"#,
                                                       contacts: [try await F.contact(c)])
                try await F.withScheduler(db) {
                    try await F.waitUntil("it sends") { try await F.status(c, id) == "sending" }
                    try await c.execute("UPDATE herald.broadcasts SET body = 'Hello {{ first_name }}' WHERE id = \(id)")
                    try await F.waitUntil("the body edit is accepted") {
                        try await F.count(c, "SELECT count(*) FROM herald.broadcasts WHERE id = \(id) AND definition_changed_at IS NULL") == 1
                    }
                    #expect(try await F.status(c, id) == "sending")
                    try await c.execute("""
                        UPDATE herald.broadcasts SET body = 'Hi again',
                               media = '[{"type": "document", "url": "https://cdn.example/b.pdf"}]' WHERE id = \(id)
                        """)
                    try await F.waitUntil("the media edit is rejected") { try await F.status(c, id) == "failed" }
                }
                let error = try await F.error(c, id)
                #expect(error == "edit rejected: the media of an email broadcast cannot change once it has started (its attachments were fetched then): cancel it and schedule a new one")
                #expect(files.fetchCount("/a.pdf") == 1)
            }
        }
    }

    @Test("a media edit that reaches a broadcast still being expanded is rejected; the new file is never fetched")
    func mediaEditMidExpansion() async throws {
        try await FileServerDouble.with { files in
            files.serve("/a.pdf", bytes: Self.pdf)
            files.serve("/b.pdf", bytes: Self.pdf)
            try await withTestConnection { _, c in
                let g = try await SchedulerLifecycleTests.bigGroup(c, 250)
                let id = try await Self.emailBroadcast(c, media: #"[{"type": "document", "url": "\#(files.baseURL)/a.pdf"}]"#,
                                                       contacts: [])
                try await c.execute("INSERT INTO herald.broadcast_groups (broadcast_id, group_id) VALUES (\(id), \(g))")
                // The leader pass by pass: a first chunk of 10 contact ids, then chunks of 100.
                var leader = SchedulerStreamingTests.leader(c)
                #expect(try await leader.startDueBroadcasts())
                #expect(try await F.status(c, id) == "sending")
                #expect(try await F.expanded(c, id) == false)
                try await c.execute("""
                    UPDATE herald.broadcasts SET media = jsonb_build_array(jsonb_build_object('type', 'document', 'url', \(files.baseURL + "/b.pdf")::text))
                    WHERE id = \(id)
                    """)
                // The race seen in CI: the leader listed the due broadcasts just before the edit
                // committed (a stamped edit is not due), then read the edited definition to plan the
                // next chunk again (as after an accepted edit of another column). Played here by
                // hiding the stamp from the due list and dropping the plan.
                try await c.execute("UPDATE herald.broadcasts SET definition_changed_at = NULL WHERE id = \(id)")
                leader.plans[id] = nil
                _ = try await leader.startDueBroadcasts()
                #expect(try await F.status(c, id) == "failed")
                #expect(try await F.error(c, id)
                        == "edit rejected: the media of an email broadcast cannot change once it has started (its attachments were fetched then): cancel it and schedule a new one")
                #expect(files.fetchCount("/a.pdf") == 1)
                #expect(files.fetchCount("/b.pdf") == 0, "the edited media was fetched")
            }
        }
    }

    @Test("two attachments reach every recipient through scheduler and worker, each file fetched once")
    func endToEnd() async throws {
        let double = try await ProviderDouble.start()
        let files = try await FileServerDouble.start()
        files.serve("/files/catalogue.pdf", bytes: Self.pdf, contentType: "application/pdf")
        files.serve("/files/Cup%C3%B3n%20primavera.bin", bytes: Self.binary)
        let recipients = 20
        try await withTestConnection { db, c in
            let contacts = try await W.contacts(c, count: recipients)
            let media = """
                [{"type": "document", "url": "\(files.baseURL)/files/catalogue.pdf", "filename": "Каталог весна 2026.pdf"},
                 {"type": "image", "url": "\(files.baseURL)/files/Cup%C3%B3n%20primavera.bin"}]
                """
            let id = try await Self.emailBroadcast(c, smtpURL: double.smtpURL, media: media, contacts: contacts,
                                                   html: "<p>Hi {{ first_name }}</p>")
            try await F.withScheduler(db, environment: .init(variables: W.environment)) {
                let done = try await W.runWorker(W.configuration(db), timeout: .seconds(60)) {
                    try await F.status(c, id) == "completed"
                }
                #expect(done)
            }
            #expect(try await W.statuses(c, broadcast: id) == ["sent": recipients])
            #expect(files.fetchCount("/files/catalogue.pdf") == 1)
            #expect(files.fetchCount("/files/Cup%C3%B3n%20primavera.bin") == 1)
            // The bytes are dropped once the broadcast ends.
            #expect(try await F.count(c, "SELECT count(*) FROM herald.broadcast_attachments") == 0)

            let mails = double.receivedMails()
            #expect(mails.count == recipients)
            for mail in mails {
                let parsed = try ParsedMail.parse(mail.data)
                #expect(parsed.parts.map(\.type) == ["multipart/mixed", "multipart/alternative", "text/plain", "text/html",
                                                     "application/pdf", "application/octet-stream"])
                #expect(parsed.parts[2].text?.hasSuffix(",\nthe catalogue is attached.\n") == true)
                #expect(parsed.parts[4].filename == "Каталог весна 2026.pdf")
                #expect(parsed.parts[4].bytes == Self.pdf)
                #expect(parsed.parts[5].filename == "Cupón primavera.bin")
                #expect(parsed.parts[5].bytes == Self.binary)
            }
        }
        await files.stop()
        await double.stop()
    }
}
