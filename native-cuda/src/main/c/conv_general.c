/* im2col / col2im with dilation (torch's F.conv2d dilation): the general lowering behind Layers' geometries other than
 * the square, undilated convolutions of conv.c. Tap (i, j) of output (oh, ow) reads input (oh*sh - ph + i*dh,
 * ow*sw - pw + j*dw); rows and columns are conv.c's (row (c*kh + i)*kw + j, column img*ho*wo + oh*wo + ow), so with
 * dh = dw = 1 these give conv.c's matrices. Plain loops: only the new geometries take them, conv.c keeps its fast paths. */
#include "fst4j.h"
#include "conv_range.h"
#include "parallel.h"
#include <string.h>

typedef struct { int64_t n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo; } dgeom;

/* conv_range.h's check (its size caps are what keep dh*(kh - 1) of a dilation 2^62 from wrapping to a 1-row kernel) */
static int dcheck(const dgeom *g) {
    return fst_conv_geom_check(g->n, g->c, g->h, g->w, g->kh, g->kw, g->sh, g->sw, g->ph, g->pw, g->dh, g->dw, g->ho, g->wo);
}

/* output columns [lo, hi) whose input column ow*sw - pw + off lies in [0, w) */
static inline void drange(const dgeom *g, int64_t off, int64_t *lo, int64_t *hi) { fst_tap_columns(g->w, g->pw, g->sw, g->wo, off, lo, hi); }

typedef struct {
    dgeom g;
    const float *x, *cols;
    float *out, *dx;
    int64_t ld;
} djob;

/* tasks: t = img * K + r, one row of one image's [K, L] block each */
static void im2col_dil_task(void *p, int64_t t0, int64_t t1) {
    const djob *j = p;
    const dgeom *g = &j->g;
    const int64_t K = g->c * g->kh * g->kw, L = g->ho * g->wo;
    for (int64_t t = t0; t < t1; t++) {
        const int64_t img = t / K, r = t % K, ch = r / (g->kh * g->kw), i = (r / g->kw) % g->kh, jj = r % g->kw;
        const float *plane = j->x + (img * g->c + ch) * g->h * g->w;
        float *o = j->out + r * j->ld + img * L;
        int64_t lo, hi;
        drange(g, jj * g->dw, &lo, &hi);
        for (int64_t oh = 0; oh < g->ho; oh++, o += g->wo) {
            const int64_t ih = oh * g->sh - g->ph + i * g->dh;
            if (ih < 0 || ih >= g->h) { memset(o, 0, (size_t)g->wo * 4); continue; }
            const float *src = plane + ih * g->w - g->pw + jj * g->dw;
            for (int64_t q = 0; q < lo; q++) o[q] = 0.0f;
            for (int64_t q = lo; q < hi; q++) o[q] = src[q * g->sw];
            for (int64_t q = hi; q < g->wo; q++) o[q] = 0.0f;
        }
    }
}

/* tasks: (image, channel) planes, which no two tasks share (no atomics); taps summed in row order from +0.0f */
static void col2im_dil_task(void *p, int64_t t0, int64_t t1) {
    const djob *j = p;
    const dgeom *g = &j->g;
    const int64_t L = g->ho * g->wo;
    for (int64_t t = t0; t < t1; t++) {
        const int64_t img = t / g->c, ch = t % g->c;
        float *plane = j->dx + (img * g->c + ch) * g->h * g->w;
        memset(plane, 0, (size_t)(g->h * g->w) * 4);
        for (int64_t i = 0; i < g->kh; i++)
            for (int64_t jj = 0; jj < g->kw; jj++) {
                const float *src = j->cols + ((ch * g->kh + i) * g->kw + jj) * j->ld + img * L;
                int64_t lo, hi;
                drange(g, jj * g->dw, &lo, &hi);
                for (int64_t oh = 0; oh < g->ho; oh++, src += g->wo) {
                    const int64_t ih = oh * g->sh - g->ph + i * g->dh;
                    if (ih < 0 || ih >= g->h) continue;
                    float *d = plane + ih * g->w - g->pw + jj * g->dw;
                    for (int64_t q = lo; q < hi; q++) d[q * g->sw] += src[q];
                }
            }
    }
}

static int64_t dchunks(int64_t work, int nthreads) { return work < 32768 || nthreads <= 1 ? 1 : 4 * (int64_t)nthreads; }

int fst_im2col_dil(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                   int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t ho, int64_t wo,
                   float *out, int64_t ldo, int nthreads) {
    dgeom g = { n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo };
    if (!x || !out) return FST_ENULL;
    if (dcheck(&g) != FST_OK || nthreads < 1 || ldo < n * ho * wo) return FST_EINVAL;
    djob j = { .g = g, .x = x, .out = out, .ld = ldo };
    const int64_t K = c * kh * kw;
    if (n > 0) fst_parallel(n * K, dchunks(n * K * ho * wo, nthreads), nthreads, im2col_dil_task, &j);
    return FST_OK;
}

int fst_col2im_dil(const float *cols, int64_t ldc, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                   int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t ho, int64_t wo,
                   float *dx, int nthreads) {
    dgeom g = { n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo };
    if (!cols || !dx) return FST_ENULL;
    if (dcheck(&g) != FST_OK || nthreads < 1 || ldc < n * ho * wo) return FST_EINVAL;
    djob j = { .g = g, .cols = cols, .dx = dx, .ld = ldc };
    if (n > 0) fst_parallel(n * c, dchunks(n * c * h * w * kh * kw, nthreads), nthreads, col2im_dil_task, &j);
    return FST_OK;
}
