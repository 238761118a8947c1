import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// A plain HTTP file server on 127.0.0.1 with a free port: the CDN an email broadcast's
/// attachments are fetched from. It serves the files it was given by path and counts the `GET`s
/// of each, so a test can check that a file was fetched once per broadcast.
///
/// ```swift
/// let files = try await FileServerDouble.start()
/// defer { Task { await files.stop() } }
/// files.serve("/c/catalogue.pdf", bytes: pdf, contentType: "application/pdf")
/// // media: [{"type": "document", "url": "\(files.baseURL)/c/catalogue.pdf"}]
/// ```
///
/// An unknown path is answered 404. Call ``stop()`` when done.
public final class FileServerDouble: Sendable {
    struct File: Sendable {
        var bytes: [UInt8]
        var contentType: String?
        var announcesLength: Bool
    }

    struct State: Sendable {
        var files: [String: File] = [:]
        var fetches: [String: Int] = [:]
    }

    /// `http://127.0.0.1:PORT`.
    public let baseURL: String
    public let port: Int
    private let shared: SharedState
    private let task: Mutex<Task<Void, any Error>?>

    private init(port: Int, shared: SharedState, task: Task<Void, any Error>) {
        self.port = port
        self.baseURL = "http://127.0.0.1:\(port)"
        self.shared = shared
        self.task = Mutex(task)
    }

    deinit {
        task.withLock { $0?.cancel() }
    }

    /// Starts the server.
    /// Runs `body` with a started server, and stops it when `body` returns or throws.
    public static func with<T: Sendable>(_ body: (FileServerDouble) async throws -> T) async throws -> T {
        try await scoped(try await start(), cleanUp: { await $0.stop() }, body)
    }

    public static func start() async throws -> FileServerDouble {
        let box = SharedState()
        var logger = Logger(label: "herald.file-server-double")
        logger.logLevel = .critical
        let responder = CallbackResponder<BasicRequestContext> { request, _ in
            let path = request.uri.path
            let file = box.state.withLock { s -> File? in
                s.fetches[path, default: 0] += 1
                return s.files[path]
            }
            guard let file else { return Response(status: .notFound) }
            var headers = HTTPFields()
            if let type = file.contentType { headers[.contentType] = type }
            let buffer = ByteBuffer(bytes: file.bytes)
            guard file.announcesLength else {
                // Chunked, in pieces: the client learns the size only by reading.
                return Response(status: .ok, headers: headers, body: ResponseBody { writer in
                    var rest = buffer
                    while let piece = rest.readSlice(length: min(16_384, rest.readableBytes)), piece.readableBytes > 0 {
                        try await writer.write(piece)
                    }
                    try await writer.finish(nil)
                })
            }
            headers[.contentLength] = String(file.bytes.count)
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: buffer))
        }
        // The task is owned by the double: `stop()` cancels and awaits it.
        let (port, task) = try await LocalHTTPServer.start(responder, logger: logger, name: "the file server")
        return FileServerDouble(port: port, shared: box, task: task)
    }

    /// Serves `bytes` at `path` (e.g. `/files/a.pdf`), with `Content-Type: contentType` when given;
    /// without `Content-Length` (chunked) when `announcesLength` is false.
    public func serve(_ path: String, bytes: [UInt8], contentType: String? = nil, announcesLength: Bool = true) {
        shared.state.withLock { $0.files[path] = File(bytes: bytes, contentType: contentType, announcesLength: announcesLength) }
    }

    /// How many times `path` was requested.
    public func fetchCount(_ path: String) -> Int {
        shared.state.withLock { $0.fetches[path] ?? 0 }
    }

    /// Stops the server. Idempotent.
    public func stop() async {
        await LocalHTTPServer.stop(task)
    }

    /// The state, shared by the responder and the double before the double exists.
    private final class SharedState: Sendable {
        let state = Mutex(State())
    }
}
