import ArgumentParser
import Foundation
import HeraldPostgres
import HeraldServices
import Logging
import ServiceLifecycle

struct Worker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Claim and deliver messages; run as many as you like, on as many machines.",
        discussion: """
            Claims batches of due messages with FOR UPDATE SKIP LOCKED, renders and delivers them
            through each channel's provider, and records every outcome. Secrets are read from the
            environment variables that channel settings name (*_env). HERALD_PUBLIC_URL sets the
            base of Twilio status callbacks. SIGTERM or SIGINT: stops claiming, finishes in-flight
            sends within --shutdown-grace, hands back the rest, exits 0.
            """)

    @OptionGroup var common: CommonOptions
    @OptionGroup var metricsOptions: MetricsOptions
    @Option(help: "Messages claimed per round trip.") var batchSize: Int = 200
    @Option(help: "Batches in flight at once.") var lanes: Int = 4
    @Option(help: "Seconds a claim stays valid before other workers may take it over.") var leaseSeconds: Int = 60
    @Option(help: "Seconds one provider request may take before it counts as failed.") var requestTimeout: Int = 15
    @Option(help: "Seconds in-flight sends may take after SIGTERM.") var shutdownGrace: Int = 10
    @Option(help: "HTTP/SMTP transfers in flight at most.") var maxInFlight: Int = 128
    @Option(name: .customLong("channel"), help: "Serve only this channel (by name); repeat for several. Default: all.")
    var channels: [String] = []

    func validate() throws {
        guard batchSize > 0, batchSize <= 5000 else { throw ValidationError("--batch-size must be between 1 and 5000") }
        guard lanes > 0, lanes <= 64 else { throw ValidationError("--lanes must be between 1 and 64") }
        guard leaseSeconds >= 5 else { throw ValidationError("--lease-seconds must be at least 5") }
        guard requestTimeout >= 1 else { throw ValidationError("--request-timeout must be at least 1") }
        // A send starts only while it can still time out inside its claim's lease (see
        // Worker.sendDeadline); without room for that, sends would outlive their lease.
        guard leaseSeconds >= requestTimeout + 2 else {
            throw ValidationError("--lease-seconds (\(leaseSeconds)) must exceed --request-timeout (\(requestTimeout)) by at least 2: a send must be able to time out while its claim is still valid")
        }
        guard shutdownGrace >= 0 else { throw ValidationError("--shutdown-grace must not be negative") }
        guard maxInFlight > 0 else { throw ValidationError("--max-in-flight must be positive") }
    }

    func run() async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        let logger = makeLogger("herald.worker", common)
        // Fail fast, with one line, when the database cannot be reached at all.
        do {
            let probe = try await PostgresConnection.connect(PostgresConnection.environmentConnectionString, logger: logger)
            await probe.close()
        } catch {
            fail("cannot connect to the database: \(error)")
        }
        var config = WorkerConfiguration(databaseURL: PostgresConnection.environmentConnectionString)
        config.batchSize = batchSize
        config.lanes = lanes
        config.lease = .seconds(leaseSeconds)
        config.requestTimeout = .seconds(requestTimeout)
        config.shutdownGrace = .seconds(shutdownGrace)
        config.maxInFlight = maxInFlight
        config.channels = channels.isEmpty ? nil : channels
        let metrics = HeraldMetrics()
        let worker = HeraldServices.Worker(configuration: config, logger: logger, metrics: metrics)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [.init(service: worker)]
        if let port = metricsOptions.metricsPort {
            services.append(.init(service: MetricsServer(metrics: metrics, databaseURL: config.databaseURL, port: port, logger: logger)))
        }
        let group = ServiceGroup(configuration: .init(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
    }
}
