import Foundation
import HeraldProviders
import HeraldTesting
@testable import HeraldServices
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What the webhook server refuses before (or while) it reads a body, and how large bodies take
/// turns, seen from plain sockets that send exactly the bytes a test gives them.
@Suite("Webhooks: body admission")
struct WebhookAdmissionTests {
    typealias Server = WebhookServerTests

    /// The server's `/metrics`, parsed.
    static func metrics(_ h: WebhookServerTests.Harness) async throws -> [String: Double] {
        try PrometheusText.parse(String(decoding: try await h.request("GET", "/metrics").body, as: UTF8.self))
    }

    /// A connection that sends only what it is told, so a test can stop in the middle of a request.
    final class RawConnection {
        let fd: Int32
        private var received: [UInt8] = []

        init(port: Int) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            try #require(fd >= 0 && connected == 0)
        }

        deinit { close(fd) }

        /// What arrived and was not taken as a response head yet (for failure messages).
        var unread: String { String(decoding: received, as: UTF8.self) }

        func send(_ text: String) { send(Array(text.utf8)) }

        func send(_ bytes: [UInt8]) {
            var sent = 0
            while sent < bytes.count {
                let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { return }
                sent += n
            }
        }

        /// A POST head for `path`: a well-formed signature that verifies nothing, unless told otherwise.
        func sendHead(_ path: String = "/webhooks/whatsapp", contentLength: Int?,
                      signature: String = "sha256=" + String(repeating: "0", count: 64)) {
            let length = contentLength.map { "Content-Length: \($0)\r\n" } ?? "Transfer-Encoding: chunked\r\n"
            send("POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 + "X-Hub-Signature-256: \(signature)\r\n\(length)\r\n")
        }

        /// Reads until a whole response head has arrived; nil when none did within `timeout`.
        /// Polls without blocking: a blocked thread would be one of the few the servers under test run on.
        func responseHead(within timeout: Duration = .seconds(9)) async throws -> String? {
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                if let end = received.firstRange(of: Array("\r\n\r\n".utf8)) {
                    let head = String(decoding: received[..<end.lowerBound], as: UTF8.self)
                    received.removeSubrange(..<end.upperBound)
                    return head
                }
                guard try await readSome() else { return nil }
            }
            return nil
        }

