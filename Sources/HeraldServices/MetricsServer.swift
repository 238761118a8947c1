import Foundation
import HeraldPostgres
import Hummingbird
import Logging
import ServiceLifecycle
import Synchronization

/// A small HTTP server for processes that have no other: `GET /metrics` (Prometheus text format)
/// and `GET /healthz` (200 when the database answers, else 503), for `herald worker` and
/// `herald scheduler` started with `--metrics-port`.
///
/// Put it in the process's `ServiceGroup` next to the worker or scheduler:
/// ```swift
/// let metrics = HeraldMetrics()
/// let server = MetricsServer(metrics: metrics, databaseURL: url, port: metricsPort, logger: logger)
/// ServiceGroup(services: [worker, server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
/// ```
/// It also samples the queue gauges (`herald_queue_*`) when scraped, using one connection of its
/// own: every process that exposes metrics shows the queue, so any one scrape target suffices.
public final class MetricsServer: Service, Sendable {
    public let metrics: HeraldMetrics
    private let databaseURL: String?
    private let sampleQueue: Bool
    private let host: String
    private let requestedPort: Int
    private let sampleInterval: Duration
    private let logger: Logger
    private let port = BoundPort()

    /// - Parameters:
    ///   - metrics: the process's metrics.
    ///   - databaseURL: for `/healthz` and the queue gauges (nil: libpq's `PG*` variables).
    ///   - sampleQueue: whether `/metrics` samples the queue gauges (one query per 2 s at most).
    ///   - host: address to bind, `127.0.0.1` by default: metrics and health are for the machine's
    ///     own scraper unless ops open them (`--metrics-host 0.0.0.0` in a private network).
    ///   - port: 0 picks a free port (see ``boundPort``).
    ///   - sampleInterval: the queue is sampled at most this often.
    public init(metrics: HeraldMetrics, databaseURL: String?, sampleQueue: Bool = true, host: String = "127.0.0.1",
                port: Int, sampleInterval: Duration = .seconds(2), logger: Logger) {
        self.sampleInterval = sampleInterval
        self.metrics = metrics
        self.databaseURL = databaseURL
        self.sampleQueue = sampleQueue
        self.host = host
        self.requestedPort = port
        self.logger = logger
    }

    /// The port the server listens on, once it does.
    public var boundPort: Int? { port.value }

    public func run() async throws {
        let pool = PostgresPool(connectionString: databaseURL, maxConnections: 1, applicationName: "herald-metrics", logger: logger)
        let sampler = QueueSampler(metrics: metrics, pool: pool, interval: sampleInterval)
        let router = Router()
        router.get("/metrics") { [metrics, sampleQueue, logger] _, _ -> Response in
            if sampleQueue { await sampler.refresh(logger: logger) }
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: metrics.exposition())))
        }
        let health = HealthCheck(pool: pool)
        router.get("/healthz") { _, _ in await health.response() }
        try await port.serve(router, host: host, port: requestedPort, name: "metrics server", closing: pool, logger: logger)
    }
}
