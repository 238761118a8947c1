import Synchronization
import Foundation
import HeraldCore
import HeraldTransport
import Testing
@testable import HeraldProviders

@Suite struct RetryAfterTests {
    let now = Date(timeIntervalSince1970: 1_445_412_420) // 2015-10-21 07:27:00 UTC

    @Test("Retry-After forms", arguments: [
        ("120", Duration?.some(.seconds(120))),
        (" 0 ", .some(.zero)),
        ("Wed, 21 Oct 2015 07:28:00 GMT", .some(.seconds(60))),
        ("Wednesday, 21-Oct-15 07:28:00 GMT", .some(.seconds(60))),
        ("Wed Oct 21 07:28:00 2015", .some(.seconds(60))),
        ("Wed, 21 Oct 2015 07:00:00 GMT", .some(.zero)),
        ("soon", nil),
        ("-5", nil),
        ("", nil),
        ("Wed, 21 Oct 2015 25:28:00 GMT", nil),
    ])
    func forms(value: String, expected: Duration?) {
        #expect(RetryAfter.parse(value, now: now) == expected)
    }

    @Test("RFC 5322 dates", arguments: [
        (0.0, "Thu, 01 Jan 1970 00:00:00 +0000"),
        (951_782_400, "Tue, 29 Feb 2000 00:00:00 +0000"),
        (1_751_371_200.9, "Tue, 01 Jul 2025 12:00:00 +0000"),
        (4_102_444_799, "Thu, 31 Dec 2099 23:59:59 +0000"),
    ])
    func rfc5322(seconds: Double, expected: String) {
        #expect(HTTPDate.rfc5322(Date(timeIntervalSince1970: seconds)) == expected)
    }
}

@Suite struct OutcomeTests {
    @Test("HTTP transport errors: notSent retries safely, ambiguous is flagged")
    func transportErrors() {
        #expect(DeliveryOutcome.classify(transportError: TransportError(kind: .notSent, curlCode: 6, message: "could not resolve host"))
            == .retry(code: nil, message: "not sent: could not resolve host", retryAfter: nil, ambiguous: false, rateLimited: false))
        #expect(DeliveryOutcome.classify(transportError: TransportError(kind: .ambiguous, curlCode: 28, message: "timed out"))
            == .retry(code: nil, message: "no answer: timed out", retryAfter: nil, ambiguous: true, rateLimited: false))
    }

    @Test("retry_ambiguous false turns only ambiguous retries into failures")
    func applyingRetryAmbiguous() {
        let ambiguous = DeliveryOutcome.retry(code: nil, message: "no answer: timed out", retryAfter: nil, ambiguous: true, rateLimited: false)
        #expect(ambiguous.applying(retryAmbiguous: true) == ambiguous)
        #expect(ambiguous.applying(retryAmbiguous: false)
            == .permanent(code: nil, message: "no answer: timed out (not retried: the provider may have received it)"))
        let plain = DeliveryOutcome.retry(code: "131000", message: "x", retryAfter: nil, ambiguous: false, rateLimited: false)
        #expect(plain.applying(retryAmbiguous: false) == plain)
    }

    @Test("long provider messages are clipped to one line")
    func clipped() {
        let message = String(repeating: "word ", count: 200) + "\n\nmore"
        let body = Array(#"{"code":21211,"message":"\#(message.replacingOccurrences(of: "\n", with: "\\n"))"}"#.utf8)
        guard case .permanent(_, let text) = Twilio.classify(HTTPResponse(status: 400, body: body)) else {
            Issue.record("expected permanent"); return
        }
        #expect(text.count <= 301)
        #expect(!text.contains("\n"))
        #expect(text.hasSuffix("…"))
    }
}


@Suite struct SandboxTests {
    let message = OutgoingMessage(messageID: 5, to: "+1", content: .sms(body: "x"))

    private func outcome(of channel: SandboxChannel) throws -> DeliveryOutcome {
        guard case .simulated(_, let outcome) = try channel.request(for: message) else {
            Issue.record("the sandbox made a real request")
            return .permanent(code: nil, message: "")
        }
        return outcome
    }

    @Test("no failures by default, answered after latency_ms")
    func accepts() throws {
        let channel = SandboxChannel(settings: SandboxSettings(latencyMs: 25), random: { 0 })
        guard case .simulated(let latency, let outcome) = try channel.request(for: message) else {
            Issue.record("the sandbox made a real request")
            return
        }
        #expect(latency == .milliseconds(25))
        #expect(outcome == .accepted(providerMessageID: "sandbox-5"))
        #expect(channel.classify(.simulated(outcome), for: .simulated(latency: latency, outcome: outcome), now: .now) == outcome)
    }

    @Test("failure_rate sets the failing share")
    func failureRate() throws {
        let generator = SeededRandom(state: 42)
        let random: @Sendable () -> Double = { generator.next() }
        let channel = SandboxChannel(settings: SandboxSettings(failureRate: 0.25), random: random)
        var failures = 0
        for _ in 0..<4000 {
            if case .permanent = try outcome(of: channel) { failures += 1 }
        }
        #expect((800...1200).contains(failures))
        #expect(try outcome(of: SandboxChannel(settings: SandboxSettings(failureRate: 1), random: random))
            == .permanent(code: "sandbox", message: "simulated failure (failure_rate 1.0)"))
    }
}

/// A seeded source of numbers in `0..<1` that a `@Sendable` closure can hold.
final class SeededRandom: Sendable {
    private let generator: Mutex<SplitMix64>
    init(state: UInt64) { generator = Mutex(SplitMix64(seed: state)) }
    func next() -> Double { generator.withLock { Double.random(in: 0..<1, using: &$0) } }
}
