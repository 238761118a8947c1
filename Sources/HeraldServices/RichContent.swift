import Foundation
import HeraldCore
import HeraldProviders

/// A broadcast's media, and its WhatsApp template's header and buttons, checked against the
/// contract's Media rules and compiled once; per contact only rendering remains.
///
/// The scheduler's validation and each worker's ``PreparedBroadcast`` build it with the same
/// ``make(kind:template:headerParams:buttonParams:media:environment:)``, so a broadcast fails
/// with the same words wherever it fails. The rules, each failing with its own words:
///
/// - `media` is an array of objects with `type` (`image`, `video`, `document`, `audio`) and
///   exactly one of `url` or `whatsapp_media_id` (WhatsApp only); `filename` a string when given;
///   a `url` is https (plain http only to a host in `HERALD_ALLOWED_HOSTS`), its scheme and host
///   written out, never a tag; its tags known.
/// - Email: each item is an attachment; its `url` holds no tag (Herald fetches it once per
///   broadcast, ``AttachmentFetch``).
/// - SMS: at most 10 items.
/// - WhatsApp: at most one item. A template with a media header requires one of the header's
///   type (never audio: no template header is); a template without one takes none. Without a
///   template, the body is the item's caption, or for audio (which takes none) a second message
///   (the provider's `requests(for:)`).
/// - `template_header_params`: strings, as many as the template's `text` header has
///   placeholders (none for other headers); `template_button_params`: strings, one per button
///   that takes a value (a `url` button whose URL has `{{1}}`, `quick_reply`, `copy_code`), in
///   button order.
struct RichContent: Sendable {
    /// One item of `broadcasts.media`, compiled.
    struct Media: Sendable {
        var kind: OutgoingMedia.Kind
        var url: URLTemplate?
        var whatsAppMediaID: String?
        var filename: String?

        /// The URL of an item without tags (an email attachment's), as written.
        var constantURL: String? { url.flatMap { $0.isConstant ? $0.literalPrefix : nil } }

        func render(_ contact: Contact) -> OutgoingMedia {
            let source: OutgoingMedia.Source = if let url { .link(url.render(contact)) } else { .whatsAppMediaID(whatsAppMediaID ?? "") }
            return OutgoingMedia(kind: kind, source: source, filename: filename)
        }
    }

    /// A template button that takes a value, with its compiled value.
    struct Button: Sendable {
        var kind: WhatsAppTemplateButton.Kind
        var index: Int
        var value: CompiledTemplate
    }

    /// What validation needs of the broadcast's template.
    struct TemplateShape: Sendable {
        var name: String
        var headerFormat: TemplateHeaderFormat
        var headerText: String?
        /// `buttons` as JSON text.
        var buttons: String?

        /// The shape of a template row, whose `header_format` is text as the database holds it: a
        /// format this version does not know (a newer schema's) fails only this broadcast, by name.
        init(name: String, headerFormat: String, headerText: String?, buttons: String?) throws(BroadcastProblem) {
            guard let format = TemplateHeaderFormat(rawValue: headerFormat) else {
                throw BroadcastProblem("template \"\(name)\" has header_format \"\(headerFormat)\", which this version of Herald cannot send")
            }
            self.name = name
            self.headerFormat = format
            self.headerText = headerText
            self.buttons = buttons
        }
    }

    var media: [Media] = []
    /// A `text` header's one placeholder value.
    var headerText: CompiledTemplate?
    /// Whether the template's header is filled by `media[0]`.
    var mediaHeader = false
    var buttons: [Button] = []

    /// Custom fields the media URLs, header and buttons read.
    var attributeKeys: [String] {
        media.compactMap(\.url).flatMap(\.attributeKeys) + (headerText?.attributeKeys ?? [])
            + buttons.flatMap(\.value.attributeKeys)
    }

    /// The template header for one contact.
    func templateHeader(for contact: Contact) -> WhatsAppTemplateHeader? {
        if mediaHeader, let item = media.first { return .media(item.render(contact)) }
        return headerText.map { .text($0.render(contact)) }
    }

    /// The template buttons that take a value, for one contact.
    func templateButtons(for contact: Contact) -> [WhatsAppTemplateButton] {
        buttons.map { WhatsAppTemplateButton(kind: $0.kind, index: $0.index, value: $0.value.render(contact)) }
    }

