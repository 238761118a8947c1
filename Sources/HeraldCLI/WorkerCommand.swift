import ArgumentParser
import Foundation
import HeraldPostgres
import HeraldServices
import HeraldTransport
import Logging
import ServiceLifecycle

struct Worker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Claim and deliver messages; run as many as you like, on as many machines.",
        discussion: """
            Claims batches of due messages with FOR UPDATE SKIP LOCKED, renders and delivers them
            through each channel's provider, and records every outcome as answers arrive. Sends in
            flight are bounded by --max-in-flight (Little's law: msg/s = in flight / provider
            latency; 4,000 in flight at 200 ms is 20,000 msg/s), not by --lanes. Secrets are read from the
            environment variables that channel settings name (*_env). HERALD_PUBLIC_URL sets the
            base of Twilio status callbacks; HERALD_PROVIDER_CA_FILE, a PEM file of certificate
            authorities to verify providers' HTTPS servers with instead of the system's. SIGTERM or SIGINT: stops claiming, finishes in-flight
            sends within --shutdown-grace, hands back the rest, exits 0.
            """)

    @OptionGroup var common: CommonOptions
    @OptionGroup var metricsOptions: MetricsOptions
    @Option(help: "Messages claimed per round trip.") var batchSize: Int = 200
    @Option(help: "Claims in progress at once (lanes never wait for provider answers).") var lanes: Int = 2
    @Option(help: "Seconds a claim stays valid before other workers may take it over.") var leaseSeconds: Int = 60
    @Option(help: "Seconds one provider request may take before it counts as failed.") var requestTimeout: Int = 15
    @Option(help: "Seconds in-flight sends may take after SIGTERM.") var shutdownGrace: Int = 10
    @Option(help: "HTTP/SMTP transfers in flight at most, over all channels.")
    var maxInFlight: Int = WorkerConfiguration.defaultMaxInFlight
    @Option(help: "Transfers in flight of one channel at most (a hung provider holds no more; a rate-limited channel holds at most burst + 5 s of its rate). Default: 4096, or all of a larger --max-in-flight but a ninth.")
    var maxInFlightPerChannel: Int?
    @Option(help: "HTTP/2 connections to one provider host per transport thread at most (sends wait for a free stream).")
    var maxConnectionsPerHost: Int = 16
    @Option(help: "Sends in flight at most that each hold a TLS connection (HTTPS providers without HTTP/2, SMTP); the rest wait for one.")
    var maxTLSConnections: Int = WorkerConfiguration.defaultMaxTLSConnections
    @Option(help: "Sends each transport thread that opens a connection per send lets into libcurl while providers answer within 50 ms, more as they slow; off: all of its share of --max-in-flight at once.")
    var admissionFloor: String = "\(WorkerConfiguration.defaultAdmissionFloor)"
    @Option(help: "HTTP version to providers: automatic (HTTP/2 where offered over TLS), http1, or http2-prior-knowledge.")
    var httpVersion: String = "automatic"
    @Option(help: "Seconds after a PostgreSQL restart before expired leases of other workers may be claimed.")
    var restartGraceSeconds: Int = 60
    @Option(name: .customLong("channel"), help: "Serve only this channel (by name); repeat for several. Default: all.")
    var channels: [String] = []

    func validate() throws {
        guard batchSize > 0, batchSize <= 5000 else { throw ValidationError("--batch-size must be between 1 and 5000") }
        guard lanes > 0, lanes <= 64 else { throw ValidationError("--lanes must be between 1 and 64") }
        // Upper bounds too: an absurd value (a lease of 10^12 s) would overflow the database's
        // interval arithmetic and make every claim fail, over and over.
        guard leaseSeconds >= 5, leaseSeconds <= 86_400 else { throw ValidationError("--lease-seconds must be between 5 and 86400") }
        guard requestTimeout >= 1, requestTimeout <= 3_600 else { throw ValidationError("--request-timeout must be between 1 and 3600") }
        // A send starts only while it can still time out inside its claim's lease (see
        // Worker.sendDeadline); without room for that, sends would outlive their lease.
        guard leaseSeconds >= requestTimeout + 2 else {
            throw ValidationError("--lease-seconds (\(leaseSeconds)) must exceed --request-timeout (\(requestTimeout)) by at least 2: a send must be able to time out while its claim is still valid")
        }
        guard shutdownGrace >= 0, shutdownGrace <= 3_600 else { throw ValidationError("--shutdown-grace must be between 0 and 3600") }
        guard maxInFlight > 0, maxInFlight <= 100_000 else { throw ValidationError("--max-in-flight must be between 1 and 100000") }
        if let maxInFlightPerChannel, !(1...100_000).contains(maxInFlightPerChannel) {
            throw ValidationError("--max-in-flight-per-channel must be between 1 and 100000")
        }
        guard maxConnectionsPerHost > 0, maxConnectionsPerHost <= 1_000 else {
            throw ValidationError("--max-connections-per-host must be between 1 and 1000")
        }
        guard maxTLSConnections > 0, maxTLSConnections <= 100_000 else {
            throw ValidationError("--max-tls-connections must be between 1 and 100000")
        }
        guard admissionFloor == "off" || Int(admissionFloor).map({ (1...100_000).contains($0) }) == true else {
            throw ValidationError("--admission-floor must be off or between 1 and 100000")
        }
        guard let version = WorkerHTTPVersion(rawValue: httpVersion) else {
            throw ValidationError("--http-version must be one of: \(WorkerHTTPVersion.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let problem = version.problem(libcurlVersion: WorkerHTTPVersion.loadedLibcurlVersion) {
            throw ValidationError("--http-version: \(problem)")
        }
        guard restartGraceSeconds >= 0, restartGraceSeconds <= 3_600 else {
            throw ValidationError("--restart-grace-seconds must be between 0 and 3600")
        }
    }

    func run() async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        let logger = makeLogger("herald.worker", common)
        // Before the first transfer: libcurl's per-handle upload buffers get mappings of their own.
        TransportMemory.mapLargeBuffersSeparately()
        var config = WorkerConfiguration(databaseURL: PostgresConnection.environmentConnectionString)
        if let file = config.providerAuthorityFile, !FileManager.default.isReadableFile(atPath: file) {
            fail("HERALD_PROVIDER_CA_FILE names \(file), which cannot be read: set it to a PEM file of certificate authorities, or unset it for the system's")
        }
        // Fail fast, with one line, when the database cannot be reached at all.
        await connectOrFail(logger: logger).close()
        config.batchSize = batchSize
        config.lanes = lanes
        config.lease = .seconds(leaseSeconds)
        config.requestTimeout = .seconds(requestTimeout)
        config.shutdownGrace = .seconds(shutdownGrace)
        config.maxInFlight = maxInFlight
        config.maxInFlightPerChannel = maxInFlightPerChannel
        let perChannel = config.perChannelLimit
        // A socket per send in flight: the soft open-file limit goes up to the hard one, and a
        // window the hard one cannot hold shrinks to fit (see OpenFileLimit).
        if let limit = OpenFileLimit.raiseSoftToHard() {
            if let notice = limit.shrinkNotice(requested: maxInFlight) { logger.warning("\(notice)") }
            config.maxInFlight = limit.window(fitting: maxInFlight)
            config.maxInFlightPerChannel = limit.perChannelLimit(requested: perChannel, window: maxInFlight)
        }
        config.maxConnectionsPerHost = maxConnectionsPerHost
        config.maxTLSConnections = maxTLSConnections
        config.admissionFloor = Int(admissionFloor)  // nil for "off" (validated above)
        config.restartGrace = .seconds(restartGraceSeconds)
        config.httpVersion = WorkerHTTPVersion(rawValue: httpVersion) ?? .automatic
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
