/* Max pooling's 2x2 / stride 2 window with AVX-512, 16 outputs at a time (pool.c calls these only on a CPU that has it).
 *
 * Forward: the four candidates of 16 windows are the even and odd lanes of two rows (two permutes per row), and the same
 * selects as pool.c's scalar loop run as masked blends in the same window order: a (or -inf where a is -inf or NaN), then
 * b, c, d where strictly greater, then the first NaN in window order. So the same maxima and the same indices.
 * Backward: where every index of a row of windows lies in its own 2x2 block (as the forward above writes them, whatever the
 * pool's geometry that produced them), each input element receives at most one gradient, so dx = 0 + dy there and 0 elsewhere,
 * written row by row without the zeroing pass; else the caller's scalar loop does the plane. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "vec_paths.h"


static inline __mmask16 first(int64_t n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u); }

static const int32_t EVEN[16] = { 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30 };
static const int32_t ODD[16] = { 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31 };
static const int32_t LANE[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
/* interleave a (even positions) and b (odd): lo = a0 b0 .. a7 b7, hi = a8 b8 .. a15 b15 (index bit 4 picks b) */
static const int32_t ILO[16] = { 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23 };
static const int32_t IHI[16] = { 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31 };

/* the 32 floats of a row from column 2 ow0 on (2 n of them valid), as its even and odd lanes */
static inline void split_row(const float *r, int64_t n, __m512 *ev, __m512 *od) {
    const __m512 l0 = _mm512_maskz_loadu_ps(first(2 * n), r), l1 = _mm512_maskz_loadu_ps(first(2 * n - 16 > 0 ? 2 * n - 16 : 0), r + 16);
    *ev = _mm512_permutex2var_ps(l0, _mm512_loadu_si512(EVEN), l1);
    *od = _mm512_permutex2var_ps(l0, _mm512_loadu_si512(ODD), l1);
}

/* lanes m of v (and their indices at) into best / arg */
static inline void pick(__mmask16 m, __m512 v, __m512i at, __m512 *best, __m512i *arg) {
    *best = _mm512_mask_blend_ps(m, *best, v);
    *arg = _mm512_mask_blend_epi32(m, *arg, at);
}

void fst_maxpool2x2_plane_avx512(const float *x, int64_t w, int64_t ho, int64_t wo, float *y, int32_t *ix) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    const __m512i lane = _mm512_loadu_si512(LANE), one = _mm512_set1_epi32(1), wv = _mm512_set1_epi32((int32_t)w),
                  w1 = _mm512_set1_epi32((int32_t)w + 1);
    for (int64_t oh = 0; oh < ho; oh++) {
        const float *r0 = x + 2 * oh * w, *r1 = r0 + w;
        for (int64_t ow0 = 0; ow0 < wo; ow0 += 16) {
            const int64_t n = wo - ow0 < 16 ? wo - ow0 : 16;
            __m512 a, b, c, d;
            split_row(r0 + 2 * ow0, n, &a, &b);
            split_row(r1 + 2 * ow0, n, &c, &d);
            const __m512i base = _mm512_add_epi32(_mm512_set1_epi32((int32_t)(2 * oh * w + 2 * ow0)), _mm512_add_epi32(lane, lane));
            const __m512i bb = _mm512_add_epi32(base, one), bc = _mm512_add_epi32(base, wv), bd = _mm512_add_epi32(base, w1);
            __m512 best = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, ninf, _CMP_GT_OQ), ninf, a);
            __m512i arg = base;
            pick(_mm512_cmp_ps_mask(b, best, _CMP_GT_OQ), b, bb, &best, &arg);
            pick(_mm512_cmp_ps_mask(c, best, _CMP_GT_OQ), c, bc, &best, &arg);
            pick(_mm512_cmp_ps_mask(d, best, _CMP_GT_OQ), d, bd, &best, &arg);
            /* the first NaN in window order wins: applied last to first */
            pick(_mm512_cmp_ps_mask(d, d, _CMP_UNORD_Q), d, bd, &best, &arg);
            pick(_mm512_cmp_ps_mask(c, c, _CMP_UNORD_Q), c, bc, &best, &arg);
            pick(_mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q), b, bb, &best, &arg);
            pick(_mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), a, base, &best, &arg);
            _mm512_mask_storeu_ps(y + oh * wo + ow0, first(n), best);
            _mm512_mask_storeu_epi32(ix + oh * wo + ow0, first(n), arg);
        }
    }
}

