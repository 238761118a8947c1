import Foundation
import HeraldCore
import HeraldTesting
import HeraldTransport
import Logging
import Testing

/// Runs `body` with a fresh provider double and transport, and stops both afterwards.
func withTransport(maxInFlight: Int = 128, configuration: ProviderDouble.Configuration = .init(),
                   fillLevel: Int = CurlTransport.defaultFillLevel, clock: any HeraldClock = ContinuousClock(),
                   _ body: (ProviderDouble, CurlTransport) async throws -> Void) async throws {
    let double = try await ProviderDouble.start(configuration: configuration)
    let transport = CurlTransport(maxInFlight: maxInFlight, fillLevel: fillLevel, clock: clock,
                                  logger: Logger(label: "herald.transport.tests"))
    do {
        try await body(double, transport)
    } catch {
        transport.shutdown()
        await double.stop()
        throw error
    }
    transport.shutdown()
    await double.stop()
}

func whatsAppRequest(_ double: ProviderDouble, to: String = "+2348031234567", token: String = "test-access-token",
                     timeout: Duration = .seconds(10)) -> HTTPRequest {
    let body = #"{"messaging_product":"whatsapp","recipient_type":"individual","to":"\#(to)","type":"text","text":{"body":"Hello from Herald"}}"#
    return HTTPRequest(url: "\(double.baseURL)/v21.0/1234567890/messages",
                       headers: [("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")],
                       body: Array(body.utf8), timeout: timeout)
}

func twilioRequest(_ double: ProviderDouble, to: String = "+2348031234567", password: String? = nil) -> HTTPRequest {
    let sid = double.configuration.twilioAccountSID
    let form = "To=\(to.replacingOccurrences(of: "+", with: "%2B"))&From=%2B15005550006&Body=Hello+there%21+%F0%9F%91%8B"
    return HTTPRequest(url: "\(double.baseURL)/2010-04-01/Accounts/\(sid)/Messages.json",
                       headers: [("Content-Type", "application/x-www-form-urlencoded")],
                       body: Array(form.utf8),
                       basicAuth: (sid, password ?? double.configuration.twilioAuthToken))
}

func json(_ response: HTTPResponse) -> ReceivedJSON? { ReceivedJSON(parsing: response.body) }

@Suite("CurlTransport over HTTP")
struct CurlTransportHTTPTests {
    @Test("a JSON POST round-trips with its headers")
    func jsonRoundTrip() async throws {
        try await withTransport { double, transport in
            var request = whatsAppRequest(double)
            request.headers.append(("X-Herald-Test", "one two"))
            let response = try await transport.execute(request)

            #expect(response.status == 200)
            #expect(response.headers["content-type"] == "application/json")
            let body = try #require(json(response))
            #expect(body["messaging_product"]?.string == "whatsapp")
            #expect(body["contacts"]?[0]?["input"]?.string == "+2348031234567")
            #expect(body["contacts"]?[0]?["wa_id"]?.string == "2348031234567")
            #expect(body["messages"]?[0]?["id"]?.string?.hasPrefix("wamid.") == true)

            let received = try #require(double.received().first)
            #expect(received.endpoint == .whatsApp)
            #expect(received.method == "POST")
            #expect(received.path == "/v21.0/1234567890/messages")
            #expect(received.header("authorization") == "Bearer test-access-token")
            #expect(received.header("x-herald-test") == "one two")
            #expect(received.header("expect") == nil)
            #expect(received.body == request.body)
            #expect(received.json?["text"]?["body"]?.string == "Hello from Herald")
            #expect(received.responseStatus == 200)
        }
    }

    @Test("basic auth reaches the server; Twilio answers 201 with a message sid")
    func basicAuth() async throws {
        try await withTransport { double, transport in
            let response = try await transport.execute(twilioRequest(double))
            #expect(response.status == 201)
            let body = try #require(json(response))
            let sid = try #require(body["sid"]?.string)
            #expect(sid.hasPrefix("SM") && sid.count == 34)
            #expect(body["status"]?.string == "queued")
            #expect(body["to"]?.string == "+2348031234567")
            #expect(body["body"]?.string == "Hello there! 👋")
            #expect(body["num_segments"]?.string == "1")

            let received = try #require(double.received(.twilio).first)
            let expected = Data("\(double.configuration.twilioAccountSID):test-auth-token".utf8).base64EncodedString()
            #expect(received.header("authorization") == "Basic \(expected)")
            #expect(received.form["To"] == "+2348031234567")
            #expect(received.form["Body"] == "Hello there! 👋")

            let refused = try await transport.execute(twilioRequest(double, password: "wrong"))
            #expect(refused.status == 401)
            #expect(json(refused)?["code"]?.number == 20003)
        }
    }

