import CCurl

/// Applies options in order and keeps the first failure.
struct CurlSetup {
    let easy: UnsafeMutableRawPointer
    var code = CURLE_OK

    mutating func result(_ result: CURLcode) {
        if code == CURLE_OK, result != CURLE_OK { code = result }
    }
    mutating func long(_ option: CURLoption, _ value: Int) { result(ccurl_setopt_long(easy, option, value)) }
    mutating func offset(_ option: CURLoption, _ value: Int64) { result(ccurl_setopt_off_t(easy, option, curl_off_t(value))) }
    mutating func string(_ option: CURLoption, _ value: String) { result(ccurl_setopt_string(easy, option, value)) }
    mutating func pointer(_ option: CURLoption, _ value: UnsafeMutableRawPointer?) { result(ccurl_setopt_pointer(easy, option, value)) }
    mutating func slist(_ option: CURLoption, _ value: UnsafeMutablePointer<curl_slist>?) { result(ccurl_setopt_slist(easy, option, value)) }

    mutating func timeout(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let whole = seconds.multipliedReportingOverflow(by: 1000)
        let milliseconds = whole.overflow ? Int.max
            : max(1, Int(clamping: whole.partialValue) &+ Int(attoseconds / 1_000_000_000_000_000))
        long(CURLOPT_TIMEOUT_MS, milliseconds)
        long(CURLOPT_CONNECTTIMEOUT_MS, min(milliseconds, 10_000))
    }
}
