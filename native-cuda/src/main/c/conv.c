/* im2col / col2im for NCHW float32 batches (fst4j.tensor.Conv's float32 path). Orientation as in
 * fst-method.md: row r = (c*kh + i)*kw + j of the [K, N*L] matrix, column n*L + oh*Wo + ow. */
#include "fst4j.h"
#include <stdlib.h>
#include <string.h>

typedef struct { int64_t n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo; } geom;

static int check(const geom *g) {
    if (g->n < 0 || g->c <= 0 || g->h <= 0 || g->w <= 0 || g->kh <= 0 || g->kw <= 0 || g->sh <= 0 || g->sw <= 0
        || g->ph < 0 || g->pw < 0 || g->ho <= 0 || g->wo <= 0) return FST_EINVAL;
    if ((g->h + 2 * g->ph - g->kh) / g->sh + 1 != g->ho || (g->w + 2 * g->pw - g->kw) / g->sw + 1 != g->wo) return FST_EINVAL;
    return FST_OK;
}

/* Output columns [lo, hi) of a row whose input column iw = ow*sw - pw + j stays in [0, w). */
static inline void valid_range(const geom *g, int64_t j, int64_t *lo, int64_t *hi) {
    int64_t a = g->pw - j;                       /* need ow*sw >= a */
    *lo = a <= 0 ? 0 : (a + g->sw - 1) / g->sw;
    int64_t b = g->w - 1 + g->pw - j;            /* need ow*sw <= b */
    *hi = b < 0 ? 0 : b / g->sw + 1;
    if (*hi > g->wo) *hi = g->wo;
    if (*lo > *hi) *lo = *hi;
}

int fst_im2col(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
               int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo,
               float *out, int64_t ldo, int nthreads) {
    geom g = { n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo };
    if (!x || !out) return FST_ENULL;
    if (check(&g) != FST_OK || nthreads < 1 || ldo < n * ho * wo) return FST_EINVAL;
    const int64_t K = c * kh * kw, L = ho * wo;
    #pragma omp parallel for collapse(2) num_threads(nthreads) schedule(static) if (n * K * L > 32768)
    for (int64_t img = 0; img < n; img++)
        for (int64_t r = 0; r < K; r++) {
            int64_t ch = r / (kh * kw), i = (r / kw) % kh, j = r % kw, lo, hi;
            valid_range(&g, j, &lo, &hi);
            const float *plane = x + (img * c + ch) * h * w;
            float *o = out + r * ldo + img * L;
            for (int64_t oh = 0; oh < ho; oh++, o += wo) {
                int64_t ih = oh * sh - ph + i;
                if (ih < 0 || ih >= h) { memset(o, 0, (size_t)wo * 4); continue; }
                const float *src = plane + ih * w - pw + j;
                for (int64_t q = 0; q < lo; q++) o[q] = 0.0f;
                if (sw == 1) memcpy(o + lo, src + lo, (size_t)(hi - lo) * 4);
                else for (int64_t q = lo; q < hi; q++) o[q] = src[q * sw];
                for (int64_t q = hi; q < wo; q++) o[q] = 0.0f;
            }
        }
    return FST_OK;
}

int fst_col2im(const float *cols, int64_t ldc, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
               int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo, float *dx, int nthreads) {
    geom g = { n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo };
    if (!cols || !dx) return FST_ENULL;
    if (check(&g) != FST_OK || nthreads < 1 || ldc < n * ho * wo) return FST_EINVAL;
    const int64_t L = ho * wo;
    /* one (image, channel) plane per task: planes never overlap, so no atomics */
    #pragma omp parallel for collapse(2) num_threads(nthreads) schedule(static) if (n * c * h * w * kh * kw > 32768)
    for (int64_t img = 0; img < n; img++)
        for (int64_t ch = 0; ch < c; ch++) {
            float *plane = dx + (img * c + ch) * h * w;
            memset(plane, 0, (size_t)(h * w) * 4);
            for (int64_t i = 0; i < kh; i++)
                for (int64_t j = 0; j < kw; j++) {
                    int64_t lo, hi;
                    valid_range(&g, j, &lo, &hi);
                    const float *src = cols + ((ch * kh + i) * kw + j) * ldc + img * L;
                    for (int64_t oh = 0; oh < ho; oh++, src += wo) {
                        int64_t ih = oh * sh - ph + i;
                        if (ih < 0 || ih >= h) continue;
                        float *d = plane + ih * w - pw + j;
                        if (sw == 1) for (int64_t q = lo; q < hi; q++) d[q] += src[q];
                        else for (int64_t q = lo; q < hi; q++) d[q * sw] += src[q];
                    }
                }
        }
    return FST_OK;
}

int fst_im2col_at(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                  int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo,
                  const int32_t *pos, int64_t npos, float *out, int64_t ldo, int nthreads) {
    geom g = { n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo };
    if (!x || !out || (npos > 0 && !pos)) return FST_ENULL;
    if (check(&g) != FST_OK || nthreads < 1 || npos < 0 || ldo < n * npos) return FST_EINVAL;
    for (int64_t q = 0; q < npos; q++) if (pos[q] < 0 || pos[q] >= ho * wo) return FST_EINVAL;
    const int64_t K = c * kh * kw;
    /* input coordinates of each position's window origin, computed once (no division in the loop) */
    int64_t *ih0 = malloc((size_t)(npos > 0 ? npos : 1) * 2 * sizeof(int64_t));
    if (!ih0) return FST_EINVAL;
    int64_t *iw0 = ih0 + npos;
    for (int64_t q = 0; q < npos; q++) { ih0[q] = (pos[q] / wo) * sh - ph; iw0[q] = (pos[q] % wo) * sw - pw; }
    #pragma omp parallel for collapse(2) num_threads(nthreads) schedule(static) if (n * K * npos > 32768)
    for (int64_t img = 0; img < n; img++)
        for (int64_t r = 0; r < K; r++) {
            int64_t ch = r / (kh * kw), i = (r / kw) % kh, j = r % kw;
            const float *plane = x + (img * c + ch) * h * w;
            float *o = out + r * ldo + img * npos;
            for (int64_t q = 0; q < npos; q++) {
                int64_t ih = ih0[q] + i, iw = iw0[q] + j;
                o[q] = ((uint64_t)ih >= (uint64_t)h || (uint64_t)iw >= (uint64_t)w) ? 0.0f : plane[ih * w + iw];
            }
        }
    free(ih0);
    return FST_OK;
}
