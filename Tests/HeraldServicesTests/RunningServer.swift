import HeraldTransport
import Logging
import ServiceLifecycle
import Testing

/// Runs `service`, one of Herald's HTTP servers bound to a free port, until `body` returns, then
/// shuts it down gracefully (also when `body` throws). `body` gets the server's base URL
/// (`http://127.0.0.1:<port>`) and a transport to call it with.
func withRunningServer<T: Sendable>(_ service: some Service, boundPort: @escaping @Sendable () -> Int?, logger: Logger,
                                    transportWindow: Int = 8,
                                    _ body: (_ base: String, _ transport: CurlTransport) async throws -> T) async throws -> T {
    let group = ServiceGroup(services: [service], logger: logger)
    let transport = CurlTransport(maxInFlight: transportWindow, logger: logger)
    defer { transport.shutdown() }
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        // Polled until the server listens (a few ms), for at most 5 s.
        var port: Int?
        for _ in 0..<200 where port == nil {
            port = boundPort()
            if port == nil { try await Task.sleep(for: .milliseconds(25)) }
        }
        let base = "http://127.0.0.1:\(try #require(port))"
        do {
            let value = try await body(base, transport)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
            return value
        } catch {
            await group.triggerGracefulShutdown()
            try? await tasks.waitForAll()
            throw error
        }
    }
}

/// A logger for a server under test: warnings and errors only.
func warningsOnlyLogger(_ label: String) -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = .warning
    return logger
}
