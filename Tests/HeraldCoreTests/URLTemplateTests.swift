import Testing
@testable import HeraldCore

@Suite struct URLTemplateTests {
    @Test("values are percent-encoded: spaces, &, +, /, non-Latin letters; the URL's own text is not")
    func encodesValues() throws {
        let url = try URLTemplate.compile("https://cdn.example/cards/{{ name }}.png?c={{ attributes.city }}&id={{ contact_id }}")
        let contact = Contact(id: 7, firstName: "Ada & Bob+Co", lastName: "Ọlá/Ñ 東京", attributes: ["city": "São Paulo?x=1#y"])
        #expect(url.render(contact)
            == "https://cdn.example/cards/Ada%20%26%20Bob%2BCo%20%E1%BB%8Cl%C3%A1%2F%C3%91%20%E6%9D%B1%E4%BA%AC.png?c=S%C3%A3o%20Paulo%3Fx%3D1%23y&id=7")
    }

    @Test("RFC 3986 unreserved characters stay as they are")
    func unreserved() throws {
        let url = try URLTemplate.compile("https://x.example/{{ first_name }}")
        #expect(url.render(Contact(id: 1, firstName: "AZaz09-._~")) == "https://x.example/AZaz09-._~")
    }

    @Test("a fallback is percent-encoded too")
    func fallback() throws {
        let url = try URLTemplate.compile(#"https://x.example/{{ first_name | default: "a friend" }}"#)
        #expect(url.render(Contact(id: 1, firstName: "  ")) == "https://x.example/a%20friend")
    }

    @Test("the literal prefix ends at the first tag")
    func literalPrefix() throws {
        #expect(try URLTemplate.compile("https://x.example/a/{{ phone }}/b").literalPrefix == "https://x.example/a/")
        #expect(try URLTemplate.compile("https://{{ phone }}.example/").literalPrefix == "https://")
        #expect(try URLTemplate.compile("https://x.example/a.png").isConstant)
    }

    @Test("an unknown tag is refused as in any template")
    func unknownTag() {
        #expect(throws: TemplateError(tag: "{{ shoe }}", reason: TemplateError.unknownTag)) {
            try URLTemplate.compile("https://x.example/{{ shoe }}")
        }
    }
}
