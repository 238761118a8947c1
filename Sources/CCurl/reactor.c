#include "ccurl_reactor.h"

#include <stdlib.h>

#ifdef __linux__

#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/// Ready sockets handled per step; more stay ready (level-triggered) for the next one.
#define CCURL_REACTOR_EVENTS 512

struct ccurl_reactor {
    CURLM *multi;
    int epoll_fd;
    int wake_fd;
    /// When libcurl wants its timeouts acted on (CLOCK_MONOTONIC, microseconds), or -1 for none.
    long long timeout_at;
    /// Calls of the timer callback so far: tells whether acting on a timeout re-armed it.
    unsigned long timer_calls;
    struct epoll_event events[CCURL_REACTOR_EVENTS];
};

static long long monotonic_us(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

/// CURLMOPT_SOCKETFUNCTION: libcurl says which events it waits for on `fd`. `socketp` is what we
/// assigned to the socket: non-NULL once it is in the epoll set.
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
    (void)easy;
    ccurl_reactor *reactor = userp;
    if (what == CURL_POLL_REMOVE) {
        if (socketp) {
            // Fails harmlessly when the descriptor was closed already (that removed it).
            epoll_ctl(reactor->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
            curl_multi_assign(reactor->multi, fd, NULL);
        }
        return 0;
    }
    struct epoll_event event = {0};
    event.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    event.data.fd = fd;
    int op = socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(reactor->epoll_fd, op, fd, &event) != 0) {
        // Our registration and libcurl's view differ (a descriptor closed and its number reused).
        // Should that fail too, the transfer is not watched and ends at its own timeout: returning
        // an error here would make libcurl abort every transfer of the multi handle.
        epoll_ctl(reactor->epoll_fd, op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &event);
    }
    if (!socketp) curl_multi_assign(reactor->multi, fd, reactor);
    return 0;
}

/// CURLMOPT_TIMERFUNCTION: libcurl's next timeout, relative to now; -1 removes it.
static int on_timer(CURLM *multi, long timeout_ms, void *userp) {
    (void)multi;
    ccurl_reactor *reactor = userp;
    reactor->timeout_at = timeout_ms < 0 ? -1 : monotonic_us() + (long long)timeout_ms * 1000;
    reactor->timer_calls++;
    return 0;
}

ccurl_reactor *ccurl_reactor_create(CURLM *multi) {
    ccurl_reactor *reactor = calloc(1, sizeof *reactor);
    if (!reactor) return NULL;
    reactor->multi = multi;
    reactor->timeout_at = -1;
    reactor->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    reactor->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event wake = {0};
    wake.events = EPOLLIN;
    wake.data.fd = reactor->wake_fd;
    if (reactor->epoll_fd < 0 || reactor->wake_fd < 0
        || epoll_ctl(reactor->epoll_fd, EPOLL_CTL_ADD, reactor->wake_fd, &wake) != 0) {
        if (reactor->epoll_fd >= 0) close(reactor->epoll_fd);
        if (reactor->wake_fd >= 0) close(reactor->wake_fd);
        free(reactor);
        return NULL;
    }
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, reactor);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, reactor);
    return reactor;
}

int ccurl_reactor_step(ccurl_reactor *reactor, int max_wait_ms) {
    int wait = max_wait_ms;
    if (reactor->timeout_at >= 0) {
        long long left = (reactor->timeout_at - monotonic_us() + 999) / 1000;  // rounded up
        if (left < wait) wait = left < 0 ? 0 : (int)left;
    }
    int count = epoll_wait(reactor->epoll_fd, reactor->events, CCURL_REACTOR_EVENTS, wait);
    int running = 0;
    int ready = 0;
    for (int i = 0; i < count; i++) {
        int fd = reactor->events[i].data.fd;
        uint32_t events = reactor->events[i].events;
        if (fd == reactor->wake_fd) {
            uint64_t wakeups;
            (void)!read(reactor->wake_fd, &wakeups, sizeof wakeups);
            continue;
        }
        // A hang-up reads as end of file; an error is read (to learn which) and reported.
        int action = (events & (EPOLLIN | EPOLLHUP | EPOLLERR) ? CURL_CSELECT_IN : 0)
                   | (events & EPOLLOUT ? CURL_CSELECT_OUT : 0)
                   | (events & EPOLLERR ? CURL_CSELECT_ERR : 0);
        curl_multi_socket_action(reactor->multi, fd, action, &running);
        ready++;
    }
    if (reactor->timeout_at >= 0 && monotonic_us() >= reactor->timeout_at) {
        // libcurl sets the next timeout from inside the call, but only when its earliest timer
        // changed: should its clock not have reached the timer yet, nothing expires, the
        // callback is not called, and without a deadline kept here the timer would be lost
        // (transfers past their timeout would wait for unrelated traffic). So look again soon.
        unsigned long calls = reactor->timer_calls;
        curl_multi_socket_action(reactor->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        if (reactor->timer_calls == calls) reactor->timeout_at = monotonic_us() + 1000;
    }
    return ready;
}

void ccurl_reactor_wakeup(ccurl_reactor *reactor) {
    uint64_t one = 1;
    (void)!write(reactor->wake_fd, &one, sizeof one);
}

void ccurl_reactor_destroy(ccurl_reactor *reactor) {
    curl_multi_setopt(reactor->multi, CURLMOPT_SOCKETFUNCTION, NULL);
    curl_multi_setopt(reactor->multi, CURLMOPT_SOCKETDATA, NULL);
    curl_multi_setopt(reactor->multi, CURLMOPT_TIMERFUNCTION, NULL);
    curl_multi_setopt(reactor->multi, CURLMOPT_TIMERDATA, NULL);
    close(reactor->epoll_fd);
    close(reactor->wake_fd);
    free(reactor);
}

#else

/* Without epoll: libcurl's own loop, which looks at every transfer and socket each time. */
struct ccurl_reactor {
    CURLM *multi;
};

ccurl_reactor *ccurl_reactor_create(CURLM *multi) {
    ccurl_reactor *reactor = calloc(1, sizeof *reactor);
    if (reactor) reactor->multi = multi;
    return reactor;
}

int ccurl_reactor_step(ccurl_reactor *reactor, int max_wait_ms) {
    int ready = 0;
    int running = 0;
    curl_multi_poll(reactor->multi, NULL, 0, max_wait_ms, &ready);
    curl_multi_perform(reactor->multi, &running);
    return ready;
}

void ccurl_reactor_wakeup(ccurl_reactor *reactor) {
    curl_multi_wakeup(reactor->multi);
}

void ccurl_reactor_destroy(ccurl_reactor *reactor) {
    free(reactor);
}

#endif
