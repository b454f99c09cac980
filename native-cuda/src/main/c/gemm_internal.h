#ifndef FST4J_GEMM_INTERNAL_H
#define FST4J_GEMM_INTERNAL_H
#include <stdint.h>

/* One register-blocked micro-kernel family, compiled once per ISA from gemm_kernel.c.
 * kernel: C[0:m, 0:n] = alpha * Apack(kc x MR) * Bpack(kc x NR) + beta * C[0:m, 0:n], m <= MR, n <= NR,
 * where beta == 0 means C is not read (BLAS semantics: NaN in C does not propagate) and kc >= 1.
 * Apack holds MR floats per k step (rows past m zero-padded), Bpack NR floats per k step (columns past n
 * zero-padded), both 64-byte aligned. */
typedef struct {
    const char *name;
    int mr, nr;
    void (*kernel)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                   float alpha, float beta, int m, int n);
    /* Transposing pack: dst[p * w + r] = src[r * ld + p] for r < cnt, 0 for cnt <= r < w, p < kc.
     * Packs a sliver whose source rows run along k (A not transposed, B transposed). */
    void (*pack_t)(const float *src, int64_t ld, int cnt, int w, int64_t kc, float *dst);
} fst_kernel;

/* The largest tile of any family (avx512: 8 x 48). */
#define FST_MR_MAX 8
#define FST_NR_MAX 48

extern const fst_kernel fst_kernel_avx512;
extern const fst_kernel fst_kernel_avx2;
extern const fst_kernel fst_kernel_generic;

/* The family chosen for this CPU (cpuid at first use). */
const fst_kernel *fst_gemm_kernel(void);
#endif
