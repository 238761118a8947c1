import CCurl
import Foundation
import HeraldCore
import Logging
import Synchronization

/// The multi handles one thread drives, and the state that thread owns.
///
/// **Why several multi handles** (reactor engines only; ``lanes(maxInFlight:)``). libcurl 7.88
/// walks a multi handle's connections for each transfer it starts (for an idle one to reuse)
/// and again for each transfer removed after its connection stayed open (for a connect-only
/// one). With a slow provider's hundreds of sends in flight on one thread, each its own
/// connection, those walks cost the worker about 6.8 µs a message at 200 ms. So the engine
/// adds a transfer to the first of its multi handles with fewer than ``laneCapacity`` in flight:
/// a quick provider's few transfers all share the first handle (and its connections), a slow
/// one's spread over handles of at most ``transfersPerMulti`` each, one epoll set and one thread
/// for all.
///
/// **How the thread waits** (``Driver``). An engine without a cap on connections per host (the
/// connection-per-transfer pool: one socket per transfer in flight) waits in a reactor
/// (`ccurl_reactor`, libcurl's socket interface over epoll), so a wake-up costs the sockets that
/// are ready: `curl_multi_poll` hands every socket to `poll(2)` and `curl_multi_perform` walks
/// every transfer on every wake-up (and libcurl 7.88 then polls each transfer's socket once
/// more, one `poll(2)` each: about ten a message at one channel and 200 ms), which with thousands
/// of requests out to slow providers was the worker's main cost. With the reactor the worker
/// spent 68–73 µs a message there against 80–86 (BENCHMARKS.md). A multiplexing engine keeps
/// that poll loop: it has few sockets (16 a host), and libcurl 7.88's socket interface failed to
/// send some request bodies on a shared HTTP/2 connection (BENCHMARKS.md, "libcurl's socket
/// interface").
///
/// `@unchecked Sendable`: `shared` is behind a `Mutex`; `multis` and the reactor are only used by
/// the engine's thread, except ``wake()`` (`curl_multi_wakeup` or `ccurl_reactor_wakeup`, both
/// callable from any thread), which we call only under the lock while the thread has not yet
/// torn them down; every other stored property is touched by the engine's thread alone.
///
/// ThreadSanitizer on Linux does not see `Synchronization.Mutex` (futex-based) as synchronization
/// and reports every hand-over through `shared` as a race; with a pthread-based lock in its place
/// the test suite runs clean under `--sanitize=thread`.
final class CurlEngine: @unchecked Sendable {
    struct Shared {
        var inbox: [Transfer] = []
        var cancelled: [Range<UInt64>] = []
        var withdrawn: [Range<UInt64>] = []
        var nextID: UInt64 = 1
        var closing = false
        var exited = false
        var started = false
        var statistics = CurlTransport.Statistics(transfersCompleted: 0, connectionsOpened: 0)
        var load: (queued: Int, inFlight: Int) = (0, 0)
    }

    let shared = Mutex(Shared())
    let maxInFlight: Int
    let httpVersion: HTTPVersionPreference
    /// A PEM file of certificate authorities HTTPS servers are verified with instead of the
    /// system's; nil for the system's.
    let authorityFile: String?
    /// What start deadlines are compared with (see ``CurlTransport/init(maxInFlight:httpVersion:authorityFile:clock:logger:)``).
    let clock: any HeraldClock
    let logger: Logger
    /// The multi handles: one for the poll loop; for the reactor, one per
    /// ``transfersPerMulti`` of the window (see `ccurl_reactor_add_multi`). A transfer stays in
    /// the one it started in (``Transfer/lane``), and so does the connection it opened.
    let multis: [UnsafeMutableRawPointer]
    /// The first multi handle, the only one of the poll loop.
    var multi: UnsafeMutableRawPointer { multis[0] }
    private let driver: Driver
    private let finished = DispatchGroup()

    /// How the engine's thread waits for its sockets and drives libcurl.
    enum Driver {
        /// `curl_multi_perform` then `curl_multi_poll`: every transfer and socket, each pass.
        case pollLoop
        /// `ccurl_reactor`: the ready sockets and due timeouts only.
        case reactor(OpaquePointer)
    }

