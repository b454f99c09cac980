/* im2col / col2im for NCHW float32 batches (fst4j.tensor.Conv's float32 path). Orientation as in
 * fst-method.md: row r = (c*kh + i)*kw + j of the [K, N*L] matrix, column n*L + oh*Wo + ow. */
#include "lowering.h"
#include "fst4j.h"
#include "alloc.h"
#include "conv_range.h"
#include "parallel.h"
#include "cpu_host.h"
#include "vec_paths.h"
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

typedef struct { int64_t n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo; } geom;

static int check(const geom *g) {
    return fst_conv_geom_check(g->n, g->c, g->h, g->w, g->kh, g->kw, g->sh, g->sw, g->ph, g->pw, 1, 1, g->ho, g->wo);
}

/* Output columns [lo, hi) of a row whose input column iw = ow*sw - pw + j stays in [0, w). */
static inline void valid_range(const geom *g, int64_t j, int64_t *lo, int64_t *hi) { fst_tap_columns(g->w, g->pw, g->sw, g->wo, j, lo, hi); }

/* dst[t] = src[2 t] for t < n: the half-K lowering's every other column. SSE2 (baseline x86-64) picks the even lanes of
 * two loads; the last vector step is left to the scalar loop so that nothing past src[2 (n - 1)] is read. */
