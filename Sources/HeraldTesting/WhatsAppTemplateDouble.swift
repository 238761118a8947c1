import Foundation

extension ProviderDouble {
    /// A message template as Meta holds it, for the double to check template sends against.
    public struct WhatsAppTemplate: Sendable, Equatable {
        /// The template's header, as approved.
        public enum Header: Sendable, Equatable {
            case none
            /// A text header with this many placeholders (0 or 1).
            case text(placeholders: Int)
            case image, video, document

            var format: String {
                switch self {
                case .none: "NONE"
                case .text: "TEXT"
                case .image: "IMAGE"
                case .video: "VIDEO"
                case .document: "DOCUMENT"
                }
            }
        }

        /// A button as approved; `url` with `dynamic` when its URL ends in `{{1}}`.
        public enum Button: Sendable, Equatable {
            case url(dynamic: Bool)
            case quickReply
            case phoneNumber
            case copyCode

            var subType: String {
                switch self {
                case .url: "url"
                case .quickReply: "quick_reply"
                case .phoneNumber: "phone_number"
                case .copyCode: "copy_code"
                }
            }
        }

        public var name: String
        public var language: String
        public var header: Header
        public var bodyPlaceholders: Int
        public var buttons: [Button]

        public init(name: String, language: String = "en_US", header: Header = .none, bodyPlaceholders: Int = 0,
                    buttons: [Button] = []) {
            self.name = name
            self.language = language
            self.header = header
            self.bodyPlaceholders = bodyPlaceholders
            self.buttons = buttons
        }
    }

    /// From now on, sends of this template (by name and language) are checked as Meta checks
    /// them, and refused in Meta's error shape: a header parameter missing (131008), a media
    /// header on a text template or the wrong media type (132012), a wrong number of header or
    /// body parameters (132000), a button index out of range (131009), a parameter on a button
    /// that takes none or of the wrong type (132012). Sends of templates never registered are
    /// not checked beyond their name and language.
    public func register(_ template: WhatsAppTemplate) {
        state.withLock { $0.whatsAppTemplates[WhatsAppTemplateCheck.key(template.name, template.language)] = template }
    }
}

/// Meta's checks of a template send against the approved template.
enum WhatsAppTemplateCheck {
    static func key(_ name: String, _ language: String) -> String { name + "\u{0}" + language }

    /// The error Meta answers, or nil when the send fits the template.
    static func check(_ json: ReceivedJSON, templates: [String: ProviderDouble.WhatsAppTemplate]) -> HTTPDouble.Answer? {
        guard let name = json["template"]?["name"]?.string, let language = json["template"]?["language"]?["code"]?.string,
              let template = templates[key(name, language)] else { return nil }
        let components = json["template"]?["components"]?.array ?? []
        func component(_ type: String) -> [ReceivedJSON] {
            components.filter { $0["type"]?.string?.lowercased() == type }
        }
        func fail(_ code: Int, _ details: String) -> HTTPDouble.Answer {
            WhatsAppDouble.error(code: code, status: nil, message: nil, details: details)
        }

        // Header.
        let headerParameters = component("header").first?["parameters"]?.array ?? []
        switch template.header {
        case .none:
            if !headerParameters.isEmpty {
                return fail(132000, "header: number of localizable_params (\(headerParameters.count)) does not match the expected number of params (0)")
            }
        case .text(let placeholders):
            if let media = headerParameters.first(where: { $0["type"]?.string != "text" }) {
                return fail(132012, "header: Format mismatch, expected TEXT, received \(media["type"]?.string?.uppercased() ?? "UNKNOWN")")
            }
            if headerParameters.count != placeholders {
                return fail(132000, "header: number of localizable_params (\(headerParameters.count)) does not match the expected number of params (\(placeholders))")
            }
        case .image, .video, .document:
            let expected = template.header.format.lowercased()
            guard let parameter = headerParameters.first else {
                return fail(131008, "header['parameters'] is required: the template has a \(template.header.format) header")
            }
            guard parameter["type"]?.string == expected else {
                return fail(132012, "header: Format mismatch, expected \(template.header.format), received \(parameter["type"]?.string?.uppercased() ?? "UNKNOWN")")
            }
            let media = parameter[expected]
            guard media?["link"]?.string?.isEmpty == false || media?["id"]?.string?.isEmpty == false else {
                return fail(131008, "header: \(expected)['link'] or \(expected)['id'] is required")
            }
        }

        // Body.
        let bodyParameters = component("body").first?["parameters"]?.array ?? []
        if bodyParameters.count != template.bodyPlaceholders {
            return fail(132000, "body: number of localizable_params (\(bodyParameters.count)) does not match the expected number of params (\(template.bodyPlaceholders))")
        }

        // Buttons.
        for button in component("button") {
            guard let indexText = button["index"]?.string ?? button["index"]?.number.map({ String(Int($0)) }),
                  let index = Int(indexText) else {
                return fail(131008, "button: index is required")
            }
            guard template.buttons.indices.contains(index) else {
                return fail(131009, "button at index \(index) does not exist: the template has \(template.buttons.count) button(s)")
            }
            let defined = template.buttons[index]
            guard button["sub_type"]?.string == defined.subType else {
                return fail(132012, "button at index \(index): sub_type mismatch, expected \(defined.subType), received \(button["sub_type"]?.string ?? "none")")
            }
            let parameter = button["parameters"]?.array?.first
            let expectedType: String? = switch defined {
            case .url(let dynamic): dynamic ? "text" : nil
            case .quickReply: "payload"
            case .copyCode: "coupon_code"
            case .phoneNumber: nil
            }
            guard let expectedType else {
                return fail(132012, "button at index \(index) takes no parameter")
            }
            guard let parameter, parameter["type"]?.string == expectedType,
                  parameter[expectedType]?.string?.isEmpty == false else {
                return fail(131008, "button at index \(index): parameter of type \(expectedType) is required")
            }
        }
        let sent = Set(component("button").compactMap { $0["index"]?.string.flatMap { Int($0) } ?? $0["index"]?.number.map { Int($0) } })
        for (index, defined) in template.buttons.enumerated() where !sent.contains(index) {
            switch defined {
            case .url(dynamic: true), .quickReply, .copyCode:
                return fail(131008, "button at index \(index) (\(defined.subType)) requires a parameter")
            case .url(dynamic: false), .phoneNumber:
                continue
            }
        }
        return nil
    }
}

extension ReceivedRequest {
    /// Every value of a form field, in order (`MediaUrl` repeats); ``form`` keeps only the last.
    public func formValues(_ name: String) -> [String] {
        var values: [String] = []
        for pair in bodyText.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let decode = { (part: Substring) -> String in
                let spaced = part.replacingOccurrences(of: "+", with: " ")
                return spaced.removingPercentEncoding ?? spaced
            }
            if decode(parts[0]) == name { values.append(parts.count > 1 ? decode(parts[1]) : "") }
        }
        return values
    }
}
