import HeraldCore
import Testing

@Suite struct AddressCheckTests {
    @Test("E.164 numbers are accepted", arguments: [
        "+2348031234567", "+14155552671", "+447700900123", "+12345678", "+123456789012345",
    ])
    func goodPhones(phone: String) {
        #expect(AddressCheck.isE164(phone))
    }

    @Test("anything else is not E.164", arguments: [
        "", "+", "2348031234567", "+0123456789", "+1234567", "+1234567890123456",
        "+234 803 123 4567", "+234-803-123-4567", "+(234)8031234567", " +2348031234567",
        "+2348031234567\n", "++2348031234567", "+２３４８０３１２３４５６７", "+23480312345a7", "00234803123456",
    ])
    func badPhones(phone: String) {
        #expect(!AddressCheck.isE164(phone))
    }

    @Test("email addresses of sane shape are accepted", arguments: [
        "ada@example.com", "a@b.co", "first.last+tag@sub.example.co.uk", "ADA@EXAMPLE.COM",
        "x@1.2", "o'brien@example.ie", "a-b@my-domain.example", "Adéwálé@example.ng",
        "weird!#$%&*@example.com", "a@a-b--c.io", "a\u{00A0}b@example.com",
        String(repeating: "l", count: 64) + "@example.com",
        String(repeating: "é", count: 64) + "@example.com",
    ])
    func goodEmails(email: String) {
        #expect(AddressCheck.isEmail(email))
    }

    @Test("malformed email addresses are refused", arguments: [
        "", "ada", "ada@", "@example.com", "ada@example", "ada@@example.com", "ada@exa@mple.com",
        "ada @example.com", "ada\t@example.com", "ada\u{3000}x@example.com", "ada@example .com",
        "ada@example.com.", "ada@.example.com", "ada@example..com", "ada@-example.com",
        "ada@example-.com", "ada@example.-com", "ada@exa_mple.com", "ada@exämple.com", "ada@example.com\n",
        String(repeating: "l", count: 65) + "@example.com",
        String(repeating: "é", count: 65) + "@example.com",
    ])
    func badEmails(email: String) {
        #expect(!AddressCheck.isEmail(email))
    }
}
