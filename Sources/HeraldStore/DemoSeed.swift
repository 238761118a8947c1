import HeraldCore
import HeraldPostgres

/// What `herald demo` writes, as the admin tool would: a realistic audience, sandbox channels,
/// two approved WhatsApp templates (one with an image header) and five `scheduled` broadcasts,
/// one of them a media template.
///
/// The audience is generated in SQL (`generate_series` over arrays of names), so tens of
/// thousands of contacts take about a second, and deterministically: contact `i` of a run always
/// gets the same name, number, city and opt-outs (modular arithmetic, no randomness).
///
/// - Yorùbá, Igbo, Hausa, English, French, Spanish and Chinese names, diacritics and Hanzi
///   included; about 3% without a first name (NULL or empty), so fallbacks show;
/// - E.164 phone numbers by country, about 1.5% in a local or spaced format (`08031234567`) and
///   2% missing; emails, about 1.3% malformed and 3% missing: those become `invalid_address` skips;
/// - `attributes` `{"city", "tier"}`; `last_inbound_at` within the last day for 30% (the others
///   are outside WhatsApp's 24-hour window for a message without a template);
/// - 3% opted out of each kind; overlapping groups ("Lagos VIP", "Newsletter subscribers",
///   "Abuja", "Northern Nigeria").
///
/// Every row is new; names that must be unique (channels, groups) carry the run's tag when one is
/// given, so repeated runs against one database do not clash.
public enum DemoSeed {
    /// The broadcasts a run created.
    public struct Result: Sendable {
        public var contacts: Int
        public var broadcasts: [Int64]
        /// Group name and member count.
        public var groups: [(name: String, members: Int)]
        /// The scheduled-for-later broadcast's delay.
        public var laterDelay: Duration
        /// The sandbox channels: id and, with ``Options/receiptsSecretEnv``, the `phone_number_id`
        /// their receipts name.
        public var channels: [(id: Int64, phoneNumberID: String?)] = []
    }

    /// How a run's channels are set up.
    public struct Options: Sendable {
        /// Contacts to create.
        public var contacts: Int
        /// Appended to channel and group names (e.g. `demo-k3f9`); nil for none (a fresh database).
        public var tag: String?
        /// Each channel's `rate_per_second`.
        public var ratePerSecond: Int = 2000
        /// Each channel's `burst`.
        public var burst: Int = 200
        /// The sandbox's `latency_ms`.
        public var latencyMs: Int = 20
        /// The sandbox's `failure_rate`.
        public var failureRate: Double = 0.01
        /// How far ahead the fourth broadcast's `send_at` is.
        public var laterDelay: Duration = .seconds(5)
        /// The channels' `app_secret_env` (with a `phone_number_id` each), so that the sandbox's
        /// delivery receipts are signed; nil: no receipts.
        public var receiptsSecretEnv: String?

        public init(contacts: Int, tag: String?) {
            self.contacts = contacts
            self.tag = tag
        }
    }

    /// Writes the whole demo in one transaction.
    /// - Returns: the broadcasts' ids, in display order.
    /// - Throws: ``PostgresError``.
    public static func seed(_ options: Options, on connection: PostgresConnection) async throws -> Result {
        try await connection.transaction { c in
            try await seed(options, in: c)
        }
    }

