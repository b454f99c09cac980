/* Depthwise convolution (groups == cin; cout = mult * cin, output channel co reading input channel co / mult), torch's
 * F.conv2d geometry (per-axis stride, padding, dilation), computed directly instead of through im2col and per-group
 * GEMMs: a depthwise group's GEMM is one output row by K = kh*kw, which no GEMM runs well, and its im2col is kh*kw
 * times the input. Forward, dX and dW (+ dBias), float32, each a plain loop vectorised along output width (the row of
 * an output plane is contiguous; at stride 1 so is the input row it reads), threaded over planes or channels by
 * fst_parallel, no atomics (each task owns its output). Tap (i, j) of output (oh, ow) reads input
 * (oh*sh - ph + i*dh, ow*sw - pw + j*dw), as conv_general.c's im2col.
 *
 * geom: {n, c, mult, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo}; x [n, c, h, w], weight [c*mult, 1, kh, kw],
 * y / dy [n, c*mult, ho, wo], all contiguous. Sums run in another order than the GEMM path's (taps in (i, j) order per
 * output, then the bias), so results equal it within float rounding, not bit for bit. */
#include "fst4j.h"
#include "conv_range.h"
#include "parallel.h"
#include <string.h>

typedef struct { int64_t n, c, mult, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo; } dwgeom;

static int dwcheck(const int64_t *gv, dwgeom *g) {
    if (!gv) return FST_ENULL;
    *g = (dwgeom){ gv[0], gv[1], gv[2], gv[3], gv[4], gv[5], gv[6], gv[7], gv[8], gv[9], gv[10], gv[11], gv[12], gv[13], gv[14] };
    int rc = fst_conv_geom_check(g->n, g->c, g->h, g->w, g->kh, g->kw, g->sh, g->sw, g->ph, g->pw, g->dh, g->dw, g->ho, g->wo);
    if (rc != FST_OK) return rc;
    /* and beyond the shared check: the channel multiplier, padding below 2^30, and each tensor's element count below
     * 2^31 (Java's sizes are ints), so that every product of the kernels and of dwchunks (at most two such counts
     * multiplied) stays inside int64; in this order, so that each product multiplies two values already below 2^31 */
    if (g->mult <= 0 || g->mult > INT32_MAX / g->c || g->ph > INT32_MAX / 2 || g->pw > INT32_MAX / 2) return FST_EINVAL;
    const int64_t M = INT32_MAX, cm = g->c * g->mult;
    if (g->h * g->w > M || g->n * g->c > M || g->n * g->c * (g->h * g->w) > M || g->kh * g->kw > M || cm * (g->kh * g->kw) > M
        || g->ho * g->wo > M || g->n * cm > M || g->n * cm * (g->ho * g->wo) > M) return FST_EINVAL;
    return FST_OK;
}

/* output columns [lo, hi) whose input column ow*sw - pw + off lies in [0, w) (conv_general.c's drange) */
static inline void dwrange(const dwgeom *g, int64_t off, int64_t *lo, int64_t *hi) { fst_tap_columns(g->w, g->pw, g->sw, g->wo, off, lo, hi); }

typedef struct {
    dwgeom g;
    const float *x, *wt, *bias, *dy;
    float *y, *dx, *dwt, *dbias;
} dwjob;

/* tasks: output planes (img, co). Each output row: taps added in (i, j) order from +0.0f, then the bias. */
static void FST_CLONES dw_fwd_task(void *p, int64_t t0, int64_t t1) {
    const dwjob *jb = p;
    const dwgeom *g = &jb->g;
    const int64_t cout = g->c * g->mult;
    for (int64_t t = t0; t < t1; t++) {
        const int64_t img = t / cout, co = t % cout;
        const float *plane = jb->x + (img * g->c + co / g->mult) * g->h * g->w, *wk = jb->wt + co * g->kh * g->kw;
        float *row = jb->y + t * g->ho * g->wo;
        const float b = jb->bias ? jb->bias[co] : 0.0f;
        for (int64_t oh = 0; oh < g->ho; oh++, row += g->wo) {
            memset(row, 0, (size_t)g->wo * 4);
            for (int64_t i = 0; i < g->kh; i++) {
                const int64_t ih = oh * g->sh - g->ph + i * g->dh;
                if (ih < 0 || ih >= g->h) continue;
                for (int64_t j = 0; j < g->kw; j++) {
                    int64_t lo, hi;
                    dwrange(g, j * g->dw, &lo, &hi);
                    const float wv = wk[i * g->kw + j];
                    const float *src = plane + ih * g->w - g->pw + j * g->dw;
                    if (g->sw == 1) for (int64_t q = lo; q < hi; q++) row[q] += wv * src[q];
                    else for (int64_t q = lo; q < hi; q++) row[q] += wv * src[q * g->sw];
                }
            }
            if (jb->bias) for (int64_t q = 0; q < g->wo; q++) row[q] += b;
        }
    }
}

