import Hummingbird
import Logging
import Synchronization

/// Starts the HTTP servers of the doubles: a responder on a free port of 127.0.0.1.
enum LocalHTTPServer {
    /// Runs `responder` until the returned task is cancelled, and returns once it listens.
    /// - Parameter name: what is starting, for the error when it does not (e.g. "the file server").
    /// - Returns: the port it listens on, and the task that runs it; the caller owns the task
    ///   (cancels and awaits it to stop the server).
    /// - Throws: ``DoubleStartError`` when the server ends before it listens.
    static func start<Responder: HTTPResponder>(_ responder: Responder, logger: Logger, name: String) async throws
        -> (port: Int, task: Task<Void, any Error>)
    where Responder.Context: InitializableFromSource<ApplicationRequestContextSource> {
        let (ports, portSink) = AsyncStream<Int>.makeStream()
        let app = Application(
            responder: responder,
            configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: 0), serverName: nil),
            onServerRunning: { channel in portSink.yield(channel.localAddress?.port ?? 0) },
            logger: logger)
        let task = Task<Void, any Error> {
            defer { portSink.finish() }
            try await app.runService(gracefulShutdownSignals: [])
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else {
            task.cancel()
            _ = await task.result
            throw DoubleStartError(message: "\(name) did not start")
        }
        return (port, task)
    }

    /// Stops a server that ``start(_:logger:name:)`` started: takes its task out of `slot` (so a
    /// second stop finds none, which makes the doubles' `stop()` idempotent), cancels it and
    /// waits until it has ended.
    static func stop(_ slot: borrowing Mutex<Task<Void, any Error>?>) async {
        let task = slot.withLock { task -> Task<Void, any Error>? in
            defer { task = nil }
            return task
        }
        task?.cancel()
        _ = await task?.result
    }
}
