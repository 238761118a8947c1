#include "ccurl_reactor.h"

#include <stdlib.h>

#ifdef __linux__

#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/// Ready sockets handled per step; more stay ready (level-triggered) for the next one.
#define CCURL_REACTOR_EVENTS 512
/// Multi handles one reactor drives at most.
#define CCURL_REACTOR_MULTIS 16
/// The epoll data of the reactor's own eventfd (no socket's: those hold a member's index).
#define CCURL_REACTOR_WAKE_DATA UINT64_MAX

/// What the epoll set holds for one descriptor, as far as the reactor knows.
enum ccurl_socket_state {
    /// Not in the set.
    CCURL_SOCKET_ABSENT = 0,
    /// In the set, with the events libcurl waits for.
    CCURL_SOCKET_WATCHED,
    /// In the set for reading, but libcurl no longer waits on it: a kept-alive connection between
    /// two transfers. Kept in the set so that the next transfer on it costs no `epoll_ctl` at all
    /// (see `on_socket`).
    CCURL_SOCKET_PARKED,
};

struct ccurl_socket_entry {
    uint8_t state;       // enum ccurl_socket_state
    /// Opened through `on_open` and not yet closed through `on_close`: the reactor hears of
    /// this descriptor's close, so it may park it.
    uint8_t tracked;
    uint32_t events;     // EPOLLIN / EPOLLOUT in the set, when not ABSENT
};

/// One multi handle of the reactor: the socket and timer callbacks' `userp`.
struct ccurl_member {
    ccurl_reactor *reactor;
    CURLM *multi;
    /// Its index in `members`, kept in the epoll data of every socket it registers.
    uint32_t index;
    /// When libcurl wants this multi handle's timeouts acted on (CLOCK_MONOTONIC, microseconds),
    /// or -1 for none.
    long long timeout_at;
    /// Calls of its timer callback so far: tells whether acting on a timeout re-armed it.
    unsigned long timer_calls;
};

struct ccurl_reactor {
    struct ccurl_member members[CCURL_REACTOR_MULTIS];
    int member_count;
    int epoll_fd;
    int wake_fd;
    /// By descriptor number; grown on demand.
    struct ccurl_socket_entry *sockets;
    int sockets_count;
    /// Entries not ABSENT: the sockets the set holds, watched or parked.
    int sockets_in_set;
    struct epoll_event events[CCURL_REACTOR_EVENTS];
};

