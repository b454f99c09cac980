/* col2im at stride 2 (both axes) as a gather on AVX2: col2im_avx512.c's plane rows with 8-lane vectors, for the CPUs
 * without AVX-512 (conv.c calls it only where the CPU has AVX2 and the AVX-512 version is not taken). The same
 * contributions in the same order from +0.0, so the scatter's bits; a missing contribution loads as +0.0, which changes
 * no sum here (a sum that starts at +0.0 is never -0.0, and +0.0 + -0.0 is +0.0 in the scatter too). */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include "vec_paths.h"


/* lanes l of [0, 8) with lo <= l < hi, as a load / store mask */
static inline __m256i lanes8(int64_t lo, int64_t hi) {
    if (lo < 0) lo = 0;
    if (hi > 8) hi = 8;
    if (hi < lo) hi = lo;
    const __m256i l = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_and_si256(_mm256_cmpgt_epi32(l, _mm256_set1_epi32((int32_t)lo - 1)), _mm256_cmpgt_epi32(_mm256_set1_epi32((int32_t)hi), l));
}

void fst_col2im_s2_plane_avx2(const float *cols, int64_t ld, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t ph,
                              int64_t pw, int64_t ho, int64_t wo, float *plane) {
    if (kw > 64 || kh > 64) {   /* the caller's limit (conv.c takes the scatter there); never a plane left unwritten */
        memset(plane, 0, (size_t)(h * w) * 4);
        return;
    }
    const int64_t nt = (w + 1) / 2;
    int64_t joff[64], jd[64];
    int jpx[64];
    for (int64_t jj = 0; jj < kw; jj++) {
        const int64_t px = (jj - pw) & 1, d = (px + pw - jj) / 2;   /* x = 2t + px reads output column t + d */
        jpx[jj] = (int)px;
        jd[jj] = d;
        joff[jj] = jj * ld + d;
    }
    for (int64_t y = 0; y < h; y++) {
        const float *rows[64];
        int nv = 0;
        for (int64_t i = (y + ph) & 1; i < kh; i += 2) {
            const int64_t u = y + ph - i;
            if (u < 0) break;
            if ((u >> 1) < ho) rows[nv++] = cols + i * kw * ld + (u >> 1) * wo;
        }
        float *drow = plane + y * w;
        if (nv == 0) { memset(drow, 0, (size_t)w * 4); continue; }
        for (int64_t t0 = 0; t0 < nt; t0 += 8) {
            __m256 e = _mm256_setzero_ps(), o = _mm256_setzero_ps();
            for (int a = 0; a < nv; a++)
                for (int64_t jj = 0; jj < kw; jj++) {
                    const int64_t d = jd[jj], lo = -d - t0, hi = wo - d - t0;
                    if (hi <= 0 || lo >= 8 || hi <= lo) continue;
                    const __m256 v = _mm256_maskload_ps(rows[a] + joff[jj] + t0, lanes8(lo, hi));
                    if (jpx[jj]) o = _mm256_add_ps(o, v);
                    else e = _mm256_add_ps(e, v);
                }
            const __m256 lo4 = _mm256_unpacklo_ps(e, o), hi4 = _mm256_unpackhi_ps(e, o);
            const __m256 r0 = _mm256_permute2f128_ps(lo4, hi4, 0x20), r1 = _mm256_permute2f128_ps(lo4, hi4, 0x31);
            const int64_t x0 = 2 * t0, rem = w - x0;
            if (rem >= 16) {
                _mm256_storeu_ps(drow + x0, r0);
                _mm256_storeu_ps(drow + x0 + 8, r1);
            } else {
                _mm256_maskstore_ps(drow + x0, lanes8(0, rem), r0);
                if (rem > 8) _mm256_maskstore_ps(drow + x0 + 8, lanes8(0, rem - 8), r1);
            }
        }
    }
}
