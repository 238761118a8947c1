import Foundation
import HeraldCore
import HeraldProviders
import HeraldTransport

/// The worker's only calls into provider code: a rendered message becomes a request, an answer
/// becomes a ``DeliveryOutcome``. When the provider interface (`ConfiguredChannel`) lands, these
/// two functions become `broadcast.channel.request(for:)` and `broadcast.channel.classify(_:now:)`.
struct ProviderSeam: Sendable {
    let requestTimeout: Duration
    let publicURL: String?

    /// What one rendered message turns into for the provider.
    enum Request {
        case transfer(TransportRequest, mailID: String?)
        /// The sandbox: no network, answered locally.
        case sandbox
        /// The message cannot be written for the provider (a ``MessageBuildError``).
        case unsendable(String)
    }

    func request(for message: OutgoingMessage, _ broadcast: PreparedBroadcast) -> Request {
        do {
            switch (broadcast.config, broadcast.credentials) {
            case (.sandbox, _):
                return .sandbox
            case (.whatsappCloud(let settings), .whatsappCloud(let credentials)):
                return .transfer(.http(try WhatsAppCloud.request(for: message, settings: settings, credentials: credentials,
                                                                 timeout: requestTimeout)), mailID: nil)
            case (.twilio(let settings), .twilio(let credentials)):
                return .transfer(.http(try Twilio.request(for: message, settings: settings, credentials: credentials,
                                                          publicURL: publicURL, timeout: requestTimeout)), mailID: nil)
            case (.smtp(let settings), .smtp(let credentials)):
                let mail = try SMTPProvider.mail(for: message, settings: settings, credentials: credentials,
                                                 timeout: requestTimeout)
                return .transfer(.smtp(mail.envelope), mailID: mail.messageID)
            default:
                return .unsendable("provider settings and credentials do not match")
            }
        } catch {
            return .unsendable("\(error)")
        }
    }

    /// What the provider's answer (or the transport's failure) means for the message.
    func classify(_ result: Result<HTTPResponse, TransportError>, mailID: String?, _ broadcast: PreparedBroadcast,
                  now: Date) -> DeliveryOutcome {
        switch (broadcast.config, result) {
        case (.smtp, .success):
            return SMTPProvider.classify(nil, messageID: mailID ?? "")
        case (.smtp, .failure(let error)):
            return SMTPProvider.classify(error, messageID: mailID ?? "")
        case (.twilio, .success(let response)):
            return Twilio.classify(response, now: now)
        case (_, .success(let response)):
            // Only WhatsApp is left: the sandbox makes no requests.
            return WhatsAppCloud.classify(response, now: now)
        case (_, .failure(let error)):
            return DeliveryOutcome.classify(transportError: error)
        }
    }

    /// The sandbox's simulated answers for a batch, after its simulated latency.
    func sandbox(_ broadcast: PreparedBroadcast) -> (latency: Duration, outcome: (OutgoingMessage) -> DeliveryOutcome)? {
        guard case .sandbox(let settings) = broadcast.config else { return nil }
        return (Sandbox.latency(settings), { message in
            var rng = SystemRandomNumberGenerator()
            return Sandbox.outcome(for: message, settings: settings, using: &rng)
        })
    }

    /// Whether an ambiguous failure may be retried, and how many attempts the channel allows.
    func policy(_ broadcast: PreparedBroadcast) -> (retryAmbiguous: Bool, maxAttempts: Int) {
        (broadcast.config.retryAmbiguous, broadcast.config.maxAttempts)
    }
}
