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

/* Per-ISA copies of a hot loop (AVX-512, AVX2, baseline), chosen once at load time through an ifunc: the shim is
 * built for baseline x86-64, and these loops (batch norm, in double) vectorise wider on the
 * machine that runs them. The arithmetic is the same (no FMA contraction in -std=c11), so results are identical. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(FST_NO_CLONES)
#define FST_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FST_CLONES
#endif
#endif