/* tasks: input planes (img, ci), which no two tasks share; each plane gathers its mult output channels' taps */
static void FST_CLONES dw_dx_task(void *p, int64_t t0, int64_t t1) {
    const dwjob *jb = p;
    const dwgeom *g = &jb->g;
    const int64_t cout = g->c * g->mult;
    for (int64_t t = t0; t < t1; t++) {
        const int64_t img = t / g->c, ci = t % g->c;
        float *plane = jb->dx + t * g->h * g->w;
        memset(plane, 0, (size_t)(g->h * g->w) * 4);
        for (int64_t m = 0; m < g->mult; m++) {
            const int64_t co = ci * g->mult + m;
            const float *dyp = jb->dy + (img * cout + co) * g->ho * g->wo, *wk = jb->wt + co * g->kh * g->kw;
            for (int64_t oh = 0; oh < g->ho; oh++) {
                const float *src = dyp + oh * g->wo;
                for (int64_t i = 0; i < g->kh; i++) {
                    const int64_t ih = oh * g->sh - g->ph + i * g->dh;
                    if (ih < 0 || ih >= g->h) continue;
                    for (int64_t j = 0; j < g->kw; j++) {
                        int64_t lo, hi;
                        dwrange(g, j * g->dw, &lo, &hi);
                        const float wv = wk[i * g->kw + j];
                        float *d = plane + ih * g->w - g->pw + j * g->dw;
                        if (g->sw == 1) for (int64_t q = lo; q < hi; q++) d[q] += wv * src[q];
                        else for (int64_t q = lo; q < hi; q++) d[q * g->sw] += wv * src[q];
                    }
                }
            }
        }
    }
}

#define DW_LANES 8     /* partial sums per tap: one AVX register's worth, so the reduction vectorises in order */
#define DW_TAPS 32     /* taps per pass over dY (a 5x5 kernel in one pass; the accumulators stay on the stack) */

/* sum of x[q*sw] * d[q] over q in [lo, hi) into acc[DW_LANES] (lane (q - lo) % DW_LANES) */
static inline void dw_dot(float *restrict acc, const float *restrict x, int64_t sw, const float *restrict d, int64_t lo, int64_t hi) {
    int64_t q = lo;
    if (sw == 1) for (; q + DW_LANES <= hi; q += DW_LANES) for (int l = 0; l < DW_LANES; l++) acc[l] += x[q + l] * d[q + l];
    else for (; q + DW_LANES <= hi; q += DW_LANES) for (int l = 0; l < DW_LANES; l++) acc[l] += x[(q + l) * sw] * d[q + l];
    for (int l = 0; q < hi; q++, l++) acc[l] += x[q * sw] * d[q];
}

/* tasks: output channels co. dW[co][tap] = sum over images, output rows and columns of dY * the tap's input, and
 * dBias[co] the sum of dY: float lanes within an image, added into a double per image (a long sum of N*Ho*Wo terms
 * keeps float's rounding per image only). Taps in blocks of DW_TAPS, each block one pass over dY. */
