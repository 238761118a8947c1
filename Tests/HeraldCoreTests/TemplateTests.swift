import HeraldCore
import Testing

@Suite struct TemplateRenderTests {
    let ada = Contact(
        id: 42, firstName: "Ada", lastName: "Lovelace", phone: "+447700900123", email: "ada@example.com",
        attributes: ["city": "London", "loyalty-tier": "gold", "empty": ""])

    private func render(_ source: String, _ contact: Contact, escapeHTML: Bool = false) throws -> String {
        try CompiledTemplate.compile(source).render(contact, escapeHTML: escapeHTML)
    }

    @Test("every field renders its value")
    func allFields() throws {
        let text = try render(
            "{{ first_name }}|{{ last_name }}|{{ name }}|{{ phone }}|{{ email }}|{{ contact_id }}|{{ attributes.city }}|{{ attributes.loyalty-tier }}",
            ada)
        #expect(text == "Ada|Lovelace|Ada Lovelace|+447700900123|ada@example.com|42|London|gold")
    }

    @Test("spaces inside braces are optional")
    func spacesOptional() throws {
        #expect(try render("Hi {{first_name}}, {{  last_name\t}}{{name|default:\"x\"}}", ada)
            == "Hi Ada, LovelaceAda Lovelace")
    }

    @Test("a missing value without fallback renders as empty")
    func missingWithoutFallback() throws {
        #expect(try render("Hi {{ first_name }}!", Contact(id: 1)) == "Hi !")
        #expect(try render("[{{ attributes.nope }}][{{ attributes.empty }}]", ada) == "[][]")
    }

    @Test("the fallback replaces a missing, empty or whitespace-only value")
    func fallback() throws {
        let t = try CompiledTemplate.compile("Hi {{ first_name | default: \"there\" }}!")
        #expect(t.render(Contact(id: 1)) == "Hi there!")
        #expect(t.render(Contact(id: 1, firstName: "")) == "Hi there!")
        #expect(t.render(Contact(id: 1, firstName: " \t\u{3000}")) == "Hi there!")
        #expect(t.render(Contact(id: 1, firstName: "Ngozi")) == "Hi Ngozi!")
        #expect(try render("{{ attributes.empty | default: 'none' }}", ada) == "none")
    }

    @Test("single-quoted fallbacks, and fallbacks holding the other quote or braces")
    func fallbackQuoting() throws {
        let nobody = Contact(id: 1)
        #expect(try render("{{ first_name | default: 'friend' }}", nobody) == "friend")
        #expect(try render("{{ first_name | default: \"it's you\" }}", nobody) == "it's you")
        #expect(try render("{{ first_name | default: '\"you\"' }}", nobody) == "\"you\"")
        #expect(try render("{{ first_name | default: \"}}\" }}", nobody) == "}}")
        #expect(try render("{{ first_name | default: \"\" }}!", nobody) == "!")
    }

    @Test("name joins trimmed first and last names with one space")
    func nameJoin() throws {
        let t = try CompiledTemplate.compile("<{{ name }}>")
        #expect(t.render(Contact(id: 1, firstName: "  Adéwálé ", lastName: " Ọ̀ṣun ")) == "<Adéwálé Ọ̀ṣun>")
        #expect(t.render(Contact(id: 1, firstName: "Adéwálé")) == "<Adéwálé>")
        #expect(t.render(Contact(id: 1, lastName: "Ọ̀ṣun")) == "<Ọ̀ṣun>")
        #expect(t.render(Contact(id: 1, firstName: " ", lastName: "")) == "<>")
        #expect(try render("{{ name | default: \"customer\" }}", Contact(id: 1, firstName: " ")) == "customer")
    }

    @Test("diacritics and emoji pass through untouched")
    func unicodeValues() throws {
        let contact = Contact(id: 7, firstName: "Adéwálé", lastName: "Ọ̀ṣun", attributes: ["mood": "🎉👩🏽‍💻"])
        #expect(try render("Ẹ kú àárọ̀ {{ first_name }} {{ attributes.mood }} — {{ last_name }}.", contact)
            == "Ẹ kú àárọ̀ Adéwálé 🎉👩🏽‍💻 — Ọ̀ṣun.")
    }

    @Test("HTML escaping applies to values and fallbacks, never to template text")
    func htmlEscaping() throws {
        let tricky = Contact(id: 1, firstName: "Tom & \"Jerry\" <b>", lastName: "O'Neil")
        let source = "<p class=\"x\">Hi {{ first_name }} {{ last_name }} & {{ email | default: \"<none>\" }}</p>"
        #expect(try render(source, tricky, escapeHTML: true)
            == "<p class=\"x\">Hi Tom &amp; &quot;Jerry&quot; &lt;b&gt; O&#39;Neil & &lt;none&gt;</p>")
        #expect(try render(source, tricky, escapeHTML: false)
            == "<p class=\"x\">Hi Tom & \"Jerry\" <b> O'Neil & <none></p>")
    }

    @Test("escaping keeps non-ASCII text around entities intact")
    func htmlEscapingUnicode() throws {
        let contact = Contact(id: 1, firstName: "Zoë & Ọ̀ṣun <3 😀")
        #expect(try render("{{ first_name }}", contact, escapeHTML: true) == "Zoë &amp; Ọ̀ṣun &lt;3 😀")
        #expect(try render("{{ first_name }}", Contact(id: 1, firstName: "&"), escapeHTML: true) == "&amp;")
    }

    @Test("text without tags is constant and copied verbatim, including lone braces")
    func constant() throws {
        let t = try CompiledTemplate.compile("Sale: 50% off } {x} }} {")
        #expect(t.isConstant)
        #expect(t.render(ada) == "Sale: 50% off } {x} }} {")
        #expect(try CompiledTemplate.compile("").isConstant)
        #expect(try render("", ada) == "")
        #expect(try !CompiledTemplate.compile("Hi {{ name }}").isConstant)
    }

    @Test("contact ids render in decimal, negative included")
    func contactID() throws {
        #expect(try render("{{contact_id}}", Contact(id: 9_007_199_254_740_993)) == "9007199254740993")
        #expect(try render("{{contact_id}}", Contact(id: -5)) == "-5")
    }

    @Test("tags can sit back to back and at both ends")
    func adjacent() throws {
        #expect(try render("{{first_name}}{{last_name}}", ada) == "AdaLovelace")
        #expect(try render("{{ first_name }}\n{{ email }}\n", ada) == "Ada\nada@example.com\n")
    }
}