        /// Whether the server closed the connection within `timeout` (reading past any answer body).
        func closed(within timeout: Duration = .seconds(9)) async throws -> Bool {
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                if try await !readSome() { return true }
            }
            return false
        }

        /// Reads what has arrived, or waits a moment when nothing has; false when the connection is closed.
        private func readSome() async throws -> Bool {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 0) > 0 else {
                try await Task.sleep(for: .milliseconds(5))
                return true
            }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, 0)
            if n < 0 { received += Array("[recv failed: errno \(errno)]".utf8) }
            if n <= 0 { return false }
            received += buffer[..<n]
            return true
        }
    }

    static func status(_ head: String?) -> Int? {
        head.flatMap { $0.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) } }
    }

    @Test("large bodies are read at the pace set, after the first burst")
    func pace() {
        let start = ContinuousClock.now
        let pace = ReadPace(bytesPerSecond: 1000, burst: 500, now: { start })
        #expect(pace.wait(after: 500) == .zero)
        #expect(pace.wait(after: 500) == .milliseconds(500))
        #expect(pace.wait(after: 1000) == .milliseconds(1500))
        // Time that passed pays for what was read: at t + 3 s everything is paid for.
        let later = ReadPace(bytesPerSecond: 1000, burst: 0, now: { start + .seconds(3) })
        #expect(later.wait(after: 100) == .milliseconds(100))
    }

    @Test("a Content-Length over the limit is refused with 413 from the head alone, and the connection closed")
    func declaredTooLarge() async throws {
        try await Server.withServer { h in
            let client = try RawConnection(port: try #require(h.server.boundPort))
            client.sendHead(contentLength: 2 << 20)
            let head = try await client.responseHead()
            #expect(Self.status(head) == 413, "no 413 before the body was sent: \(head ?? "no answer")")
            #expect(head?.lowercased().contains("connection: close") == true)
            #expect(try await client.closed(), "the connection stayed open for the body nobody will read")
            let samples = try await Self.metrics(h)
            #expect(samples[#"herald_webhook_requests_total{outcome="too_large",provider="whatsapp_cloud"}"#] == 1)
            #expect(samples[#"herald_webhook_requests_total{outcome="bad_request",provider="whatsapp_cloud"}"#] == 0)
        }
    }

    @Test("a chunked body without Content-Length is cut at the limit while it is read: 413")
    func chunkedTooLarge() async throws {
        try await Server.withServer(configure: { $0.maxBodyBytes = 16 << 10 }) { h in
            let client = try RawConnection(port: try #require(h.server.boundPort))
            client.sendHead(contentLength: nil)
            // Just over the limit, and no last chunk: only a cap while reading can answer this.
            for _ in 0..<5 { client.send("1000\r\n" + String(repeating: "x", count: 4096) + "\r\n") }
            let head = try await client.responseHead()
            #expect(Self.status(head) == 413, "\(head ?? "no answer; received: \(client.unread)")")
            #expect(try await h.receiptCount() == 0)
        }
    }

    @Test("a malformed signature is refused with 401 before the body is read, on both providers")
    func malformedSignature() async throws {
        try await Server.withServer { h in
            let port = try #require(h.server.boundPort)
            let meta = try RawConnection(port: port)
            meta.sendHead(contentLength: 500, signature: "sha256=zz")
            #expect(Self.status(try await meta.responseHead()) == 401)
            #expect(try await meta.closed())
            let twilio = try RawConnection(port: port)
            twilio.send("POST /webhooks/twilio HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Twilio-Signature: x\r\nContent-Length: 500\r\n\r\n")
            let head = try await twilio.responseHead()
            #expect(Self.status(head) == 401, "\(head ?? "no answer; received: \(twilio.unread)")")
        }
    }

    @Test("with admission full a large body gets 503 and Retry-After, a small signed receipt still 200; the queue drains")
    func admissionFull() async throws {
        try await Server.withServer(configure: { c in
            c.smallBodyBytes = 1024
            c.largeBodiesAtOnce = 1
            c.largeBodiesWaiting = 1
        }) { h in
            let (wa, _) = try await Server.sentMessages(h.c)
            let port = try #require(h.server.boundPort)
            let admission = h.server.admission
            let large = Array(#"{"object":"whatsapp_business_account","entry":[],"pad":""#.utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: 20_000) + Array(#""}"#.utf8)
            // One large body being read (it stalls half-way), one waiting for its turn.
            let reading = try RawConnection(port: port)
            reading.sendHead(contentLength: large.count)
            reading.send(Array(large[..<2000]))
            #expect(try await eventually { admission.counts == (1, 0) })
            let waiting = try RawConnection(port: port)
            waiting.sendHead(contentLength: large.count)
            #expect(try await eventually { admission.counts == (1, 1) })

            let refused = try RawConnection(port: port)
            refused.sendHead(contentLength: large.count)
            let head = try await refused.responseHead()
            #expect(Self.status(head) == 503, "\(head ?? "no answer")")
            #expect(head?.lowercased().contains("retry-after: 1") == true)
            #expect(try await refused.closed())
            #expect(try await Self.metrics(h)[#"herald_webhook_requests_total{outcome="busy",provider="whatsapp_cloud"}"#] == 1)

            let small = Server.metaStatus("wamid.\(wa)", "delivered", callback: wa)
            let signed = WebhookSignature.meta(body: Array(small.utf8), appSecret: Server.appSecret)
            #expect(try await h.postWhatsApp(small, signature: signed).status == 200)
            #expect(try await h.eventually { try await h.status(wa) == "delivered" })

            // The stalled body arrives: it is answered, and the waiting one gets its turn.
            reading.send(Array(large[2000...]))
            #expect(Self.status(try await reading.responseHead()) == 401)
            waiting.send(large)
            #expect(Self.status(try await waiting.responseHead()) == 401)
            #expect(try await eventually { admission.counts == (0, 0) })
            let later = try RawConnection(port: port)
            later.sendHead(contentLength: large.count)
            later.send(large)
            #expect(Self.status(try await later.responseHead()) == 401)
        }
    }
}
