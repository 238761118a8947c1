import HeraldPostgres
import HeraldProviders
import HeraldStore

/// Meta's `message_template_status_update` notifications on `POST /webhooks/whatsapp`
/// (contract section 4), applied at once: APPROVED → `approved`, REJECTED → `rejected`, PAUSED →
/// `paused`, DISABLED → `disabled`, PENDING and IN_APPEAL → `pending`, the reason to
/// `status_reason`.
///
/// The handler calls this only after the body's signature was verified, with the channels that
/// use the app secret that verified it; an update changes a template only of such a channel
/// whose `waba_id` is the notification's `entry[].id`. A replay changes nothing more.
enum TemplateStatusWebhook {
    /// Applies every template status change in `body`.
    /// - Returns: template rows changed.
    /// - Throws: when the database fails (the handler answers 503 and Meta delivers it again).
    @discardableResult
    static func apply(_ body: [UInt8], channelIDs: [Int64], pool: PostgresPool) async throws -> Int {
        let updates = WhatsAppTemplateStatusUpdate.parse(body)
        guard !updates.isEmpty, !channelIDs.isEmpty else { return 0 }
        return try await pool.withConnection { c in
            var changed = 0
            for u in updates {
                changed += try await TemplateStore().applyStatus(u.status, reason: u.reason, wabaID: u.wabaID,
                                                                 metaTemplateID: u.templateID, name: u.name, language: u.language,
                                                                 channelIDs: channelIDs, on: c)
            }
            return changed
        }
    }
}
