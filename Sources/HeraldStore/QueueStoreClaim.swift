import Foundation
import HeraldCore
import HeraldPostgres

/// The worker's claim: due jobs of several broadcasts, each on a channel of its own, with the
/// channels' rate tokens and the lease, in one statement.
extension QueueStore {
    /// What one claim brought back.
    public struct Claim: Sendable {
        /// The claimed jobs (empty when nothing was due or the channel had no tokens).
        public var jobs: [ClaimedJob]
        /// Tokens the channel's bucket granted (≥ jobs.count; the rest went back).
        public var granted: Int
        /// When the channel's bucket is worth asking again, when `granted` was 0.
        public var retryAfter: Duration
    }

    /// One broadcast's part of a claim: up to `limit` due jobs of `broadcastID` on `channelID`.
    public struct ClaimRequest: Sendable, Equatable {
        public var broadcastID: Int64
        public var channelID: Int64
        /// The channel's kind, for the opt-out re-check.
        public var kind: ChannelKind
        /// Tokens asked for (at most this many jobs).
        public var limit: Int
        /// How many due jobs the statement locks and looks at, at least `limit`. Equal to
        /// `limit`, the statement looks at exactly as many as the bucket grants (often fewer than
        /// asked: a channel's bucket refills while its last batch is out). More than `limit` pays
        /// only for a broadcast with a send window, whose due jobs may turn out closed and be moved
        /// to their next opening; every row scanned is locked, so a scan above what the bucket
        /// grants costs the database for nothing.
        public var scanLimit: Int
        /// Custom fields its templates use (read from the contact's attributes).
        public var attributeKeys: [String]

        public init(broadcastID: Int64, channelID: Int64, kind: ChannelKind, limit: Int, scanLimit: Int? = nil,
                    attributeKeys: [String]) {
            self.broadcastID = broadcastID
            self.channelID = channelID
            self.kind = kind
            self.limit = limit
            self.scanLimit = max(limit, scanLimit ?? limit)
            self.attributeKeys = attributeKeys
        }
    }

    /// Claims up to `limit` due jobs of one broadcast: ``claim(on:requests:lease:restartGrace:owner:)``
    /// with one request.
    public func claim(on connection: PostgresConnection, broadcastID: Int64, channelID: Int64, kind: ChannelKind, limit: Int,
                      scanLimit: Int? = nil, lease: Duration, restartGrace: Duration = .seconds(60), owner: String,
                      attributeKeys: [String]) async throws -> Claim {
        let request = ClaimRequest(broadcastID: broadcastID, channelID: channelID, kind: kind, limit: limit,
                                   scanLimit: scanLimit, attributeKeys: attributeKeys)
        return try await claim(on: connection, requests: [request], lease: lease, restartGrace: restartGrace, owner: owner)[0]
    }

