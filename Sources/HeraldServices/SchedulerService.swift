import Foundation
import HeraldCore
import HeraldPostgres
import HeraldProviders
import HeraldStore
import Logging
import ServiceLifecycle

/// `herald scheduler`: owns the broadcast life cycle of the contract.
///
/// **One acts.** Any number may run; the one holding the ``Leadership`` lock acts, the others
/// stand by and take over within about a second of its death.
///
/// **What the leader does, in one loop on its one session:**
/// 1. *Start due broadcasts.* Each `scheduled` broadcast with `send_at` null or past is validated
///    (``SchedulerValidation``; a failure ends it `failed` with `error`), then its audience is
///    expanded in chunks of contact ids. *Streaming* (``SchedulerConfiguration/claimable``): the
///    first chunk (small, ``SchedulerConfiguration/defaultFirstExpansionChunk``) flips it to
///    `sending` and every chunk wakes the workers (`NOTIFY herald_jobs`), so workers send while
///    the rest is expanded; the last step stamps `expanded_at`, without which the broadcast never
///    completes. Chunks of all broadcasts being expanded are taken in turn, so a large audience
///    never holds up a small broadcast for more than a chunk.
/// 2. *Resume.* The chunk that writes messages also advances `expansion_cursor` in the same
///    statement, so after a crash the new leader continues after the last committed chunk: never a
///    contact twice (the unique key and the cursor guard both prevent it), never one lost.
/// 3. *Cancel wins.* Every chunk and the final stamp are guarded by the status (`scheduled`,
///    `sending` or `paused`, `expanded_at` null): when the admin tool cancels meanwhile, the
///    remaining chunks match nothing, workers stop claiming (they claim only jobs of `sending`
///    broadcasts), and maintenance ends its unsent messages as `cancelled`.
/// 4. *Maintenance* every ``SchedulerConfiguration/maintenanceInterval``: a `sending` broadcast
///    with no job left becomes `completed`; unsent messages of `cancelled` broadcasts become
///    `cancelled` (jobs under a live lease are left to their worker). `paused` needs nothing:
///    workers do not claim its jobs.
/// 5. *Abandoned claims* need no pass: a job whose lease expired is claimable again by the
///    workers' own claim (`run_at <= now()`).
///
/// **Wake-ups.** The leader `LISTEN`s on `herald_broadcasts` (a trigger notifies on every change
/// of `broadcasts.status` or `send_at`) and otherwise sleeps until the earliest future `send_at`
/// or the next maintenance tick, whichever comes first: a due broadcast starts within
/// milliseconds of its time, without polling in a tight loop.
///
/// **Edits of running broadcasts.** The admin tool may edit a `sending` or `paused` broadcast;
/// a trigger (migrations 0012 and 0016: any column the workers render from or validation reads)
/// stamps `definition_changed_at` and wakes the leader. Each pass the leader validates such
/// broadcasts again with ``SchedulerValidation/check(_:)`` and either
/// accepts the edit (clears the stamp) or ends the broadcast `failed` with the reason; its unsent
/// messages then end `failed` in maintenance. A broadcast still being expanded writes no chunk
/// while the stamp is set, and continues with the accepted definition (its plan is rebuilt).
///
/// **Failures: one bad row never stops the others.** A statement that fails for one broadcast
/// because of that broadcast's own data (SQLSTATE classes 22 and 23, or an undecodable value:
/// ``PostgresError/isDataError``) ends that broadcast `failed` with the error; other server errors
/// hold it back with backoff and the loop goes on. Nothing the loop runs over many broadcasts
/// computes on a row's values in a way one row can break (`send_at = 'infinity'` is filtered out
/// and such a broadcast failed). A lost connection ends the session (and with it the
/// leadership); the service reconnects with backoff and competes again.
///
/// **Shutdown.** On graceful shutdown or cancellation the statement in flight completes (each is
/// its own short transaction), the session is closed (releasing the lock) and ``run()`` returns.
public struct SchedulerService: Service {
    public let configuration: SchedulerConfiguration
    let logger: Logger
    let clock: any HeraldClock
    let random: RandomSource

    /// - Parameters:
    ///   - clock: what the scheduler's own waits and holds run on (reconnect backoff, a failing
    ///     broadcast's hold, the maintenance interval); `send_at` and expansion run on the
    ///     database's clock.
    ///   - random: the jitter of those backoffs.
    public init(configuration: SchedulerConfiguration, logger: Logger, clock: any HeraldClock = ContinuousClock(),
                random: RandomSource = .system) {
        self.configuration = configuration
        self.logger = logger
        self.clock = clock
        self.random = random
    }

