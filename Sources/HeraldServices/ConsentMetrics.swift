import HeraldPostgres
import HeraldStore
import Logging
import Prometheus

/// The consent loop's gauges, set from a database sample (``ConsentStore/sample(on:)``):
///
/// | metric | type | labels |
/// |---|---|---|
/// | `herald_opt_outs` | gauge: opt-outs in the table | source (`admin`, `keyword`, `provider`, `unsubscribe_link`), kind |
/// | `herald_tier_waiting` | gauge: messages waiting for the channel's messaging tier | channel |
///
/// Gauges, not counters: provider opt-outs are written inside the worker's and the applier's SQL,
/// so the table is the one place that sees every source. The registry returns the existing
/// series for a name and labels already made, so setting them again is cheap.
extension HeraldMetrics {
    public func setConsent(_ sample: ConsentSample) {
        for o in sample.optOuts {
            registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "herald", metricName: "opt_outs", unitName: "",
                                                                helpText: "Opt-outs by source and channel kind."),
                               labels: [("kind", o.kind), ("source", o.source)]).set(Double(o.count))
        }
        for (channel, waiting) in sample.tierWaiting {
            registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "herald", metricName: "tier_waiting", unitName: "",
                                                                helpText: "Messages waiting for the channel's messaging tier (daily_limit)."),
                               labels: [("channel", channel)]).set(Double(waiting))
        }
    }

    /// Samples the database and sets the consent gauges; errors leave the old values. The
    /// `/metrics` sampler calls this beside the queue gauges.
    public func refreshConsent(pool: PostgresPool, logger: Logger) async {
        do {
            setConsent(try await pool.withConnection { try await ConsentStore().sample(on: $0) })
        } catch {
            logger.debug("cannot sample opt-outs for metrics", metadata: ["error": "\(error)"])
        }
    }
}
