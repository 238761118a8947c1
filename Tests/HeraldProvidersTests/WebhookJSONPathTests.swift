import HeraldCore
import Testing
@testable import HeraldProviders

/// `WebhookJSON.value(at:in:)` reads one value out of a document without building the rest: it
/// must give exactly what the full parse and lookups along the path give, and refuse exactly
/// the texts the full parse refuses.
@Suite struct WebhookJSONPathTests {
    /// The full parse, then lookups along `path`: what `value(at:in:)` must agree with.
    static func lookedUp(_ path: [WebhookJSON.PathStep], in text: String) throws(WebhookParseError) -> WebhookJSON? {
        var value: WebhookJSON? = try WebhookJSON.parse(Array(text.utf8))
        for step in path {
            switch step {
            case .key(let key): value = value?[key]
            case .index(let i): value = value?.array.flatMap { $0.indices.contains(i) ? $0[i] : nil }
            }
        }
        return value
    }

    static func found(_ path: [WebhookJSON.PathStep], in text: String) throws(WebhookParseError) -> WebhookJSON? {
        try WebhookJSON.value(at: path, in: Array(text.utf8))
    }

    static let messageID: [WebhookJSON.PathStep] = [.key("messages"), .index(0), .key("id")]

    @Test("Meta's answer to a send: messages[0].id, past contacts and other members")
    func metaAnswer() throws {
        let answer = #"{"messaging_product":"whatsapp","contacts":[{"input":"+16505551234","wa_id":"16505551234"}],"#
            + #""messages":[{"id":"wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA","message_status":"accepted"}]}"#
        #expect(try Self.found(Self.messageID, in: answer) == .string("wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"))
        #expect(try Self.found([.key("contacts"), .index(0), .key("wa_id")], in: answer) == .string("16505551234"))
        #expect(try Self.found([.key("messages"), .index(1), .key("id")], in: answer) == nil)
        #expect(try Self.found([.key("messages"), .key("id")], in: answer) == nil, "an array has no members")
        #expect(try Self.found([.key("messaging_product"), .index(0)], in: answer) == nil, "a string has no elements")
    }

    @Test("a whole subtree is built when the path ends at it")
    func subtree() throws {
        let text = #"{"a": {"b": [1, {"c": null}], "d": true}}"#
        #expect(try Self.found([.key("a")], in: text) == Self.lookedUp([.key("a")], in: text))
        #expect(try Self.found([], in: text) == WebhookJSON.parse(Array(text.utf8)))
    }

    @Test("a repeated member: the first one is taken, as lookups take it, even when it lacks the rest of the path")
    func repeatedMember() throws {
        let text = #"{"messages": [], "messages": [{"id": "second"}]}"#
        #expect(try Self.found(Self.messageID, in: text) == nil)
        #expect(try Self.lookedUp(Self.messageID, in: text) == nil)
        #expect(try Self.found([.key("sid")], in: #"{"sid": "SM1", "sid": "SM2"}"#) == .string("SM1"))
    }

    @Test("a member name written with escapes matches its decoded text")
    func escapedName() throws {
        #expect(try Self.found([.key("sid")], in: #"{"s\u0069d": "SM1"}"#) == .string("SM1"))
        #expect(try Self.found([.key("a/b")], in: #"{"a\/b": 1}"#) == .number("1"))
        #expect(try Self.found([.key("sid")], in: #"{"sidx": 1, "si": 2}"#) == nil)
    }

    @Test("text that is not JSON is refused, also where it lies past the value found", arguments: [
        #"{"sid": "SM1", "x": "unterminated}"#,
        #"{"sid": "SM1", "x": "bad \q escape"}"#,
        "{\"sid\": \"SM1\", \"x\": \"control \u{01} char\"}",
        #"{"sid": "SM1", "x": 01}"#,
        #"{"sid": "SM1", "x": tru}"#,
        #"{"sid": "SM1", "x": [1, 2,]}"#,
        #"{"sid": "SM1"} trailing"#,
        #"{"sid": "SM1""#,
        #"{"x": "\u12G4", "sid": "SM1"}"#,
        #"{"sid" "SM1"}"#,
    ])
    func refusesWhatParseRefuses(text: String) {
        #expect(throws: WebhookParseError.self) { try Self.found([.key("sid")], in: text) }
        #expect(throws: WebhookParseError.self) { try WebhookJSON.parse(Array(text.utf8)) }
    }

    @Test("nesting deeper than the limit is refused in skipped members too")
    func depthLimit() {
        let deep = #"{"sid": "SM1", "x": "# + String(repeating: "[", count: WebhookJSON.maxDepth + 1)
            + String(repeating: "]", count: WebhookJSON.maxDepth + 1) + "}"
        #expect(throws: WebhookParseError.self) { try Self.found([.key("sid")], in: deep) }
        #expect(throws: WebhookParseError.self) { try WebhookJSON.parse(Array(deep.utf8)) }
    }

