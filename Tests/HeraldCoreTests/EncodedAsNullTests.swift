import Foundation
import HeraldCore
import Testing

@Suite("EncodedAsNull: every key present, nil as null")
struct EncodedAsNullTests {
    struct Row: Codable, Equatable, Sendable {
        var id: Int
        @EncodedAsNull var note: String? = nil
    }

    @Test("a nil value is written as null, not left out; a value as itself")
    func encodes() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        #expect(String(decoding: try encoder.encode(Row(id: 1)), as: UTF8.self) == #"{"id":1,"note":null}"#)
        #expect(String(decoding: try encoder.encode(Row(id: 2, note: "hi")), as: UTF8.self) == #"{"id":2,"note":"hi"}"#)
    }

    @Test("null, a missing key and a value decode as a plain optional would")
    func decodes() throws {
        let decoder = JSONDecoder()
        #expect(try decoder.decode(Row.self, from: Data(#"{"id":1,"note":null}"#.utf8)) == Row(id: 1))
        #expect(try decoder.decode(Row.self, from: Data(#"{"id":1}"#.utf8)) == Row(id: 1))
        #expect(try decoder.decode(Row.self, from: Data(#"{"id":1,"note":"x"}"#.utf8)) == Row(id: 1, note: "x"))
    }
}
