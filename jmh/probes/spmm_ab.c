/* In-process A/B of two builds of the 2:4 kernel (sparse_kernel.c, AVX-512, one thread): spmm_ab.sh compiles it twice
 * with different -D knobs (SPK_BUF, SPK_CSLAB, SPK_CSLAB_BIG, NV, MR, ...) as fn_a and fn_b and links them here. Calls
 * alternate (a b, b a, ...) on the same operands; each pair gives a ratio time(a) / time(b), and the median and quartiles
 * of those ratios are printed. The host's speed switches (seconds to minutes) move both calls of a pair alike, which
 * separate runs cannot promise. Also checks that both builds write the same bits. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "fst4j.h"
#include "lowering.h"

int fst_spmm24_group_mode = 1;   /* sparse.c's switch (1: the default blocking) */
int fst_spmm24_prefetch_mode = 1;   /* sparse.c's switch (1: prefetch a big S, the default) */
int fst_spmm24_kblock_mode = 1;     /* sparse.c's switch (1: L2-sized K blocks where K needs several, the default) */
/* the implicit lowering is not used here (B is a matrix): the kernel's references to it are never called */
size_t fst_lplan_bytes(const fst_lowering *s, int nvec) { (void)s; (void)nvec; return 0; }
int fst_lplan_build(fst_lplan *p, const fst_lowering *s, int64_t c0, int64_t nc, int nvec, void *m) {
    (void)p; (void)s; (void)c0; (void)nc; (void)nvec; (void)m; return 0;
}
void fst_lowering_row(const fst_lowering *s, int64_t r, int64_t c0, int64_t nc, float *out) { (void)s; (void)r; (void)c0; (void)nc; (void)out; abort(); }
void fst_lplan_row(const fst_lplan *p, int64_t r, float *out, int per, int64_t jump, int tail) {
    (void)p; (void)r; (void)out; (void)per; (void)jump; (void)tail; abort();
}
void fst_lplan_rows(const fst_lplan *p, int64_t r0, int64_t nrows, float *out, int64_t ldo, int per, int64_t jump) {
    (void)p; (void)r0; (void)nrows; (void)out; (void)ldo; (void)per; (void)jump; abort();
}

typedef int range_fn(int64_t, int64_t, int64_t, int64_t, int64_t, float, float, const float *, const uint32_t *, const float *,
                     int64_t, float *, int64_t, float *, int, const fst_lowering *);
range_fn fn_a, fn_b;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
static void *alloc64(int64_t bytes) {
    void *p = aligned_alloc(64, (size_t)((bytes + 63) & ~(int64_t)63));
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    return p;
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: spmm_ab M N K [pairs]\n"); return 2; }
    const int64_t M = atol(argv[1]), N = atol(argv[2]), K = atol(argv[3]), Kp = (K + 3) & ~(int64_t)3;
    const int pairs = argc > 4 ? atoi(argv[4]) : 15;
    if (M < 1 || N < 1 || K < 1 || pairs < 3) { fprintf(stderr, "spmm_ab: M, N, K >= 1 and pairs >= 3\n"); return 2; }
    float *A = alloc64(M * K * 4), *B = alloc64(K * N * 4), *Ca = alloc64(M * N * 4), *Cb = alloc64(M * N * 4);
    float *v = alloc64(M * Kp / 2 * 4), *buf = alloc64((int64_t)fn_a(0, 0, 0, 0, 0, 0, 0, NULL, NULL, NULL, 0, NULL, 0, NULL, 1, NULL) * 4);
    float *buf_b = alloc64((int64_t)fn_b(0, 0, 0, 0, 0, 0, 0, NULL, NULL, NULL, 0, NULL, 0, NULL, 1, NULL) * 4);
    uint32_t *m = alloc64(M * ((Kp + 31) / 32) * 4);
    srand(1);
    for (int64_t i = 0; i < M * K; i++) A[i] = rand() / (float)RAND_MAX - 0.5f;
    for (int64_t i = 0; i < K * N; i++) B[i] = rand() / (float)RAND_MAX - 0.5f;
    if (fst_prune24_compress(M, K, A, K, v, m, NULL, 0, 1) != 0) { fprintf(stderr, "prune failed\n"); return 1; }
    double *r = malloc(sizeof(double) * pairs), ta = 0, tb = 0;
    for (int p = -1; p < pairs; p++) {   /* p = -1 warms both up */
        double t[2];
        for (int s = 0; s < 2; s++) {
            const int a = (s == 0) == ((p & 1) == 0);   /* even pairs a first, odd pairs b first */
            const double t0 = now();
            if (a) fn_a(0, M, 0, N, K, 1.0f, 0.0f, v, m, B, N, Ca, N, buf, M >= 32 ? 4 : 0, NULL);
            else fn_b(0, M, 0, N, K, 1.0f, 0.0f, v, m, B, N, Cb, N, buf_b, M >= 32 ? 4 : 0, NULL);
            t[a ? 0 : 1] = now() - t0;
        }
        if (p >= 0) { r[p] = t[0] / t[1]; ta += t[0]; tb += t[1]; }
    }
    if (memcmp(Ca, Cb, (size_t)(M * N * 4)) != 0) printf("WARNING: the two builds wrote different bits\n");
    qsort(r, pairs, sizeof(double), cmpd);
    printf("%5ld x %5ld x %5ld: a %7.3f ms, b %7.3f ms (means of %d)   a / b median %.3f (quartiles %.3f-%.3f)\n", (long)M,
           (long)N, (long)K, ta / pairs * 1e3, tb / pairs * 1e3, pairs, r[pairs / 2], r[pairs / 4], r[3 * pairs / 4]);
    return 0;
}
