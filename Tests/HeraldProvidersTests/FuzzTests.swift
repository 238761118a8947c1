import Foundation
import HeraldCore
import HeraldTransport
import Testing
@testable import HeraldProviders

/// Seeded random inputs over every parser that reads numbers from outside (a provider's headers
/// and bodies, a channel's settings): none may trap, and every wait it returns is bounded.
/// A crash here is the finding; the seed in the test makes it reproducible.
@Suite struct FuzzTests {
    static let iterations = 20_000
    static let hour = Duration.seconds(3600)

    /// Text pieces that parsers care about, mixed at random.
    static let pieces = ["0", "1", "9", "12", "59", "60", "99", "1994", "2015", "9999", "10000", "99999999999",
                         "9999999999999", "99999999999999999999999999", "-1", "-", "+", ":", ",", " ", "  ", ".", "e", "E",
                         "Mon", "Wed", "Sunday", "Jan", "Feb", "Oct", "Dec", "GMT", "UTC", "PST", "nan", "inf",
                         "Infinity", "1e400", "0x10", "١٢", "\u{0}", "\t", "🙂"]

    static func junk(_ rng: inout SplitMix64) -> String {
        let count = Int.random(in: 0...8, using: &rng)
        return (0..<count).map { _ in pieces.randomElement(using: &rng)! }.joined()
    }

    /// An HTTP-date in one of the three forms, with any field possibly absurd.
    static func date(_ rng: inout SplitMix64) -> String {
        let years = ["1970", "2015", "94", "9999", "10000", "292277026596", "99999999999999999999", "-5", "0"]
        let days = ["01", "21", "31", "32", "0", "999999999999999999999"]
        let times = ["07:28:00", "23:59:60", "24:00:00", "99:99:99", "9999999999999999999:00:00", "1:2"]
        let y = years.randomElement(using: &rng)!, d = days.randomElement(using: &rng)!, t = times.randomElement(using: &rng)!
        switch Int.random(in: 0..<3, using: &rng) {
        case 0: return "Wed, \(d) Oct \(y) \(t) GMT"
        case 1: return "Wednesday, \(d)-Oct-\(y) \(t) GMT"
        default: return "Wed Oct \(d) \(t) \(y)"
        }
    }

