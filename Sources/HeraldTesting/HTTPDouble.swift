import Foundation
import Hummingbird
import NIOCore

/// Request context that keeps the channel, to learn the client's port (one per connection) and
/// to close the connection when a fault says so.
struct DoubleRequestContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// The HTTP half of ``ProviderDouble``: Meta's and Twilio's answers, byte for byte in shape.
enum HTTPDouble {
    static let maxBody = 16 << 20

    static func respond(to request: Request, context: DoubleRequestContext, state: DoubleState) async -> Response {
        var request = request
        let receivedAt = ContinuousClock.now
        let receivedDate = Date()
        let body: [UInt8]
        do {
            body = Array(try await request.collectBody(upTo: maxBody).readableBytesView)
        } catch {
            return rawResponse(status: 413, headers: [:], body: "")
        }
        var headers: [String: String] = [:]
        for field in request.headers {
            let name = field.name.canonicalName
            headers[name] = headers[name].map { "\($0), \(field.value)" } ?? field.value
        }
        let path = request.uri.path
        let components = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        let endpoint = endpoint(method: request.method.rawValue, components: components)
        let contentType = headers["content-type"]?.lowercased() ?? ""
        let received = ReceivedRequest(
            endpoint: endpoint, receivedAt: receivedAt, receivedDate: receivedDate,
            method: request.method.rawValue, path: path, query: request.uri.query ?? "",
            headers: headers, body: body,
            json: contentType.contains("json") || body.first == UInt8(ascii: "{") ? ReceivedJSON(parsing: body) : nil,
            form: contentType.contains("x-www-form-urlencoded") ? parseForm(body) : [:],
            clientPort: context.channel.remoteAddress?.port, responseStatus: nil)

        let (index, script, latency) = state.withLock { inner -> (Int, ProviderDouble.Fault?, Duration) in
            inner.requests.append(received)
            if let port = received.clientPort { inner.httpConnections.insert(port) }
            var script: ProviderDouble.Fault?
            if let endpoint, var queue = inner.scripts[endpoint], !queue.isEmpty {
                script = queue.removeFirst()
                inner.scripts[endpoint] = queue
            }
            return (inner.requests.count - 1, script, inner.latency)
        }

        var fault = script
        if fault == nil, let endpoint, let recipient = recipient(of: received, endpoint: endpoint) {
            fault = state.withLock { $0.recipientRules[endpoint]?[DoubleState.digits(recipient)] }
        }
        let delay = fault?.delay ?? latency
        if delay > .zero {
            try? await Task.sleep(for: delay)
        }

        let answer: Answer
        switch fault?.action {
        case .closeConnection?:
            context.channel.close(promise: nil)
            return rawResponse(status: 500, headers: [:], body: "")
        case .raw(let status, let headers, let body)?:
            answer = Answer(status: status, headers: headers, body: body)
        case .providerError(let code, let status, let message)?:
            answer = providerError(endpoint, code: code, status: status, message: message)
        case .rateLimited(let retryAfter)?:
            var limited = providerError(endpoint, code: endpoint == .twilio ? 20429 : 130429, status: 429, message: nil)
            if let retryAfter { limited.headers["Retry-After"] = "\(retryAfter)" }
            answer = limited
        case .serverError(let status)?:
            answer = providerError(endpoint, code: endpoint == .twilio ? 20000 + status : 131000, status: status, message: nil)
        case .respond?, nil:
            switch endpoint {
            case .whatsApp?: answer = WhatsAppDouble.answer(received, components: components, configuration: state.configuration,
                                                            templates: state.withLock { $0.whatsAppTemplates })
            case .twilio?: answer = TwilioDouble.answer(received, components: components, configuration: state.configuration)
            case nil: answer = notFound(path: path)
            }
        }
        state.withLock { inner in
            if inner.requests.indices.contains(index) { inner.requests[index].responseStatus = answer.status }
        }
        return rawResponse(status: answer.status, headers: answer.headers, body: answer.body)
    }

    static func endpoint(method: String, components: [String]) -> ProviderDouble.Endpoint? {
        guard method == "POST" else { return nil }
        if components.count == 4, components[0] == "2010-04-01", components[1] == "Accounts",
           components[3] == "Messages.json" {
            return .twilio
        }
        if components.count >= 2, components.last == "messages" {
            return .whatsApp
        }
        return nil
    }

    static func recipient(of request: ReceivedRequest, endpoint: ProviderDouble.Endpoint) -> String? {
        switch endpoint {
        case .whatsApp: request.json?["to"]?.string
        case .twilio: request.form["To"]
        }
    }

    struct Answer {
        var status: Int
        var headers: [String: String]
        var body: String
    }

    static func json(_ status: Int, _ object: Any, headers: [String: String] = [:]) -> Answer {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        var headers = headers
        headers["Content-Type"] = "application/json"
        return Answer(status: status, headers: headers, body: String(decoding: data, as: UTF8.self))
    }

    static func providerError(_ endpoint: ProviderDouble.Endpoint?, code: Int, status: Int?, message: String?) -> Answer {
        switch endpoint {
        case .twilio?: TwilioDouble.error(code: code, status: status, message: message)
        case .whatsApp?, nil: WhatsAppDouble.error(code: code, status: status, message: message)
        }
    }

    static func notFound(path: String) -> Answer {
        if path.hasPrefix("/2010-04-01") {
            return TwilioDouble.error(code: 20404, status: 404,
                                      message: "The requested resource \(path) was not found")
        }
        return WhatsAppDouble.error(code: 2500, status: 400, message: "Unknown path components: \(path)")
    }

    static func rawResponse(status: Int, headers: [String: String], body: String) -> Response {
        var fields = HTTPFields()
        for (name, value) in headers {
            if let name = HTTPFields.Element.Name(name) { fields.append(.init(name: name, value: value)) }
        }
        return Response(status: .init(code: status), headers: fields,
                        body: ResponseBody(byteBuffer: ByteBuffer(string: body)))
    }

    static func parseForm(_ body: [UInt8]) -> [String: String] {
        var form: [String: String] = [:]
        for pair in String(decoding: body, as: UTF8.self).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let decode = { (part: Substring) -> String in
                let spaced = part.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            let key = decode(parts[0])
            guard !key.isEmpty else { continue }
            form[key] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return form
    }

    static func randomString(_ alphabet: String, count: Int) -> String {
        let characters = Array(alphabet)
        return String((0..<count).map { _ in characters.randomElement()! })
    }
}
