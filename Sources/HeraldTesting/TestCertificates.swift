import Foundation

/// A certificate authority and a server certificate signed by it, for the provider double's TLS.
///
/// Test material only: the CA's key is not kept, the server's key is public right here, and both
/// are valid until 2126 so that tests never start failing on a date. The server certificate names
/// `localhost` and `127.0.0.1`, which is where the double listens. Made with
/// `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1` (the CA) and
/// `openssl x509 -req` (the server, serverAuth, CA:FALSE).
public enum TestCertificates {
    /// The CA to trust (a channel's `ca_file`), PEM.
    public static let authorityPEM = """
-----BEGIN CERTIFICATE-----
MIIB0TCCAXegAwIBAgIUcoSfn/FFKbVqlOtB0MI8mcxowmIwCgYIKoZIzj0EAwIw
NTEzMDEGA1UEAwwqSGVyYWxkIHRlc3QgQ0EgKG5ldmVyIHRydXN0IG91dHNpZGUg
dGVzdHMpMCAXDTI2MTEyNjA1NTYwNloYDzIxMjYxMTAyMDU1NjA2WjA1MTMwMQYD
VQQDDCpIZXJhbGQgdGVzdCBDQSAobmV2ZXIgdHJ1c3Qgb3V0c2lkZSB0ZXN0cykw
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQUwuE002gxwn9WmzHi/g0PBFY/mudd
OxVwH8jEmJJwGwV61UbE4C+FZntJ9lPAgNTnuF9ka+Fmo/iKr1Ou3ODUo2MwYTAd
BgNVHQ4EFgQUtt712jIWRlXhYlFQlVBhVSuyiqowHwYDVR0jBBgwFoAUtt712jIW
RlXhYlFQlVBhVSuyiqowDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8EBAMCAQYw
CgYIKoZIzj0EAwIDSAAwRQIgOYUeA5Q2uj/y2KVZ3A4feFL0DIvWVwIn76RMjfgM
v2UCIQDhMGXPGYcO/s9QEXzkOmi1BgzAaMwNGKocyNRDdEvPUQ==
-----END CERTIFICATE-----
"""

    /// The double's certificate, PEM.
    static let serverPEM = """
-----BEGIN CERTIFICATE-----
MIIB4DCCAYagAwIBAgIUS5yxPqudcMdhqdudU4v6IJbw72YwCgYIKoZIzj0EAwIw
NTEzMDEGA1UEAwwqSGVyYWxkIHRlc3QgQ0EgKG5ldmVyIHRydXN0IG91dHNpZGUg
dGVzdHMpMCAXDTI2MTEyNjA1NTYwNloYDzIxMjYxMTAyMDU1NjA2WjAUMRIwEAYD
VQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASLJpYZLp0h
b/SuBapuPzztTXZC5NGA4lUIaz99YjHC636PXlLM/mkndf8ebHdQWINoymHAj+7X
G7pmFoEfeirqo4GSMIGPMBoGA1UdEQQTMBGCCWxvY2FsaG9zdIcEfwAAATAMBgNV
HRMBAf8EAjAAMA4GA1UdDwEB/wQEAwIHgDATBgNVHSUEDDAKBggrBgEFBQcDATAd
BgNVHQ4EFgQUACgnZ1FtV7+O4r2XsNput0UXCN0wHwYDVR0jBBgwFoAUtt712jIW
RlXhYlFQlVBhVSuyiqowCgYIKoZIzj0EAwIDSAAwRQIgOnLB6+j5ISkxgc38bXEJ
h/q44jVwJqz7lKAqXwUn1rQCIQDWpT2f8Ev49pcYggQVZATk4Veuet1zGsBlmitm
53POmg==
-----END CERTIFICATE-----
"""

    /// The double's private key (PKCS #8), PEM.
    static let serverKeyPEM = """
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgWmAkrC9VJKAe0f9G
LbD9xIgx7BZzOTb4zqqGTzbA7FihRANCAASLJpYZLp0hb/SuBapuPzztTXZC5NGA
4lUIaz99YjHC636PXlLM/mkndf8ebHdQWINoymHAj+7XG7pmFoEfeirq
-----END PRIVATE KEY-----
"""

    /// Writes ``authorityPEM`` to a new file in the temporary directory and returns its path.
    public static func writeAuthority() throws -> String {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("herald-test-ca-\(UUID().uuidString).pem").path
        try authorityPEM.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
