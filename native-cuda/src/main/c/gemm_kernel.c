/* Register-blocked SGEMM micro-kernels, compiled once per ISA by the Makefile (-DFST_ISA_AVX512 /
 * -DFST_ISA_AVX2 / neither), so one source serves every x86-64 machine.
 *   avx512: 8 x 48 tile (24 zmm accumulators, 3 zmm of B per k step, A broadcast from the packed sliver),
 *           narrower edge tiles use 1 or 2 zmm with a masked last column, C stored with masks.
 *   avx2:   6 x 16 tile (12 ymm accumulators), explicit FMA.
 *   generic: 6 x 8 tile with SSE2-width GCC vector extensions (multiply + add, no FMA assumed). */
#include "gemm_internal.h"
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

#if defined(FST_ISA_AVX512)
#include <immintrin.h>
#define MR 8
#define NR 48

INLINE void tile512(const int nv, int64_t kc, const float *restrict a, const float *restrict b,
                    float *restrict c, int64_t ldc, float alpha, float beta, int m, int n) {
    __m512 acc[MR][3];
    #pragma GCC unroll 8
    for (int i = 0; i < MR; i++)
        #pragma GCC unroll 3
        for (int v = 0; v < 3; v++) acc[i][v] = _mm512_setzero_ps();
    for (int i = 0; i < m; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 16 * nv - 1), _MM_HINT_T0);
    }
    #pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
        __m512 b0 = _mm512_load_ps(b), b1 = b0, b2 = b0;
        if (nv > 1) b1 = _mm512_load_ps(b + 16);
        if (nv > 2) b2 = _mm512_load_ps(b + 32);
        #pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            __m512 ai = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            if (nv > 1) acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
            if (nv > 2) acc[i][2] = _mm512_fmadd_ps(ai, b2, acc[i][2]);
        }
        a += MR;
        b += NR;
    }
    const int rem = n - 16 * (nv - 1);
    const __mmask16 last = rem >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << rem) - 1);
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    #pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        if (i >= m) break;
        float *cp = c + i * ldc;
        #pragma GCC unroll 3
        for (int v = 0; v < nv; v++) {
            __mmask16 k = v == nv - 1 ? last : (__mmask16)0xFFFF;
            __m512 r = _mm512_mul_ps(acc[i][v], va);
            if (beta == 1.0f) r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(k, cp + 16 * v));
            else if (beta != 0.0f) r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k, cp + 16 * v), r);
            _mm512_mask_storeu_ps(cp + 16 * v, k, r);
        }
    }
}

static void kernel(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                   float alpha, float beta, int m, int n) {
    if (n > 32) tile512(3, kc, a, b, c, ldc, alpha, beta, m, n);
    else if (n > 16) tile512(2, kc, a, b, c, ldc, alpha, beta, m, n);
    else tile512(1, kc, a, b, c, ldc, alpha, beta, m, n);
}

