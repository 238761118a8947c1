import HeraldCore
import Testing

@Suite struct MessageStatusTests {
    /// Expected outcome for every (status, receipt); `nil` = no change.
    static let table: [(MessageStatus, ReceiptStatus, MessageStatus?)] = [
        (.queued, .sent, .sent), (.queued, .delivered, .delivered), (.queued, .read, .read), (.queued, .failed, .failed),
        (.sending, .sent, .sent), (.sending, .delivered, .delivered), (.sending, .read, .read), (.sending, .failed, .failed),
        (.sent, .sent, nil), (.sent, .delivered, .delivered), (.sent, .read, .read), (.sent, .failed, .failed),
        (.delivered, .sent, nil), (.delivered, .delivered, nil), (.delivered, .read, .read), (.delivered, .failed, .failed),
        (.read, .sent, nil), (.read, .delivered, nil), (.read, .read, nil), (.read, .failed, nil),
        (.failed, .sent, nil), (.failed, .delivered, nil), (.failed, .read, nil), (.failed, .failed, nil),
        (.skipped, .sent, nil), (.skipped, .delivered, nil), (.skipped, .read, nil), (.skipped, .failed, nil),
        (.cancelled, .sent, nil), (.cancelled, .delivered, nil), (.cancelled, .read, nil), (.cancelled, .failed, nil),
    ]

    @Test("the transition table covers every status and receipt")
    func tableIsComplete() {
        #expect(Self.table.count == MessageStatus.allCases.count * 4)
        for status in MessageStatus.allCases {
            #expect(Self.table.filter { $0.0 == status }.count == 4)
        }
    }

    @Test("receipts move a status forward only", arguments: MessageStatusTests.table)
    func transition(from: MessageStatus, receipt: ReceiptStatus, expected: MessageStatus?) {
        #expect(from.applying(receipt) == expected)
    }

    @Test("a replayed receipt changes nothing")
    func replay() {
        for status in MessageStatus.allCases {
            for receipt in [ReceiptStatus.sent, .delivered, .read, .failed] {
                if let next = status.applying(receipt) {
                    #expect(next.applying(receipt) == nil, "\(status) + \(receipt) twice")
                }
            }
        }
    }

    @Test("a late sent after delivered and failed after read are ignored; read may skip delivered")
    func contractExamples() {
        #expect(MessageStatus.delivered.applying(.sent) == nil)
        #expect(MessageStatus.read.applying(.failed) == nil)
        #expect(MessageStatus.sent.applying(.read) == .read)
    }

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
