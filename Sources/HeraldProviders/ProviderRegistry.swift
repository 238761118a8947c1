import HeraldCore

/// The providers a `herald` process can send through, by `channels.provider`.
///
/// ``configure(provider:kind:settingsJSON:environment:)`` is the one validator of a channel: the
/// scheduler calls it before a broadcast starts and every worker before it sends, so both give the
/// same verdict with the same words.
public struct ProviderRegistry: Sendable {
    private let providers: [String: any Provider]
    /// The providers' names (`channels.provider`), in registration order.
    public let names: [String]

    public init(_ providers: [any Provider]) {
        var byName: [String: any Provider] = [:]
        for provider in providers { byName[provider.name] = provider }
        self.providers = byName
        self.names = providers.map(\.name)
    }

    /// Every provider Herald ships. A new provider adds one line here.
    public static let standard = ProviderRegistry([
        WhatsAppCloudProvider(),
        TwilioProvider(),
        SMTPProvider(),
        SandboxProvider(),
    ])

    /// The provider called `name`, if registered.
    public func provider(named name: String) -> (any Provider)? { providers[name] }

    /// Checks a channel and reads its secrets: the provider exists and sends the kind, its
    /// settings are usable, and every secret they name is set.
    ///
    /// - Parameters:
    ///   - provider: `channels.provider`.
    ///   - kind: `channels.kind`.
    ///   - settingsJSON: `channels.settings` as JSON text.
    ///   - environment: Where secrets are read.
    /// - Throws: ``ChannelConfigError`` saying what is wrong, e.g. `setting "from" must be …`.
    public func configure(provider name: String, kind: String, settingsJSON: String,
                          environment: ProviderEnvironment) throws(ChannelConfigError) -> any ConfiguredChannel {
        guard let provider = providers[name] else {
            throw ChannelConfigError("unknown provider \"\(name)\" (known: \(names.joined(separator: ", ")))")
        }
        guard let kind = ChannelKind(rawValue: kind) else {
            throw ChannelConfigError("unknown kind \"\(kind)\" (expected whatsapp, sms or email)")
        }
        guard provider.kinds.contains(kind) else {
            let sends = ChannelKind.allCases.filter(provider.kinds.contains).map(\.rawValue).joined(separator: ", ")
            throw ChannelConfigError("provider \(name) sends \(sends), not \(kind.rawValue)")
        }
        return try provider.configure(try SettingsReader(json: settingsJSON), kind: kind, environment: environment)
    }
}
