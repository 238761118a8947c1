import HeraldCore
import Testing

@Suite struct MessageStatusTests {
    @Test("raw values match the SQL status names")
    func rawValues() {
        #expect(MessageStatus.allCases.map(\.rawValue)
            == ["queued", "sending", "sent", "delivered", "read", "failed", "skipped", "cancelled"])
    }

    @Test("WhatsApp statuses map one to one", arguments: [
        ("sent", ReceiptStatus.sent), ("delivered", .delivered), ("read", .read), ("failed", .failed),
        ("deleted", nil), ("warning", nil), ("SENT", nil), ("", nil),
    ] as [(String, ReceiptStatus?)])
    func whatsApp(raw: String, expected: ReceiptStatus?) {
        #expect(ReceiptStatus(whatsApp: raw) == expected)
    }

    @Test("Twilio statuses map, interim ones to no change", arguments: [
        ("queued", nil), ("accepted", nil), ("sending", nil), ("scheduled", nil), ("canceled", nil),
        ("sent", ReceiptStatus.sent), ("delivered", .delivered), ("read", .read),
        ("undelivered", .failed), ("failed", .failed), ("received", nil),
    ] as [(String, ReceiptStatus?)])
    func twilio(raw: String, expected: ReceiptStatus?) {
        #expect(ReceiptStatus(twilio: raw) == expected)
    }
}
