import Foundation

/// A real nginx serving HTTPS with HTTP/2 (negotiated by ALPN, as Meta's and Twilio's APIs do),
/// answering every request with a fixed JSON body. Its certificate is ``TestCertificates``'
/// server certificate, so a client trusts it through ``TestCertificates/writeAuthority()``.
///
/// Why nginx and not a double of our own: no HTTP/2 server library is among the packages here
/// (swift-nio-http2 is not), and nginx is what the benchmarks already run. One process, no
/// master (`master_process off`), in a temporary directory of its own; ``stop()`` ends it.
/// Started with `http2: false` it serves HTTPS over HTTP/1.1 only: a provider without HTTP/2.
public final class NginxHTTP2Server: @unchecked Sendable {
    // @unchecked: every stored property is set once in `start` and only read afterwards.
    public let port: Int
    private let process: ChildProcess
    private let directory: URL

    /// `https://127.0.0.1:<port>`.
    public var baseURL: String { "https://127.0.0.1:\(port)" }

    private init(port: Int, process: ChildProcess, directory: URL) {
        self.port = port
        self.process = process
        self.directory = directory
    }

    /// Starts nginx on a free port, answering `status` with `body` (JSON) to every request, over
    /// HTTP/2 when the client offers it (`http2`) or over HTTP/1.1 only.
    /// - Parameter proxying: Path prefixes (`/hung/`) whose requests nginx passes, prefix taken
    ///   off, to a plain-HTTP server (`http://127.0.0.1:8080`): a ``ProviderDouble`` behind TLS,
    ///   with its latencies and faults.
    /// - Throws: ``Failure`` when nginx is not installed or does not come up.
    public static func start(status: Int = 200, body: String = #"{"ok":true}"#, http2: Bool = true,
                             proxying: [(prefix: String, to: String)] = []) async throws -> NginxHTTP2Server {
        guard let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"].first(where: FileManager.default.isExecutableFile(atPath:)) else {
            throw Failure("nginx is not installed (scripts/install-deps installs it)")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("herald-nginx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try TestCertificates.serverPEM.write(to: directory.appendingPathComponent("cert.pem"), atomically: true, encoding: .utf8)
        try TestCertificates.serverKeyPEM.write(to: directory.appendingPathComponent("key.pem"), atomically: true, encoding: .utf8)
        var lastError = ""
        // A port picked at random can be taken by the time nginx binds it: try a few.
        for _ in 0..<8 {
            let port = Int.random(in: 20_000..<32_000)
            let config = """
                daemon off; master_process off; worker_processes 1; pid \(directory.path)/nginx.pid;
                error_log \(directory.path)/error.log;
                events { worker_connections 1024; }
                http {
                  access_log off; client_body_temp_path \(directory.path);
                  server {
                    listen 127.0.0.1:\(port) ssl\(http2 ? " http2" : "");
                    ssl_certificate \(directory.path)/cert.pem; ssl_certificate_key \(directory.path)/key.pem;
                    location / { default_type application/json; return \(status) '\(body)'; }
                    \(proxying.map { "location \($0.prefix) { proxy_pass \($0.to)/; proxy_read_timeout 300s; }" }.joined(separator: "\n"))
                  }
                }
                """
            let configPath = directory.appendingPathComponent("nginx.conf").path
            try config.write(toFile: configPath, atomically: true, encoding: .utf8)
            let process = try ChildProcess(nginx, ["-p", directory.path, "-c", configPath, "-e", "\(directory.path)/error.log"],
                                           environment: ProcessInfo.processInfo.environment)
            // Up when the port accepts a connection; given up when nginx exits (port taken).
            let deadline = ContinuousClock.now + .seconds(10)
            while process.isRunning, ContinuousClock.now < deadline {
                if Self.accepts(port: port) { return NginxHTTP2Server(port: port, process: process, directory: directory) }
                try await Task.sleep(for: .milliseconds(20))
            }
            if process.isRunning { process.signal(SIGKILL); _ = process.waitBlocking() }
            lastError = (try? String(contentsOfFile: "\(directory.path)/error.log", encoding: .utf8)) ?? ""
        }
        try? FileManager.default.removeItem(at: directory)
        throw Failure("nginx did not start: \(lastError.suffix(400))")
    }

    /// Stops nginx and removes its directory.
    ///
    /// With SIGKILL: without a master process nginx keeps the signal mask it inherits, and a
    /// test process's threads block SIGTERM, so nginx would never see it. It has nothing to save.
    public func stop() {
        if process.isRunning {
            process.signal(SIGKILL)
            _ = process.waitBlocking()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    deinit { if process.isRunning { process.signal(SIGKILL) } }

    private static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }
}
