import HeraldCore
import Testing

@Suite("The {{ unsubscribe_url }} tag")
struct UnsubscribeTagTests {
    @Test("renders the message's link set on the contact, and is reported as used")
    func rendersLink() throws {
        var contact = Contact(id: 7, firstName: "Ada")
        contact.unsubscribeURL = "https://h.example/unsubscribe/12.abc"
        let t = try CompiledTemplate.compile("Bye {{ first_name }}: {{unsubscribe_url}}")
        #expect(t.render(contact) == "Bye Ada: https://h.example/unsubscribe/12.abc")
        #expect(t.usesUnsubscribeURL)
        #expect(try !CompiledTemplate.compile("Hi {{ first_name }}").usesUnsubscribeURL)
    }

    @Test("without a link it renders empty, or its fallback")
    func missing() throws {
        #expect(try CompiledTemplate.compile("[{{ unsubscribe_url }}]").render(Contact(id: 1)) == "[]")
        #expect(try CompiledTemplate.compile(#"{{ unsubscribe_url | default: "reply STOP" }}"#).render(Contact(id: 1)) == "reply STOP")
    }
}