    /// Checks and compiles.
    ///
    /// - Parameters:
    ///   - kind: The channel's kind.
    ///   - template: The WhatsApp template, when the broadcast names one.
    ///   - headerParams, buttonParams, media: The columns as JSON text (nil when null).
    ///   - environment: For `HERALD_ALLOWED_HOSTS`.
    /// - Throws: ``BroadcastProblem`` naming the rule broken.
    static func make(kind: ChannelKind, template: TemplateShape?, headerParams: String?, buttonParams: String?,
                     media mediaJSON: String?,
                     environment: ProviderEnvironment) throws(BroadcastProblem) -> RichContent {
        var content = RichContent()
        content.media = try parseMedia(mediaJSON, kind: kind, environment: environment)
        let headerValues = try strings(headerParams, field: "template_header_params")
        let buttonValues = try strings(buttonParams, field: "template_button_params")

        switch kind {
        case .email:
            for (i, item) in content.media.enumerated() where !(item.url?.isConstant ?? true) {
                throw BroadcastProblem("media[\(i)].url has a tag, but tags are not allowed in email attachment URLs (Herald fetches each file once for the whole broadcast)")
            }
        case .sms:
            guard content.media.count <= Twilio.maxMediaURLs else {
                throw BroadcastProblem("media has \(content.media.count) items but an SMS (MMS) takes at most \(Twilio.maxMediaURLs)")
            }
        case .whatsapp:
            guard content.media.count <= 1 else {
                throw BroadcastProblem("media has \(content.media.count) items but a WhatsApp message takes at most one")
            }
        }
        if kind != .whatsapp || template == nil {
            if !headerValues.isEmpty { throw BroadcastProblem("template_header_params is set but the broadcast has no template") }
            if !buttonValues.isEmpty { throw BroadcastProblem("template_button_params is set but the broadcast has no template") }
        }
        guard kind == .whatsapp, let template else { return content }
        let name = "template \"\(template.name)\""

        // The header.
        switch template.headerFormat {
        case .image, .video, .document:
            let header = (template.headerFormat == .image ? "an " : "a ") + template.headerFormat.rawValue + " header"
            guard let item = content.media.first else {
                throw BroadcastProblem("\(name) has \(header) but the broadcast has no media to fill it")
            }
            guard item.kind.rawValue == template.headerFormat.rawValue else {
                throw BroadcastProblem("\(name) has \(header) but media[0] is \(item.kind == .image || item.kind == .audio ? "an" : "a") \(item.kind.rawValue)")
            }
            content.mediaHeader = true
        case .none, .text:
            guard content.media.isEmpty else {
                throw BroadcastProblem("\(name) has no media header (header_format \(template.headerFormat.rawValue)), so it cannot carry the broadcast's media")
            }
        }
        let headerNeeds = template.headerFormat == .text ? WhatsAppTemplateBody.placeholderCount(template.headerText ?? "") : 0
        guard headerValues.count == headerNeeds else {
            throw BroadcastProblem("\(name) has \(headerNeeds) header placeholder(s) but template_header_params has \(headerValues.count) value(s)")
        }
        if let value = headerValues.first {
            content.headerText = try BroadcastProblem.compile(value, field: "template_header_params[0]")
        }

        // The buttons.
        let definitions = try parseButtons(template.buttons, templateName: name)
        let takingValue = definitions.enumerated().compactMap { (index, kind) -> (Int, WhatsAppTemplateButton.Kind)? in
            kind.map { (index, $0) }
        }
        guard buttonValues.count == takingValue.count else {
            var reason = "\(name) has \(takingValue.count) button(s) that take a value but template_button_params has \(buttonValues.count) value(s)"
            let none = definitions.indices.filter { definitions[$0] == nil }
            if buttonValues.count > takingValue.count, !none.isEmpty {
                reason += "; " + none.map { "buttons[\($0)]" }.joined(separator: ", ") + " take(s) none"
            }
            throw BroadcastProblem(reason)
        }
        for (position, (index, kind)) in takingValue.enumerated() {
            let value = try BroadcastProblem.compile(buttonValues[position], field: "template_button_params[\(position)]")!
            content.buttons.append(Button(kind: kind, index: index, value: value))
        }
        return content
    }

