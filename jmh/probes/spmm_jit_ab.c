/* fst_spmm24 with the compiled product (fst_spmm24_jit) off and on, and the dense fst_sgemm, taking turns call by call (spmm_jit_ab.sh). Usage: spmm_jit_ab M N K threads [rounds] [only: 1 jit, 2 register kernel] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
#include "fst4j.h"
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }
int main(int argc, char **argv) {
  long M = atol(argv[1]), N = atol(argv[2]), K = atol(argv[3]); int th = atoi(argv[4]); int reps = argc > 5 ? atoi(argv[5]) : 15;
  long Kp = (K+3)&~3L;
  float *A = aligned_alloc(64, M*K*4), *S = aligned_alloc(64, M*K*4), *B = aligned_alloc(64, K*N*4), *C0 = aligned_alloc(64, M*N*4), *C1 = aligned_alloc(64, M*N*4), *C2 = aligned_alloc(64, M*N*4), *v = aligned_alloc(64, M*Kp*2+64);
  uint32_t *m = aligned_alloc(64, M*((Kp+31)/32)*4+64);
  for (long i = 0; i < M*K; i++) A[i] = (float)((i * 2654435761u) % 1000) / 1000.f - .5f;
  for (long i = 0; i < K*N; i++) B[i] = (float)((i * 40503u + 7) % 997) / 997.f - .5f;
  fst_prune24_compress(M, K, A, K, v, m, S, K, 1);
  double t[3][64], r1[64], r2[64];
  for (int r = -2; r < reps; r++) {
    int only = argc > 6 ? atoi(argv[6]) : 0; double a = now(); if (!only) fst_sgemm(0,0,M,N,K,1.f,S,K,B,N,0.f,C0,N,th);
    double b = now(); fst_spmm24_jit(0); if (only != 1) fst_spmm24(M,N,K,1.f,v,m,B,N,0.f,C1,N,th);
    double c = now(); fst_spmm24_jit(1); if (only != 2) fst_spmm24(M,N,K,1.f,v,m,B,N,0.f,C2,N,th);
    double d = now();
    if (r >= 0) { t[0][r]=b-a; t[1][r]=c-b; t[2][r]=d-c; r1[r] = (b-a)/(c-b); r2[r] = (b-a)/(d-c); }
  }
  double e = 0; for (long i = 0; i < M*N; i++) { double x = fabs(C2[i]-C0[i]); if (x > e) e = x; }
  for (int i = 0; i < 3; i++) qsort(t[i], reps, sizeof(double), cmpd);
  qsort(r1, reps, sizeof(double), cmpd);
  qsort(r2, reps, sizeof(double), cmpd);
  printf("%4ld x %5ld x %4ld %d thr: dense %.2f ms, reg kernel %.2f (%.2fx dense, q %.2f-%.2f), jit %.2f (%.2fx dense, q %.2f-%.2f)  maxdiff %.1e\n",
    M,N,K,th,t[0][reps/2]*1e3,t[1][reps/2]*1e3,r1[reps/2],r1[reps/4],r1[3*reps/4],t[2][reps/2]*1e3,r2[reps/2],r2[reps/4],r2[3*reps/4],e);
  return 0;
}
