/*
 * count-allocations.so: counts a process's heap allocations (malloc, calloc, realloc,
 * posix_memalign, aligned_alloc) and writes the total to $COUNT_ALLOCATIONS_OUT when it exits.
 *
 * scripts/bench-latency loads it into the worker with LD_PRELOAD (ALLOCATIONS=1) to print
 * allocations per message: a measure of the worker's work that, unlike msg/s and unlike CPU
 * time, does not move when the machine's speed drifts, so two builds compare in one run each.
 *
 * Written here, not taken from a package: heaptrack and valgrind record every call site and
 * slow the worker several times over, which changes the shape being measured; this adds one
 * relaxed atomic increment per call. Build: cc -shared -fPIC -O2 -o count-allocations.so
 * count-allocations.c
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

/* glibc's own entry points, which the interposed functions call on. */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);

static atomic_ulong allocations;

static inline void counted(void) { atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed); }

void *malloc(size_t size) { counted(); return __libc_malloc(size); }
void *calloc(size_t count, size_t size) { counted(); return __libc_calloc(count, size); }
void *realloc(void *pointer, size_t size) { counted(); return __libc_realloc(pointer, size); }
void *aligned_alloc(size_t alignment, size_t size) { counted(); return __libc_memalign(alignment, size); }

int posix_memalign(void **result, size_t alignment, size_t size) {
    counted();
    if (alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0) return 22; /* EINVAL */
    void *pointer = __libc_memalign(alignment, size);
    if (!pointer) return 12; /* ENOMEM */
    *result = pointer;
    return 0;
}

__attribute__((destructor)) static void report(void) {
    const char *path = getenv("COUNT_ALLOCATIONS_OUT");
    if (!path) return;
    FILE *file = fopen(path, "w");
    if (!file) return;
    fprintf(file, "%lu\n", (unsigned long)atomic_load(&allocations));
    fclose(file);
}
