import Foundation

/// A channel's `settings` could not be used: a setting is missing, has the wrong type or value,
/// or names an unset environment variable; or the provider does not exist or send the kind.
///
/// The ``description`` names the setting and says what is wrong, e.g.
/// `setting "phone_number_id" is required`. It never holds a secret: only the *names* of
/// environment variables appear in it. The scheduler writes it to `broadcasts.error` behind the
/// channel's name.
public struct ChannelConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The setting at fault (`"phone_number_id"`), nil when the channel as a whole is.
    public var setting: String?
    /// What is wrong, without the setting's name.
    public var problem: String
    /// Whether ``description`` starts with `setting "NAME"` (else ``problem`` is the whole text).
    private var namesSettingFirst: Bool

    /// A problem with one setting: `setting "NAME" <problem>`.
    public init(setting: String, _ problem: String) {
        self.setting = setting
        self.problem = problem
        self.namesSettingFirst = true
    }

    /// A problem with one setting, told by a whole sentence that leads with something else
    /// (`host not allowed: evil.example (setting "base_url"; …)`).
    public init(setting: String, message: String) {
        self.setting = setting
        self.problem = message
        self.namesSettingFirst = false
    }

    /// A problem with the channel as a whole (its provider, its kind, its settings object).
    public init(_ problem: String) {
        self.setting = nil
        self.problem = problem
        self.namesSettingFirst = false
    }

    public var description: String {
        guard let setting, namesSettingFirst else { return problem }
        return "setting \"\(setting)\" \(problem)"
    }
}

/// Typed access to a channel's `settings` object, producing ``ChannelConfigError``s that name the
/// setting.
///
/// Unknown keys are ignored (the admin tool may keep its own notes there); known keys must have
/// the right type. A string setting that is absent, `null` or blank means "not set".
public struct SettingsReader: Sendable {
    let members: [String: JSONValue]

    /// Reads `settings` jsonb text; an empty text or `null` means `{}`.
    ///
    /// - Throws: ``ChannelConfigError`` when the text is not a JSON object.
    public init(json: String) throws(ChannelConfigError) {
        let trimmed = json.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty || trimmed == "null" {
            members = [:]
            return
        }
        guard let value = JSONValue.parse(Array(trimmed.utf8)) else {
            throw ChannelConfigError("settings are not valid JSON")
        }
        guard case .object(let members) = value else {
            throw ChannelConfigError("settings must be a JSON object")
        }
        self.members = members
    }

    /// A string setting, trimmed; nil when absent, `null` or blank.
    public func string(_ key: String) throws(ChannelConfigError) -> String? {
        switch members[key] {
        case nil, .null: return nil
        case .string(let value):
            let trimmed = value.trimmingCharacters(in: .whitespaces)
            return trimmed.isEmpty ? nil : trimmed
        default: throw ChannelConfigError(setting: key, "must be a string")
        }
    }

    public func requiredString(_ key: String) throws(ChannelConfigError) -> String {
        guard let value = try string(key) else { throw ChannelConfigError(setting: key, "is required") }
        return value
    }

    public func bool(_ key: String) throws(ChannelConfigError) -> Bool? {
        switch members[key] {
        case nil, .null: return nil
        case .bool(let value): return value
        default: throw ChannelConfigError(setting: key, "must be true or false")
        }
    }

    /// A finite number.
    public func number(_ key: String) throws(ChannelConfigError) -> Double? {
        switch members[key] {
        case nil, .null: return nil
        case .number(let value) where value.isFinite: return value
        default: throw ChannelConfigError(setting: key, "must be a number")
        }
    }

    /// A whole number in `range`.
    public func integer(_ key: String, in range: ClosedRange<Int>) throws(ChannelConfigError) -> Int? {
        let wrong = ChannelConfigError(setting: key, "must be an integer from \(range.lowerBound) to \(range.upperBound)")
        let value: Double
        switch members[key] {
        case nil, .null: return nil
        case .number(let number): value = number
        default: throw wrong
        }
        guard value.isFinite, value.rounded() == value, value >= Double(range.lowerBound), value <= Double(range.upperBound) else {
            throw wrong
        }
        return Int(value)
    }

    /// `max_attempts` (default 5) and `retry_ambiguous` (default true), which every provider takes.
    public func deliveryPolicy() throws(ChannelConfigError) -> DeliveryPolicy {
        DeliveryPolicy(maxAttempts: try integer("max_attempts", in: 1...100) ?? 5,
                       retryAmbiguous: try bool("retry_ambiguous") ?? true)
    }

    /// An `http://` or `https://` URL without trailing slashes and without white space.
    public func httpURL(_ key: String) throws(ChannelConfigError) -> String? {
        guard var url = try string(key) else { return nil }
        let lower = url.lowercased()
        guard lower.hasPrefix("https://") || lower.hasPrefix("http://"),
              url.count > (lower.hasPrefix("https://") ? 8 : 7),
              !url.contains(where: { $0.isWhitespace }) else {
            throw ChannelConfigError(setting: key, "must be an http:// or https:// URL")
        }
        while url.hasSuffix("/") { url.removeLast() }
        return url
    }

    /// The secret in the environment variable that `key` names; nil when `key` is not set.
    public func secret(_ key: String, in environment: ProviderEnvironment) throws(ChannelConfigError) -> String? {
        guard let variable = try string(key) else { return nil }
        return try environment.secret(variable, setting: key)
    }
}
