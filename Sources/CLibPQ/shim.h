#ifndef HERALD_CLIBPQ_SHIM_H
#define HERALD_CLIBPQ_SHIM_H
// Debian and Ubuntu install libpq's headers under /usr/include/postgresql; pkg-config adds that
// directory when present, the explicit path below works without it.
#if __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#else
#include <postgresql/libpq-fe.h>
#endif
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#endif
