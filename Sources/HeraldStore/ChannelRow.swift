import HeraldPostgres

/// A `herald.channels` row as the stores hand it out: what a provider needs to configure the
/// channel (``settingsJSON``) and what an error names. `kind` stays the text the admin tool wrote,
/// so one bad row fails only the broadcast or webhook that uses it, with a named error, instead of
/// the whole read.
public struct ChannelRow: Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var kind: String
    public var provider: String
    /// `settings` as JSON text.
    public var settingsJSON: String
    public var enabled: Bool

    /// Decodes the columns `id`, `name`, `kind`, `provider`, `settings` (as text) and `enabled`,
    /// each named with `prefix` in front when the row holds other tables' columns too.
    init(_ row: PostgresRow, prefix: String = "") throws {
        id = try row.decode(Int64.self, prefix + "id")
        name = try row.decode(String.self, prefix + "name")
        kind = try row.decode(String.self, prefix + "kind")
        provider = try row.decode(String.self, prefix + "provider")
        settingsJSON = try row.decode(String.self, prefix + "settings")
        enabled = try row.decode(Bool.self, prefix + "enabled")
    }
}
