/* The 2:4 register kernel alone (issue #3; NOTES-step-cpu.md v22): sparse_kernel.c's run_block, AVX-512, one thread,
 * on a B buffer already staged and resident in cache, as 512-bit FMAs per cycle. Against the whole product
 * (jmh/probes/spmm_ab.sh) it separates what the inner loop costs from what staging B, prefetching it and storing C
 * cost. The cycle count comes from a chain of dependent integer multiplies (three cycles each), so run it on an idle core.
 * Run: jmh/probes/spmm_block.sh [K ...]   (K rows of the buffer: 64 fits L1, 256 and more L2) */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#define FST_ISA_AVX512 1
#include "sparse_kernel.c"

/* sparse.c's switches and the lowering entry points the driver references (B is staged here, never lowered) */
int fst_spmm24_group_mode = 1, fst_spmm24_prefetch_mode = 1, fst_spmm24_kblock_mode = 1;
size_t fst_lplan_bytes(const fst_lowering *s, int nvec) { (void)s; (void)nvec; return 0; }
int fst_lplan_build(fst_lplan *p, const fst_lowering *s, int64_t c0, int64_t nc, int nvec, void *m) {
    (void)p; (void)s; (void)c0; (void)nc; (void)nvec; (void)m; return 0;
}
void fst_lowering_row(const fst_lowering *s, int64_t r, int64_t c0, int64_t nc, float *out) { (void)s; (void)r; (void)c0; (void)nc; (void)out; abort(); }
void fst_lplan_rows(const fst_lplan *p, int64_t r0, int64_t nrows, float *out, int64_t ldo, int per, int64_t jump) {
    (void)p; (void)r0; (void)nrows; (void)out; (void)ldo; (void)per; (void)jump; abort();
}
void fst_lplan_row(const fst_lplan *p, int64_t r, float *out, int per, int64_t jump, int tail) {
    (void)p; (void)r; (void)out; (void)per; (void)jump; (void)tail; abort();
}

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

/* A chain of dependent register-register multiplies, 3 cycles each on Zen 4 / Zen 5 and on Intel cores since Sandy
 * Bridge. Until session 37 it was a chain of add-immediates: Intel's Golden Cove folds those at rename, so on the Intel
 * host the "clock" came out at ~15 GHz and every FMA-per-cycle figure 4x too low. */
static double ghz(void) {
    long x = 1, m = 3;
    const double t0 = now();
    for (long i = 0; i < 50000000L; i++)
        __asm__ volatile("imul %1,%0\n imul %1,%0\n imul %1,%0\n imul %1,%0\n" : "+r"(x) : "r"(m));
    return 3 * 2e8 / (now() - t0) / 1e9;
}

/* FMAs per cycle of MR x NV register blocks over K rows; pair < 0: random index pairs, else that pair in every group */
static double rate(int K, int pair, double clock) {
    const int nv = NV, ls = nv * VL, ng = K / 4, rows = MR;
    const int64_t ldv = K / 2, ldm = (K + 31) / 32;
    float *buf = aligned_alloc(64, (size_t)K * ls * 4), *val = aligned_alloc(64, (size_t)rows * ldv * 4);
    float *C = aligned_alloc(64, (size_t)rows * ls * 4);
    uint32_t *meta = aligned_alloc(64, (size_t)rows * ldm * 4);
    static const unsigned pairs[6] = { 0x4, 0x8, 0xC, 0x9, 0xD, 0xE };   /* (i0 | i1 << 2), i0 < i1 */
    for (int64_t i = 0; i < (int64_t)K * ls; i++) buf[i] = (float)(i % 97) * 1e-3f;
    for (int64_t i = 0; i < rows * ldv; i++) val[i] = (float)(i % 13) * 1e-2f;
    srand(1);
    for (int64_t i = 0; i < rows * ldm; i++) {
        uint32_t w = 0;
        for (int j = 0; j < 8; j++) w |= (pair < 0 ? pairs[rand() % 6] : pairs[pair]) << (4 * j);
        meta[i] = w;
    }
    const long reps = 2000000000L / ((long)K * ls);
    double best = 1e9;
    for (int t = 0; t < 5; t++) {
        const double t0 = now();
        for (long r = 0; r < reps; r++) run_block(MR, nv, val, ldv, meta, ldm, 0, ng, buf, C, ls, 1.0f, 0.0f, 1, ls, NULL);
        const double dt = now() - t0;
        if (dt < best) best = dt;
    }
    volatile float sink = C[0];
    (void)sink;
    free(buf); free(val); free(C); free(meta);
    return (double)reps * MR * ng * 2 * nv / best / 1e9 / clock;
}

int main(int argc, char **argv) {
    const double clock = ghz();
    printf("register block %d rows x %d vectors; clock ~%.2f GHz (dependent multiplies); FMAs per cycle:\n", MR, NV, clock);
    int def[] = { 64, 96, 256, 1152 }, n = argc > 1 ? argc - 1 : 4;
    for (int i = 0; i < n; i++) {
        const int K = argc > 1 ? atoi(argv[i + 1]) / 32 * 32 : def[i];
        if (K < 32) { fprintf(stderr, "spmm_block: K >= 32\n"); return 2; }
        printf("  K %5d (buffer %4d KB): random pairs %.2f, one pair everywhere %.2f\n", K, K * NV * VL * 4 / 1024,
               rate(K, -1, clock), rate(K, 0, clock));
    }
    return 0;
}
