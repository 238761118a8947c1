import HeraldPostgres
import HeraldServices
import HeraldTesting
import Testing

/// The contract's Media rules and the rules of WhatsApp template headers and buttons: each
/// broken rule fails its broadcast with its own error, and no message is made.
@Suite("Scheduler: media, template header and button validation")
struct MediaValidationTests {
    typealias F = SchedulerFixtures
    typealias V = SchedulerValidationTests

    /// A WhatsApp broadcast of template "promo" (body with two placeholders, params given), with
    /// the template's header and buttons and the broadcast's media columns as told.
    static func rich(_ c: PostgresConnection, contact: Int64, header: String = "none", headerText: String? = nil,
                     buttons: String? = nil, media: String? = nil, headerParams: String? = nil,
                     buttonParams: String? = nil) async throws -> Int64 {
        let ch = try await V.whatsApp(c)
        let t = try await V.template(c, channel: ch)
        try await c.execute("""
            UPDATE herald.templates SET header_format = \(header), header_text = \(headerText), buttons = \(buttons)::jsonb
            WHERE id = \(t)
            """)
        let id = try await F.broadcast(c, channel: ch, body: nil, template: t, templateParams: #"["a", "b"]"#, contacts: [contact])
        try await setMedia(c, id, media: media, headerParams: headerParams, buttonParams: buttonParams)
        return id
    }

    static func setMedia(_ c: PostgresConnection, _ id: Int64, media: String?, headerParams: String? = nil,
                         buttonParams: String? = nil) async throws {
        try await c.execute("""
            UPDATE herald.broadcasts SET media = \(media)::jsonb, template_header_params = \(headerParams)::jsonb,
                   template_button_params = \(buttonParams)::jsonb
            WHERE id = \(id)
            """)
    }

    static let image = #"[{"type": "image", "url": "https://cdn.example/a.png"}]"#
    static let buttons = #"[{"type": "url", "text": "Track", "url": "https://shop.example/o/{{1}}"}, {"type": "phone_number", "text": "Call"}, {"type": "quick_reply", "text": "Stop"}]"#

    static let cases: [ValidationCase] = [
        ValidationCase(name: "media header without media",
                       error: #"template "promo" has an image header but the broadcast has no media to fill it"#) { c, contact in
            try await rich(c, contact: contact, header: "image")
        },
        ValidationCase(name: "a header format this version does not know (a newer schema's)",
                       error: #"template "promo" has header_format "location", which this version of Herald cannot send"#) { c, contact in
            try await c.execute("ALTER TABLE herald.templates DROP CONSTRAINT templates_header_format_check")
            return try await rich(c, contact: contact, header: "location")
        },
        ValidationCase(name: "media of the wrong type", error: #"template "promo" has a document header but media[0] is an image"#) { c, contact in
            try await rich(c, contact: contact, header: "document", media: image)
        },
        ValidationCase(name: "media on a template without a media header",
                       error: #"template "promo" has no media header (header_format text), so it cannot carry the broadcast's media"#) { c, contact in
            try await rich(c, contact: contact, header: "text", headerText: "Sale", media: image)
        },
        ValidationCase(name: "header params missing",
                       error: #"template "promo" has 1 header placeholder(s) but template_header_params has 0 value(s)"#) { c, contact in
            try await rich(c, contact: contact, header: "text", headerText: "Hi {{1}}")
        },
        ValidationCase(name: "header params on a media header",
                       error: #"template "promo" has 0 header placeholder(s) but template_header_params has 1 value(s)"#) { c, contact in
            try await rich(c, contact: contact, header: "image", media: image, headerParams: #"["x"]"#)
        },
        ValidationCase(name: "button params too few",
                       error: #"template "promo" has 2 button(s) that take a value but template_button_params has 1 value(s)"#) { c, contact in
            try await rich(c, contact: contact, buttons: buttons, buttonParams: #"["NG-42"]"#)
        },
        ValidationCase(name: "a param on a button that takes none",
                       error: #"template "promo" has 2 button(s) that take a value but template_button_params has 3 value(s); buttons[1] take(s) none"#) { c, contact in
            try await rich(c, contact: contact, buttons: buttons, buttonParams: #"["NG-42", "call", "stop"]"#)
        },
        ValidationCase(name: "a button Herald cannot send",
                       error: #"template "promo": buttons[0] has type "flow", which Herald cannot send (url, quick_reply, phone_number, copy_code)"#) { c, contact in
            try await rich(c, contact: contact, buttons: #"[{"type": "flow", "text": "Go"}]"#)
        },
        ValidationCase(name: "header params not strings", error: "template_header_params[0] is not a string") { c, contact in
            try await rich(c, contact: contact, header: "text", headerText: "Hi {{1}}", headerParams: "[true]")
        },
        ValidationCase(name: "button params not strings", error: "template_button_params[1] is not a string") { c, contact in
            try await rich(c, contact: contact, buttons: buttons, buttonParams: #"["a", 2]"#)
        },
        ValidationCase(name: "unknown tag in a button param",
                       error: "unknown personalization tag {{ coupon }} in template_button_params[1]") { c, contact in
            try await rich(c, contact: contact, buttons: buttons, buttonParams: #"["a", "{{ coupon }}"]"#)
        },
        ValidationCase(name: "more than one media item on WhatsApp",
                       error: "media has 2 items but a WhatsApp message takes at most one") { c, contact in
            try await rich(c, contact: contact, header: "image",
                           media: #"[{"type": "image", "url": "https://cdn.example/a.png"}, {"type": "image", "url": "https://cdn.example/b.png"}]"#)
        },
        ValidationCase(name: "audio for a template's media header",
                       error: #"template "promo" has an image header but media[0] is an audio"#) { c, contact in
            try await rich(c, contact: contact, header: "image", media: #"[{"type": "audio", "url": "https://cdn.example/a.ogg"}]"#)
        },
        ValidationCase(name: "audio on a template without a media header",
                       error: #"template "promo" has no media header (header_format none), so it cannot carry the broadcast's media"#) { c, contact in
            try await rich(c, contact: contact, media: #"[{"type": "audio", "url": "https://cdn.example/a.ogg"}]"#)
        },
        ValidationCase(name: "a media type that does not exist", error: "media[0].type must be one of image, video, document, audio") { c, contact in
            try await rich(c, contact: contact, header: "image", media: #"[{"type": "gif", "url": "https://cdn.example/a.gif"}]"#)
        },
        ValidationCase(name: "media without url or id", error: "media[0] has neither url nor whatsapp_media_id") { c, contact in
            try await rich(c, contact: contact, header: "image", media: #"[{"type": "image"}]"#)
        },
        ValidationCase(name: "a media URL that is not https", error: "media[0].url must be an https URL (plain http only to a host in HERALD_ALLOWED_HOSTS)") { c, contact in
            try await rich(c, contact: contact, header: "image", media: #"[{"type": "image", "url": "http://cdn.example/a.png"}]"#)
        },
        ValidationCase(name: "a tag in a media URL's host",
                       error: "media[0].url has a tag in its host: write the scheme and host out, tags only after them") { c, contact in
            try await rich(c, contact: contact, header: "image", media: #"[{"type": "image", "url": "https://{{ attributes.shop }}.example/a.png"}]"#)
        },
        ValidationCase(name: "unknown tag in a media URL", error: "unknown personalization tag {{ size }} in media[0].url") { c, contact in
            try await rich(c, contact: contact, header: "image", media: #"[{"type": "image", "url": "https://cdn.example/{{ size }}.png"}]"#)
        },
        ValidationCase(name: "more than 10 media items on SMS", error: "media has 11 items but an SMS (MMS) takes at most 10") { c, contact in
            let ch = try await F.channel(c)
            let id = try await F.broadcast(c, channel: ch, contacts: [contact])
            let items = (0..<11).map { #"{"type": "image", "url": "https://cdn.example/\#($0).png"}"# }.joined(separator: ",")
            try await setMedia(c, id, media: "[\(items)]")
            return id
        },
        ValidationCase(name: "a WhatsApp media id on SMS",
                       error: "media[0] gives whatsapp_media_id, which only WhatsApp takes: give a url") { c, contact in
            let ch = try await F.channel(c)
            let id = try await F.broadcast(c, channel: ch, contacts: [contact])
            try await setMedia(c, id, media: #"[{"type": "image", "whatsapp_media_id": "123"}]"#)
            return id
        },
        ValidationCase(name: "a tag in an email attachment URL",
                       error: "media[0].url has a tag, but tags are not allowed in email attachment URLs (Herald fetches each file once for the whole broadcast)") { c, contact in
            let ch = try await F.channel(c, name: "mail", kind: "email", provider: "smtp", settings: V.smtp)
            let id = try await F.broadcast(c, channel: ch, subject: "S", contacts: [contact])
            try await setMedia(c, id, media: #"[{"type": "document", "url": "https://cdn.example/{{ first_name }}.pdf"}]"#)
            return id
        },
    ]

    @Test("a broadcast breaking a media, header or button rule ends failed with its error, and nothing is created",
          arguments: cases)
    func fails(_ testCase: ValidationCase) async throws {
        try await testCase.expectFailsValidation()
    }

    @Test("a free-form audio with a body starts (the body goes as a second message)")
    func audioWithBody() async throws {
        try await withTestConnection { db, c in
            let contact = try await F.contact(c)
            let ch = try await V.whatsApp(c)
            let id = try await F.broadcast(c, channel: ch, body: "Listen, {{ first_name }}", contacts: [contact])
            try await Self.setMedia(c, id, media: #"[{"type": "audio", "url": "https://cdn.example/a.ogg"}]"#)
            try await F.runSchedulerUntilStarted(db, c, id)
            #expect(try await F.error(c, id) == nil)
            // The contact is outside the 24-hour window: its message is made (skipped), so the
            // broadcast may already have completed.
            #expect(["sending", "completed"].contains(try await F.status(c, id)))
            #expect(try await F.count(c, "SELECT count(*) FROM herald.messages WHERE broadcast_id = \(id)") == 1)
        }
    }

    @Test("a template with an image header, buttons and media starts")
    func validRichTemplate() async throws {
        try await withTestConnection { db, c in
            let contact = try await F.contact(c)
            let id = try await Self.rich(c, contact: contact, header: "image", buttons: Self.buttons,
                                         media: #"[{"type": "image", "url": "https://cdn.example/{{ first_name }}.png"}]"#,
                                         buttonParams: #"["{{ contact_id }}", "stop"]"#)
            try await F.runSchedulerUntilStarted(db, c, id)
            #expect(try await F.error(c, id) == nil)
            #expect(try await F.status(c, id) == "sending")
        }
    }
}
