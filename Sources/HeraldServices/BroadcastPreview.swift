import Foundation
import HeraldCore
import HeraldStore

/// What `herald preview` reports about a broadcast: a dry run of validation, expansion and
/// rendering that writes nothing. The JSON shape (`--json`) is documented in docs/preview.md and
/// stable: fields may be added, none renamed or removed. Every key is always present, `null` when
/// absent, so the shape never depends on the broadcast.
public struct BroadcastPreview: Sendable, Equatable, Codable {
    public var broadcastID: Int64
    public var name: String
    public var status: String
    @EncodedAsNull public var channel: String? = nil
    @EncodedAsNull public var kind: String? = nil
    /// The validation errors the scheduler would write to `broadcasts.error` (empty when none).
    public var errors: [String]
    /// Warnings that would not stop the broadcast (contacts with an unknown time zone).
    public var warnings: [String]
    /// Distinct contacts of the audience (messages the broadcast would have).
    public var audience: Int
    /// Of those, the ones that would be sent.
    public var eligible: Int
    /// Skipped ones by `skip_reason` (every reason present, 0 when none).
    public var skipped: [String: Int]
    /// SMS only.
    @EncodedAsNull public var sms: SMS? = nil
    /// Nil when the channel has neither `price_per_message` nor `price_per_segment`.
    @EncodedAsNull public var cost: Cost? = nil
    public var timing: Timing
    /// The first contacts' messages, then (`longest`) the longest one.
    public var samples: [Sample]
    @EncodedAsNull public var longest: Sample? = nil

    public struct SMS: Sendable, Equatable, Codable {
        public var segments: Int
        public var gsm7Messages: Int
        public var gsm7Segments: Int
        public var ucs2Messages: Int
        public var ucs2Segments: Int
        enum CodingKeys: String, CodingKey {
            case segments, gsm7Messages = "gsm7_messages", gsm7Segments = "gsm7_segments"
            case ucs2Messages = "ucs2_messages", ucs2Segments = "ucs2_segments"
        }
    }

    public struct Cost: Sendable, Equatable, Codable {
        @EncodedAsNull public var pricePerMessage: Double? = nil
        @EncodedAsNull public var pricePerSegment: Double? = nil
        public var total: Double
        enum CodingKeys: String, CodingKey {
            case pricePerMessage = "price_per_message", pricePerSegment = "price_per_segment", total
        }
    }

    public struct Timing: Sendable, Equatable, Codable {
        @EncodedAsNull public var ratePerSecond: Double? = nil
        @EncodedAsNull public var dailyLimit: Int? = nil
        /// `send_window` as written, nil when none.
        @EncodedAsNull public var sendWindow: String? = nil
        public var localSendAt: Bool
        public var timeZone: String
        /// Eligible messages whose first due instant falls outside their window (they wait for it).
        public var heldByWindow: Int
        @EncodedAsNull public var firstSendAt: Date? = nil
        @EncodedAsNull public var lastSendAt: Date? = nil
        /// From now (the preview's instant) to the last send; nil when unknown.
        @EncodedAsNull public var estimatedDurationSeconds: Double? = nil
        enum CodingKeys: String, CodingKey {
            case ratePerSecond = "rate_per_second", dailyLimit = "daily_limit", sendWindow = "send_window"
            case localSendAt = "local_send_at", timeZone = "time_zone", heldByWindow = "held_by_window"
            case firstSendAt = "first_send_at", lastSendAt = "last_send_at", estimatedDurationSeconds = "estimated_duration_seconds"
        }
    }

    public struct Sample: Sendable, Equatable, Codable {
        public var contactID: Int64
        @EncodedAsNull public var address: String? = nil
        /// Email only.
        @EncodedAsNull public var subject: String? = nil
        public var text: String
        /// SMS only.
        @EncodedAsNull public var segments: Int? = nil
        /// SMS only: `gsm7` or `ucs2`.
        @EncodedAsNull public var encoding: String? = nil
        enum CodingKeys: String, CodingKey {
            case contactID = "contact_id", address, subject, text, segments, encoding
        }
    }

    enum CodingKeys: String, CodingKey {
        case broadcastID = "broadcast_id", name, status, channel, kind, errors, warnings, audience, eligible, skipped
        case sms, cost, timing, samples, longest
    }
}
