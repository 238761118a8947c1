import Foundation
import HeraldCore
import HeraldPostgres
import HeraldProviders
import HeraldStore
import Logging
import Synchronization

/// The channels that receive webhooks, with the secrets their settings name, re-read from the
/// database every few seconds (the admin tool may add a channel at any time) and on demand when a
/// request names a secret, phone number or account that is not known yet.
///
/// On-demand refreshes are single-flight (concurrent callers wait for the one in flight) and
/// negatively cached (at most one per ``WebhooksConfiguration/refreshOnDemandAfter``, whether it
/// found anything or failed): a burst of requests naming unknown channels, signed or not, costs
/// the pool one query, not one per request.
final class WebhookDirectory: Sendable {
    struct WhatsApp: Sendable {
        var channelID: Int64
        var phoneNumberID: String
        /// nil: `app_secret_env` unset, or names an unset variable: nothing can be verified.
        var appSecret: String?
        var verifyToken: String?
    }

    struct Twilio: Sendable {
        var channelID: Int64
        var accountSID: String
        /// The URL Twilio signs: `status_callback_url`, else `HERALD_PUBLIC_URL` + `/webhooks/twilio`.
        var callbackURL: String?
        var authToken: String?
    }

    struct Snapshot: Sendable {
        var whatsApp: [WhatsApp] = []
        var twilio: [Twilio] = []
        /// Each distinct app secret once, with the channels that use it.
        var byAppSecret: [(secret: String, channels: [WhatsApp])] = []
        /// Incremented by every successful load: tells a caller whether a refresh brought news.
        var generation = 0

        init() {}

        init(whatsApp: [WhatsApp], twilio: [Twilio], generation: Int) {
            self.whatsApp = whatsApp
            self.twilio = twilio
            self.generation = generation
            var index: [String: Int] = [:]
            for c in whatsApp {
                guard let secret = c.appSecret else { continue }
                if let i = index[secret] {
                    byAppSecret[i].channels.append(c)
                } else {
                    index[secret] = byAppSecret.count
                    byAppSecret.append((secret, [c]))
                }
            }
        }
    }

    private struct Flight {
        var running = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        /// When the last load started (successful or not): the negative cache.
        var attemptedAt: ContinuousClock.Instant?
        var refreshes = 0
        /// Callers inside ``refresh(pool:ifOlderThan:)`` right now, and database loads in flight
        /// right now and at most so far (tests: single-flight means never more than one load).
        var callers = 0
        var loading = 0
        var mostLoadingAtOnce = 0
    }

    private let state = Mutex(Snapshot())
    private let flight = Mutex(Flight())
    private let problems = Mutex<[Int64: String]>([:])
    private let environment: [String: String]
    private let publicURL: String?
    private let logger: Logger

    init(environment: [String: String], publicURL: String?, logger: Logger) {
        self.environment = environment
        self.publicURL = publicURL
        self.logger = logger
    }

    var snapshot: Snapshot { state.withLock { $0 } }

    /// Database loads so far (tests: a burst must not multiply them).
    var refreshCount: Int { flight.withLock { $0.refreshes } }

    /// Callers waiting in ``refresh(pool:ifOlderThan:)`` now (tests: a burst has arrived).
    var callersInside: Int { flight.withLock { $0.callers } }

    /// The most database loads ever in flight at once (tests: single-flight keeps it at 1).
    var mostLoadsAtOnce: Int { flight.withLock { $0.mostLoadingAtOnce } }

