import HeraldCore
import Testing

@Suite("Consent keywords")
struct ConsentKeywordTests {
    @Test("opt-out keywords alone, in any case, with spaces and punctuation around",
          arguments: ["STOP", "stop", "stop!", "  Stop ", "Stop.", "STOPALL", "unsubscribe", "Cancel", "END", "quit?!",
                      "\"stop\"", "\nSTOP\n", "¡stop!", "(stop)"])
    func optOut(_ text: String) {
        #expect(ConsentKeyword(message: text) == .optOut)
    }

    @Test("opt-in keywords alone", arguments: ["START", "start", " Unstop. ", "yes", "Yes!"])
    func optIn(_ text: String) {
        #expect(ConsentKeyword(message: text) == .optIn)
    }

    @Test("anything else is no keyword",
          arguments: ["stop it", "please stop", "STOP STOP", "st op", "stopp", "", "   ", "!!!", "stop🙂", "s.t.o.p",
                      "no", "STOP-ALL", "yes please", "ЅТОР"])
    func notAKeyword(_ text: String) {
        #expect(ConsentKeyword(message: text) == nil)
    }
}
