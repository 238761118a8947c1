import Foundation
import HeraldCore
import HeraldProviders
import HeraldStore

/// A broadcast made ready for sending once per worker: provider settings parsed, secrets read
/// from the environment, every personalized field compiled. Per message only rendering remains.
struct PreparedBroadcast: Sendable {
    let info: ActiveBroadcast
    let config: ProviderConfig
    let credentials: ProviderCredentials
    let subject: CompiledTemplate?
    let body: CompiledTemplate?
    let html: CompiledTemplate?
    let params: [CompiledTemplate]
    let unsubscribe: CompiledTemplate?
    /// Custom fields the templates read; the claim fetches only these.
    let attributeKeys: [String]

    /// A WhatsApp broadcast without a template: free-form text, allowed only inside the 24-hour window.
    var isFreeFormWhatsApp: Bool { info.kind == "whatsapp" && info.templateName == nil }

    /// Why a broadcast cannot be prepared by this worker (its settings or this process's environment).
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    init(_ info: ActiveBroadcast, environment: [String: String]) throws {
        self.info = info
        config = try ProviderConfig.parse(provider: info.provider, kind: info.kind, settingsJSON: info.settingsJSON)
        credentials = try config.resolveSecrets(environment: environment)
        func compile(_ text: String?, _ field: String) throws -> CompiledTemplate? {
            guard let text else { return nil }
            do { return try CompiledTemplate.compile(text) } catch {
                throw Failure(description: "\(error) in \(field)")
            }
        }
        subject = try compile(info.subject, "subject")
        body = try compile(info.body, "body")
        html = try compile(info.htmlBody, "html_body")
        params = try info.templateParams.enumerated().map { try compile($1, "template_params[\($0)]")! }
        if case .smtp(let s) = config { unsubscribe = try compile(s.unsubscribeURL, "unsubscribe_url") } else { unsubscribe = nil }
        var keys: [String] = []
        for t in [subject, body, html, unsubscribe].compactMap({ $0 }) + params {
            for k in t.attributeKeys where !keys.contains(k) { keys.append(k) }
        }
        attributeKeys = keys
    }

    /// The message for one contact, or the reason it must not be sent now.
    func outgoing(for job: ClaimedJob, now: Date) -> Result<(OutgoingMessage, segments: Int?), SkipOrFail> {
        if job.optedOut { return .failure(.skip("opted_out")) }
        guard let address = job.address, !address.isEmpty else { return .failure(.skip("invalid_address")) }
        let contact = job.contact
        let content: OutgoingMessage.Content
        var segments: Int?
        switch info.kind {
        case "whatsapp":
            if let name = info.templateName {
                content = .whatsAppTemplate(name: name, language: info.templateLanguage ?? "en_US",
                                            parameters: params.map { $0.render(contact) })
            } else {
                guard let last = job.lastInboundAt, now.timeIntervalSince(last) <= 24 * 3600 else {
                    return .failure(.skip("outside_whatsapp_window"))
                }
                content = .whatsAppText(body: body?.render(contact) ?? "")
            }
        case "sms":
            let text = body?.render(contact) ?? ""
            segments = SMSSegments.count(text)
            content = .sms(body: text)
        case "email":
            content = .email(subject: subject?.render(contact) ?? "", text: body?.render(contact) ?? "",
                             html: html?.render(contact, escapeHTML: true), unsubscribeURL: unsubscribe?.render(contact))
        default:
            return .failure(.fail("unknown channel kind \(info.kind)"))
        }
        return .success((OutgoingMessage(messageID: job.messageID, to: address, content: content), segments))
    }

    enum SkipOrFail: Error {
        case skip(String)
        case fail(String)
    }
}
