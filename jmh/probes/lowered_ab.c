/* In-process A/B of one of the 2:4 product's switches (fst_spmm24_kblocks / _prefetch / _grouping, fst4j.h) on a lowered
 * Eq. 1 block as the training step runs it: fst_spmm24_lowered of a 3x3 "same" convolution of n images, c channels,
 * hw x hw planes, M output rows, 2 threads, the switch alternating off / on call by call (order swapped every pair), the
 * per-pair time ratio off / on and its median. Build and run: jmh/probes/lowered_ab.sh SWITCH n c hw M [order] [pairs]. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "fst4j.h"

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
static void *alloc64(size_t bytes) {
    void *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    return p;
}

int main(int argc, char **argv) {
    if (argc < 6) { fprintf(stderr, "usage: lowered_ab kblocks|prefetch|grouping n c hw M [order] [pairs]\n"); return 2; }
    int (*sw)(int) = strcmp(argv[1], "kblocks") == 0 ? fst_spmm24_kblocks : strcmp(argv[1], "prefetch") == 0 ? fst_spmm24_prefetch
                   : strcmp(argv[1], "grouping") == 0 ? fst_spmm24_grouping : NULL;
    const int64_t n = atol(argv[2]), c = atol(argv[3]), h = atol(argv[4]), M = atol(argv[5]);
    const int order = argc > 6 ? atoi(argv[6]) : 0, pairs = argc > 7 ? atoi(argv[7]) : 31;
    if (!sw || n < 1 || c < 1 || h < 1 || M < 1 || pairs < 3) { fprintf(stderr, "lowered_ab: bad arguments\n"); return 2; }
    const int64_t K = c * 9, Kp = (K + 3) & ~(int64_t)3, N = n * h * h;
    float *x = alloc64((size_t)(n * c * h * h) * 4), *W = alloc64((size_t)(M * K) * 4), *C = alloc64((size_t)(M * N) * 4);
    float *v = alloc64((size_t)(M * Kp / 2) * 4);
    uint32_t *m = alloc64((size_t)(M * ((Kp + 31) / 32)) * 4);
    srand(1);
    for (int64_t i = 0; i < n * c * h * h; i++) x[i] = rand() / (float)RAND_MAX - 0.5f;
    for (int64_t i = 0; i < M * K; i++) W[i] = rand() / (float)RAND_MAX - 0.5f;
    if (fst_prune24_compress(M, K, W, K, v, m, NULL, 0, 2) != 0) { fprintf(stderr, "prune failed\n"); return 1; }
    double *r = malloc(sizeof(double) * (size_t)pairs), toff = 0, ton = 0;
    for (int p = -3; p < pairs; p++) {   /* 3 warm-up pairs */
        double t[2];
        for (int s = 0; s < 2; s++) {
            const int on = (p + s) & 1;
            sw(on);
            const double t0 = now();
            if (fst_spmm24_lowered(M, 1.0f, v, m, x, n, c, h, h, 3, 3, 1, 1, 1, 1, h, h, 0.0f, C, N, 2, order) != 0) {
                fprintf(stderr, "fst_spmm24_lowered failed\n"); return 1;
            }
            t[on] = now() - t0;
        }
        if (p >= 0) { r[p] = t[0] / t[1]; toff += t[0]; ton += t[1]; }
    }
    sw(1);
    qsort(r, (size_t)pairs, sizeof(double), cmpd);
    printf("%s: %ld images x %ld ch @ %ldx%ld -> %ld rows (order %d): off %.3f ms, on %.3f ms (means of %d), off / on median %.3f "
           "(quartiles %.3f-%.3f)\n", argv[1], (long)n, (long)c, (long)h, (long)h, (long)M, order, toff / pairs * 1e3, ton / pairs * 1e3,
           pairs, r[pairs / 2], r[pairs / 4], r[3 * pairs / 4]);
    return 0;
}
