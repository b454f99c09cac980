/* fst_spmm24_lowered with the compiled product (fst_spmm24_jit) off and on, and the dense fst_sgemm_lowered, taking turns call by call, for a 3x3 pad-1 convolution (spmm_jit_ab.sh). Usage: spmm_jit_lowered_ab Cout Cin H batch threads [only: 1 jit, 2 register kernel] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <time.h>
#include "fst4j.h"
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
int main(int argc, char **argv) {  /* conv 3x3 pad 1: Cout Cin H batch threads */
  long M = atol(argv[1]), c = atol(argv[2]), h = atol(argv[3]), n = atol(argv[4]); int th = atoi(argv[5]); int reps = 15, only = argc > 6 ? atoi(argv[6]) : 0;
  long K = c*9, Kp = (K+3)&~3L, N = n*h*h;
  float *A = aligned_alloc(64, M*K*4), *S = aligned_alloc(64, M*K*4), *x = aligned_alloc(64, n*c*h*h*4), *C0 = aligned_alloc(64, M*N*4), *C1 = aligned_alloc(64, M*N*4), *C2 = aligned_alloc(64, M*N*4), *v = aligned_alloc(64, M*Kp*2+64);
  uint32_t *m = aligned_alloc(64, M*((Kp+31)/32)*4+64);
  for (long i = 0; i < M*K; i++) A[i] = (float)((i * 2654435761u) % 1000) / 1000.f - .5f;
  for (long i = 0; i < n*c*h*h; i++) x[i] = (float)((i * 40503u + 7) % 997) / 997.f - .5f;
  fst_prune24_compress(M, K, A, K, v, m, S, K, 1);
  double t[3][64], r1[64], r2[64];
  for (int r = -2; r < reps; r++) {
    double a = now(); if (!only) fst_sgemm_lowered(0, M, 1.f, S, K, x, n, c, h, h, 3, 3, 1, 1, 1, 1, h, h, 0.f, C0, N, th, 0);
    double b = now(); fst_spmm24_jit(0); if (only != 1) fst_spmm24_lowered(M, 1.f, v, m, x, n, c, h, h, 3, 3, 1, 1, 1, 1, h, h, 0.f, C1, N, th, 0);
    double cc = now(); fst_spmm24_jit(1); if (only != 2) fst_spmm24_lowered(M, 1.f, v, m, x, n, c, h, h, 3, 3, 1, 1, 1, 1, h, h, 0.f, C2, N, th, 0);
    double d = now();
    if (r >= 0) { t[0][r]=b-a; t[1][r]=cc-b; t[2][r]=d-cc; r1[r]=(b-a)/(cc-b); r2[r]=(b-a)/(d-cc); }
  }
  double e = 0; for (long i = 0; i < M*N; i++) { double q = fabs(C2[i]-C0[i]); if (q > e) e = q; }
  for (int i = 0; i < 3; i++) qsort(t[i], reps, sizeof(double), cmpd);
  qsort(r1, reps, sizeof(double), cmpd);
  qsort(r2, reps, sizeof(double), cmpd);
  printf("lowered %ld<-%ld @%ldx%ld x%ld (%ld x %ld x %ld) %d thr: dense %.2f ms, reg %.2f (%.2fx, q %.2f-%.2f), jit %.2f (%.2fx, q %.2f-%.2f) maxdiff %.1e\n",
    M,c,h,h,n,M,N,K,th,t[0][reps/2]*1e3,t[1][reps/2]*1e3,r1[reps/2],r1[reps/4],r1[3*reps/4],t[2][reps/2]*1e3,r2[reps/2],r2[reps/4],r2[3*reps/4],e);
  return 0;
}
