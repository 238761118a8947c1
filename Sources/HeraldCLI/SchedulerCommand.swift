import ArgumentParser
import Foundation
import HeraldPostgres
import HeraldServices
import Logging
import ServiceLifecycle

/// `herald scheduler`: wiring only; the behaviour is ``SchedulerService``'s.
struct Scheduler: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scheduler",
        abstract: "Start due broadcasts, finish done ones, rescue abandoned claims.",
        discussion: """
            Several may run; one acts (it holds a PostgreSQL advisory lock), the others stand by and
            take over within seconds when it dies. Stops cleanly on SIGTERM or SIGINT.
            Abandoned claims need no separate rescue: a job whose lease expired is claimable again.
            """)

    @OptionGroup var common: CommonOptions
    @OptionGroup var metricsOptions: MetricsOptions

    @Option(help: ArgumentHelp(
        "Contact ids per audience-expansion chunk (one short transaction each).",
        discussion: "Default: HERALD_EXPANSION_CHUNK, else \(SchedulerConfiguration.defaultExpansionChunk)."))
    var expansionChunk: Int64?

    @Option(help: ArgumentHelp(
        "Contact ids of a broadcast's first chunk: its jobs are claimable as soon as that chunk is written, the rest is expanded while workers send. 0: claimable only once the whole audience is expanded.",
        discussion: "Default: HERALD_FIRST_EXPANSION_CHUNK, else \(SchedulerConfiguration.defaultFirstExpansionChunk)."))
    var firstExpansionChunk: Int64?

    func validate() throws {
        if let expansionChunk, expansionChunk < 1 { throw ValidationError("--expansion-chunk must be at least 1") }
        if let firstExpansionChunk, firstExpansionChunk < 0 { throw ValidationError("--first-expansion-chunk must be 0 or more") }
    }

    func run() async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        let logger = makeLogger("herald.scheduler", common)
        var chunk = expansionChunk ?? SchedulerConfiguration.defaultExpansionChunk
        if expansionChunk == nil, let text = ProcessInfo.processInfo.environment["HERALD_EXPANSION_CHUNK"], !text.isEmpty {
            guard let value = Int64(text), value >= 1 else { fail("HERALD_EXPANSION_CHUNK must be a positive integer, not \"\(text)\"") }
            chunk = value
        }
        var first = firstExpansionChunk ?? SchedulerConfiguration.defaultFirstExpansionChunk
        if firstExpansionChunk == nil, let text = ProcessInfo.processInfo.environment["HERALD_FIRST_EXPANSION_CHUNK"], !text.isEmpty {
            guard let value = Int64(text), value >= 0 else { fail("HERALD_FIRST_EXPANSION_CHUNK must be 0 or a positive integer, not \"\(text)\"") }
            first = value
        }
        var configuration = SchedulerConfiguration(connectionString: PostgresConnection.environmentConnectionString,
                                                   expansionChunk: chunk)
        configuration.claimable = first == 0 ? .afterWholeExpansion : .fromFirstChunk(first)
        configuration.templateSync = TemplateSyncSchedule( // templates (issue 18): the leader keeps templates in step with Meta
            sync: TemplateSync(environment: configuration.providerEnvironment, logger: logger),
            connectionString: configuration.connectionString)
        let service = SchedulerService(configuration: configuration, logger: logger)
        var services: [any Service] = [service]
        if let port = metricsOptions.metricsPort {
            services.append(MetricsServer(metrics: HeraldMetrics(), databaseURL: PostgresConnection.environmentConnectionString,
                                          host: metricsOptions.metricsHost, port: port, logger: logger))
        }
        let group = ServiceGroup(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }
}
