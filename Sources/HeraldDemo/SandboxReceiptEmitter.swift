import Foundation
import HeraldPostgres
import HeraldProviders
import HeraldStore
import HeraldTransport
import Logging
import ServiceLifecycle
import Synchronization

/// The sandbox provider's webhook sender: posts delivery receipts for the messages the sandbox
/// accepted to `herald webhooks`, as Meta posts its status notifications: `POST /webhooks/whatsapp`,
/// signed with `X-Hub-Signature-256` and the channel's app secret, several statuses per body.
///
/// It runs beside Herald, not inside it (`herald demo` starts it; tests drive ``pass(on:)``): a
/// worker's sends are untouched. Every ``Configuration/pollInterval`` it reads the messages of its
/// channels still `sent` (``SandboxStore``), decides each one's fate from the seed
/// (``SandboxReceipts/fate(of:)``), posts `delivered` or `failed` at once and `read`
/// ``Configuration/readAfter`` later. A refused post (401: the secrets differ) is counted in
/// ``Tally/refused`` and logged; any other failure is retried at the next pass (receipts are
/// idempotent, as Meta's are).
public final class SandboxReceiptEmitter: Service, Sendable {
    /// A sandbox channel whose receipts this emitter sends.
    public struct Channel: Sendable {
        public var id: Int64
        /// Its `phone_number_id` setting.
        public var phoneNumberID: String
        /// The value of the variable its `app_secret_env` names.
        public var appSecret: String

        public init(id: Int64, phoneNumberID: String, appSecret: String) {
            self.id = id
            self.phoneNumberID = phoneNumberID
            self.appSecret = appSecret
        }
    }

    public struct Configuration: Sendable {
        public var channels: [Channel]
        public var receipts: SandboxReceipts
        /// Messages with an id at most this are not the run's (see ``SandboxStore``).
        public var floor: Int64
        public var pollInterval: Duration = .milliseconds(200)
        /// How long after `delivered` a read message's `read` receipt is posted.
        public var readAfter: Duration = .seconds(1)
        /// Statuses per notification at most.
        public var batch: Int = 500

        public init(channels: [Channel], receipts: SandboxReceipts, floor: Int64) {
            self.channels = channels
            self.receipts = receipts
            self.floor = floor
        }
    }

    /// Receipts `herald webhooks` accepted (200), by status, and notifications it refused.
    public struct Tally: Sendable, Equatable, Encodable {
        public var delivered = 0
        public var read = 0
        public var failed = 0
        /// Notifications answered 401 (their signature was refused).
        public var refused = 0
        /// Notifications that failed otherwise (retried).
        public var errors = 0
    }

    private struct PendingRead {
        var due: ContinuousClock.Instant
        var channel: Int64
        var status: SandboxReceipts.Status
    }

    private struct State {
        /// Messages whose first receipt was accepted lately, and when (kept out of the next polls
        /// until the receipt is surely applied).
        var posted: [Int64: ContinuousClock.Instant] = [:]
        var reads: [PendingRead] = []
        var inFlight = 0
        var tally = Tally()
    }

    public let configuration: Configuration
    private let connectionString: String?
    private let webhooksURL: @Sendable () -> String?
    private let transport: CurlTransport
    private let logger: Logger
    private let state = Mutex(State())
    private let channels: [Int64: Channel]

    /// - Parameters:
    ///   - connectionString: Herald's database (read only).
    ///   - webhooksURL: `herald webhooks`' base URL (`http://127.0.0.1:8080`), nil until it listens.
    ///   - transport: posts the notifications.
    public init(configuration: Configuration, connectionString: String?, webhooksURL: @escaping @Sendable () -> String?,
                transport: CurlTransport, logger: Logger) {
        self.configuration = configuration
        self.connectionString = connectionString
        self.webhooksURL = webhooksURL
        self.transport = transport
        self.logger = logger
        self.channels = Dictionary(configuration.channels.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// What was posted so far.
    public var tally: Tally { state.withLock { $0.tally } }

    /// No `read` receipt waits for its time, and no pass or post is under way.
    public var isIdle: Bool { state.withLock { $0.reads.isEmpty && $0.inFlight == 0 } }

    public func run() async throws {
        let connection = try await PostgresConnection.connect(connectionString, applicationName: "herald-sandbox-receipts", logger: logger)
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await self.pass(on: connection)
                } catch {
                    self.logger.warning("sandbox receipts: pass failed; retrying", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: self.configuration.pollInterval)
            }
        }
        await connection.close()
    }

