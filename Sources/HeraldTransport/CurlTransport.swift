import CCurl
import Foundation
import HeraldCore
import Logging
import Synchronization

/// Asynchronous HTTP and SMTP over libcurl: dedicated threads each drive a `CURLM` multi handle
/// (one per 1,024 transfers of the window, see ``shards(maxInFlight:)``, in three pools, see
/// ``Pool``), callers `await` their transfers or hear about each as it ends.
///
/// Callers on any thread enqueue a transfer and wake a thread with `curl_multi_wakeup`; the
/// threads of each pool start at most `maxInFlight` transfers at a time between them (the rest
/// wait, in order), and resume each caller's continuation when its transfer ends. Easy handles are reused
/// and connections kept alive in each multi handle's connection cache, so steady traffic to one
/// provider runs over warm connections.
///
/// ```swift
/// let transport = CurlTransport(logger: logger)
/// defer { transport.shutdown() }
/// let response = try await transport.execute(HTTPRequest(url: "https://example.com/x", body: body))
/// ```
///
/// - Important: Call ``shutdown()`` when done: it fails whatever is still pending and joins the
///   thread. (Dropping the last reference also shuts the transport down.)
public final class CurlTransport: Sendable {
    /// Counters since the transport started.
    public struct Statistics: Sendable, Equatable {
        /// Transfers that reached libcurl and ended (successfully or not).
        public var transfersCompleted: Int
        /// New connections libcurl opened (`CURLINFO_NUM_CONNECTS` summed): far below
        /// ``transfersCompleted`` when connections are reused.
        public var connectionsOpened: Int
        /// Sockets in the engines' epoll sets, as of each engine's last pass: those of transfers
        /// in flight and of idle kept-alive connections (see `ccurl_reactor`).
        public var socketsWatched: Int = 0
    }

    /// Independent engines, each with its own thread, multi handle and connection cache; a
    /// submission goes whole to the first with fewer than ``defaultFillLevel`` outstanding, else to the one with the
    /// fewest transfers outstanding.
    ///
    /// Why more than one: libcurl 7.88 (Debian 12's) spends time proportional to *all* the
    /// transfers and connections of a multi handle on each event: every `curl_multi_perform`
    /// walks every transfer, every new transfer walks the host's connections for one to reuse,
    /// and every `curl_multi_remove_handle` walks the whole connection cache (for a
    /// connect-only connection Herald never makes). With thousands of slow requests in flight
    /// that made the transport thread more than half of the worker's CPU (BENCHMARKS.md, "Slow
    /// providers"). Shards of at most ``transfersPerShard`` divide each of those walks, and
    /// within an engine that opens a connection per transfer, multi handles of at most
    /// ``CurlEngine/transfersPerMulti`` divide the connection walks again without more threads.
    ///
    /// The engines form three pools, in ``Pool``'s order (a ticket's shard indexes this array):
    /// see ``Pool``.
    private let engines: [CurlEngine]
    private let multiplexingEngines: Range<Int>
    private let connectionPerTransferEngines: Range<Int>
    private let tlsConnectionPerTransferEngines: Range<Int>
    private let httpVersion: HTTPVersionPreference
    /// HTTPS origins that answered over HTTP/1.x: their transfers go to the TLS connection-per-transfer pool.
    private let http1Origins: OriginSet

    /// Which engines a transfer goes to.
    ///
    /// libcurl 7.88 opens a new connection for every transfer that arrives while all of its
    /// host's HTTP/2 connections are full or still in their TLS handshake (`CURLOPT_PIPEWAIT`
    /// waits only while it is unknown whether the host multiplexes at all). Over HTTPS in
    /// `scripts/bench-latency` that made 637 TLS connections for 50,000 requests, 620 of them
    /// used once, and up to 880 open at a time: the worker's memory went over 200 MB and its
    /// CPU to handshakes. Engines that cap connections per host (`CURLMOPT_MAX_HOST_CONNECTIONS`,
    /// ``connectionsPerHost``) make libcurl queue such a transfer until a stream frees up; the cap
    /// would throttle transfers that need a connection each, so those have engines without it.
    ///
    /// Transfers that each hold a TLS connection of their own have a pool of their own with a
    /// smaller window (``defaultMaxTLSConnections``): see there.
    enum Pool: Equatable {
        /// HTTPS in the automatic mode (HTTP/2 by ALPN) and every HTTP transfer with prior
        /// knowledge: capped at ``connectionsPerHost`` connections per host and engine.
        case multiplexing
        /// Plain HTTP in the automatic and HTTP/1.1 modes: one connection per transfer in flight.
        case connectionPerTransfer
        /// HTTPS in the HTTP/1.1 mode, HTTPS to an origin that answered over HTTP/1.x, and SMTP
        /// (STARTTLS or `smtps://`; a relay that offers no TLS counts the same): one TLS
        /// connection per transfer in flight, at most `maxTLSConnections` of them over the
        /// pool's engines.
        case tlsConnectionPerTransfer
    }

