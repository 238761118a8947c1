import Foundation
import HeraldProviders
import HeraldCore
import HeraldTransport

/// The HTTP version the worker's transport speaks (HeraldTransport's ``HTTPVersionPreference``).
public typealias WorkerHTTPVersion = HTTPVersionPreference

/// How a ``Worker`` runs. Every field has a default chosen with `scripts/bench-latency` (many
/// slow channels at their rate, one unlimited channel at and away from zero latency), so that a
/// worker started with no flags does as well as the measured alternatives.
///
/// Sizing follows Little's law: messages per second = sends in flight / provider latency. At
/// 200 ms, 20,000 msg/s needs 4,000 sends in flight, and more while answers queue on a busy
/// machine, so ``maxInFlight`` is in the thousands; the number of claiming lanes does not bound
/// throughput any more (a lane never waits for a provider), it only bounds how many claims are in
/// progress at once. One unlimited channel at 200 ms ran into a per-channel cap of 3,072 at
/// 11,700 msg/s (about 0.26 s a send once answers queue); with 4,096 or more it was bound by CPU
/// instead. On a machine twice as fast the cap of 4,096 binds first (about 18,000 msg/s at
/// 0.226 s a send), and a window of 6,144 that lifts it to 22,000 peaks at 165 MB over HTTPS at
/// 1,000 channels. The default window, 4,608, is the widest whose peak RSS stays under 150 MB at 1,000
/// slow channels over HTTPS as well as plain HTTP (140–142 MB and about 125 MB; 5,120 reached
/// 153 MB over HTTPS): every send in flight holds an easy handle and its buffers, and over
/// HTTP/1.1 a connection (`scripts/bench-latency`; BENCHMARKS.md, "Slow providers").
public struct WorkerConfiguration: Sendable {
    /// `DATABASE_URL`, or nil for libpq's `PG*` variables.
    public var databaseURL: String?
    /// This worker's name in `jobs.lease_owner`; unique per process.
    public var workerID: String
    /// Jobs claimed per round trip at most.
    public var batchSize: Int = 200
    /// Claims in progress at once (each: one statement for up to ``channelsPerClaim`` channels,
    /// then the jobs are handed to the transport and the lane goes on without waiting for
    /// answers). Two, because a lane gathers the channels that became ready while its last
    /// statement ran: with four, statements carried fewer channels and 1,000 slow channels went
    /// 5–9% slower (BENCHMARKS.md); one channel is claimed by one lane at a time anyway.
    public var lanes: Int = 2
    /// Channels one claim statement serves at most. With many channels each claim holds only a
    /// bucket's worth of jobs (about 15 at 20 msg/s), so a statement per channel costs the
    /// database as much as the jobs themselves; one statement for several channels shares it.
    public var channelsPerClaim: Int = 16
    /// How long a claim stays valid; a worker that dies loses its jobs to others after this.
    public var lease: Duration = .seconds(60)
    /// After a PostgreSQL restart, how long an expired lease still held by an owner stays
    /// unclaimable, so the live holder can record what it sent while the database was down
    /// before anyone else may send the job again (see ``QueueStore/claim``).
    public var restartGrace: Duration = .seconds(60)
    /// On SIGTERM: how long in-flight sends may take before they are abandoned (and handed back).
    public var shutdownGrace: Duration = .seconds(10)
    /// Serve only these channels (by name); nil serves all.
    public var channels: [String]?
    /// Where secrets named by `*_env` settings are read.
    public var environment: [String: String]
    /// `HERALD_PUBLIC_URL`: Twilio status callbacks point at `{publicURL}/webhooks/twilio`.
    public var publicURL: String?
    /// Sends claimed and not yet answered, over all channels (the transport's window).
    public var maxInFlight: Int = WorkerConfiguration.defaultMaxInFlight
    public static let defaultMaxInFlight = 4608
    /// Sends in flight of one channel at most, whatever its rate: a provider that stops
    /// answering holds at most this many slots until its requests time out, and the other
    /// channels keep the rest. A rate-limited channel is held to far less (see
    /// ``providerLatencyAllowance``), so this share matters only for channels whose rate is
    /// beyond what one worker sends. nil: ``defaultMaxInFlightPerChannel(window:)`` of
    /// ``maxInFlight``; ``perChannelLimit`` is the value in force.
    public var maxInFlightPerChannel: Int?
    /// ``maxInFlightPerChannel`` when set, else ``defaultMaxInFlightPerChannel(window:)`` of ``maxInFlight``.
    public var perChannelLimit: Int { maxInFlightPerChannel ?? Self.defaultMaxInFlightPerChannel(window: maxInFlight) }

