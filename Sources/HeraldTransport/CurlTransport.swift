import CCurl
import Foundation
import Logging
import Synchronization

/// Asynchronous HTTP and SMTP over libcurl: one dedicated thread drives a `CURLM` multi handle,
/// callers `await` their transfers.
///
/// Callers on any thread enqueue a transfer and wake the thread with `curl_multi_wakeup`; the
/// thread starts at most `maxInFlight` transfers at a time (the rest wait, in order), and resumes
/// each caller's continuation when its transfer ends. Easy handles are reused and connections
/// kept alive in the multi handle's connection cache, so steady traffic to one provider runs over
/// a few warm connections.
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
    }

    private let engine: CurlEngine

    /// Starts the transport's thread.
    /// - Parameters:
    ///   - maxInFlight: Most transfers handed to libcurl at once; the rest queue up in order.
    ///   - logger: Used for debug-level messages about failed transfers; nothing above debug.
    public init(maxInFlight: Int = 128, logger: Logger) {
        _ = CurlGlobal.initialized
        engine = CurlEngine(maxInFlight: max(1, maxInFlight), logger: logger)
        engine.start()
    }

    deinit {
        engine.shutdown()
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
        try await engine.perform([.http(request)])[0].result.get()
    }

    /// Hands one mail to an SMTP server (`smtp://` with opportunistic STARTTLS, or `smtps://`).
    ///
    /// Returns when the server accepted the message (`250` after the data).
    /// - Throws: ``TransportError``: `.smtpRejected` with ``TransportError/smtpCode`` when the
    ///   server refused (4xx: try later; 5xx: permanent), including a failed login (535);
    ///   otherwise `.notSent` / `.ambiguous` as for ``execute(_:)``.
    public func send(_ mail: SMTPEnvelope) async throws(TransportError) {
        _ = try await engine.perform([.smtp(mail)])[0].result.get()
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
        await engine.perform(requests, deadline: deadline)
    }

    /// Fails every queued and in-flight transfer (``TransportError/isShutdown``), stops and joins
    /// the thread. Idempotent; later calls to ``execute(_:)`` and ``send(_:)`` throw at once.
    ///
    /// - Important: Blocks the calling thread until the transport's thread has exited (normally
    ///   well under a millisecond per in-flight transfer).
    public func shutdown() {
        engine.shutdown()
    }

    /// Counters since the transport started.
    public var statistics: Statistics { engine.statistics }
}

extension TransportError {
    /// ``curlCode`` of an error thrown because the awaiting task was cancelled (not a libcurl code).
    public static let cancelledCode: Int32 = -1
    /// ``curlCode`` of an error thrown because the transport was shut down (not a libcurl code).
    public static let shutdownCode: Int32 = -2
    /// ``curlCode`` of a transfer still queued when its batch's start deadline passed (not a
    /// libcurl code); see ``CurlTransport/perform(_:startingBy:)``.
    public static let deadlineCode: Int32 = -3

    /// The transfer was abandoned because its task was cancelled.
    public var isCancelled: Bool { curlCode == Self.cancelledCode }
    /// The transfer was abandoned because the transport was shut down.
    public var isShutdown: Bool { curlCode == Self.shutdownCode }
    /// The transfer never started: cancelled or shut down while queued, refused by a transport
    /// already shut down, or still queued at its batch's start deadline. Nothing left this
    /// process, so it was no attempt at all (unlike `.notSent` from a refused connection).
    public var isNotStarted: Bool {
        kind == .notSent && (curlCode == Self.cancelledCode || curlCode == Self.shutdownCode || curlCode == Self.deadlineCode)
    }