    public func run() async throws {
        // Logged once signal handling is in place (the service group installs it first).
        logger.info("scheduler started")
        await cancelWhenGracefulShutdown { await self.runUntilCancelled() }
    }

    /// Sessions, one after another, until the task is cancelled.
    func runUntilCancelled() async {
        var failures = 0
        var rng = random.generator
        while !Task.isCancelled {
            do {
                let connection = try await PostgresConnection.connect(
                    configuration.connectionString, applicationName: configuration.applicationName,
                    session: configuration.effectiveSession, logger: logger)
                do {
                    try await session(on: connection, resetFailures: { failures = 0 })
                } catch {
                    await connection.close()
                    throw error
                }
                await connection.close()
            } catch {
                if Task.isCancelled || error is CancellationError { break }
                failures += 1
                logger.info("scheduler database session failed; retrying",
                            metadata: ["error": "\(error)", "attempt": "\(failures)"])
                do {
                    try await clock.sleep(for: configuration.reconnectBackoff.delay(afterAttempt: failures, using: &rng))
                } catch {
                    break
                }
            }
        }
        logger.debug("scheduler stopped")
    }

    /// One database session: stand by until leader, then lead until the session breaks.
    private func session(on connection: PostgresConnection, resetFailures: () -> Void) async throws {
        let store = SchedulerStore(connection)
        try await configuration.leadership.acquire(on: store, logger: logger, clock: clock)
        resetFailures()
        let pid = await connection.backendPID
        logger.info("scheduler leadership acquired", metadata: ["db.pid": "\(pid)"])
        try await connection.listen("herald_broadcasts")
        var leader = LeaderState(store: store, configuration: configuration, logger: logger, clock: clock, random: random)
        guard let templateSync = configuration.templateSync else { return try await leader.lead(connection: connection) }
        try await templateSync.whileLeading { try await leader.lead(connection: connection) } // templates (issue 18)
    }
}

/// The leader's loop and what it remembers between iterations (only within one leadership term:
/// everything here can be rebuilt from the database).
struct LeaderState {
    let store: SchedulerStore
    let configuration: SchedulerConfiguration
    let logger: Logger

    /// Validated broadcasts being expanded: what each chunk needs.
    var plans: [Int64: Plan] = [:]
    /// Broadcasts whose last step failed with a server error: skipped until `until`.
    var held: [Int64: (until: ContinuousClock.Instant, failures: Int)] = [:]
    var rng: RandomSource.Generator
    let clock: any HeraldClock
    /// When broadcast_report's counter deltas were last folded together.
    var lastCompaction: ContinuousClock.Instant?

    struct Plan {
        var channelID: Int64
        var eligibility: SchedulerStore.Eligibility
        /// Contacts with a time zone PostgreSQL does not know, over this term's chunks.
        var unknownZones = UnknownTimeZones()
    }

    init(store: SchedulerStore, configuration: SchedulerConfiguration, logger: Logger,
         clock: any HeraldClock = ContinuousClock(), random: RandomSource = .system) {
        self.store = store
        self.configuration = configuration
        self.logger = logger
        self.clock = clock
        rng = random.generator
    }

    mutating func lead(connection: PostgresConnection) async throws {
        var lastMaintenance = clock.now - configuration.maintenanceInterval
        while true {
            try Task.checkCancellation()
            try await revalidateEdits()
            let busy = try await startDueBroadcasts()
            if clock.now - lastMaintenance >= configuration.maintenanceInterval {
                lastMaintenance = clock.now
                try await maintain()
            }
            if busy { continue }
            var wait = configuration.maintenanceInterval - (clock.now - lastMaintenance)
            if let next = try await store.timeUntilNextSendAt() { wait = min(wait, next) }
            _ = try await connection.waitForNotifications(timeout: max(wait, .milliseconds(1)))
        }
    }

