import Foundation
import HeraldCore

/// One `message_template_status_update` change of a WhatsApp notification: Meta approved,
/// rejected, paused or disabled a template of a WhatsApp Business Account.
///
/// ```
/// {"object":"whatsapp_business_account","entry":[{"id":"<WABA id>","time":…,"changes":[{
///   "field":"message_template_status_update",
///   "value":{"event":"PAUSED","message_template_id":1234,"message_template_name":"promo",
///            "message_template_language":"en_US","reason":"…",
///            "other_info":{"title":"…","description":"…"}}}]}]}
/// ```
public struct WhatsAppTemplateStatusUpdate: Sendable, Equatable {
    /// `entry[].id`: the WhatsApp Business Account (a channel's `waba_id`).
    public var wabaID: String
    /// `message_template_id` (as text).
    public var templateID: String?
    public var name: String?
    public var language: String?
    /// What the event makes of the template.
    public var status: TemplateStatus
    /// `reason` unless it is `NONE`, else `other_info`'s description or title.
    public var reason: String?

    /// The template status changes of a notification body, in order; other fields and events
    /// that change nothing (FLAGGED, …) are left out. A body that is not JSON gives none: the
    /// caller parsed it already as a notification.
    public static func parse(_ body: some Collection<UInt8>) -> [WhatsAppTemplateStatusUpdate] {
        // Most notifications are message statuses: skip the second parse of those.
        guard Array(body).firstRange(of: Array("message_template_status_update".utf8)) != nil else { return [] }
        // WebhookJSON keeps numbers as their text: template ids can exceed a Double's 53 bits.
        guard let root = try? WebhookJSON.parse(body), let entries = root["entry"]?.array else { return [] }
        var updates: [WhatsAppTemplateStatusUpdate] = []
        for entry in entries {
            guard let wabaID = nonEmpty(entry["id"]?.scalarText), let changes = entry["changes"]?.array else { continue }
            for change in changes where change["field"]?.string == "message_template_status_update" {
                guard let value = change["value"], let event = value["event"]?.string,
                      let status = TemplateStatus(metaEvent: event) else { continue }
                let templateID = nonEmpty(value["message_template_id"]?.scalarText)
                let name = nonEmpty(value["message_template_name"]?.string)
                let language = nonEmpty(value["message_template_language"]?.string)
                guard templateID != nil || (name != nil && language != nil) else { continue }
                var reason = value["reason"]?.string.flatMap { $0.isEmpty || $0.uppercased() == "NONE" ? nil : $0 }
                if reason == nil, let info = value["other_info"] {
                    reason = nonEmpty(info["description"]?.string) ?? nonEmpty(info["title"]?.string)
                }
                updates.append(WhatsAppTemplateStatusUpdate(wabaID: wabaID, templateID: templateID, name: name, language: language,
                                                            status: status, reason: reason.map(Text.clip)))
            }
        }
        return updates
    }

    private static func nonEmpty(_ text: String?) -> String? {
        guard let text, !text.isEmpty else { return nil }
        return text
    }
}