    /// One pass: posts the first receipt of every message still `sent`, and the `read` receipts
    /// that are due. Returns at once when `herald webhooks` does not listen yet.
    public func pass(on connection: PostgresConnection) async throws {
        guard let base = webhooksURL() else { return }
        let now = ContinuousClock.now
        let excluded = state.withLock { s -> [Int64] in
            s.posted = s.posted.filter { now - $0.value < .seconds(30) }
            return Array(s.posted.keys)
        }
        let sent = try await SandboxStore().sent(channels: configuration.channels.map(\.id), above: configuration.floor,
                                                 excluding: excluded, limit: 10 * configuration.batch, on: connection)
        let timestamp = Int64(Date().timeIntervalSince1970)
        var first: [Int64: [SandboxReceipts.Status]] = [:]
        for m in sent {
            let fate = configuration.receipts.fate(of: m.id)
            first[m.channelID, default: []].append(SandboxReceipts.Status(
                providerMessageID: m.providerMessageID, messageID: m.id, status: fate == .failed ? "failed" : "delivered",
                timestamp: timestamp))
        }
        // From taking its due reads until its last post is answered, the pass counts as one post in
        // flight: between two posts the emitter would otherwise look idle while reads it took are
        // not posted yet, and `herald demo` could stop and report before they are counted.
        let due = state.withLock { s -> [PendingRead] in
            let due = s.reads.filter { $0.due <= now }
            s.reads.removeAll { $0.due <= now }
            s.inFlight += 1
            return due
        }
        var reads: [Int64: [SandboxReceipts.Status]] = [:]
        for r in due { reads[r.channel, default: []].append(r.status) }
        for (channel, statuses) in first.sorted(by: { $0.key < $1.key }) { await post(statuses, channel: channel, base: base) }
        for (channel, statuses) in reads.sorted(by: { $0.key < $1.key }) { await post(statuses, channel: channel, base: base) }
        state.withLock { $0.inFlight -= 1 }
    }

    /// Posts `statuses` of one channel in notifications of ``Configuration/batch`` at most.
    private func post(_ statuses: [SandboxReceipts.Status], channel: Int64, base: String) async {
        guard let c = channels[channel] else { return }
        var start = 0
        while start < statuses.count {
            let chunk = Array(statuses[start..<min(statuses.count, start + configuration.batch)])
            start += chunk.count
            await postNotification(chunk, channel: c, base: base)
        }
    }

    private func postNotification(_ statuses: [SandboxReceipts.Status], channel: Channel, base: String) async {
        let body = SandboxReceipts.whatsAppNotification(phoneNumberID: channel.phoneNumberID, statuses: statuses)
        let request = HTTPRequest(method: "POST", url: base + "/webhooks/whatsapp",
                                  headers: [("Content-Type", "application/json"),
                                            ("X-Hub-Signature-256", WebhookSignature.meta(body: body, appSecret: channel.appSecret))],
                                  body: body, timeout: .seconds(30))
        state.withLock { $0.inFlight += 1 }
        let code: Int?
        do {
            code = try await transport.execute(request).status
        } catch {
            code = nil
            logger.warning("sandbox receipts: cannot post; retrying", metadata: ["error": "\(error)"])
        }
        let readAfter = ContinuousClock.now + configuration.readAfter
        let firstRefusal = state.withLock { s -> Bool in
            s.inFlight -= 1
            switch code {
            case 200:
                for st in statuses {
                    switch st.status {
                    case "read":
                        s.tally.read += 1
                    case "failed":
                        s.tally.failed += 1
                        s.posted[st.messageID] = .now
                    default:
                        s.tally.delivered += 1
                        s.posted[st.messageID] = .now
                        if configuration.receipts.fate(of: st.messageID) == .read {
                            var read = st
                            read.status = "read"
                            read.timestamp = st.timestamp + Int64(configuration.readAfter.components.seconds)
                            s.reads.append(PendingRead(due: readAfter, channel: channel.id, status: read))
                        }
                    }
                }
            case 401:
                break
            default:
                s.tally.errors += 1
                // Reads are tried again at the next pass; first receipts come back with the poll.
                for st in statuses where st.status == "read" {
                    s.reads.append(PendingRead(due: .now, channel: channel.id, status: st))
                }
            }
            let first = code == 401 && s.tally.refused == 0
            if code == 401 { s.tally.refused += 1 }
            return first
        }
        if firstRefusal {
            // Once: every later pass is refused the same way.
            logger.error("sandbox receipts: herald webhooks refused the signature (is app_secret_env's variable the same on both sides?)",
                         metadata: ["channel.id": "\(channel.id)", "statuses": "\(statuses.count)"])
        } else if let code, code != 200, code != 401 {
            logger.warning("sandbox receipts: herald webhooks answered \(code); retrying", metadata: ["channel.id": "\(channel.id)"])
        }
    }
}