    /// One step (validation, one chunk, or the flip) for each due broadcast.
    /// - Returns: true when some broadcast has more expansion to do right away.
    mutating func startDueBroadcasts() async throws -> Bool {
        let due = try await store.dueBroadcasts()
        let dueIDs = Set(due.map(\.id))
        plans = plans.filter { dueIDs.contains($0.key) }
        held = held.filter { dueIDs.contains($0.key) }
        var busy = false
        for broadcast in due {
            try Task.checkCancellation()
            if let hold = held[broadcast.id], hold.until > clock.now { continue }
            do {
                busy = try await step(broadcast) || busy
                held[broadcast.id] = nil
            } catch let error as PostgresError where error.isDataError {
                // The broadcast's own data breaks a statement: it would fail the same way forever.
                plans[broadcast.id] = nil
                held[broadcast.id] = nil
                let reason = "could not be started: \(error)"
                if (try? await store.fail(broadcast.id, error: reason)) == true {
                    logger.info("broadcast failed: its data breaks a statement",
                                metadata: ["broadcast.id": "\(broadcast.id)", "error": "\(error)"])
                } else {
                    held[broadcast.id] = (clock.now + .seconds(60), 1)
                }
            } catch let error as PostgresError where !error.isTransient && error.code != .connectionClosed {
                let failures = (held[broadcast.id]?.failures ?? 0) + 1
                let delay = Backoff(base: .seconds(1), cap: .seconds(60)).delay(afterAttempt: failures, using: &rng)
                held[broadcast.id] = (clock.now + delay, failures)
                plans[broadcast.id] = nil
                logger.info("scheduler could not start broadcast; will retry",
                            metadata: ["broadcast.id": "\(broadcast.id)", "error": "\(error)", "attempt": "\(failures)"])
            }
        }
        return busy
    }

    /// Advances one broadcast by one step.
    /// - Returns: true when it has more chunks to expand.
    mutating func step(_ broadcast: SchedulerStore.DueBroadcast) async throws -> Bool {
        let id = broadcast.id
        if plans[id] == nil {
            if broadcast.localSendAt, broadcast.expansionCursor == nil, try await store.postponeToEarliestZone(id) {
                return false
            }
            // A broadcast whose expansion is resumed after a crash is already `sending` (streaming).
            guard let definition = try await store.definition(of: id, statuses: ["scheduled", "sending", "paused"]) else { return false }
            if let error = SchedulerValidation.check(definition, environment: configuration.providerEnvironment)
                ?? DeliveryTimingValidation.check(definition.timing) {
                if try await store.fail(id, error: error) {
                    logger.debug("broadcast failed validation", metadata: ["broadcast.id": "\(id)", "error": "\(error)"])
                }
                return false
            }
            if broadcast.expansionCursor == nil, try await store.nextAudienceContact(of: id, after: nil) == nil {
                try await store.fail(id, error: SchedulerValidation.emptyAudience)
                return false
            }
            // Email attachments (issue 18): fetched once, before the first message exists. Once a
            // chunk is expanded (an expansion resumed by a new leader, or re-planned after an
            // accepted edit) the stored files stay, and media that differ from them are an edit
            // of a started broadcast, rejected as `revalidateEdits` would, never fetched anew.
            let attachmentProblem = broadcast.expansionCursor == nil
                ? try await AttachmentFetch.prepare(definition, store: store, environment: configuration.providerEnvironment)
                : try await AttachmentFetch.checkEdit(definition, store: store, environment: configuration.providerEnvironment)
                    .map { "edit rejected: \($0)" }
            if let error = attachmentProblem {
                if try await store.fail(id, error: error) {
                    logger.debug("broadcast failed: attachment", metadata: ["broadcast.id": "\(id)", "error": "\(error)"])
                }
                return false
            }
            let channel = definition.channel!  // checked by validation
            guard let kind = ChannelKind(rawValue: channel.kind) else {
                // Validation names an unknown kind and the schema's CHECK forbids one; should a row
                // slip past both, it fails its own broadcast instead of stopping the scheduler.
                try await store.fail(id, error: "channel \"\(channel.name)\": unknown kind \"\(channel.kind)\"")
                return false
            }
            plans[id] = Plan(channelID: channel.id, eligibility: .init(kind: kind, hasTemplate: definition.templateID != nil))
        }
        guard let plan = plans[id] else { return false }
        guard let low = try await store.nextAudienceContact(of: id, after: broadcast.expansionCursor) else {
            let warning = plans[id]?.unknownZones.warning
            plans[id] = nil
            if try await store.finishExpansion(id, warning: warning) {
                logger.debug("broadcast expanded", metadata: ["broadcast.id": "\(id)"])
                // An audience that was skipped entirely has nothing to send: complete it now
                // rather than at the next maintenance tick.
                _ = try await store.completeFinished()
            }
            return false
        }
        // Streaming: the first chunk is small, so the first messages go out within a moment of the start.
        let size = broadcast.expansionCursor == nil ? configuration.claimable.firstChunk(full: configuration.expansionChunk)
                                                    : configuration.expansionChunk
        let (sum, overflow) = low.addingReportingOverflow(size - 1)
        let high = overflow ? Int64.max : sum
        let result = try await store.expandChunk(of: id, channelID: plan.channelID, eligibility: plan.eligibility,
                                                 previousCursor: broadcast.expansionCursor, low: low, high: high,
                                                 startsSending: configuration.claimable != .afterWholeExpansion)
        logger.trace("expanded chunk", metadata: ["broadcast.id": "\(id)", "messages": "\(result.messages)", "jobs": "\(result.jobs)"])
        plans[id]?.unknownZones.add(result.unknownZoneContacts, example: result.unknownZoneExample)
        if !result.advanced { plans[id] = nil }
        return result.advanced
    }

