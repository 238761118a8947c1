import Foundation
import HeraldCore
import HeraldTransport

extension TemplateStatus {
    /// Meta's `status` of a listed template. APPROVED, PENDING, IN_APPEAL, REJECTED, PAUSED and
    /// DISABLED map as the contract says; every other status Meta lists (PENDING_DELETION,
    /// DELETED, ARCHIVED, LIMIT_EXCEEDED, or one added later) becomes `disabled`: a template in
    /// it cannot be sent, and `disabled` is what stops a broadcast from naming it.
    public init(metaListStatus status: String) {
        self = TemplateStatus(metaEvent: status) ?? .disabled
    }

    /// Meta's `event` of a `message_template_status_update` notification (contract section 4),
    /// nil for the events that do not change whether it can be sent (FLAGGED, …).
    public init?(metaEvent event: String) {
        switch event.uppercased() {
        case "APPROVED": self = .approved
        case "REJECTED": self = .rejected
        case "PAUSED": self = .paused
        case "DISABLED": self = .disabled
        case "PENDING", "IN_APPEAL": self = .pending
        default: return nil
        }
    }
}

/// Meta refused or garbled a template list request; ``description`` is one line for ops
/// (Meta's own error message when it gave one).
public struct TemplateListError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// `GET {base_url}/{waba_id}/message_templates`: a WhatsApp Business Account's templates, page
/// by page (Graph API cursor paging).
public enum WhatsAppTemplateList {
    /// The fields asked for: exactly what a `templates` row holds.
    public static let fields = "name,language,status,category,components,id,rejected_reason"
    /// Templates per page (Meta's default is 25; a larger page means fewer round trips).
    public static let pageSize = 100

    /// One page of the list.
    public struct Page: Sendable, Equatable {
        public var templates: [MetaTemplate]
        /// The `after` cursor of the next page; nil on the last page (no `paging.next`).
        public var after: String?
        /// Listed templates that cannot be a `templates` row (a name or language the schema
        /// refuses), described for the sync's report.
        public var skipped: [String]
    }

    /// The request for one page. The next page is asked for with `after` at the same URL rather
    /// than by following `paging.next` as given, so the access token only ever goes to the
    /// channel's own `base_url`, which ``DestinationPolicy`` checked.
    public static func request(settings: WhatsAppCloudSettings, credentials: WhatsAppCloudCredentials, wabaID: String,
                               after: String?, timeout: Duration) -> HTTPRequest {
        var url = "\(settings.baseURL)/\(wabaID)/message_templates?fields=\(fields)&limit=\(pageSize)"
        if let after {
            url += "&after=" + (after.addingPercentEncoding(withAllowedCharacters: queryValueCharacters) ?? "")
        }
        return HTTPRequest(method: "GET", url: url, headers: [("Authorization", "Bearer \(credentials.accessToken)")],
                           body: [], timeout: timeout)
    }

    private static let queryValueCharacters: CharacterSet = {
        var set = CharacterSet.alphanumerics
        set.insert(charactersIn: "-._~")
        return set
    }()

    /// Reads one page of Meta's answer.
    /// - Throws: ``TemplateListError`` with Meta's error message (and code) for an error answer,
    ///   or saying what is missing when the answer is not a template list.
    public static func parse(_ response: HTTPResponse) throws(TemplateListError) -> Page {
        let json = JSONValue.parse(response.body)
        guard (200...299).contains(response.status) else {
            if let error = json?["error"], let message = error["message"]?.stringValue {
                let code = error["code"]?.integerValue.map { ", code \($0)" } ?? ""
                throw TemplateListError("Meta answered \(response.status): \(Text.clip(message))\(code)")
            }
            let snippet = Text.snippet(response.body)
            throw TemplateListError("Meta answered \(response.status)\(snippet.isEmpty ? "" : ": \(snippet)")")
        }
        guard let data = json?["data"], case .array(let items) = data else {
            throw TemplateListError("Meta's answer has no \"data\" array of templates")
        }
        var page = Page(templates: [], after: nil, skipped: [])
        for item in items {
            guard let name = item["name"]?.stringValue, let language = item["language"]?.stringValue,
                  let status = item["status"]?.stringValue else {
                page.skipped.append("a template without name, language or status")
                continue
            }
            guard isTemplateName(name), isLanguage(language) else {
                page.skipped.append("\(name) (\(language)): name or language not as Meta spells them")
                continue
            }
            page.templates.append(template(item, name: name, language: language, status: status))
        }
        if item(json, "paging", "next") != nil, let after = item(json, "paging", "cursors", "after")?.stringValue, !after.isEmpty {
            page.after = after
        }
        return page
    }

