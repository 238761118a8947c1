import Foundation
import Synchronization

/// A `herald` child process started by a test, with its stdout and stderr captured.
///
/// Each pipe is drained by a thread of its own doing blocking reads until end of file (rather
/// than `FileHandle.readabilityHandler`, whose hand-over on Linux is racy), so a chatty child never
/// blocks on a full pipe and nothing is read twice.
public final class HeraldProcess: @unchecked Sendable {
    // @unchecked: `process` is only started once and then queried; output goes through
    // `CollectedOutput`, which locks.
    public let process: Process
    private let collected = CollectedOutput()
    private let drained = DispatchGroup()

    /// Starts `executable arguments…` with `DATABASE_URL` set (nil removes it) and `environment` added.
    public static func start(_ executable: String, _ arguments: [String], databaseURL: String?,
                             environment: [String: String] = [:]) throws -> HeraldProcess {
        let p = HeraldProcess()
        p.process.executableURL = URL(fileURLWithPath: executable)
        p.process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["DATABASE_URL"] = databaseURL
        for (k, v) in environment { env[k] = v }
        p.process.environment = env
        let errPipe = Pipe(), outPipe = Pipe()
        p.process.standardError = errPipe
        p.process.standardOutput = outPipe
        // One launch at a time: swift-corelibs-foundation's `Process.run()` crashed (in memcpy)
        // when parallel tests launched children at the same moment.
        try launching.withLock { _ in try p.process.run() }
        p.drain(errPipe.fileHandleForReading) { p.collected.appendErr($0) }
        p.drain(outPipe.fileHandleForReading) { p.collected.appendOut($0) }
        return p
    }

    private init() { process = Process() }

    /// Serializes ``start(_:_:databaseURL:environment:)``'s launches across tests.
    private static let launching = Mutex(())

    /// A test that fails half-way must not leave its children running.
    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    private func drain(_ handle: FileHandle, into append: @escaping @Sendable (Data) -> Void) {
        drained.enter()
        let group = drained
        let thread = Thread {
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { break }
                append(chunk)
            }
            group.leave()
        }
        thread.start()
    }

    /// Waits for exit (and for all its output) and returns the exit status.
    public func wait() async -> Int32 {
        while process.isRunning { try? await Task.sleep(for: .milliseconds(20)) }
        let group = drained
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            group.notify(queue: .global()) { c.resume() }
        }
        return process.terminationStatus
    }

    /// Sends a signal (SIGTERM, SIGKILL, …).
    public func signal(_ sig: Int32) { kill(process.processIdentifier, sig) }

    /// What the process wrote to stderr so far.
    public var stderr: String { collected.err }
    /// What the process wrote to stdout so far.
    public var stdout: String { collected.out }
}

final class CollectedOutput: @unchecked Sendable {
    // @unchecked: both buffers are only touched under `lock`.
    private let lock = NSLock()
    private var errData = Data()
    private var outData = Data()
    func appendErr(_ d: Data) { lock.lock(); errData.append(d); lock.unlock() }
    func appendOut(_ d: Data) { lock.lock(); outData.append(d); lock.unlock() }
    var err: String { lock.lock(); defer { lock.unlock() }; return String(decoding: errData, as: UTF8.self) }
    var out: String { lock.lock(); defer { lock.unlock() }; return String(decoding: outData, as: UTF8.self) }
}