    /// Claims due jobs for several broadcasts, each on a channel of its own, for `lease`, skipping
    /// rows other workers hold, and takes one token of each channel's rate limit per job, all in
    /// one statement: at 1,000 channels a claim holds about 15 jobs, and a statement's own cost
    /// (its round trip, executor start, commit) weighed as much as its jobs.
    ///
    /// For each request, in order of channel (so two workers lock buckets in the same order and
    /// never deadlock), the statement takes tokens (`herald.take_tokens`), picks at most that many
    /// of the broadcast's due jobs with `FOR UPDATE SKIP LOCKED` on the `jobs_claim` index, moves
    /// their `run_at` to the lease's expiry (which makes the lease), returns unused tokens, and
    /// joins the contact, its re-checked opt-out and the custom fields the templates use. It
    /// commits at once: no transaction stays open while the messages are sent.
    ///
    /// Only a broadcast still `sending` yields jobs, so a pause or cancel stops new claims at
    /// once, whatever a worker's cached list says.
    ///
    /// **Restart grace.** A job whose lease has lapsed while an owner still holds it (its
    /// worker died, or could not reach the database) is claimable only once PostgreSQL has been
    /// up for `restartGrace`: `now() > pg_postmaster_start_time() + restartGrace`. A worker that
    /// sent messages while the database was down keeps their outcomes and writes them, guarded
    /// by `lease_owner` alone, as soon as the database is back; without the grace, another
    /// worker could claim those jobs in the first second after a restart whose outage outlasted
    /// the lease and send them again. River and Oban have no such rule: River's rescuer and
    /// Oban's lifeline re-run jobs whose attempt outlived a timeout (at-least-once), and neither
    /// writes completions guarded by owner after the lease. The grace costs only a delay in
    /// rescuing the jobs of a worker that died across a restart; it does not cover an outage
    /// without a restart (a network partition), where the lease still bounds the wait.
    /// - Precondition: no two requests name the same channel.
    /// - Returns: one claim per request, in the order of `requests`.
    public func claim(on connection: PostgresConnection, requests: [ClaimRequest], lease: Duration,
                      restartGrace: Duration = .seconds(60), owner: String) async throws -> [Claim] {
        guard !requests.isEmpty else { return [] }
        let byChannel = requests.indices.sorted { requests[$0].channelID < requests[$1].channelID }
        precondition(Set(requests.map(\.channelID)).count == requests.count, "one request per channel in a claim")
        let ordered = byChannel.map { requests[$0] }
        var keys: [String] = []
        for request in ordered { for key in request.attributeKeys where !keys.contains(key) { keys.append(key) } }
        let leaseSeconds = lease.inSeconds
        let graceSeconds = restartGrace.inSeconds
        // Prepared: parsed and planned once per connection; every value is a parameter.
        let rows = try await connection.preparedQuery("""
            WITH t AS MATERIALIZED (
                -- In channel order: the buckets are locked in that order. `claim_requests`: the
                -- arrays as rows, through a function whose row estimate does not depend on their
                -- values, so the prepared statement's generic plan costs what a custom one would
                -- and PostgreSQL keeps it instead of planning every claim again.
                -- Each channel is read once, here, and its rate and burst handed to take_tokens.
                -- `OFFSET 0` keeps the channel's subquery from being pulled up into a join, which
                -- the planner makes a hash join over a scan of every channel (0.1 ms a claim at
                -- 1,000 channels, growing with them) that calls take_tokens in the table's order
                -- rather than the requests'. Kept apart, it is a nested loop over the requests in
                -- order, one index probe each.
                SELECT r.*, tk.granted, tk.wait_seconds,
                       coalesce(jsonb_typeof(ch.settings -> 'daily_limit') = 'number', false) AS tier_limited
                FROM herald.claim_requests(\(ordered.map(\.broadcastID))::bigint[], \(ordered.map(\.channelID))::bigint[],
                                           \(ordered.map(\.limit))::int[], \(ordered.map(\.kind.rawValue))::text[],
                                           \(ordered.map(\.scanLimit))::int[]) r
                CROSS JOIN LATERAL (SELECT c.rate_per_second, c.burst, c.settings FROM herald.channels c
                                    WHERE c.id = r.channel_id OFFSET 0) ch
                CROSS JOIN LATERAL herald.take_tokens(r.channel_id, r.wanted, ch.rate_per_second, ch.burst) tk
                ORDER BY r.i
            ), due AS MATERIALIZED (
                -- Per broadcast, by jobs_claim. `opens`: when the recipient's send window is open
                -- next (now when it is open, or when the broadcast has no window: jobs of such
                -- broadcasts carry no time_zone).
                SELECT t.i, d.message_id, d.run_at, d.opens
                FROM t CROSS JOIN LATERAL (
                    SELECT message_id, run_at,
                           CASE WHEN time_zone IS NULL THEN now()
                                ELSE herald.job_send_opening(broadcast_id, time_zone, now()) END AS opens
                    FROM herald.jobs
                    WHERE broadcast_id = t.broadcast_id AND run_at <= now()
                      AND (lease_owner IS NULL OR now() > pg_postmaster_start_time() + make_interval(secs => \(graceSeconds)))
                      AND EXISTS (SELECT 1 FROM herald.broadcasts b WHERE b.id = t.broadcast_id AND b.status = 'sending')
                    ORDER BY run_at
                    -- Every row scanned is locked (a write to its page and to the WAL): only what
                    -- the bucket granted, unless the request asked to look further (a send window).
                    LIMIT CASE WHEN t.scan > t.wanted THEN t.scan ELSE t.granted END
                    FOR UPDATE SKIP LOCKED
                ) d
                WHERE t.granted > 0
            ), held AS (
                -- A window that closed since expansion (or a pause over its end): the job waits,
                -- queued, for the next opening, and no claim looks at it before then.
                -- (By jobs_pkey, as `claimed` below: a join here was planned as a hash of all jobs.)
                UPDATE herald.jobs j SET run_at = (SELECT due.opens FROM due WHERE due.message_id = j.message_id)
                WHERE j.message_id = ANY (ARRAY(SELECT message_id FROM due WHERE due.opens > now()))
            ), picked AS MATERIALIZED (
                -- Per request, at most its grant of the due jobs that are open now (oldest first,
                -- as `due` holds them).
                SELECT t.i, t.channel_id, t.tier_limited, d.message_id
                FROM t CROSS JOIN LATERAL (
                    SELECT due.message_id FROM due WHERE due.i = t.i AND due.opens <= now() LIMIT t.granted
                ) d
                WHERE t.granted > 0
            ), tiered AS MATERIALIZED (
                -- Consent (issue 19): on a channel with a messaging tier (daily_limit), the tier
                -- admits some and puts the rest off; in channel order, as it locks the channel.
                SELECT p.message_id FROM picked p WHERE NOT p.tier_limited
                UNION ALL
                SELECT herald.tier_admit(l.channel_id, ARRAY(SELECT p.message_id FROM picked p WHERE p.i = l.i))
                FROM (SELECT t.i, t.channel_id FROM t WHERE t.tier_limited AND t.granted > 0 ORDER BY t.i) l
            ), claimed AS (
                -- `= ANY (ARRAY(…))`: a probe of jobs_pkey per claimed job. As a join, the planner
                -- took tier_admit's set for 1,000 rows and hashed all of jobs (26 ms a claim at
                -- 80,000 jobs, growing with the table: the bound on many-channel throughput).
                -- Each request is a broadcast of its own, so a job's broadcast says whose it is.
                UPDATE herald.jobs j
                SET run_at = now() + make_interval(secs => \(leaseSeconds)), lease_owner = \(owner), claims = j.claims + 1
                WHERE j.message_id = ANY (ARRAY(SELECT message_id FROM tiered))
                RETURNING j.broadcast_id, j.message_id
            ), refund AS MATERIALIZED (
                SELECT t.i, CASE WHEN t.granted > coalesce(n.claimed, 0)
                                 THEN herald.return_tokens(t.channel_id, t.granted - coalesce(n.claimed, 0)) ELSE 0 END AS returned
                FROM t LEFT JOIN (SELECT c.broadcast_id, count(*)::int AS claimed FROM claimed c GROUP BY c.broadcast_id) n
                       ON n.broadcast_id = t.broadcast_id
            )
            SELECT t.i, t.granted, t.wait_seconds, rf.returned,
                   m.id AS message_id, m.address, m.attempts, m.contact_id, c.first_name, c.last_name, c.phone, c.email,
                   ARRAY(SELECT c.attributes ->> k FROM unnest(\(keys)::text[]) AS k) AS attrs,
                   coalesce(c.last_inbound_at > now() - interval '24 hours', false) AS inside_service_window,
                   EXISTS (SELECT 1 FROM herald.opt_outs o WHERE o.contact_id = m.contact_id AND o.channel_kind = t.kind) AS opted_out,
                   coalesce(m.part_provider_message_ids, '{}') AS sent_parts,
                   c.id IS NULL AS contact_deleted
            FROM t
            JOIN refund rf ON rf.i = t.i
            LEFT JOIN (claimed cl JOIN herald.messages m ON m.id = cl.message_id
                       LEFT JOIN herald.contacts c ON c.id = m.contact_id) ON cl.broadcast_id = t.broadcast_id
            """)
        var claims = [Claim](repeating: Claim(jobs: [], granted: 0, retryAfter: .zero), count: ordered.count)
        for r in rows {
            let index = try r.decode(Int.self, "i") - 1
            claims[index].granted = try r.decode(Int.self, "granted")
            // Bounded: a rate near zero asks for a wait of ~1e20 s, which must not trap.
            let wait = try r.decode(Double.self, "wait_seconds")
            let bounded = wait.isFinite ? min(max(wait, 0), 3600) : 3600
            claims[index].retryAfter = .milliseconds(Int64((bounded * 1000).rounded(.up)))
            guard let messageID = try r.decode(Int64?.self, "message_id") else { continue }
            let values = try r.decode([String?].self, "attrs")
            var attributes: [String: String] = [:]
            for (key, value) in zip(keys, values) where ordered[index].attributeKeys.contains(key) {
                if let value { attributes[key] = value }
            }
            let contact = Contact(id: try r.decode(Int64.self, "contact_id"), firstName: try r.decode(String?.self, "first_name"),
                                  lastName: try r.decode(String?.self, "last_name"), phone: try r.decode(String?.self, "phone"),
                                  email: try r.decode(String?.self, "email"), attributes: attributes)
            claims[index].jobs.append(ClaimedJob(messageID: messageID, address: try r.decode(String?.self, "address"),
                                                 attempts: try r.decode(Int.self, "attempts"), contact: contact,
                                                 optedOut: try r.decode(Bool.self, "opted_out"),
                                                 insideServiceWindow: try r.decode(Bool.self, "inside_service_window"),
                                                 sentParts: try r.decode([String?].self, "sent_parts").compactMap { $0 },
                                                 contactDeleted: try r.decode(Bool.self, "contact_deleted")))
        }
        // Back in the caller's order.
        var result = [Claim](repeating: Claim(jobs: [], granted: 0, retryAfter: .zero), count: requests.count)
        for (position, original) in byChannel.enumerated() { result[original] = claims[position] }
        return result
    }
}
