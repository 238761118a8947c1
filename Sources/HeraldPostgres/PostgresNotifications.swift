import CLibPQ
import Glibc

/// One notification received on a channel the connection listens to.
public struct PostgresNotification: Sendable, Equatable {
    public var channel: String
    public var payload: String
    /// Backend process that sent it.
    public var senderPID: Int32
}

/// LISTEN/NOTIFY: a connection subscribes to channels and sleeps on its socket until
/// notifications arrive, on the connection's own thread.
extension PostgresConnection {
    /// Starts listening on `channel` (an identifier; quoted for you).
    public func listen(_ channel: String) throws {
        try simpleQuery("LISTEN \(try quoteIdentifier(channel))")
    }

    /// Stops listening on `channel`.
    public func unlisten(_ channel: String) throws {
        try simpleQuery("UNLISTEN \(try quoteIdentifier(channel))")
    }

    /// Quotes an identifier with libpq's own escaping.
    public func quoteIdentifier(_ name: String) throws -> String {
        let conn = try live()
        guard let p = PQescapeIdentifier(conn, name, name.utf8.count) else {
            throw PostgresError(code: .client, message: PostgresError.lastLine(PQerrorMessage(conn)))
        }
        defer { PQfreemem(p) }
        return String(cString: p)
    }

    /// Waits until notifications arrive on a channel this connection listens to, or `timeout`
    /// passes (then returns an empty array), without polling the server: the connection's own
    /// thread sleeps in `poll(2)` on the socket.
    ///
    /// - Throws: `CancellationError` promptly when the calling task is cancelled;
    ///   ``PostgresError`` `.connectionLost` when the connection breaks (reconnect, `LISTEN` again,
    ///   and catch up with a query: notifications sent meanwhile are lost).
    public func waitForNotifications(timeout: Duration) async throws -> [PostgresNotification] {
        try await withTaskCancellationHandler {
            try self.blockingWait(timeout: timeout)
        } onCancel: {
            self.interrupt()
        }
    }

    /// Wakes a pending ``waitForNotifications(timeout:)`` early (it returns what it has, maybe nothing).
    public nonisolated func interrupt() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    private func blockingWait(timeout: Duration) throws -> [PostgresNotification] {
        let conn = try live()
        let deadline = ContinuousClock.now + timeout
        while true {
            try Task.checkCancellation()
            guard PQconsumeInput(conn) == 1 else {
                throw PostgresError(code: .connectionLost, message: PostgresError.lastLine(PQerrorMessage(conn)))
            }
            var received: [PostgresNotification] = []
            while let n = PQnotifies(conn) {
                received.append(PostgresNotification(channel: String(cString: n.pointee.relname),
                                                     payload: String(cString: n.pointee.extra),
                                                     senderPID: n.pointee.be_pid))
                PQfreemem(n)
            }
            if !received.isEmpty { return received }
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero { return [] }
            let (s, atto) = remaining.components
            // Clamped before multiplying: a huge timeout waits Int32.max ms at a time, never traps.
            let ms = s >= Int64(Int32.max) / 1000 ? Int32.max : Int32(clamping: s * 1000 + atto / 1_000_000_000_000_000 + 1)
            var fds = [pollfd(fd: PQsocket(conn), events: Int16(POLLIN), revents: 0),
                       pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
            let rc = poll(&fds, 2, ms)
            if rc < 0 && errno != EINTR {
                throw PostgresError(code: .client, message: "poll failed: errno \(errno)")
            }
            if fds[1].revents != 0 {
                var value: UInt64 = 0
                _ = read(wakeFD, &value, 8)
                try Task.checkCancellation()
                return []
            }
        }
    }
}
