import Foundation
import HeraldCore
import HeraldProviders
import HeraldStore

/// Turns a provider's verdict on one message into what to record: retries with backoff until
/// the channel's `max_attempts`, ambiguous failures retried only where the channel allows, and
/// the channel pause a rate-limit answer asks for.
struct OutcomeRules: Sendable {
    let backoff: Backoff
    /// Where the backoff's jitter comes from.
    var random: RandomSource = .system

    /// - Parameters:
    ///   - part, parts: Which of the message's requests answered, and how many it has: an
    ///     accepted part before the last is a ``JobOutcome/Result/partSent(providerMessageID:)``;
    ///     a later part's failure says that the earlier ones went.
    func recordable(_ delivery: DeliveryOutcome, job: ClaimedJob, broadcast: PreparedBroadcast,
                    segments: Int?, now: Date, part: Int = 0, parts: Int = 1) -> JobOutcome {
        var result = result(of: delivery, job: job, broadcast: broadcast, now: now)
        switch result {
        case .sent(let id) where part < parts - 1:
            result = .partSent(providerMessageID: id)
        case .failed(let code, let error, let kind) where part > 0:
            result = .failed(errorCode: code, error: "\(error) (part \(part + 1) of \(parts); the parts before it were sent)",
                             failureKind: kind)
        default:
            break
        }
        var recorded = JobOutcome(messageID: job.messageID, result: result, segments: segments)
        if case .retry(_, _, let retryAfter, _, true) = delivery {
            recorded.rateLimitedFor = retryAfter ?? .seconds(2)
        }
        return recorded
    }

    private func result(of outcome: DeliveryOutcome, job: ClaimedJob, broadcast: PreparedBroadcast, now: Date) -> JobOutcome.Result {
        switch outcome {
        case .accepted(let id):
            return .sent(providerMessageID: id)
        case .permanent(let code, let message):
            return .failed(errorCode: code, error: message, failureKind: nil)
        case .retry(let code, let message, let retryAfter, let ambiguous, _):
            let attempt = job.attempts + 1
            let kind: FailureKind = ambiguous ? .ambiguous : .notSent
            let policy = broadcast.channel.policy
            if ambiguous && !policy.retryAmbiguous,
               case .permanent(_, let why) = outcome.applying(retryAmbiguous: false) {
                return .failed(errorCode: code, error: why, failureKind: kind)
            }
            if attempt >= policy.maxAttempts {
                return .failed(errorCode: code, error: "\(message) (gave up after \(attempt) attempts)", failureKind: kind)
            }
            var rng = random.generator
            var delay = backoff.delay(afterAttempt: attempt, using: &rng)
            if let retryAfter, retryAfter > delay { delay = retryAfter }
            let seconds = delay.inSeconds
            return .retry(at: now.addingTimeInterval(seconds), errorCode: code, error: message, failureKind: kind)
        }
    }
}
