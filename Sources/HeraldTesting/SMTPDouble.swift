import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// The SMTP half of ``ProviderDouble``: a small RFC 5321 server, with STARTTLS (RFC 3207) or
/// implicit TLS when the configuration asks for it.
enum SMTPDouble {
    static func bind(state: DoubleState) async throws -> any Channel {
        let mode = state.configuration.smtpTLS
        let tls: NIOSSLContext? = mode == .none ? nil : try serverContext()
        return try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handlers = channel.pipeline.syncOperations
                    if mode == .implicit, let tls {
                        try handlers.addHandler(NIOSSLServerHandler(context: tls))
                        try handlers.addHandler(SMTPServerHandler(state: state, tls: nil, encrypted: true))
                    } else {
                        try handlers.addHandler(SMTPServerHandler(state: state, tls: tls, encrypted: false))
                    }
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
    }

    static func serverContext() throws -> NIOSSLContext {
        let certificate = try NIOSSLCertificate(bytes: Array(TestCertificates.serverPEM.utf8), format: .pem)
        let key = try NIOSSLPrivateKey(bytes: Array(TestCertificates.serverKeyPEM.utf8), format: .pem)
        return try NIOSSLContext(configuration: .makeServerConfiguration(
            certificateChain: [.certificate(certificate)], privateKey: .privateKey(key)))
    }
}

