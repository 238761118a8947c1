#ifndef CCURL_REACTOR_H
#define CCURL_REACTOR_H

/// An event loop for libcurl multi handles on libcurl's socket interface
/// (`curl_multi_socket_action`), so each wake-up costs what is ready, not what is open.
///
/// `curl_multi_perform` walks every transfer in the multi handle and `curl_multi_poll` hands
/// every socket to `poll(2)`, on every wake-up: with thousands of requests in flight to slow
/// providers that is the worker's main cost (most of them have nothing to do). With the socket
/// interface libcurl tells us which sockets it waits on and when its next timeout is
/// (`CURLMOPT_SOCKETFUNCTION`, `CURLMOPT_TIMERFUNCTION`); we keep them in an epoll set and hand
/// back only the sockets that are ready and the timeouts that are due. The callbacks are C
/// because they are registered through the variadic `curl_multi_setopt`, which Swift cannot call,
/// and run inside libcurl on the engine's thread.
///
/// Other threads only call `ccurl_reactor_wakeup` (an eventfd in the same epoll set, the
/// counterpart of `curl_multi_wakeup`). On systems without epoll the same functions fall back to
/// `curl_multi_perform` and `curl_multi_poll`.

#include <curl/curl.h>

typedef struct ccurl_reactor ccurl_reactor;

/// Registers the reactor's callbacks on `multi`, its first multi handle. Returns NULL when the epoll set or the eventfd
/// cannot be made (out of file descriptors).
ccurl_reactor *ccurl_reactor_create(CURLM *multi);

/// Lets the reactor drive one more multi handle, on the same thread and epoll set: each multi
/// handle keeps its own transfers, connections and timeouts. Returns 0, or -1 when the reactor
/// drives as many as it can (16; one without epoll), and then `multi` is left untouched.
///
/// Why several: libcurl 7.88 walks a multi handle's connections for every transfer it starts
/// (looking for one to reuse) and again for every transfer removed after it left its connection
/// open (looking for a connect-only one); several smaller handles shorten both walks without a
/// thread each.
int ccurl_reactor_add_multi(ccurl_reactor *reactor, CURLM *multi);

/// Waits at most `max_wait_ms` (less when libcurl's next timeout is sooner, not at all when a
/// timeout is due), then lets libcurl act on every ready socket and due timeout. Finished
/// transfers are then in `curl_multi_info_read`. Returns the number of sockets that were ready.
int ccurl_reactor_step(ccurl_reactor *reactor, int max_wait_ms);

/// How many sockets the epoll set holds: those libcurl waits on, and idle connections' sockets
/// parked between transfers. On the engine's thread.
int ccurl_reactor_sockets_in_set(const ccurl_reactor *reactor);

/// Ends a wait in `ccurl_reactor_step` early; callable from any thread while the reactor lives.
void ccurl_reactor_wakeup(ccurl_reactor *reactor);

/// Lets the reactor open and close the sockets of `easy`'s transfers
/// (`CURLOPT_OPENSOCKETFUNCTION`, `CURLOPT_CLOSESOCKETFUNCTION`), so that it may keep an idle
/// connection's socket in its epoll set between transfers. Call for every transfer added to the
/// reactor's multi handle. libcurl keeps the close callback with each connection, so the reactor
/// must outlive the multi handle's connections.
CURLcode ccurl_reactor_track_sockets(CURL *easy, ccurl_reactor *reactor);

/// Frees the reactor; call after `curl_multi_cleanup` (which closes the cached connections
/// through the reactor's close callback), on the engine's thread.
void ccurl_reactor_destroy(ccurl_reactor *reactor);

#endif
