import HeraldPostgres
import Logging

/// `LISTEN herald_jobs, herald_broadcasts` on a dedicated connection: new work wakes the lanes
/// (and ends every ``BroadcastRests`` rest), a broadcast's change (pause, cancel, edit) makes the
/// directory re-read at once. A slow poll (``WorkerConfiguration/idlePoll``) is only the fallback.
struct WorkerNotifications: Sendable {
    let databaseURL: String?
    let logger: Logger

    func run(directory: BroadcastDirectory, rests: BroadcastRests, wakeup: Wakeup, stopping: Latch) async {
        var connection: PostgresConnection?
        while !stopping.isSet && !Task.isCancelled {
            do {
                if connection == nil {
                    let c = try await PostgresConnection.connect(databaseURL, applicationName: "herald-worker-listen", logger: logger)
                    try await c.listen("herald_jobs")
                    try await c.listen("herald_broadcasts")
                    connection = c
                    directory.markDirty() // catch up on anything missed while not listening
                    rests.wakeAll()
                }
                let notifications = try await connection!.waitForNotifications(timeout: .milliseconds(250))
                if !notifications.isEmpty {
                    if notifications.contains(where: { $0.channel == "herald_broadcasts" }) { directory.markDirty() }
                    if notifications.contains(where: { $0.channel == "herald_jobs" }) { rests.wakeAll() }
                    wakeup.signal()
                }
            } catch is CancellationError {
                break
            } catch {
                logger.warning("notification connection failed; retrying", metadata: ["error": "\(error)"])
                if let c = connection { await c.close() }
                connection = nil
                await wakeup.wait(timeout: .seconds(1))
            }
        }
        await connection?.close()
    }
}
