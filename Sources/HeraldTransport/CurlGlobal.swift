import CCurl

/// `curl_global_init` exactly once per process, before the first handle.
enum CurlGlobal {
    static let initialized: Bool = {
        curl_global_init(Int(CURL_GLOBAL_ALL)) == CURLE_OK
    }()
}