    /// A JSON array of strings.
    static func strings(_ json: String?, field: String) throws(BroadcastProblem) -> [String] {
        guard let json else { return [] }
        guard let array = (try? JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed])) as? [Any] else {
            throw BroadcastProblem("\(field) is not a JSON array")
        }
        var values: [String] = []
        for (i, element) in array.enumerated() {
            guard let s = element as? String else { throw BroadcastProblem("\(field)[\(i)] is not a string") }
            values.append(s)
        }
        return values
    }

    /// Each button's kind when it takes a value, nil when it takes none (`phone_number`, a `url`
    /// without a placeholder).
    private static func parseButtons(_ json: String?, templateName name: String) throws(BroadcastProblem) -> [WhatsAppTemplateButton.Kind?] {
        guard let json else { return [] }
        guard let array = (try? JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed])) as? [Any] else {
            throw BroadcastProblem("\(name): buttons is not a JSON array")
        }
        var kinds: [WhatsAppTemplateButton.Kind?] = []
        for (i, element) in array.enumerated() {
            guard let button = element as? [String: Any], let type = button["type"] as? String else {
                throw BroadcastProblem("\(name): buttons[\(i)] has no type")
            }
            switch type.lowercased() {
            case "url":
                let url = button["url"] as? String ?? ""
                kinds.append(url.contains("{{") ? .url : nil)
            case "quick_reply": kinds.append(.quickReply)
            case "copy_code": kinds.append(.copyCode)
            case "phone_number": kinds.append(nil)
            default:
                throw BroadcastProblem("\(name): buttons[\(i)] has type \"\(type)\", which Herald cannot send (url, quick_reply, phone_number, copy_code)")
            }
        }
        return kinds
    }

    private static func parseMedia(_ json: String?, kind: ChannelKind,
                                   environment: ProviderEnvironment) throws(BroadcastProblem) -> [Media] {
        guard let json else { return [] }
        guard let array = (try? JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed])) as? [Any] else {
            throw BroadcastProblem("media is not a JSON array")
        }
        var items: [Media] = []
        for (i, element) in array.enumerated() {
            let field = "media[\(i)]"
            guard let object = element as? [String: Any] else { throw BroadcastProblem("\(field) is not an object") }
            guard let typeName = object["type"] as? String, let type = OutgoingMedia.Kind(rawValue: typeName) else {
                throw BroadcastProblem("\(field).type must be one of image, video, document, audio")
            }
            var filename: String?
            if let value = object["filename"] {
                guard let name = value as? String else { throw BroadcastProblem("\(field).filename is not a string") }
                filename = name
            }
            let url = object["url"], mediaID = object["whatsapp_media_id"]
            switch (url, mediaID) {
            case (nil, nil):
                throw BroadcastProblem("\(field) has neither url nor whatsapp_media_id")
            case (.some, .some):
                throw BroadcastProblem("\(field) has both url and whatsapp_media_id: give one")
            case (nil, let id?):
                guard kind == .whatsapp else {
                    throw BroadcastProblem("\(field) gives whatsapp_media_id, which only WhatsApp takes: give a url")
                }
                guard let id = id as? String, !id.isEmpty else { throw BroadcastProblem("\(field).whatsapp_media_id is not a non-empty string") }
                items.append(Media(kind: type, whatsAppMediaID: id, filename: filename))
            case (let text?, nil):
                guard let text = text as? String else { throw BroadcastProblem("\(field).url is not a string") }
                let template: URLTemplate
                do { template = try URLTemplate.compile(text) } catch { throw BroadcastProblem("\(error) in \(field).url") }
                try checkURL(template, field: "\(field).url", environment: environment)
                items.append(Media(kind: type, url: template, filename: filename))
            }
        }
        return items
    }

    /// An https URL (http only to an allowed host) whose scheme and host are written out before
    /// any tag, so a contact's data can never choose where the provider fetches from.
    private static func checkURL(_ url: URLTemplate, field: String, environment: ProviderEnvironment) throws(BroadcastProblem) {
        let prefix = url.literalPrefix
        let lower = prefix.lowercased()
        let scheme: String
        if lower.hasPrefix("https://") { scheme = "https" } else if lower.hasPrefix("http://") { scheme = "http" } else {
            throw BroadcastProblem("\(field) must be an https URL")
        }
        let rest = prefix.dropFirst(scheme.count + 3)
        let authority: Substring
        if let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) {
            authority = rest[..<end]
        } else if url.isConstant {
            authority = rest
        } else {
            throw BroadcastProblem("\(field) has a tag in its host: write the scheme and host out, tags only after them")
        }
        guard !authority.isEmpty else { throw BroadcastProblem("\(field) has no host") }
        if scheme == "http" {
            let host = authority.split(separator: "@").last.map(String.init) ?? ""
            let allowed = (environment.variables["HERALD_ALLOWED_HOSTS"] ?? "").split(separator: ",")
                .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            let hostOnly = host.split(separator: ":").first.map(String.init) ?? host
            guard allowed.contains(host.lowercased()) || allowed.contains(hostOnly.lowercased()) else {
                throw BroadcastProblem("\(field) must be an https URL (plain http only to a host in HERALD_ALLOWED_HOSTS)")
            }
        }
    }
}
