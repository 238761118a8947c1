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
/// or contact id. Each time series is created once, on first use, and cached here, so the hot path
/// (a worker recording a batch) costs a dictionary lookup under a lock and an atomic add.
///
/// | metric | type | labels |
/// |---|---|---|
/// | `herald_messages_claimed_total` | counter | channel, provider |
/// | `herald_messages_total` | counter | channel, provider, outcome (`sent`, `failed`, `retried`, `skipped`, `cancelled`) |
/// | `herald_provider_latency_seconds` | histogram | channel, provider |
/// | `herald_rate_limiter_wait_seconds` | histogram (its `_count` is the number of waits) | channel |
/// | `herald_queue_depth` | gauge: jobs still to do | channel |
/// | `herald_queue_due` | gauge: jobs due now | channel |
/// | `herald_queue_oldest_due_age_seconds` | gauge | channel |
/// | `herald_receipts_total` | counter: receipts stored | provider, status (the provider's word) |
/// | `herald_receipts_applied_total` | counter: receipts matched and applied | (none) |
/// | `herald_webhook_requests_total` | counter | provider, outcome (`accepted`, `unauthorized`, `bad_request`, `error`) |
/// | `herald_webhook_ignored_total` | counter | provider (items of a verified request whose channel the verifying secret does not cover) |
///
/// Workers call ``claimed(channel:provider:count:)``, ``sent(channel:provider:count:)``,
/// ``failed(channel:provider:count:)``, ``retried(channel:provider:count:)``,
/// ``skipped(channel:provider:count:)``, ``cancelled(channel:provider:count:)``,
/// ``providerLatency(channel:provider:seconds:)`` and ``rateLimiterWait(channel:seconds:)``.
public final class HeraldMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry

    private struct Key: Hashable {
        var name: String
        var labels: [String]
    }
    private let counters = Mutex<[Key: Prometheus.Counter]>([:])
    private let histograms = Mutex<[Key: ValueHistogram]>([:])
    private let gauges = Mutex<[Key: Gauge]>([:])
    /// Channels whose queue gauges were set last time, so vanished ones drop to 0.
    private let queueChannels = Mutex<Set<String>>([])

    /// Seconds: from a fast API answer to a timeout.
    static let latencyBuckets: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
    static let waitBuckets: [Double] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30]

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    // MARK: Worker

    /// Jobs claimed by a worker.
    public func claimed(channel: String, provider: String, count: Int) {
        counter("messages_claimed", "Messages claimed by workers.", ["channel": channel, "provider": provider]).increment(by: Int64(count))
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
        counter("messages", "Messages by outcome of a send attempt.",
                ["channel": channel, "provider": provider, "outcome": outcome]).increment(by: Int64(count))
    }

    /// How long one provider request took (send to answer).
    public func providerLatency(channel: String, provider: String, seconds: Double) {
        histogram("provider_latency_seconds", "Provider request latency.", ["channel": channel, "provider": provider],
                  buckets: Self.latencyBuckets).record(seconds)
    }

    /// How long one send waited for the channel's rate limiter.
    public func rateLimiterWait(channel: String, seconds: Double) {
        histogram("rate_limiter_wait_seconds", "Time spent waiting for a channel's rate limit.", ["channel": channel],
                  buckets: Self.waitBuckets).record(seconds)
    }

    // MARK: Webhooks

    /// Receipts stored, by provider and the provider's status word.
    public func receipts(provider: String, status: String, count: Int = 1) {
        counter("receipts", "Delivery receipts stored.", ["provider": provider, "status": Self.boundedStatus(status)])
            .increment(by: Int64(count))
    }

    /// Receipts matched to their message and applied.
    public func receiptsApplied(count: Int) {
        guard count > 0 else { return }
        counter("receipts_applied", "Delivery receipts applied to their message.", [:]).increment(by: Int64(count))
    }

    /// One webhook request's outcome: `accepted`, `unauthorized`, `bad_request`, `error`.
    public func webhookRequest(provider: String, outcome: String) {
        counter("webhook_requests", "Webhook requests by outcome.", ["provider": provider, "outcome": outcome]).increment()
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

    /// Sets the queue gauges from a fresh sample (channels without jobs drop to 0).
    public func setQueue(_ depths: [QueueDepth]) {
        let now = Set(depths.map(\.channel))
        let gone = queueChannels.withLock { seen -> Set<String> in
            let gone = seen.subtracting(now)
            seen = now
            return gone
        }
        for d in depths {
            gauge("queue_depth", "Jobs still to do (due, backed off, or held).", d.channel).set(Double(d.depth))
            gauge("queue_due", "Jobs due now.", d.channel).set(Double(d.due))
            gauge("queue_oldest_due_age_seconds", "Age of the oldest due job.", d.channel).set(d.oldestDueAgeSeconds)
        }
        for channel in gone {
            gauge("queue_depth", "Jobs still to do (due, backed off, or held).", channel).set(0.0)
            gauge("queue_due", "Jobs due now.", channel).set(0.0)
            gauge("queue_oldest_due_age_seconds", "Age of the oldest due job.", channel).set(0.0)
        }
    }

    /// The registry in Prometheus' text exposition format.
    public func exposition() -> String {
        registry.emitToString()
    }

    // MARK: Series

    private func counter(_ name: String, _ help: String, _ labels: [String: String]) -> Prometheus.Counter {
        let sorted = labels.sorted { $0.key < $1.key }
        let key = Key(name: name, labels: sorted.flatMap { [$0.key, $0.value] })
        return counters.withLock { cache in
            if let c = cache[key] { return c }
            let c = registry.makeCounter(
                descriptor: MetricNameDescriptor(namespace: "herald", metricName: name, unitName: "total", helpText: help),
                labels: sorted.map { ($0.key, $0.value) })
            cache[key] = c
            return c
        }
    }

    private func histogram(_ name: String, _ help: String, _ labels: [String: String], buckets: [Double]) -> ValueHistogram {
        let sorted = labels.sorted { $0.key < $1.key }
        let key = Key(name: name, labels: sorted.flatMap { [$0.key, $0.value] })
        return histograms.withLock { cache in
            if let h = cache[key] { return h }
            let h = registry.makeValueHistogram(
                descriptor: MetricNameDescriptor(namespace: "herald", metricName: name, unitName: "", helpText: help),
                labels: sorted.map { ($0.key, $0.value) }, buckets: buckets)
            cache[key] = h
            return h
        }
    }

    private func gauge(_ name: String, _ help: String, _ channel: String) -> Gauge {
        let key = Key(name: name, labels: ["channel", channel])
        return gauges.withLock { cache in
            if let g = cache[key] { return g }
            let g = registry.makeGauge(
                descriptor: MetricNameDescriptor(namespace: "herald", metricName: name, unitName: "", helpText: help),
                labels: [("channel", channel)])
            cache[key] = g
            return g
        }
    }
}

/// Samples the queue gauges from the database, at most once per `interval`, when scraped.
///
/// Shared by `/metrics` of every process that has a database: the sample is a query over the
/// jobs table (the backlog only), so scrapes from several Prometheus servers cost one query.
public final class QueueSampler: Sendable {
    private let metrics: HeraldMetrics
    private let pool: PostgresPool
    private let interval: Duration
    private let last = Mutex<ContinuousClock.Instant?>(nil)
    private let store = ReportStore()

    public init(metrics: HeraldMetrics, pool: PostgresPool, interval: Duration = .seconds(2)) {
        self.metrics = metrics
        self.pool = pool
        self.interval = interval
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
            let depths = try await pool.withConnection { try await self.store.queueDepths(on: $0) }
            metrics.setQueue(depths)
        } catch {
            logger.debug("cannot sample the queue for metrics", metadata: ["error": "\(error)"])
        }
    }
}
