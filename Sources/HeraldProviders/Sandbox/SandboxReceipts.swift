import Foundation
import HeraldCore

/// How a `sandbox` channel's simulated delivery receipts identify themselves to `herald webhooks`:
/// as a WhatsApp Cloud API number would (its settings `phone_number_id` and `app_secret_env`).
public struct SandboxReceiptIdentity: Sendable, Equatable {
    /// Put in each notification's `metadata.phone_number_id`: how `herald webhooks` finds the channel.
    public var phoneNumberID: String
    /// The environment variable holding the secret that signs them (`X-Hub-Signature-256`).
    public var appSecretEnv: String
}

/// The sandbox's delivery receipts: what becomes of each message the sandbox accepted, and the
/// webhook body that says so.
///
/// The sandbox has no network of its own to deliver over, so it decides each accepted message's
/// fate from a seed and the message's id alone (the same seed gives the same fates, whatever order
/// the messages were sent in), and says so in Meta's WhatsApp Cloud API webhook format, whatever
/// the channel's kind: the format `herald webhooks` verifies and applies for real providers.
public struct SandboxReceipts: Sendable, Equatable {
    /// What happens to one accepted message after the send.
    public enum Fate: Sendable, Equatable {
        /// A `delivered` receipt.
        case delivered
        /// `delivered`, then `read` a little later.
        case read
        /// A `failed` receipt (the handset was unreachable): the message ends failed.
        case failed
    }

    /// One status of a notification: a receipt for one message.
    public struct Status: Sendable, Equatable {
        /// The id the sandbox answered the send with (`sandbox-{messageID}`).
        public var providerMessageID: String
        /// Herald's message id, echoed as Meta echoes `biz_opaque_callback_data`.
        public var messageID: Int64
        /// `delivered`, `read` or `failed`.
        public var status: String
        /// Unix seconds.
        public var timestamp: Int64

        public init(providerMessageID: String, messageID: Int64, status: String, timestamp: Int64) {
            self.providerMessageID = providerMessageID
            self.messageID = messageID
            self.status = status
            self.timestamp = timestamp
        }
    }

    /// Decides the fates.
    public var seed: UInt64
    /// The share of accepted messages that are read (they are delivered first), 0...1.
    public var readShare: Double
    /// The share of accepted messages that fail after all, 0...1 (with `readShare`, at most 1).
    public var failedShare: Double

    /// The error a `failed` receipt carries (Meta's code for a message it could not deliver).
    public static let failureCode = 131026

    public init(seed: UInt64, readShare: Double = 0.6, failedShare: Double = 0.02) {
        precondition((0...1).contains(readShare) && (0...1).contains(failedShare) && readShare + failedShare <= 1,
                     "readShare and failedShare must be shares that add up to at most 1")
        self.seed = seed
        self.readShare = readShare
        self.failedShare = failedShare
    }

    /// The fate of the message `messageID`: a pure function of the seed and the id.
    public func fate(of messageID: Int64) -> Fate {
        let draw = Self.uniform(seed: seed, messageID: messageID)
        if draw < failedShare { return .failed }
        if draw < failedShare + readShare { return .read }
        return .delivered
    }

    /// A number in `0..<1`, uniformly distributed over the ids (SplitMix64 of the seed and the id).
    static func uniform(seed: UInt64, messageID: Int64) -> Double {
        let z = SplitMix64.mix(seed &+ UInt64(bitPattern: messageID) &* SplitMix64.increment)
        return Double(z >> 11) / Double(UInt64(1) << 53)
    }

    /// A WhatsApp Cloud API status notification from `phoneNumberID` holding `statuses`: the raw
    /// body to sign with ``WebhookSignature/meta(body:appSecret:)``.
    public static func whatsAppNotification(phoneNumberID: String, statuses: [Status]) -> [UInt8] {
        var out = #"{"object":"whatsapp_business_account","entry":[{"id":"sandbox","changes":[{"field":"messages","value":"#
        out += #"{"messaging_product":"whatsapp","metadata":{"display_phone_number":"#
        WebhookJSON.writeString(phoneNumberID, into: &out)
        out += #","phone_number_id":"#
        WebhookJSON.writeString(phoneNumberID, into: &out)
        out += #"},"statuses":["#
        for (i, s) in statuses.enumerated() {
            if i > 0 { out += "," }
            out += #"{"id":"#
            WebhookJSON.writeString(s.providerMessageID, into: &out)
            out += #","status":"#
            WebhookJSON.writeString(s.status, into: &out)
            out += #","timestamp":"\#(s.timestamp)","biz_opaque_callback_data":"\#(s.messageID)""#
            if s.status == "failed" {
                out += #","errors":[{"code":\#(failureCode),"title":"Message undeliverable","message":"Message undeliverable","#
                out += #""error_data":{"details":"sandbox: simulated undeliverable message"}}]"#
            }
            out += "}"
        }
        out += "]}}]}]}"
        return Array(out.utf8)
    }
}
