/*
 * machine-probe: how fast the machine itself is while a benchmark runs on it, so that a figure
 * that moved can be told apart from a machine that moved.
 *
 * Every half second it times three fixed pieces of work in its own thread's CPU time (so that
 * waiting for a core, which a loaded machine makes long, is not counted) and prints one line:
 *
 *     unix_time compute_us syscall_ns loopback_us
 *
 *   compute_us   1,000,000 rounds of xorshift64: the core's speed (frequency, a neighbour on
 *                the same physical core);
 *   syscall_ns   one getppid() call, the mean of 5,000: the cost of entering and leaving the
 *                kernel (mitigations, the hypervisor);
 *   loopback_us  one round trip of 200 bytes each way over a loopback TCP connection, both
 *                ends in this thread, the mean of 500: the kernel's TCP path, which is most of
 *                what Herald, PostgreSQL and nginx spend in the kernel in `scripts/bench-latency`.
 *
 * It costs about 2% of one core. `scripts/bench-latency` runs it with PROBE=1 and prints the
 * median and the 10th to 90th percentiles of each during each shape (BENCHMARKS.md, "What moves
 * within a run"). Written here because no packaged tool times these three in a thread's CPU
 * time: perf's hardware counters, which would say cycles and instructions directly, are not
 * available in the virtual machines these benchmarks run on.
 *
 * Build: cc -O2 -o machine-probe machine-probe.c; stop it with any signal.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double thread_cpu_us(void) {
    struct timespec now;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return now.tv_sec * 1e6 + now.tv_nsec / 1e3;
}

static void fail(const char *what) {
    perror(what);
    exit(1);
}

/* A connected pair of loopback TCP sockets, Nagle off on both ends (as libcurl and nginx set). */
static void loopback_pair(int *client, int *server) {
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {0};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 1) != 0
        || getsockname(listener, (struct sockaddr *)&address, &length) != 0)
        fail("machine-probe: listen on loopback");
    *client = socket(AF_INET, SOCK_STREAM, 0);
    if (*client < 0 || connect(*client, (struct sockaddr *)&address, sizeof address) != 0)
        fail("machine-probe: connect on loopback");
    *server = accept(listener, NULL, NULL);
    if (*server < 0) fail("machine-probe: accept on loopback");
    close(listener);
    int one = 1;
    setsockopt(*client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(*server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Reads exactly `size` bytes (a loopback segment can arrive split). */
static void receive_all(int fd, char *buffer, size_t size) {
    for (size_t got = 0; got < size;) {
        ssize_t n = recv(fd, buffer + got, size - got, 0);
        if (n <= 0) fail("machine-probe: recv");
        got += (size_t)n;
    }
}

int main(void) {
    enum { syscalls = 5000, round_trips = 500, message = 200 };
    int client, server;
    loopback_pair(&client, &server);
    char buffer[message];
    memset(buffer, 'x', sizeof buffer);
    volatile uint64_t sink = 0;  /* keeps the compiler from dropping the work */
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (;;) {
        double t0 = thread_cpu_us();
        uint64_t x = 88172645463325252ull;
        for (int i = 0; i < 1000000; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; }
        sink += x;
        double t1 = thread_cpu_us();
        for (int i = 0; i < syscalls; i++) sink += (uint64_t)getppid();
        double t2 = thread_cpu_us();
        for (int i = 0; i < round_trips; i++) {
            if (send(client, buffer, sizeof buffer, 0) != message) fail("machine-probe: send");
            receive_all(server, buffer, sizeof buffer);
            if (send(server, buffer, sizeof buffer, 0) != message) fail("machine-probe: send");
            receive_all(client, buffer, sizeof buffer);
        }
        double t3 = thread_cpu_us();
        struct timespec wall;
        clock_gettime(CLOCK_REALTIME, &wall);
        printf("%.3f %.0f %.0f %.2f\n", wall.tv_sec + wall.tv_nsec / 1e9, t1 - t0, (t2 - t1) * 1000 / syscalls,
               (t3 - t2) / round_trips);
        usleep(500000);
    }
}