static long long monotonic_us(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

/// The entry of `fd`, the table grown to hold it; NULL only when out of memory.
static struct ccurl_socket_entry *socket_entry(ccurl_reactor *reactor, curl_socket_t fd) {
    if (fd < 0) return NULL;
    if (fd >= reactor->sockets_count) {
        int count = reactor->sockets_count ? reactor->sockets_count : 1024;
        while (count <= fd) count *= 2;
        struct ccurl_socket_entry *grown = realloc(reactor->sockets, (size_t)count * sizeof *grown);
        if (!grown) return NULL;
        memset(grown + reactor->sockets_count, 0, (size_t)(count - reactor->sockets_count) * sizeof *grown);
        reactor->sockets = grown;
        reactor->sockets_count = count;
    }
    return &reactor->sockets[fd];
}

/// Moves `entry` to `state`, keeping `sockets_in_set`.
static void set_state(ccurl_reactor *reactor, struct ccurl_socket_entry *entry, uint8_t state) {
    reactor->sockets_in_set += (state != CCURL_SOCKET_ABSENT) - (entry->state != CCURL_SOCKET_ABSENT);
    entry->state = state;
}

/// Puts `fd` in the epoll set with `events`, whatever the set held: `op` is what the table
/// believes; the other one is tried when the kernel disagrees.
static void set_events(struct ccurl_member *member, curl_socket_t fd, int op, uint32_t events) {
    ccurl_reactor *reactor = member->reactor;
    struct epoll_event event = {0};
    event.events = events;
    // The descriptor and which multi handle registered it: a connection belongs to one.
    event.data.u64 = (uint64_t)member->index << 32 | (uint32_t)fd;
    if (epoll_ctl(reactor->epoll_fd, op, fd, &event) != 0) {
        // Should that fail too, the transfer is not watched and ends at its own timeout:
        // returning an error from the callback would make libcurl abort every transfer of the
        // multi handle.
        epoll_ctl(reactor->epoll_fd, op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &event);
    }
}

/// CURLMOPT_SOCKETFUNCTION: libcurl says which events it waits for on `fd`.
///
/// A kept-alive HTTP/1.1 connection is told REMOVE when its transfer ends and IN again when the
/// next transfer on it has sent its request: with thousands of transfers in flight that was two
/// `epoll_ctl` calls a message, a third of the worker's system calls (the others: the send, the
/// receive, and two `poll`s libcurl makes itself). Such a socket is parked instead: left in the
/// set for reading, so the next IN costs nothing. Only a socket the reactor opened and will see
/// closed (`on_open`, `on_close`) is parked: a descriptor closed while parked leaves the set in
/// the kernel, and its number, reused by a new socket, must not be taken as still registered.
/// libcurl closes some of its descriptors without the close callback (the threaded resolver's
/// socket pair), so the others are taken out of the set on REMOVE, as before.
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
    (void)easy;
    (void)socketp;
    struct ccurl_member *member = userp;
    ccurl_reactor *reactor = member->reactor;
    struct ccurl_socket_entry *entry = socket_entry(reactor, fd);
    if (what == CURL_POLL_REMOVE) {
        if (!entry) {
            epoll_ctl(reactor->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
        } else if (entry->state == CCURL_SOCKET_WATCHED && entry->events == EPOLLIN && entry->tracked) {
            set_state(reactor, entry, CCURL_SOCKET_PARKED);
        } else if (entry->state != CCURL_SOCKET_ABSENT) {
            // Parked for writing it would be reported ready at every step.
            epoll_ctl(reactor->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
            set_state(reactor, entry, CCURL_SOCKET_ABSENT);
        }
        return 0;
    }
    uint32_t events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    if (!entry) {
        set_events(member, fd, EPOLL_CTL_ADD, events);
        return 0;
    }
    if (entry->state == CCURL_SOCKET_ABSENT) {
        set_events(member, fd, EPOLL_CTL_ADD, events);
    } else if (entry->events != events || !entry->tracked) {
        // An untracked descriptor's entry may outlive it (closed without REMOVE): never trusted
        // to be in the set already. (A tracked one in the set was registered by this same
        // multi handle: its connection lives in one handle's cache until it is closed.)
        set_events(member, fd, EPOLL_CTL_MOD, events);
    }
    set_state(reactor, entry, CCURL_SOCKET_WATCHED);
    entry->events = events;
    return 0;
}

/// CURLOPT_OPENSOCKETFUNCTION of every transfer on the reactor's multi handle: the socket
/// libcurl's own default would make, marked as one whose close the reactor will hear.
static curl_socket_t on_open(void *clientp, curlsocktype purpose, struct curl_sockaddr *address) {
    (void)purpose;
    ccurl_reactor *reactor = clientp;
    curl_socket_t fd = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    if (fd == CURL_SOCKET_BAD) return fd;
    struct ccurl_socket_entry *entry = socket_entry(reactor, fd);
    if (entry) {
        // A new descriptor is in no epoll set, whatever the table said of its number before.
        set_state(reactor, entry, CCURL_SOCKET_ABSENT);
        entry->tracked = 1;
    }
    return fd;
}

/// CURLOPT_CLOSESOCKETFUNCTION of every transfer on the reactor's multi handle (libcurl keeps it
/// with the connection the transfer opens): the descriptor leaves the table before it is closed.
static int on_close(void *clientp, curl_socket_t fd) {
    ccurl_reactor *reactor = clientp;
    if (fd >= 0 && fd < reactor->sockets_count) {
        set_state(reactor, &reactor->sockets[fd], CCURL_SOCKET_ABSENT);
        reactor->sockets[fd].tracked = 0;
    }
    return close(fd);
}

CURLcode ccurl_reactor_track_sockets(CURL *easy, ccurl_reactor *reactor) {
    CURLcode code = curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, on_open);
    if (code == CURLE_OK) code = curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, reactor);
    if (code == CURLE_OK) code = curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, on_close);
    if (code == CURLE_OK) code = curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, reactor);
    return code;
}

/// CURLMOPT_TIMERFUNCTION: libcurl's next timeout, relative to now; -1 removes it.
static int on_timer(CURLM *multi, long timeout_ms, void *userp) {
    (void)multi;
    struct ccurl_member *member = userp;
    member->timeout_at = timeout_ms < 0 ? -1 : monotonic_us() + (long long)timeout_ms * 1000;
    member->timer_calls++;
    return 0;
}

int ccurl_reactor_add_multi(ccurl_reactor *reactor, CURLM *multi) {
    if (reactor->member_count == CCURL_REACTOR_MULTIS) return -1;
    struct ccurl_member *member = &reactor->members[reactor->member_count];
    member->reactor = reactor;
    member->multi = multi;
    member->index = (uint32_t)reactor->member_count;
    member->timeout_at = -1;
    member->timer_calls = 0;
    reactor->member_count++;
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, member);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, member);
    return 0;
}