    /// One channel's most in flight when not configured: 4,096, or all of a larger window but a
    /// ninth, which the other channels keep (8,192 of 9,216).
    ///
    /// Why it grows with the window: one unlimited channel at 200 ms is bound by this cap before
    /// anything else on a fast machine (about 18,000 msg/s at 4,096 over 0.226 s a send;
    /// BENCHMARKS.md, "A faster machine"). Ops who widen `--max-in-flight` there should get a
    /// wider channel with it, not find the cap where it was. At and below the default window the
    /// cap is the fixed 4,096 it always was (the whole window when that is smaller): the default
    /// leaves 512 of 4,608 to the other channels, a ninth.
    public static func defaultMaxInFlightPerChannel(window: Int) -> Int {
        max(4096, window - window / 9)
    }
    /// The slowest provider answer a channel's full rate is sized for: a channel limited to r
    /// msg/s with a burst of b holds at most b + r × this in flight, which is all it needs to send
    /// at its rate while its provider answers within this, and all a provider that stops
    /// answering can hold (a channel at 20 msg/s: 120 slots, not the window's thousands).
    public var providerLatencyAllowance: Duration = .seconds(5)
    /// HTTP/2 connections to one provider host per transport thread at most: sends beyond what
    /// their streams hold wait for one to free up instead of each opening a TLS connection (see
    /// ``CurlTransport``'s pools). Raise it for a provider that allows few streams per connection.
    public var maxConnectionsPerHost: Int = CurlTransport.connectionsPerHost
    /// Sends in flight at most that each hold a TLS connection of their own: to HTTPS providers
    /// without HTTP/2 (or with ``httpVersion`` `.http1`) and to SMTP servers. Each holds about
    /// 65 KB, six times a plain HTTP/1.1 send, so they get a smaller share than the window; the
    /// rest of their claims wait for a connection (see ``CurlTransport/defaultMaxTLSConnections``).
    /// One channel holds at most its share of them (896 of 1,024 with the other defaults, see
    /// ``InFlightWindow``), so a provider that stops answering leaves the other channels some.
    public var maxTLSConnections: Int = WorkerConfiguration.defaultMaxTLSConnections
    public static let defaultMaxTLSConnections = CurlTransport.defaultMaxTLSConnections
    /// Sends each transport thread that opens a connection per send lets into libcurl while its
    /// providers answer within 50 ms, more as they slow, up to its whole share of the window
    /// (see `TransferAdmission` in HeraldTransport and BENCHMARKS.md, "Transfers let into
    /// libcurl"); nil: all of its share at once, always. A provider that answers in milliseconds
    /// (one on the same network) needs few sends in flight, and the thousands of connections a
    /// full window opens to it cost the worker CPU; a slow one gets the whole window within
    /// a few hundred milliseconds.
    public var admissionFloor: Int? = WorkerConfiguration.defaultAdmissionFloor
    public static let defaultAdmissionFloor = CurlTransport.suggestedAdmissionFloor
    /// Fallback poll when no notification arrives (retries falling due, lost notifications).
    public var idlePoll: Duration = .seconds(1)
    /// Whole-transfer timeout of one provider request.
    public var requestTimeout: Duration = .seconds(15)
    /// Backoff between retries of one message.
    public var backoff = Backoff(base: .seconds(1), cap: .seconds(300))
    /// HTTP/1.1 keep-alive, HTTP/2 where the provider offers it (default), or h2c with prior knowledge.
    public var httpVersion: WorkerHTTPVersion = .automatic
    /// `HERALD_PROVIDER_CA_FILE`: a PEM file of certificate authorities providers' HTTPS servers
    /// are verified with instead of the system's (an egress proxy that re-signs, a local
    /// stand-in for a provider); nil for the system's trust store.
    public var providerAuthorityFile: String?
    /// Outcomes written per statement at most.
    public var recordBatchSize: Int = 2000
    /// Outcomes the completer writes as soon as it holds them. With fewer in hand it first waits
    /// ``recordLinger`` (whatever arrives meanwhile goes into the same statement). Every
    /// statement that records outcomes costs a commit and some fixed work whatever its size.
    /// Without the wait two workers on one 2-core machine wrote 100–115 outcomes a statement;
    /// waiting 10 ms for 200 halved their statements and sent a median 6% more messages a second
    /// (nine paired runs; one worker: no change beyond the spread; BENCHMARKS.md, "Against the
    /// code before issue 15").
    public var recordGatherTarget: Int = 200
    /// See ``recordGatherTarget``; `.zero` writes whatever has arrived at once.
    public var recordLinger: Duration = .milliseconds(10)

    public init(databaseURL: String?, workerID: String = WorkerConfiguration.defaultWorkerID(),
                environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.databaseURL = databaseURL
        self.workerID = workerID
        self.environment = environment
        self.publicURL = environment["HERALD_PUBLIC_URL"]
        self.providerAuthorityFile = environment["HERALD_PROVIDER_CA_FILE"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// What providers read from this process: secrets, the public URL, the request timeout and
    /// the hosts channels may reach (`HERALD_ALLOWED_HOSTS`).
    var providerEnvironment: ProviderEnvironment {
        ProviderEnvironment(variables: environment, publicURL: publicURL, requestTimeout: requestTimeout)
    }

    /// `host-pid-random`, unique across machines and restarts.
    public static func defaultWorkerID() -> String {
        "\(ProcessInfo.processInfo.hostName)-\(getpid())-\(String(UInt32.random(in: 0...UInt32.max), radix: 36))"
    }

    /// The last instant a send of a batch claimed at `claimedAt` may start: late enough to use
    /// most of the lease, early enough that the send times out (``requestTimeout``) a second
    /// before the lease ends. Past it, another worker may hold the job, so a send started later
    /// could go out twice; such jobs are handed back unsent instead. (With a lease too short for
    /// that margin, the first quarter of the lease is used; `herald worker` refuses such settings.)
    func sendDeadline(claimedAt: ContinuousClock.Instant) -> ContinuousClock.Instant {
        let window = lease - requestTimeout - .seconds(1)
        return claimedAt + max(window, lease / 4)
    }
}
