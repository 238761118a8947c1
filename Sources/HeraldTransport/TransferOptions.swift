import CCurl

/// How a transfer is described to libcurl: every option of an easy handle for one HTTP request
/// or one SMTP submission, set in one place.
enum TransferOptions {
    // MARK: Setting up a transfer

    /// - Parameter multiplexing: Whether the engine is one of the transport's multiplexing pool;
    ///   only there do transfers wait for a connection that may multiplex (`CURLOPT_PIPEWAIT`).
    ///   Elsewhere such waiting would serialize a burst to an HTTP/1.1 origin: libcurl releases
    ///   waiting transfers one per finished transfer.
    static func configure(_ easy: UnsafeMutableRawPointer, for transfer: Transfer, httpVersion: HTTPVersionPreference,
                          authorityFile: String? = nil, multiplexing: Bool = true) -> CURLcode {
        var setup = CurlSetup(easy: easy)
        let context = Unmanaged.passUnretained(transfer).toOpaque()
        setup.long(CURLOPT_NOSIGNAL, 1)
        setup.long(CURLOPT_TCP_KEEPALIVE, 1)
        // A 1 KiB receive buffer, not libcurl's 16 KiB: each of thousands of transfers in flight
        // holds one, and providers answer in a few hundred bytes (a longer answer takes more
        // reads). From 4 KiB to 1 KiB took 12–15 MB off the peak RSS at 1,000 channels over
        // HTTPS, at the same msg/s (BENCHMARKS.md).
        // Only an economy, so its result is not kept: libcurl 7.88 refuses the option
        // (CURLE_BAD_FUNCTION_ARGUMENT) on a reused handle whose buffer an HTTP/2 transfer
        // allocated, and `curl_easy_reset` does not free it.
        _ = ccurl_setopt_long(easy, CURLOPT_BUFFERSIZE, 1024)
        setup.pointer(CURLOPT_PRIVATE, context)
        setup.result(ccurl_setopt_write_callback(easy, curlWriteCallback))
        setup.pointer(CURLOPT_WRITEDATA, context)
        setup.pointer(CURLOPT_ERRORBUFFER, UnsafeMutableRawPointer(transfer.errorBuffer))
        if transfer.submission.watchesDepartures {
            setup.result(ccurl_setopt_prereq_callback(easy, curlPrereqCallback))
            setup.pointer(CURLOPT_PREREQDATA, context)
        }
        switch transfer.request {
        case .http(let request):
            configureHTTP(&setup, request, transfer, context)
            if let authorityFile { setup.string(CURLOPT_CAINFO, authorityFile) }
            if multiplexing, waitsForMultiplexing(request.url, httpVersion) { setup.long(CURLOPT_PIPEWAIT, 1) }
            switch httpVersion {
            case .automatic: break
            case .http1: setup.long(CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_1_1))
            case .http2PriorKnowledge: setup.long(CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE))
            }
        case .smtp(let mail):
            configureSMTP(&setup, mail, transfer, context)
        }
        return setup.code
    }

    /// Whether a transfer should wait for a connection being set up to the same host rather
    /// than open one of its own (`CURLOPT_PIPEWAIT`): only where that connection can turn out to
    /// multiplex, which is known at once (TLS with ALPN, or HTTP/2 by prior knowledge). Over
    /// plain `http://` libcurl learns the version only from the first response, so every other
    /// transfer to the host would wait for it, and a server that never answers it would get no
    /// second request at all.
    static func waitsForMultiplexing(_ url: String, _ httpVersion: HTTPVersionPreference) -> Bool {
        switch httpVersion {
        case .http1: return false
        case .http2PriorKnowledge: return true
        case .automatic: return url.lowercased().hasPrefix("https://")
        }
    }

    static func configureHTTP(_ setup: inout CurlSetup, _ request: HTTPRequest, _ transfer: Transfer,
                               _ context: UnsafeMutableRawPointer) {
        setup.string(CURLOPT_URL, request.url)
        setup.string(CURLOPT_PROTOCOLS_STR, "http,https")
        setup.string(CURLOPT_USERAGENT, "herald")
        setup.result(ccurl_setopt_header_callback(setup.easy, curlHeaderCallback))
        setup.pointer(CURLOPT_HEADERDATA, context)
        setup.timeout(request.timeout)

        let method = request.method.uppercased()
        switch method {
        case "GET":
            setup.long(CURLOPT_HTTPGET, 1)
        case "HEAD":
            setup.long(CURLOPT_NOBODY, 1)
        default:
            if method != "POST" { setup.string(CURLOPT_CUSTOMREQUEST, method) }
            if method == "POST" || !request.body.isEmpty {
                setup.long(CURLOPT_POST, 1)
                setup.offset(CURLOPT_POSTFIELDSIZE_LARGE, Int64(request.body.count))
                // COPYPOSTFIELDS copies `POSTFIELDSIZE` bytes now; never pass NULL (libcurl
                // would then read the body from stdin).
                if request.body.isEmpty {
                    setup.string(CURLOPT_COPYPOSTFIELDS, "")
                } else {
                    request.body.withUnsafeBytes { bytes in
                        setup.pointer(CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: bytes.baseAddress!))
                    }
                }
            }
        }

        var list: UnsafeMutablePointer<curl_slist>?
        for header in request.headers {
            list = appendLine(name: header.name, value: header.value, to: list)
        }
        // No `Expect: 100-continue` round trip before bodies.
        if !request.headers.contains(where: { isExpect($0.name) }) {
            list = curl_slist_append(list, "Expect:")
        }
        transfer.headerList = list
        setup.slist(CURLOPT_HTTPHEADER, list)

        if let auth = request.basicAuth {
            setup.long(CURLOPT_HTTPAUTH, 1) // CURLAUTH_BASIC
            setup.string(CURLOPT_USERNAME, auth.user)
            setup.string(CURLOPT_PASSWORD, auth.password)
        }
    }

    /// Appends the header line `name: value` to `list` (`curl_slist_append`, which copies it).
    ///
    /// The line is put together in a temporary buffer rather than as an interpolated Swift
    /// string: every send's headers pass through here, and the string and its C copy were two to
    /// three allocations a header line (heaptrack; BENCHMARKS.md, "Whose allocations they are").
    static func appendLine(name: String, value: String, to list: UnsafeMutablePointer<curl_slist>?)
        -> UnsafeMutablePointer<curl_slist>? {
        var name = name, value = value
        return name.withUTF8 { name in
            value.withUTF8 { value in
                let length = name.count + 2 + value.count
                return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: length + 1) { line in
                    let afterName = line.initialize(fromContentsOf: name)
                    line[afterName] = UInt8(ascii: ":")
                    line[afterName + 1] = UInt8(ascii: " ")
                    _ = UnsafeMutableBufferPointer(rebasing: line[(afterName + 2)...]).initialize(fromContentsOf: value)
                    line[length] = 0
                    return line.withMemoryRebound(to: CChar.self) { curl_slist_append(list, $0.baseAddress!) }
                }
            }
        }
    }

    /// Whether a header name is `Expect`, in any case, without lowercasing a copy of every name.
    static func isExpect(_ name: String) -> Bool {
        name.utf8.count == 6 && name.lowercased() == "expect"
    }

    static func configureSMTP(_ setup: inout CurlSetup, _ mail: SMTPEnvelope, _ transfer: Transfer,
                               _ context: UnsafeMutableRawPointer) {
        setup.string(CURLOPT_URL, mail.url)
        setup.string(CURLOPT_PROTOCOLS_STR, "smtp,smtps")
        setup.timeout(mail.timeout)
        setup.long(CURLOPT_USE_SSL, mail.requireTLS ? ccurl_usessl_all : ccurl_usessl_try)
        if let caFile = mail.caFile { setup.string(CURLOPT_CAINFO, caFile) }
        setup.string(CURLOPT_MAIL_FROM, Self.bareAddress(mail.mailFrom))
        var recipients: UnsafeMutablePointer<curl_slist>?
        for recipient in mail.recipients {
            recipients = curl_slist_append(recipients, Self.bareAddress(recipient))
        }
        transfer.recipientList = recipients
        setup.slist(CURLOPT_MAIL_RCPT, recipients)
        if let username = mail.username { setup.string(CURLOPT_USERNAME, username) }
        if let password = mail.password { setup.string(CURLOPT_PASSWORD, password) }
        transfer.upload = mail.message
        setup.long(CURLOPT_UPLOAD, 1)
        setup.offset(CURLOPT_INFILESIZE_LARGE, Int64(mail.message.count))
        setup.result(ccurl_setopt_read_callback(setup.easy, curlReadCallback))
        setup.pointer(CURLOPT_READDATA, context)
        setup.result(ccurl_setopt_header_callback(setup.easy, curlSMTPReplyCallback))
        setup.pointer(CURLOPT_HEADERDATA, context)
    }

    /// `Name <a@b.c>` → `a@b.c`: libcurl wants the bare address (it adds the angle brackets).
    static func bareAddress(_ address: String) -> String {
        if let open = address.lastIndex(of: "<"), let close = address.lastIndex(of: ">"), open < close {
            return String(address[address.index(after: open)..<close])
        }
        return address.trimmingCharacters(in: .whitespaces)
    }
}
