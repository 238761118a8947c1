import Foundation

/// A `herald` child process started by a test, with its stderr captured.
public final class HeraldProcess: @unchecked Sendable {
    // @unchecked: `process` is thread-safe for the calls made here; `errData` is read after exit.
    public let process: Process
    private let errPipe = Pipe()
    private let outPipe = Pipe()
    private let collected = CollectedOutput()

    /// Starts `executable arguments…` with `DATABASE_URL` set (and `environment` added).
    public static func start(_ executable: String, _ arguments: [String], databaseURL: String,
                             environment: [String: String] = [:]) throws -> HeraldProcess {
        let p = HeraldProcess()
        p.process.executableURL = URL(fileURLWithPath: executable)
        p.process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["DATABASE_URL"] = databaseURL
        for (k, v) in environment { env[k] = v }
        p.process.environment = env
        p.process.standardError = p.errPipe
        p.process.standardOutput = p.outPipe
        let collected = p.collected
        p.errPipe.fileHandleForReading.readabilityHandler = { h in collected.appendErr(h.availableData) }
        p.outPipe.fileHandleForReading.readabilityHandler = { h in collected.appendOut(h.availableData) }
        try p.process.run()
        return p
    }

    private init() { process = Process() }

    /// Waits for exit and returns the exit status.
    public func wait() async -> Int32 {
        while process.isRunning { try? await Task.sleep(for: .milliseconds(20)) }
        errPipe.fileHandleForReading.readabilityHandler = nil
        outPipe.fileHandleForReading.readabilityHandler = nil
        collected.appendErr(errPipe.fileHandleForReading.readDataToEndOfFile())
        collected.appendOut(outPipe.fileHandleForReading.readDataToEndOfFile())
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
    private let lock = NSLock()
    private var errData = Data()
    private var outData = Data()
    func appendErr(_ d: Data) { lock.lock(); errData.append(d); lock.unlock() }
    func appendOut(_ d: Data) { lock.lock(); outData.append(d); lock.unlock() }
    var err: String { lock.lock(); defer { lock.unlock() }; return String(decoding: errData, as: UTF8.self) }
    var out: String { lock.lock(); defer { lock.unlock() }; return String(decoding: outData, as: UTF8.self) }
}
