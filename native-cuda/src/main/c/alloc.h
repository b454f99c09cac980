/* The CPU shim's working-memory allocations, in one place: every caller turns a NULL into FST_ENOMEM (or into a slower
 * path that needs no memory, where one exists), and a test can make them fail on purpose (fst_debug_fail_allocs) to
 * check that no path crashes or reports a wrong cause. */
#ifndef FST4J_ALLOC_H
#define FST4J_ALLOC_H
#include <stdint.h>
#include <stdlib.h>

extern int64_t fst_allocs_left;   /* common.c: allocations still allowed before every one fails; -1: no limit */

static inline int fst_alloc_refused(void) {
    int64_t n = __atomic_load_n(&fst_allocs_left, __ATOMIC_RELAXED);
    while (n > 0 && !__atomic_compare_exchange_n(&fst_allocs_left, &n, n - 1, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
    return n == 0;
}
static inline void *fst_malloc(size_t bytes) { return fst_alloc_refused() ? NULL : malloc(bytes); }
static inline void *fst_calloc(size_t n, size_t bytes) { return fst_alloc_refused() ? NULL : calloc(n, bytes); }
static inline void *fst_aligned_alloc(size_t align, size_t bytes) { return fst_alloc_refused() ? NULL : aligned_alloc(align, bytes); }
#endif