    private static func item(_ json: JSONValue?, _ path: String...) -> JSONValue? {
        var value = json
        for key in path { value = value?[key] }
        if case .null? = value { return nil }
        return value
    }

    private static func template(_ item: JSONValue, name: String, language: String, status: String) -> MetaTemplate {
        let id: String = switch item["id"] {
        case .string(let s)?: s
        case .number(let n)?: n.isFinite ? String(format: "%.0f", n) : ""
        default: ""
        }
        var result = MetaTemplate(id: id, name: name, language: language, status: TemplateStatus(metaListStatus: status))
        if let category = item["category"]?.stringValue?.lowercased(), ["marketing", "utility", "authentication"].contains(category) {
            result.category = category
        }
        if let reason = item["rejected_reason"]?.stringValue, !reason.isEmpty, reason.uppercased() != "NONE" {
            result.reason = Text.clip(reason)
        }
        guard case .array(let components)? = item["components"] else { return result }
        for component in components {
            switch component["type"]?.stringValue?.uppercased() {
            case "BODY":
                result.body = component["text"]?.stringValue ?? ""
            case "HEADER":
                let format = component["format"]?.stringValue?.lowercased() ?? "text"
                if let known = TemplateHeaderFormat(rawValue: format), known != .none { result.headerFormat = known }
                if format == "text" { result.headerText = component["text"]?.stringValue }
            case "BUTTONS":
                guard case .array(let buttons)? = component["buttons"], !buttons.isEmpty else { continue }
                var writer = JSONWriter()
                writer.raw("[")
                for (index, button) in buttons.enumerated() {
                    if index > 0 { writer.raw(",") }
                    writer.raw(#"{"type":"#)
                    writer.string(button["type"]?.stringValue?.lowercased() ?? "")
                    writer.raw(#","text":"#)
                    writer.string(button["text"]?.stringValue ?? "")
                    if let url = button["url"]?.stringValue {
                        writer.raw(#","url":"#)
                        writer.string(url)
                    }
                    if let phone = button["phone_number"]?.stringValue {
                        writer.raw(#","phone_number":"#)
                        writer.string(phone)
                    }
                    writer.raw("}")
                }
                writer.raw("]")
                result.buttonsJSON = String(decoding: writer.bytes, as: UTF8.self)
            default:
                continue
            }
        }
        return result
    }

    /// `templates.name`'s rule: `^[a-z0-9_]+$`.
    static func isTemplateName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { (0x61...0x7a).contains($0) || (0x30...0x39).contains($0) || $0 == 0x5f }
    }

    /// `templates.language`'s rule: `^[a-z]{2,3}(_[A-Za-z0-9]{2,8})?$`.
    static func isLanguage(_ language: String) -> Bool {
        let parts = language.split(separator: "_", maxSplits: 1, omittingEmptySubsequences: false)
        guard let base = parts.first, (2...3).contains(base.utf8.count), base.utf8.allSatisfy({ (0x61...0x7a).contains($0) }) else { return false }
        guard parts.count == 2 else { return true }
        let region = parts[1]
        return (2...8).contains(region.utf8.count)
            && region.utf8.allSatisfy { (0x61...0x7a).contains($0) || (0x41...0x5a).contains($0) || (0x30...0x39).contains($0) }
    }
}

extension WhatsAppCloudChannel {
    /// The request for one page of this channel's templates, with its own access token and
    /// `base_url`; nil when the channel has no `waba_id`.
    public func templateListRequest(after: String?) -> HTTPRequest? {
        guard let wabaID = settings.wabaID else { return nil }
        return WhatsAppTemplateList.request(settings: settings, credentials: credentials, wabaID: wabaID,
                                            after: after, timeout: timeout)
    }
}