static void FST_CLONES dw_dw_task(void *p, int64_t t0, int64_t t1) {
    const dwjob *jb = p;
    const dwgeom *g = &jb->g;
    const int64_t cout = g->c * g->mult, taps = g->kh * g->kw;
    for (int64_t co = t0; co < t1; co++) {
        if (jb->dbias) {
            double s = 0;
            for (int64_t img = 0; img < g->n; img++) {
                float acc[DW_LANES] = { 0 };
                const float *d = jb->dy + (img * cout + co) * g->ho * g->wo;
                const int64_t len = g->ho * g->wo;
                int64_t q = 0;
                for (; q + DW_LANES <= len; q += DW_LANES) for (int l = 0; l < DW_LANES; l++) acc[l] += d[q + l];
                for (int l = 0; q < len; q++, l++) acc[l] += d[q];
                for (int l = 0; l < DW_LANES; l++) s += acc[l];
            }
            jb->dbias[co] = (float)s;
        }
        if (!jb->dwt) continue;
        for (int64_t tb = 0; tb < taps; tb += DW_TAPS) {
            const int64_t nt = taps - tb < DW_TAPS ? taps - tb : DW_TAPS;
            double tot[DW_TAPS] = { 0 };
            for (int64_t img = 0; img < g->n; img++) {
                float acc[DW_TAPS][DW_LANES];
                memset(acc, 0, sizeof acc);
                const float *plane = jb->x + (img * g->c + co / g->mult) * g->h * g->w, *dyp = jb->dy + (img * cout + co) * g->ho * g->wo;
                for (int64_t oh = 0; oh < g->ho; oh++) {
                    const float *d = dyp + oh * g->wo;
                    for (int64_t k = 0; k < nt; k++) {
                        const int64_t i = (tb + k) / g->kw, j = (tb + k) % g->kw, ih = oh * g->sh - g->ph + i * g->dh;
                        if (ih < 0 || ih >= g->h) continue;
                        int64_t lo, hi;
                        dwrange(g, j * g->dw, &lo, &hi);
                        dw_dot(acc[k], plane + ih * g->w - g->pw + j * g->dw, g->sw, d, lo, hi);
                    }
                }
                for (int64_t k = 0; k < nt; k++) for (int l = 0; l < DW_LANES; l++) tot[k] += acc[k][l];
            }
            for (int64_t k = 0; k < nt; k++) jb->dwt[co * taps + tb + k] = (float)tot[k];
        }
    }
}

static int64_t dwchunks(int64_t work, int64_t tasks, int nthreads) {
    if (work < 32768 || nthreads <= 1) return 1;
    const int64_t c = 4 * (int64_t)nthreads;
    return c < tasks ? c : tasks;
}

int fst_dwconv_fwd(const int64_t *geom, const float *x, const float *w, const float *bias, float *y, int nthreads) {
    dwgeom g;
    int rc = dwcheck(geom, &g);
    if (rc) return rc;
    if (!x || !w || !y) return FST_ENULL;
    if (nthreads < 1) return FST_EINVAL;
    dwjob j = { .g = g, .x = x, .wt = w, .bias = bias, .y = y };
    const int64_t planes = g.n * g.c * g.mult;
    if (planes > 0) fst_parallel(planes, dwchunks(planes * g.ho * g.wo * g.kh * g.kw, planes, nthreads), nthreads, dw_fwd_task, &j);
    return FST_OK;
}

int fst_dwconv_dx(const int64_t *geom, const float *dy, const float *w, float *dx, int nthreads) {
    dwgeom g;
    int rc = dwcheck(geom, &g);
    if (rc) return rc;
    if (!dy || !w || !dx) return FST_ENULL;
    if (nthreads < 1) return FST_EINVAL;
    dwjob j = { .g = g, .dy = dy, .wt = w, .dx = dx };
    const int64_t planes = g.n * g.c;
    if (planes > 0) fst_parallel(planes, dwchunks(planes * g.mult * g.ho * g.wo * g.kh * g.kw, planes, nthreads), nthreads, dw_dx_task, &j);
    return FST_OK;
}

int fst_dwconv_dw(const int64_t *geom, const float *x, const float *dy, float *dw, float *dbias, int nthreads) {
    dwgeom g;
    int rc = dwcheck(geom, &g);
    if (rc) return rc;
    if ((!dw && !dbias) || (g.n > 0 && (!x || !dy))) return FST_ENULL;
    if (nthreads < 1) return FST_EINVAL;
    dwjob j = { .g = g, .x = x, .dy = dy, .dwt = dw, .dbias = dbias };
    const int64_t cout = g.c * g.mult;
    /* an empty batch runs too: zero gradients */
    fst_parallel(cout, dwchunks(g.n * cout * g.ho * g.wo * g.kh * g.kw, cout, nthreads), nthreads, dw_dw_task, &j);
    return FST_OK;
}
