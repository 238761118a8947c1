import Logging

/// A small pool of ``PostgresConnection``s shared by the tasks of one process.
///
/// A task borrows a connection for the length of ``withConnection(_:)``; nobody else uses it
/// meanwhile. Connections that broke are dropped and replaced on the next borrow, so a restarted
/// server heals by itself. Waiters are served first come, first served; a cancelled waiter leaves
/// the line at once.
public actor PostgresPool {
    public let connectionString: String?
    public let maxConnections: Int
    private let applicationName: String
    private let session: PostgresSessionSettings
    private let logger: Logger
    private var idle: [PostgresConnection] = []
    private var open = 0
    private var waiters: [(id: Int, continuation: CheckedContinuation<PostgresConnection?, any Error>)] = []
    private var nextWaiterID = 0
    private var closed = false

    /// - Parameters:
    ///   - connectionString: as for ``PostgresConnection/connect(_:applicationName:session:logger:)``.
    ///   - maxConnections: connections opened at most at once.
    ///   - session: the timeouts every connection of the pool runs with.
    public init(connectionString: String?, maxConnections: Int = 4, applicationName: String = "herald",
                session: PostgresSessionSettings = .default,
                logger: Logger = Logger(label: "herald.postgres")) {
        self.connectionString = connectionString
        self.maxConnections = max(1, maxConnections)
        self.applicationName = applicationName
        self.session = session
        self.logger = logger
    }

    /// Runs `body` with a connection held for its duration.
    /// - Throws: what `body` throws, or ``PostgresError`` when no connection can be made.
    public func withConnection<T: Sendable>(_ body: @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        let connection = try await acquire()
        do {
            let value = try await body(connection)
            await release(connection)
            return value
        } catch {
            await release(connection)
            throw error
        }
    }

    /// Shorthand for one statement on a pooled connection.
    @discardableResult
    public func query(_ query: PostgresQuery) async throws -> PostgresRows {
        try await withConnection { try await $0.query(query) }
    }

    /// Closes idle connections and refuses new borrows; borrowed ones close when returned.
    public func close() async {
        closed = true
        for connection in idle { await connection.close() }
        open -= idle.count
        idle.removeAll()
        for waiter in waiters { waiter.continuation.resume(throwing: PostgresError(code: .connectionClosed, message: "the pool is closed")) }
        waiters.removeAll()
    }

    private func acquire() async throws -> PostgresConnection {
        while true {
            if closed { throw PostgresError(code: .connectionClosed, message: "the pool is closed") }
            if let connection = idle.popLast() { return connection }
            if open < maxConnections {
                open += 1
                do {
                    return try await PostgresConnection.connect(connectionString, applicationName: applicationName,
                                                               session: session, logger: logger)
                } catch {
                    open -= 1
                    wakeOneWaiter(with: nil)
                    throw error
                }
            }
            let id = nextWaiterID
            nextWaiterID += 1
            let handedOver: PostgresConnection? = try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { continuation in
                    if Task.isCancelled {
                        continuation.resume(throwing: CancellationError())
                    } else {
                        waiters.append((id, continuation))
                    }
                }
            } onCancel: {
                Task { await self.cancelWaiter(id) }
            }
            if let handedOver { return handedOver }
            // A slot was freed without a connection: loop and open one.
        }
    }

    private func cancelWaiter(_ id: Int) {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: index).continuation.resume(throwing: CancellationError())
    }

    private func release(_ connection: PostgresConnection) async {
        let usable = await connection.isUsable
        if closed || !usable {
            await connection.close()
            open -= 1
            wakeOneWaiter(with: nil)
            return
        }
        if !waiters.isEmpty {
            wakeOneWaiter(with: connection)
        } else {
            idle.append(connection)
        }
    }

    private func wakeOneWaiter(with connection: PostgresConnection?) {
        guard !waiters.isEmpty else {
            if let connection { idle.append(connection) }
            return
        }
        waiters.removeFirst().continuation.resume(returning: connection)
    }
}