static inline void gather_even(float *restrict dst, const float *restrict src, int64_t n) {
    int64_t t = 0;
#if defined(__SSE2__)
    for (; t + 4 < n; t += 4) {
        __m128 a = _mm_loadu_ps(src + 2 * t), b = _mm_loadu_ps(src + 2 * t + 4);
        _mm_storeu_ps(dst + t, _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
    }
#endif
    for (; t < n; t++) dst[t] = src[2 * t];
}

/* Output rows [r0, r1) of row (i, jj) of im2col of one plane when the vertical stride is 1 and wo * sw == w (3x3 pad 1
 * and 1x1 at stride 1; the half-K lowering's every-other-column im2col of an even-width plane, sw = 2), written to o
 * (o = output row r0). Output element t of the run then reads the plane at one flat index b0 + t * sw across row
 * boundaries: the valid rows are one copy (memcpy at sw = 1, gather_even at sw = 2), and the output columns outside
 * [lo, hi) (valid_range), whose reads wrapped into the neighbouring row, are zeroed. One copy per run of rows instead
 * of one per output row (small planes: a 7x7 plane's rows are 7 floats). Reads stay inside the plane. */
static inline void row_run(const float *plane, int64_t W, int64_t h, int64_t ph, int64_t i, int64_t d, int64_t sw, int64_t wo,
                           int64_t lo, int64_t hi, int64_t r0, int64_t r1, float *o) {
    if (hi <= lo) { memset(o, 0, (size_t)((r1 - r0) * wo) * 4); return; }   /* every tap falls in the padding */
    int64_t v0 = ph - i, v1 = h + ph - i;           /* output rows whose input row is inside the plane */
    if (v0 < r0) v0 = r0;
    if (v0 > r1) v0 = r1;                           /* a tap below every output row (h < kh): all padding */
    if (v1 > r1) v1 = r1;
    if (v1 < v0) v1 = v0;
    memset(o, 0, (size_t)((v0 - r0) * wo) * 4);
    memset(o + (v1 - r0) * wo, 0, (size_t)((r1 - v1) * wo) * 4);
    if (v1 == v0) return;
    float *dst = o + (v0 - r0) * wo;
    const int64_t n = (v1 - v0) * wo, b0 = (v0 - ph + i) * W + d, end = h * W;
    /* elements whose flat read would leave the plane are border columns (zeroed below): copy [t0, t1) only */
    int64_t t0 = b0 >= 0 ? 0 : (-b0 + sw - 1) / sw, t1 = n;
    if (b0 + (t1 - 1) * sw >= end) t1 = (end - 1 - b0) / sw + 1;
    if (t1 < t0) t1 = t0;
    for (int64_t t = 0; t < t0; t++) dst[t] = 0.0f;
    for (int64_t t = t1; t < n; t++) dst[t] = 0.0f;
    const float *src = plane + b0;
    if (sw == 1) memcpy(dst + t0, src + t0, (size_t)(t1 - t0) * 4);
    else if (sw == 2) gather_even(dst + t0, src + 2 * t0, t1 - t0);
    else for (int64_t t = t0; t < t1; t++) dst[t] = src[t * sw];
    for (int64_t row = 0; row < v1 - v0; row++) {
        float *dr = dst + row * wo;
        for (int64_t q = 0; q < lo; q++) dr[q] = 0.0f;
        for (int64_t q = hi; q < wo; q++) dr[q] = 0.0f;
    }
}

typedef struct {
    geom g;
    const float *x, *cols;
    float *out, *dx;
    int64_t ld, npos;
    const int64_t *ih0, *iw0;
    int s2;                  /* col2im: the stride-2 gather, 1 AVX2 or 2 AVX-512 (decided once per call: its planes are numbered channel-major) */
} conv_job;

/* tasks index (image, row of K) pairs: t = img * K + r */
static void im2col_task(void *p, int64_t t0, int64_t t1) {
    const conv_job *j = p;
    const geom *g = &j->g;
    const int64_t K = g->c * g->kh * g->kw, L = g->ho * g->wo;
    /* (img, ch, i, jj) of t0 by division once, then stepped like an odometer: five integer divisions per row
     * cost more than copying a 4x4 plane's row. */
    /* Small planes (L < 256) go row-major over the output, t = r * n + img, so each output row is written in one
     * contiguous sweep across the images instead of L floats at a time in K far-apart rows. */
    const int rowmajor = L < 256;
    int64_t img, r;
    if (rowmajor) { r = t0 / g->n; img = t0 % g->n - 1; }
    else { img = t0 / K; r = t0 % K; }
    int64_t ch = r / (g->kh * g->kw), i = (r / g->kw) % g->kh, jj = r % g->kw;
    if (!rowmajor) jj--;
    for (int64_t t = t0; t < t1; t++) {
        if (rowmajor) {
            if (++img == g->n) { img = 0; if (++jj == g->kw) { jj = 0; if (++i == g->kh) { i = 0; ch++; } } }
        } else if (++jj == g->kw) { jj = 0; if (++i == g->kh) { i = 0; if (++ch == g->c) { ch = 0; img++; } } }
        r = (ch * g->kh + i) * g->kw + jj;
        const float *plane = j->x + (img * g->c + ch) * g->h * g->w;
        float *o = j->out + r * j->ld + img * L;
        if (g->sh == 1 && g->wo * g->sw == g->w) {
            int64_t lo, hi;
            valid_range(g, jj, &lo, &hi);
            row_run(plane, g->w, g->h, g->ph, i, jj - g->pw, g->sw, g->wo, lo, hi, 0, g->ho, o);
            continue;
        }
        int64_t lo, hi;
        valid_range(g, jj, &lo, &hi);
        for (int64_t oh = 0; oh < g->ho; oh++, o += g->wo) {
            int64_t ih = oh * g->sh - g->ph + i;
            if (ih < 0 || ih >= g->h) { memset(o, 0, (size_t)g->wo * 4); continue; }
            const float *src = plane + ih * g->w - g->pw + jj;
            for (int64_t q = 0; q < lo; q++) o[q] = 0.0f;
            if (g->sw == 1) memcpy(o + lo, src + lo, (size_t)(hi - lo) * 4);
            else for (int64_t q = lo; q < hi; q++) o[q] = src[q * g->sw];
            for (int64_t q = hi; q < g->wo; q++) o[q] = 0.0f;
        }
    }
}

static int64_t chunks_for(int64_t work, int nthreads) {
    return work < 32768 || nthreads <= 1 ? 1 : 4 * (int64_t)nthreads;
}

int fst_im2col(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
               int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo,
               float *out, int64_t ldo, int nthreads) {
    geom g = { n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo };
    if (!x || !out) return FST_ENULL;
    if (check(&g) != FST_OK || nthreads < 1 || ldo < n * ho * wo) return FST_EINVAL;
    conv_job j = { .g = g, .x = x, .out = out, .ld = ldo };
    const int64_t K = c * kh * kw;
    fst_parallel(n * K, chunks_for(n * K * ho * wo, nthreads), nthreads, im2col_task, &j);
    return FST_OK;
}


static int c2i_s2_state = -1;   /* the stride-2 gather's family: -1 not decided yet; 0 off; 1 AVX2; 2 AVX-512 */

/* The stride-2 gather (col2im_avx512.c, col2im_avx2.c): on where the CPU has AVX-512 or AVX2, unless FST4J_ISA forces a
 * lesser family or FST4J_COL2IM_S2=0. The same bits either way. */
static int c2i_s2_cpu(void) { return fst_vec_switch(&c2i_s2_state, "FST4J_COL2IM_S2", 1, -1); }

int fst_col2im_s2(int mode) { return fst_vec_switch(&c2i_s2_state, "FST4J_COL2IM_S2", 1, mode); }

/* tasks index (image, channel) planes: planes never overlap, so no atomics */
static void col2im_task(void *p, int64_t t0, int64_t t1) {
    const conv_job *j = p;
    const geom *g = &j->g;
    const int64_t L = g->ho * g->wo, H = g->h, W = g->w, WO = g->wo;
    if (j->s2) {
        /* stride 2: each plane row written once, the same sums in the same order (col2im_avx512.c) */
        /* channel-major: consecutive planes read neighbouring runs of the same kh * kw matrix rows */
        for (int64_t t = t0; t < t1; t++) {
            const int64_t ch = t / g->n, img = t % g->n;
            const float *cp = j->cols + ch * g->kh * g->kw * j->ld + img * L;
            float *dp = j->dx + (img * g->c + ch) * H * W;
            if (j->s2 == 2) fst_col2im_s2_plane_avx512(cp, j->ld, H, W, g->kh, g->kw, g->ph, g->pw, g->ho, g->wo, dp);
            else fst_col2im_s2_plane_avx2(cp, j->ld, H, W, g->kh, g->kw, g->ph, g->pw, g->ho, g->wo, dp);
        }
        return;
    }
    /* The valid output columns of each kernel column jj, computed once per call instead of per plane and tap
     * (valid_range divides; small planes do little else). */
    int64_t los[64], his[64];
    const int table = g->kw <= 64;
    if (table) for (int64_t jj = 0; jj < g->kw; jj++) valid_range(g, jj, &los[jj], &his[jj]);
    int64_t img = t0 / g->c, ch = t0 % g->c - 1;
    for (int64_t t = t0; t < t1; t++) {
        if (++ch == g->c) { ch = 0; img++; }
        float *plane = j->dx + (img * g->c + ch) * H * W;
        memset(plane, 0, (size_t)(H * W) * 4);
        for (int64_t i = 0; i < g->kh; i++) {
            /* output rows whose input row oh*sh - ph + i lies inside the plane */
            int64_t oh0 = g->ph - i > 0 ? (g->ph - i + g->sh - 1) / g->sh : 0;
            int64_t oh1 = H - 1 + g->ph - i < 0 ? 0 : (H - 1 + g->ph - i) / g->sh + 1;
            if (oh1 > g->ho) oh1 = g->ho;
            for (int64_t jj = 0; jj < g->kw; jj++) {
                int64_t lo, hi;
                if (table) { lo = los[jj]; hi = his[jj]; } else valid_range(g, jj, &lo, &hi);
                const float *src = j->cols + ((ch * g->kh + i) * g->kw + jj) * j->ld + img * L + oh0 * WO;
                float *d = plane + (oh0 * g->sh - g->ph + i) * W - g->pw + jj;
                const int64_t dstep = g->sh * W;
                if (g->sw == 1) {
                    for (int64_t oh = oh0; oh < oh1; oh++, src += WO, d += dstep)
                        for (int64_t q = lo; q < hi; q++) d[q] += src[q];
                } else {
                    for (int64_t oh = oh0; oh < oh1; oh++, src += WO, d += dstep)
                        for (int64_t q = lo; q < hi; q++) d[q * g->sw] += src[q];
                }
            }
        }
    }
}

int fst_col2im(const float *cols, int64_t ldc, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
               int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo, float *dx, int nthreads) {
    geom g = { n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo };
    if (!cols || !dx) return FST_ENULL;
    if (check(&g) != FST_OK || nthreads < 1 || ldc < n * ho * wo) return FST_EINVAL;
    conv_job j = { .g = g, .cols = cols, .dx = dx, .ld = ldc, .s2 = sh == 2 && sw == 2 && kh <= 64 && kw <= 64 ? c2i_s2_cpu() : 0 };
    fst_parallel(n * c, chunks_for(n * c * h * w * kh * kw, nthreads), nthreads, col2im_task, &j);
    return FST_OK;
}

/* Positions of image img: one uniform list (off == NULL: entries [0, npos) of ih0 / iw0 / base, written to columns
 * img*npos + q) or one list per image (off != NULL: entries off[img] .. off[img + 1], written to those columns). Tasks
 * index (image, output row) pairs; output row rr is im2col row row0 + rr*rstep. */
typedef struct {
    conv_job j;
    const int64_t *off;
    const int64_t *base;   /* ih0 * w + iw0 where the entry's whole window lies inside x, else -1 */
    int64_t row0, rstep, nrows;
} at_job;

static void im2col_at_task(void *p, int64_t t0, int64_t t1) {
    const at_job *a = p;
    const conv_job *j = &a->j;
    const geom *g = &j->g;
    for (int64_t t = t0; t < t1; t++) {
        int64_t img = t / a->nrows, rr = t % a->nrows, r = a->row0 + rr * a->rstep;
        int64_t ch = r / (g->kh * g->kw), i = (r / g->kw) % g->kh, jj = r % g->kw;
        int64_t e0 = a->off ? a->off[img] : 0, e1 = a->off ? a->off[img + 1] : j->npos;
        const float *plane = j->x + (img * g->c + ch) * g->h * g->w;
        float *o = j->out + rr * j->ld + (a->off ? 0 : img * j->npos);
        const int64_t tap = i * g->w + jj;
        for (int64_t q = e0; q < e1; q++) {
            int64_t b = a->base[q];
            if (b >= 0) { o[q] = plane[b + tap]; continue; }   /* the whole window inside x: no bounds checks */
            int64_t ih = j->ih0[q] + i, iw = j->iw0[q] + jj;
            o[q] = ((uint64_t)ih >= (uint64_t)g->h || (uint64_t)iw >= (uint64_t)g->w) ? 0.0f : plane[ih * g->w + iw];
        }
    }
}

/* ih0 / iw0 of every entry (window origins, computed once: no division in the loop) and the job; FST_OK or an error */
static int im2col_at_run(const geom *g, const int32_t *pos, int64_t nent, const int64_t *off, int64_t row0, int64_t rstep,
                         int64_t nrows, int64_t npos, float *out, int64_t ldo, const float *x, int nthreads) {
    int64_t *ih0 = fst_malloc((size_t)(nent > 0 ? nent : 1) * 3 * sizeof(int64_t));
    if (!ih0) return FST_ENOMEM;
    int64_t *iw0 = ih0 + nent, *base = iw0 + nent;
    for (int64_t q = 0; q < nent; q++) {
        ih0[q] = (pos[q] / g->wo) * g->sh - g->ph;
        iw0[q] = (pos[q] % g->wo) * g->sw - g->pw;
        int inside = ih0[q] >= 0 && ih0[q] + g->kh <= g->h && iw0[q] >= 0 && iw0[q] + g->kw <= g->w;
        base[q] = inside ? ih0[q] * g->w + iw0[q] : -1;
    }
    at_job a = { .j = { .g = *g, .x = x, .out = out, .ld = ldo, .npos = npos, .ih0 = ih0, .iw0 = iw0 },
                 .off = off, .base = base, .row0 = row0, .rstep = rstep, .nrows = nrows };
    if (g->n > 0 && nrows > 0 && nent > 0)
        fst_parallel(g->n * nrows, chunks_for(nrows * (off ? nent : g->n * nent), nthreads), nthreads, im2col_at_task, &a);
    free(ih0);
    return FST_OK;
}

int fst_im2col_at(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                  int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo,
                  const int32_t *pos, int64_t npos, float *out, int64_t ldo, int nthreads) {
    geom g = { n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo };
    if (!x || !out || (npos > 0 && !pos)) return FST_ENULL;
    if (check(&g) != FST_OK || nthreads < 1 || npos < 0 || npos > INT32_MAX || ldo < n * npos) return FST_EINVAL;
    for (int64_t q = 0; q < npos; q++) if (pos[q] < 0 || pos[q] >= ho * wo) return FST_EINVAL;
    return im2col_at_run(&g, pos, npos, NULL, 0, 1, c * kh * kw, npos, out, ldo, x, nthreads);
}

int fst_im2col_at_csr(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                      int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo,
                      const int64_t *off, const int32_t *pos, int64_t row0, int64_t rstep, int64_t nrows,
                      float *out, int64_t ldo, int nthreads) {
    geom g = { n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo };
    if (!x || !out || !off) return FST_ENULL;
    if (check(&g) != FST_OK || nthreads < 1 || off[0] != 0 || row0 < 0 || rstep < 1 || nrows < 0
        || fst_rows_outside(row0, rstep, nrows, c * kh * kw)) return FST_EINVAL;
    for (int64_t i = 0; i < n; i++) if (off[i + 1] < off[i]) return FST_EINVAL;
    const int64_t nent = off[n];
    if (nent > 0 && !pos) return FST_ENULL;
    if (ldo < nent) return FST_EINVAL;
    for (int64_t q = 0; q < nent; q++) if (pos[q] < 0 || pos[q] >= ho * wo) return FST_EINVAL;
    return im2col_at_run(&g, pos, nent, off, row0, rstep, nrows, 0, out, ldo, x, nthreads);
}

/* ---- implicit im2col (lowering.h): pieces of im2col rows for the GEMM / 2:4 packers ---- */
#include "lowering.h"

int fst_lowering_check(const fst_lowering *s) {
    geom g = { s->n, s->c, s->h, s->w, s->kh, s->kw, s->sh, s->sw, s->ph, s->pw, s->ho, s->wo };
    if (!s->x) return FST_ENULL;
    if (s->n <= 0 || (s->order != 0 && s->order != 1)) return FST_EINVAL;
    return check(&g);
}

void fst_lowering_row(const fst_lowering *s, int64_t r, int64_t col0, int64_t ncols, float *out) {
    int64_t ch, tap;
    fst_lowering_rc(s, r, &ch, &tap);
    const int64_t i = tap / s->kw, jj = tap % s->kw, L = s->ho * s->wo;
    if (s->cols) {   /* selected columns: each its own image and position */
        for (int64_t q = 0; q < ncols; q++) {
            const int64_t col = s->cols[col0 + q], img = col / L, pos = col % L;
            const int64_t ih = (pos / s->wo) * s->sh - s->ph + i, iw = (pos % s->wo) * s->sw - s->pw + jj;
            out[q] = ((uint64_t)ih >= (uint64_t)s->h || (uint64_t)iw >= (uint64_t)s->w) ? 0.0f
                     : s->x[((img * s->c + ch) * s->h + ih) * s->w + iw];
        }
        return;
    }
    const geom g = { s->n, s->c, s->h, s->w, s->kh, s->kw, s->sh, s->sw, s->ph, s->pw, s->ho, s->wo };
    int64_t lo, hi;
    valid_range(&g, jj, &lo, &hi);
    int64_t img = col0 / L, pos = col0 % L, oh = pos / s->wo, ow = pos % s->wo;
    const int same = s->sh == 1 && s->wo * s->sw == s->w;
    while (ncols > 0) {
        if (same && ow == 0 && ncols >= 2 * s->wo) {
            /* whole output rows of one image at once (3x3 pad 1 / 1x1 at stride 1, the half-K lowering) */
            int64_t rows = ncols / s->wo;
            if (rows > s->ho - oh) rows = s->ho - oh;
            row_run(s->x + (img * s->c + ch) * s->h * s->w, s->w, s->h, s->ph, i, jj - s->pw, s->sw, s->wo, lo, hi, oh, oh + rows, out);
            out += rows * s->wo; ncols -= rows * s->wo; oh += rows;
            if (oh == s->ho) { oh = 0; img++; }
            continue;
        }
        /* one output row segment [ow, ow + m) of image img, output row oh */
        const int64_t m = s->wo - ow < ncols ? s->wo - ow : ncols;
        const int64_t ih = oh * s->sh - s->ph + i;
        if (ih < 0 || ih >= s->h) {
            for (int64_t q = 0; q < m; q++) out[q] = 0.0f;
        } else {
            const float *src = s->x + ((img * s->c + ch) * s->h + ih) * s->w - s->pw + jj;
            const int64_t a = ow > lo ? ow : lo, b = ow + m < hi ? ow + m : hi;   /* valid output columns */
            int64_t q = ow;
            for (; q < a && q < ow + m; q++) out[q - ow] = 0.0f;
            if (s->sw == 1) { if (b > a) memcpy(out + (a - ow), src + a, (size_t)(b - a) * 4); q = b > a ? b : q; }
            else for (; q < b; q++) out[q - ow] = src[q * s->sw];
            for (; q < ow + m; q++) out[q - ow] = 0.0f;
        }
        out += m; ncols -= m; ow = 0;
        if (++oh == s->ho) { oh = 0; img++; }
    }
}

/* ---- planned lowering (lowering.h; the AVX-512 body is in lowering_avx512.c) ---- */
int fst_lplan_build_avx512(fst_lplan *p, const fst_lowering *s, int64_t col0, int64_t ncols, int nvec, void *mem);
int fst_lplan_build_gather_avx512(fst_lplan *p, const fst_lowering *s, int64_t col0, int64_t ncols, int nvec, void *mem);
int fst_lplan_build_seg_avx512(fst_lplan *p, const fst_lowering *s, int64_t col0, int64_t ncols, int nvec, void *mem);
int fst_lplan_build_win_avx512(fst_lplan *p, const fst_lowering *s, int64_t col0, int64_t ncols, int nvec, void *mem);
void fst_lplan_row_avx512(const fst_lplan *p, int64_t r, float *out, int per, int64_t jump, int tail);
void fst_lplan_rows_avx512(const fst_lplan *p, int64_t r0, int64_t nrows, float *out, int64_t ldo, int per, int64_t jump);

static int lplan_state = -1;   /* -1: not decided yet; 0 off; 2 on (AVX-512 only) */

/* FST4J_LPLAN=0: always the row-by-row lowering; a forced lesser family (FST4J_ISA) turns it off too, as in gemm.c */
static int lplan_cpu(void) { return fst_vec_switch(&lplan_state, "FST4J_LPLAN", 0, -1); }

int fst_lowering_plan(int mode) { return fst_vec_switch(&lplan_state, "FST4J_LPLAN", 0, mode) != 0; }

/* Which plan a geometry gets: 1 masked loads (vertical stride 1, wo * sw == w, sw 1 or 2, planes of 16 columns or
 * more, so that a vector spans at most two images), 2 a gather where the row-by-row lowering is slow (strided taps:
 * a scalar loop there; output rows under 16 columns: per-segment overhead), 0 none (stride-1 rows of 16 columns or
 * more, which the row-by-row lowering copies in whole runs faster than a gather). Offsets and lane arithmetic are
 * int32 inside the plans. */
static int lplan_seg = 1;   /* fst_lowering_seg: 0 sends the segment plan's geometries to the gather plan (A/B runs) */
static int lplan_kind(const fst_lowering *s) {
    if (s->h >= INT32_MAX / 4 || s->w >= INT32_MAX / 4 || s->ho * s->wo >= INT32_MAX / 4) return 0;
    /* selected columns: window, segment or gather plans (fst_lplan_build tries them in that order) */
    if (s->cols) return s->n * s->c * s->h * s->w >= INT32_MAX / 2 ? 0 : 2;
    if (s->sh == 1 && (s->sw == 1 || s->sw == 2) && s->wo * s->sw == s->w && s->ho * s->wo >= 16) return 1;
    if (s->sh == 1 && s->sw == 1 && s->wo >= 16) return 0;
    if (s->n * s->c * s->h * s->w >= INT32_MAX / 2) return 0;
    /* 3: a segment plan (lowering.h) where a vector spans at most FST_LSEG output rows; sw masked loads and a permute (two at
     * sw = 4) per run instead of a 16-lane gather (Zen 5: 4.8 ns a gather against 1.0 for two loads and a permute). */
    if ((s->sw == 1 || s->sw == 2 || s->sw == 4) && s->wo >= 5 && __atomic_load_n(&lplan_seg, __ATOMIC_RELAXED)) return 3;
    return 2;
}

static int lplan_win = 1;   /* fst_lowering_win: 0 sends selected columns to the segment or gather plans (A/B runs, tests) */
int fst_lowering_win(int mode) {
    if (mode == 0 || mode == 1) __atomic_store_n(&lplan_win, mode, __ATOMIC_RELAXED);
    return __atomic_load_n(&lplan_win, __ATOMIC_RELAXED);
}

int fst_lowering_seg(int mode) {
    if (mode == 0 || mode == 1) __atomic_store_n(&lplan_seg, mode, __ATOMIC_RELAXED);
    return __atomic_load_n(&lplan_seg, __ATOMIC_RELAXED);
}

size_t fst_lplan_bytes(const fst_lowering *s, int nvec) {
    const size_t kv = (size_t)(s->kh * s->kw) * (size_t)nvec, scratch = (size_t)nvec * 16 * 3 * sizeof(int32_t);
    /* a gather or a segment plan: room for either, so that fst_lowering_seg between this call and the build is harmless */
    const size_t gather = kv * 16 * sizeof(int32_t) + ((kv * sizeof(uint16_t) + 63) & ~(size_t)63), seg = kv * FST_LSEG * sizeof(fst_lseg);
    if (lplan_kind(s) >= 2) return (gather > seg ? gather : seg) + scratch;
    return kv * sizeof(fst_lvec) + scratch;
}

int fst_lplan_build(fst_lplan *p, const fst_lowering *s, int64_t col0, int64_t ncols, int nvec, void *mem) {
    if (!mem || !lplan_cpu() || (int64_t)nvec * 16 < ncols || ncols <= 0) return 0;
    if (s->cols && lplan_kind(s) == 2) {   /* a window per vector and image, else evenly stepping runs, else a gather */
        if (__atomic_load_n(&lplan_win, __ATOMIC_RELAXED) && fst_lplan_build_win_avx512(p, s, col0, ncols, nvec, mem)) return 1;
        if (__atomic_load_n(&lplan_seg, __ATOMIC_RELAXED) && fst_lplan_build_seg_avx512(p, s, col0, ncols, nvec, mem)) return 1;
    }
    switch (lplan_kind(s)) {
        case 1: return fst_lplan_build_avx512(p, s, col0, ncols, nvec, mem);
        case 2: return fst_lplan_build_gather_avx512(p, s, col0, ncols, nvec, mem);
        case 3: return fst_lplan_build_seg_avx512(p, s, col0, ncols, nvec, mem);
        default: return 0;
    }
}

void fst_lplan_row(const fst_lplan *p, int64_t r, float *out, int per, int64_t jump, int tail) {
    fst_lplan_row_avx512(p, r, out, per, jump, tail);
}

void fst_lplan_rows(const fst_lplan *p, int64_t r0, int64_t nrows, float *out, int64_t ldo, int per, int64_t jump) {
    fst_lplan_rows_avx512(p, r0, nrows, out, ldo, per, jump);
}