    // Engine thread only.
    private var pending: [Transfer] = []
    private var pendingHead = 0
    private var active: [UnsafeMutableRawPointer: Transfer] = [:]
    /// Transfers in flight in each of ``multis``.
    private var activeInLane: [Int]
    /// Transfers in flight in one multi handle before the next one takes new transfers.
    private let laneCapacity: Int
    private var idleHandles: [UnsafeMutableRawPointer] = []
    /// Transfers `collectCompleted` found done, kept between calls so its buffer is reused.
    private var completedScratch: [(Transfer, Result<HTTPResponse, TransportError>, Duration)] = []

    /// Connections to one host at most (`CURLMOPT_MAX_HOST_CONNECTIONS`); nil: no cap.
    private let maxConnectionsPerHost: Int?
    /// How many of `maxInFlight` are let into libcurl now, for an engine that opens a connection
    /// per transfer; nil: all of them (a multiplexing engine, whose transfers share 16
    /// connections a host).
    private var admission: TransferAdmission?
    /// Told the origin (`https://host:port`) of each HTTPS server that answered over HTTP/1.x,
    /// once per origin; nil when the engine does not watch for them.
    private let onHTTP1Origin: (@Sendable (String) -> Void)?
    /// Origins already reported to ``onHTTP1Origin`` (engine thread only).
    private var reportedHTTP1Origins: Set<String> = []