    private static func seed(_ options: Options, in c: isolated PostgresConnection) async throws -> Result {
        let suffix = options.tag.map { " (\($0))" } ?? ""
        let channelSuffix = options.tag.map { "-\($0)" } ?? ""

        // 1. Contacts: one row per i, ids drawn from the table's own identity sequence first so
        //    that groups and opt-outs can be derived from i too.
        // CREATE TABLE AS takes no parameters; the count is an Int, so splicing it in is safe.
        try c.execute(PostgresQuery(unsafeSQL: peopleSQL(count: options.contacts)))
        try c.execute("""
            INSERT INTO herald.contacts (id, first_name, last_name, phone, email, attributes, last_inbound_at)
            OVERRIDING SYSTEM VALUE
            SELECT id, first_name, last_name, phone, email,
                   jsonb_build_object('city', city, 'tier', tier), last_inbound_at
            FROM demo_people ORDER BY i
            """)
        try c.execute("""
            INSERT INTO herald.opt_outs (contact_id, channel_kind)
            SELECT p.id, k.kind
            FROM demo_people p, unnest(ARRAY['whatsapp', 'sms', 'email']) WITH ORDINALITY AS k(kind, n)
            WHERE (p.i * 31 + k.n * 17) % 100 < 3
            """)

        // 2. Groups, overlapping.
        let groupRules: [(name: String, rule: String)] = [
            ("Lagos VIP", "city = 'Lagos' AND tier IN ('gold', 'silver')"),
            ("Newsletter subscribers", "(i * 3) % 5 < 3"),
            ("Abuja", "city = 'Abuja'"),
            ("Northern Nigeria", "city IN ('Kano', 'Kaduna', 'Abuja', 'Sokoto')"),
        ]
        var groupIDs: [String: Int64] = [:]
        var groups: [(name: String, members: Int)] = []
        for (name, rule) in groupRules {
            let id = try c.query("INSERT INTO herald.groups (name) VALUES (\(name + suffix)) RETURNING id")[0].decode(Int64.self, "id")
            // The rule is one of the constants above, never input.
            let members = try c.execute(PostgresQuery(unsafeSQL: """
                INSERT INTO herald.group_members (group_id, contact_id) SELECT $1::bigint, id FROM demo_people WHERE \(rule)
                """, binds: [String(id)]))
            groupIDs[name] = id
            groups.append((name + suffix, members))
        }

        // 3. Channels on the sandbox provider, and an approved template.
        var channels: [String: Int64] = [:]
        var channelList: [(id: Int64, phoneNumberID: String?)] = []
        for kind in ["whatsapp", "sms", "email"] {
            let phoneNumberID = options.receiptsSecretEnv.map { _ in kind + "-sandbox" + channelSuffix }
            var settings = #"{"latency_ms": \#(options.latencyMs), "failure_rate": \#(options.failureRate)"#
            if let env = options.receiptsSecretEnv, let phoneNumberID {
                settings += #", "phone_number_id": "\#(phoneNumberID)", "app_secret_env": "\#(env)""#
            }
            settings += "}"
            let id = try c.query("""
                INSERT INTO herald.channels (name, kind, provider, settings, rate_per_second, burst)
                VALUES (\(kind + "-sandbox" + channelSuffix), \(kind), 'sandbox', \(settings)::jsonb,
                        \(options.ratePerSecond), \(options.burst))
                RETURNING id
                """)[0].decode(Int64.self, "id")
            channels[kind] = id
            channelList.append((id, phoneNumberID))
        }
        let template = try c.query("""
            INSERT INTO herald.templates (channel_id, name, language, body, status)
            VALUES (\(channels["whatsapp"]!), 'weekend_sale', 'en_US',
                    'Hello {{1}}! Our weekend sale in {{2}} starts now: {{3}} off for {{4}} members. Reply STOP to opt out.',
                    'approved')
            RETURNING id
            """)[0].decode(Int64.self, "id")
        // A media template (issue 18): its image header is filled by the broadcast's `media`, a
        // personalized link the provider fetches (the sandbox accepts it without fetching).
        let mediaTemplate = try c.query("""
            INSERT INTO herald.templates (channel_id, name, language, body, status, category, header_format)
            VALUES (\(channels["whatsapp"]!), 'new_lookbook', 'en_US',
                    'Hi {{1}}, the new lookbook for {{2}} is out. Reply STOP to opt out.', 'approved', 'marketing', 'image')
            RETURNING id
            """)[0].decode(Int64.self, "id")

        // 4. Broadcasts, all `scheduled`: the scheduler takes it from here.
        struct Spec {
            var name: String
            var kind: String
            var groups: [String]
            var subject: String?
            var body: String?
            var html: String?
            var template: Int64?
            var params: [String]?
            var media: String?
            var later = false
        }
        let specs = [
            Spec(name: "Weekend sale · WhatsApp template", kind: "whatsapp",
                 groups: ["Lagos VIP", "Abuja", "Northern Nigeria"], template: template,
                 params: [#"{{ first_name | default: "there" }}"#, #"{{ attributes.city | default: "your city" }}"#,
                          "20%", #"{{ attributes.tier | default: "all" }}"#]),
            Spec(name: "New lookbook · WhatsApp image template", kind: "whatsapp", groups: ["Lagos VIP"],
                 template: mediaTemplate,
                 params: [#"{{ first_name | default: "there" }}"#, #"{{ attributes.city | default: "you" }}"#],
                 media: #"[{"type": "image", "url": "https://cdn.shop.example/lookbook/{{ attributes.city | default: \"all\" }}.jpg"}]"#),
            Spec(name: "Flash sale · SMS", kind: "sms", groups: ["Newsletter subscribers", "Lagos VIP"],
                 body: #"Hi {{ first_name | default: "friend" }}, 24h flash sale: 15% off with code FLASH15. Reply STOP to opt out."#),
            Spec(name: "Monthly newsletter · email", kind: "email", groups: ["Newsletter subscribers"],
                 subject: #"{{ first_name | default: "Hello" }}, this month's picks in {{ attributes.city | default: "your city" }}"#,
                 body: #"Hello {{ name | default: "there" }}, here are this month's picks. Unsubscribe: https://shop.example/u/{{ contact_id }}"#,
                 html: #"<h1>Hello {{ name | default: "there" }}</h1><p>This month's picks for {{ attributes.city | default: "you" }}, {{ attributes.tier }} member.</p>"#),
            Spec(name: "VIP early access · WhatsApp (later)", kind: "whatsapp", groups: ["Lagos VIP", "Abuja"],
                 body: #"{{ first_name | default: "Hello" }}, VIP early access opens now. Reply YES to reserve."#, later: true),
        ]
        let laterSeconds = options.laterDelay.inSeconds
        var broadcasts: [Int64] = []
        for spec in specs {
            let params = try spec.params.map { try PostgresJSON(encoding: $0) }
            let id = try c.query("""
                INSERT INTO herald.broadcasts (name, channel_id, subject, body, html_body, template_id, template_params,
                                               media, send_at, status)
                VALUES (\(spec.name), \(channels[spec.kind]!), \(spec.subject), \(spec.body), \(spec.html), \(spec.template),
                        \(params)::jsonb, \(spec.media)::jsonb,
                        CASE WHEN \(spec.later)::boolean THEN clock_timestamp() + make_interval(secs => \(laterSeconds)::float8) END,
                        'scheduled')
                RETURNING id
                """)[0].decode(Int64.self, "id")
            for group in spec.groups {
                try c.execute("INSERT INTO herald.broadcast_groups (broadcast_id, group_id) VALUES (\(id), \(groupIDs[group]!))")
            }
            broadcasts.append(id)
        }
        return Result(contacts: options.contacts, broadcasts: broadcasts, groups: groups, laterDelay: options.laterDelay,
                      channels: channelList)
    }

    /// `demo_people`: contact i's fields and id ($1 = how many). Names are grouped by culture so
    /// first and last names match; the culture of i follows a fixed mix weighted to Nigeria.
    static func peopleSQL(count: Int) -> String {
        """
        CREATE TEMP TABLE demo_people ON COMMIT DROP AS
        WITH cultures (k, firsts, lasts, cities) AS (VALUES
            (0, ARRAY['Adéwálé', 'Olúwaseun', 'Fúnmiláyọ̀', 'Adébáyọ̀', 'Títílayọ̀', 'Ayọ̀délé', 'Olúwatóyìn', 'Kẹ́hìndé',
                      'Táíwò', 'Bùkọ́lá', 'Ọláolúwa', 'Yéwándé', 'Ìbùkún', 'Dàmilọ́lá', 'Ṣadé', 'Túndé'],
                ARRAY['Ògúnlèye', 'Adéyẹmí', 'Ọlátúnjí', 'Àjàyí', 'Bámidélé', 'Oyèlárán', 'Akínwùmí', 'Fáṣọlá',
                      'Adébísí', 'Ọ̀ṣúntókun', 'Ìlọ̀rí', 'Abíọ́lá'],
                ARRAY['Lagos', 'Lagos', 'Ibadan', 'Abeokuta', 'Lagos', 'Osogbo', 'Ibadan', 'Lagos']),
            (1, ARRAY['Chukwuemeka', 'Ngozi', 'Chiamaka', 'Obinna', 'Adaeze', 'Ifeanyi', 'Chidinma', 'Nnamdi',
                      'Uchenna', 'Amarachi', 'Ikenna', 'Ebere', 'Kelechi', 'Oluchi'],
                ARRAY['Okonkwo', 'Nwankwọ', 'Eze', 'Obi', 'Okafor', 'Nwosu', 'Okeke', 'Chukwu', 'Anyanwụ', 'Ọnwụbiko'],
                ARRAY['Enugu', 'Onitsha', 'Lagos', 'Port Harcourt', 'Owerri', 'Enugu', 'Aba', 'Lagos']),
            (2, ARRAY['Aminu', 'Zainab', 'Hauwa''u', 'Abubakar', 'Fatima', 'Ibrahim', 'Aisha', 'Musa', 'Hadiza',
                      'Sani', 'Maryam', 'Yusuf', 'Halima', 'Usman'],
                ARRAY['Bello', 'Abubakar', 'Sani', 'Danjuma', 'Garba', 'Lawal', 'Yusuf', 'Ɗanladi', 'Ƙaura', 'Shehu'],
                ARRAY['Kano', 'Abuja', 'Kaduna', 'Kano', 'Sokoto', 'Abuja', 'Zaria', 'Kano']),
            (3, ARRAY['Oliver', 'Amelia', 'George', 'Isla', 'Harry', 'Emily', 'Jack', 'Charlotte', 'Thomas', 'Grace'],
                ARRAY['Smith', 'Jones', 'Taylor', 'Brown', 'Williams', 'Wilson', 'O''Brien', 'Evans'],
                ARRAY['London', 'Manchester', 'Lagos', 'Abuja', 'London', 'Leeds']),
            (4, ARRAY['Élodie', 'François', 'Anaïs', 'Jérôme', 'Chloé', 'Benoît', 'Camille', 'Hélène', 'Gaëlle', 'Noël'],
                ARRAY['Lefèvre', 'Dubois', 'Moreau', 'Girard', 'Bérenger', 'Faure', 'Mercier', 'Rousseau'],
                ARRAY['Paris', 'Lyon', 'Marseille', 'Paris', 'Lille']),
            (5, ARRAY['José', 'María José', 'Sofía', 'Álvaro', 'Lucía', 'Martín', 'Begoña', 'Íñigo', 'Inés'],
                ARRAY['Martínez', 'Peña', 'Núñez', 'García', 'Fernández', 'Ibáñez', 'Muñoz', 'López'],
                ARRAY['Madrid', 'Barcelona', 'Sevilla', 'Valencia']),
            (6, ARRAY['秀英', '伟', '芳', '娜', 'Wei', 'Xiuying', 'Jie', 'Li Na', 'Hao', 'Mei'],
                ARRAY['王', '李', '张', '刘', 'Wang', 'Zhang', 'Chen', 'Liu'],
                ARRAY['Shanghai', 'Beijing', 'Guangzhou', 'Lagos', 'Shenzhen'])
        ), base AS (
            SELECT i,
                   (ARRAY[0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 4, 5, 6])[1 + (i * 7) % 20] AS k
            FROM generate_series(1, \(count)) AS i
        ), named AS (
            SELECT b.i, b.k,
                   CASE WHEN b.i % 41 = 0 THEN NULL WHEN b.i % 97 = 0 THEN ''
                        ELSE c.firsts[1 + (b.i * 7 + b.i / 13) % cardinality(c.firsts)] END AS first_name,
                   c.lasts[1 + (b.i * 11 + b.i / 7) % cardinality(c.lasts)] AS last_name,
                   c.cities[1 + (b.i * 3 + b.i / 17) % cardinality(c.cities)] AS city,
                   CASE WHEN (b.i * 13) % 20 < 2 THEN 'gold' WHEN (b.i * 13) % 20 < 7 THEN 'silver' ELSE 'bronze' END AS tier,
                   (b.i::bigint * 7919 + 104729) AS digits
            FROM base b JOIN cultures c ON c.k = b.k
        )
        SELECT i,
               nextval(pg_get_serial_sequence('herald.contacts', 'id')) AS id,
               first_name, last_name, city, tier,
               CASE
                   WHEN i % 53 = 0 THEN NULL
                   -- Local formats a careless import leaves behind: not E.164, so `invalid_address`.
                   WHEN i % 89 = 0 THEN '0803' || lpad((digits % 10000000)::text, 7, '0')
                   WHEN i % 211 = 0 THEN '+234 803 ' || lpad((digits % 1000)::text, 3, '0') || ' ' || lpad((digits % 10000)::text, 4, '0')
                   WHEN k IN (0, 1, 2) OR city IN ('Lagos', 'Abuja') THEN
                       '+234' || (ARRAY['803', '806', '813', '816', '703', '706', '810', '905', '802', '808'])[1 + i % 10]
                              || lpad((digits % 10000000)::text, 7, '0')
                   WHEN k = 3 THEN '+447' || lpad((digits % 1000000000)::text, 9, '0')
                   WHEN k = 4 THEN '+33' || (6 + i % 2)::text || lpad((digits % 100000000)::text, 8, '0')
                   WHEN k = 5 THEN '+346' || lpad((digits % 100000000)::text, 8, '0')
                   ELSE '+861' || (ARRAY['3', '5', '8'])[1 + i % 3] || lpad((digits % 1000000000)::text, 9, '0')
               END AS phone,
               CASE
                   WHEN i % 37 = 0 THEN NULL
                   WHEN i % 103 = 0 THEN local || '.at.example.com'
                   WHEN i % 307 = 0 THEN local || '@example'
                   ELSE local || '@' || (ARRAY['example.com', 'example.org', 'example.net', 'mail.example'])[1 + i % 4]
               END AS email,
               CASE
                   WHEN (i * 17) % 10 < 3 THEN now() - make_interval(mins => ((i * 37) % 1380)::int)
                   WHEN (i * 17) % 10 = 3 THEN now() - make_interval(days => 3 + i % 20)
               END AS last_inbound_at
        FROM (
            SELECT n.*,
                   coalesce(nullif(regexp_replace(lower(translate(coalesce(first_name, ''),
                                'áàâäãéèêëíìîïóòôöõúùûüñçọẹṣÁÀÉÈÍÓÒÚÑÇỌẸṢƊƘɗƙ', 'aaaaaeeeeiiiiooooouuuuncoesAAEEIOOUNCOESDKdk')),
                                '[^a-z]', '', 'g'), ''), 'customer')
                   || '.' || coalesce(nullif(regexp_replace(lower(translate(last_name,
                                'áàâäãéèêëíìîïóòôöõúùûüñçọẹṣÁÀÉÈÍÓÒÚÑÇỌẸṢƊƘɗƙ', 'aaaaaeeeeiiiiooooouuuuncoesAAEEIOOUNCOESDKdk')),
                                '[^a-z]', '', 'g'), ''), 'c') || (i % 1000)::text AS local
            FROM named n
        ) p
        """
    }
}
