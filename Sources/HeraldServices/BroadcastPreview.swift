import Foundation
import HeraldCore
import HeraldStore

/// What `herald preview` reports about a broadcast: a dry run of validation, expansion and
/// rendering that writes nothing. The JSON shape (`--json`) is documented in docs/preview.md and
/// stable: fields may be added, none renamed or removed.
public struct BroadcastPreview: Sendable, Equatable, Codable {
    public var broadcastID: Int64
    public var name: String
    public var status: String
    public var channel: String?
    public var kind: String?
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
    public var sms: SMS?
    /// Nil when the channel has neither `price_per_message` nor `price_per_segment`.
    public var cost: Cost?
    public var timing: Timing
    /// The first contacts' messages, then (`longest`) the longest one.
    public var samples: [Sample]
    public var longest: Sample?

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
        public var pricePerMessage: Double?
        public var pricePerSegment: Double?
        public var total: Double
        enum CodingKeys: String, CodingKey {
            case pricePerMessage = "price_per_message", pricePerSegment = "price_per_segment", total
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(pricePerMessage, forKey: .pricePerMessage)
            try c.encode(pricePerSegment, forKey: .pricePerSegment)
            try c.encode(total, forKey: .total)
        }
    }

    public struct Timing: Sendable, Equatable, Codable {
        public var ratePerSecond: Double?
        public var dailyLimit: Int?
        /// `send_window` as written, nil when none.
        public var sendWindow: String?
        public var localSendAt: Bool
        public var timeZone: String
        /// Eligible messages whose first due instant falls outside their window (they wait for it).
        public var heldByWindow: Int
        public var firstSendAt: Date?
        public var lastSendAt: Date?
        /// From now (the preview's instant) to the last send; nil when unknown.
        public var estimatedDurationSeconds: Double?
        enum CodingKeys: String, CodingKey {
            case ratePerSecond = "rate_per_second", dailyLimit = "daily_limit", sendWindow = "send_window"
            case localSendAt = "local_send_at", timeZone = "time_zone", heldByWindow = "held_by_window"
            case firstSendAt = "first_send_at", lastSendAt = "last_send_at", estimatedDurationSeconds = "estimated_duration_seconds"
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(ratePerSecond, forKey: .ratePerSecond)
            try c.encode(dailyLimit, forKey: .dailyLimit)
            try c.encode(sendWindow, forKey: .sendWindow)
            try c.encode(localSendAt, forKey: .localSendAt)
            try c.encode(timeZone, forKey: .timeZone)
            try c.encode(heldByWindow, forKey: .heldByWindow)
            try c.encode(firstSendAt, forKey: .firstSendAt)
            try c.encode(lastSendAt, forKey: .lastSendAt)
            try c.encode(estimatedDurationSeconds, forKey: .estimatedDurationSeconds)
        }
    }

    public struct Sample: Sendable, Equatable, Codable {
        public var contactID: Int64
        public var address: String?
        /// Email only.
        public var subject: String?
        public var text: String
        /// SMS only.
        public var segments: Int?
        /// SMS only: `gsm7` or `ucs2`.
        public var encoding: String?
        enum CodingKeys: String, CodingKey {
            case contactID = "contact_id", address, subject, text, segments, encoding
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(contactID, forKey: .contactID)
            try c.encode(address, forKey: .address)
            try c.encode(subject, forKey: .subject)
            try c.encode(text, forKey: .text)
            try c.encode(segments, forKey: .segments)
            try c.encode(encoding, forKey: .encoding)
        }
    }

    enum CodingKeys: String, CodingKey {
        case broadcastID = "broadcast_id", name, status, channel, kind, errors, warnings, audience, eligible, skipped
        case sms, cost, timing, samples, longest
    }

    /// Every key always present, null when absent, so the shape never depends on the broadcast.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(broadcastID, forKey: .broadcastID)
        try c.encode(name, forKey: .name)
        try c.encode(status, forKey: .status)
        try c.encode(channel, forKey: .channel)
        try c.encode(kind, forKey: .kind)
        try c.encode(errors, forKey: .errors)
        try c.encode(warnings, forKey: .warnings)
        try c.encode(audience, forKey: .audience)
        try c.encode(eligible, forKey: .eligible)
        try c.encode(skipped, forKey: .skipped)
        try c.encode(sms, forKey: .sms)
        try c.encode(cost, forKey: .cost)
        try c.encode(timing, forKey: .timing)
        try c.encode(samples, forKey: .samples)
        try c.encode(longest, forKey: .longest)
    }
}
