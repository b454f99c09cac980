/* col2im of a convolution with stride 2 along both axes, as a gather (conv.c calls it only on a CPU with AVX-512).
 *
 * The scatter in conv.c adds each tap's row of the gradient matrix into every other element of a plane row, one float
 * at a time (the stride-2 store does not vectorise), after zeroing the plane. Here each plane row is written once: for
 * row y, the taps whose input row is y give, per column parity px, a sum over t of shifted runs of their matrix rows
 * (x = 2t + px), and the even and odd sums are interleaved into the row. Each element receives the same contributions
 * in the same order as in the scatter (tap rows i ascending, then tap columns jj ascending, starting from +0.0), so the
 * result has the same bits; a missing contribution (a tap whose output column lies outside [0, wo)) is loaded as -0.0,
 * which adds nothing to any value, -0.0 and NaN included. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include "vec_paths.h"


/* lanes l of [0, 16) with lo <= l < hi */
static inline __mmask16 lanes(int64_t lo, int64_t hi) {
    if (lo < 0) lo = 0;
    if (hi > 16) hi = 16;
    if (hi <= lo) return 0;
    return (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
}

/* cols: the matrix row of tap (0, 0) of this plane's channel, at this image's first column; kh and kw <= 64 (the caller's) */
void fst_col2im_s2_plane_avx512(const float *cols, int64_t ld, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t ph,
                                int64_t pw, int64_t ho, int64_t wo, float *plane) {
    const __m512 nz = _mm512_set1_ps(-0.0f);
    /* even sums in a, odd sums in b: x = 2t -> a[t], x = 2t + 1 -> b[t] (index bit 4 picks b) */
    const __m512i lo_idx = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi_idx = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    const int64_t nt = (w + 1) / 2;
    /* per tap column jj: its parity px (x = 2t + px reads output column ow = t + d, where 2 ow - pw + jj = x), its matrix
     * row offset and shift, and, where one vector covers every t (w <= 32), its lanes with 0 <= ow < wo */
    int64_t joff[64];
    int jpx[64];
    __mmask16 jm[64];
    if (kw > 64 || kh > 64) {   /* the caller's limit (conv.c takes the scatter there); never a plane left unwritten */
        memset(plane, 0, (size_t)(h * w) * 4);
        return;
    }
    for (int64_t jj = 0; jj < kw; jj++) {
        const int64_t px = (jj - pw) & 1, d = (px + pw - jj) / 2;
        jpx[jj] = (int)px;
        joff[jj] = jj * ld + d;
        jm[jj] = lanes(-d, wo - d);
    }
    for (int64_t y = 0; y < h; y++) {
        const float *rows[64];   /* per tap row i whose input row is y: its matrix row (i, 0) at output row oh */
        int nv = 0;
        for (int64_t i = (y + ph) & 1; i < kh; i += 2) {   /* y + ph - i even */
            const int64_t u = y + ph - i;
            if (u < 0) break;
            if ((u >> 1) < ho) rows[nv++] = cols + i * kw * ld + (u >> 1) * wo;
        }
        float *drow = plane + y * w;
        if (nv == 0) { memset(drow, 0, (size_t)w * 4); continue; }
        for (int64_t t0 = 0; t0 < nt; t0 += 16) {
            __m512 e = _mm512_setzero_ps(), o = _mm512_setzero_ps();
            for (int a = 0; a < nv; a++) {
                for (int64_t jj = 0; jj < kw; jj++) {
                    const int64_t d = joff[jj] - jj * ld;
                    const __mmask16 m = nt <= 16 ? jm[jj] : lanes(-d - t0, wo - d - t0);
                    if (!m) continue;   /* adding -0.0 everywhere: nothing */
                    const __m512 v = _mm512_mask_loadu_ps(nz, m, rows[a] + joff[jj] + t0);
                    if (jpx[jj]) o = _mm512_add_ps(o, v);
                    else e = _mm512_add_ps(e, v);
                }
            }
            const int64_t x0 = 2 * t0, rem = w - x0;
            const __m512 r0 = _mm512_permutex2var_ps(e, lo_idx, o), r1 = _mm512_permutex2var_ps(e, hi_idx, o);
            if (rem >= 32) {
                _mm512_storeu_ps(drow + x0, r0);
                _mm512_storeu_ps(drow + x0 + 16, r1);
            } else {
                _mm512_mask_storeu_ps(drow + x0, lanes(0, rem), r0);
                if (rem > 16) _mm512_mask_storeu_ps(drow + x0 + 16, lanes(0, rem - 16), r1);
            }
        }
    }
}