@Suite struct TemplateErrorTests {
    private func error(_ source: String) -> TemplateError? {
        do {
            _ = try CompiledTemplate.compile(source)
            return nil
        } catch {
            return error
        }
    }

    @Test("an unknown tag is named in the error")
    func unknownTag() {
        let e = error("Hi {{ frist_name }}, welcome")
        #expect(e == TemplateError(tag: "{{ frist_name }}", reason: TemplateError.unknownTag))
        #expect(e?.description == "unknown personalization tag {{ frist_name }}")
    }

    @Test("names are case-sensitive and attribute keys are restricted", arguments: [
        "{{ First_Name }}", "{{ attributes. }}", "{{ attributes.a.b }}", "{{ attributes }}",
        "{{ 1 }}", "{{ attribute.city }}", "{{ first_name. }}",
    ])
    func unknownNames(source: String) {
        #expect(error(source) == TemplateError(tag: source, reason: TemplateError.unknownTag))
    }

    @Test("an unknown filter is named")
    func unknownFilter() {
        #expect(error("{{ name | upcase }}") == TemplateError(tag: "{{ name | upcase }}", reason: TemplateError.unknownFilter))
        #expect(error("x {{ name | fallback: \"a\" }}")
            == TemplateError(tag: "{{ name | fallback: \"a\" }}", reason: TemplateError.unknownFilter))
        #expect(error("{{ name | upcase }}")?.description == "unknown personalization filter in {{ name | upcase }}")
    }

    @Test("malformed tags are refused", arguments: [
        "{{ first_name | default: }}", "{{ first_name | default }}", "{{ first_name | }}",
        "{{ }}", "{{}}", "{{ first name }}", "{{ first_name | default: there }}",
        "{{ first_name | default: \"there }}", "{{ first_name | default: \"a\" \"b\" }}",
        "{{ first_name | default: \"a\" | default: \"b\" }}", "{{{ first_name }}",
    ])
    func malformed(source: String) {
        #expect(error("Hello " + source + " bye") == TemplateError(tag: source, reason: TemplateError.malformedTag))
    }

    @Test("a {{ that never closes is an unclosed tag, shown up to the end of its line")
    func unclosed() {
        #expect(error("Hi {{ first_name, welcome") == TemplateError(tag: "{{ first_name, welcome", reason: TemplateError.unclosedTag))
        #expect(error("Hi {{ first_name }") == TemplateError(tag: "{{ first_name }", reason: TemplateError.unclosedTag))
        #expect(error("Hi {{") == TemplateError(tag: "{{", reason: TemplateError.unclosedTag))
        #expect(error("Hi {{ first_name \nsee you }}") == TemplateError(tag: "{{ first_name \nsee you }}", reason: TemplateError.malformedTag))
        #expect(error("Hi {{ first_name\nBye") == TemplateError(tag: "{{ first_name", reason: TemplateError.unclosedTag))
        #expect(error("Hi {{ first_name {{ last_name }}") == TemplateError(tag: "{{ first_name", reason: TemplateError.unclosedTag))
        #expect(error("{{ first_name }} and {{ last_name")?.description == "unclosed personalization tag {{ last_name")
    }

    @Test("an unclosed tag's text is cut at 64 characters")
    func unclosedLong() {
        let tail = String(repeating: "x", count: 100)
        #expect(error("{{ " + tail)?.tag == "{{ " + String(repeating: "x", count: 61))
    }

    @Test("the first bad tag in reading order is reported")
    func firstError() {
        #expect(error("{{ name }} {{ bad_one }} {{ bad_two }}")?.tag == "{{ bad_one }}")
    }
}

