/* Register-blocked SGEMM micro-kernel, written once with GCC vector extensions and compiled per ISA
 * by the Makefile (-DFST_ISA_AVX512 / -DFST_ISA_AVX2 / neither), so one source serves every machine. */
#include "gemm_internal.h"
#include <string.h>

#if defined(FST_ISA_AVX512)
#  define VL 16
#  define MR 12
#  define NV 2
#  define KNAME fst_kernel_avx512
#  define SNAME "avx512"
#elif defined(FST_ISA_AVX2)
#  define VL 8
#  define MR 6
#  define NV 2
#  define KNAME fst_kernel_avx2
#  define SNAME "avx2"
#else
#  define VL 4
#  define MR 4
#  define NV 2
#  define KNAME fst_kernel_generic
#  define SNAME "generic"
#endif
#define NR (VL * NV)

typedef float vf __attribute__((vector_size(VL * 4), aligned(4)));
typedef float vfa __attribute__((vector_size(VL * 4)));

static inline vf load(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
static inline void store(float *p, vf v) { memcpy(p, &v, sizeof v); }

static void kernel(int64_t kc, const float *restrict a, const float *restrict b, float *restrict c,
                   int64_t ldc, float alpha, int m, int n) {
    vfa acc[MR][NV];
    #pragma GCC unroll 16
    for (int i = 0; i < MR; i++)
        #pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[i][v] = (vfa){0};
    for (int64_t p = 0; p < kc; p++) {
        vfa bv[NV];
        #pragma GCC unroll 4
        for (int v = 0; v < NV; v++) bv[v] = *(const vfa *)(b + p * NR + v * VL);
        #pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            vfa ai = (vfa){0} + a[p * MR + i];
            #pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[i][v] += ai * bv[v];
        }
    }
    if (m == MR && n == NR) {
        #pragma GCC unroll 16
        for (int i = 0; i < MR; i++)
            #pragma GCC unroll 4
            for (int v = 0; v < NV; v++) {
                float *cp = c + i * ldc + v * VL;
                store(cp, load(cp) + (vf)(acc[i][v] * alpha));
            }
    } else {
        float tmp[NR];
        for (int i = 0; i < m; i++) {
            for (int v = 0; v < NV; v++) memcpy(tmp + v * VL, &acc[i][v], VL * 4);
            float *cp = c + i * ldc;
            for (int j = 0; j < n; j++) cp[j] += alpha * tmp[j];
        }
    }
}

const fst_kernel KNAME = { SNAME, MR, NR, kernel };
