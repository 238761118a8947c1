import Foundation
import Synchronization

/// A `herald` child process started by a test, with its stdout and stderr captured.
///
/// Each pipe is drained by a thread of its own doing blocking reads until end of file (rather
/// than `FileHandle.readabilityHandler`, whose hand-over on Linux is racy), so a chatty child never
/// blocks on a full pipe and nothing is read twice.
public final class HeraldProcess: Sendable {
    private let child: ChildProcess
    private let collected = CollectedOutput()
    private let drained = DispatchGroup()

    /// Starts `executable arguments…` with `DATABASE_URL` set (nil removes it) and `environment` added.
    public static func start(_ executable: String, _ arguments: [String], databaseURL: String?,
                             environment: [String: String] = [:]) throws -> HeraldProcess {
        var env = ProcessInfo.processInfo.environment
        env["DATABASE_URL"] = databaseURL
        for (k, v) in environment { env[k] = v }
        return try start(executable, arguments, exactEnvironment: env)
    }

    /// Starts `executable arguments…` with exactly `env` as its environment.
    public static func start(_ executable: String, _ arguments: [String], exactEnvironment env: [String: String]) throws -> HeraldProcess {
        let errPipe = try ChildProcess.pipe(), outPipe = try ChildProcess.pipe()
        let child: ChildProcess
        do {
            child = try ChildProcess(executable, arguments, environment: env,
                                     stdout: .descriptor(outPipe.write), stderr: .descriptor(errPipe.write))
        } catch {
            for fd in [errPipe.read, errPipe.write, outPipe.read, outPipe.write] { close(fd) }
            throw error
        }
        // The child has its copies: ours closed, the readers see end of file when it exits.
        close(errPipe.write)
        close(outPipe.write)
        let p = HeraldProcess(child)
        p.drain(FileHandle(fileDescriptor: errPipe.read, closeOnDealloc: true)) { p.collected.appendErr($0) }
        p.drain(FileHandle(fileDescriptor: outPipe.read, closeOnDealloc: true)) { p.collected.appendOut($0) }
        return p
    }

    private init(_ child: ChildProcess) { self.child = child }

    /// The child's process id.
    public var pid: pid_t { child.pid }

    /// A test that fails half-way must not leave its children running.
    deinit {
        if child.isRunning { child.signal(SIGKILL) }
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
        let status = await child.wait()
        let group = drained
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            group.notify(queue: .global()) { c.resume() }
        }
        return status
    }

    /// Whether it has not exited yet.
    public var isRunning: Bool { child.isRunning }

    /// Sends a signal (SIGTERM, SIGKILL, …).
    public func signal(_ sig: Int32) { child.signal(sig) }

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