    @Test("other methods and an empty POST body work")
    func methods() async throws {
        try await withTransport { double, transport in
            let get = try await transport.execute(HTTPRequest(method: "GET", url: "\(double.baseURL)/nothing"))
            #expect(get.status == 400)  // Meta's answer to an unknown path
            let empty = try await transport.execute(HTTPRequest(url: "\(double.baseURL)/v21.0/1/messages",
                                                               headers: [("Authorization", "Bearer test-access-token")]))
            #expect(empty.status == 400)
            #expect(json(empty)?["error"]?["code"]?.number == 100)
            let received = double.received()
            #expect(received.map(\.method) == ["GET", "POST"])
            #expect(received.last?.body == [])
        }
    }

    @Test("100 concurrent requests all succeed over a few reused connections")
    func concurrentRequestsReuseConnections() async throws {
        try await withTransport(maxInFlight: 16) { double, transport in
            for round in 1...2 {
                let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                    for index in 0..<100 {
                        group.addTask {
                            try await transport.execute(whatsAppRequest(double, to: "+23480300\(10000 + index)")).status
                        }
                    }
                    return try await group.reduce(into: [Int]()) { $0.append($1) }
                }
                #expect(statuses.count == 100)
                #expect(statuses.allSatisfy { $0 == 200 }, "round \(round)")
            }
            #expect(double.requestCount == 200)
            #expect(Set(double.received().compactMap { $0.json?["to"]?.string }).count == 100)
            let statistics = transport.statistics
            #expect(statistics.transfersCompleted == 200)
            // At most maxInFlight connections, reused by the second round.
            #expect(statistics.connectionsOpened <= 16)
            #expect(double.httpConnectionCount <= 16)
        }
    }

    @Test("kept-alive connections stay watched while idle and leave the epoll set when the server closes them")
    func closedIdleConnectionsAreDropped() async throws {
        let double = try await ProviderDouble.start()
        let transport = CurlTransport(maxInFlight: 64, logger: Logger(label: "herald.transport.tests"))
        defer { transport.shutdown() }
        let outcomes = await transport.perform((0..<20).map { .http(whatsAppRequest(double, to: "+23480300\(10000 + $0)")) })
        #expect(outcomes.map { try? $0.result.get().status } == Array(repeating: 200, count: 20))
        let opened = transport.statistics.connectionsOpened
        #expect(opened >= 2, "the burst should have opened several connections")
        // Between transfers the engine keeps each idle connection's socket in its epoll set.
        let parked = try await eventually(within: .seconds(5)) { transport.statistics.socketsWatched == opened }
        #expect(parked, "\(transport.statistics.socketsWatched) sockets watched for \(opened) idle connections")
        // Closed by the server, each reads as end of file: the engine must take it out of the
        // set, or it is reported ready, unread, on every pass (a busy loop).
        await double.stop()
        let dropped = try await eventually(within: .seconds(5)) { transport.statistics.socketsWatched == 0 }
        #expect(dropped, "\(transport.statistics.socketsWatched) closed connections still watched")
        // New connections (on descriptors the closed ones may have freed) are watched as before.
        let next = try await ProviderDouble.start()
        let again = await transport.perform((0..<20).map { .http(whatsAppRequest(next, to: "+23480300\(20000 + $0)")) })
        await next.stop()
        #expect(again.map { try? $0.result.get().status } == Array(repeating: 200, count: 20))
    }

    @Test("connection refused is notSent")
    func connectionRefused() async throws {
        let transport = CurlTransport(logger: Logger(label: "test"))
        defer { transport.shutdown() }
        let error = await #expect(throws: TransportError.self) {
            _ = try await transport.execute(HTTPRequest(url: "http://127.0.0.1:1/v21.0/1/messages", body: [1]))
        }
        #expect(error?.kind == .notSent)
        #expect(error?.curlCode == 7)  // CURLE_COULDNT_CONNECT
    }

    @Test("an unresolvable host is notSent")
    func unresolvableHost() async throws {
        let transport = CurlTransport(logger: Logger(label: "test"))
        defer { transport.shutdown() }
        let error = await #expect(throws: TransportError.self) {
            _ = try await transport.execute(HTTPRequest(url: "http://herald-does-not-exist.invalid/x", timeout: .seconds(10)))
        }
        #expect(error?.kind == .notSent)
    }

    @Test("request timeouts fire on time, one after another, whatever their sub-millisecond phase")
    func timeoutsKeepFiring() async throws {
        // Each timeout is a libcurl timer the transport's event loop must act on when it falls
        // due; one missed (acted on a hair early, and never re-armed) leaves its request waiting
        // for the server's 10 s answer.
        try await withTransport(maxInFlight: 4) { double, transport in
            double.latency = .seconds(10)
            let clock = ContinuousClock()
            for milliseconds in stride(from: 40, through: 157, by: 3) {
                let start = clock.now
                let error = await #expect(throws: TransportError.self) {
                    _ = try await transport.execute(whatsAppRequest(double, timeout: .milliseconds(milliseconds)))
                }
                #expect(error?.curlCode == 28, "timeout \(milliseconds) ms")  // CURLE_OPERATION_TIMEDOUT
                #expect(clock.now - start < .seconds(3), "timeout \(milliseconds) ms took \(clock.now - start)")
            }
        }
    }

    @Test("a server slower than the request timeout is ambiguous, on a fresh and on a reused connection")
    func timeoutIsAmbiguous() async throws {
        try await withTransport(maxInFlight: 1) { double, transport in
            double.enqueue(.delayed(by: .seconds(3)), for: .whatsApp)
            let clock = ContinuousClock()
            let start = clock.now
            let fresh = await #expect(throws: TransportError.self) {
                _ = try await transport.execute(whatsAppRequest(double, timeout: .milliseconds(800)))
            }
            #expect(fresh?.kind == .ambiguous)
            #expect(fresh?.curlCode == 28)  // CURLE_OPERATION_TIMEDOUT
            #expect(clock.now - start < .seconds(2.5))

            // Warm a connection, then time out on it.
            let warm = try await transport.execute(whatsAppRequest(double))
            #expect(warm.status == 200)
            double.enqueue(.delayed(by: .seconds(3)), for: .whatsApp)
            let reused = await #expect(throws: TransportError.self) {
                _ = try await transport.execute(whatsAppRequest(double, timeout: .milliseconds(800)))
            }
            #expect(reused?.kind == .ambiguous)
            // The double counts a request once it has read it, which on a busy machine can come a
            // little after the client gave up on the answer.
            let deadline = clock.now + .seconds(5)
            while double.requestCount < 3, clock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            #expect(double.requestCount == 3)
        }
    }

    @Test("a connection closed without an answer is ambiguous")
    func closedConnectionIsAmbiguous() async throws {
        try await withTransport { double, transport in
            double.enqueue(.closeConnection, for: .whatsApp)
            let error = await #expect(throws: TransportError.self) {
                _ = try await transport.execute(whatsAppRequest(double))
            }
            #expect(error?.kind == .ambiguous)
            #expect(double.requestCount == 1)
            let next = try await transport.execute(whatsAppRequest(double))
            #expect(next.status == 200)
        }
    }

    @Test("scripted faults and recipient rules come back in the providers' shapes")
    func scriptedFaults() async throws {
        try await withTransport { double, transport in
            double.enqueue(.serverError(503), for: .whatsApp)
            double.enqueue(.rateLimited(retryAfter: 2), for: .whatsApp)
            double.reject(recipient: "+2348039999999", on: .whatsApp, with: .error(code: 131026))
            double.reject(recipient: "+15005550001", on: .twilio, with: .error(code: 21211))

            let unavailable = try await transport.execute(whatsAppRequest(double))
            #expect(unavailable.status == 503)
            let limited = try await transport.execute(whatsAppRequest(double))
            #expect(limited.status == 429)
            #expect(limited.headers["retry-after"] == "2")
            #expect(json(limited)?["error"]?["code"]?.number == 130429)
            let normal = try await transport.execute(whatsAppRequest(double))
            #expect(normal.status == 200)

            let undeliverable = try await transport.execute(whatsAppRequest(double, to: "2348039999999"))
            #expect(undeliverable.status == 400)
            let error = try #require(json(undeliverable)?["error"])
            #expect(error["code"]?.number == 131026)
            #expect(error["type"]?.string == "OAuthException")
            #expect(error["error_data"]?["messaging_product"]?.string == "whatsapp")
            #expect(error["fbtrace_id"]?.string?.isEmpty == false)

            let invalid = try await transport.execute(twilioRequest(double, to: "+15005550001"))
            #expect(invalid.status == 400)
            #expect(json(invalid)?["code"]?.number == 21211)
            #expect(json(invalid)?["more_info"]?.string == "https://www.twilio.com/docs/errors/21211")

            let unauthorized = try await transport.execute(whatsAppRequest(double, token: "nope"))
            #expect(unauthorized.status == 401)
            #expect(json(unauthorized)?["error"]?["code"]?.number == 190)

            var garbage = whatsAppRequest(double)
            garbage.body = Array("{not json".utf8)
            let bad = try await transport.execute(garbage)
            #expect(bad.status == 400)
            #expect(json(bad)?["error"]?["code"]?.number == 100)
        }
    }

    @Test("cancelling the awaiting task aborts the transfer promptly")
    func cancellation() async throws {
        try await withTransport { double, transport in
            double.latency = .seconds(5)
            let clock = ContinuousClock()
            let task = Task {
                try await transport.execute(whatsAppRequest(double, timeout: .seconds(30)))
            }
            #expect(await double.waitForRequests(1))
            // Timed from the cancellation (the server answers only after 5 s), not from the
            // start: under the parallel suite's load the request alone can take seconds to arrive.
            let start = clock.now
            task.cancel()
            let result = await task.result
            #expect(clock.now - start < .seconds(2))
            let error = try #require(result.failure as? TransportError)
            #expect(error.isCancelled)
            #expect(error.kind == .ambiguous)  // it had reached the server

            // Cancelled before it was ever handed over: notSent.
            let early = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return try await transport.execute(whatsAppRequest(double))
            }
            let earlyError = try #require(await early.result.failure as? TransportError)
            #expect(earlyError.isCancelled)
            #expect(earlyError.kind == .notSent)
        }
    }

    @Test("a batch returns each outcome at its request's index, failures included")
    func batchKeepsOrder() async throws {
        try await withTransport(maxInFlight: 8) { double, transport in
            double.enqueue(.error(code: 131026), for: .whatsApp)
            var requests: [TransportRequest] = (0..<40).map { .http(whatsAppRequest(double, to: "+23480300\(10000 + $0)")) }
            requests.insert(.http(HTTPRequest(url: "http://127.0.0.1:1/v21.0/1/messages", body: [1])), at: 7)
            let outcomes = await transport.perform(requests)

            #expect(outcomes.count == 41)
            #expect(outcomes[7].result.failure?.kind == .notSent)
            var statuses: [Int] = []
            for (index, outcome) in outcomes.enumerated() where index != 7 {
                let response = try outcome.result.get()
                statuses.append(response.status)
                if response.status == 200 {
                    // The answer belongs to the request at this index.
                    let to = index < 7 ? index : index - 1
                    #expect(json(response)?["contacts"]?[0]?["input"]?.string == "+23480300\(10000 + to)")
                    #expect(outcome.elapsed > .zero)
                }
            }
            #expect(statuses.filter { $0 == 400 }.count == 1)  // the scripted rejection, wherever it landed
            #expect(statuses.filter { $0 == 200 }.count == 39)
            #expect(await transport.perform([]).isEmpty)
        }
    }

    @Test("cancelling a batch aborts all of its transfers: in flight ambiguous, queued notSent")
    func batchCancellation() async throws {
        try await withTransport(maxInFlight: 2) { double, transport in
            // A warm connection first: until libcurl has seen the server answer (HTTP/1.1, so
            // no multiplexing), CURLOPT_PIPEWAIT holds the second transfer back.
            let warm = await transport.perform([.http(whatsAppRequest(double))])
            #expect(warm[0].result.failure == nil)
            double.latency = .seconds(5)
            let clock = ContinuousClock()
            let task = Task {
                await transport.perform((0..<5).map { _ in .http(whatsAppRequest(double, timeout: .seconds(30))) })
            }
            #expect(await double.waitForRequests(3))
            // Timed from the cancellation, not from the start (see `cancellation`).
            let start = clock.now
            task.cancel()
            let outcomes = await task.value
            #expect(clock.now - start < .seconds(3))
            let errors = outcomes.compactMap(\.result.failure)
            #expect(errors.count == 5)
            #expect(errors.allSatisfy { $0.isCancelled })
            #expect(errors.filter { $0.kind == .ambiguous }.count == 2)
            #expect(errors.filter { $0.kind == .notSent }.count == 3)
            #expect(errors.filter(\.isNotStarted).count == 3, "the queued ones never left: no attempt")
        }
    }

    @Test("transfers still queued when the transport's clock passes their start deadline never start; those under way finish")
    func startDeadline() async throws {
        let clock = ManualClock()
        try await withTransport(maxInFlight: 1, clock: clock) { double, transport in
            let warm = await transport.perform([.http(whatsAppRequest(double))])
            #expect(warm[0].result.failure == nil)
            let before = double.received(.whatsApp).count
            // Long enough that the test advances the clock before the first answer comes back,
            // however busy the machine.
            double.latency = .seconds(3)
            let deadline = clock.now + .seconds(10)
            // One slot: the first starts at once; the other two wait for it.
            let batch = Task { await transport.perform((0..<3).map { _ in .http(whatsAppRequest(double, timeout: .seconds(20))) },
                                                       startingBy: deadline) }
            #expect(await double.waitForRequests(before + 1))
            // The deadline passes on the transport's clock while the first is under way: the
            // other two are refused without touching the network, though only 3 s pass.
            clock.advance(by: .seconds(11))
            let outcomes = await batch.value
            #expect(try outcomes[0].result.get().status == 200)
            for outcome in outcomes[1...] {
                let error = try #require(outcome.result.failure)
                #expect(error.isNotStarted)
                #expect(error.kind == .notSent)
                #expect(error.curlCode == TransportError.deadlineCode)
            }
            #expect(double.received(.whatsApp).count == before + 1)
            // No deadline: everything goes.
            double.latency = .zero
            let all = await transport.perform((0..<2).map { _ in .http(whatsAppRequest(double)) })
            #expect(all.allSatisfy { $0.result.failure == nil })
        }
    }

    @Test("shutdown fails pending transfers, is idempotent, and refuses new ones")
    func shutdownFailsPending() async throws {
        let double = try await ProviderDouble.start()
        let transport = CurlTransport(maxInFlight: 1, logger: Logger(label: "test"))
        double.latency = .seconds(10)
        let clock = ContinuousClock()
        // One submission, so once the first request arrives the other two are surely queued.
        let batch = Task { await transport.perform((0..<3).map { _ in .http(whatsAppRequest(double, timeout: .seconds(30))) }) }
        #expect(await double.waitForRequests(1))
        // Timed from the shutdown, not from the start: under the parallel suite's load the first
        // request alone can take a second or more to arrive.
        let start = clock.now
        transport.shutdown()
        transport.shutdown()
        let errors = await batch.value.compactMap { $0.result.failure }
        #expect(clock.now - start < .seconds(3))
        #expect(errors.count == 3)
        #expect(errors.allSatisfy { $0.isShutdown })
        #expect(errors.filter { $0.kind == .ambiguous }.count == 1)  // the one in flight
        #expect(errors.filter { $0.kind == .notSent }.count == 2)    // the queued ones

        let after = await #expect(throws: TransportError.self) {
            _ = try await transport.execute(whatsAppRequest(double))
        }
        #expect(after?.isShutdown == true)
        #expect(after?.kind == .notSent)
        await double.stop()
    }
}

