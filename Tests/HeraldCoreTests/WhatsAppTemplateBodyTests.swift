import HeraldCore
import Testing

@Suite struct WhatsAppTemplateBodyTests {
    @Test("placeholder count is the highest index", arguments: [
        ("Hello", 0),
        ("", 0),
        ("Hi {{1}}", 1),
        ("Hi {{1}}, your order {{2}} ships {{3}}.", 3),
        ("{{1}} and again {{1}}", 1),
        ("{{2}} before {{1}}", 2),
        ("gap: {{1}} {{3}}", 3),
        ("{{10}} params", 10),
        ("{{{1}}}", 1),
        ("{{1{{2}}", 2),
        ("{{ 1 }} {{0}} {{a}} {1} {{1} {{12345}}", 0),
        ("Olá {{1}} 😀 {{2}}", 2),
    ])
    func count(body: String, expected: Int) {
        #expect(WhatsAppTemplateBody.placeholderCount(body) == expected)
    }
}
