#ifndef CCURL_H
#define CCURL_H

/// Typed, non-variadic wrappers around libcurl's variadic setopt/getinfo functions, which Swift
/// cannot call. One wrapper per argument type; every symbol carries the `ccurl_` prefix.

#include <curl/curl.h>
#include "ccurl_reactor.h"
#include <stddef.h>
#include <sys/types.h>

typedef size_t (*ccurl_data_callback)(char *buffer, size_t size, size_t nitems, void *userdata);
/// `CURLOPT_PREREQFUNCTION`'s type: called once a connection is ready, before the request goes.
typedef int (*ccurl_prereq_callback)(void *clientp, char *conn_primary_ip, char *conn_local_ip,
                                     int conn_primary_port, int conn_local_port);

// MARK: easy handle options
CURLcode ccurl_setopt_long(CURL *handle, CURLoption option, long value);
CURLcode ccurl_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value);
CURLcode ccurl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode ccurl_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode ccurl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);
/// `CURLOPT_WRITEFUNCTION`.
CURLcode ccurl_setopt_write_callback(CURL *handle, ccurl_data_callback callback);
/// `CURLOPT_HEADERFUNCTION`.
CURLcode ccurl_setopt_header_callback(CURL *handle, ccurl_data_callback callback);
/// `CURLOPT_READFUNCTION`.
CURLcode ccurl_setopt_read_callback(CURL *handle, ccurl_data_callback callback);
/// `CURLOPT_PREREQFUNCTION` (libcurl 7.80 and later).
CURLcode ccurl_setopt_prereq_callback(CURL *handle, ccurl_prereq_callback callback);

// MARK: easy handle info
CURLcode ccurl_getinfo_long(CURL *handle, CURLINFO info, long *value);
CURLcode ccurl_getinfo_double(CURL *handle, CURLINFO info, double *value);
CURLcode ccurl_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *value);
/// The string stays owned by libcurl; copy it before the handle changes.
CURLcode ccurl_getinfo_string(CURL *handle, CURLINFO info, const char **value);
CURLcode ccurl_getinfo_pointer(CURL *handle, CURLINFO info, void **value);

/// `CURLOPT_USE_SSL`'s values as `long`: libcurl 8.13 and later define them as `long` macros
/// (Debian 13, later Ubuntus), earlier ones as members of `enum curl_usessl` (Debian 12's 7.88),
/// which Swift imports as different types; these two read the same in both.
static const long ccurl_usessl_try = (long)CURLUSESSL_TRY;
static const long ccurl_usessl_all = (long)CURLUSESSL_ALL;

// MARK: multi handle
CURLMcode ccurl_multi_setopt_long(CURLM *multi, CURLMoption option, long value);

/* The loaded libcurl's version as 0xXXYYZZ (CURLVERSION_NOW is a macro Swift cannot import). */
unsigned int ccurl_version_num(void);

/// Fields of a `CURLMsg`, whose `data` member is a union Swift imports awkwardly.
/// Returns 1 when a message was read (and fills the out-parameters), 0 when the queue is empty.
int ccurl_multi_info_read_done(CURLM *multi, CURL **easy, CURLcode *result);

#endif
