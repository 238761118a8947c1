import Foundation
import HeraldCore
import HeraldProviders
import HeraldStore
import HeraldTransport
import Synchronization

/// Renders a claimed batch and hands its sends to the transport without waiting for answers:
/// each answer goes to the ``OutcomeCompleter`` as it arrives and frees its slot of the
/// ``InFlightWindow`` at once.
///
/// It remembers each broadcast's submissions until their start deadline has passed, so that a
/// broadcast that leaves `sending` (pause, cancel) gets its sends still waiting for a slot
/// withdrawn: they come back not started and are handed back unsent.
final class SendDispatcher: Sendable {
    private struct Submitted {
        var ticket: TransportTicket
        var deadline: ContinuousClock.Instant
    }

    private let transport: CurlTransport
    private let completer: OutcomeCompleter
    private let window: InFlightWindow
    private let departures: ChannelDepartures
    private let rules: OutcomeRules
    private let configuration: WorkerConfiguration
    private let metrics: HeraldMetrics
    private let clock: any HeraldClock
    private let submitted = Mutex<[Int64: [Submitted]]>([:])

    init(transport: CurlTransport, completer: OutcomeCompleter, window: InFlightWindow, departures: ChannelDepartures,
         rules: OutcomeRules, configuration: WorkerConfiguration, metrics: HeraldMetrics, clock: any HeraldClock) {
        self.clock = clock
        self.transport = transport
        self.completer = completer
        self.window = window
        self.departures = departures
        self.rules = rules
        self.configuration = configuration
        self.metrics = metrics
    }

    /// Renders every job and submits the provider requests in one call. The jobs hold one
    /// window slot each on entry; slots of jobs that need no transfer are given back here, the
    /// others as their answers arrive. Simulated requests (the sandbox) are answered after
    /// their simulated latency, on the calling lane.
    func dispatch(_ jobs: [ClaimedJob], of broadcast: PreparedBroadcast, claimedAt: ContinuousClock.Instant) async {
        let now = Date()
        let channelID = broadcast.info.channelID
        // Whether claims of this channel keep to its departures (see ChannelDepartures).
        let paced = ChannelDepartures.limit(ratePerSecond: broadcast.info.ratePerSecond, burst: broadcast.info.burst) != nil
        var decided: [JobOutcome] = []
        var requests: [TransportRequest] = []
        var sends: [SentJob] = []
        var simulated: [(sent: SentJob, outcome: DeliveryOutcome)] = []
        var simulatedLatency = Duration.zero
        requests.reserveCapacity(jobs.count)
        sends.reserveCapacity(jobs.count)
        for job in jobs {
            switch broadcast.outgoing(for: job) {
            case .failure(.skip(let reason)):
                decided.append(JobOutcome(messageID: job.messageID, result: .skipped(reason: reason)))
            case .failure(.fail(let why)):
                decided.append(JobOutcome(messageID: job.messageID, result: .failed(errorCode: nil, error: why, failureKind: nil)))
            case .success(let (message, segments)):
                do {
                    // One part per claim: the first not yet accepted (see `ConfiguredChannel.requests(for:)`).
                    let parts = try broadcast.channel.requests(for: message)
                    let part = job.sentParts.count
                    guard part < parts.count else {
                        // Every part went (the broadcast was edited to need fewer since): done.
                        decided.append(JobOutcome(messageID: job.messageID, result: .sent(providerMessageID: job.sentParts.last ?? ""),
                                                  segments: segments))
                        continue
                    }
                    let request = parts[part]
                    let sent = SentJob(job: job, broadcast: broadcast, segments: segments, request: request,
                                       part: part, parts: parts.count)
                    switch request {
                    case .http(let http):
                        requests.append(.http(http))
                        sends.append(sent)
                    case .mail(let mail):
                        requests.append(.smtp(mail.envelope))
                        sends.append(sent)
                    case .simulated(let latency, let outcome):
                        simulatedLatency = max(simulatedLatency, latency)
                        simulated.append((sent, outcome))
                    }
                } catch {
                    decided.append(rules.recordable(.permanent(code: nil, message: error.description), job: job,
                                                    broadcast: broadcast, segments: segments, now: now))
                }
            }
        }
        window.release(decided.count, channel: channelID)
        completer.decided(decided, broadcast: broadcast)
        if !requests.isEmpty {
            let deadline = configuration.sendDeadline(claimedAt: claimedAt)
            let window = self.window, completer = self.completer
            var onDeparture: (@Sendable (Int, Bool) -> Void)?
            if paced {
                // Counted as waiting before the transport can report the first departure.
                let ledger = departures.submitting(requests.count, of: channelID)
                onDeparture = { _, departed in
                    if departed { ledger.departed() } else { ledger.ended() }
                }
            }
            let ticket = transport.submit(requests, startingBy: deadline, onDeparture: onDeparture) { [sends] index, outcome in
                window.release(1, channel: channelID)
                completer.answered(sends[index], outcome)
            }
            window.noteSends(of: channelID, holdTLSConnectionEach: ticket.holdsTLSConnectionEach)
            let now = clock.now
            submitted.withLock { all in
                var list = all[broadcast.info.id, default: []].filter { $0.deadline > now }
                list.append(Submitted(ticket: ticket, deadline: deadline))
                all[broadcast.info.id] = list
            }
        }
        if !simulated.isEmpty {
            window.noteSends(of: channelID, holdTLSConnectionEach: false)
            if paced { departures.departedAtOnce(simulated.count, of: channelID) }
            // Simulated sends of a batch happen side by side, as real ones would.
            if simulatedLatency > .zero { try? await clock.sleep(for: simulatedLatency) }
            let answeredAt = Date()
            let outcomes = simulated.map { send -> JobOutcome in
                metrics.providerLatency(channel: broadcast.info.channelName, provider: broadcast.info.provider,
                                        seconds: simulatedLatency.inSeconds)
                let delivery = broadcast.channel.classify(.simulated(send.outcome), for: send.sent.request, now: answeredAt)
                return rules.recordable(delivery, job: send.sent.job, broadcast: broadcast, segments: send.sent.segments,
                                        now: answeredAt, part: send.sent.part, parts: send.sent.parts)
            }
            window.release(outcomes.count, channel: channelID)
            completer.decided(outcomes, broadcast: broadcast)
        }
    }

    /// Takes back the sends of these broadcasts still waiting for a transport slot (they were
    /// paused or cancelled): they come back not started and are handed back unsent.
    func withdraw(broadcasts ids: some Sequence<Int64>) {
        let tickets = submitted.withLock { all -> [TransportTicket] in
            var out: [TransportTicket] = []
            for id in ids { out += (all.removeValue(forKey: id) ?? []).map(\.ticket) }
            return out
        }
        for ticket in tickets { transport.withdrawQueued(ticket) }
    }

    /// Forgets submissions whose start deadline has passed (none of them can still be queued).
    func prune() {
        let now = clock.now
        submitted.withLock { all in
            all = all.compactMapValues { list in
                let kept = list.filter { $0.deadline > now }
                return kept.isEmpty ? nil : kept
            }
        }
    }
}
