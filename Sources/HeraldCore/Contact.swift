/// A person Herald can send to: one row of `herald.contacts`, as far as rendering and
/// eligibility need it.
///
/// Every field but ``id`` may be missing, as in the table (the admin tool may leave any column
/// null). Values are kept exactly as stored: Herald does not trim or normalize them here.
public struct Contact: Sendable, Equatable {
    /// The contact's key, `herald.contacts.id`.
    public var id: Int64
    /// Given name, rendered by `{{ first_name }}`.
    public var firstName: String?
    /// Family name, rendered by `{{ last_name }}`.
    public var lastName: String?
    /// Phone number, expected in E.164 form.
    public var phone: String?
    /// Email address.
    public var email: String?
    /// Custom fields from the `attributes` jsonb column, rendered by `{{ attributes.KEY }}`.
    ///
    /// Non-string JSON values are expected to have been turned into their text form by the
    /// loader (PostgreSQL's `->>` operator does exactly that).
    public var attributes: [String: String]
    /// The one-click unsubscribe link of the message being rendered, rendered by
    /// `{{ unsubscribe_url }}`; set per message (it names the message), nil when not configured.
    public var unsubscribeURL: String?

    /// Creates a contact.
    ///
    /// - Parameters:
    ///   - id: The contact's key.
    ///   - firstName: Given name, or `nil` when unknown.
    ///   - lastName: Family name, or `nil` when unknown.
    ///   - phone: Phone number (E.164), or `nil`.
    ///   - email: Email address, or `nil`.
    ///   - attributes: Custom fields, keyed as in the `attributes` jsonb object.
    public init(
        id: Int64,
        firstName: String? = nil,
        lastName: String? = nil,
        phone: String? = nil,
        email: String? = nil,
        attributes: [String: String] = [:]
    ) {
        self.id = id
        self.firstName = firstName
        self.lastName = lastName
        self.phone = phone
        self.email = email
        self.attributes = attributes
    }
}
