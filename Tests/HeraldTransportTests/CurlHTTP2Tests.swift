import Foundation
import HeraldTesting
import HeraldTransport
import Logging
import Testing

/// HTTPS to a real nginx that offers HTTP/2 by ALPN, as the providers' APIs do: requests share
/// one multiplexed connection, easy handles reused from earlier transfers keep working, and a
/// server certificate is verified against `authorityFile` or the system's trust store.
@Suite("CurlTransport over HTTPS with HTTP/2")
struct CurlHTTP2Tests {
    /// Runs `body` with nginx and a transport of `maxInFlight` that trusts nginx's CA (or, with
    /// `trusted: false`, only the system's trust store); stops both afterwards.
    func withServer(maxInFlight: Int = 4, trusted: Bool = true,
                    _ body: (NginxHTTP2Server, CurlTransport) async throws -> Void) async throws {
        let server = try await NginxHTTP2Server.start(body: #"{"messages":[{"id":"wamid.h2"}]}"#)
        let authority = try TestCertificates.writeAuthority()
        let transport = CurlTransport(maxInFlight: maxInFlight, authorityFile: trusted ? authority : nil,
                                      logger: Logger(label: "herald.transport.tests"))
        defer {
            transport.shutdown()
            server.stop()
            try? FileManager.default.removeItem(atPath: authority)
        }
        try await body(server, transport)
    }

    func post(_ server: NginxHTTP2Server, _ index: Int) -> HTTPRequest {
        HTTPRequest(url: "\(server.baseURL)/v21.0/1234567890/messages",
                    headers: [("Content-Type", "application/json")],
                    body: Array(#"{"to":"+23480\#(index)"}"#.utf8), timeout: .seconds(10))
    }

    @Test("ten times the window of POSTs all answer 200 over one multiplexed connection, on reused handles")
    func multiplexedOnReusedHandles() async throws {
        try await withServer(maxInFlight: 4) { server, transport in
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<40 { group.addTask { try await transport.execute(post(server, i)).status } }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(statuses == Array(repeating: 200, count: 40))
            let statistics = transport.statistics
            #expect(statistics.transfersCompleted == 40)
            // Four in flight at a time over HTTP/1.1 would need four connections.
            #expect(statistics.connectionsOpened == 1)
        }
    }

    @Test("a server certificate no trusted authority signed is refused before anything is sent")
    func untrustedCertificate() async throws {
        try await withServer(trusted: false) { server, transport in
            do {
                _ = try await transport.execute(post(server, 1))
                Issue.record("an untrusted certificate was accepted")
            } catch let error as TransportError {
                #expect(error.kind == .notSent)
            }
        }
    }
}

@Suite("HTTP version preference against the libcurl loaded")
struct HTTPVersionPreferenceTests {
    @Test("h2c with prior knowledge is refused before libcurl 8.0.0, with the version and what to use instead")
    func priorKnowledgeNeedsLibcurl8() {
        let problem = HTTPVersionPreference.http2PriorKnowledge.problem(libcurlVersion: 0x07_58_01)
        #expect(problem?.contains("7.88.1") == true)
        #expect(problem?.contains("automatic") == true)
        #expect(HTTPVersionPreference.http2PriorKnowledge.problem(libcurlVersion: 0x08_00_00) == nil)
        #expect(HTTPVersionPreference.automatic.problem(libcurlVersion: 0x07_58_01) == nil)
        #expect(HTTPVersionPreference.http1.problem(libcurlVersion: 0x07_58_01) == nil)
    }

    @Test("the loaded libcurl's version is read from the library (at least 7.x)")
    func loadedVersion() {
        #expect(HTTPVersionPreference.loadedLibcurlVersion >= 0x07_00_00)
    }
}