    init(maxInFlight: Int, httpVersion: HTTPVersionPreference, authorityFile: String?, clock: any HeraldClock, logger: Logger,
         maxConnectionsPerHost: Int? = nil, admissionFloor: Int? = nil,
         admissionSlowAfter: Duration = TransferAdmission.defaultSlowAfter, onHTTP1Origin: (@Sendable (String) -> Void)? = nil) {
        self.maxInFlight = maxInFlight
        admission = admissionFloor.map { TransferAdmission(floor: $0, ceiling: maxInFlight, slowAfter: admissionSlowAfter) }
        self.maxConnectionsPerHost = maxConnectionsPerHost
        self.onHTTP1Origin = onHTTP1Origin
        self.httpVersion = httpVersion
        self.authorityFile = authorityFile
        self.clock = clock
        self.logger = logger
        let lanes = maxConnectionsPerHost == nil ? Self.lanes(maxInFlight: maxInFlight) : 1
        func makeMulti() -> UnsafeMutableRawPointer? {
            guard let multi = curl_multi_init() else { return nil }
            // HTTP/2 connections multiplex; HTTP/1.1 ones are reused one request at a time.
            _ = ccurl_multi_setopt_long(multi, CURLMOPT_PIPELINING, Int(CURLPIPE_MULTIPLEX))
            // Up to 250 streams on one HTTP/2 connection where the server allows as many (its own
            // SETTINGS still cap it), not libcurl's 100: over HTTPS with thousands in flight each
            // extra connection holds TLS state, and 250 kept the 1,000-channel shape's peak RSS
            // under 150 MB at the same throughput. 1,000 halved that shape's throughput
            // (BENCHMARKS.md, "Slow providers").
            _ = ccurl_multi_setopt_long(multi, CURLMOPT_MAX_CONCURRENT_STREAMS, 250)
            return multi
        }
        guard let first = makeMulti() else { fatalError("curl_multi_init failed") }
        var multis = [first]
        if let maxConnectionsPerHost {
            _ = ccurl_multi_setopt_long(first, CURLMOPT_MAX_HOST_CONNECTIONS, maxConnectionsPerHost)
            driver = .pollLoop
        } else if let reactor = ccurl_reactor_create(first) {
            driver = .reactor(reactor)
            while multis.count < lanes, let more = makeMulti() {
                guard ccurl_reactor_add_multi(reactor, more) == 0 else {
                    curl_multi_cleanup(more)
                    break
                }
                multis.append(more)
            }
        } else {
            // No descriptors left for an epoll set: the poll loop needs none of its own.
            logger.warning("the transport's epoll set could not be made; this engine polls every socket instead")
            driver = .pollLoop
        }
        self.multis = multis
        activeInLane = Array(repeating: 0, count: multis.count)
        laneCapacity = (maxInFlight + multis.count - 1) / multis.count
        // Keep enough idle connections for each handle's share of the in-flight window (known
        // only now: the reactor may have taken fewer handles than asked).
        for multi in multis { _ = ccurl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, laneCapacity) }
    }

    /// In-flight transfers per multi handle of a reactor engine at most: libcurl 7.88's two walks
    /// a transfer (see `ccurl_reactor_add_multi`) cost the worker about 6.8 µs a message at
    /// 200 ms with some 920 connections in one handle (BENCHMARKS.md, "The 200 ms cost is per
    /// send in flight").
    static let transfersPerMulti = 256
    /// Multi handles a reactor engine asks for at most: as many as `ccurl_reactor_add_multi`
    /// takes (`CCURL_REACTOR_MULTIS`); should it take fewer, the engine goes on with those.
    static let maxLanes = 16

    /// How many multi handles a reactor engine of `maxInFlight` transfers drives.
    static func lanes(maxInFlight: Int) -> Int {
        min(maxLanes, max(1, (maxInFlight + transfersPerMulti - 1) / transfersPerMulti))
    }

    /// The multi handle a new transfer goes to: the first with room, so that a few transfers
    /// in flight (a quick provider) all share one handle's connections.
    private func laneForNewTransfer() -> Int {
        for lane in activeInLane.indices where activeInLane[lane] < laneCapacity { return lane }
        return activeInLane.indices.min { activeInLane[$0] < activeInLane[$1] } ?? 0
    }

    /// Ends the engine thread's wait early. Callers hold the lock and have checked `exited`.
    private func wake() {
        switch driver {
        case .pollLoop: curl_multi_wakeup(multi)
        case .reactor(let reactor): ccurl_reactor_wakeup(reactor)
        }
    }

    func start() {
        finished.enter()
        shared.withLock { $0.started = true }
        let thread = Thread { [self] in
            self.run()
            self.finished.leave()
        }
        thread.name = "herald-curl"
        thread.start()
    }

    var statistics: CurlTransport.Statistics { shared.withLock { $0.statistics } }
    var load: (queued: Int, inFlight: Int) { shared.withLock { $0.load } }

    func shutdown() {
        let wasStarted = shared.withLock { state -> Bool in
            if !state.closing {
                state.closing = true
                if !state.exited { wake() }
            }
            return state.started
        }
        if wasStarted { finished.wait() }
    }

    // MARK: Callers' side

    /// Hands transfers to the engine's thread, or says why not (shut down, or the calling task
    /// is already cancelled); then the caller still owns them.
    private func enqueue(_ transfers: [Transfer], checkCancellation: Bool) -> TransportError? {
        shared.withLock { state in
            if state.closing {
                return TransportError(kind: .notSent, curlCode: TransportError.shutdownCode,
                                      message: "transport is shut down")
            }
            // Checked under the lock: a cancellation after this point finds the transfers
            // queued, one before it is seen here.
            if checkCancellation && Task.isCancelled {
                return TransportError(kind: .notSent, curlCode: TransportError.cancelledCode,
                                      message: "cancelled before it was sent")
            }
            state.inbox.append(contentsOf: transfers)
            wake()
            return nil
        }
    }

    /// Transfers handed to this engine and not yet ended (queued or in flight): what the
    /// transport balances its engines by. Counted when submitted, not on the engine's thread,
    /// so that submissions between two of its passes see each other.
    var outstanding: Int { unfinished.value.load(ordering: .relaxed) }
    private let unfinished = Counter()

    /// Queues transfers and returns at once; `onCompletion` hears about each as it ends.
    func submit(_ requests: [TransportRequest], deadline: ContinuousClock.Instant?, checkCancellation: Bool = false,
                onDeparture: (@Sendable (Int, Bool) -> Void)? = nil,
                onCompletion: @escaping @Sendable (Int, TransportOutcome) -> Void) -> TransportTicket {
        unfinished.value.add(requests.count, ordering: .relaxed)
        let submission = TransferSubmission(deadline: deadline, clock: clock, onDeparture: onDeparture) { [unfinished] index, outcome in
            unfinished.value.subtract(1, ordering: .relaxed)
            onCompletion(index, outcome)
        }
        let count = UInt64(requests.count)
        let firstID = shared.withLock { state -> UInt64 in
            defer { state.nextID &+= count }
            return state.nextID
        }
        let ticket = TransportTicket(ids: firstID..<(firstID &+ count))
        guard !requests.isEmpty else { return ticket }
        var transfers: [Transfer] = []
        transfers.reserveCapacity(requests.count)
        for (index, request) in requests.enumerated() {
            transfers.append(Transfer(id: firstID &+ UInt64(index), request: request, submission: submission, index: index))
        }
        // Refused before the engine saw any of them: this thread is their only user.
        if let refusal = enqueue(transfers, checkCancellation: checkCancellation) {
            for transfer in transfers { transfer.finish(.failure(refusal)) }
        }
        return ticket
    }

    /// Aborts every transfer of `ticket` that has not ended (queued: not started; in flight: ambiguous).
    func cancel(_ ticket: TransportTicket) {
        shared.withLock { state in
            guard !state.exited, !ticket.ids.isEmpty else { return }
            state.cancelled.append(ticket.ids)
            wake()
        }
    }

    /// Takes back the transfers of `ticket` still queued; those under way go on.
    func withdrawQueued(_ ticket: TransportTicket) {
        shared.withLock { state in
            guard !state.exited, !ticket.ids.isEmpty else { return }
            state.withdrawn.append(ticket.ids)
            wake()
        }
    }

    func perform(_ requests: [TransportRequest], deadline: ContinuousClock.Instant? = nil) async -> [TransportOutcome] {
        guard !requests.isEmpty else { return [] }
        let ticket = Mutex<TransportTicket?>(nil)
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<[TransportOutcome], Never>) in
                let collector = BatchCollector(count: requests.count, continuation: continuation)
                let submitted = submit(requests, deadline: deadline, checkCancellation: true) { collector.finish($0, $1) }
                ticket.withLock { $0 = submitted }
                // A cancellation between `enqueue` and now found no ticket to cancel.
                if Task.isCancelled { cancel(submitted) }
            }
        } onCancel: {
            if let t = ticket.withLock({ $0 }) { cancel(t) }
        }
    }

    // MARK: The engine's thread

    private func run() {
        while true {
            // Swapped out, not copied and cleared: `removeAll(keepingCapacity:)` on a buffer we
            // still hold a reference to would allocate a fresh one on every pass of this loop.
            var incoming: [Transfer] = []
            var cancelled: [Range<UInt64>] = []
            var withdrawn: [Range<UInt64>] = []
            let closing = shared.withLock { state in
                if !state.inbox.isEmpty { swap(&incoming, &state.inbox) }
                if !state.cancelled.isEmpty { swap(&cancelled, &state.cancelled) }
                if !state.withdrawn.isEmpty { swap(&withdrawn, &state.withdrawn) }
                state.load = (pendingCount, active.count)
                if case .reactor(let reactor) = driver { state.statistics.socketsWatched = Int(ccurl_reactor_sockets_in_set(reactor)) }
                return state.closing
            }
            if !incoming.isEmpty { pending.append(contentsOf: incoming) }
            if !cancelled.isEmpty { cancel(cancelled) }
            if !withdrawn.isEmpty { withdraw(withdrawn) }
            if closing { break }

            let now = ContinuousClock.now
            reviewAdmission(now)
            startPending(now)
            // At most a second, less while transfers wait for the admission limit to grow.
            let waitMilliseconds = admission?.wait(now, waiting: isAtLimit && pendingCount > 0)
                .map { Int32(min(1000, max(1, ($0 / .milliseconds(1)).rounded(.up)))) } ?? 1000
            switch driver {
            case .pollLoop:
                var running: Int32 = 0
                _ = curl_multi_perform(multi, &running)
                let completed = collectCompleted()
                if completed > 0, pendingCount > 0 {
                    continue  // start the next ones before sleeping
                }
                var ready: Int32 = 0
                _ = curl_multi_poll(multi, nil, 0, waitMilliseconds, &ready)
            case .reactor(let reactor):
                // A transfer added above set libcurl's timeout to now, so the step does not wait
                // before starting it.
                _ = ccurl_reactor_step(reactor, waitMilliseconds)
                collectCompleted()
            }
        }
        tearDown()
    }

    private var pendingCount: Int { pending.count - pendingHead }

    private func popPending() -> Transfer? {
        guard pendingHead < pending.count else { return nil }
        let transfer = pending[pendingHead]
        pendingHead += 1
        if pendingHead > 256, pendingHead * 2 > pending.count {
            pending.removeFirst(pendingHead)
            pendingHead = 0
        }
        return transfer
    }

    /// Transfers let into libcurl at most, now.
    private var limit: Int { admission?.limit ?? maxInFlight }
    private var isAtLimit: Bool { active.count >= limit }

    /// Lets ``admission`` look at the oldest transfer in flight when its check is due, at most
    /// every 25 ms. The walk over those in flight stops at the first one out for `slowAfter` or
    /// longer, which decides as the oldest would: with a slow provider's thousands in flight
    /// that is one of the first few, and a quick provider's are few.
    private func reviewAdmission(_ now: ContinuousClock.Instant) {
        guard let slowAfter = admission?.slowAfter, admission?.isDue(now) == true else { return }
        var oldest: ContinuousClock.Instant?
        for transfer in active.values {
            guard let started = transfer.startedAt else { continue }
            if oldest.map({ started < $0 }) ?? true { oldest = started }
            if now - started >= slowAfter { break }
        }
        let waiting = isAtLimit && pendingCount > 0  // read before `update` holds `admission`
        admission?.update(now: now, oldestInFlight: oldest.map { now - $0 }, waiting: waiting)
    }

    private func startPending(_ now: ContinuousClock.Instant) {
        while active.count < limit, let transfer = popPending() {
            if transfer.submission.deadlinePassed {
                transfer.finish(.failure(TransportError(kind: .notSent, curlCode: TransportError.deadlineCode,
                                                        message: "not started: its start deadline had passed")))
                continue
            }
            let easy: UnsafeMutableRawPointer
            if let idle = idleHandles.popLast() {
                easy = idle  // reset when it was released
            } else if let fresh = curl_easy_init() {
                easy = fresh
            } else {
                transfer.finish(.failure(TransportError(kind: .notSent, curlCode: Int32(bitPattern: CURLE_OUT_OF_MEMORY.rawValue),
                                                        message: "curl_easy_init failed")))
                continue
            }
            transfer.easy = easy
            var setup = TransferOptions.configure(easy, for: transfer, httpVersion: httpVersion, authorityFile: authorityFile,
                                                  multiplexing: maxConnectionsPerHost != nil)
            if setup == CURLE_OK, case .reactor(let reactor) = driver { setup = ccurl_reactor_track_sockets(easy, reactor) }
            let lane = laneForNewTransfer()
            if setup == CURLE_OK, curl_multi_add_handle(multis[lane], easy) == CURLM_OK {
                active[easy] = transfer
                activeInLane[lane] += 1
                transfer.lane = lane
                transfer.startedAt = now
            } else {
                release(easy, of: transfer)
                let code = setup == CURLE_OK ? CURLE_FAILED_INIT : setup
                transfer.finish(.failure(TransportError(
                    kind: .notSent, curlCode: Int32(bitPattern: code.rawValue),
                    message: "could not set up the transfer: \(String(cString: curl_easy_strerror(code)))")))
            }
        }
    }

    /// Removes cancelled transfers wherever they are; unknown ids (already finished, or refused
    /// before being queued) are ignored. One pass over the queue and one over the active ones, so
    /// cancelling a whole batch costs no more than cancelling one transfer.
    private func cancel(_ ranges: [Range<UInt64>]) {
        removeQueued(in: ranges, TransportError(kind: .notSent, curlCode: TransportError.cancelledCode,
                                                message: "cancelled before it was sent"))
        for (easy, transfer) in active where ranges.contains(where: { $0.contains(transfer.id) }) {
            abort(easy, transfer, TransportError(kind: .ambiguous, curlCode: TransportError.cancelledCode,
                                                 message: "cancelled while in flight"))
        }
    }

    /// Takes transfers still queued out of the queue (they never left: not started); those
    /// under way are left alone.
    private func withdraw(_ ranges: [Range<UInt64>]) {
        removeQueued(in: ranges, TransportError(kind: .notSent, curlCode: TransportError.withdrawnCode,
                                                message: "withdrawn before it was sent"))
    }

    private func removeQueued(in ranges: [Range<UInt64>], _ error: TransportError) {
        guard pendingCount > 0 else { return }
        var kept: [Transfer] = []
        kept.reserveCapacity(pendingCount)
        for transfer in pending[pendingHead...] {
            if ranges.contains(where: { $0.contains(transfer.id) }) {
                transfer.finish(.failure(error))
            } else {
                kept.append(transfer)
            }
        }
        pending = kept
        pendingHead = 0
    }

    private func abort(_ easy: UnsafeMutableRawPointer, _ transfer: Transfer, _ error: TransportError) {
        curl_multi_remove_handle(multis[transfer.lane], easy)
        active[easy] = nil
        activeInLane[transfer.lane] -= 1
        release(easy, of: transfer)
        transfer.finish(.failure(error))
    }

    /// Returns a handle, no longer in the multi, to the idle pool. Reset at once so that it keeps
    /// no pointer to the transfer's buffers and lists; the connection stays in the multi's cache.
    private func release(_ easy: UnsafeMutableRawPointer, of transfer: Transfer) {
        curl_easy_reset(easy)
        transfer.freeLists()
        transfer.easy = nil
        idleHandles.append(easy)
    }

    @discardableResult
    private func collectCompleted() -> Int {
        var connectionsOpened = 0
        var easyOut: UnsafeMutableRawPointer?
        var code = CURLE_OK
        for lane in multis.indices {
            while ccurl_multi_info_read_done(multis[lane], &easyOut, &code) == 1 {
                guard let easy = easyOut, let transfer = active.removeValue(forKey: easy) else { continue }
                activeInLane[lane] -= 1
                let result = transfer.outcome(easy: easy, code: code, logger: logger)
                var connects = 0
                _ = ccurl_getinfo_long(easy, CURLINFO_NUM_CONNECTS, &connects)
                connectionsOpened += connects
                var micros: curl_off_t = 0
                _ = ccurl_getinfo_off_t(easy, CURLINFO_TOTAL_TIME_T, &micros)
                if let onHTTP1Origin, code == CURLE_OK { noteHTTP1Origin(of: transfer, easy: easy, report: onHTTP1Origin) }
                curl_multi_remove_handle(multis[lane], easy)
                release(easy, of: transfer)
                completedScratch.append((transfer, result, .microseconds(Int64(micros))))
            }
        }
        let count = completedScratch.count
        guard count > 0 else { return 0 }
        // Statistics once per pass, under one lock, and before any waiter resumes (so a caller
        // that reads them after its batch returns sees its own transfers counted).
        shared.withLock { state in
            state.statistics.transfersCompleted += count
            state.statistics.connectionsOpened += connectionsOpened
        }
        for (transfer, result, elapsed) in completedScratch { transfer.finish(result, elapsed: elapsed) }
        completedScratch.removeAll(keepingCapacity: true)
        return count
    }

    /// Reports the origin of an HTTPS transfer that was answered over HTTP/1.x (see
    /// ``CurlTransport``'s engine pools), once per origin.
    private func noteHTTP1Origin(of transfer: Transfer, easy: UnsafeMutableRawPointer, report: (String) -> Void) {
        guard case .http(let request) = transfer.request else { return }
        var version = 0
        _ = ccurl_getinfo_long(easy, CURLINFO_HTTP_VERSION, &version)
        guard version == Int(CURL_HTTP_VERSION_1_0) || version == Int(CURL_HTTP_VERSION_1_1) else { return }
        let origin = CurlTransport.origin(of: request.url)
        if reportedHTTP1Origins.insert(origin).inserted { report(origin) }
    }

    private func tearDown() {
        let remaining = shared.withLock { state -> [Transfer] in
            state.exited = true
            defer { state.inbox.removeAll() }
            return state.inbox
        }
        pending.append(contentsOf: remaining)
        for (easy, transfer) in active {
            abort(easy, transfer, TransportError(kind: .ambiguous, curlCode: TransportError.shutdownCode,
                                                 message: "transport shut down while the transfer was in flight"))
        }
        while let transfer = popPending() {
            transfer.finish(.failure(TransportError(kind: .notSent, curlCode: TransportError.shutdownCode,
                                                    message: "transport shut down before the transfer started")))
        }
        for easy in idleHandles { curl_easy_cleanup(easy) }
        idleHandles.removeAll()
        // The multi handles first: closing their cached connections calls the reactor.
        for multi in multis { curl_multi_cleanup(multi) }
        if case .reactor(let reactor) = driver { ccurl_reactor_destroy(reactor) }
    }
}

/// A counter shared with the closures that end transfers.
private final class Counter: Sendable {
    let value = Atomic<Int>(0)
}
