import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// A stand-in for Meta's Graph API template list, on 127.0.0.1 with a free port:
/// `GET /{version}/{waba_id}/message_templates` answered as Meta answers it (a `data` array of
/// templates with the asked-for fields, `paging.cursors` and `paging.next` while more pages
/// remain), Meta's error shape for a wrong token (190) or an unknown account (100). It also
/// writes `message_template_status_update` notifications as Meta posts them.
///
/// ```swift
/// let graph = try await GraphTemplatesDouble.start(wabaID: "102290129340398")
/// graph.setTemplates([.init(id: "1", name: "promo", status: "APPROVED", body: "Hi {{1}}")])
/// // a channel's base_url: "\(graph.baseURL)/v21.0", waba_id "102290129340398"
/// ```
///
/// - Important: Call ``stop()`` when done.
public final class GraphTemplatesDouble: Sendable {
    /// One template as Meta lists it.
    public struct Template: Sendable, Equatable {
        public var id: String
        public var name: String
        public var language: String
        /// Meta's spelling: APPROVED, PENDING, REJECTED, PAUSED, DISABLED, IN_APPEAL, …
        public var status: String
        public var category: String
        /// The `components` array as JSON text, e.g. `[{"type":"BODY","text":"Hi {{1}}"}]`;
        /// nil: one BODY component with ``body``.
        public var components: String?
        public var body: String
        public var rejectedReason: String

        public init(id: String, name: String, language: String = "en_US", status: String = "APPROVED",
                    category: String = "MARKETING", body: String = "Hello {{1}}", components: String? = nil,
                    rejectedReason: String = "NONE") {
            self.id = id
            self.name = name
            self.language = language
            self.status = status
            self.category = category
            self.body = body
            self.components = components
            self.rejectedReason = rejectedReason
        }

        var json: String {
            let components = self.components ?? #"[{"type":"BODY","text":\#(Self.quote(body))}]"#
            return #"{"name":\#(Self.quote(name)),"components":\#(components),"language":\#(Self.quote(language)),"status":\#(Self.quote(status)),"category":\#(Self.quote(category)),"rejected_reason":\#(Self.quote(rejectedReason)),"id":\#(Self.quote(id))}"#
        }

