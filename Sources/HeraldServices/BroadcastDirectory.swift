import Foundation
import HeraldCore
import HeraldPostgres
import HeraldStore
import Logging
import Synchronization

/// The broadcasts this worker may send now, prepared once each and grouped by channel; re-read
/// when notified (`herald_broadcasts`) or every second.
///
/// Quarantine: a broadcast whose row cannot be read, or that this worker cannot prepare (bad
/// settings, a missing secret, a template that does not compile), ends `failed` with the reason
/// in `broadcasts.error` at once; every other broadcast goes on. A broadcast that left the list
/// (paused, cancelled, finished) has its sends still waiting for a transport slot withdrawn.
final class BroadcastDirectory: Sendable {
    private struct Cache {
        var fetchedAt: ContinuousClock.Instant?
        var dirty = true
        var prepared: [PreparedBroadcast] = []
        var channels: [[PreparedBroadcast]] = []
    }

    private let cache = Mutex(Cache())
    private let configuration: WorkerConfiguration
    private let dispatcher: SendDispatcher
    private let logger: Logger
    private let store = QueueStore()

    init(configuration: WorkerConfiguration, dispatcher: SendDispatcher, logger: Logger) {
        self.configuration = configuration
        self.dispatcher = dispatcher
        self.logger = logger
    }

    /// Forces a re-read at the next ``channels(pool:)``.
    func markDirty() {
        cache.withLock { $0.dirty = true }
    }

    /// The sendable broadcasts grouped by channel, channels in id order.
    func channels(pool: PostgresPool) async throws -> [[PreparedBroadcast]] {
        let now = ContinuousClock.now
        let cached = cache.withLock { c -> [[PreparedBroadcast]]? in
            if !c.dirty, let at = c.fetchedAt, now - at < .seconds(1) { return c.channels }
            // Whoever finds it stale reloads; the others keep using the old list meanwhile.
            c.dirty = false
            c.fetchedAt = now
            return nil
        }
        if let cached { return cached }
        do {
            return try await reload(pool: pool)
        } catch {
            markDirty()
            throw error
        }
    }

    private func reload(pool: PostgresPool) async throws -> [[PreparedBroadcast]] {
        let (rows, unreadable) = try await pool.withConnection {
            try await self.store.activeBroadcasts(on: $0, channels: self.configuration.channels)
        }
        let previous = cache.withLock { $0.prepared }
        // By id: with a thousand broadcasts, a linear search per row made each reload (every
        // second) a million comparisons, a tenth of the worker's CPU.
        var previousByID: [Int64: PreparedBroadcast] = [:]
        for p in previous { previousByID[p.info.id] = p }
        var prepared: [PreparedBroadcast] = []
        var unusable = unreadable.map { (id: $0.id, reason: $0.reason) }
        for info in rows {
            if let old = previousByID[info.id], old.info == info {
                prepared.append(old)
                continue
            }
            // Email attachments (issue 18): loaded once per broadcast; a database error retries the reload.
            let attachments = info.kind == ChannelKind.email.rawValue && info.media != nil
                ? try await pool.withConnection { try await AttachmentStore().load(of: info.id, on: $0) } : []
            do {
                prepared.append(try PreparedBroadcast(info, attachments: attachments, environment: configuration.providerEnvironment))
            } catch {
                unusable.append((info.id, "cannot prepare the broadcast on channel \(info.channelName): \(error)"))
            }
        }
        for (id, reason) in unusable {
            let failed = try await pool.withConnection { try await self.store.failBroadcast(id: id, error: reason, on: $0) }
            if failed {
                logger.error("broadcast failed: it cannot be sent", metadata: ["broadcast.id": "\(id)", "error": "\(reason)"])
            }
        }
        let groups = Self.groupByChannel(prepared)
        let gone = Set(previous.map(\.info.id)).subtracting(prepared.map(\.info.id))
        cache.withLock { c in
            c.prepared = prepared
            c.channels = groups
        }
        if !gone.isEmpty { dispatcher.withdraw(broadcasts: gone) }
        dispatcher.prune()
        return groups
    }

    /// Active broadcasts grouped by channel, channels in id order.
    static func groupByChannel(_ broadcasts: [PreparedBroadcast]) -> [[PreparedBroadcast]] {
        var groups: [Int64: [PreparedBroadcast]] = [:]
        for b in broadcasts { groups[b.info.channelID, default: []].append(b) }
        return groups.keys.sorted().map { groups[$0]! }
    }
}