    @Test("seeded random documents and damaged copies: the path read agrees with the full parse, value or refusal")
    func agreesWithFullParse() throws {
        var random = SplitMix64(seed: 0x5EED_0015)
        var compared = 0, refused = 0
        for _ in 0..<3_000 {
            let document = Self.randomValue(depth: 0, &random)
            var text = Self.write(document, &random)
            if Int.random(in: 0..<3, using: &random) == 0, !text.isEmpty {
                // A damaged copy: one byte changed or the text cut short.
                var bytes = Array(text.utf8)
                let at = Int.random(in: 0..<bytes.count, using: &random)
                if Bool.random(using: &random) {
                    bytes[at] = Array(#"{}[],:"\ 0e-.tnu"#.utf8).randomElement(using: &random)!
                } else {
                    bytes.removeSubrange(at...)
                }
                text = String(decoding: bytes, as: UTF8.self)
            }
            let path = Self.randomPath(into: document, &random)
            let expected = Result { () throws(WebhookParseError) in try Self.lookedUp(path, in: text) }
            let actual = Result { () throws(WebhookParseError) in try Self.found(path, in: text) }
            switch (expected, actual) {
            case (.success(let e), .success(let a)):
                #expect(e == a, "path \(path) in \(text)")
                compared += 1
            case (.failure, .failure):
                refused += 1
            default:
                Issue.record("parse gave \(expected), value(at:) gave \(actual): path \(path) in \(text)")
                return
            }
        }
        // Both kinds of text were tried.
        #expect(compared > 1_000 && refused > 300, "compared \(compared), refused \(refused)")
    }

    // MARK: Random documents

    static let keys = ["id", "sid", "messages", "contacts", "a", "b", "error", "status"]

    static func randomValue(depth: Int, _ random: inout SplitMix64) -> WebhookJSON {
        let kind = Int.random(in: 0..<(depth < 4 ? 8 : 5), using: &random)
        switch kind {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &random))
        case 2: return .number(["0", "-12", "3.25", "1e9", "-0.5E-3", "131050"].randomElement(using: &random)!)
        case 3, 4: return .string(["", "wamid.X", "a\"b", "line\nbreak", "é ü", "tab\t", "a/b"].randomElement(using: &random)!)
        case 5: return .array((0..<Int.random(in: 0..<4, using: &random)).map { _ in randomValue(depth: depth + 1, &random) })
        default:
            return .object((0..<Int.random(in: 0..<5, using: &random)).map { _ in
                WebhookJSON.Member(key: keys.randomElement(using: &random)!, value: randomValue(depth: depth + 1, &random))
            })
        }
    }

    /// A path that mostly leads somewhere in `document`, sometimes nowhere.
    static func randomPath(into document: WebhookJSON, _ random: inout SplitMix64) -> [WebhookJSON.PathStep] {
        var path: [WebhookJSON.PathStep] = []
        var here: WebhookJSON? = document
        for _ in 0..<Int.random(in: 0..<4, using: &random) {
            switch here {
            case .object(let members)? where !members.isEmpty && Int.random(in: 0..<5, using: &random) > 0:
                let member = members.randomElement(using: &random)!
                path.append(.key(member.key))
                here = here?[member.key]
            case .array(let items)? where !items.isEmpty && Int.random(in: 0..<5, using: &random) > 0:
                let i = Int.random(in: 0..<items.count, using: &random)
                path.append(.index(i))
                here = items[i]
            default:
                path.append(Bool.random(using: &random) ? .key(keys.randomElement(using: &random)!) : .index(Int.random(in: 0..<3, using: &random)))
                here = nil
            }
        }
        return path
    }

    /// JSON text for `value`, with random whitespace and, in member names and strings, random
    /// escapes of plain characters (`\u0061` for `a`, `\/` for `/`).
    static func write(_ value: WebhookJSON, _ random: inout SplitMix64) -> String {
        func space() -> String { ["", " ", "\n", "\t "].randomElement(using: &random)! }
        func string(_ s: String) -> String {
            var out = "\""
            for scalar in s.unicodeScalars {
                switch scalar {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\t": out += "\\t"
                case "/": out += Bool.random(using: &random) ? "\\/" : "/"
                case _ where scalar.isASCII && Int.random(in: 0..<6, using: &random) == 0:
                    out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
                default: out.unicodeScalars.append(scalar)
                }
            }
            return out + "\""
        }
        switch value {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let n): return n
        case .string(let s): return string(s)
        case .array(let items): return "[" + items.map { space() + write($0, &random) + space() }.joined(separator: ",") + "]"
        case .object(let members):
            return "{" + members.map { space() + string($0.key) + space() + ":" + space() + write($0.value, &random) }.joined(separator: ",") + "}"
        }
    }
}
