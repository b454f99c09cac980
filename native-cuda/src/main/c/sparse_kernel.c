/* 2:4 sparse x dense product (fst_spmm24), the per-thread driver and register kernel, compiled once
 * per ISA by the Makefile (-DFST_ISA_AVX512 / -DFST_ISA_AVX2 / neither) from this one source, like
 * gemm_kernel.c. sparse.c validates, scales C by beta, splits the work and picks the ISA at run time.
 *
 * Loop order: for each NB-wide column block of B and each KB-deep block of K, B[k0:k0+KB, j:j+NB] is
 * copied into a small aligned buffer (zero-filled past N and past K, so padded groups read zeros), and
 * every row of S streams over it: MR sparse rows x NB columns are accumulated in registers, each kept
 * value broadcast against the buffer row its 2-bit index selects. */
#include <stdint.h>
#include <string.h>

#if defined(FST_ISA_AVX512)
#  define VL 16
#  define NV 4
#  define FN fst_spmm24_range_avx512
#elif defined(FST_ISA_AVX2)
#  define VL 8
#  define NV 2
#  define FN fst_spmm24_range_avx2
#else
#  define VL 4
#  define NV 2
#  define FN fst_spmm24_range_generic
#endif
#define NB (VL * NV)                        /* columns per block */
#define KB ((24576 / (NB * 4)) & ~31)       /* K rows per block: a ~24 KiB buffer, whole metadata words */
#define MR 4                                /* sparse rows per register block */

typedef float vfa __attribute__((vector_size(VL * 4)));

/* Same prototype as declared in sparse.c. buf holds KB * NB floats, 64-byte aligned. */
int FN(int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, float alpha, const float *values,
       const uint32_t *meta, const float *B, int64_t ldb, float *C, int64_t ldc, float *buf, int query);

/* C[0:mr, 0:n] += alpha * S[0:mr, groups g0..g0+ng) * buf. */
static inline __attribute__((always_inline)) void rows(int mr, const float *restrict val, int64_t ldv,
        const uint32_t *restrict meta, int64_t ldm, int64_t g0, int64_t ng, const float *restrict buf,
        float *restrict c, int64_t ldc, float alpha, int n) {
    vfa acc[MR][NV];
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < NV; v++) acc[i][v] = (vfa){0};
    for (int64_t g = 0; g < ng; g++) {
        const int64_t gg = g0 + g;
        const float *bg = buf + g * 4 * NB;
        for (int i = 0; i < mr; i++) {
            uint32_t nib = (meta[i * ldm + (gg >> 3)] >> ((gg & 7) * 4)) & 15u;
            const vfa *b0 = (const vfa *)(bg + (nib & 3u) * NB), *b1 = (const vfa *)(bg + (nib >> 2) * NB);
            vfa x0 = (vfa){0} + val[i * ldv + 2 * gg], x1 = (vfa){0} + val[i * ldv + 2 * gg + 1];
            for (int v = 0; v < NV; v++) {
                acc[i][v] += x0 * b0[v];
                acc[i][v] += x1 * b1[v];
            }
        }
    }
    if (n == NB) {
        for (int i = 0; i < mr; i++)
            for (int v = 0; v < NV; v++) {
                vfa cv;
                memcpy(&cv, c + i * ldc + v * VL, sizeof cv);
                cv += acc[i][v] * alpha;
                memcpy(c + i * ldc + v * VL, &cv, sizeof cv);
            }
    } else {
        float tmp[NB];
        for (int i = 0; i < mr; i++) {
            memcpy(tmp, acc[i], sizeof tmp);
            for (int j = 0; j < n; j++) c[i * ldc + j] += alpha * tmp[j];
        }
    }
}

/* C[m0:m1, n0:n1] += alpha * S[m0:m1, :] * B[:, n0:n1] on one thread. query != 0: return NB instead. */
int FN(int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, float alpha, const float *values,
       const uint32_t *meta, const float *B, int64_t ldb, float *C, int64_t ldc, float *buf, int query) {
    if (query == 1) return NB;
    if (query == 2) return KB;
    const int64_t Kp = (K + 3) & ~(int64_t)3, ldv = Kp / 2, ldm = (Kp + 31) / 32;
    for (int64_t jn = n0; jn < n1; jn += NB) {
        const int n = (int)(n1 - jn < NB ? n1 - jn : NB);
        for (int64_t k0 = 0; k0 < Kp; k0 += KB) {
            const int64_t kb = Kp - k0 < KB ? Kp - k0 : KB;
            for (int64_t p = 0; p < kb; p++) {
                float *d = buf + p * NB;
                if (k0 + p < K) {
                    memcpy(d, B + (k0 + p) * ldb + jn, (size_t)n * 4);
                    if (n < NB) memset(d + n, 0, (size_t)(NB - n) * 4);
                } else {
                    memset(d, 0, NB * 4);
                }
            }
            const int64_t g0 = k0 / 4, ng = kb / 4;
            int64_t i = m0;
            for (; i + MR <= m1; i += MR)
                rows(MR, values + i * ldv, ldv, meta + i * ldm, ldm, g0, ng, buf, C + i * ldc + jn, ldc, alpha, n);
            for (; i < m1; i++)
                rows(1, values + i * ldv, ldv, meta + i * ldm, ldm, g0, ng, buf, C + i * ldc + jn, ldc, alpha, n);
        }
    }
    return 0;
}
