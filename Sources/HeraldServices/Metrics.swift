import Foundation
import HeraldPostgres
import HeraldStore
import Logging
import Prometheus
import Synchronization

/// Herald's metrics, in one Prometheus registry per process.
///
/// Every metric is named `herald_…` and labelled only with low-cardinality dimensions: `channel`
/// (the channel's name), `provider`, and for receipts `status`/`outcome`; never a broadcast, message
/// or contact id. Each time series is created once and cached here, so the hot path (a worker
/// recording a batch) costs a dictionary lookup under a lock and an atomic add.
///
/// **Every series exists from the start, at zero**, so dashboards and alerts see 0 rather than
/// nothing: the process-wide ones in `init`, the per-channel ones as soon as the channel is known
/// (the first `/metrics` sample lists every channel of the database, see ``QueueSampler``, and
/// ``registerChannel(_:provider:)`` may be called earlier).
///
/// | metric | type | labels |
/// |---|---|---|
/// | `herald_messages_claimed_total` | counter | channel, provider |
/// | `herald_messages_total` | counter | channel, provider, outcome (`sent`, `failed`, `retried`, `skipped`, `cancelled`, `handed_back`) |
/// | `herald_provider_latency_seconds` | histogram | channel, provider |
/// | `herald_rate_limiter_wait_seconds` | histogram (its `_count` is the number of waits) | channel |
/// | `herald_queue_depth` | gauge: jobs still to do | channel |
/// | `herald_queue_due` | gauge: jobs of `sending` broadcasts due now | channel |
/// | `herald_queue_oldest_due_age_seconds` | gauge | channel |
/// | `herald_channel_rate_per_second` | gauge: the configured rate | channel |
/// | `herald_channel_burst` | gauge: the configured burst | channel |
/// | `herald_channel_throttled` | gauge: 1 while a provider's "slow down" pauses the channel | channel |
/// | `herald_channel_throttle_remaining_seconds` | gauge | channel |
/// | `herald_broadcasts` | gauge: live broadcasts | status (`scheduled`, `sending`, `paused`) |
/// | `herald_scheduler_leaders` | gauge: sessions holding the scheduler's lock (1 is healthy) | (none) |
/// | `herald_database_sample_success` | gauge: 1 when the last database sample worked | (none) |
/// | `herald_worker_in_flight` | gauge: sends claimed and not yet answered (workers only) | (none) |
/// | `herald_worker_in_flight_limit` | gauge: the window those may fill, after the open-file limit (workers only) | (none) |
/// | `herald_receipts_total` | counter: receipts stored | provider, status (the provider's word) |
/// | `herald_receipts_applied_total` | counter: receipts matched and applied | (none) |
/// | `herald_webhook_requests_total` | counter | provider, outcome (``WebhookOutcome``: `accepted`, `unauthorized`, `bad_request`, `too_large`, `busy`, `error`) |
/// | `herald_webhook_ignored_total` | counter | provider (items of a verified request whose channel the verifying secret does not cover) |
///
/// The gauges sampled from the database (queue, channel, broadcasts, leaders) are the same in
/// every process that samples: aggregate them with `max`, not `sum`.
///
/// Workers call ``claimed(channel:provider:count:)``, ``sent(channel:provider:count:)``,
/// ``failed(channel:provider:count:)``, ``retried(channel:provider:count:)``,
/// ``skipped(channel:provider:count:)``, ``cancelled(channel:provider:count:)``,
/// ``handedBack(channel:provider:count:)``, ``providerLatency(channel:provider:seconds:)`` and
/// ``rateLimiterWait(channel:seconds:)``.
public final class HeraldMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry

    private let counters = SeriesCache<Prometheus.Counter>()
    private let histograms = SeriesCache<ValueHistogram>()
    private let gauges = SeriesCache<Gauge>()
    /// Channels whose queue gauges were set last time, so vanished ones drop to 0.
    private let queueChannels = Mutex<Set<String>>([])
    /// Channels (name, provider) whose series exist.
    private let registeredChannels = Mutex<Set<[String]>>([])

    static let outcomes = ["sent", "failed", "retried", "skipped", "cancelled", "handed_back"]
    /// The statuses each webhook provider reports, registered at zero.
    static let receiptStatuses: [String: [String]] = [
        "whatsapp_cloud": ["sent", "delivered", "read", "failed"],
        "twilio": ["queued", "sent", "delivered", "undelivered", "failed", "read"],
    ]
    static let liveBroadcastStatuses = ["scheduled", "sending", "paused"]

    /// Seconds: from a fast API answer to a timeout.
    static let latencyBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
    static let waitBuckets: [Double] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30]

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        for (provider, statuses) in Self.receiptStatuses {
            for status in statuses { receiptsCounter(provider, status) }
            for outcome in WebhookOutcome.allCases { webhookCounter(provider, outcome.rawValue) }
        }
        receiptsAppliedCounter()
        for status in Self.liveBroadcastStatuses { broadcastsGauge(status) }
        leadersGauge()
        sampleSuccessGauge()
    }

    /// Creates every per-channel series at zero (idempotent, cheap after the first call).
    public func registerChannel(_ channel: String, provider: String) {
        let isNew = registeredChannels.withLock { $0.insert([channel, provider]).inserted }
        guard isNew else { return }
        claimedCounter(channel, provider)
        for outcome in Self.outcomes { outcomeCounter(outcome, channel, provider) }
        latencyHistogram(channel, provider)
        waitHistogram(channel)
        for (name, help) in Self.channelGauges { gauge(name, help, channel) }
    }

    static let channelGauges: [String: String] = [
        "queue_depth": "Jobs still to do (due, backed off, held or paused).",
        "queue_due": "Jobs of sending broadcasts due now.",
        "queue_oldest_due_age_seconds": "Age of the oldest due job.",
        "channel_rate_per_second": "The channel's configured rate (messages per second).",
        "channel_burst": "The channel's configured burst.",
        "channel_throttled": "1 while a provider's slow-down pauses the channel.",
        "channel_throttle_remaining_seconds": "Seconds left of the channel's provider throttle.",
    ]

    // MARK: Worker

    /// Jobs claimed by a worker.
    public func claimed(channel: String, provider: String, count: Int) {
        claimedCounter(channel, provider).increment(by: Int64(count))
    }

    @discardableResult
    private func claimedCounter(_ channel: String, _ provider: String) -> Prometheus.Counter {
        counter("messages_claimed", "Messages claimed by workers.", ["channel": channel, "provider": provider])
    }

    /// Messages the provider accepted.
    public func sent(channel: String, provider: String, count: Int = 1) { outcome("sent", channel, provider, count) }
    /// Messages that failed for good.
    public func failed(channel: String, provider: String, count: Int = 1) { outcome("failed", channel, provider, count) }
    /// Sends that will be tried again.
    public func retried(channel: String, provider: String, count: Int = 1) { outcome("retried", channel, provider, count) }
    /// Messages skipped when their turn came (ineligible).
    public func skipped(channel: String, provider: String, count: Int = 1) { outcome("skipped", channel, provider, count) }
    /// Messages ended because their broadcast was cancelled.
    public func cancelled(channel: String, provider: String, count: Int = 1) { outcome("cancelled", channel, provider, count) }
    /// Claimed messages handed back unsent (no time left in their lease to start, or shutdown).
    public func handedBack(channel: String, provider: String, count: Int = 1) { outcome("handed_back", channel, provider, count) }

    private func outcome(_ outcome: String, _ channel: String, _ provider: String, _ count: Int) {
        guard count > 0 else { return }
        outcomeCounter(outcome, channel, provider).increment(by: Int64(count))
    }

    @discardableResult
    private func outcomeCounter(_ outcome: String, _ channel: String, _ provider: String) -> Prometheus.Counter {
        counter("messages", "Messages by outcome of a send attempt.",
                ["channel": channel, "provider": provider, "outcome": outcome])
    }

    /// How long one provider request took (send to answer).
    public func providerLatency(channel: String, provider: String, seconds: Double) {
        latencyHistogram(channel, provider).record(seconds)
    }

    /// One channel's provider latency series, for a caller that records many answers of it: the
    /// series is looked up once (labels sorted, hashed, under a lock), each answer is then one
    /// `record`.
    public struct ProviderLatencySeries: Sendable {
        fileprivate let histogram: ValueHistogram
        public func record(_ seconds: Double) { histogram.record(seconds) }
    }

    public func providerLatencySeries(channel: String, provider: String) -> ProviderLatencySeries {
        ProviderLatencySeries(histogram: latencyHistogram(channel, provider))
    }

    @discardableResult
    private func latencyHistogram(_ channel: String, _ provider: String) -> ValueHistogram {
        histogram("provider_latency_seconds", "Provider request latency.", ["channel": channel, "provider": provider],
                  buckets: Self.latencyBuckets)
    }

    /// How long one send waited for the channel's rate limiter.
    public func rateLimiterWait(channel: String, seconds: Double) {
        waitHistogram(channel).record(seconds)
    }

    @discardableResult
    private func waitHistogram(_ channel: String) -> ValueHistogram {
        histogram("rate_limiter_wait_seconds", "Time spent waiting for a channel's rate limit.", ["channel": channel],
                  buckets: Self.waitBuckets)
    }

    // MARK: Webhooks

    /// Receipts stored, by provider and the provider's status word.
    public func receipts(provider: String, status: String, count: Int = 1) {
        receiptsCounter(provider, Self.boundedStatus(status)).increment(by: Int64(count))
    }

    @discardableResult
    private func receiptsCounter(_ provider: String, _ status: String) -> Prometheus.Counter {
        counter("receipts", "Delivery receipts stored.", ["provider": provider, "status": status])
    }

    /// Receipts matched to their message and applied.
    public func receiptsApplied(count: Int) {
        guard count > 0 else { return }
        receiptsAppliedCounter().increment(by: Int64(count))
    }

    @discardableResult
    private func receiptsAppliedCounter() -> Prometheus.Counter {
        counter("receipts_applied", "Delivery receipts applied to their message.", [:])
    }

    /// One webhook request's outcome.
    public func webhookRequest(provider: String, outcome: WebhookOutcome) {
        webhookCounter(provider, outcome.rawValue).increment()
    }

    @discardableResult
    private func webhookCounter(_ provider: String, _ outcome: String) -> Prometheus.Counter {
        counter("webhook_requests", "Webhook requests by outcome.", ["provider": provider, "outcome": outcome])
    }

    /// Statuses and incoming messages of a verified webhook that name a phone number or account
    /// the verifying secret does not cover: ignored, never applied.
    public func webhookIgnored(provider: String, count: Int) {
        guard count > 0 else { return }
        counter("webhook_ignored", "Webhook items ignored: signed by a secret that does not cover their channel.",
                ["provider": provider]).increment(by: Int64(count))
    }

    /// Provider status words are a small vocabulary; anything else is folded so a misbehaving
    /// sender cannot create time series at will.
    static func boundedStatus(_ status: String) -> String {
        let known: Set<String> = ["sent", "delivered", "read", "failed", "deleted", "warning", "undelivered", "queued",
                                  "accepted", "sending", "scheduled", "canceled", "receiving", "received", "played"]
        return known.contains(status) ? status : "other"
    }

    // MARK: Queue gauges

    private func setQueueGauges(_ rows: [(channel: String, depth: Double, due: Double, oldest: Double)]) {
        let now = Set(rows.map(\.channel))
        let gone = queueChannels.withLock { seen -> Set<String> in
            let gone = seen.subtracting(now)
            seen = now
            return gone
        }
        for row in rows {
            channelGauge("queue_depth", row.channel).set(row.depth)
            channelGauge("queue_due", row.channel).set(row.due)
            channelGauge("queue_oldest_due_age_seconds", row.channel).set(row.oldest)
        }
        for channel in gone {
            for name in ["queue_depth", "queue_due", "queue_oldest_due_age_seconds"] { channelGauge(name, channel).set(0.0) }
        }
    }

    /// Sets every database-sampled gauge from a fresh sample, registering new channels' series.
    public func apply(_ sample: OperationsSample) {
        for c in sample.channels {
            registerChannel(c.channel, provider: c.provider)
            channelGauge("channel_rate_per_second", c.channel).set(c.ratePerSecond)
            channelGauge("channel_burst", c.channel).set(Double(c.burst))
            channelGauge("channel_throttled", c.channel).set(c.throttledSeconds > 0 ? 1.0 : 0.0)
            channelGauge("channel_throttle_remaining_seconds", c.channel).set(c.throttledSeconds)
        }
        setQueueGauges(sample.channels.map { ($0.channel, Double($0.depth), Double($0.due), $0.oldestDueAgeSeconds) })
        for status in Self.liveBroadcastStatuses { broadcastsGauge(status).set(Double(sample.broadcasts[status] ?? 0)) }
        leadersGauge().set(Double(sample.schedulerLeaders))
    }

    /// Whether the last database sample worked (a failed one leaves the other gauges as they were).
    public func sampleSucceeded(_ ok: Bool) {
        sampleSuccessGauge().set(ok ? 1.0 : 0.0)
    }

    private func channelGauge(_ name: String, _ channel: String) -> Gauge {
        gauge(name, Self.channelGauges[name] ?? name, channel)
    }

    @discardableResult
    private func broadcastsGauge(_ status: String) -> Gauge {
        plainGauge("broadcasts", "Live broadcasts by status.", [("status", status)])
    }

    @discardableResult
    private func leadersGauge() -> Gauge {
        plainGauge("scheduler_leaders", "Sessions holding the scheduler's advisory lock (1 is healthy, 0: no leader).", [])
    }

    @discardableResult
    private func sampleSuccessGauge() -> Gauge {
        plainGauge("database_sample_success", "1 when the last database sample for /metrics worked.", [])
    }

    /// A worker's window: sets `herald_worker_in_flight_limit` to `limit` and returns the gauge of
    /// sends in flight (at 0), which the worker sets as the window changes. In flight near the
    /// limit for long means the worker is bound by its window (Little's law: msg/s = in flight /
    /// provider latency), not by the providers' rates.
    public func workerWindow(limit: Int) -> Gauge {
        let inFlight = plainGauge("worker_in_flight", "Sends this worker claimed and has not had answered yet.", [])
        plainGauge("worker_in_flight_limit",
                   "The most sends this worker keeps in flight (--max-in-flight, less what the open-file limit cannot hold).", [])
            .set(Double(limit))
        inFlight.set(0.0)
        return inFlight
    }

    /// The registry in Prometheus' text exposition format.
    public func exposition() -> String {
        registry.emitToString()
    }

    // MARK: Series

    private func counter(_ name: String, _ help: String, _ labels: [String: String]) -> Prometheus.Counter {
        let sorted = labels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        return counters.series(name, sorted) {
            registry.makeCounter(descriptor: Self.descriptor(name, unit: "total", help), labels: sorted)
        }
    }

    private func histogram(_ name: String, _ help: String, _ labels: [String: String], buckets: [Double]) -> ValueHistogram {
        let sorted = labels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        return histograms.series(name, sorted) {
            registry.makeValueHistogram(descriptor: Self.descriptor(name, unit: "", help), labels: sorted, buckets: buckets)
        }
    }

    @discardableResult
    private func gauge(_ name: String, _ help: String, _ channel: String) -> Gauge {
        plainGauge(name, help, [("channel", channel)])
    }

    private func plainGauge(_ name: String, _ help: String, _ labels: [(String, String)]) -> Gauge {
        gauges.series(name, labels) {
            registry.makeGauge(descriptor: Self.descriptor(name, unit: "", help), labels: labels)
        }
    }

    private static func descriptor(_ name: String, unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "herald", metricName: name, unitName: unit, helpText: help)
    }
}