    /// Connections per host of a multiplexing engine by default: with at most ``transfersPerShard``
    /// transfers per engine, 16 connections hold them all where the server allows 64 streams
    /// per connection or more (nginx's default is 128; libcurl asks for up to 250).
    public static let connectionsPerHost = 16

    /// Transfers in flight of the ``Pool/tlsConnectionPerTransfer`` pool by default; the rest of
    /// the window waits in the pool's queue, in order, without a connection.
    ///
    /// Each such transfer holds a TLS connection, and libcurl 7.88 gives every connection a TLS
    /// context of its own: about 65 KB of libcurl's and OpenSSL's memory a transfer, against
    /// about 11 KB for a plain HTTP/1.1 one and less for an HTTP/2 stream. A window of 4,096 sends
    /// to an HTTPS provider without HTTP/2 took the worker to 331 MB at one channel and 200 ms;
    /// 2,048 to 182 MB; 1,024 to 119 MB (`TLS=1 WORKER_FLAGS="--http-version http1"
    /// scripts/bench-latency`; BENCHMARKS.md, "One TLS connection a send").
    public static let defaultMaxTLSConnections = 1024

    /// What the worker passes as ``init(maxInFlight:httpVersion:authorityFile:maxConnectionsPerHost:maxTLSConnections:admissionFloor:fillLevel:clock:logger:)``'s
    /// `admissionFloor` unless told otherwise: what the worker held in flight before issue 15,
    /// and the better of the two fixed limits tried at zero latency, 128 and 512 (see
    /// ``TransferAdmission``).
    public static let suggestedAdmissionFloor = TransferAdmission.defaultFloor

    /// The pool for a submission whose first transfer is `request`.
    static func pool(for request: TransportRequest, httpVersion: HTTPVersionPreference,
                     answersOverHTTP1: (String) -> Bool) -> Pool {
        guard case .http(let http) = request else { return .tlsConnectionPerTransfer }
        let origin = Self.origin(of: http.url)
        let secure = origin.hasPrefix("https://")
        switch httpVersion {
        case .http1: return secure ? .tlsConnectionPerTransfer : .connectionPerTransfer
        case .http2PriorKnowledge: return .multiplexing
        case .automatic:
            guard secure else { return .connectionPerTransfer }
            return answersOverHTTP1(origin) ? .tlsConnectionPerTransfer : .multiplexing
        }
    }

    /// A URL's scheme and authority, lowercased: `https://graph.facebook.com:443`-style keys for
    /// what an origin was seen to speak.
    static func origin(of url: String) -> String {
        let lower = url.lowercased()
        guard let schemeEnd = lower.range(of: "://") else { return lower }
        let rest = lower[schemeEnd.upperBound...]
        let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        return String(lower[..<end])
    }

    /// In-flight transfers per engine at most; a transport with a larger window gets more
    /// engines (at most ``maxShards``).
    static let transfersPerShard = 1024
    static let maxShards = 8
    /// Transfers outstanding on an engine below which it takes a submission even when a later
    /// engine has fewer: engines fill in order. Spread evenly, a window of 6,144 put the
    /// zero-latency shape's few transfers on six threads that each woke for a handful, and it
    /// ran at 13,319 msg/s against 20,701 filled in order; with thousands in flight every engine
    /// is past this level and the least loaded one is used (BENCHMARKS.md, "Slow providers").
    public static let defaultFillLevel = transfersPerShard / 2
    /// See ``defaultFillLevel``.
    private let fillLevel: Int

    /// How many engines a window of `maxInFlight` transfers is split over.
    static func shards(maxInFlight: Int) -> Int {
        min(maxShards, max(1, (maxInFlight + transfersPerShard - 1) / transfersPerShard))
    }

