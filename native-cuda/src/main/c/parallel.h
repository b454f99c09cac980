#ifndef FST4J_PARALLEL_H
#define FST4J_PARALLEL_H
#include <stdint.h>

/* fn(ctx, begin, end) over [begin, end) of a range. */
typedef void (*fst_task)(void *ctx, int64_t begin, int64_t end);

/* Runs fn over [0, n) cut into `chunks` contiguous ranges, on the calling thread and up to nthreads - 1 pooled
 * helpers. The caller claims chunks too and waits only for chunks a helper has claimed, so a
 * helper the OS has not scheduled (a shared machine) never holds the call up, unlike an OpenMP barrier.
 * A second caller while the pool is busy runs its whole range alone. */
void fst_parallel(int64_t n, int64_t chunks, int nthreads, fst_task fn, void *ctx);
#endif
