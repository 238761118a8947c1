import Foundation
import HeraldCore
import HeraldTesting
@testable import HeraldTransport
import Logging
import Testing

/// How many connections a burst of transfers opens: HTTPS that multiplexes shares a few, a host
/// that needs a connection per transfer gets them, and a transfer that had to wait for a
/// connection never goes out after its start deadline.
@Suite("CurlTransport: connections per host")
struct CurlConnectionPoolTests {
    let logger = Logger(label: "herald.transport.tests")

    func post(_ baseURL: String, _ index: Int) -> TransportRequest {
        .http(HTTPRequest(url: "\(baseURL)/v21.0/1234567890/messages", headers: [("Content-Type", "application/json")],
                          body: Array(#"{"to":"+23480\#(index)"}"#.utf8), timeout: .seconds(20)))
    }

    /// Runs `body` with nginx over HTTPS (HTTP/2 offered or not) and a transport of one engine per
    /// pool that trusts nginx's CA.
    func withHTTPS(http2: Bool, httpVersion: HTTPVersionPreference = .automatic,
                   maxTLSConnections: Int = CurlTransport.defaultMaxTLSConnections,
                   _ body: (NginxHTTP2Server, CurlTransport) async throws -> Void) async throws {
        let server = try await NginxHTTP2Server.start(body: #"{"messages":[{"id":"wamid.pool"}]}"#, http2: http2)
        let authority = try TestCertificates.writeAuthority()
        let transport = CurlTransport(maxInFlight: 1024, httpVersion: httpVersion, authorityFile: authority,
                                      maxTLSConnections: maxTLSConnections, logger: logger)
        defer {
            transport.shutdown()
            server.stop()
            try? FileManager.default.removeItem(atPath: authority)
        }
        try await body(server, transport)
    }

    /// Sends `warmUp` transfers one batch, then `count` at once, each expected to be answered 200,
    /// and returns the connections the second batch opened. In the automatic mode the first
    /// answer tells the transport whether the origin speaks HTTP/1.1 only.
    func connectionsForABurst(of count: Int, after warmUp: Int, to server: NginxHTTP2Server,
                              over transport: CurlTransport) async throws -> Int {
        let first = await transport.perform((0..<warmUp).map { post(server.baseURL, $0) })
        #expect(first.map { try? $0.result.get().status } == Array(repeating: 200, count: warmUp))
        let before = transport.statistics.connectionsOpened
        let outcomes = await transport.perform((warmUp..<(warmUp + count)).map { post(server.baseURL, $0) })
        #expect(outcomes.map { try? $0.result.get().status } == Array(repeating: 200, count: count))
        return transport.statistics.connectionsOpened - before
    }

    @Test("600 HTTPS transfers at once to an HTTP/2 server share at most 16 connections, not one each")
    func burstSharesConnections() async throws {
        try await withHTTPS(http2: true) { server, transport in
            // nginx allows 128 streams per connection: 600 transfers need 5 connections. Without
            // the cap libcurl 7.88 opened one for every transfer that arrived while those were
            // full or still in their handshake (hundreds).
            let outcomes = await transport.perform((0..<600).map { post(server.baseURL, $0) })
            #expect(outcomes.map { try? $0.result.get().status } == Array(repeating: 200, count: 600))
            let opened = transport.statistics.connectionsOpened
            #expect(opened <= CurlTransport.connectionsPerHost, "\(opened) connections for 600 transfers")
        }
    }

    @Test("an HTTPS origin that answered over HTTP/1.1 gets a connection per transfer from then on")
    func http1OriginLeavesTheCap() async throws {
        try await withHTTPS(http2: false) { server, transport in
            let opened = try await connectionsForABurst(of: 100, after: 1, to: server, over: transport)
            // Capped, the 100 would have taken turns on 16 connections.
            #expect(opened > CurlTransport.connectionsPerHost, "only \(opened) connections for 100 HTTP/1.1 transfers at once")
        }
    }

    @Test("HTTPS transfers that each need a TLS connection hold at most maxTLSConnections at once; the rest wait their turn",
          arguments: [HTTPVersionPreference.automatic, .http1])
    func tlsConnectionsAreCapped(httpVersion: HTTPVersionPreference) async throws {
        try await withHTTPS(http2: false, httpVersion: httpVersion, maxTLSConnections: 8) { server, transport in
            let opened = try await connectionsForABurst(of: 100, after: 1, to: server, over: transport)
            // Uncapped, 100 transfers at once open a connection each (dozens: see the test above).
            #expect(opened <= 8, "\(opened) TLS connections for 100 transfers with a cap of 8")
        }
    }

    @Test("a transfer that waited inside libcurl for a connection past its start deadline is stopped unsent")
    func deadlineHoldsWhileWaitingForAConnection() async throws {
        let double = try await ProviderDouble.start()
        // One connection to the host: the second transfer waits inside libcurl for the first one's.
        let engine = CurlEngine(maxInFlight: 8, httpVersion: .automatic, authorityFile: nil, clock: ContinuousClock(),
                                logger: logger, maxConnectionsPerHost: 1)
        engine.start()
        defer { engine.shutdown() }
        let request = TransportRequest.http(whatsAppRequest(double))
        let warm = await engine.perform([request])
        #expect(try warm[0].result.get().status == 200)
        let before = double.received(.whatsApp).count
        double.latency = .milliseconds(1500)
        let outcomes = await engine.perform([request, request], deadline: ContinuousClock.now + .milliseconds(300))
        await double.stop()
        #expect(try outcomes[0].result.get().status == 200)
        let late = try #require(outcomes[1].result.failure, "the second transfer was sent after its deadline")
        #expect(late.isNotStarted)
        #expect(late.curlCode == TransportError.deadlineCode)
        #expect(double.received(.whatsApp).count == before + 1, "the late transfer reached the server")
    }

    @Test("transfers go to the pool their protocol needs")
    func pools() {
        func pool(_ url: String, _ version: HTTPVersionPreference, http1: Set<String> = []) -> CurlTransport.Pool {
            CurlTransport.pool(for: .http(HTTPRequest(url: url, body: [])), httpVersion: version, answersOverHTTP1: http1.contains)
        }
        #expect(pool("https://graph.facebook.com/v21.0/1/messages", .automatic) == .multiplexing)
        #expect(pool("http://127.0.0.1:8080/v21.0/1/messages", .automatic) == .connectionPerTransfer)
        #expect(pool("https://API.twilio.com:443/2010-04-01", .automatic, http1: ["https://api.twilio.com:443"]) == .tlsConnectionPerTransfer)
        #expect(pool("https://graph.facebook.com/x", .http1) == .tlsConnectionPerTransfer)
        #expect(pool("http://127.0.0.1:8080/x", .http1) == .connectionPerTransfer)
        #expect(pool("http://127.0.0.1:8080/x", .http2PriorKnowledge) == .multiplexing)
        for url in ["smtps://smtp.example.com:465", "smtp://smtp.example.com:587"] {
            let mail = SMTPEnvelope(url: url, mailFrom: "a@b.example", recipients: ["c@d.example"], message: [])
            #expect(CurlTransport.pool(for: .smtp(mail), httpVersion: .automatic, answersOverHTTP1: { _ in false }) == .tlsConnectionPerTransfer)
        }
        #expect(CurlTransport.origin(of: "HTTPS://Graph.Facebook.com/v21.0?x=1") == "https://graph.facebook.com")
        #expect(CurlTransport.origin(of: "https://h:8443?x") == "https://h:8443")
    }
}

/// An engine that opens a connection per transfer splits its window over multi handles of at
/// most ``CurlEngine/transfersPerMulti`` transfers (libcurl 7.88 walks a handle's connections
/// twice a transfer), and each handle keeps reusing the connections it opened.
@Suite("CurlEngine: multi handles of a connection-per-transfer engine")
struct CurlEngineLaneTests {
    @Test("a window is split over multi handles of at most 256 transfers, up to 16")
    func laneCounts() {
        #expect([1, 128, 256, 257, 922, 4096, 100_000].map { CurlEngine.lanes(maxInFlight: $0) }
                == [1, 1, 1, 2, 4, 16, 16])
    }

    @Test("300 slow transfers at once fill two multi handles; the next 300 reuse every connection the first opened")
    func lanesKeepTheirConnections() async throws {
        let double = try await ProviderDouble.start()
        double.latency = .seconds(1)  // all 300 are out at once: each needs a connection
        let engine = CurlEngine(maxInFlight: 300, httpVersion: .http1, authorityFile: nil, clock: ContinuousClock(),
                                logger: Logger(label: "herald.transport.tests"))
        engine.start()
        defer { engine.shutdown() }
        #expect(engine.multis.count == 2)
        let requests = (0..<300).map { TransportRequest.http(whatsAppRequest(double, to: "+2348031\(100_000 + $0)")) }
        let first = await engine.perform(requests)
        #expect(first.filter { (try? $0.result.get().status) == 200 }.count == 300)
        let opened = engine.statistics.connectionsOpened
        #expect(opened >= 290, "the first 300 went out together on \(opened) connections")
        let second = await engine.perform(requests)
        #expect(second.filter { (try? $0.result.get().status) == 200 }.count == 300)
        // Each handle took the same share again and found its own idle connections.
        #expect(engine.statistics.connectionsOpened == opened, "\(engine.statistics.connectionsOpened - opened) new connections")
        await double.stop()
    }
}