/// The series of one metric type, made once per name and labels and kept: the registry hands out
/// a new object on every call, and the hot paths ask for the same series thousands of times.
private final class SeriesCache<Series: Sendable>: Sendable {
    private struct Key: Hashable {
        var name: String
        var labels: [String]
    }
    private let cache = Mutex<[Key: Series]>([:])

    func series(_ name: String, _ labels: [(String, String)], make: () -> Series) -> Series {
        let key = Key(name: name, labels: labels.flatMap { [$0.0, $0.1] })
        return cache.withLock { cache in
            if let series = cache[key] { return series }
            let series = make()
            cache[key] = series
            return series
        }
    }
}

/// Samples the database-derived gauges (queue, channels, live broadcasts, scheduler leaders) at
/// most once per `interval`, when scraped, and registers every channel's series at zero.
///
/// Shared by `/metrics` of every process that has a database: the sample is three small queries
/// (the live broadcasts' report counters and a few index probes of the jobs, never a pass over the
/// backlog; the live broadcasts; `pg_locks`), so every process of a large deployment may sample
/// every few seconds; scrapes from several Prometheus servers cost one sample per interval.
public final class QueueSampler: Sendable {
    private let metrics: HeraldMetrics
    private let pool: PostgresPool
    private let interval: Duration
    private let leaderLockKey: Int64
    private let last = Mutex<ContinuousClock.Instant?>(nil)
    private let store = OperationsSampleStore()

