import Testing
@testable import HeraldProviders

@Suite struct DestinationPolicyTests {
    private let none = DestinationPolicy(allowedHostsVariable: nil)

    private func refusal(_ body: () throws(DestinationRefusal) -> Void) -> DestinationRefusal? {
        do {
            try body()
            return nil
        } catch {
            return error
        }
    }

    // MARK: Secret variables

    @Test("a *_env setting naming Herald's own configuration is refused, naming setting and variable",
          arguments: ["DATABASE_URL", "PGPASSWORD", "PGHOST", "pgpassword", "HERALD_UNSUBSCRIBE_SECRET", "herald_public_url"])
    func ownConfiguration(variable: String) {
        let error = refusal { () throws(DestinationRefusal) in try none.checkSecretVariable(variable, setting: "access_token_env") }
        #expect(error?.setting == "access_token_env")
        #expect(error?.description.contains("\"access_token_env\" names \(variable)") == true)
    }

    @Test("a provider secret's own variable is accepted", arguments: ["WA_TOKEN", "TWILIO_AUTH_TOKEN", "SMTP_PASSWORD", "APG_TOKEN"])
    func ownVariable(variable: String) throws {
        try none.checkSecretVariable(variable, setting: "auth_token_env")
    }

    // MARK: HTTP URLs

    @Test("https to the provider's official host is allowed without any list",
          arguments: ["https://graph.facebook.com/v21.0", "HTTPS://Graph.Facebook.COM./v21.0", "https://graph.facebook.com:443/v21.0"])
    func officialHost(url: String) throws {
        let parsed = try none.checkURL(url, officialHost: DestinationPolicy.whatsAppCloudHost, setting: "base_url")
        #expect(parsed.host == "graph.facebook.com")
    }

    @Test("the official host over plain http or on another port is refused",
          arguments: ["http://graph.facebook.com/v21.0", "https://graph.facebook.com:8443/v21.0"])
    func officialHostDowngraded(url: String) {
        let error = refusal { () throws(DestinationRefusal) in
            try none.checkURL(url, officialHost: DestinationPolicy.whatsAppCloudHost, setting: "base_url")
        }
        #expect(error?.description.hasPrefix("host not allowed: graph.facebook.com") == true)
    }

    @Test("an unlisted host is refused with host not allowed and the setting named")
    func exfiltration() {
        let error = refusal { () throws(DestinationRefusal) in
            try none.checkURL("http://evil.example", officialHost: DestinationPolicy.whatsAppCloudHost, setting: "base_url")
        }
        #expect(error?.setting == "base_url")
        #expect(error?.description.hasPrefix("host not allowed: evil.example") == true)
        #expect(error?.description.contains("HERALD_ALLOWED_HOSTS") == true)
    }

    @Test("tricks that look like the official host go nowhere",
          arguments: [("https://graph.facebook.com.evil.example/v21.0", "host not allowed: graph.facebook.com.evil.example"),
                      ("https://evilgraph.facebook.com/v21.0", "host not allowed: evilgraph.facebook.com"),
                      ("https://graph.facebook.com@evil.example/v21.0", "user info"),
                      ("https://user:pw@graph.facebook.com/v21.0", "user info"),
                      ("https://graph%2efacebook.com/", "not valid"),
                      ("https://graph.facebook.com\\@evil.example/", "backslash"),
                      ("https:/graph.facebook.com/", "no host"),
                      ("https://graph.facebook.com:0/", "not valid"),
                      ("https://graph.facebook.com:99999/", "not valid"),
                      ("https://[::1/", "not valid"),
                      ("ftp://graph.facebook.com/", "must start with https:// or http://"),
                      ("https:// graph.facebook.com/", "spaces")])
    func lookalikes(url: String, expected: String) {
        let error = refusal { () throws(DestinationRefusal) in
            try none.checkURL(url, officialHost: DestinationPolicy.whatsAppCloudHost, setting: "base_url")
        }
        #expect(error?.description.contains(expected) == true, "\(url): \(error?.description ?? "accepted")")
    }

