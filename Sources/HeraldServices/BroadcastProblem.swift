import HeraldCore
import HeraldProviders

/// Why a broadcast cannot be sent, in the one line written to `broadcasts.error`.
///
/// The scheduler (``SchedulerValidation``) and the worker (``PreparedBroadcast``) build these
/// from the same checks below, so a broadcast fails with the same words wherever it fails.
public struct BroadcastProblem: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }

    /// Configures the broadcast's channel through its provider.
    ///
    /// - Throws: `channel "NAME": <what the provider says>`, e.g.
    ///   `channel "wa": setting "access_token_env" names environment variable WA_TOKEN, which is not set`.
    static func configure(channel name: String, provider: String, kind: String, settingsJSON: String,
                          registry: ProviderRegistry,
                          environment: ProviderEnvironment) throws(BroadcastProblem) -> any ConfiguredChannel {
        do {
            return try registry.configure(provider: provider, kind: kind, settingsJSON: settingsJSON, environment: environment)
        } catch {
            throw BroadcastProblem("channel \"\(name)\": \(error)")
        }
    }

    /// Compiles one personalized field.
    ///
    /// - Throws: `<what is wrong with the tag> in <field>`, e.g. `unknown personalization tag {{ frist_name }} in body`.
    static func compile(_ text: String?, field: String) throws(BroadcastProblem) -> CompiledTemplate? {
        guard let text else { return nil }
        do {
            return try CompiledTemplate.compile(text)
        } catch {
            throw BroadcastProblem("\(error) in \(field)")
        }
    }

    /// The field name of a channel's unsubscribe URL setting, in errors.
    static func unsubscribeField(channel name: String) -> String {
        "the unsubscribe_url of channel \"\(name)\""
    }
}
