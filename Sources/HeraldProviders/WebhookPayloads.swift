import Foundation
import HeraldCore

/// One `name=value` pair of an `application/x-www-form-urlencoded` body.
public struct FormField: Sendable, Equatable {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }
}

/// `application/x-www-form-urlencoded`, as Twilio posts its callbacks.
public enum FormURLEncoded {
    /// Decodes a form body: `&`-separated pairs, `+` as space, `%XX` escapes (UTF-8).
    /// - Throws: ``WebhookParseError`` for a broken `%` escape.
    public static func parse(_ body: some Collection<UInt8>) throws(WebhookParseError) -> [FormField] {
        var fields: [FormField] = []
        for pair in body.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            let name = try decode(parts[0])
            let value = parts.count > 1 ? try decode(parts[1]) : ""
            fields.append(FormField(name, value))
        }
        return fields
    }

    /// Encodes fields the way Twilio and browsers do (for tests and load generators).
    public static func encode(_ fields: [FormField]) -> String {
        fields.map { escape($0.name) + "=" + escape($0.value) }.joined(separator: "&")
    }

    private static func escape(_ text: String) -> String {
        var out = ""
        for b in text.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "*"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            case UInt8(ascii: " "):
                out += "+"
            default:
                let hex = String(b, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }

    private static func decode(_ bytes: some Collection<UInt8>) throws(WebhookParseError) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i != bytes.endIndex {
            let b = bytes[i]
            if b == UInt8(ascii: "+") {
                out.append(0x20)
            } else if b == UInt8(ascii: "%") {
                let h = bytes.index(after: i)
                guard h != bytes.endIndex, bytes.index(after: h) != bytes.endIndex,
                      let high = hexValue(bytes[h]), let low = hexValue(bytes[bytes.index(after: h)]) else {
                    throw WebhookParseError("not a valid form body: broken % escape")
                }
                out.append(high << 4 | low)
                i = bytes.index(after: h)
            } else {
                out.append(b)
            }
            i = bytes.index(after: i)
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x41...0x46: c - 0x41 + 10
        case 0x61...0x66: c - 0x61 + 10
        default: nil
        }
    }
}

// MARK: - Meta (WhatsApp Cloud API)

/// A WhatsApp Cloud API webhook notification (`"object": "whatsapp_business_account"`): the
/// statuses of messages Herald sent, and messages contacts wrote to the business.
///
/// Meta batches: one POST may hold several `entry[]` items, each with several `changes[]`, each
/// with several `statuses[]` or `messages[]`, for different phone numbers of the same app.
/// Changes of other fields (template reviews, account updates) are ignored.
public struct WhatsAppNotification: Sendable, Equatable {
    /// One `statuses[]` item.
    public struct Status: Sendable, Equatable {
        /// `metadata.phone_number_id` of its change: the channel.
        public var phoneNumberID: String
        /// `id`: the `wamid` Meta answered the send with.
        public var messageID: String
        /// `status` as Meta wrote it (`sent`, `delivered`, `read`, `failed`, `deleted`, …).
        public var status: String
        /// `timestamp` (Unix seconds).
        public var timestamp: Date?
        /// `recipient_id`: the contact's WhatsApp id (digits).
        public var recipientID: String?
        /// `biz_opaque_callback_data`: Herald puts its message id there on every send.
        public var callbackData: String?
        /// `errors[0].code`, for a failed message.
        public var errorCode: String?
        /// `errors[0]`: its `message` or `title`, with `error_data.details` when given.
        public var errorText: String?
        /// The status object itself, as JSON text `jsonb` accepts (stored as the receipt's payload).
        public var payload: String

        /// What the status means for the message (nil: nothing).
        public var receipt: ReceiptStatus? { ReceiptStatus(whatsApp: status) }

        /// Herald's message id from ``callbackData``, when it is one.
        public var heraldMessageID: Int64? {
            guard let callbackData, let id = Int64(callbackData), id > 0 else { return nil }
            return id
        }
    }

    /// One `messages[]` item: a contact wrote to the business.
    public struct InboundMessage: Sendable, Equatable {
        public var phoneNumberID: String
        /// `from`: the sender's number, digits without `+`.
        public var from: String
        /// `timestamp` (Unix seconds).
        public var timestamp: Date?

        /// The sender as `contacts.phone` stores it (E.164 with `+`).
        public var phone: String { "+" + from }
    }

    public var statuses: [Status]
    public var inbound: [InboundMessage]
    /// Every `metadata.phone_number_id` of the notification, first occurrence first.
    public var phoneNumberIDs: [String]