    public init(metrics: HeraldMetrics, pool: PostgresPool, interval: Duration = .seconds(2),
                leaderLockKey: Int64 = Leadership.schedulerLockKey) {
        self.metrics = metrics
        self.pool = pool
        self.interval = interval
        self.leaderLockKey = leaderLockKey
    }

    /// Refreshes the gauges unless a recent sample exists; errors leave the old values.
    public func refresh(logger: Logger) async {
        let now = ContinuousClock.now
        let due = last.withLock { at -> Bool in
            if let at, now - at < interval { return false }
            at = now
            return true
        }
        guard due else { return }
        do {
            let sample = try await pool.withConnection { [store, leaderLockKey] in
                try await store.sample(on: $0, leaderLockKey: leaderLockKey)
            }
            metrics.apply(sample)
            metrics.sampleSucceeded(true)
            // Opt-outs by source and kind, messages waiting for a messaging tier (consent).
            await metrics.refreshConsent(pool: pool, logger: logger)
        } catch {
            metrics.sampleSucceeded(false)
            logger.debug("cannot sample the database for metrics", metadata: ["error": "\(error)"])
        }
    }
}

/// How `herald webhooks` answered one request: the `outcome` label of
/// `herald_webhook_requests_total`, every value registered at zero from the start.
public enum WebhookOutcome: String, Sendable, CaseIterable {
    /// 200: stored (or a verification handshake answered).
    case accepted
    /// 401: a bad or missing signature.
    case unauthorized
    /// 400: a body or query that does not parse as the provider's format.
    case badRequest = "bad_request"
    /// 413: a body over the size limit, declared or read.
    case tooLarge = "too_large"
    /// 503 with `Retry-After`: too many large bodies waiting to be read.
    case busy
    /// 503: the database could not take the receipts; the provider retries.
    case error
}
