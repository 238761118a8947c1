import Foundation
import HeraldCore
import HeraldProviders
import HeraldStore

/// A broadcast made ready for sending once per worker: its channel configured through its
/// provider (settings checked, secrets read), every personalized field compiled. Per message only
/// rendering remains.
///
/// A class: every message in flight, and every outcome waiting to be written, refers to its
/// broadcast. As a struct of some thirty fields (its row, compiled templates, rich content), each
/// of those copies cost a retain and a release per field and hundreds of bytes inline; thousands of
/// sends in flight made that a measurable part of the worker's CPU and memory (BENCHMARKS.md).
final class PreparedBroadcast: Sendable {
    let info: ActiveBroadcast
    let kind: ChannelKind
    /// Builds requests and reads answers; the worker never asks which provider it is.
    let channel: any ConfiguredChannel
    let subject: CompiledTemplate?
    let body: CompiledTemplate?
    let html: CompiledTemplate?
    let params: [CompiledTemplate]
    let unsubscribe: CompiledTemplate?
    /// Media, and the template's header and buttons.
    let rich: RichContent
    /// An email's attachments, encoded once for all its mails.
    let attachments: [MailAttachment]
    /// At most this many sends of the broadcast's channel in flight, when each mail carries
    /// attachments: every mail in flight holds its own copy of them (the transport writes one
    /// buffer per transfer), so 10 MiB of files times the worker's thousands of slots would not
    /// fit in memory. nil: the worker's usual window.
    let inFlightLimit: Int?
    /// Memory the mails in flight of one channel may hold in attachments (see ``inFlightLimit``).
    static let attachmentMemoryBudget = 64 << 20
    /// Makes each message's `{{ unsubscribe_url }}`; nil when the process has no links configured.
    let unsubscribeLinks: UnsubscribeLinks?
    /// Custom fields the templates read; the claim fetches only these.
    let attributeKeys: [String]

    /// A WhatsApp broadcast without a template: free-form text, allowed only inside the 24-hour window.
    var isFreeFormWhatsApp: Bool { kind == .whatsapp && info.templateName == nil }

    /// - Parameters:
    ///   - attachments: An email broadcast's stored attachments (``AttachmentStore``), one per
    ///     media item.
    /// - Throws: ``BroadcastProblem`` in the words the scheduler's validation uses for the same fault.
    init(_ info: ActiveBroadcast, attachments stored: [BroadcastAttachment] = [], registry: ProviderRegistry = .standard,
         environment: ProviderEnvironment) throws(BroadcastProblem) {
        self.info = info
        channel = try BroadcastProblem.configure(channel: info.channelName, provider: info.provider, kind: info.kind,
                                                 settingsJSON: info.settingsJSON, registry: registry,
                                                 environment: environment)
        guard let kind = ChannelKind(rawValue: info.kind) else {
            throw BroadcastProblem("channel \"\(info.channelName)\": unknown kind \"\(info.kind)\"")
        }
        self.kind = kind
        subject = try BroadcastProblem.compile(info.subject, field: "subject")
        body = try BroadcastProblem.compile(info.body, field: "body")
        html = try BroadcastProblem.compile(info.htmlBody, field: "html_body")
        var params: [CompiledTemplate] = []
        for (index, param) in info.templateParams.enumerated() {
            params.append(try BroadcastProblem.compile(param, field: "template_params[\(index)]")!)
        }
        self.params = params
        unsubscribe = try BroadcastProblem.compile(channel.unsubscribeURLTemplate,
                                                   field: BroadcastProblem.unsubscribeField(channel: info.channelName))
        var template: RichContent.TemplateShape?
        if let name = info.templateName {
            template = try RichContent.TemplateShape(name: name, headerFormat: info.templateHeaderFormat ?? TemplateHeaderFormat.none.rawValue,
                                                     headerText: info.templateHeaderText, buttons: info.templateButtons)
        }
        rich = try RichContent.make(kind: kind, template: template, headerParams: info.templateHeaderParams,
                                    buttonParams: info.templateButtonParams, media: info.media,
                                    environment: environment)
        if kind == .email, stored.map(\.url) != rich.media.compactMap(\.constantURL) {
            throw BroadcastProblem("the media of an email broadcast cannot change once it has started (its attachments were fetched then): cancel it and schedule a new one")
        }
        attachments = kind == .email
            ? stored.map { MailAttachment(filename: $0.filename, contentType: $0.contentType, bytes: $0.bytes) } : []
        let attachmentBytes = attachments.reduce(0) { $0 + $1.encodedSize }
        inFlightLimit = attachmentBytes > 0 ? max(1, Self.attachmentMemoryBudget / attachmentBytes) : nil
        unsubscribeLinks = environment.unsubscribeLinks
        try BroadcastProblem.requireUnsubscribeLinks([info.subject, info.body, info.htmlBody, channel.unsubscribeURLTemplate] + info.templateParams.map(Optional.some),
                                                     environment: environment)
        var keys: [String] = []
        for k in [subject, body, html, unsubscribe].compactMap({ $0 }).flatMap(\.attributeKeys)
            + params.flatMap(\.attributeKeys) + rich.attributeKeys where !keys.contains(k) {
            keys.append(k)
        }
        attributeKeys = keys
    }

    /// The message for one contact, or the reason it must not be sent now.
    func outgoing(for job: ClaimedJob) -> Result<(OutgoingMessage, segments: Int?), SkipOrFail> {
        if job.contactDeleted { return .failure(.skip(.contactDeleted)) }
        if job.optedOut { return .failure(.skip(.optedOut)) }
        guard let address = job.address, !address.isEmpty else { return .failure(.skip(.invalidAddress)) }
        var contact = job.contact
        contact.unsubscribeURL = unsubscribeLinks?.url(messageID: job.messageID)
        let content: OutgoingMessage.Content
        var segments: Int?
        switch kind {
        case .whatsapp:
            if let name = info.templateName {
                content = .whatsAppTemplate(name: name, language: info.templateLanguage ?? "en_US",
                                            parameters: params.map { $0.render(contact) },
                                            header: rich.templateHeader(for: contact), buttons: rich.templateButtons(for: contact))
            } else {
                guard job.insideServiceWindow else {
                    return .failure(.skip(.outsideWhatsAppWindow))
                }
                if let media = rich.media.first {
                    content = .whatsAppMedia(media.render(contact), caption: body?.render(contact))
                } else {
                    content = .whatsAppText(body: body?.render(contact) ?? "")
                }
            }
        case .sms:
            let text = body?.render(contact) ?? ""
            segments = SMSSegments.count(text)
            // Validation let only URLs through on SMS (no WhatsApp media ids).
            content = .sms(body: text, mediaURLs: rich.media.compactMap { $0.url?.render(contact) })
        case .email:
            content = .email(subject: subject?.render(contact) ?? "", text: body?.render(contact) ?? "",
                             html: html?.render(contact, escapeHTML: true), unsubscribeURL: unsubscribe?.render(contact, encoding: .url),
                             attachments: attachments)
        }
        return .success((OutgoingMessage(messageID: job.messageID, to: address, content: content), segments))
    }

    enum SkipOrFail: Error {
        case skip(SkipReason)
        case fail(String)
    }
}