ccurl_reactor *ccurl_reactor_create(CURLM *multi) {
    ccurl_reactor *reactor = calloc(1, sizeof *reactor);
    if (!reactor) return NULL;
    reactor->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    reactor->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event wake = {0};
    wake.events = EPOLLIN;
    wake.data.u64 = CCURL_REACTOR_WAKE_DATA;
    if (reactor->epoll_fd < 0 || reactor->wake_fd < 0
        || epoll_ctl(reactor->epoll_fd, EPOLL_CTL_ADD, reactor->wake_fd, &wake) != 0) {
        if (reactor->epoll_fd >= 0) close(reactor->epoll_fd);
        if (reactor->wake_fd >= 0) close(reactor->wake_fd);
        free(reactor);
        return NULL;
    }
    ccurl_reactor_add_multi(reactor, multi);
    return reactor;
}

int ccurl_reactor_step(ccurl_reactor *reactor, int max_wait_ms) {
    int wait = max_wait_ms;
    long long now = monotonic_us();
    for (int m = 0; m < reactor->member_count; m++) {
        long long at = reactor->members[m].timeout_at;
        if (at < 0) continue;
        long long left = (at - now + 999) / 1000;  // rounded up
        if (left < wait) wait = left < 0 ? 0 : (int)left;
    }
    int count = epoll_wait(reactor->epoll_fd, reactor->events, CCURL_REACTOR_EVENTS, wait);
    int running = 0;
    int ready = 0;
    for (int i = 0; i < count; i++) {
        uint64_t data = reactor->events[i].data.u64;
        uint32_t events = reactor->events[i].events;
        if (data == CCURL_REACTOR_WAKE_DATA) {
            uint64_t wakeups;
            (void)!read(reactor->wake_fd, &wakeups, sizeof wakeups);
            continue;
        }
        int fd = (int)(uint32_t)data;
        uint32_t index = (uint32_t)(data >> 32);
        if (fd < reactor->sockets_count && reactor->sockets[fd].state == CCURL_SOCKET_PARKED) {
            // An idle connection the server closed (or wrote to): libcurl finds it dead when it
            // looks for a connection to reuse. Out of the set, so it is not reported again.
            epoll_ctl(reactor->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
            set_state(reactor, &reactor->sockets[fd], CCURL_SOCKET_ABSENT);
            continue;
        }
        if (index >= (uint32_t)reactor->member_count) continue;
        // A hang-up reads as end of file; an error is read (to learn which) and reported.
        int action = (events & (EPOLLIN | EPOLLHUP | EPOLLERR) ? CURL_CSELECT_IN : 0)
                   | (events & EPOLLOUT ? CURL_CSELECT_OUT : 0)
                   | (events & EPOLLERR ? CURL_CSELECT_ERR : 0);
        curl_multi_socket_action(reactor->members[index].multi, fd, action, &running);
        ready++;
    }
    for (int m = 0; m < reactor->member_count; m++) {
        struct ccurl_member *member = &reactor->members[m];
        if (member->timeout_at < 0 || monotonic_us() < member->timeout_at) continue;
        // libcurl sets the next timeout from inside the call, but only when its earliest timer
        // changed: should its clock not have reached the timer yet, nothing expires, the
        // callback is not called, and without a deadline kept here the timer would be lost
        // (transfers past their timeout would wait for unrelated traffic). So look again soon.
        unsigned long calls = member->timer_calls;
        curl_multi_socket_action(member->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        if (member->timer_calls == calls) member->timeout_at = monotonic_us() + 1000;
    }
    return ready;
}

int ccurl_reactor_sockets_in_set(const ccurl_reactor *reactor) {
    return reactor->sockets_in_set;
}

void ccurl_reactor_wakeup(ccurl_reactor *reactor) {
    uint64_t one = 1;
    (void)!write(reactor->wake_fd, &one, sizeof one);
}

void ccurl_reactor_destroy(ccurl_reactor *reactor) {
    close(reactor->epoll_fd);
    close(reactor->wake_fd);
    free(reactor->sockets);
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

int ccurl_reactor_sockets_in_set(const ccurl_reactor *reactor) {
    (void)reactor;
    return 0;
}

int ccurl_reactor_add_multi(ccurl_reactor *reactor, CURLM *multi) {
    (void)reactor;
    (void)multi;
    return -1;  // curl_multi_poll waits on one multi handle
}

CURLcode ccurl_reactor_track_sockets(CURL *easy, ccurl_reactor *reactor) {
    (void)easy;
    (void)reactor;
    return CURLE_OK;
}

void ccurl_reactor_destroy(ccurl_reactor *reactor) {
    free(reactor);
}

#endif
