import Foundation
import HeraldPostgres
import HeraldStore
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes
import Synchronization

// MARK: - Health without a connection per request

/// `/healthz`, answered from a cached probe: at most one `SELECT 1` per ``maxAge``, never two at
/// once, however many requests arrive (a flood of health checks costs the pool nothing extra).
final class HealthCheck: Sendable {
    private struct State {
        var healthy = false
        var checkedAt: ContinuousClock.Instant?
        var probing = false
    }

    private let pool: PostgresPool
    private let maxAge: Duration
    private let timeout: Duration
    private let state = Mutex(State())
    private let probes = Atomic<Int>(0)

    init(pool: PostgresPool, maxAge: Duration = .seconds(1), timeout: Duration = .seconds(2)) {
        self.pool = pool
        self.maxAge = maxAge
        self.timeout = timeout
    }

    /// Probes run so far (tests).
    var probeCount: Int { probes.load(ordering: .relaxed) }

    /// 200 when the database answered the latest probe, else 503.
    func response() async -> Response {
        await isHealthy() ? WebhookHandler.text(.ok, "ok") : WebhookHandler.text(.serviceUnavailable, "database unreachable")
    }

    /// The latest probe's answer, probing first when it is older than ``maxAge`` and nobody else
    /// is; while a probe runs, others get the previous answer at once.
    func isHealthy() async -> Bool {
        let (probe, last) = state.withLock { s -> (Bool, Bool) in
            let stale = s.checkedAt.map { ContinuousClock.now - $0 >= maxAge } ?? true
            guard stale, !s.probing else { return (false, s.healthy) }
            s.probing = true
            return (true, s.healthy)
        }
        guard probe else { return last }
        probes.add(1, ordering: .relaxed)
        let healthy = await withTaskGroup(of: Bool.self) { group in
            group.addTask { [pool] in (try? await pool.withConnection { try await ReportStore().ping(on: $0) }) != nil }
            group.addTask { [timeout] in try? await Task.sleep(for: timeout); return false }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        state.withLock { s in
            s.healthy = healthy
            s.checkedAt = .now
            s.probing = false
        }
        return healthy
    }
}

// MARK: - Cutting slow clients

/// Hummingbird's HTTP/1 server, with a deadline on reading each request: a client must send a
/// whole request (head and body) within `readTimeout` of connecting or of its previous response,
/// else the connection is closed. An idle timeout alone cannot do this: a client that sends one
/// byte every few seconds is never idle, and would hold its connection (and a file descriptor)
/// for as long as it likes. The time Herald takes to answer does not count.
struct DeadlineHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value
    let inner: HTTP1Channel
    let readTimeout: TimeAmount

    static func builder(readTimeout: Duration) -> HTTPServerBuilder {
        let timeout = TimeAmount(readTimeout)
        return HTTPServerBuilder { responder in
            DeadlineHTTP1Channel(inner: HTTP1Channel(responder: responder,
                                                     configuration: .init(additionalChannelHandlers: [RequestEndObserver()],
                                                                          idleTimeout: timeout)),
                                 readTimeout: timeout)
        }
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            // First in the pipeline: it sees raw bytes only; the HTTP side (RequestEndObserver,
            // added after the codec by the inner channel) tells it when requests and responses end.
            try channel.pipeline.syncOperations.addHandler(RequestDeadlineHandler(timeout: readTimeout, logger: logger))
        }.flatMap {
            inner.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

/// Raw-byte side of the deadline: armed when the connection opens and again each time a response
/// has been written completely; disarmed when a request has been read completely (its end is
/// signalled by ``RequestReadUserEvent`` from the HTTP side). Fires: closes the connection.
///
/// Only the raw byte stream is visible at the front of the pipeline, so the HTTP layer reports the
/// end of each request with a user event, see ``RequestEndObserver``.
final class RequestDeadlineHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let timeout: TimeAmount
    private let logger: Logger
    private var timer: Scheduled<Void>?
    /// Requests read completely and not answered yet.
    private var awaitingResponse = 0

    init(timeout: TimeAmount, logger: Logger) {
        self.timeout = timeout
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is RequestReadUserEvent {
            awaitingResponse += 1
            timer?.cancel()
            timer = nil
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        context.write(data, promise: promise)
    }

    func userOutboundEventTriggered(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        if event is ResponseWrittenUserEvent {
            awaitingResponse = max(0, awaitingResponse - 1)
            if awaitingResponse == 0 { arm(context) }
            promise?.succeed(())
            return
        }
        context.triggerUserOutboundEvent(event, promise: promise)
    }

    private func arm(_ context: ChannelHandlerContext) {
        timer?.cancel()
        let channel = context.channel
        let logger = logger
        timer = context.eventLoop.scheduleTask(in: timeout) {
            logger.debug("closing a connection that did not send its request in time")
            channel.close(promise: nil)
        }
    }
}

/// Sent inbound from the HTTP side when a request has been read to its end.
struct RequestReadUserEvent: Sendable {}
/// Sent outbound from the HTTP side when a response has been written to its end.
struct ResponseWrittenUserEvent: Sendable {}

/// Sits after the HTTP codec, sees each request's and response's end, and tells
/// ``RequestDeadlineHandler`` with user events. It also closes the connection once a response
/// that says `Connection: close` has been written: Hummingbird closes only when the request asked
/// for it, and otherwise reads the rest of a refused request's body to reach the next request
/// for as long as the client sends it.
final class RequestEndObserver: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// The response being written says `Connection: close`.
    private var closeAfterResponse = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .end = unwrapInboundIn(data) {
            context.pipeline.fireUserInboundEventTriggered(RequestReadUserEvent())
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head):
            closeAfterResponse = head.headerFields[.connection]?.lowercased() == "close"
        case .body:
            break
        case .end:
            guard closeAfterResponse else {
                context.write(data, promise: promise)
                context.triggerUserOutboundEvent(ResponseWrittenUserEvent(), promise: nil)
                return
            }
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.cascade(to: promise)
            // A lingering close: the answer, then our side's FIN; what the client still sends is
            // read and dropped (a close with unread data would reset the connection, and the
            // client could lose the answer) until it closes too, for 2 s at most.
            let channel = context.channel
            written.futureResult.whenComplete { _ in
                channel.close(mode: .output).whenFailure { _ in channel.close(promise: nil) }
                channel.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
            }
            context.writeAndFlush(data, promise: written)
            return
        }
        context.write(data, promise: promise)
    }
}