/* Transposing pack (see gemm_internal.h): 8 x 8 blocks through registers where AVX is there, scalar otherwise. */
static void pack_t(const float *restrict src, int64_t ld, int cnt, int w, int64_t kc, float *restrict dst) {
    int64_t p = 0;
#if defined(FST_ISA_AVX512) || defined(FST_ISA_AVX2)
    const int r8 = cnt & ~7;
    for (; p + 8 <= kc; p += 8) {
        for (int r = 0; r < r8; r += 8) {
            const float *s = src + r * ld + p;
            __m256 x0 = _mm256_loadu_ps(s), x1 = _mm256_loadu_ps(s + ld), x2 = _mm256_loadu_ps(s + 2 * ld),
                   x3 = _mm256_loadu_ps(s + 3 * ld), x4 = _mm256_loadu_ps(s + 4 * ld), x5 = _mm256_loadu_ps(s + 5 * ld),
                   x6 = _mm256_loadu_ps(s + 6 * ld), x7 = _mm256_loadu_ps(s + 7 * ld);
            __m256 t0 = _mm256_unpacklo_ps(x0, x1), t1 = _mm256_unpackhi_ps(x0, x1);
            __m256 t2 = _mm256_unpacklo_ps(x2, x3), t3 = _mm256_unpackhi_ps(x2, x3);
            __m256 t4 = _mm256_unpacklo_ps(x4, x5), t5 = _mm256_unpackhi_ps(x4, x5);
            __m256 t6 = _mm256_unpacklo_ps(x6, x7), t7 = _mm256_unpackhi_ps(x6, x7);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
            __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
            __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
            __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            float *d = dst + p * w + r;
            _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_storeu_ps(d + w, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_storeu_ps(d + 2 * w, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_storeu_ps(d + 3 * w, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_storeu_ps(d + 4 * w, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_storeu_ps(d + 5 * w, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_storeu_ps(d + 6 * w, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_storeu_ps(d + 7 * w, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
        for (int q = 0; q < 8; q++) {
            float *d = dst + (p + q) * w;
            for (int r = r8; r < cnt; r++) d[r] = src[r * ld + p + q];
            for (int r = cnt; r < w; r++) d[r] = 0.0f;
        }
    }
#endif
    for (; p < kc; p++) {
        float *d = dst + p * w;
        for (int r = 0; r < cnt; r++) d[r] = src[r * ld + p];
        for (int r = cnt; r < w; r++) d[r] = 0.0f;
    }
}
_Static_assert(MR <= FST_MR_MAX && NR <= FST_NR_MAX, "gemm.c's tile buffer (image_tile) holds FST_MR_MAX x FST_NR_MAX floats");
const fst_kernel fst_kernel_avx512 = { "avx512", MR, NR, kernel, pack_t };

#else /* AVX2 and generic: one template over a short vector type */

#if defined(FST_ISA_AVX2)
#include <immintrin.h>
#define VL 8
#define MR 6
typedef __m256 vec;
#define VLOAD(p) _mm256_load_ps(p)
#define VLOADU(p) _mm256_loadu_ps(p)
#define VSTOREU(p, x) _mm256_storeu_ps(p, x)
#define VSET1(x) _mm256_set1_ps(x)
#define VZERO() _mm256_setzero_ps()
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VMUL(a, b) _mm256_mul_ps(a, b)
#define VADD(a, b) _mm256_add_ps(a, b)
#define KNAME fst_kernel_avx2
#define SNAME "avx2"
#else
#define VL 4
#define MR 6
typedef float vec __attribute__((vector_size(16)));
typedef float vecu __attribute__((vector_size(16), aligned(4)));
#define VLOAD(p) (*(const vec *)(p))
#define VLOADU(p) ((vec)(*(const vecu *)(p)))
#define VSTOREU(p, x) (*(vecu *)(p) = (x))
#define VSET1(x) ((vec){x, x, x, x})
#define VZERO() ((vec){0, 0, 0, 0})
#define VFMA(a, b, c) ((a) * (b) + (c))
#define VMUL(a, b) ((a) * (b))
#define VADD(a, b) ((a) + (b))
#define KNAME fst_kernel_generic
#define SNAME "generic"
#endif
#define NR (2 * VL)

static void kernel(int64_t kc, const float *restrict a, const float *restrict b, float *restrict c,
                   int64_t ldc, float alpha, float beta, int m, int n) {
    vec acc[MR][2];
    #pragma GCC unroll 8
    for (int i = 0; i < MR; i++) { acc[i][0] = VZERO(); acc[i][1] = VZERO(); }
    #pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
        vec b0 = VLOAD(b), b1 = VLOAD(b + VL);
        #pragma GCC unroll 8
        for (int i = 0; i < MR; i++) {
            vec ai = VSET1(a[i]);
            acc[i][0] = VFMA(ai, b0, acc[i][0]);
            acc[i][1] = VFMA(ai, b1, acc[i][1]);
        }
        a += MR;
        b += NR;
    }
    const vec va = VSET1(alpha), vb = VSET1(beta);
    if (m == MR && n == NR) {
        #pragma GCC unroll 8
        for (int i = 0; i < MR; i++)
            for (int v = 0; v < 2; v++) {
                float *cp = c + i * ldc + v * VL;
                vec r = VMUL(acc[i][v], va);
                if (beta == 1.0f) r = VADD(r, VLOADU(cp));
                else if (beta != 0.0f) r = VFMA(vb, VLOADU(cp), r);
                VSTOREU(cp, r);
            }
    } else {
        float tmp[NR];
        for (int i = 0; i < m; i++) {
            VSTOREU(tmp, VMUL(acc[i][0], va));
            VSTOREU(tmp + VL, VMUL(acc[i][1], va));
            float *cp = c + i * ldc;
            for (int j = 0; j < n; j++) cp[j] = beta == 0.0f ? tmp[j] : tmp[j] + beta * cp[j];
        }
    }
}

/* Transposing pack (see gemm_internal.h): 8 x 8 blocks through registers where AVX is there, scalar otherwise. */
static void pack_t(const float *restrict src, int64_t ld, int cnt, int w, int64_t kc, float *restrict dst) {
    int64_t p = 0;
#if defined(FST_ISA_AVX512) || defined(FST_ISA_AVX2)
    const int r8 = cnt & ~7;
    for (; p + 8 <= kc; p += 8) {
        for (int r = 0; r < r8; r += 8) {
            const float *s = src + r * ld + p;
            __m256 x0 = _mm256_loadu_ps(s), x1 = _mm256_loadu_ps(s + ld), x2 = _mm256_loadu_ps(s + 2 * ld),
                   x3 = _mm256_loadu_ps(s + 3 * ld), x4 = _mm256_loadu_ps(s + 4 * ld), x5 = _mm256_loadu_ps(s + 5 * ld),
                   x6 = _mm256_loadu_ps(s + 6 * ld), x7 = _mm256_loadu_ps(s + 7 * ld);
            __m256 t0 = _mm256_unpacklo_ps(x0, x1), t1 = _mm256_unpackhi_ps(x0, x1);
            __m256 t2 = _mm256_unpacklo_ps(x2, x3), t3 = _mm256_unpackhi_ps(x2, x3);
            __m256 t4 = _mm256_unpacklo_ps(x4, x5), t5 = _mm256_unpackhi_ps(x4, x5);
            __m256 t6 = _mm256_unpacklo_ps(x6, x7), t7 = _mm256_unpackhi_ps(x6, x7);
            __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
            __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
            __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
            __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
            float *d = dst + p * w + r;
            _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
            _mm256_storeu_ps(d + w, _mm256_permute2f128_ps(u1, u5, 0x20));
            _mm256_storeu_ps(d + 2 * w, _mm256_permute2f128_ps(u2, u6, 0x20));
            _mm256_storeu_ps(d + 3 * w, _mm256_permute2f128_ps(u3, u7, 0x20));
            _mm256_storeu_ps(d + 4 * w, _mm256_permute2f128_ps(u0, u4, 0x31));
            _mm256_storeu_ps(d + 5 * w, _mm256_permute2f128_ps(u1, u5, 0x31));
            _mm256_storeu_ps(d + 6 * w, _mm256_permute2f128_ps(u2, u6, 0x31));
            _mm256_storeu_ps(d + 7 * w, _mm256_permute2f128_ps(u3, u7, 0x31));
        }
        for (int q = 0; q < 8; q++) {
            float *d = dst + (p + q) * w;
            for (int r = r8; r < cnt; r++) d[r] = src[r * ld + p + q];
            for (int r = cnt; r < w; r++) d[r] = 0.0f;
        }
    }
#endif
    for (; p < kc; p++) {
        float *d = dst + p * w;
        for (int r = 0; r < cnt; r++) d[r] = src[r * ld + p];
        for (int r = cnt; r < w; r++) d[r] = 0.0f;
    }
}
_Static_assert(MR <= FST_MR_MAX && NR <= FST_NR_MAX, "gemm.c's tile buffer (image_tile) holds FST_MR_MAX x FST_NR_MAX floats");
const fst_kernel KNAME = { SNAME, MR, NR, kernel, pack_t };
#endif