    @Test("a listed host may be reached over http or https; a listed port only on that port")
    func listedHosts() throws {
        let policy = DestinationPolicy(allowedHostsVariable: " 127.0.0.1:9090, Double.Example. ,[::1]:8025,,")
        #expect(policy.allowedHosts.map(\.description) == ["127.0.0.1:9090", "double.example", "[::1]:8025"])
        try policy.checkURL("http://127.0.0.1:9090/v21.0", officialHost: DestinationPolicy.whatsAppCloudHost, setting: "base_url")
        try policy.checkURL("https://double.example:1234/x", officialHost: nil, setting: "status_callback_url")
        try policy.checkURL("http://DOUBLE.example./x", officialHost: nil, setting: "status_callback_url")
        try policy.checkURL("http://[::1]:8025/", officialHost: nil, setting: "base_url")
        let wrongPort = refusal { () throws(DestinationRefusal) in
            try policy.checkURL("http://127.0.0.1:9091/v21.0", officialHost: nil, setting: "base_url")
        }
        #expect(wrongPort?.description.hasPrefix("host not allowed: 127.0.0.1") == true)
        let v6 = refusal { () throws(DestinationRefusal) in try policy.checkURL("http://[::2]:8025/", officialHost: nil, setting: "base_url") }
        #expect(v6?.description.hasPrefix("host not allowed: [::2]") == true)
    }

    @Test("malformed HERALD_ALLOWED_HOSTS entries are set aside, not trusted")
    func invalidEntries() {
        let policy = DestinationPolicy(allowedHostsVariable: "http://a.example,b.example/path,c.example:x,d.example")
        #expect(policy.allowedHosts.map(\.description) == ["d.example"])
        #expect(policy.invalidEntries == ["http://a.example", "b.example/path", "c.example:x"])
    }

    // MARK: SMTP

    @Test("an SMTP relay must be listed, whatever the scheme")
    func mailRelay() throws {
        let error = refusal { () throws(DestinationRefusal) in try none.checkMailURL("smtps://smtp.example:465", setting: "url") }
        #expect(error?.description.hasPrefix("host not allowed: smtp.example") == true)
        let policy = DestinationPolicy(allowedHostsVariable: "smtp.example")
        #expect(try policy.checkMailURL("smtp://smtp.example", setting: "url").port == 25)
        #expect(try policy.checkMailURL("smtps://smtp.example", setting: "url").port == 465)
        let http = refusal { () throws(DestinationRefusal) in try policy.checkMailURL("https://smtp.example", setting: "url") }
        #expect(http?.description.contains("must start with smtps:// or smtp://") == true)
    }

    // MARK: Identifiers

    @Test("phone_number_id must be digits", arguments: ["106540352242922", "1"])
    func phoneNumberIDs(id: String) throws {
        try DestinationPolicy.checkPhoneNumberID(id)
    }

    @Test("a phone_number_id that could change the URL path is refused", arguments: ["", "123/../me", "12a", "123?x=1", "１２３"])
    func badPhoneNumberIDs(id: String) {
        let error = refusal { () throws(DestinationRefusal) in try DestinationPolicy.checkPhoneNumberID(id) }
        #expect(error?.setting == "phone_number_id")
    }

    @Test("account_sid must be AC and 32 hex digits")
    func accountSIDs() throws {
        try DestinationPolicy.checkAccountSID("AC" + String(repeating: "0a", count: 16))
        for bad in ["", "AC", "SM" + String(repeating: "0", count: 32), "AC" + String(repeating: "0", count: 31) + "g",
                    "AC" + String(repeating: "0", count: 33), "AC/../../x" + String(repeating: "0", count: 24)] {
            let error = refusal { () throws(DestinationRefusal) in try DestinationPolicy.checkAccountSID(bad) }
            #expect(error?.setting == "account_sid", "\(bad)")
        }
    }
}