    /// Starts the transport's threads.
    /// - Parameters:
    ///   - maxInFlight: Most transfers handed to libcurl at once in each ``Pool`` (the TLS one:
    ///     `maxTLSConnections` when fewer); the rest queue up in order.
    ///   - logger: Used for debug-level messages about failed transfers; nothing above debug.
    ///   - httpVersion: HTTP/1.1 keep-alive, HTTP/2 where offered (the default), or HTTP/2 with
    ///     prior knowledge.
    ///   - authorityFile: A PEM file of certificate authorities that HTTPS servers are verified
    ///     with instead of the system's (`CURLOPT_CAINFO`): an egress proxy that re-signs, or a
    ///     provider stand-in with a private CA. Verification itself is never turned off. Mail
    ///     submissions use their channel's own `ca_file`.
    ///   - maxConnectionsPerHost: Connections to one host per multiplexing engine at most
    ///     (``Pool/multiplexing``); transfers beyond what their streams hold wait for one to free up.
    ///   - maxTLSConnections: Transfers in flight at most that each hold a TLS connection
    ///     (``Pool/tlsConnectionPerTransfer``), when below `maxInFlight`; see
    ///     ``defaultMaxTLSConnections``.
    ///   - admissionFloor: Transfers each engine of the connection-per-transfer pools lets into
    ///     libcurl while its providers answer within 50 ms, more as they slow (see
    ///     ``TransferAdmission``); nil (the default here; the worker sets
    ///     ``suggestedAdmissionFloor``): all of its share at once, always. Measured where
    ///     providers answer at once: 1.03–1.19 times the msg/s of two workers on one machine
    ///     (BENCHMARKS.md, "Transfers let into libcurl").
    ///   - fillLevel: An engine with fewer transfers outstanding than this takes the next
    ///     submission of its pool before any later one (see ``defaultFillLevel``); 0 always picks
    ///     the least loaded.
    ///   - clock: What start deadlines (``submit(_:startingBy:onDeparture:onCompletion:)``) are compared
    ///     with: the clock of whoever computes them. libcurl's own timeouts run on real time.
    public init(maxInFlight: Int = 128, httpVersion: HTTPVersionPreference = .automatic, authorityFile: String? = nil,
                maxConnectionsPerHost: Int = CurlTransport.connectionsPerHost,
                maxTLSConnections: Int = CurlTransport.defaultMaxTLSConnections,
                admissionFloor: Int? = nil,
                fillLevel: Int = CurlTransport.defaultFillLevel,
                clock: any HeraldClock = ContinuousClock(), logger: Logger) {
        self.fillLevel = max(0, fillLevel)
        _ = CurlGlobal.initialized
        let window = max(1, maxInFlight)
        let count = Self.shards(maxInFlight: window)
        let origins = OriginSet()
        // A window split as evenly as it goes: the shards' limits add up to it.
        let limit = { (window: Int, count: Int, shard: Int) in window / count + (shard < window % count ? 1 : 0) }
        let learn: (@Sendable (String) -> Void)? = httpVersion == .automatic ? { @Sendable origin in origins.insert(origin) } : nil
        let multiplexing: [CurlEngine] = httpVersion == .http1 ? [] : (0..<count).map { (shard: Int) -> CurlEngine in
            CurlEngine(maxInFlight: limit(window, count, shard), httpVersion: httpVersion, authorityFile: authorityFile, clock: clock,
                       logger: logger, maxConnectionsPerHost: max(1, maxConnectionsPerHost), onHTTP1Origin: learn)
        }
        let connectionPerTransfer: [CurlEngine] = (0..<count).map { (shard: Int) -> CurlEngine in
            CurlEngine(maxInFlight: limit(window, count, shard), httpVersion: httpVersion, authorityFile: authorityFile,
                       clock: clock, logger: logger, admissionFloor: admissionFloor)
        }
        let tlsWindow = min(window, max(1, maxTLSConnections))
        let tlsCount = Self.shards(maxInFlight: tlsWindow)
        let tlsConnectionPerTransfer: [CurlEngine] = (0..<tlsCount).map { (shard: Int) -> CurlEngine in
            CurlEngine(maxInFlight: limit(tlsWindow, tlsCount, shard), httpVersion: httpVersion, authorityFile: authorityFile,
                       clock: clock, logger: logger, admissionFloor: admissionFloor)
        }
        engines = multiplexing + connectionPerTransfer + tlsConnectionPerTransfer
        multiplexingEngines = 0..<multiplexing.count
        connectionPerTransferEngines = multiplexing.count..<(multiplexing.count + connectionPerTransfer.count)
        tlsConnectionPerTransferEngines = connectionPerTransferEngines.upperBound..<engines.count
        self.httpVersion = httpVersion
        http1Origins = origins
        for engine in engines { engine.start() }
    }

