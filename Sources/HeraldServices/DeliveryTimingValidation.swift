import HeraldStore

/// The delivery-timing rules a broadcast must pass before expansion, beside
/// ``SchedulerValidation``'s: its own `time_zone` must be a zone PostgreSQL knows.
///
/// The `send_window` shape is checked by the table (`broadcasts_send_window_shape`), so a bad
/// window never reaches the scheduler. Contacts' zones are not checked here: an unknown contact
/// zone falls back to the broadcast's zone (see ``UnknownTimeZones``), so one bad row never stops
/// a broadcast to a million people, and the fallback is reported in `error`.
public enum DeliveryTimingValidation {
    /// - Returns: nil when the timing columns are usable, else the one-line reason the broadcast fails.
    public static func check(_ timing: SchedulerStore.BroadcastDefinition.Timing) -> String? {
        if let zone = timing.timeZone, !timing.timeZoneKnown {
            return "time_zone \"\(zone)\" is not a known IANA time zone name (e.g. \"Europe/London\")"
        }
        return nil
    }
}

/// Contacts whose `time_zone` PostgreSQL does not know, counted over a broadcast's expansion
/// chunks. They are sent in the broadcast's zone; the count goes to `broadcasts.error` as a
/// warning when the broadcast starts (its status stays `sending`: nobody is skipped for it).
///
/// - Important: the count covers the chunks expanded in the scheduler's current leadership term;
///   after a failover mid-expansion it covers only the chunks the new leader expanded.
public struct UnknownTimeZones: Sendable, Equatable {
    public private(set) var contacts = 0
    public private(set) var example: String?

    public init() {}

    public mutating func add(_ count: Int, example: String?) {
        guard count > 0 else { return }
        contacts += count
        if self.example == nil { self.example = example }
    }

    /// The warning for `broadcasts.error`, nil when every zone was known.
    public var warning: String? {
        guard contacts > 0 else { return nil }
        let e = example.map { " (e.g. \"\($0)\")" } ?? ""
        return "warning: \(contacts) contact(s) have an unknown time_zone\(e); they were given the broadcast's time_zone"
    }
}
