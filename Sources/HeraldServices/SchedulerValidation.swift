import Foundation
import HeraldCore
import HeraldProviders
import HeraldStore

/// Decides whether a `scheduled` broadcast may be expanded, before a single message exists.
///
/// Pure: it reads only the ``SchedulerStore/BroadcastDefinition`` it is given, so every rule is
/// testable without a database. The first failing rule wins; its message is written verbatim to
/// `broadcasts.error`, one line naming the culprit. The rules, in order:
///
/// 1. the channel exists and is enabled;
/// 2. the channel's provider accepts it: it exists and sends the channel's kind, its settings are
///    usable and every secret they name is set (``ProviderRegistry/configure(provider:kind:settingsJSON:environment:)``,
///    the same check every worker runs before it sends);
/// 3. the content fits the channel's kind: a template only on WhatsApp, and then it exists,
///    belongs to the broadcast's channel, is `approved`, and `template_params` is an array of
///    strings with exactly as many entries as the template has placeholders; an email has a
///    subject and a `body` or `html_body`; an SMS, and a WhatsApp message without a template,
///    have a `body`;
/// 4. the media, the template's header and its buttons follow the contract's Media rules
///    (``RichContent``: each rule its own error);
/// 5. every personalization tag is known, in `subject`, `body`, `html_body`, each
///    `template_params`, `template_header_params` and `template_button_params` entry, each media
///    URL and the channel's `unsubscribe_url`;
/// 6. the audience is not empty.
///
/// **An empty audience fails the broadcast** (`audience is empty: …`) rather than completing it
/// with zero recipients: a broadcast that reaches nobody is almost always a mistake in the admin
/// tool (a group not filled in yet, the wrong group picked), and `failed` with a reason makes it
/// visible where `completed` would look like success. The check here is on the links
/// (`broadcast_groups`, `broadcast_contacts`); groups that exist but have no members are caught
/// by the scheduler just before expanding, with the same prefix.
public enum SchedulerValidation {
    /// The error for an audience with no group and no picked contact.
    public static let noAudience = "audience is empty: the broadcast has no groups and no picked contacts"
    /// The error for an audience whose groups have no members and no picked contact.
    public static let emptyAudience = "audience is empty: its groups have no members and no contacts are picked"

    /// Checks one broadcast.
    ///
    /// - Parameters:
    ///   - b: The broadcast with its channel and template.
    ///   - registry: The providers, which check the channel's settings and secrets exactly as a
    ///     worker will before it sends.
    ///   - environment: The secrets the channel's `*_env` settings name (the scheduler's own
    ///     environment: run it with the same secrets as the workers).
    /// - Returns: nil when it may be expanded, else the one-line reason it fails.
    public static func check(_ b: SchedulerStore.BroadcastDefinition, registry: ProviderRegistry = .standard,
                             environment: ProviderEnvironment) -> String? {
        do {
            try validate(b, registry: registry, environment: environment)
            return nil
        } catch {
            return error.description
        }
    }

    private static func validate(_ b: SchedulerStore.BroadcastDefinition, registry: ProviderRegistry,
                                 environment: ProviderEnvironment) throws(BroadcastProblem) {
        guard let channel = b.channel else { throw BroadcastProblem("channel \(b.channelID) does not exist") }
        guard channel.enabled else { throw BroadcastProblem("channel \(quoted(channel.name)) is disabled") }
        let configured = try BroadcastProblem.configure(channel: channel.name, provider: channel.provider, kind: channel.kind,
                                                        settingsJSON: channel.settingsJSON, registry: registry,
                                                        environment: environment)

        var params: [String] = []
        var shape: RichContent.TemplateShape?
        // The registry accepted the kind, so it is one of ChannelKind's.
        switch ChannelKind(rawValue: channel.kind) {
        case .whatsapp:
            if let templateID = b.templateID {
                guard let template = b.template else { throw BroadcastProblem("template \(templateID) does not exist") }
                guard template.channelID == channel.id else {
                    throw BroadcastProblem("template \(quoted(template.name)) belongs to another channel, not \(quoted(channel.name))")
                }
                guard template.status == TemplateStatus.approved.rawValue else {
                    throw BroadcastProblem("template \(quoted(template.name)) is not approved (status: \(template.status))")
                }
                shape = try RichContent.TemplateShape(name: template.name, headerFormat: template.headerFormat,
                                                      headerText: template.headerText, buttons: template.buttons)
                params = try RichContent.strings(b.templateParams, field: "template_params")
                let needed = WhatsAppTemplateBody.placeholderCount(template.body)
                guard needed == params.count else {
                    throw BroadcastProblem("template \(quoted(template.name)) has \(needed) placeholder(s) but template_params has \(params.count) value(s)")
                }
            } else if isBlank(b.body) && b.mediaCount == 0 {
                throw BroadcastProblem("body is empty: a WhatsApp broadcast without a template needs one")
            }
        case .sms:
            if b.templateID != nil { throw BroadcastProblem("a template is only for WhatsApp, but channel \(quoted(channel.name)) is sms") }
            if isBlank(b.body) { throw BroadcastProblem("body is empty: an SMS broadcast needs one") }
        case .email:
            if b.templateID != nil { throw BroadcastProblem("a template is only for WhatsApp, but channel \(quoted(channel.name)) is email") }
            if isBlank(b.subject) { throw BroadcastProblem("subject is empty: an email broadcast needs one") }
            if isBlank(b.body) && isBlank(b.htmlBody) { throw BroadcastProblem("body and html_body are both empty: an email broadcast needs one") }
        case nil:
            throw BroadcastProblem("channel \(quoted(channel.name)): unknown kind \(quoted(channel.kind))")
        }

        // Media, the template's header and buttons: the rules RichContent names.
        if let kind = ChannelKind(rawValue: channel.kind) {
            _ = try RichContent.make(kind: kind, template: shape, headerParams: b.templateHeaderParams,
                                     buttonParams: b.templateButtonParams, media: b.media,
                                     environment: environment)
        }

        _ = try BroadcastProblem.compile(b.subject, field: "subject")
        _ = try BroadcastProblem.compile(b.body, field: "body")
        _ = try BroadcastProblem.compile(b.htmlBody, field: "html_body")
        for (i, p) in params.enumerated() { _ = try BroadcastProblem.compile(p, field: "template_params[\(i)]") }
        _ = try BroadcastProblem.compile(configured.unsubscribeURLTemplate,
                                         field: BroadcastProblem.unsubscribeField(channel: channel.name))
        try BroadcastProblem.requireUnsubscribeLinks([b.subject, b.body, b.htmlBody, configured.unsubscribeURLTemplate] + params.map(Optional.some), environment: environment) // consent (issue 19)

        if b.groupCount == 0 && b.pickedCount == 0 { throw BroadcastProblem(noAudience) }
    }

    private static func isBlank(_ s: String?) -> Bool {
        s?.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ?? true
    }

    private static func quoted(_ s: String) -> String { "\"\(s)\"" }
}