    /// Classifies a libcurl failure: only errors that happen before a request can have gone out
    /// count as `.notSent`; anything unknown is `.ambiguous`, the safe side for retries.
    /// - Parameters:
    ///   - code: the `CURLcode`.
    ///   - connected: whether the transfer got as far as a connection (reused connections count).
    ///   - smtpCode: the last SMTP reply code, for SMTP transfers.
    ///   - smtpReply: the server's last reply line, e.g. `550 5.1.1 No such user`.
    static func classify(code: CURLcode, connected: Bool, smtpCode: Int?, smtpReply: String? = nil,
                         detail: String) -> TransportError {
        let raw = Int32(bitPattern: code.rawValue)
        if let smtpCode, smtpCode >= 400, smtpCode < 600 {
            let reply = smtpReply.flatMap { $0.hasPrefix("\(smtpCode)") ? $0 : nil } ?? "\(smtpCode)"
            return TransportError(kind: .smtpRejected, curlCode: raw, smtpCode: smtpCode,
                                  message: "SMTP server replied \(reply)")
        }
        let kind: Kind
        switch code {
        case CURLE_UNSUPPORTED_PROTOCOL, CURLE_FAILED_INIT, CURLE_URL_MALFORMAT, CURLE_NOT_BUILT_IN,
             CURLE_COULDNT_RESOLVE_PROXY, CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_CONNECT,
             CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM,
             CURLE_SSL_CIPHER, CURLE_SSL_ENGINE_NOTFOUND, CURLE_SSL_ENGINE_SETFAILED,
             CURLE_SSL_ENGINE_INITFAILED, CURLE_SSL_CACERT_BADFILE, CURLE_SSL_CRL_BADFILE,
             CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH, CURLE_SSL_INVALIDCERTSTATUS,
             CURLE_SSL_CLIENTCERT, CURLE_USE_SSL_FAILED, CURLE_LOGIN_DENIED, CURLE_BAD_FUNCTION_ARGUMENT,
             CURLE_UNKNOWN_OPTION, CURLE_SSL_SHUTDOWN_FAILED:
            kind = .notSent
        case CURLE_OPERATION_TIMEDOUT where !connected:
            // Timed out while resolving or connecting: the request cannot have gone out.
            kind = .notSent
        default:
            kind = .ambiguous
        }
        return TransportError(kind: kind, curlCode: raw, message: detail)
    }
}

/// `curl_global_init` exactly once per process, before the first handle.
enum CurlGlobal {
    static let initialized: Bool = {
        curl_global_init(Int(CURL_GLOBAL_ALL)) == CURLE_OK
    }()
}

/// One transfer of a batch handed to ``CurlTransport/perform(_:)``.
public enum TransportRequest: Sendable {
    case http(HTTPRequest)
    case smtp(SMTPEnvelope)
}

/// How one transfer of a batch ended.
public struct TransportOutcome: Sendable {
    /// The response (any HTTP status), or why there is none.
    public var result: Result<HTTPResponse, TransportError>
    /// libcurl's total time for the transfer, from start to the last byte; zero when it never
    /// reached libcurl.
    public var elapsed: Duration

    public init(result: Result<HTTPResponse, TransportError>, elapsed: Duration = .zero) {
        self.result = result
        self.elapsed = elapsed
    }
}

/// The awaiting side of a batch: filled in by the engine's thread only, resumed once when the
/// last transfer ends.
final class TransferBatch: @unchecked Sendable {
    private var outcomes: [TransportOutcome]
    private var remaining: Int
    private let continuation: CheckedContinuation<[TransportOutcome], Never>
    /// The last instant a transfer of the batch may start; nil: no limit.
    let deadline: ContinuousClock.Instant?

    init(count: Int, deadline: ContinuousClock.Instant?, continuation: CheckedContinuation<[TransportOutcome], Never>) {
        self.deadline = deadline
        outcomes = Array(repeating: TransportOutcome(result: .failure(TransportError(
            kind: .notSent, curlCode: TransportError.shutdownCode, message: "not performed"))), count: count)
        remaining = count
        self.continuation = continuation
    }

    func finish(_ index: Int, _ outcome: TransportOutcome) {
        outcomes[index] = outcome
        remaining -= 1
        if remaining == 0 { continuation.resume(returning: outcomes) }
    }
}

