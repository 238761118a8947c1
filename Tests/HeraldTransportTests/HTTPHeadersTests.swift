import HeraldTransport
import Testing

@Suite("HTTPHeaders: raw lines, looked up on demand")
struct HTTPHeadersTests {
    static func headers(_ lines: [String]) -> HTTPHeaders {
        var headers = HTTPHeaders()
        for line in lines {
            Array(line.utf8).withUnsafeBufferPointer { headers.append(line: $0) }
        }
        return headers
    }

    @Test("names match in any case, values are trimmed, the last repeat wins")
    func lookup() {
        let headers = Self.headers(["Content-Type: application/json\r\n", "Retry-After:   7 \r\n",
                                    "X-Twice: one\r\n", "x-twice: two\r\n", "Empty:\r\n"])
        #expect(headers["content-type"] == "application/json")
        #expect(headers["RETRY-AFTER"] == "7")
        #expect(headers["x-TWICE"] == "two")
        #expect(headers["empty"] == "")
        #expect(headers["retry"] == nil)
        #expect(headers["missing"] == nil)
        #expect(headers.dictionary == ["content-type": "application/json", "retry-after": "7", "x-twice": "two", "empty": ""])
    }

    @Test("lines without a colon or a name are ignored; a line without CRLF still ends")
    func oddLines() {
        let headers = Self.headers(["no colon here\r\n", ": no name\r\n", "A: 1", "B: 2\r\n"])
        #expect(headers.dictionary == ["a": "1", "b": "2"])
    }

    @Test("a dictionary literal and received lines compare equal when their fields do")
    func equality() {
        let literal: HTTPHeaders = ["Retry-After": "5"]
        #expect(literal == Self.headers(["retry-after: 5\r\n"]))
        #expect(literal != Self.headers(["retry-after: 6\r\n"]))
        var cleared = literal
        cleared.removeAll()
        #expect(cleared == HTTPHeaders())
    }
}