    deinit {
        for engine in engines { engine.shutdown() }
    }

    /// The first engine of `requests`' pool below its fill level, else the one with the fewest
    /// transfers outstanding, and its index.
    private func leastLoaded(for requests: [TransportRequest]) -> (CurlEngine, Int) {
        leastLoaded(in: pool(for: requests))
    }

    /// The pool a submission of `requests` goes to.
    private func pool(for requests: [TransportRequest]) -> Pool {
        requests.first.map {
            Self.pool(for: $0, httpVersion: httpVersion, answersOverHTTP1: http1Origins.contains)
        } ?? .connectionPerTransfer
    }

    private func leastLoaded(in pool: Pool) -> (CurlEngine, Int) {
        let range = switch pool {
        case .multiplexing: multiplexingEngines
        case .connectionPerTransfer: connectionPerTransferEngines
        case .tlsConnectionPerTransfer: tlsConnectionPerTransferEngines
        }
        var best = range.lowerBound, bestLoad = Int.max
        for index in range {
            let load = engines[index].outstanding
            if load < fillLevel { return (engines[index], index) }
            if load < bestLoad { (best, bestLoad) = (index, load) }
        }
        return (engines[best], best)
    }

    /// Performs one HTTP request and returns the complete response, whatever its status.
    ///
    /// An HTTP error status (4xx, 5xx) is a response, not an error: only a transfer that did not
    /// produce a response throws.
    /// - Throws: ``TransportError``: `.notSent` when the request provably never left (DNS,
    ///   connection refused, TLS handshake, still queued when cancelled or shut down);
    ///   `.ambiguous` when it may have reached the server (timeout or reset mid-transfer,
    ///   cancelled or shut down while in flight). Task cancellation aborts the transfer and throws
    ///   an error whose ``TransportError/isCancelled`` is true.
    public func execute(_ request: HTTPRequest) async throws(TransportError) -> HTTPResponse {
        try await leastLoaded(for: [.http(request)]).0.perform([.http(request)])[0].result.get()
    }

    /// Hands one mail to an SMTP server (`smtp://` with opportunistic STARTTLS, or `smtps://`).
    ///
    /// Returns when the server accepted the message (`250` after the data).
    /// - Throws: ``TransportError``: `.smtpRejected` with ``TransportError/smtpCode`` when the
    ///   server refused (4xx: try later; 5xx: permanent), including a failed login (535);
    ///   otherwise `.notSent` / `.ambiguous` as for ``execute(_:)``.
    public func send(_ mail: SMTPEnvelope) async throws(TransportError) {
        _ = try await leastLoaded(for: [.smtp(mail)]).0.perform([.smtp(mail)])[0].result.get()
    }

    /// Performs a whole batch of transfers at once and returns when every one has ended, each
    /// outcome at its request's index.
    ///
    /// One suspension for the batch instead of one task and one continuation per transfer: the
    /// worker hands over a claimed batch in one call, which keeps the Swift runtime's share of a
    /// message small (scripts/bench, HTTP: see BENCHMARKS.md). Failures are per transfer, with
    /// the same meaning as in ``execute(_:)`` and ``send(_:)``; an SMTP transfer that was
    /// accepted answers with the server's final reply code as `status` and an empty body.
    /// Task cancellation aborts every transfer of the batch that has not ended.
    ///
    /// - Parameter deadline: The last instant a transfer of the batch may *start* (wait for a
    ///   free slot, then connect and send). One still queued then fails at once with
    ///   ``TransportError/isNotStarted`` and never reaches the server; transfers already under way
    ///   go on until they end or time out. The worker sets it so that every send that starts
    ///   can time out before the claim's lease runs out.
    public func perform(_ requests: [TransportRequest], startingBy deadline: ContinuousClock.Instant? = nil) async -> [TransportOutcome] {
        await leastLoaded(for: requests).0.perform(requests, deadline: deadline)
    }

