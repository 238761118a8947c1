/// An optional that encodes as `null` when it is nil, where synthesized `Encodable` would leave
/// its key out: for JSON documents whose shape must not depend on the row (`herald report`,
/// `herald preview --json`), every key is always present.
///
/// Written here rather than taken from a package: it is a dozen lines, and Foundation's
/// `JSONEncoder` has no option for it.
@propertyWrapper
public struct EncodedAsNull<Value: Codable & Sendable & Equatable>: Codable, Sendable, Equatable {
    public var wrappedValue: Value?

    public init(wrappedValue: Value?) {
        self.wrappedValue = wrappedValue
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        wrappedValue = container.decodeNil() ? nil : try container.decode(Value.self)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if let wrappedValue { try container.encode(wrappedValue) } else { try container.encodeNil() }
    }
}

extension KeyedDecodingContainer {
    /// A missing key decodes as nil, as it does for a plain optional.
    public func decode<Value>(_ type: EncodedAsNull<Value>.Type, forKey key: Key) throws -> EncodedAsNull<Value> {
        try decodeIfPresent(type, forKey: key) ?? EncodedAsNull(wrappedValue: nil)
    }
}