    /// Parses a notification body.
    /// - Throws: ``WebhookParseError`` when the body is not JSON or not shaped as Meta documents
    ///   (no `entry` array, a status without `id` or `status`, a change without
    ///   `metadata.phone_number_id`…).
    public static func parse(_ body: some Collection<UInt8>) throws(WebhookParseError) -> WhatsAppNotification {
        let root = try WebhookJSON.parse(body)
        guard root.isObject else { throw WebhookParseError("the notification is not a JSON object") }
        if let object = root["object"], object.string != "whatsapp_business_account" {
            throw WebhookParseError("\"object\" is not \"whatsapp_business_account\"")
        }
        guard let entries = root["entry"]?.array else { throw WebhookParseError("\"entry\" must be an array") }
        var result = WhatsAppNotification(statuses: [], inbound: [], phoneNumberIDs: [])
        var seenPhoneNumberIDs = Set<String>() // linear in the body, whatever the number of changes
        for entry in entries {
            guard entry.isObject else { throw WebhookParseError("an entry is not an object") }
            guard let changes = entry["changes"]?.array else { throw WebhookParseError("\"entry[].changes\" must be an array") }
            for change in changes {
                guard change.isObject else { throw WebhookParseError("a change is not an object") }
                if let field = change["field"]?.string, field != "messages" { continue }
                guard let value = change["value"], value.isObject else { throw WebhookParseError("\"changes[].value\" must be an object") }
                guard let phoneNumberID = value["metadata"]?["phone_number_id"]?.scalarText, !phoneNumberID.isEmpty else {
                    throw WebhookParseError("\"value.metadata.phone_number_id\" is missing")
                }
                if seenPhoneNumberIDs.insert(phoneNumberID).inserted { result.phoneNumberIDs.append(phoneNumberID) }
                if let statuses = value["statuses"] {
                    guard let items = statuses.array else { throw WebhookParseError("\"statuses\" must be an array") }
                    for item in items { result.statuses.append(try status(item, phoneNumberID: phoneNumberID)) }
                }
                if let messages = value["messages"] {
                    guard let items = messages.array else { throw WebhookParseError("\"messages\" must be an array") }
                    for item in items {
                        guard let from = item["from"]?.scalarText, !from.isEmpty else {
                            throw WebhookParseError("a message has no \"from\"")
                        }
                        result.inbound.append(InboundMessage(phoneNumberID: phoneNumberID, from: from,
                                                             timestamp: unixTime(item["timestamp"])))
                    }
                }
            }
        }
        return result
    }

    private static func status(_ item: WebhookJSON, phoneNumberID: String) throws(WebhookParseError) -> Status {
        guard item.isObject else { throw WebhookParseError("a status is not an object") }
        guard let id = item["id"]?.string, !id.isEmpty else { throw WebhookParseError("a status has no \"id\"") }
        guard let status = item["status"]?.string, !status.isEmpty else { throw WebhookParseError("a status has no \"status\"") }
        var errorCode: String?
        var errorText: String?
        if let first = item["errors"]?.array?.first {
            errorCode = first["code"]?.scalarText
            errorText = first["message"]?.string ?? first["title"]?.string
            if let details = first["error_data"]?["details"]?.string, !details.isEmpty {
                errorText = errorText.map { "\($0): \(details)" } ?? details
            }
        }
        return Status(phoneNumberID: phoneNumberID, messageID: id, status: status,
                      timestamp: unixTime(item["timestamp"]), recipientID: item["recipient_id"]?.scalarText,
                      callbackData: item["biz_opaque_callback_data"]?.string,
                      errorCode: errorCode, errorText: errorText, payload: item.jsonbText)
    }

    private static func unixTime(_ value: WebhookJSON?) -> Date? {
        guard let text = value?.scalarText, let seconds = Int64(text), seconds > 0, seconds < 100_000_000_000 else { return nil }
        return Date(timeIntervalSince1970: TimeInterval(seconds))
    }
}

// MARK: - Twilio

/// A Twilio message status callback: a form POST to the `StatusCallback` URL of a send.
///
/// Twilio adds parameters without notice; every parameter is kept (``parameters``), signed over
/// and stored, and only the ones Herald needs are read.
public struct TwilioStatusCallback: Sendable, Equatable {
    /// Every parameter of the body, as decoded, in body order.
    public var parameters: [FormField]
    /// `AccountSid`: finds the channel (and so the auth token that signs the callback).
    public var accountSID: String
    /// `MessageSid` (or the older `SmsSid`): the id Twilio answered the send with.
    public var messageSID: String
    /// `MessageStatus` (or `SmsStatus`) as Twilio wrote it.
    public var messageStatus: String
    /// `ErrorCode`, when non-empty.
    public var errorCode: String?
    /// `ErrorMessage`, when Twilio sends one.
    public var errorMessage: String?

    /// What the status means for the message (nil: nothing, e.g. `queued`, `accepted`).
    public var receipt: ReceiptStatus? { ReceiptStatus(twilio: messageStatus) }

    /// The parameters as a JSON object of strings (a repeated name keeps its first value), as
    /// JSON text `jsonb` accepts: the receipt's payload.
    public var payload: String {
        var out = "{"
        var seen = Set<String>()
        for field in parameters where seen.insert(field.name).inserted {
            if out.count > 1 { out += "," }
            WebhookJSON.writeString(field.name, into: &out)
            out += ":"
            WebhookJSON.writeString(field.value, into: &out)
        }
        return out + "}"
    }

    /// Parses a callback body.
    /// - Throws: ``WebhookParseError`` when the body is not form-encoded or lacks `AccountSid`,
    ///   `MessageSid` or `MessageStatus`.
    public static func parse(_ body: some Collection<UInt8>) throws(WebhookParseError) -> TwilioStatusCallback {
        try parse(fields: try FormURLEncoded.parse(body))
    }

    /// Reads a callback from its already decoded parameters (the server decodes them once, to
    /// check the signature that covers them).
    /// - Throws: ``WebhookParseError`` when `AccountSid`, `MessageSid` or `MessageStatus` is missing.
    public static func parse(fields: [FormField]) throws(WebhookParseError) -> TwilioStatusCallback {
        func value(_ name: String) -> String? {
            guard let v = fields.first(where: { $0.name == name })?.value, !v.isEmpty else { return nil }
            return v
        }
        guard let account = value("AccountSid") else { throw WebhookParseError("the callback has no AccountSid") }
        guard let sid = value("MessageSid") ?? value("SmsSid") else { throw WebhookParseError("the callback has no MessageSid") }
        guard let status = value("MessageStatus") ?? value("SmsStatus") else {
            throw WebhookParseError("the callback has no MessageStatus")
        }
        return TwilioStatusCallback(parameters: fields, accountSID: account, messageSID: sid, messageStatus: status,
                                    errorCode: value("ErrorCode"), errorMessage: value("ErrorMessage"))
    }
}