/* 1: done; 0: some index outside its window's 2x2 block (nothing to trust in dx: the caller redoes the plane) */
int fst_maxpool2x2_bwd_plane_avx512(const float *dy, const int32_t *ix, int64_t h, int64_t w, int64_t ho, int64_t wo, float *dx) {
    const __m512 zero = _mm512_setzero_ps();
    const __m512i lane = _mm512_loadu_si512(LANE), one = _mm512_set1_epi32(1), wv = _mm512_set1_epi32((int32_t)w),
                  w1 = _mm512_set1_epi32((int32_t)w + 1), ilo = _mm512_loadu_si512(ILO), ihi = _mm512_loadu_si512(IHI);
    for (int64_t oh = 0; oh < ho; oh++) {
        float *d0 = dx + 2 * oh * w, *d1 = d0 + w;
        for (int64_t ow0 = 0; ow0 < wo; ow0 += 16) {
            const int64_t n = wo - ow0 < 16 ? wo - ow0 : 16;
            const __mmask16 k = first(n);
            const __m512i base = _mm512_add_epi32(_mm512_set1_epi32((int32_t)(2 * oh * w + 2 * ow0)), _mm512_add_epi32(lane, lane));
            const __m512i t = _mm512_maskz_loadu_epi32(k, ix + oh * wo + ow0);
            const __mmask16 ma = _mm512_cmpeq_epi32_mask(t, base), mb = _mm512_cmpeq_epi32_mask(t, _mm512_add_epi32(base, one)),
                            mc = _mm512_cmpeq_epi32_mask(t, _mm512_add_epi32(base, wv)), md = _mm512_cmpeq_epi32_mask(t, _mm512_add_epi32(base, w1));
            if ((__mmask16)((ma | mb | mc | md) & k) != k) return 0;
            /* 0 + dy: the scalar loop adds into a zeroed plane (-0.0 becomes +0.0 as there) */
            const __m512 v = _mm512_add_ps(zero, _mm512_maskz_loadu_ps(k, dy + oh * wo + ow0));
            const __m512 ea = _mm512_maskz_mov_ps(ma, v), ob = _mm512_maskz_mov_ps(mb, v), ec = _mm512_maskz_mov_ps(mc, v),
                         od = _mm512_maskz_mov_ps(md, v);
            const __mmask16 s0 = first(2 * n), s1 = first(2 * n - 16 > 0 ? 2 * n - 16 : 0);
            _mm512_mask_storeu_ps(d0 + 2 * ow0, s0, _mm512_permutex2var_ps(ea, ilo, ob));
            _mm512_mask_storeu_ps(d0 + 2 * ow0 + 16, s1, _mm512_permutex2var_ps(ea, ihi, ob));
            _mm512_mask_storeu_ps(d1 + 2 * ow0, s0, _mm512_permutex2var_ps(ec, ilo, od));
            _mm512_mask_storeu_ps(d1 + 2 * ow0 + 16, s1, _mm512_permutex2var_ps(ec, ihi, od));
        }
        for (int64_t q = 2 * wo; q < w; q++) d0[q] = d1[q] = 0.0f;   /* an odd last column: no window */
    }
    if (2 * ho < h) memset(dx + 2 * ho * w, 0, (size_t)((h - 2 * ho) * w) * 4);   /* rows below the last window */
    return 1;
}