    /// Validates again the `sending` and `paused` broadcasts the admin tool edited: accepts the
    /// edit, or ends the broadcast `failed` with the reason. One broadcast's failure to load
    /// (bad data) fails that broadcast alone.
    mutating func revalidateEdits() async throws {
        let edits: [SchedulerStore.EditedBroadcast]
        do {
            edits = try await store.editedBroadcasts()
        } catch let error as PostgresError where !error.isTransient && error.code != .connectionClosed {
            logger.info("scheduler could not list edited broadcasts; will retry", metadata: ["error": "\(error)"])
            return
        }
        for edit in edits {
            try Task.checkCancellation()
            do {
                guard let definition = try await store.definition(of: edit.id, statuses: ["sending", "paused"]) else { continue }
                var problem = SchedulerValidation.check(definition, environment: configuration.providerEnvironment)
                    ?? DeliveryTimingValidation.check(definition.timing)
                if problem == nil {  // email attachments (issue 18)
                    problem = try await AttachmentFetch.checkEdit(definition, store: store, environment: configuration.providerEnvironment)
                }
                if let problem {
                    if try await store.failEdited(edit, error: "edit rejected: \(problem)") {
                        logger.info("edited broadcast failed validation", metadata: ["broadcast.id": "\(edit.id)", "error": "\(problem)"])
                    }
                } else {
                    try await store.acceptEdit(edit)
                    plans[edit.id] = nil  // a broadcast still being expanded continues with the edited channel
                }
            } catch let error as PostgresError where error.isDataError {
                _ = try? await store.failEdited(edit, error: "edit rejected: \(error)")
            } catch let error as PostgresError where !error.isTransient && error.code != .connectionClosed {
                logger.info("scheduler could not validate an edited broadcast; will retry",
                            metadata: ["broadcast.id": "\(edit.id)", "error": "\(error)"])
            }
        }
    }

    /// Finishes done broadcasts and ends the unsent messages of cancelled and failed ones.
    mutating func maintain() async throws {
        do {
            for id in try await store.failUnreachableSendAt() {
                logger.info("broadcast failed: send_at is infinite", metadata: ["broadcast.id": "\(id)"])
            }
            let completed = try await store.completeFinished()
            for id in completed { logger.debug("broadcast completed", metadata: ["broadcast.id": "\(id)"]) }
            let batch = 10_000
            // A bounded number of batches per tick, so starting due broadcasts is never held up long.
            for _ in 0..<20 {
                try Task.checkCancellation()
                guard try await store.endUnsent(limit: batch) == batch else { break }
            }
            // broadcast_report's counters grow by one delta row per write statement; fold them
            // every few seconds (herald webhooks does too; the function is safe concurrently), so
            // deployments without a webhooks server keep the report query small as well.
            try await HistoryPruner.fromEnvironment.step(on: store.connection, logger: logger)  // ops: history retention (HistoryPruner.swift)
            if lastCompaction.map({ clock.now - $0 >= .seconds(5) }) ?? true {
                lastCompaction = clock.now
                _ = try await ReportStore().compactCounts(on: store.connection)
                // Receipts that never matched a message are kept only for a while (security).
                _ = try await UnmatchedReceiptRetention(environment: ProcessInfo.processInfo.environment).prune(on: store.connection, logger: logger)
            }
        } catch let error as PostgresError where !error.isTransient && error.code != .connectionClosed {
            logger.info("scheduler maintenance failed; will retry", metadata: ["error": "\(error)"])
        }
    }
}