    /// Re-reads the channels; with `ifOlderThan`, only when the last attempt is older than that.
    /// When a load is already in flight, waits for it instead of starting another.
    func refresh(pool: PostgresPool, ifOlderThan age: Duration? = nil) async throws {
        enum Role { case fresh, lead, follow }
        let role = flight.withLock { f -> Role in
            if f.running { f.callers += 1; return .follow }
            if let age, let at = f.attemptedAt, ContinuousClock.now - at < age { return .fresh }
            f.running = true
            f.attemptedAt = .now
            f.refreshes += 1
            f.callers += 1
            f.loading += 1
            f.mostLoadingAtOnce = max(f.mostLoadingAtOnce, f.loading)
            return .lead
        }
        defer { if role != .fresh { flight.withLock { $0.callers -= 1 } } }
        switch role {
        case .fresh:
            return
        case .follow:
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let parked = flight.withLock { f -> Bool in
                    guard f.running else { return false }
                    f.waiters.append(c)
                    return true
                }
                if !parked { c.resume() }
            }
        case .lead:
            defer {
                let waiters = flight.withLock { f -> [CheckedContinuation<Void, Never>] in
                    f.running = false
                    f.loading -= 1
                    defer { f.waiters.removeAll() }
                    return f.waiters
                }
                for w in waiters { w.resume() }
            }
            try await load(pool: pool)
        }
    }

    private func load(pool: PostgresPool) async throws {
        let channels = try await pool.withConnection { try await ReceiptStore().webhookChannels(on: $0) }
        var whatsApp: [WhatsApp] = []
        var twilio: [Twilio] = []
        var found: [Int64: String] = [:]
        // A *_env naming Herald's own configuration is never used as a secret (contract section 1).
        let policy = DestinationPolicy(allowedHostsVariable: nil)
        func secret(_ name: String?, setting: String, channel: Int64) -> String? {
            guard let name else { return nil }
            do {
                try policy.checkSecretVariable(name, setting: setting)
            } catch {
                found[channel] = error.description
                return nil
            }
            return environment[name].flatMap { $0.isEmpty ? nil : $0 }
        }
        for channel in channels {
            do {
                let settings = try SettingsReader(json: channel.settingsJSON)
                switch channel.provider {
                case WhatsAppCloudProvider.name:
                    let s = try WhatsAppCloudSettings(settings)
                    let appSecret = secret(s.appSecretEnv, setting: "app_secret_env", channel: channel.id)
                    let token = secret(s.verifyTokenEnv, setting: "verify_token_env", channel: channel.id)
                    if appSecret == nil, found[channel.id] == nil {
                        found[channel.id] = s.appSecretEnv.map { "environment variable \($0) named by \"app_secret_env\" is not set" }
                            ?? "\"app_secret_env\" is not set: its webhooks cannot be verified"
                    }
                    whatsApp.append(WhatsApp(channelID: channel.id, phoneNumberID: s.phoneNumberID, appSecret: appSecret, verifyToken: token))
                case TwilioProvider.name:
                    let s = try TwilioSettings(settings)
                    let token = secret(s.authTokenEnv, setting: "auth_token_env", channel: channel.id)
                    let url = s.statusCallback(publicURL: publicURL)
                    if token == nil, found[channel.id] == nil {
                        found[channel.id] = "environment variable \(s.authTokenEnv) named by \"auth_token_env\" is not set"
                    } else if url == nil {
                        found[channel.id] = "HERALD_PUBLIC_URL is not set (nor \"status_callback_url\"): Twilio callbacks cannot be verified"
                    }
                    twilio.append(Twilio(channelID: channel.id, accountSID: s.accountSID, callbackURL: url, authToken: token))
                case SandboxProvider.name:
                    // Only a sandbox that signs simulated receipts (`herald demo`'s) receives webhooks,
                    // in Meta's format, so it is listed with the WhatsApp numbers.
                    guard let identity = try SandboxSettings(settings).receipts else { break }
                    let appSecret = secret(identity.appSecretEnv, setting: "app_secret_env", channel: channel.id)
                    if appSecret == nil, found[channel.id] == nil {
                        found[channel.id] = "environment variable \(identity.appSecretEnv) named by \"app_secret_env\" is not set"
                    }
                    whatsApp.append(WhatsApp(channelID: channel.id, phoneNumberID: identity.phoneNumberID, appSecret: appSecret, verifyToken: nil))
                default:
                    break
                }
            } catch {
                found[channel.id] = "\(error)"
            }
        }
        state.withLock { $0 = Snapshot(whatsApp: whatsApp, twilio: twilio, generation: $0.generation + 1) }
        // Log each configuration problem once, not at every refresh.
        let new = problems.withLock { old -> [Int64: String] in
            let new = found.filter { old[$0.key] != $0.value }
            old = found
            return new
        }
        for (id, problem) in new.sorted(by: { $0.key < $1.key }) {
            logger.error("channel cannot verify webhooks", metadata: ["channel.id": "\(id)", "problem": "\(problem)"])
        }
    }
}