    static func retryAfterValue(_ rng: inout SplitMix64) -> String {
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: return String(UInt64.random(in: 0...UInt64.max, using: &rng) >> UInt64.random(in: 0...63, using: &rng))
        case 1: return date(&rng)
        case 2: return String(repeating: "9", count: Int.random(in: 1...40, using: &rng))
        default: return junk(&rng)
        }
    }

    static func bounded(_ d: Duration?, by limit: Duration) -> Bool {
        guard let d else { return true }
        return d >= .zero && d <= limit
    }

    @Test("Retry-After: seeded random values never trap and stay within 0...maximum")
    func retryAfter() {
        var rng = SplitMix64(seed: 0xFA17_0001)
        let nows = [Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: 1_445_412_420), Date(),
                    Date(timeIntervalSince1970: -1e12), Date(timeIntervalSince1970: .nan), .distantFuture]
        for _ in 0..<Self.iterations {
            let value = Self.retryAfterValue(&rng)
            let now = nows.randomElement(using: &rng)!
            let maximum = [Self.hour, .seconds(1), .zero, .seconds(86_400)].randomElement(using: &rng)!
            let d = RetryAfter.parse(value, now: now, maximum: maximum)
            #expect(Self.bounded(d, by: maximum), "Retry-After \(value.debugDescription) gave \(String(describing: d))")
        }
    }

    @Test("huge Retry-After values are clamped to an hour, not trapped on or read as unreadable")
    func hugeRetryAfter() {
        let now = Date(timeIntervalSince1970: 1_445_412_420)
        #expect(RetryAfter.parse("9999999999999", now: now) == Self.hour)
        #expect(RetryAfter.parse("99999999999999999999999999", now: now) == Self.hour)
        #expect(RetryAfter.parse("Fri, 31 Dec 9999 23:59:59 GMT", now: now) == Self.hour)
        #expect(RetryAfter.parse("9999999999999", now: now, maximum: .seconds(10)) == .seconds(10))
        #expect(RetryAfter.parse("Fri, 01 Jan 99999999999999 00:00:00 GMT", now: now) == nil, "not an HTTP-date: 4-digit years")
    }

    @Test("HTTP-dates: seeded random dates never trap; results stay within 1970...9999")
    func httpDates() {
        var rng = SplitMix64(seed: 0xFA17_0002)
        for _ in 0..<Self.iterations {
            let text = Bool.random(using: &rng) ? Self.date(&rng) : Self.junk(&rng)
            if let seconds = HTTPDate.parse(text) {
                #expect(seconds >= 0 && seconds <= HTTPDate.latestSecond, "\(text.debugDescription) gave \(seconds)")
            }
        }
        for seconds in [Double.nan, .infinity, -.infinity, 1e300, -1e300, 9.3e18, -9.3e18] {
            _ = HTTPDate.rfc5322(Date(timeIntervalSince1970: seconds))
        }
    }

    /// A provider error document with random (often absurd) codes and flags.
    static func errorBody(_ rng: inout SplitMix64, whatsApp: Bool) -> [UInt8] {
        let codes = ["130429", "131056", "20429", "14107", "131000", "1e400", "-1", "9223372036854775808",
                     "1.5", "\"131056\"", "null", "1e308", "-0", "131047", "80007", "4", "2"]
        let code = codes.randomElement(using: &rng)!
        let text: String
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: text = Self.junk(&rng)
        case 1: text = whatsApp
            ? "{\"error\":{\"code\":\(code),\"message\":\"\(Self.junk(&rng).filter { $0 != "\"" && $0 != "\\" })\",\"is_transient\":\(Bool.random(using: &rng))}}"
            : "{\"code\":\(code),\"message\":\"x\"}"
        case 2: text = whatsApp ? "{\"messages\":[{\"id\":\(code)}]}" : "{\"sid\":\(code)}"
        default: text = "{\"error\":" + String(repeating: "[", count: Int.random(in: 0...2000, using: &rng))
        }
        return Array(text.utf8)
    }

    @Test("provider answers: WhatsApp Cloud and Twilio classify random answers without trapping; waits bounded")
    func providerAnswers() {
        var rng = SplitMix64(seed: 0xFA17_0003)
        let statuses = [200, 201, 400, 401, 408, 429, 500, 502, 503, 504, 0, -1, 999, Int.max, Int.min]
        for i in 0..<Self.iterations {
            let whatsApp = i % 2 == 0
            var headers: HTTPHeaders = [:]
            if Bool.random(using: &rng) { headers = ["Retry-After": Self.retryAfterValue(&rng)] }
            let response = HTTPResponse(status: statuses.randomElement(using: &rng)!, headers: headers,
                                        body: Self.errorBody(&rng, whatsApp: whatsApp))
            let outcome = whatsApp ? WhatsAppCloud.classify(response) : Twilio.classify(response)
            if case .retry(_, _, let wait, _, _) = outcome {
                // The pair-rate-limit pause (6 s) is the only wait that may exceed a zero Retry-After.
                #expect(Self.bounded(wait, by: Self.hour), "\(outcome)")
            }
        }
    }

    @Test("channel settings: random values for every known setting are accepted or refused, never trapped on")
    func settings() {
        var rng = SplitMix64(seed: 0xFA17_0004)
        let keys = ["base_url", "phone_number_id", "access_token_env", "app_secret_env", "account_sid", "auth_token_env",
                    "from", "messaging_service_sid", "url", "username_env", "password_env", "require_tls", "latency_ms",
                    "failure_rate", "max_attempts", "retry_ambiguous", "unsubscribe_url", "status_callback_url", "ca_file",
                    "daily_limit", "price_per_message"]
        let values = ["1", "0", "-1", "1e400", "-1e400", "1e12", "1e13", "9223372036854775807", "9.3e18", "0.5", "1.0000001",
                      "true", "null", "\"\"", "\"x\"", "\"https://example.com\"", "[]", "{}", "\"HERALD_X\"", "1e-400"]
        let providers = [("whatsapp_cloud", "whatsapp"), ("twilio", "sms"), ("smtp", "email"), ("sandbox", "sms"), ("nope", "fax")]
        for _ in 0..<Self.iterations {
            let count = Int.random(in: 0...6, using: &rng)
            let members = (0..<count).map { _ in "\"\(keys.randomElement(using: &rng)!)\":\(values.randomElement(using: &rng)!)" }
            let json = Int.random(in: 0..<10, using: &rng) == 0 ? Self.junk(&rng) : "{" + members.joined(separator: ",") + "}"
            let (provider, kind) = providers.randomElement(using: &rng)!
            _ = try? ProviderRegistry.standard.configure(provider: provider, kind: kind, settingsJSON: json,
                                                         environment: ProviderEnvironment(variables: ["T": "t", "HERALD_ALLOWED_HOSTS": "127.0.0.1"]))
        }
    }
}