@Suite struct TemplateURLEncodingTests {
    let contact = Contact(id: 7, firstName: "Zoë", email: "a+b&c@example.com",
                          attributes: ["path": "../admin?x=1#frag", "plain": "Az09-._~"])

    private func render(_ source: String, _ contact: Contact) throws -> String {
        try CompiledTemplate.compile(source).render(contact, encoding: .url)
    }

    @Test("values in a URL are percent-encoded; the template's own text is not")
    func values() throws {
        #expect(try render("https://x.example/u?e={{ email }}&id={{ contact_id }}", contact)
            == "https://x.example/u?e=a%2Bb%26c%40example.com&id=7")
        #expect(try render("https://x.example/{{ attributes.path }}", contact) == "https://x.example/..%2Fadmin%3Fx%3D1%23frag")
    }

    @Test("unreserved characters stay; UTF-8 is encoded byte by byte")
    func bytes() throws {
        #expect(try render("{{ attributes.plain }}|{{ first_name }}", contact) == "Az09-._~|Zo%C3%AB")
    }

    @Test("a fallback inside a URL is percent-encoded too")
    func fallback() throws {
        #expect(try render("https://x.example/?n={{ last_name | default: \"a b&c\" }}", contact) == "https://x.example/?n=a%20b%26c")
    }

    @Test("plain and html encodings are unchanged by the URL mode")
    func otherModes() throws {
        let t = try CompiledTemplate.compile("{{ email }}")
        #expect(t.render(contact, encoding: .plain) == "a+b&c@example.com")
        #expect(t.render(contact, encoding: .html) == "a+b&amp;c@example.com")
        #expect(t.render(contact, escapeHTML: true) == "a+b&amp;c@example.com")
    }
}