    /// Hands transfers to the transport and returns at once; `onCompletion(index, outcome)` is
    /// called once per transfer, as each one ends, with its index in `requests`.
    ///
    /// This is how the worker keeps thousands of sends in flight without a task per send and
    /// without waiting for the slowest send of a batch: each answer is recorded as it arrives.
    /// `onCompletion` runs on the transport's thread (or, when the transport refuses the whole
    /// submission because it is shut down, on the calling thread before `submit` returns): keep
    /// it short, never block in it.
    ///
    /// - Parameters:
    ///   - deadline: as in ``perform(_:startingBy:)``: a transfer still queued then fails with
    ///     ``TransportError/isNotStarted`` and never reaches the server.
    ///   - onDeparture: called once per transfer, before its `onCompletion`, on the transport's
    ///     thread: `departed` is true when its connection was ready and the request was about to
    ///     be sent, false when it ended before that. A transfer can wait in the transport for a
    ///     connection (or its TLS handshake) for a long time, so this, not `submit`, is when a
    ///     provider sees it. Keep it as short as `onCompletion`.
    /// - Returns: A ticket for ``withdrawQueued(_:)`` and ``cancel(_:)``.
    @discardableResult
    public func submit(_ requests: [TransportRequest], startingBy deadline: ContinuousClock.Instant? = nil,
                       onDeparture: (@Sendable (_ index: Int, _ departed: Bool) -> Void)? = nil,
                       onCompletion: @escaping @Sendable (_ index: Int, _ outcome: TransportOutcome) -> Void) -> TransportTicket {
        let pool = pool(for: requests)
        let (engine, shard) = leastLoaded(in: pool)
        var ticket = engine.submit(requests, deadline: deadline, onDeparture: onDeparture, onCompletion: onCompletion)
        ticket.shard = shard
        ticket.holdsTLSConnectionEach = pool == .tlsConnectionPerTransfer
        return ticket
    }

    /// Takes back the transfers of a submission that are still queued (waiting for a free slot):
    /// each completes with ``TransportError/isNotStarted`` (``TransportError/withdrawnCode``) and
    /// never reaches the server. Transfers already under way go on. The worker withdraws a
    /// broadcast's queued sends when it is paused or cancelled.
    public func withdrawQueued(_ ticket: TransportTicket) {
        engines[ticket.shard].withdrawQueued(ticket)
    }

    /// Aborts every transfer of a submission that has not ended: queued ones complete as not
    /// started, those in flight as `.ambiguous` (both with ``TransportError/isCancelled``).
    public func cancel(_ ticket: TransportTicket) {
        engines[ticket.shard].cancel(ticket)
    }

    /// Queued transfers (waiting for a free slot) and transfers in flight, as of the transport
    /// thread's last pass.
    public var load: (queued: Int, inFlight: Int) {
        engines.reduce(into: (queued: 0, inFlight: 0)) { sum, engine in
            let load = engine.load
            sum.queued += load.queued
            sum.inFlight += load.inFlight
        }
    }

    /// Fails every queued and in-flight transfer (``TransportError/isShutdown``), stops and joins
    /// the thread. Idempotent; later calls to ``execute(_:)`` and ``send(_:)`` throw at once.
    ///
    /// - Important: Blocks the calling thread until the transport's thread has exited (normally
    ///   well under a millisecond per in-flight transfer).
    public func shutdown() {
        for engine in engines { engine.shutdown() }
    }

    /// Counters since the transport started.
    public var statistics: Statistics {
        engines.reduce(into: Statistics(transfersCompleted: 0, connectionsOpened: 0)) { sum, engine in
            let statistics = engine.statistics
            sum.transfersCompleted += statistics.transfersCompleted
            sum.connectionsOpened += statistics.connectionsOpened
            sum.socketsWatched += statistics.socketsWatched
        }
    }
}


/// The HTTPS origins seen answering over HTTP/1.x, shared by the transport and its engines.
private final class OriginSet: Sendable {
    private let origins = Mutex<Set<String>>([])
    func insert(_ origin: String) { origins.withLock { _ = $0.insert(origin) } }
    func contains(_ origin: String) -> Bool { origins.withLock { $0.contains(origin) } }
}
