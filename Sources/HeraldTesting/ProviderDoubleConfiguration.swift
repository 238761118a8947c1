import Foundation

/// What the double accepts and imitates: credentials, the SMTP server's TLS, the HTTP APIs.
extension ProviderDouble {
    /// Credentials and identities the double accepts.
    public struct Configuration: Sendable {
        /// The bearer token Meta requests must carry.
        public var whatsAppAccessToken: String
        /// When set, only this phone number id is known; others get Meta's "does not exist" error.
        public var whatsAppPhoneNumberID: String?
        /// The Twilio account: the URL's `AccountSid` and the basic-auth user.
        public var twilioAccountSID: String
        /// The basic-auth password.
        public var twilioAuthToken: String
        /// When both are set the SMTP server offers `AUTH PLAIN LOGIN` and requires a login
        /// before `MAIL FROM`; otherwise it offers no AUTH and takes mail from anyone.
        public var smtpUsername: String?
        public var smtpPassword: String?
        /// The name in the SMTP greeting.
        public var smtpHostname: String
        /// Whether and how the SMTP server speaks TLS, with ``TestCertificates``.
        public var smtpTLS: SMTPTLS

        public init(whatsAppAccessToken: String = "test-access-token",
                    whatsAppPhoneNumberID: String? = nil,
                    twilioAccountSID: String = "AC00000000000000000000000000000001",
                    twilioAuthToken: String = "test-auth-token",
                    smtpUsername: String? = nil, smtpPassword: String? = nil,
                    smtpHostname: String = "double.herald.test", smtpTLS: SMTPTLS = .none) {
            self.whatsAppAccessToken = whatsAppAccessToken
            self.whatsAppPhoneNumberID = whatsAppPhoneNumberID
            self.twilioAccountSID = twilioAccountSID
            self.twilioAuthToken = twilioAuthToken
            self.smtpUsername = smtpUsername
            self.smtpPassword = smtpPassword
            self.smtpHostname = smtpHostname
            self.smtpTLS = smtpTLS
        }
    }

    /// How the SMTP server offers TLS. Its certificate is signed by
    /// ``TestCertificates/authorityPEM`` and names `127.0.0.1` and `localhost`.
    public enum SMTPTLS: Sendable, Equatable {
        /// Plain text only; `STARTTLS` is answered `454`.
        case none
        /// `STARTTLS` offered in the `EHLO` reply (RFC 3207), as on port 587.
        case startTLS
        /// TLS from the first byte (RFC 8314), as on port 465; ``smtpURL`` says `smtps://`.
        case implicit
    }

    /// An HTTP API the double imitates.
    public enum Endpoint: String, Sendable, Hashable, CaseIterable {
        /// `POST /{version}/{phone_number_id}/messages`
        case whatsApp = "whatsapp"
        /// `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`
        case twilio
    }
}
