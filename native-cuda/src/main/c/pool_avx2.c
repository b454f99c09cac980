/* Max pooling's 2x2 / stride 2 forward with AVX2, 8 windows at a time: pool_avx512.c's selects on 256-bit vectors, for the
 * CPUs without AVX-512 (pool.c calls it only where the CPU has AVX2 and the AVX-512 path is not taken). The same window
 * order, so the same maxima and indices as the scalar loop. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include "vec_paths.h"


/* lanes [0, n) of a load or store mask */
static inline __m256i first8(int64_t n) {
    if (n > 8) n = 8;
    if (n < 0) n = 0;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int32_t)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* the 16 floats of a row from column 2 ow0 on (2 n of them valid) as its even and odd lanes, in order */
static inline void split_row(const float *r, int64_t n, __m256 *ev, __m256 *od) {
    const __m256 l0 = _mm256_maskload_ps(r, first8(2 * n)), l1 = _mm256_maskload_ps(r + 8, first8(2 * n - 8));
    /* per 128-bit lane: (0, 2 | 8, 10), (4, 6 | 12, 14): then the 64-bit pairs in order */
    *ev = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(l0, l1, _MM_SHUFFLE(2, 0, 2, 0))), _MM_SHUFFLE(3, 1, 2, 0)));
    *od = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(l0, l1, _MM_SHUFFLE(3, 1, 3, 1))), _MM_SHUFFLE(3, 1, 2, 0)));
}

static inline void pick(__m256 m, __m256 v, __m256i at, __m256 *best, __m256i *arg) {
    *best = _mm256_blendv_ps(*best, v, m);
    *arg = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(*arg), _mm256_castsi256_ps(at), m));
}

void fst_maxpool2x2_plane_avx2(const float *x, int64_t w, int64_t ho, int64_t wo, float *y, int32_t *ix) {
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    const __m256i two = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14), one = _mm256_set1_epi32(1), wv = _mm256_set1_epi32((int32_t)w),
                  w1 = _mm256_set1_epi32((int32_t)w + 1);
    for (int64_t oh = 0; oh < ho; oh++) {
        const float *r0 = x + 2 * oh * w, *r1 = r0 + w;
        for (int64_t ow0 = 0; ow0 < wo; ow0 += 8) {
            const int64_t n = wo - ow0 < 8 ? wo - ow0 : 8;
            __m256 a, b, c, d;
            split_row(r0 + 2 * ow0, n, &a, &b);
            split_row(r1 + 2 * ow0, n, &c, &d);
            const __m256i base = _mm256_add_epi32(_mm256_set1_epi32((int32_t)(2 * oh * w + 2 * ow0)), two);
            const __m256i bb = _mm256_add_epi32(base, one), bc = _mm256_add_epi32(base, wv), bd = _mm256_add_epi32(base, w1);
            __m256 best = _mm256_blendv_ps(ninf, a, _mm256_cmp_ps(a, ninf, _CMP_GT_OQ));
            __m256i arg = base;
            pick(_mm256_cmp_ps(b, best, _CMP_GT_OQ), b, bb, &best, &arg);
            pick(_mm256_cmp_ps(c, best, _CMP_GT_OQ), c, bc, &best, &arg);
            pick(_mm256_cmp_ps(d, best, _CMP_GT_OQ), d, bd, &best, &arg);
            /* the first NaN in window order wins: applied last to first */
            pick(_mm256_cmp_ps(d, d, _CMP_UNORD_Q), d, bd, &best, &arg);
            pick(_mm256_cmp_ps(c, c, _CMP_UNORD_Q), c, bc, &best, &arg);
            pick(_mm256_cmp_ps(b, b, _CMP_UNORD_Q), b, bb, &best, &arg);
            pick(_mm256_cmp_ps(a, a, _CMP_UNORD_Q), a, base, &best, &arg);
            const __m256i k = first8(n);
            _mm256_maskstore_ps(y + oh * wo + ow0, k, best);
            _mm256_maskstore_epi32(ix + oh * wo + ow0, k, arg);
        }
    }
}
