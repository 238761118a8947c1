import Foundation
import HeraldCore
import HeraldPostgres
import HeraldStore
import HeraldTransport
import Logging
import ServiceLifecycle

/// `herald worker`: claims batches of due jobs with `FOR UPDATE SKIP LOCKED`, renders and
/// delivers them through the channel's provider, and records the outcomes in batches as they
/// arrive.
///
/// Three stages, one type each:
/// - ``ChannelClaimer`` lanes go round the channels and claim what each channel's tokens and the
///   ``InFlightWindow`` allow, without waiting for any answer;
/// - ``SendDispatcher`` renders a batch and submits it to the transport (libcurl, a thread per 1,024 sends);
/// - ``OutcomeCompleter`` gets each answer as it arrives and writes many outcomes per statement,
///   guarded by `lease_owner`.
///
/// - Important: no transaction is open while messages are sent: a claim commits a lease
///   (`jobs.run_at` moved to its expiry, `lease_owner` set), the sends start only while they can
///   time out inside the lease (``WorkerConfiguration/sendDeadline(claimedAt:)``), and outcomes
///   apply only to jobs this worker still holds.
///
/// On graceful shutdown it stops claiming, lets in-flight sends finish within the grace period,
/// records their outcomes, and hands back whatever it still holds.
public final class Worker: Service, Sendable {
    public let configuration: WorkerConfiguration
    private let logger: Logger
    private let wakeup: Wakeup
    private let stopping = Latch()
    private let metrics: HeraldMetrics
    private let clock: any HeraldClock
    private let random: RandomSource

    /// How often the shutdown drain looks again at what is still in flight, when no answer
    /// arrives meanwhile.
    static let drainPoll = Duration.milliseconds(50)

    /// - Parameters:
    ///   - metrics: where the worker counts claims, outcomes, provider latency and rate-limiter
    ///     waits (serve it with ``MetricsServer``).
    ///   - clock: what the worker's own time rules run on: send deadlines, channel holds,
    ///     broadcast rests, the shutdown grace and every wait of its loops. Leases, rate buckets,
    ///     `run_at` and send windows run on the database's clock.
    ///   - random: the jitter of retry backoffs.
    public init(configuration: WorkerConfiguration, logger: Logger, metrics: HeraldMetrics = HeraldMetrics(),
                clock: any HeraldClock = ContinuousClock(), random: RandomSource = .system) {
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        self.clock = clock
        self.random = random
        wakeup = Wakeup(clock: clock)
    }

    public func run() async throws {
        let config = configuration
        let pool = PostgresPool(connectionString: config.databaseURL, maxConnections: config.lanes + 2,
                                applicationName: "herald-worker", logger: logger)
        let transport = CurlTransport(maxInFlight: config.maxInFlight, httpVersion: config.httpVersion,
                                      authorityFile: config.providerAuthorityFile,
                                      maxConnectionsPerHost: config.maxConnectionsPerHost,
                                      maxTLSConnections: config.maxTLSConnections, admissionFloor: config.admissionFloor,
                                      clock: clock, logger: logger)
        let rules = OutcomeRules(backoff: config.backoff, random: random)
        let holds = ChannelHolds()
        let rests = BroadcastRests()
        let inFlightGauge = metrics.workerWindow(limit: config.maxInFlight)
        let window = InFlightWindow(limit: config.maxInFlight, perChannelLimit: config.perChannelLimit,
                                    tlsConnections: config.maxTLSConnections, clock: clock,
                                    observe: { inFlightGauge.set(Double($0)) })
        let completer = OutcomeCompleter(configuration: config, rules: rules, holds: holds, rests: rests,
                                         metrics: metrics, clock: clock, logger: logger)
        let departures = ChannelDepartures(clock: clock)
        let dispatcher = SendDispatcher(transport: transport, completer: completer, window: window, departures: departures,
                                        rules: rules, configuration: config, metrics: metrics, clock: clock)
        let directory = BroadcastDirectory(configuration: config, dispatcher: dispatcher, logger: logger)
        let claimer = ChannelClaimer(configuration: config, directory: directory, completer: completer, dispatcher: dispatcher,
                                     window: window, departures: departures, holds: holds, rests: rests, metrics: metrics,
                                     clock: clock, logger: logger)
        let notifications = WorkerNotifications(databaseURL: config.databaseURL, logger: logger)
        logger.info("worker started", metadata: [
            "worker.id": "\(config.workerID)", "lanes": "\(config.lanes)", "max_in_flight": "\(config.maxInFlight)",
            "max_in_flight_per_channel": "\(window.perChannelLimit)",
            "admission_floor": "\(config.admissionFloor.map(String.init) ?? "off")",
            "allocator": "\(TransportMemory.allocator.rawValue)"])
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask { await notifications.run(directory: directory, rests: rests, wakeup: self.wakeup, stopping: self.stopping) }
                group.addTask { await completer.run(pool: pool) }
                group.addTask {
                    await withDiscardingTaskGroup { lanes in
                        for lane in 0..<config.lanes {
                            lanes.addTask { await claimer.lane(lane, pool: pool, wakeup: self.wakeup, stopping: self.stopping) }
                        }
                    }
                    await self.drain(window)
                    // Fails what is still queued (handed back) or in flight (ambiguous) and
                    // reports each to the completer before it returns.
                    transport.shutdown()
                    completer.finish()
                }
            }
        } onGracefulShutdown: {
            self.requestStop()
        }
        // Hand back whatever is still held, so other workers can take it at once.
        do {
            let released = try await pool.withConnection { try await QueueStore().release(owner: config.workerID, on: $0) }
            if released > 0 { logger.info("handed back claimed jobs", metadata: ["jobs.count": "\(released)"]) }
        } catch {
            logger.error("could not hand back claimed jobs; they return when their lease expires", metadata: ["error": "\(error)"])
        }
        await pool.close()
        logger.info("worker stopped")
    }

    /// Asks the worker to stop as on SIGTERM (for tests and embedding).
    public func requestStop() {
        stopping.set()
        // Closed, not signalled: a lane between its check of `stopping` and its wait must not
        // sleep through the request.
        wakeup.close()
    }

    /// Waits for the sends in flight to end, at most ``WorkerConfiguration/shutdownGrace``;
    /// a cancelled worker abandons them at once.
    private func drain(_ window: InFlightWindow) async {
        let deadline = clock.now + configuration.shutdownGrace
        while window.inFlight > 0 {
            if clock.now >= deadline || Task.isCancelled {
                logger.warning(Task.isCancelled ? "worker cancelled; abandoning in-flight sends"
                                                : "shutdown grace period expired; abandoning in-flight sends", metadata: [
                    "in_flight": "\(window.inFlight)"])
                return
            }
            await window.roomFreed.wait(timeout: Self.drainPoll)
        }
    }
}
