/* The 2:4 product with the compiled code (fst_spmm24_jit) off and on, and the dense product, taking turns call by call
 * (spmm_jit_ab.sh):
 *   spmm_jit_ab M N K threads [rounds] [only]                   fst_spmm24 / fst_sgemm on a materialised B
 *   spmm_jit_ab conv Cout Cin H batch threads [rounds] [only]   fst_spmm24_lowered / fst_sgemm_lowered, 3x3 pad 1
 * only: 1 runs just the compiled product, 2 just the register kernel (for perf); ratios are then meaningless. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
#include "fst4j.h"

#define MAX_ROUNDS 64
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

typedef struct {
    int conv;
    long M, N, K, c, h, n;   /* conv: x [n, c, h, h], K = 9 c, N = n h h */
    const float *S, *v, *B;  /* pruned weight dense and compressed; B the matrix or x */
    const uint32_t *m;
    int th;
} problem;

static void dense(const problem *p, float *C) {
    if (p->conv) fst_sgemm_lowered(0, p->M, 1.f, p->S, p->K, p->B, p->n, p->c, p->h, p->h, 3, 3, 1, 1, 1, 1, p->h, p->h, 0.f, C, p->N, p->th, 0);
    else fst_sgemm(0, 0, p->M, p->N, p->K, 1.f, p->S, p->K, p->B, p->N, 0.f, C, p->N, p->th);
}
static void sparse(const problem *p, float *C, int jit) {
    fst_spmm24_jit(jit);
    if (p->conv) fst_spmm24_lowered(p->M, 1.f, p->v, p->m, p->B, p->n, p->c, p->h, p->h, 3, 3, 1, 1, 1, 1, p->h, p->h, 0.f, C, p->N, p->th, 0);
    else fst_spmm24(p->M, p->N, p->K, 1.f, p->v, p->m, p->B, p->N, 0.f, C, p->N, p->th);
}

int main(int argc, char **argv) {
    problem p = { 0 };
    int a0 = 1;
    if (argc > 1 && strcmp(argv[1], "conv") == 0) {
        if (argc < 7) { fprintf(stderr, "usage: spmm_jit_ab conv Cout Cin H batch threads [rounds] [only]\n"); return 2; }
        p.conv = 1; p.M = atol(argv[2]); p.c = atol(argv[3]); p.h = atol(argv[4]); p.n = atol(argv[5]); p.th = atoi(argv[6]);
        p.K = 9 * p.c; p.N = p.n * p.h * p.h; a0 = 7;
    } else {
        if (argc < 5) { fprintf(stderr, "usage: spmm_jit_ab M N K threads [rounds] [only]\n"); return 2; }
        p.M = atol(argv[1]); p.N = atol(argv[2]); p.K = atol(argv[3]); p.th = atoi(argv[4]); a0 = 5;
    }
    const int rounds = argc > a0 ? atoi(argv[a0]) : 15, only = argc > a0 + 1 ? atoi(argv[a0 + 1]) : 0;
    if (rounds < 1 || rounds > MAX_ROUNDS) { fprintf(stderr, "spmm_jit_ab: rounds 1..%d\n", MAX_ROUNDS); return 2; }
    const long M = p.M, N = p.N, K = p.K, Kp = (K + 3) & ~3L, nb = p.conv ? p.n * p.c * p.h * p.h : K * N;
    float *A = aligned_alloc(64, M * K * 4), *S = aligned_alloc(64, M * K * 4), *B = aligned_alloc(64, nb * 4 + 64);
    float *C[3] = { aligned_alloc(64, M * N * 4), aligned_alloc(64, M * N * 4), aligned_alloc(64, M * N * 4) };
    float *v = aligned_alloc(64, M * Kp * 2 + 64);
    uint32_t *m = aligned_alloc(64, M * ((Kp + 31) / 32) * 4 + 64);
    for (long i = 0; i < M * K; i++) A[i] = (float)((i * 2654435761u) % 1000) / 1000.f - .5f;
    for (long i = 0; i < nb; i++) B[i] = (float)((i * 40503u + 7) % 997) / 997.f - .5f;
    fst_prune24_compress(M, K, A, K, v, m, S, K, 1);
    p.S = S; p.v = v; p.m = m; p.B = B;
    double t[3][MAX_ROUNDS], r1[MAX_ROUNDS], r2[MAX_ROUNDS];
    for (int r = -2; r < rounds; r++) {   /* two warm-up rounds */
        const double t0 = now();
        if (!only) dense(&p, C[0]);
        const double t1 = now();
        if (only != 1) sparse(&p, C[1], 0);
        const double t2 = now();
        if (only != 2) sparse(&p, C[2], 1);
        const double t3 = now();
        if (r >= 0) { t[0][r] = t1 - t0; t[1][r] = t2 - t1; t[2][r] = t3 - t2; r1[r] = t[0][r] / t[1][r]; r2[r] = t[0][r] / t[2][r]; }
    }
    fst_spmm24_jit(1);
    double e = 0;
    for (long i = 0; i < M * N; i++) { const double x = fabs(C[2][i] - C[0][i]); if (x > e) e = x; }
    for (int i = 0; i < 3; i++) qsort(t[i], rounds, sizeof(double), cmpd);
    qsort(r1, rounds, sizeof(double), cmpd);
    qsort(r2, rounds, sizeof(double), cmpd);
    if (p.conv) printf("lowered %ld<-%ld @%ldx%ld x%ld (%ld x %ld x %ld)", M, p.c, p.h, p.h, p.n, M, N, K);
    else printf("%4ld x %5ld x %4ld", M, N, K);
    printf(" %d thr: dense %.2f ms, reg kernel %.2f (%.2fx dense, q %.2f-%.2f), jit %.2f (%.2fx dense, q %.2f-%.2f)  maxdiff %.1e\n",
           p.th, t[0][rounds / 2] * 1e3, t[1][rounds / 2] * 1e3, r1[rounds / 2], r1[rounds / 4], r1[3 * rounds / 4],
           t[2][rounds / 2] * 1e3, r2[rounds / 2], r2[rounds / 4], r2[3 * rounds / 4], e);
    return 0;
}
