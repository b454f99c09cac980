#ifndef FST4J_GEMM_INTERNAL_H
#define FST4J_GEMM_INTERNAL_H
#include <stdint.h>

/* One register-blocked micro-kernel family, compiled once per ISA from gemm_kernel.c.
 * kernel: C[0:m, 0:n] += alpha * Apack(kc x MR) * Bpack(kc x NR), m <= MR, n <= NR.
 * Apack holds MR floats per k step (rows past m zero-padded), Bpack NR floats per k step. */
typedef struct {
    const char *name;
    int mr, nr;
    void (*kernel)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                   float alpha, int m, int n);
} fst_kernel;

extern const fst_kernel fst_kernel_avx512;
extern const fst_kernel fst_kernel_avx2;
extern const fst_kernel fst_kernel_generic;

/* The family chosen for this CPU (cpuid at first use). */
const fst_kernel *fst_gemm_kernel(void);
#endif
