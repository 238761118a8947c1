import Hummingbird
import HeraldPostgres
import Logging
import ServiceLifecycle
import Synchronization

/// The port a server bound, once known.
final class BoundPort: Sendable {
    private let state = Mutex<Int?>(nil)
    var value: Int? { state.withLock { $0 } }
    func set(_ port: Int?) { state.withLock { $0 = port } }

    /// Serves `router` on `host:port` (0: any free port, recorded here) until graceful shutdown,
    /// with `services` running beside it, and closes `pool` however the server ends.
    func serve(_ router: Router<BasicRequestContext>, host: String, port: Int, readTimeout: Duration = .seconds(10),
               services: [any Service] = [], name: String, closing pool: PostgresPool, logger: Logger) async throws {
        let app = Application(
            router: router,
            server: DeadlineHTTP1Channel.builder(readTimeout: readTimeout),
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            services: services,
            onServerRunning: { [self, logger] channel in
                let bound = channel.localAddress?.port
                set(bound)
                logger.info("\(name) listening", metadata: ["port": "\(bound.map(String.init) ?? "?")"])
            },
            logger: logger)
        do {
            try await app.run()
        } catch {
            await pool.close()
            throw error
        }
        await pool.close()
    }
}