        static func quote(_ s: String) -> String {
            let data = try? JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])
            let array = data.map { String(decoding: $0, as: UTF8.self) } ?? "[\"\"]"
            return String(array.dropFirst().dropLast())
        }
    }

    /// One request the double received.
    public struct Received: Sendable, Equatable {
        public var path: String
        public var query: [String: String]
        public var authorization: String?
    }

    struct State {
        var templates: [Template] = []
        var pageSize = 2
        var received: [Received] = []
    }

    public let wabaID: String
    public let accessToken: String
    /// `http://127.0.0.1:PORT`; a channel's `base_url` is this plus a version, e.g. `/v21.0`.
    public let baseURL: String
    private let shared: Shared
    private let server: Mutex<Task<Void, any Error>?>

    private init(wabaID: String, accessToken: String, port: Int, shared: Shared, server: Task<Void, any Error>) {
        self.wabaID = wabaID
        self.accessToken = accessToken
        self.baseURL = "http://127.0.0.1:\(port)"
        self.shared = shared
        self.server = Mutex(server)
    }

    deinit { server.withLock { $0?.cancel() } }

    /// Starts the server on a free port of 127.0.0.1.
    /// - Parameters:
    ///   - wabaID: the only WhatsApp Business Account it knows.
    ///   - accessToken: the bearer token requests must carry.
    public static func start(wabaID: String = "102290129340398", accessToken: String = "test-access-token") async throws -> GraphTemplatesDouble {
        let shared = Shared(wabaID: wabaID, accessToken: accessToken)
        var logger = Logger(label: "herald.graph-templates-double")
        logger.logLevel = .critical
        let responder = CallbackResponder<BasicRequestContext> { request, _ in
            shared.respond(to: request)
        }
        let (port, task) = try await LocalHTTPServer.start(responder, logger: logger, name: "the Graph API double")
        return GraphTemplatesDouble(wabaID: wabaID, accessToken: accessToken, port: port, shared: shared, server: task)
    }

    /// Runs `body` with a double started for it and stops the double when `body` ends, also when
    /// it throws.
    public static func with<T: Sendable>(wabaID: String = "102290129340398",
                                         _ body: (GraphTemplatesDouble) async throws -> T) async throws -> T {
        try await scoped(try await start(wabaID: wabaID), cleanUp: { await $0.stop() }, body)
    }

    /// Stops the server. Idempotent.
    public func stop() async {
        await LocalHTTPServer.stop(server)
    }

    /// From now on, the account lists exactly these templates, in this order.
    public func setTemplates(_ templates: [Template]) { shared.state.withLock { $0.templates = templates } }

    /// Templates per page (default 2, whatever `limit` asks, so a few templates make several pages).
    public func setPageSize(_ size: Int) { shared.state.withLock { $0.pageSize = max(1, size) } }

    /// The requests received so far.
    public func received() -> [Received] { shared.state.withLock { $0.received } }

    /// A `message_template_status_update` notification body as Meta posts it to the webhook.
    public static func statusNotification(wabaID: String, event: String, templateID: String, name: String,
                                          language: String = "en_US", reason: String = "NONE") -> [UInt8] {
        let q = Template.quote
        let text = #"{"entry":[{"id":\#(q(wabaID)),"time":1749416383,"changes":[{"value":{"event":\#(q(event)),"message_template_id":\#(templateID),"message_template_name":\#(q(name)),"message_template_language":\#(q(language)),"reason":\#(q(reason))},"field":"message_template_status_update"}]}],"object":"whatsapp_business_account"}"#
        return Array(text.utf8)
    }

    /// What the responder and the double share.
    private final class Shared: Sendable {
        let state = Mutex(State())
        let wabaID: String
        let accessToken: String

        init(wabaID: String, accessToken: String) {
            self.wabaID = wabaID
            self.accessToken = accessToken
        }

        func respond(to request: Request) -> Response {
            let path = request.uri.path
            var query: [String: String] = [:]
            for pair in (request.uri.query ?? "").split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1).map(String.init)
                let key = kv[0].removingPercentEncoding ?? kv[0]
                query[key] = kv.count > 1 ? (kv[1].removingPercentEncoding ?? kv[1]) : ""
            }
            let authorization = request.headers[.authorization]
            let parts = path.split(separator: "/").map(String.init)
            let (templates, pageSize) = state.withLock { s -> ([Template], Int) in
                s.received.append(Received(path: path, query: query, authorization: authorization))
                return (s.templates, s.pageSize)
            }
            guard request.method == .get, parts.count == 3, parts[2] == "message_templates" else {
                return Self.error(404, code: 100, type: "GraphMethodException", "Unknown path components: \(path)")
            }
            guard authorization == "Bearer \(accessToken)" else {
                return Self.error(401, code: 190, type: "OAuthException", "Invalid OAuth access token - Cannot parse access token")
            }
            guard parts[1] == wabaID else {
                return Self.error(400, code: 100, type: "GraphMethodException",
                                  "Unsupported get request. Object with ID '\(parts[1])' does not exist, cannot be loaded due to missing permissions, or does not support this operation.")
            }
            var start = 0
            if let after = query["after"] {
                guard let data = Data(base64Encoded: after), let text = String(data: data, encoding: .utf8),
                      text.hasPrefix("offset:"), let offset = Int(text.dropFirst(7)), (0...templates.count).contains(offset) else {
                    return Self.error(400, code: 100, type: "OAuthException", "Invalid parameter: after")
                }
                start = offset
            }
            let end = min(templates.count, start + pageSize)
            let page = templates[start..<end]
            func cursor(_ offset: Int) -> String { Data("offset:\(offset)".utf8).base64EncodedString() }
            var body = #"{"data":["# + page.map(\.json).joined(separator: ",") + "]"
            if !page.isEmpty {
                body += #","paging":{"cursors":{"before":"\#(cursor(start))","after":"\#(cursor(end))"}"#
                if end < templates.count {
                    let after = cursor(end).addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
                    body += #","next":"https://graph.facebook.com/v21.0/\#(wabaID)/message_templates?fields=name&limit=\#(pageSize)&after=\#(after)""#
                }
                body += "}"
            }
            body += "}"
            return Self.json(200, body)
        }

        static func error(_ status: Int, code: Int, type: String, _ message: String) -> Response {
            json(status, #"{"error":{"message":\#(Template.quote(message)),"type":"\#(type)","code":\#(code),"fbtrace_id":"AbCdEfGh"}}"#)
        }

        static func json(_ status: Int, _ body: String) -> Response {
            Response(status: .init(code: status), headers: [.contentType: "application/json"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
        }
    }
}
