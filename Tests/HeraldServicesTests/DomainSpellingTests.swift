import HeraldCore
import HeraldPostgres
import HeraldProviders
import HeraldTesting
import Testing

/// Every typed state of HeraldCore is spelled exactly as the schema's CHECK constraints spell it,
/// so a value Swift writes is always one the database accepts, and a value the database holds is
/// always one Swift can read.
@Suite("Typed states match the schema")
struct DomainSpellingTests {
    /// The quoted literals of a CHECK constraint (`CHECK (kind IN ('whatsapp', 'sms', …))`).
    private func literals(_ constraint: String, on c: PostgresConnection) async throws -> Set<String> {
        let definition = try await c.query("""
            SELECT pg_get_constraintdef(oid) FROM pg_constraint
            WHERE conname = \(constraint) AND connamespace = 'herald'::regnamespace
            """)
        let text = try #require(try definition.first?.decode(String.self, at: 0), "no constraint \(constraint)")
        var values: Set<String> = []
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "'") {
            let after = rest[rest.index(after: open)...]
            guard let close = after.firstIndex(of: "'") else { break }
            values.insert(String(after[..<close]))
            rest = after[after.index(after: close)...]
        }
        return values
    }

    @Test("each enum lists exactly the values its CHECK constraints allow")
    func enumsMatchChecks() async throws {
        try await withTestConnection { (_, c) async throws in
            let kinds = Set(ChannelKind.allCases.map(\.rawValue))
            #expect(try await literals("channels_kind_check", on: c) == kinds)
            #expect(try await literals("opt_outs_kind_check", on: c) == kinds)
            #expect(try await literals("broadcasts_status_check", on: c) == Set(BroadcastStatus.allCases.map(\.rawValue)))
            // `sending` is derived from a live lease, never stored.
            #expect(try await literals("messages_status_check", on: c)
                == Set(MessageStatus.allCases.filter { $0 != .sending }.map(\.rawValue)))
            #expect(try await literals("messages_skip_reason_check", on: c) == Set(SkipReason.allCases.map(\.rawValue)))
            #expect(try await literals("messages_failure_kind_check", on: c) == Set(FailureKind.allCases.map(\.rawValue)))
            #expect(try await literals("delivery_receipts_effect_check", on: c) == Set(ReceiptStatus.allCases.map(\.rawValue)))
            #expect(try await literals("templates_status_check", on: c) == Set(TemplateStatus.allCases.map(\.rawValue)))
            #expect(try await literals("templates_header_format_check", on: c)
                == Set(TemplateHeaderFormat.allCases.map(\.rawValue)))
        }
    }

    @Test("the registry's providers are exactly the providers the schema allows")
    func providersMatchCheck() async throws {
        try await withTestConnection { (_, c) async throws in
            #expect(try await literals("channels_provider_check", on: c) == Set(ProviderRegistry.standard.names))
        }
    }
}
