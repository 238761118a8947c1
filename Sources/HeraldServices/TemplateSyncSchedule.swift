import Foundation
import HeraldPostgres
import HeraldTransport
import Logging

/// The scheduler leader's template sync (contract section 4): while a scheduler leads, it runs
/// ``TemplateSync`` over every channel with a `waba_id` once at once and then every
/// ``interval`` (10 minutes by default; tests shorten it).
///
/// It runs beside the leader's loop, not inside it: a sync waits on Meta for seconds, and the
/// leader's session must never idle that long (``Leadership``). It uses its own database
/// connection, opened per run, and its own transport. It stops when leadership ends (the
/// leader's loop throws) or the scheduler shuts down.
public struct TemplateSyncSchedule: Sendable {
    public static let defaultInterval: Duration = .seconds(600)

    public var interval: Duration
    public var sync: TemplateSync
    /// libpq connection string or URI; nil uses libpq's `PG*` variables.
    public var connectionString: String?

    public init(interval: Duration = TemplateSyncSchedule.defaultInterval, sync: TemplateSync, connectionString: String?) {
        self.interval = interval
        self.sync = sync
        self.connectionString = connectionString
    }

    /// Runs `leading` (the leader's loop) with the periodic sync beside it; when `leading`
    /// returns or throws, the sync is cancelled and awaited, and its outcome is `leading`'s.
    func whileLeading(_ leading: () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.runPeriodically() }
            defer { group.cancelAll() }
            try await leading()
        }
    }

    /// Syncs, then waits ``interval``, until cancelled. Failures are logged, never thrown: a
    /// channel with a bad token must not cost the scheduler its leadership.
    func runPeriodically() async {
        let transport = CurlTransport(maxInFlight: 4, logger: sync.logger)
        defer { transport.shutdown() }
        while !Task.isCancelled {
            await runOnce(transport: transport)
            do { try await Task.sleep(for: interval) } catch { break }
        }
    }

    private func runOnce(transport: CurlTransport) async {
        let logger = sync.logger
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(connectionString, applicationName: "herald-template-sync", logger: logger)
        } catch {
            if !Task.isCancelled { logger.warning("template sync could not reach the database", metadata: ["error": "\(error)"]) }
            return
        }
        do {
            for result in try await sync.run(channel: nil, connection: connection, transport: transport) {
                switch result.outcome {
                case .success:
                    logger.debug("template sync", metadata: ["result": "\(result.line)"])
                case .failure:
                    logger.warning("template sync failed for a channel", metadata: ["channel": "\(result.channel)", "error": "\(result.line)"])
                }
            }
        } catch {
            if !Task.isCancelled { logger.warning("template sync could not run", metadata: ["error": "\(error)"]) }
        }
        await connection.close()
    }
}
