import ArgumentParser
import Foundation
import HeraldPostgres
import HeraldServices
import Logging
import Metrics
import Prometheus
import ServiceLifecycle

struct Webhooks: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "webhooks",
        abstract: "HTTP server for provider delivery receipts, /metrics and /healthz.",
        discussion: """
            POST /webhooks/whatsapp and GET /webhooks/whatsapp (Meta's notifications and subscription
            handshake; signatures checked with the app secret named by the channel's app_secret_env,
            the handshake with its verify_token_env), POST /webhooks/twilio (status callbacks, signed
            over HERALD_PUBLIC_URL + /webhooks/twilio with the token named by auth_token_env),
            GET /metrics (Prometheus) and GET /healthz. Receipts are stored raw in
            herald.delivery_receipts and applied to herald.messages in batches. SIGTERM or SIGINT:
            finishes the requests in flight, stores what it accepted, exits 0.
            """)

    @OptionGroup var common: CommonOptions
    @Option(help: "Port to listen on.") var port: Int = 8080
    @Option(help: "Address to bind.") var host: String = "0.0.0.0"
    @Option(help: "Serve GET /metrics on this port instead of --port (and /healthz on both), so the public port carries only webhooks.")
    var metricsPort: Int?
    @Option(help: "Address the metrics port binds.") var metricsHost: String = "127.0.0.1"

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        if let metricsPort, !(0...65535).contains(metricsPort) { throw ValidationError("--metrics-port must be between 0 and 65535") }
    }

    func run() async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        let logger = makeLogger("herald.webhooks", common)
        // A descriptor per client connection: as the worker, take the hard open-file limit rather
        // than a soft 1,024, beyond which clients wait in the listen backlog (see OpenFileLimit).
        OpenFileLimit.raiseSoftToHard()
        await connectOrFail(logger: logger).close()
        let metrics = HeraldMetrics()
        // Libraries that report through swift-metrics land in the same registry as Herald's own.
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metrics.registry))
        var config = WebhooksConfiguration(databaseURL: PostgresConnection.environmentConnectionString)
        config.host = host
        config.port = port
        config.serveMetrics = metricsPort == nil
        let server = WebhooksServer(configuration: config, metrics: metrics, logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: server)]
        if let metricsPort {
            services.append(.init(service: MetricsServer(metrics: metrics, databaseURL: config.databaseURL,
                                                         host: metricsHost, port: metricsPort, logger: logger)))
        }
        let group = ServiceGroup(configuration: .init(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        do {
            try await group.run()
        } catch {
            fail("webhooks server failed: \(error)")
        }
    }
}
