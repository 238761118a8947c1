import CCurl
@testable import HeraldTransport
import Testing

@Suite("Transfer options: the header lines handed to libcurl")
struct TransferOptionsTests {
    /// The lines of a `curl_slist`, in order; frees it.
    private func lines(_ list: UnsafeMutablePointer<curl_slist>?) -> [String] {
        defer { curl_slist_free_all(list) }
        var result: [String] = []
        var node = list
        while let current = node {
            result.append(String(cString: current.pointee.data))
            node = current.pointee.next
        }
        return result
    }

    @Test("each header becomes one `name: value` line, in order, whatever the value's characters")
    func headerLines() {
        var list: UnsafeMutablePointer<curl_slist>?
        list = TransferOptions.appendLine(name: "Authorization", value: "Bearer EAAG-token", to: list)
        list = TransferOptions.appendLine(name: "X-Empty", value: "", to: list)
        list = TransferOptions.appendLine(name: "X-Name", value: "Zoë ✓ \(String(repeating: "a", count: 3000))", to: list)
        #expect(lines(list) == ["Authorization: Bearer EAAG-token", "X-Empty: ",
                                "X-Name: Zoë ✓ \(String(repeating: "a", count: 3000))"])
    }

    @Test("a request's own Expect header is recognised in any case, and only that name",
          arguments: [("Expect", true), ("EXPECT", true), ("expect", true), ("Expected", false), ("X-Expect", false), ("", false)])
    func expectHeader(name: String, isExpect: Bool) {
        #expect(TransferOptions.isExpect(name) == isExpect)
    }
}
