import HeraldProviders
import Testing

@Suite("Unsubscribe links")
struct UnsubscribeLinkTests {
    let links = UnsubscribeLinks(publicURL: "https://hooks.example.com/", secret: "s3cret")

    @Test("a link names its message and is short enough for SMS")
    func roundTrip() throws {
        let url = links.url(messageID: 123_456_789)
        #expect(url.hasPrefix("https://hooks.example.com/unsubscribe/123456789."))
        let token = try #require(url.split(separator: "/").last)
        #expect(token.count <= 30)
        #expect(links.messageID(fromToken: token) == 123_456_789)
    }

    @Test("altered, truncated, re-numbered or foreign tokens are refused")
    func refused() {
        let token = links.token(messageID: 42)
        let mac = token.split(separator: ".")[1]
        var flipped = Array(token)
        flipped[flipped.count - 1] = flipped.last == "A" ? "B" : "A"
        for bad in [String(flipped), String(token.dropLast()), "43.\(mac)", "042.\(mac)", "+42.\(mac)", "42", "", ".\(mac)",
                    UnsubscribeLinks(publicURL: "https://hooks.example.com", secret: "other").token(messageID: 42), token + "A"] {
            #expect(links.messageID(fromToken: Substring(bad)) == nil, "\(bad)")
        }
    }

    @Test("links exist only with both the public URL and the secret")
    func configured() {
        #expect(UnsubscribeLinks(publicURL: nil as String?, secret: "x" as String?) == nil)
        #expect(UnsubscribeLinks(publicURL: "https://h" as String?, secret: "" as String?) == nil)
        #expect(UnsubscribeLinks(publicURL: "https://h" as String?, secret: "x" as String?) != nil)
        let env = ProviderEnvironment(variables: ["HERALD_PUBLIC_URL": "https://h", "HERALD_UNSUBSCRIBE_SECRET": "x"])
        #expect(env.unsubscribeLinks?.url(messageID: 1).hasPrefix("https://h/unsubscribe/1.") == true)
    }
}