@Suite("CurlTransport over SMTP")
struct CurlTransportSMTPTests {
    static let message = Array((
        "From: Herald <news@herald.test>\r\n" +
        "To: Ada <ada@example.com>\r\n" +
        "Subject: Hello\r\n" +
        "Message-ID: <1@herald.test>\r\n" +
        "\r\n" +
        "Hi Ada,\r\n" +
        ".a line that starts with a dot\r\n" +
        ".\r\n" +
        "..\r\n" +
        "Bye\r\n"
    ).utf8)

    @Test("a mail is delivered with its envelope and exact data")
    func delivered() async throws {
        try await withTransport { double, transport in
            try await transport.send(SMTPEnvelope(url: double.smtpURL, mailFrom: "Herald <news@herald.test>",
                                                  recipients: ["ada@example.com", "<bob@example.com>"],
                                                  message: Self.message))
            let mail = try #require(double.receivedMails().first)
            #expect(mail.mailFrom == "news@herald.test")
            #expect(mail.recipients == ["ada@example.com", "bob@example.com"])
            #expect(mail.data == Self.message)
            #expect(mail.replyCode == 250)
            #expect(mail.authenticatedUser == nil)
            #expect(double.acceptedMailCount == 1)
        }
    }

    @Test("a recipient refused with 550 is smtpRejected 550; 450 is 450")
    func recipientRejected() async throws {
        try await withTransport { double, transport in
            double.rejectMail(recipient: "gone@example.com", code: 550)
            double.rejectMail(recipient: "busy@example.com", code: 450)
            let permanent = await #expect(throws: TransportError.self) {
                try await transport.send(SMTPEnvelope(url: double.smtpURL, mailFrom: "news@herald.test",
                                                      recipients: ["gone@example.com"], message: Self.message))
            }
            #expect(permanent?.kind == .smtpRejected)
            #expect(permanent?.smtpCode == 550)
            #expect(permanent?.message == "SMTP server replied 550 5.1.1 No such user here")
            let temporary = await #expect(throws: TransportError.self) {
                try await transport.send(SMTPEnvelope(url: double.smtpURL, mailFrom: "news@herald.test",
                                                      recipients: ["busy@example.com"], message: Self.message))
            }
            #expect(temporary?.kind == .smtpRejected)
            #expect(temporary?.smtpCode == 450)
            #expect(double.receivedMails().isEmpty)
        }
    }

    @Test("data refused after the dot is smtpRejected with the server's code")
    func dataRejected() async throws {
        try await withTransport { double, transport in
            double.enqueueMail([.reply(554), .delayed(by: .milliseconds(100), then: .reply(451, "4.7.28 Rate limited, try later"))])
            for expected in [554, 451] {
                let error = await #expect(throws: TransportError.self) {
                    try await transport.send(SMTPEnvelope(url: double.smtpURL, mailFrom: "news@herald.test",
                                                          recipients: ["ada@example.com"], message: Self.message))
                }
                #expect(error?.kind == .smtpRejected)
                #expect(error?.smtpCode == expected)
                if expected == 451 { #expect(error?.message == "SMTP server replied 451 4.7.28 Rate limited, try later") }
            }
            #expect(double.receivedMails().count == 2)
            try await transport.send(SMTPEnvelope(url: double.smtpURL, mailFrom: "news@herald.test",
                                                  recipients: ["ada@example.com"], message: Self.message))
            #expect(double.receivedMails().map(\.replyCode) == [554, 451, 250])
        }
    }

    @Test("login with the configured credentials; wrong ones are smtpRejected 535")
    func authentication() async throws {
        let configuration = ProviderDouble.Configuration(smtpUsername: "mailer", smtpPassword: "s3cret")
        try await withTransport(configuration: configuration) { double, transport in
            try await transport.send(SMTPEnvelope(url: double.smtpURL, mailFrom: "news@herald.test",
                                                  recipients: ["ada@example.com"], message: Self.message,
                                                  username: "mailer", password: "s3cret"))
            #expect(double.receivedMails().first?.authenticatedUser == "mailer")

            let error = await #expect(throws: TransportError.self) {
                try await transport.send(SMTPEnvelope(url: double.smtpURL, mailFrom: "news@herald.test",
                                                      recipients: ["ada@example.com"], message: Self.message,
                                                      username: "mailer", password: "wrong"))
            }
            #expect(error?.kind == .smtpRejected)
            #expect(error?.smtpCode == 535)
            #expect(error?.message.contains("Authentication credentials invalid") == true)
        }
    }

    @Test("requireTLS refuses a server without STARTTLS, before sending")
    func requireTLS() async throws {
        try await withTransport { double, transport in
            let error = await #expect(throws: TransportError.self) {
                try await transport.send(SMTPEnvelope(url: double.smtpURL, mailFrom: "news@herald.test",
                                                      recipients: ["ada@example.com"], message: Self.message,
                                                      requireTLS: true))
            }
            #expect(error?.kind == .notSent)
            #expect(double.receivedMails().isEmpty)
        }
    }

    @Test("an SMTP server that is not there is notSent; a dropped connection after the data is ambiguous")
    func networkFailures() async throws {
        try await withTransport { double, transport in
            let refused = await #expect(throws: TransportError.self) {
                try await transport.send(SMTPEnvelope(url: "smtp://127.0.0.1:1", mailFrom: "news@herald.test",
                                                      recipients: ["ada@example.com"], message: Self.message))
            }
            #expect(refused?.kind == .notSent)

            double.enqueueMail([.closeConnection])
            let dropped = await #expect(throws: TransportError.self) {
                try await transport.send(SMTPEnvelope(url: double.smtpURL, mailFrom: "news@herald.test",
                                                      recipients: ["ada@example.com"], message: Self.message))
            }
            #expect(dropped?.kind == .ambiguous)
            #expect(double.receivedMails().count == 1)
        }
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
