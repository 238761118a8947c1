import Foundation
import HeraldCore
import HeraldStore

/// Decides whether a `scheduled` broadcast may be expanded, before a single message exists.
///
/// Pure: it reads only the ``SchedulerStore/BroadcastDefinition`` it is given, so every rule is
/// testable without a database. The first failing rule wins; its message is written verbatim to
/// `broadcasts.error`, one line naming the culprit. The rules, in order:
///
/// 1. the channel exists and is enabled;
/// 2. the channel's settings hold what its provider needs (`whatsapp_cloud`: `phone_number_id`,
///    `access_token_env`; `twilio`: `account_sid`, `auth_token_env`, and `from` or
///    `messaging_service_sid`; `smtp`: `url`, `from`; `sandbox`: nothing);
/// 3. the content fits the channel's kind: a template only on WhatsApp, and then it exists,
///    belongs to the broadcast's channel, is `approved`, and `template_params` is an array of
///    strings with exactly as many entries as the template has placeholders; an email has a
///    subject and a `body` or `html_body`; an SMS, and a WhatsApp message without a template,
///    have a `body`;
/// 4. every personalization tag is known, in `subject`, `body`, `html_body`, each
///    `template_params` entry and the channel's `unsubscribe_url`;
/// 5. the audience is not empty.
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
    /// - Returns: nil when it may be expanded, else the one-line reason it fails.
    public static func check(_ b: SchedulerStore.BroadcastDefinition) -> String? {
        guard let channel = b.channel else { return "channel \(b.channelID) does not exist" }
        guard channel.enabled else { return "channel \(quoted(channel.name)) is disabled" }

        let settings = (try? JSONSerialization.jsonObject(with: Data(channel.settings.utf8))) as? [String: Any]
        guard let settings else { return "channel \(quoted(channel.name)) settings are not a JSON object" }
        if let problem = settingsProblem(provider: channel.provider, settings) {
            return "channel \(quoted(channel.name)) \(problem)"
        }

        var params: [String] = []
        switch channel.kind {
        case "whatsapp":
            if let templateID = b.templateID {
                guard let template = b.template else { return "template \(templateID) does not exist" }
                guard template.channelID == channel.id else {
                    return "template \(quoted(template.name)) belongs to another channel, not \(quoted(channel.name))"
                }
                guard template.status == "approved" else {
                    return "template \(quoted(template.name)) is not approved (status: \(template.status))"
                }
                switch parseParams(b.templateParams) {
                case .failure(let problem): return problem.message
                case .success(let values): params = values
                }
                let needed = WhatsAppTemplateBody.placeholderCount(template.body)
                guard needed == params.count else {
                    return "template \(quoted(template.name)) has \(needed) placeholder(s) but template_params has \(params.count) value(s)"
                }
            } else if isBlank(b.body) {
                return "body is empty: a WhatsApp broadcast without a template needs one"
            }
        case "sms":
            if b.templateID != nil { return "a template is only for WhatsApp, but channel \(quoted(channel.name)) is sms" }
            if isBlank(b.body) { return "body is empty: an SMS broadcast needs one" }
        case "email":
            if b.templateID != nil { return "a template is only for WhatsApp, but channel \(quoted(channel.name)) is email" }
            if isBlank(b.subject) { return "subject is empty: an email broadcast needs one" }
            if isBlank(b.body) && isBlank(b.htmlBody) { return "body and html_body are both empty: an email broadcast needs one" }
        default:
            return "channel \(quoted(channel.name)) has unknown kind \(quoted(channel.kind))"
        }

        var fields: [(String, String?)] = [("subject", b.subject), ("body", b.body), ("html_body", b.htmlBody)]
        for (i, p) in params.enumerated() { fields.append(("template_params[\(i)]", p)) }
        fields.append(("the unsubscribe_url of channel \(quoted(channel.name))", settings["unsubscribe_url"] as? String))
        for (field, text) in fields {
            guard let text else { continue }
            do {
                _ = try CompiledTemplate.compile(text)
            } catch {
                return "\(error) in \(field)"
            }
        }

        if b.groupCount == 0 && b.pickedCount == 0 { return noAudience }
        return nil
    }

    /// What a provider's settings lack, or nil.
    static func settingsProblem(provider: String, _ settings: [String: Any]) -> String? {
        func has(_ key: String) -> Bool {
            guard let value = settings[key] as? String else { return false }
            return !value.trimmingCharacters(in: .whitespaces).isEmpty
        }
        func missing(_ keys: [String]) -> String? {
            keys.first { !has($0) }.map { "is missing setting \(quoted($0))" }
        }
        switch provider {
        case "whatsapp_cloud":
            return missing(["phone_number_id", "access_token_env"])
        case "twilio":
            if let problem = missing(["account_sid", "auth_token_env"]) { return problem }
            return has("from") || has("messaging_service_sid") ? nil : "is missing setting \"from\" or \"messaging_service_sid\""
        case "smtp":
            return missing(["url", "from"])
        case "sandbox":
            return nil
        default:
            return "has unknown provider \(quoted(provider))"
        }
    }

    private static func parseParams(_ json: String?) -> Result<[String], ParamsError> {
        guard let json else { return .success([]) }
        guard let array = (try? JSONSerialization.jsonObject(with: Data(json.utf8), options: [.fragmentsAllowed])) as? [Any] else {
            return .failure(ParamsError(message: "template_params is not a JSON array"))
        }
        var values: [String] = []
        for (i, element) in array.enumerated() {
            guard let s = element as? String else {
                return .failure(ParamsError(message: "template_params[\(i)] is not a string"))
            }
            values.append(s)
        }
        return .success(values)
    }

    private struct ParamsError: Error { var message: String }

    private static func isBlank(_ s: String?) -> Bool {
        s?.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ?? true
    }

    private static func quoted(_ s: String) -> String { "\"\(s)\"" }
}