/// One transfer: owned by the caller until enqueued, then by the engine's thread only.
/// The buffers below are touched only by libcurl callbacks, which run on that thread.
final class Transfer: @unchecked Sendable {
    let id: UInt64
    let request: TransportRequest
    /// Who is waiting: the batch, at this transfer's index.
    let batch: TransferBatch
    let index: Int
    var easy: UnsafeMutableRawPointer?
    var headerList: UnsafeMutablePointer<curl_slist>?
    var recipientList: UnsafeMutablePointer<curl_slist>?
    var headers = HTTPHeaders()
    /// SMTP: the server's last 4xx/5xx reply line (libcurl passes SMTP replies to the header
    /// callback).
    var lastReply: String?
    var body: [UInt8] = []
    var upload: [UInt8] = []
    var uploadOffset = 0
    /// libcurl writes its error text here (`CURLOPT_ERRORBUFFER`) at any point of the transfer, so
    /// it is manual memory with a fixed address for the Transfer's whole life, never a Swift
    /// array's storage (whose pointer is only valid inside `withUnsafeMutableBufferPointer`).
    let errorBuffer: UnsafeMutablePointer<CChar> = {
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        p.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        return p
    }()
    private var resumed = false

    init(id: UInt64, request: TransportRequest, batch: TransferBatch, index: Int) {
        self.id = id
        self.request = request
        self.batch = batch
        self.index = index
    }

    func finish(_ result: Result<HTTPResponse, TransportError>, elapsed: Duration = .zero) {
        guard !resumed else { return }
        resumed = true
        batch.finish(index, TransportOutcome(result: result, elapsed: elapsed))
    }

    deinit {
        // The easy handle was reset (or cleaned up) before the last reference went away, so
        // libcurl no longer points here.
        errorBuffer.deallocate()
    }

    func freeLists() {
        if let headerList { curl_slist_free_all(headerList) }
        if let recipientList { curl_slist_free_all(recipientList) }
        headerList = nil
        recipientList = nil
    }
}

/// The multi handle and the state its thread owns.
///
/// `@unchecked Sendable`: `shared` is behind a `Mutex`; `multi` is only used by the engine's
/// thread, except `curl_multi_wakeup`, which libcurl allows from any thread and which we call
/// only under the lock while the thread has not yet cleaned the handle up; every other stored
/// property is touched by the engine's thread alone.
///
/// ThreadSanitizer on Linux does not see `Synchronization.Mutex` (futex-based) as synchronization
/// and reports every hand-over through `shared` as a race; with a pthread-based lock in its place
/// the test suite runs clean under `--sanitize=thread`.
final class CurlEngine: @unchecked Sendable {
    struct Shared {
        var inbox: [Transfer] = []
        var cancelled: [UInt64] = []
        var nextID: UInt64 = 1
        var closing = false
        var exited = false
        var started = false
        var statistics = CurlTransport.Statistics(transfersCompleted: 0, connectionsOpened: 0)
    }

    let shared = Mutex(Shared())
    let maxInFlight: Int
    let logger: Logger
    let multi: UnsafeMutableRawPointer
    private let finished = DispatchGroup()

    // Engine thread only.
    private var pending: [Transfer] = []
    private var pendingHead = 0
    private var active: [UnsafeMutableRawPointer: Transfer] = [:]
    private var idleHandles: [UnsafeMutableRawPointer] = []
    /// Transfers `collectCompleted` found done, kept between calls so its buffer is reused.
    private var completedScratch: [(Transfer, Result<HTTPResponse, TransportError>, Duration)] = []

    init(maxInFlight: Int, logger: Logger) {
        self.maxInFlight = maxInFlight
        self.logger = logger
        guard let multi = curl_multi_init() else { fatalError("curl_multi_init failed") }
        self.multi = multi
        // Keep enough idle connections for the whole in-flight window.
        _ = ccurl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, maxInFlight)
        // HTTP/2 connections multiplex; HTTP/1.1 ones are reused one request at a time.
        _ = ccurl_multi_setopt_long(multi, CURLMOPT_PIPELINING, Int(CURLPIPE_MULTIPLEX))
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

