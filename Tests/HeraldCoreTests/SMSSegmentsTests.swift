import HeraldCore
import Testing

@Suite struct SMSSegmentsTests {
    private func repeated(_ s: String, _ n: Int) -> String { String(repeating: s, count: n) }

    @Test("empty text is zero segments")
    func empty() {
        #expect(SMSSegments.count("") == 0)
        #expect(SMSSegments.isGSM7(""))
    }

    @Test("GSM-7: 160 septets in one part, then parts of 153", arguments: [
        (1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4),
    ])
    func gsmLengths(length: Int, parts: Int) {
        #expect(SMSSegments.count(repeated("a", length)) == parts)
    }

    @Test("the whole GSM-7 basic table is one septet each")
    func basicTable() {
        let basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
        #expect(basic.unicodeScalars.count == 127)
        #expect(SMSSegments.isGSM7(basic))
        #expect(SMSSegments.count(basic) == 1)
        #expect(SMSSegments.count(basic + repeated("a", 33)) == 1)
        #expect(SMSSegments.count(basic + repeated("a", 34)) == 2)
    }

    @Test("extension characters take two septets", arguments: ["^", "{", "}", "\\", "[", "~", "]", "|", "€", "\u{0C}"])
    func extensionCharacters(ch: String) {
        #expect(SMSSegments.isGSM7(ch))
        #expect(SMSSegments.count(repeated(ch, 80)) == 1)
        #expect(SMSSegments.count(repeated(ch, 80) + "a") == 2)
        #expect(SMSSegments.count(repeated("a", 159) + ch) == 2)
    }

    @Test("an escape pair is never split across parts")
    func escapePairNotSplit() {
        // 306 septets would be 2 parts, but "{" at septets 153-154 moves to part 2.
        #expect(SMSSegments.count(repeated("a", 152) + "{" + repeated("a", 152)) == 3)
        #expect(SMSSegments.count(repeated("a", 151) + "{" + repeated("a", 153)) == 2)
    }

    @Test("characters outside GSM-7 switch the text to UCS-2", arguments: ["`", "ç", "á", "Ọ", "ж", "“", "\u{00A0}", "e\u{0301}", "👋", "\t"])
    func notGSM(ch: String) {
        #expect(!SMSSegments.isGSM7("Hello " + ch))
        #expect(SMSSegments.count(repeated("a", 69) + ch) == (ch.utf16.count + 69 <= 70 ? 1 : 2))
    }

    @Test("UCS-2: 70 units in one part, then parts of 67", arguments: [
        (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4),
    ])
    func ucs2Lengths(length: Int, parts: Int) {
        #expect(SMSSegments.count(repeated("ж", length)) == parts)
    }

    @Test("a single non-GSM character makes a 100-char GSM text two UCS-2 parts")
    func mixed() {
        #expect(SMSSegments.count(repeated("a", 100)) == 1)
        #expect(SMSSegments.count(repeated("a", 99) + "ç") == 2)
        #expect(SMSSegments.count("Adéwálé, your order ships today") == 1)
    }

    @Test("emoji count as two UTF-16 units and are never split")
    func emoji() {
        #expect(SMSSegments.count("Hi 👋") == 1)
        #expect(SMSSegments.count(repeated("😀", 35)) == 1)
        #expect(SMSSegments.count(repeated("😀", 35) + "a") == 2)
        #expect(SMSSegments.count(repeated("a", 66) + "😀" + repeated("a", 66)) == 3)
        #expect(SMSSegments.count(repeated("a", 65) + "😀" + repeated("a", 67)) == 2)
    }
}
