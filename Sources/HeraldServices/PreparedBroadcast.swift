import Foundation
import HeraldCore
import HeraldProviders
import HeraldStore

/// A broadcast made ready for sending once per worker: its channel configured through its
/// provider (settings checked, secrets read), every personalized field compiled. Per message only
/// rendering remains.
struct PreparedBroadcast: Sendable {
    let info: ActiveBroadcast
    let kind: ChannelKind
    /// Builds requests and reads answers; the worker never asks which provider it is.
    let channel: any ConfiguredChannel
    let subject: CompiledTemplate?
    let body: CompiledTemplate?
    let html: CompiledTemplate?
    let params: [CompiledTemplate]
    let unsubscribe: CompiledTemplate?
    /// Makes each message's `{{ unsubscribe_url }}`; nil when the process has no links configured.
    let unsubscribeLinks: UnsubscribeLinks?
    /// Custom fields the templates read; the claim fetches only these.
    let attributeKeys: [String]

    /// A WhatsApp broadcast without a template: free-form text, allowed only inside the 24-hour window.
    var isFreeFormWhatsApp: Bool { kind == .whatsapp && info.templateName == nil }

    /// - Throws: ``BroadcastProblem`` in the words the scheduler's validation uses for the same fault.
    init(_ info: ActiveBroadcast, registry: ProviderRegistry = .standard,
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
        unsubscribeLinks = environment.unsubscribeLinks
        try BroadcastProblem.requireUnsubscribeLinks([info.subject, info.body, info.htmlBody, channel.unsubscribeURLTemplate] + info.templateParams.map(Optional.some),
                                                     environment: environment)
        var keys: [String] = []
        for t in [subject, body, html, unsubscribe].compactMap({ $0 }) + params {
            for k in t.attributeKeys where !keys.contains(k) { keys.append(k) }
        }
        attributeKeys = keys
    }

    /// The message for one contact, or the reason it must not be sent now.
    func outgoing(for job: ClaimedJob, now: Date) -> Result<(OutgoingMessage, segments: Int?), SkipOrFail> {
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
                                            parameters: params.map { $0.render(contact) })
            } else {
                guard let last = job.lastInboundAt, now.timeIntervalSince(last) <= 24 * 3600 else {
                    return .failure(.skip(.outsideWhatsAppWindow))
                }
                content = .whatsAppText(body: body?.render(contact) ?? "")
            }
        case .sms:
            let text = body?.render(contact) ?? ""
            segments = SMSSegments.count(text)
            content = .sms(body: text)
        case .email:
            content = .email(subject: subject?.render(contact) ?? "", text: body?.render(contact) ?? "",
                             html: html?.render(contact, escapeHTML: true), unsubscribeURL: unsubscribe?.render(contact))
        }
        return .success((OutgoingMessage(messageID: job.messageID, to: address, content: content), segments))
    }

    enum SkipOrFail: Error {
        case skip(SkipReason)
        case fail(String)
    }
}
