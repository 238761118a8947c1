import Foundation

/// A text a person sent to a business number: what the consent loop reads for STOP and START.
public struct InboundText: Sendable, Equatable {
    /// The channel's provider key: Meta's `metadata.phone_number_id`, Twilio's `AccountSid`.
    public var account: String
    /// The sender as `contacts.phone` stores it (E.164 with `+`).
    public var phone: String
    public var body: String

    /// The text messages (`messages[]` of type `text`: `text.body`) of a WhatsApp notification
    /// whose signature was already checked. Other message types (buttons, media…) carry no
    /// keyword. Parse failures give no texts: the receipts' handler has refused such bodies.
    public static func whatsApp(_ body: some Collection<UInt8>) -> [InboundText] {
        guard let root = try? WebhookJSON.parse(body), let entries = root["entry"]?.array else { return [] }
        var texts: [InboundText] = []
        for entry in entries {
            for change in entry["changes"]?.array ?? [] {
                guard let value = change["value"], let account = value["metadata"]?["phone_number_id"]?.scalarText else { continue }
                for message in value["messages"]?.array ?? [] {
                    guard let from = message["from"]?.scalarText, !from.isEmpty,
                          let text = message["text"]?["body"]?.string else { continue }
                    texts.append(InboundText(account: account, phone: from.hasPrefix("+") ? from : "+" + from, body: text))
                }
            }
        }
        return texts
    }

    /// Twilio's incoming-message webhook (`From`, `Body`, `AccountSid` form parameters).
    public static func twilio(_ parameters: [FormField]) -> InboundText? {
        func value(_ name: String) -> String? { parameters.first(where: { $0.name == name })?.value }
        guard let account = value("AccountSid"), !account.isEmpty, let from = value("From"), !from.isEmpty else { return nil }
        return InboundText(account: account, phone: from, body: value("Body") ?? "")
    }
}