    func shutdown() {
        let wasStarted = shared.withLock { state -> Bool in
            if !state.closing {
                state.closing = true
                if !state.exited { curl_multi_wakeup(multi) }
            }
            return state.started
        }
        if wasStarted { finished.wait() }
    }

    // MARK: Callers' side

    /// Hands transfers to the engine's thread, or says why not (shut down, or the calling task
    /// is already cancelled); then the caller still owns them.
    private func enqueue(_ transfers: [Transfer]) -> TransportError? {
        shared.withLock { state in
            if state.closing {
                return TransportError(kind: .notSent, curlCode: TransportError.shutdownCode,
                                      message: "transport is shut down")
            }
            // Checked under the lock: a cancellation after this point finds the transfers
            // queued, one before it is seen here.
            if Task.isCancelled {
                return TransportError(kind: .notSent, curlCode: TransportError.cancelledCode,
                                      message: "cancelled before it was sent")
            }
            state.inbox.append(contentsOf: transfers)
            curl_multi_wakeup(multi)
            return nil
        }
    }

    func perform(_ requests: [TransportRequest], deadline: ContinuousClock.Instant? = nil) async -> [TransportOutcome] {
        guard !requests.isEmpty else { return [] }
        let count = UInt64(requests.count)
        let firstID = shared.withLock { state -> UInt64 in
            defer { state.nextID &+= count }
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<[TransportOutcome], Never>) in
                let batch = TransferBatch(count: requests.count, deadline: deadline, continuation: continuation)
                var transfers: [Transfer] = []
                transfers.reserveCapacity(requests.count)
                for (index, request) in requests.enumerated() {
                    transfers.append(Transfer(id: firstID &+ UInt64(index), request: request, batch: batch, index: index))
                }
                // Refused before the engine saw any of them: this thread is the batch's only user.
                if let refusal = enqueue(transfers) { for transfer in transfers { transfer.finish(.failure(refusal)) } }
            }
        } onCancel: {
            shared.withLock { state in
                guard !state.exited else { return }
                state.cancelled.append(contentsOf: firstID..<(firstID &+ count))
                curl_multi_wakeup(multi)
            }
        }
    }

    // MARK: The engine's thread

    private func run() {
        while true {
            // Swapped out, not copied and cleared: `removeAll(keepingCapacity:)` on a buffer we
            // still hold a reference to would allocate a fresh one on every pass of this loop.
            var incoming: [Transfer] = []
            var cancelled: [UInt64] = []
            let closing = shared.withLock { state in
                if !state.inbox.isEmpty { swap(&incoming, &state.inbox) }
                if !state.cancelled.isEmpty { swap(&cancelled, &state.cancelled) }
                return state.closing
            }
            if !incoming.isEmpty { pending.append(contentsOf: incoming) }
            if !cancelled.isEmpty { cancel(Set(cancelled)) }
            if closing { break }

            startPending()
            var running: Int32 = 0
            _ = curl_multi_perform(multi, &running)
            let completed = collectCompleted()
            if completed > 0, pendingCount > 0 {
                continue  // start the next ones before sleeping
            }
            var ready: Int32 = 0
            _ = curl_multi_poll(multi, nil, 0, 1000, &ready)
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

    private func startPending() {
        while active.count < maxInFlight, let transfer = popPending() {
            if let deadline = transfer.batch.deadline, ContinuousClock.now >= deadline {
                transfer.finish(.failure(TransportError(kind: .notSent, curlCode: TransportError.deadlineCode,
                                                        message: "not started: its batch's start deadline had passed")))
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
            let setup = configure(easy, for: transfer)
            if setup == CURLE_OK, curl_multi_add_handle(multi, easy) == CURLM_OK {
                active[easy] = transfer
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
    private func cancel(_ ids: Set<UInt64>) {
        var kept: [Transfer] = []
        kept.reserveCapacity(pendingCount)
        for transfer in pending[pendingHead...] {
            if ids.contains(transfer.id) {
                transfer.finish(.failure(TransportError(kind: .notSent, curlCode: TransportError.cancelledCode,
                                                        message: "cancelled before it was sent")))
            } else {
                kept.append(transfer)
            }
        }
        pending = kept
        pendingHead = 0
        for (easy, transfer) in active where ids.contains(transfer.id) {
            abort(easy, transfer, TransportError(kind: .ambiguous, curlCode: TransportError.cancelledCode,
                                                 message: "cancelled while in flight"))
        }
    }

    private func abort(_ easy: UnsafeMutableRawPointer, _ transfer: Transfer, _ error: TransportError) {
        curl_multi_remove_handle(multi, easy)
        active[easy] = nil
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

    private func collectCompleted() -> Int {
        var connectionsOpened = 0
        var easyOut: UnsafeMutableRawPointer?
        var code = CURLE_OK
        while ccurl_multi_info_read_done(multi, &easyOut, &code) == 1 {
            guard let easy = easyOut, let transfer = active.removeValue(forKey: easy) else { continue }
            let result = outcome(of: transfer, easy: easy, code: code)
            var connects = 0
            _ = ccurl_getinfo_long(easy, CURLINFO_NUM_CONNECTS, &connects)
            connectionsOpened += connects
            var micros: curl_off_t = 0
            _ = ccurl_getinfo_off_t(easy, CURLINFO_TOTAL_TIME_T, &micros)
            curl_multi_remove_handle(multi, easy)
            release(easy, of: transfer)
            completedScratch.append((transfer, result, .microseconds(Int64(micros))))
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

    private func outcome(of transfer: Transfer, easy: UnsafeMutableRawPointer, code: CURLcode) -> Result<HTTPResponse, TransportError> {
        var responseCode = 0
        _ = ccurl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &responseCode)
        if code == CURLE_OK {
            return .success(HTTPResponse(status: responseCode, headers: transfer.headers, body: transfer.body))
        }
        var connectTime = 0.0
        var pretransferTime = 0.0
        _ = ccurl_getinfo_double(easy, CURLINFO_CONNECT_TIME, &connectTime)
        _ = ccurl_getinfo_double(easy, CURLINFO_PRETRANSFER_TIME, &pretransferTime)
        let detail = String(cString: transfer.errorBuffer)
        let message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        let isSMTP: Bool
        if case .smtp = transfer.request { isSMTP = true } else { isSMTP = false }
        let error = TransportError.classify(code: code, connected: connectTime > 0 || pretransferTime > 0,
                                            smtpCode: isSMTP ? responseCode : nil, smtpReply: transfer.lastReply,
                                            detail: message)
        logger.debug("transfer failed", metadata: [
            "curl.code": "\(code.rawValue)", "curl.error": "\(message)", "transport.kind": "\(error.kind.rawValue)",
            "curl.connect_time": "\(connectTime)", "curl.pretransfer_time": "\(pretransferTime)",
        ])
        return .failure(error)
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
        curl_multi_cleanup(multi)
    }

    // MARK: Setting up a transfer

    private func configure(_ easy: UnsafeMutableRawPointer, for transfer: Transfer) -> CURLcode {
        var setup = CurlSetup(easy: easy)
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        setup.long(CURLOPT_NOSIGNAL, 1)
        setup.long(CURLOPT_TCP_KEEPALIVE, 1)
        setup.pointer(CURLOPT_PRIVATE, context)
        setup.result(ccurl_setopt_write_callback(easy, curlWriteCallback))
        setup.pointer(CURLOPT_WRITEDATA, context)
        setup.pointer(CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(transfer.errorBuffer))
        switch transfer.request {
        case .http(let request):
            configureHTTP(&setup, request, transfer, context)
        case .smtp(let mail):
            configureSMTP(&setup, mail, transfer, context)
        }
        return setup.code
    }

    private func configureHTTP(_ setup: inout CurlSetup, _ request: HTTPRequest, _ transfer: Transfer,
                               _ context: UnsafeMutableRawPointer) {
        setup.string(CURLOPT_URL, request.url)
        setup.long(CURLOPT_PIPEWAIT, 1)
        setup.string(CURLOPT_PROTOCOLS_STR, "http,https")
        setup.string(CURLOPT_USERAGENT, "herald")
        setup.result(ccurl_setopt_header_callback(setup.easy, curlHeaderCallback))
        setup.pointer(CURLOPT_HEADERDATA, context)
        setup.timeout(request.timeout)

        let method = request.method.uppercased()
        switch method {
        case "GET":
            setup.long(CURLOPT_HTTPGET, 1)
        case "HEAD":
            setup.long(CURLOPT_NOBODY, 1)
        default:
            if method != "POST" { setup.string(CURLOPT_CUSTOMREQUEST, method) }
            if method == "POST" || !request.body.isEmpty {
                setup.long(CURLOPT_POST, 1)
                setup.offset(CURLOPT_POSTFIELDSIZE_LARGE, Int64(request.body.count))
                // COPYPOSTFIELDS copies `POSTFIELDSIZE` bytes now; never pass NULL (libcurl
                // would then read the body from stdin).
                if request.body.isEmpty {
                    setup.string(CURLOPT_COPYPOSTFIELDS, "")
                } else {
                    request.body.withUnsafeBytes { bytes in
                        setup.pointer(CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: bytes.baseAddress!))
                    }
                }
            }
        }

        var list: UnsafeMutablePointer<curl_slist>?
        for header in request.headers {
            list = curl_slist_append(list, "\(header.name): \(header.value)")
        }
        // No `Expect: 100-continue` round trip before bodies.
        if !request.headers.contains(where: { $0.name.lowercased() == "expect" }) {
            list = curl_slist_append(list, "Expect:")
        }
        transfer.headerList = list
        setup.slist(CURLOPT_HTTPHEADER, list)

        if let auth = request.basicAuth {
            setup.long(CURLOPT_HTTPAUTH, 1) // CURLAUTH_BASIC
            setup.string(CURLOPT_USERNAME, auth.user)
            setup.string(CURLOPT_PASSWORD, auth.password)
        }
    }

    private func configureSMTP(_ setup: inout CurlSetup, _ mail: SMTPEnvelope, _ transfer: Transfer,
                               _ context: UnsafeMutableRawPointer) {
        setup.string(CURLOPT_URL, mail.url)
        setup.string(CURLOPT_PROTOCOLS_STR, "smtp,smtps")
        setup.timeout(mail.timeout)
        let useSSL = mail.requireTLS ? CURLUSESSL_ALL : CURLUSESSL_TRY
        setup.long(CURLOPT_USE_SSL, Int(useSSL.rawValue))
        if let caFile = mail.caFile { setup.string(CURLOPT_CAINFO, caFile) }
        setup.string(CURLOPT_MAIL_FROM, Self.bareAddress(mail.mailFrom))
        var recipients: UnsafeMutablePointer<curl_slist>?
        for recipient in mail.recipients {
            recipients = curl_slist_append(recipients, Self.bareAddress(recipient))
        }
        transfer.recipientList = recipients
        setup.slist(CURLOPT_MAIL_RCPT, recipients)
        if let username = mail.username { setup.string(CURLOPT_USERNAME, username) }
        if let password = mail.password { setup.string(CURLOPT_PASSWORD, password) }
        transfer.upload = mail.message
        setup.long(CURLOPT_UPLOAD, 1)
        setup.offset(CURLOPT_INFILESIZE_LARGE, Int64(mail.message.count))
        setup.result(ccurl_setopt_read_callback(setup.easy, curlReadCallback))
        setup.pointer(CURLOPT_READDATA, context)
        setup.result(ccurl_setopt_header_callback(setup.easy, curlSMTPReplyCallback))
        setup.pointer(CURLOPT_HEADERDATA, context)
    }

    /// `Name <a@b.c>` → `a@b.c`: libcurl wants the bare address (it adds the angle brackets).
    static func bareAddress(_ address: String) -> String {
        if let open = address.lastIndex(of: "<"), let close = address.lastIndex(of: ">"), open < close {
            return String(address[address.index(after: open)..<close])
        }
        return address.trimmingCharacters(in: .whitespaces)
    }
}

/// Applies options in order and keeps the first failure.
struct CurlSetup {
    let easy: UnsafeMutableRawPointer
    var code = CURLE_OK

    mutating func result(_ result: CURLcode) {
        if code == CURLE_OK, result != CURLE_OK { code = result }
    }
    mutating func long(_ option: CURLoption, _ value: Int) { result(ccurl_setopt_long(easy, option, value)) }
    mutating func offset(_ option: CURLoption, _ value: Int64) { result(ccurl_setopt_off_t(easy, option, curl_off_t(value))) }
    mutating func string(_ option: CURLoption, _ value: String) { result(ccurl_setopt_string(easy, option, value)) }
    mutating func pointer(_ option: CURLoption, _ value: UnsafeMutableRawPointer?) { result(ccurl_setopt_pointer(easy, option, value)) }
    mutating func slist(_ option: CURLoption, _ value: UnsafeMutablePointer<curl_slist>?) { result(ccurl_setopt_slist(easy, option, value)) }

    mutating func timeout(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let whole = seconds.multipliedReportingOverflow(by: 1000)
        let milliseconds = whole.overflow ? Int.max
            : max(1, Int(clamping: whole.partialValue) &+ Int(attoseconds / 1_000_000_000_000_000))
        long(CURLOPT_TIMEOUT_MS, milliseconds)
        long(CURLOPT_CONNECTTIMEOUT_MS, min(milliseconds, 10_000))
    }
}

// MARK: libcurl callbacks (run on the engine's thread; context is the unretained `Transfer`)

private let curlWriteCallback: ccurl_data_callback = { buffer, size, count, context in
    let length = size * count
    guard let context else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    if let buffer, length > 0 {
        buffer.withMemoryRebound(to: UInt8.self, capacity: length) {
            transfer.body.append(contentsOf: UnsafeBufferPointer(start: $0, count: length))
        }
    }
    return length
}

private let curlHeaderCallback: ccurl_data_callback = { buffer, size, count, context in
    let length = size * count
    guard let context, let buffer else { return length }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    // Bytes only, no parsing: this runs for every header line of every answer on the transport's
    // single thread; HTTPHeaders looks names up when asked.
    buffer.withMemoryRebound(to: UInt8.self, capacity: length) { p in
        let line = UnsafeBufferPointer(start: p, count: length)
        if length >= 5, line[0] == UInt8(ascii: "H"), line[1] == UInt8(ascii: "T"), line[2] == UInt8(ascii: "T"),
           line[3] == UInt8(ascii: "P"), line[4] == UInt8(ascii: "/") {
            // A new response begins (after a 1xx or a redirect): forget the previous headers.
            transfer.headers.removeAll()
        } else if length > 2 {
            transfer.headers.append(line: line)
        }
    }
    return length
}

private let curlSMTPReplyCallback: ccurl_data_callback = { buffer, size, count, context in
    let length = size * count
    guard let context, let buffer else { return length }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    let line = buffer.withMemoryRebound(to: UInt8.self, capacity: length) {
        String(decoding: UnsafeBufferPointer(start: $0, count: min(length, 512)), as: UTF8.self)
    }.trimmingCharacters(in: .whitespacesAndNewlines)
    // Keep the last refusal, e.g. "550 5.1.1 No such user here" (not the "221" to the QUIT
    // that may follow it).
    if line.count >= 3, line.prefix(3).allSatisfy(\.isNumber), line.first == "4" || line.first == "5" {
        transfer.lastReply = line
    }
    return length
}

private let curlReadCallback: ccurl_data_callback = { buffer, size, count, context in
    guard let context, let buffer else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    let room = size * count
    let remaining = transfer.upload.count - transfer.uploadOffset
    let length = min(room, remaining)
    if length > 0 {
        transfer.upload.withUnsafeBytes { bytes in
            UnsafeMutableRawPointer(buffer).copyMemory(from: bytes.baseAddress! + transfer.uploadOffset, byteCount: length)
        }
        transfer.uploadOffset += length
    }
    return length
}