/// One SMTP session. Lives on its channel's event loop.
final class SMTPServerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Phase {
        case command
        case data
        case authPlain
        case authLoginUser
        case authLoginPassword(user: String)
        case closed
    }

    static let maxBuffered = 32 << 20

    let state: DoubleState
    private var input: [UInt8] = []
    private var readIndex = 0
    private var phase = Phase.command
    /// True while a delayed reply is pending: input waits.
    private var waiting = false
    private var clientName: String?
    private var authenticatedUser: String?
    private var mailFrom: String?
    private var recipients: [String] = []
    private var data: [UInt8] = []
    /// Offered as `STARTTLS` while the session is still plain text.
    private let tls: NIOSSLContext?
    /// Whether the session is encrypted (implicit TLS, or after `STARTTLS`).
    private var encrypted: Bool

    init(state: DoubleState, tls: NIOSSLContext?, encrypted: Bool) {
        self.state = state
        self.tls = tls
        self.encrypted = encrypted
    }

    private var hostname: String { state.configuration.smtpHostname }
    private var requiresAuth: Bool {
        state.configuration.smtpUsername != nil && state.configuration.smtpPassword != nil
    }

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        state.withLock {
            $0.smtpConnectionsAccepted += 1
            $0.smtpChannels[ObjectIdentifier(channel)] = channel
        }
        reply(context, "220 \(hostname) ESMTP Herald provider double ready")
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        let channel = context.channel
        _ = state.withLock { $0.smtpChannels.removeValue(forKey: ObjectIdentifier(channel)) }
        phase = .closed
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        input.append(contentsOf: buffer.readableBytesView)
        if input.count - readIndex > Self.maxBuffered {
            reply(context, "552 5.3.4 Message too big")
            close(context)
            return
        }
        processLines(context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        close(context)
    }

    private func processLines(_ context: ChannelHandlerContext) {
        while !waiting, let newline = input[readIndex...].firstIndex(of: UInt8(ascii: "\n")) {
            let line = Array(input[readIndex...newline])
            readIndex = newline + 1
            handle(line, context)
            if case .closed = phase { return }
        }
        if readIndex > 0, readIndex * 2 >= input.count {
            input.removeFirst(readIndex)
            readIndex = 0
        }
    }

    private func handle(_ rawLine: [UInt8], _ context: ChannelHandlerContext) {
        if case .data = phase {
            handleData(rawLine, context)
            return
        }
        let line = String(decoding: rawLine, as: UTF8.self).trimmingCharacters(in: .newlines)
        switch phase {
        case .authPlain:
            phase = .command
            finishPlain(line, context)
            return
        case .authLoginUser:
            guard let user = Self.base64(line) else { return authFailed(context) }
            phase = .authLoginPassword(user: user)
            reply(context, "334 UGFzc3dvcmQ6")
            return
        case .authLoginPassword(let user):
            phase = .command
            guard let password = Self.base64(line) else { return authFailed(context) }
            login(user: user, password: password, context)
            return
        case .command, .data, .closed:
            break
        }

        let verb = line.prefix { $0 != " " }.uppercased()
        let argument = line.dropFirst(verb.count).trimmingCharacters(in: .whitespaces)
        switch verb {
        case "EHLO":
            clientName = argument
            resetTransaction()
            var lines = ["250-\(hostname) greets \(argument)", "250-8BITMIME", "250-ENHANCEDSTATUSCODES",
                         "250-SIZE \(Self.maxBuffered)"]
            if tls != nil, !encrypted { lines.append("250-STARTTLS") }
            if requiresAuth { lines.append("250-AUTH PLAIN LOGIN") }
            lines.append("250 SMTPUTF8")
            reply(context, lines.joined(separator: "\r\n"))
        case "HELO":
            clientName = argument
            resetTransaction()
            reply(context, "250 \(hostname)")
        case "AUTH":
            startAuth(argument, context)
        case "MAIL":
            guard argument.uppercased().hasPrefix("FROM:") else {
                return reply(context, "501 5.5.4 Syntax: MAIL FROM:<address>")
            }
            if requiresAuth, authenticatedUser == nil {
                return reply(context, "530 5.7.0 Authentication required")
            }
            guard mailFrom == nil else { return reply(context, "503 5.5.1 Sender already specified") }
            mailFrom = Self.address(argument.dropFirst(5))
            reply(context, "250 2.1.0 Sender OK")
        case "RCPT":
            guard argument.uppercased().hasPrefix("TO:") else {
                return reply(context, "501 5.5.4 Syntax: RCPT TO:<address>")
            }
            guard mailFrom != nil else { return reply(context, "503 5.5.1 Need MAIL before RCPT") }
            let recipient = Self.address(argument.dropFirst(3))
            if let (code, message) = state.withLock({ $0.mailRecipientRules[recipient.lowercased()] }) {
                return reply(context, "\(code) \(message)")
            }
            recipients.append(recipient)
            reply(context, "250 2.1.5 Recipient OK")
        case "DATA":
            guard mailFrom != nil else { return reply(context, "503 5.5.1 Need MAIL command") }
            guard !recipients.isEmpty else { return reply(context, "554 5.5.1 No valid recipients") }
            phase = .data
            data = []
            reply(context, "354 End data with <CR><LF>.<CR><LF>")
        case "RSET":
            resetTransaction()
            reply(context, "250 2.0.0 OK")
        case "NOOP":
            reply(context, "250 2.0.0 OK")
        case "VRFY":
            reply(context, "252 2.5.2 Cannot VRFY user, but will accept message")
        case "STARTTLS":
            startTLS(argument, context)
        case "QUIT":
            reply(context, "221 2.0.0 Bye")
            close(context)
        case "":
            reply(context, "500 5.5.2 Error: bad syntax")
        default:
            reply(context, "502 5.5.2 Error: command not recognized")
        }
    }

    private func handleData(_ rawLine: [UInt8], _ context: ChannelHandlerContext) {
        if rawLine == Array(".\r\n".utf8) || rawLine == Array(".\n".utf8) {
            phase = .command
            finishMail(context)
            return
        }
        // Dot-unstuffing: a leading "." was doubled by the client.
        if rawLine.first == UInt8(ascii: ".") {
            data.append(contentsOf: rawLine.dropFirst())
        } else {
            data.append(contentsOf: rawLine)
        }
    }

    private func finishMail(_ context: ChannelHandlerContext) {
        let (fault, latency) = state.withLock { inner -> (ProviderDouble.MailFault?, Duration) in
            let fault = inner.mailScripts.isEmpty ? nil : inner.mailScripts.removeFirst()
            return (fault, inner.mailLatency)
        }
        let delay = fault?.delay ?? latency
        let answer: () -> Void = { [self] in
            var code = 250
            var text = ""
            switch fault?.action {
            case .closeConnection?:
                code = 0
            case .reply(let replyCode, let message)?:
                code = replyCode
                text = "\(replyCode) \(message)"
            case .accept?, nil:
                let id = state.withLock { inner -> Int in
                    inner.mailSequence += 1
                    return inner.mailSequence
                }
                text = "250 2.0.0 OK: queued as DBL\(id)"
            }
            let mail = ReceivedMail(receivedAt: .now, receivedDate: Date(), clientName: clientName,
                                    authenticatedUser: authenticatedUser, mailFrom: mailFrom ?? "",
                                    recipients: recipients, data: data, replyCode: code, tls: encrypted)
            state.withLock { $0.mails.append(mail) }
            resetTransaction()
            if code == 0 {
                close(context)
            } else {
                reply(context, text)
            }
        }
        if delay > .zero {
            waiting = true
            context.eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(delay)) { [self] in
                waiting = false
                if case .closed = phase { return }
                answer()
                processLines(context)
            }
        } else {
            answer()
        }
    }

    /// RFC 3207: answer 220, then the TLS handshake; the session starts over inside it (the
    /// client must say EHLO again, and nothing it sent before counts).
    private func startTLS(_ argument: String, _ context: ChannelHandlerContext) {
        guard let tls, !encrypted else { return reply(context, "454 4.7.0 TLS not available") }
        guard argument.isEmpty else { return reply(context, "501 5.5.4 Syntax error (no parameters allowed)") }
        reply(context, "220 2.0.0 Ready to start TLS")
        input.removeAll()
        readIndex = 0
        clientName = nil
        authenticatedUser = nil
        resetTransaction()
        encrypted = true
        // In front of everything: the 220 above is already on its way in plain text.
        do {
            try context.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls), position: .first)
        } catch {
            close(context)
        }
    }

    private func startAuth(_ argument: String, _ context: ChannelHandlerContext) {
        guard requiresAuth else { return reply(context, "503 5.5.1 AUTH not available") }
        guard authenticatedUser == nil else { return reply(context, "503 5.5.1 Already authenticated") }
        let parts = argument.split(separator: " ", maxSplits: 1).map(String.init)
        switch parts.first?.uppercased() {
        case "PLAIN":
            if parts.count > 1 {
                finishPlain(parts[1], context)
            } else {
                phase = .authPlain
                reply(context, "334 ")
            }
        case "LOGIN":
            if parts.count > 1, let user = Self.base64(parts[1]) {
                phase = .authLoginPassword(user: user)
                reply(context, "334 UGFzc3dvcmQ6")
            } else {
                phase = .authLoginUser
                reply(context, "334 VXNlcm5hbWU6")
            }
        default:
            reply(context, "504 5.5.4 Unrecognized authentication type")
        }
    }

    private func finishPlain(_ encoded: String, _ context: ChannelHandlerContext) {
        guard let data = Data(base64Encoded: encoded.trimmingCharacters(in: .whitespaces)) else {
            return authFailed(context)
        }
        // authzid NUL authcid NUL password
        let fields = data.split(separator: 0, omittingEmptySubsequences: false)
        guard fields.count == 3 else { return authFailed(context) }
        login(user: String(decoding: fields[1], as: UTF8.self),
              password: String(decoding: fields[2], as: UTF8.self), context)
    }

    private func login(user: String, password: String, _ context: ChannelHandlerContext) {
        if user == state.configuration.smtpUsername, password == state.configuration.smtpPassword {
            authenticatedUser = user
            reply(context, "235 2.7.0 Authentication successful")
        } else {
            authFailed(context)
        }
    }

    private func authFailed(_ context: ChannelHandlerContext) {
        phase = .command
        reply(context, "535 5.7.8 Authentication credentials invalid")
    }

    private func resetTransaction() {
        mailFrom = nil
        recipients = []
        data = []
    }

    private func reply(_ context: ChannelHandlerContext, _ text: String) {
        guard context.channel.isActive else { return }
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: text + "\r\n")), promise: nil)
    }

    private func close(_ context: ChannelHandlerContext) {
        phase = .closed
        context.close(promise: nil)
    }

    /// `<a@b.c> SIZE=123` → `a@b.c`.
    static func address(_ argument: Substring) -> String {
        let trimmed = argument.trimmingCharacters(in: .whitespaces)
        if let open = trimmed.firstIndex(of: "<"), let close = trimmed[open...].firstIndex(of: ">") {
            return String(trimmed[trimmed.index(after: open)..<close])
        }
        return String(trimmed.prefix { $0 != " " })
    }

    static func base64(_ line: String) -> String? {
        Data(base64Encoded: line.trimmingCharacters(in: .whitespaces)).map { String(decoding: $0, as: UTF8.self) }
    }
}
