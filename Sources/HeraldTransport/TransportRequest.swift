/// One transfer handed to ``CurlTransport/perform(_:startingBy:)`` or ``CurlTransport/submit(_:startingBy:onDeparture:onCompletion:)``.
public enum TransportRequest: Sendable {
    case http(HTTPRequest)
    case smtp(SMTPEnvelope)
}
