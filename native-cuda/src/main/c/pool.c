/* Max pooling (NCHW float32, fst4j.tensor.Pool's float32 path) and the elementwise ops of a training step
 * that run over whole activations (ReLU forward/backward, same-shape add). Semantics equal the Java
 * references bit for bit: comparisons in float order the same as in double, and float a + b equals
 * (float)((double)a + (double)b). One pool task per range of planes (pooling) or of elements. */
#include "fst4j.h"
#include "alloc.h"
#include "parallel.h"
#include "rank24.h"
#include "cpu_host.h"
#include "vec_paths.h"
#include <immintrin.h>
#include <math.h>
#include <string.h>
#include <stdlib.h>

/* cond ? a : b for floats and ints through bit masks: scalar selects on random data otherwise become branches that
 * mispredict half the time (a max-pool window, a ReLU mask). */
static inline float self(int cond, float a, float b) {
    uint32_t ua, ub, m = -(uint32_t)(cond != 0);
    memcpy(&ua, &a, 4); memcpy(&ub, &b, 4);
    ua = (ua & m) | (ub & ~m);
    memcpy(&a, &ua, 4);
    return a;
}
static inline int32_t seli(int cond, int32_t a, int32_t b) { int32_t m = -(int32_t)(cond != 0); return (a & m) | (b & ~m); }

typedef struct {
    const float *x, *dy, *a, *b;
    float *y, *dx;
    int32_t *idx;
    int64_t h, w, ho, wo, kh, kw, sh, sw, ph, pw;
    int bad;
    int vec;                 /* the vector 2x2 paths, 1 AVX2 or 2 AVX-512 (decided once per call) */
} pool_job;


static int mp_vec_state = -1;   /* -1: not decided yet; 0 off; 1 AVX2 (forward); 2 AVX-512 (forward and backward) */

/* The 2x2 / stride 2 window 16 outputs at a time (pool_avx512.c) where the CPU has AVX-512, 8 at a time forward only
 * (pool_avx2.c) where it has AVX2, unless FST4J_ISA forces a lesser family or FST4J_MAXPOOL_VEC=0. The same outputs,
 * indices and gradients either way. */
static int mp_vec(void) { return fst_vec_switch(&mp_vec_state, "FST4J_MAXPOOL_VEC", 1, -1); }

int fst_maxpool_vec(int mode) { return fst_vec_switch(&mp_vec_state, "FST4J_MAXPOOL_VEC", 1, mode); }

/* The common 2x2 / stride 2 window over one plane: four loads, the same selects, in window order (the vector kernels give
 * the same outputs and indices) */
static void maxpool2x2_plane_scalar(const float *restrict x, int64_t W, int64_t HO, int64_t WO, float *restrict y,
                                    int32_t *restrict ix) {
    for (int64_t oh = 0; oh < HO; oh++) {
        const float *r0 = x + 2 * oh * W, *r1 = r0 + W;
        for (int64_t ow = 0; ow < WO; ow++) {
            float a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
            int32_t base = (int32_t)(2 * oh * W + 2 * ow);
            float best = a; int32_t arg = base;
            if (!(a > -INFINITY)) { best = -INFINITY; }                 /* a = -inf or NaN: handled below */
            int up = b > best; best = self(up, b, best); arg = seli(up, base + 1, arg);
            up = c > best; best = self(up, c, best); arg = seli(up, base + (int32_t)W, arg);
            up = d > best; best = self(up, d, best); arg = seli(up, base + (int32_t)W + 1, arg);
            if (a != a || b != b || c != c || d != d) {               /* first NaN in window order wins */
                if (a != a) { best = a; arg = base; }
                else if (b != b) { best = b; arg = base + 1; }
                else if (c != c) { best = c; arg = base + (int32_t)W; }
                else { best = d; arg = base + (int32_t)W + 1; }
            }
            y[oh * WO + ow] = best;
            ix[oh * WO + ow] = arg;
        }
    }
}

static void maxpool2x2_plane(int vec, const float *x, int64_t W, int64_t HO, int64_t WO, float *y, int32_t *ix) {
    if (vec == 2) fst_maxpool2x2_plane_avx512(x, W, HO, WO, y, ix);
    else if (vec == 1) fst_maxpool2x2_plane_avx2(x, W, HO, WO, y, ix);
    else maxpool2x2_plane_scalar(x, W, HO, WO, y, ix);
}

void fst_maxpool2x2_plane(const float *x, int64_t w, int64_t ho, int64_t wo, float *y, int32_t *ix) {
    maxpool2x2_plane(mp_vec(), x, w, ho, wo, y, ix);
}

/* Fields are copied to locals (restrict pointers) so stores to y/idx cannot alias them: otherwise every load
 * of the job's fields repeats after each store and the loops run scalar at a few ns per element. */
static void maxpool_task(void *p, int64_t p0, int64_t p1) {
    const pool_job *j = p;
    const int64_t H = j->h, W = j->w, HO = j->ho, WO = j->wo, KH = j->kh, KW = j->kw, SH = j->sh, SW = j->sw, PH = j->ph, PW = j->pw;
    for (int64_t pl = p0; pl < p1; pl++) {
        const float *restrict x = j->x + pl * H * W;
        float *restrict y = j->y + pl * HO * WO;
        int32_t *restrict ix = j->idx + pl * HO * WO;
        if (KH == 2 && KW == 2 && SH == 2 && SW == 2 && PH == 0 && PW == 0) {
            maxpool2x2_plane(j->vec, x, W, HO, WO, y, ix);
            continue;
        }
        for (int64_t oh = 0; oh < HO; oh++) {
            int64_t h0 = oh * SH - PH, h1 = h0 + KH;
            if (h0 < 0) h0 = 0;
            if (h1 > H) h1 = H;
            for (int64_t ow = 0; ow < WO; ow++) {
                int64_t w0 = ow * SW - PW, w1 = w0 + KW;
                if (w0 < 0) w0 = 0;
                if (w1 > W) w1 = W;
                /* First strict maximum in row-major window order (ties keep the earliest); comparisons are
                 * branch-free selects. A NaN is never > best, so a second pass (rare) finds the first NaN,
                 * which wins as in the Java reference. */
                float best = -INFINITY;
                int32_t arg = (int32_t)(h0 * W + w0);
                int nan = 0;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) {
                        float v = x[ih * W + iw];
                        int up = v > best;
                        best = self(up, v, best);
                        arg = seli(up, (int32_t)(ih * W + iw), arg);
                        nan |= v != v;
                    }
                if (nan) {
                    for (int64_t ih = h0; ih < h1 && nan; ih++)
                        for (int64_t iw = w0; iw < w1; iw++)
                            if (isnan(x[ih * W + iw])) { best = x[ih * W + iw]; arg = (int32_t)(ih * W + iw); nan = 0; break; }
                }
                y[oh * WO + ow] = best;
                ix[oh * WO + ow] = arg;
            }
        }
    }
}

static int64_t chunks(int64_t work, int nthreads) { return work < 32768 || nthreads <= 1 ? 1 : 4 * (int64_t)nthreads; }

int fst_maxpool2d(const float *x, int64_t planes, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                  int64_t ph, int64_t pw, int64_t ho, int64_t wo, float *y, int32_t *idx, int nthreads) {
    if (!x || !y || !idx) return FST_ENULL;
    if (planes < 0 || h <= 0 || w <= 0 || kh <= 0 || kw <= 0 || sh <= 0 || sw <= 0 || ph < 0 || pw < 0
        || 2 * ph > kh || 2 * pw > kw || nthreads < 1 || h > INT32_MAX || w > INT32_MAX || h * w > INT32_MAX) return FST_EINVAL;
    /* a window larger than the padded plane: the division below truncates towards zero and would accept it */
    if (kh > h + 2 * ph || kw > w + 2 * pw) return FST_EINVAL;
    if ((h + 2 * ph - kh) / sh + 1 != ho || (w + 2 * pw - kw) / sw + 1 != wo || ho <= 0 || wo <= 0) return FST_EINVAL;
    pool_job j = { .x = x, .y = y, .idx = idx, .h = h, .w = w, .ho = ho, .wo = wo, .kh = kh, .kw = kw,
                   .sh = sh, .sw = sw, .ph = ph, .pw = pw, .vec = mp_vec() };
    fst_parallel(planes, chunks(planes * h * w, nthreads), nthreads, maxpool_task, &j);
    return FST_OK;
}

/* One plane of the max pool's backward: zeros, then each dy added at its index; returns 1 where an index lay outside the
 * plane (skipped: dx stays defined). Also batch norm's fused pool (norm.c), so that both sum the same way. */
int fst_maxpool_bwd_plane(const float *restrict dy, const int32_t *restrict ix, int64_t plane, int64_t out, float *restrict dx) {
    int bad = 0;
    memset(dx, 0, (size_t)plane * 4);
    for (int64_t o = 0; o < out; o++) {
        const int32_t t = ix[o];
        if (t < 0 || t >= plane) { bad = 1; continue; }
        dx[t] += dy[o];
    }
    return bad;
}

static void maxpool_bwd_task(void *p, int64_t p0, int64_t p1) {
    pool_job *j = p;
    const int64_t plane = j->h * j->w, out = j->ho * j->wo;
    int bad = 0;
    for (int64_t pl = p0; pl < p1; pl++) {
        float *restrict dx = j->dx + pl * plane;
        const float *restrict dy = j->dy + pl * out;
        const int32_t *restrict ix = j->idx + pl * out;
        /* every index in its own 2x2 block (2x2 / stride 2 windows): each element gets at most one gradient */
        if (j->vec == 2 && 2 * j->ho <= j->h && 2 * j->wo <= j->w && fst_maxpool2x2_bwd_plane_avx512(dy, ix, j->h, j->w, j->ho, j->wo, dx))
            continue;
        bad |= fst_maxpool_bwd_plane(dy, ix, plane, out, dx);   /* reported as FST_EINDEX */
    }
    if (bad) j->bad = 1;
}

int fst_maxpool2d_backward(const float *dy, const int32_t *idx, int64_t planes, int64_t h, int64_t w, int64_t ho, int64_t wo,
                           float *dx, int nthreads) {
    if (!dy || !idx || !dx) return FST_ENULL;
    if (planes < 0 || h <= 0 || w <= 0 || ho <= 0 || wo <= 0 || nthreads < 1 || h > INT32_MAX || w > INT32_MAX) return FST_EINVAL;
    /* the family number, not a flag: the AVX-512 plane runs where it is 2 (until session 44 a && made it 1, so it never ran) */
    pool_job j = { .dy = dy, .idx = (int32_t *)idx, .dx = dx, .h = h, .w = w, .ho = ho, .wo = wo,
                   .vec = h * w <= INT32_MAX ? mp_vec() : 0 };
    fst_parallel(planes, chunks(planes * h * w, nthreads), nthreads, maxpool_bwd_task, &j);
    return j.bad ? FST_EINDEX : FST_OK;
}

/* Adaptive average pooling: window [floor(i*in/out), ceil((i+1)*in/out)) along each axis, as Pool.java. The sum runs in
 * double in window order and the mean is rounded once to float; backward adds g/count in double per input element, in
 * output order (adaptive windows may overlap), so both equal the Java reference bit for bit. */
static inline int64_t aavg_lo(int64_t i, int64_t in, int64_t out) { return i * in / out; }
static inline int64_t aavg_hi(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

/* Each output's window bounds [lo, hi) along each axis, computed once per call (an integer division each was ~5 per
 * output and dominated small planes: ResNet-18's global pool of [32, 512, 4, 4] took ~250 us each way on 2 threads) */
typedef struct { const pool_job *j; const int64_t *hb, *wb; } aavg_job;   /* hb[2*oh], hb[2*oh+1]: lo, hi (wb likewise) */

static void aavg_task(void *p, int64_t p0, int64_t p1) {
    const aavg_job *a = p;
    const pool_job *j = a->j;
    const int64_t H = j->h, W = j->w, HO = j->ho, WO = j->wo;
    for (int64_t pl = p0; pl < p1; pl++) {
        const float *restrict x = j->x + pl * H * W;
        float *restrict y = j->y + pl * HO * WO;
        for (int64_t oh = 0; oh < HO; oh++) {
            const int64_t h0 = a->hb[2 * oh], h1 = a->hb[2 * oh + 1];
            for (int64_t ow = 0; ow < WO; ow++) {
                const int64_t w0 = a->wb[2 * ow], w1 = a->wb[2 * ow + 1];
                double s = 0;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) s += x[ih * W + iw];
                y[oh * WO + ow] = (float)(s / (double)((h1 - h0) * (w1 - w0)));
            }
        }
    }
}

static void aavg_bwd_task(void *p, int64_t p0, int64_t p1) {
    const aavg_job *a = p;
    const pool_job *j = a->j;
    const int64_t H = j->h, W = j->w, HO = j->ho, WO = j->wo;
    for (int64_t pl = p0; pl < p1; pl++) {
        float *restrict dx = j->dx + pl * H * W;
        const float *restrict dy = j->dy + pl * HO * WO;
        memset(dx, 0, (size_t)(H * W) * 4);
        for (int64_t oh = 0; oh < HO; oh++) {
            const int64_t h0 = a->hb[2 * oh], h1 = a->hb[2 * oh + 1];
            for (int64_t ow = 0; ow < WO; ow++) {
                const int64_t w0 = a->wb[2 * ow], w1 = a->wb[2 * ow + 1];
                const double g = (double)dy[oh * WO + ow] / (double)((h1 - h0) * (w1 - w0));
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) dx[ih * W + iw] = (float)((double)dx[ih * W + iw] + g);
            }
        }
    }
}

/* Both directions: the same checks and split; in is x (forward) or dy, out is y or dx. */
static int aavg_run(const float *in, float *out, int64_t planes, int64_t h, int64_t w, int64_t ho, int64_t wo, int nthreads,
                    int backward) {
    if (!in || !out) return FST_ENULL;
    if (planes < 0 || h <= 0 || w <= 0 || ho <= 0 || wo <= 0 || nthreads < 1 || h > INT32_MAX || w > INT32_MAX
        || ho > INT32_MAX || wo > INT32_MAX) return FST_EINVAL;
    pool_job j = { .h = h, .w = w, .ho = ho, .wo = wo };
    if (backward) { j.dy = in; j.dx = out; } else { j.x = in; j.y = out; }
    int64_t *bounds = fst_malloc((size_t)(2 * (ho + wo)) * sizeof(int64_t));
    if (!bounds) return FST_ENOMEM;
    for (int64_t i = 0; i < ho; i++) { bounds[2 * i] = aavg_lo(i, h, ho); bounds[2 * i + 1] = aavg_hi(i, h, ho); }
    for (int64_t i = 0; i < wo; i++) { bounds[2 * (ho + i)] = aavg_lo(i, w, wo); bounds[2 * (ho + i) + 1] = aavg_hi(i, w, wo); }
    aavg_job a = { &j, bounds, bounds + 2 * ho };
    fst_parallel(planes, chunks(planes * h * w, nthreads), nthreads, backward ? aavg_bwd_task : aavg_task, &a);
    free(bounds);
    return FST_OK;
}

int fst_adaptive_avgpool2d(const float *x, int64_t planes, int64_t h, int64_t w, int64_t ho, int64_t wo, float *y, int nthreads) {
    return aavg_run(x, y, planes, h, w, ho, wo, nthreads, 0);
}

int fst_adaptive_avgpool2d_backward(const float *dy, int64_t planes, int64_t h, int64_t w, int64_t ho, int64_t wo, float *dx,
                                    int nthreads) {
    return aavg_run(dy, dx, planes, h, w, ho, wo, nthreads, 1);
}

/* Element loops take their pointers as locals: y may equal x (in place), so no restrict, but the job's fields
 * are no longer reloaded after every store, and gcc vectorises (with a runtime overlap check). */
static void relu_task(void *p, int64_t i0, int64_t i1) {
    const pool_job *j = p;
    const float *x = j->x;
    float *y = j->y;
    for (int64_t i = i0; i < i1; i++) { float v = x[i]; y[i] = v > 0.0f || v != v ? v : 0.0f; }   /* NaN stays NaN, as PyTorch's */
}

static void relu_bwd_task(void *p, int64_t i0, int64_t i1) {
    const pool_job *j = p;
    const float *a = j->a, *dy = j->dy;
    float *dx = j->dx;
    for (int64_t i = i0; i < i1; i++) {
        float d = dy[i];   /* loaded unconditionally: a conditional load would keep gcc from vectorising (and mispredict) */
        dx[i] = a[i] > 0.0f ? d : 0.0f;
    }
}

static void add_task(void *p, int64_t i0, int64_t i1) {
    const pool_job *j = p;
    const float *a = j->a, *b = j->b;
    float *y = j->y;
    for (int64_t i = i0; i < i1; i++) y[i] = a[i] + b[i];
}

static void add_relu_task(void *p, int64_t i0, int64_t i1) {
    const pool_job *j = p;
    const float *a = j->a, *b = j->b;
    float *y = j->y;
    for (int64_t i = i0; i < i1; i++) { float v = a[i] + b[i]; y[i] = v > 0.0f || v != v ? v : 0.0f; }
}

/* y = max(a + b, 0) over n contiguous floats (a ResNet block's end); y may equal a or b. */
int fst_add_relu(const float *a, const float *b, float *y, int64_t n, int nthreads) {
    if (!a || !b || !y) return FST_ENULL;
    if (n < 0 || nthreads < 1) return FST_EINVAL;
    pool_job j = { .a = a, .b = b, .y = y };
    fst_parallel(n, chunks(n, nthreads), nthreads, add_relu_task, &j);
    return FST_OK;
}

/* y = max(x, 0) (NaN stays NaN, -0 becomes +0, as the Java reference and PyTorch); y may equal x. */
int fst_relu(const float *x, float *y, int64_t n, int nthreads) {
    if (!x || !y) return FST_ENULL;
    if (n < 0 || nthreads < 1) return FST_EINVAL;
    pool_job j = { .x = x, .y = y };
    fst_parallel(n, chunks(n, nthreads), nthreads, relu_task, &j);
    return FST_OK;
}

/* dx = a > 0 ? dy : 0; dx may equal dy. */
int fst_relu_backward(const float *dy, const float *a, float *dx, int64_t n, int nthreads) {
    if (!dy || !a || !dx) return FST_ENULL;
    if (n < 0 || nthreads < 1) return FST_EINVAL;
    pool_job j = { .dy = dy, .a = a, .dx = dx };
    fst_parallel(n, chunks(n, nthreads), nthreads, relu_bwd_task, &j);
    return FST_OK;
}

/* y = a + b elementwise over n contiguous floats; y may equal a or b. */
int fst_add(const float *a, const float *b, float *y, int64_t n, int nthreads) {
    if (!a || !b || !y) return FST_ENULL;
    if (n < 0 || nthreads < 1) return FST_EINVAL;
    pool_job j = { .a = a, .b = b, .y = y };
    fst_parallel(n, chunks(n, nthreads), nthreads, add_task, &j);
    return FST_OK;
}

/* dst[i] = src[i] over a rank-r float32 index space (element strides, negative allowed as views can flip), split
 * into units of (row, segment): a row is all axes but the last, long rows are cut into segments of COPY_SEG floats
 * so that even one row spreads over the threads; a unit whose two inner strides are 1 is one memcpy. */
#define COPY_MAX_RANK 8
#define COPY_SEG 16384
typedef struct {
    float *dst;
    const float *src;
    int r;
    int64_t segs, seg_len;
    int64_t shape[COPY_MAX_RANK], ds[COPY_MAX_RANK], ss[COPY_MAX_RANK];
} copy_job;

static void copy_task(void *p, int64_t u0, int64_t u1) {
    const copy_job *j = p;
    const int r = j->r;
    const int64_t inner = j->shape[r - 1], di = j->ds[r - 1], si = j->ss[r - 1];
    /* the first unit's row index by division, then an odometer: no division per row (rows can be 49 floats) */
    int64_t idx[COPY_MAX_RANK], seg = u0 % j->segs, row = u0 / j->segs, doff = 0, soff = 0;
    for (int d = r - 2; d >= 0; d--) {
        idx[d] = row % j->shape[d];
        row /= j->shape[d];
        doff += idx[d] * j->ds[d]; soff += idx[d] * j->ss[d];
    }
    for (int64_t u = u0; u < u1; u++) {
        const int64_t q0 = seg * j->seg_len, q1 = q0 + j->seg_len < inner ? q0 + j->seg_len : inner;
        if (q1 > q0) {
            float *restrict dp = j->dst + doff + q0 * di;
            const float *restrict sp = j->src + soff + q0 * si;
            if (di == 1 && si == 1) memcpy(dp, sp, (size_t)(q1 - q0) * 4);
            else for (int64_t q = 0; q < q1 - q0; q++) dp[q * di] = sp[q * si];
        }
        if (++seg < j->segs) continue;
        seg = 0;
        for (int d = r - 2; d >= 0; d--) {
            doff += j->ds[d]; soff += j->ss[d];
            if (++idx[d] < j->shape[d]) break;
            doff -= j->shape[d] * j->ds[d]; soff -= j->shape[d] * j->ss[d];
            idx[d] = 0;
        }
    }
}

/* A rank-2 copy that transposes (dst rows contiguous, src columns contiguous, or the reverse): row by row, each row's
 * elements lie a whole column apart in the other array, so every element touches another cache line and, with columns of
 * hundreds of floats, another page (a [128, 6272] gradient of a linear layer's input took ~1 ms on 2 threads). In tiles
 * of COPY_TILE x COPY_TILE both arrays are read and written a few lines at a time. Units: tiles' rows of the shape. */
#define COPY_TILE 32
static void transpose_task(void *p, int64_t t0, int64_t t1) {
    const copy_job *j = p;
    const int64_t R = j->shape[0], C = j->shape[1], d0 = j->ds[0], d1 = j->ds[1], s0 = j->ss[0], s1 = j->ss[1];
    for (int64_t t = t0; t < t1; t++) {
        const int64_t i0 = t * COPY_TILE, i1 = i0 + COPY_TILE < R ? i0 + COPY_TILE : R;
        for (int64_t c0 = 0; c0 < C; c0 += COPY_TILE) {
            const int64_t c1 = c0 + COPY_TILE < C ? c0 + COPY_TILE : C;
            for (int64_t i = i0; i < i1; i++) {
                float *restrict dp = j->dst + i * d0;
                const float *restrict sp = j->src + i * s0;
                for (int64_t c = c0; c < c1; c++) dp[c * d1] = sp[c * s1];
            }
        }
    }
}

int fst_copy_f32(float *dst, int64_t dst_off, const float *src, int64_t src_off, int rank, const int64_t *shape,
                 const int64_t *dst_strides, const int64_t *src_strides, int nthreads) {
    if (!dst || !src || !shape || !dst_strides || !src_strides) return FST_ENULL;
    if (rank < 1 || rank > COPY_MAX_RANK || nthreads < 1) return FST_EINVAL;
    if (rank == 2 && shape[0] >= COPY_TILE && shape[1] >= COPY_TILE
        && ((dst_strides[1] == 1 && src_strides[0] == 1) || (dst_strides[0] == 1 && src_strides[1] == 1))) {
        copy_job j = { .dst = dst + dst_off, .src = src + src_off, .r = 2,
                       .shape = { shape[0], shape[1] }, .ds = { dst_strides[0], dst_strides[1] }, .ss = { src_strides[0], src_strides[1] } };
        const int64_t tiles = (shape[0] + COPY_TILE - 1) / COPY_TILE;
        fst_parallel(tiles, shape[0] * shape[1] < 32768 || nthreads <= 1 ? 1 : 4 * (int64_t)nthreads, nthreads, transpose_task, &j);
        return FST_OK;
    }
    copy_job j = { .dst = dst + dst_off, .src = src + src_off, .r = rank };
    int64_t rows = 1, n = 1;
    for (int d = 0; d < rank; d++) {
        if (shape[d] < 0) return FST_EINVAL;
        j.shape[d] = shape[d]; j.ds[d] = dst_strides[d]; j.ss[d] = src_strides[d];
        n *= shape[d];
        if (d < rank - 1) rows *= shape[d];
    }
    if (n == 0) return FST_OK;
    const int64_t inner = shape[rank - 1];
    j.segs = inner > COPY_SEG && rows < 4 * (int64_t)nthreads ? (inner + COPY_SEG - 1) / COPY_SEG : 1;
    j.seg_len = (inner + j.segs - 1) / j.segs;
    const int64_t units = rows * j.segs;
    fst_parallel(units, n < 32768 || nthreads <= 1 ? 1 : 4 * (int64_t)nthreads, nthreads, copy_task, &j);
    return FST_OK;
}

typedef struct {
    float *w, *buf;
    const float *g;
    float lr, wd, mom, damp;
    int nesterov, first;
} sgd_job;

/* torch.optim.SGD's update in float, operation for operation as fst4j.nn.SGD's Java loop (no FMA contraction:
 * -std=c11 keeps -ffp-contract=off), so both give the same bits. */
static void sgd_task(void *p, int64_t i0, int64_t i1) {
    const sgd_job *j = p;
    float *restrict w = j->w, *restrict b = j->buf;
    const float *restrict g = j->g;
    const float lr = j->lr, wd = j->wd, mom = j->mom, damp = j->damp;
    if (!b) {
        for (int64_t i = i0; i < i1; i++) { float wi = w[i]; w[i] = wi - lr * (g[i] + wd * wi); }
        return;
    }
    for (int64_t i = i0; i < i1; i++) {
        float wi = w[i];
        float gi = g[i] + wd * wi;
        float bi = j->first ? gi : mom * b[i] + damp * gi;
        b[i] = bi;
        float d = j->nesterov ? gi + mom * bi : bi;
        w[i] = wi - lr * d;
    }
}

int fst_sgd(float *w, const float *g, float *buf, int64_t n, float lr, float wd, float mom, float damp, int nesterov,
            int first, int nthreads) {
    if (!w || !g) return FST_ENULL;
    if (n < 0 || nthreads < 1) return FST_EINVAL;
    sgd_job j = { .w = w, .buf = buf, .g = g, .lr = lr, .wd = wd, .mom = mom, .damp = damp, .nesterov = nesterov, .first = first };
    fst_parallel(n, chunks(n, nthreads), nthreads, sgd_task, &j);
    return FST_OK;
}

/* ---- The SGD step with SR-STE's decay fused in (fst4j.nn.SrSte + fst4j.nn.SGD): the gradient each element uses is
 * g + lambda * w where magnitude 2:4 along rows of k % 4 == 0 floats prunes w, else g; the same keys and ties as
 * fst_srste_decay (prune.c) and the same float operations in the same order as that decay followed by fst_sgd, so
 * the same bits; g itself is left as it was. One pass over w, g and buf instead of two. ---- */
#define SGD_CH 256   /* groups of 4 per chunk: the masks of a chunk, then its update, both vectorised */

typedef struct { float *w, *buf; const float *g; float lambda, lr, wd, mom, damp; int nesterov, first; } sgd_srste_job;

static void __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
sgd_srste_task(void *p, int64_t q0, int64_t q1) {
    const sgd_srste_job *j = p;
    float *restrict w = j->w, *restrict b = j->buf;
    const float *restrict g = j->g;
    const float lambda = j->lambda, lr = j->lr, wd = j->wd, mom = j->mom, damp = j->damp;
    uint32_t m[4 * SGD_CH];
    float gd[4 * SGD_CH];
    for (int64_t c = q0; c < q1; c += SGD_CH) {
        const int64_t ng = q1 - c < SGD_CH ? q1 - c : SGD_CH, e0 = 4 * c, ne = 4 * ng;
        const uint32_t *restrict wb = (const uint32_t *)(const void *)(w + e0);
        for (int64_t q = 0; q < ng; q++) fst_pruned24(wb + 4 * q, m + 4 * q);
        for (int64_t i = 0; i < ne; i++) {   /* the decayed gradient, selected by bits (a kept -0.0 stays -0.0) */
            const float old = g[e0 + i], upd = old + lambda * w[e0 + i];
            uint32_t uo, uu;
            memcpy(&uo, &old, 4); memcpy(&uu, &upd, 4);
            uo = (uu & m[i]) | (uo & ~m[i]);
            memcpy(&gd[i], &uo, 4);
        }
        if (!b) {
            for (int64_t i = 0; i < ne; i++) { const float wi = w[e0 + i]; w[e0 + i] = wi - lr * (gd[i] + wd * wi); }
            continue;
        }
        for (int64_t i = 0; i < ne; i++) {
            const float wi = w[e0 + i], gi = gd[i] + wd * wi;
            const float bi = j->first ? gi : mom * b[e0 + i] + damp * gi;
            b[e0 + i] = bi;
            const float d = j->nesterov ? gi + mom * bi : bi;
            w[e0 + i] = wi - lr * d;
        }
    }
}

/* The same on AVX-512, 4 groups per vector: each group is one 128-bit lane, so the three other members of an element's
 * group come from in-lane rotations; member j beats i when its key is larger, or equal and j < i (the lanes where the
 * rotation wrapped). Pruned = beaten by at least two of three. Multiplies and adds stay separate (no FMA), as above. */
__attribute__((target("avx512f")))
static void sgd_srste_task_avx512(void *p, int64_t q0, int64_t q1) {
    const sgd_srste_job *j = p;
    float *restrict w = j->w, *restrict b = j->buf;
    const float *restrict g = j->g;
    const __m512 lambda = _mm512_set1_ps(j->lambda), lr = _mm512_set1_ps(j->lr), wd = _mm512_set1_ps(j->wd);
    const __m512 mom = _mm512_set1_ps(j->mom), damp = _mm512_set1_ps(j->damp);
    const __m512i absm = _mm512_set1_epi32(0x7fffffff), nan = _mm512_set1_epi32(0x7f800001);
    /* lanes whose partner under rotation r (partner (i + r) % 4) has the lower index: i + r >= 4 */
    const __mmask16 low1 = 0x8888, low2 = 0xcccc, low3 = 0xeeee;
    const int64_t e1 = 4 * q1;
    for (int64_t e = 4 * q0; e < e1; e += 16) {
        /* masked loads and stores only for the last partial vector: on Zen 5, with them on every vector, the pass took
         * 5.8 ms against plain SGD's 3.3 ms over 11.2M floats on 2 threads; without, 3.1 ms */
        const int full = e1 - e >= 16;
        const __mmask16 live = full ? (__mmask16)0xffff : (__mmask16)((1u << (e1 - e)) - 1);
        const __m512 wv = full ? _mm512_loadu_ps(w + e) : _mm512_maskz_loadu_ps(live, w + e);
        const __m512 gv = full ? _mm512_loadu_ps(g + e) : _mm512_maskz_loadu_ps(live, g + e);
        const __m512i key = _mm512_min_epu32(_mm512_and_si512(_mm512_castps_si512(wv), absm), nan);
        const __m512i r1 = _mm512_shuffle_epi32(key, _MM_SHUFFLE(0, 3, 2, 1));
        const __m512i r2 = _mm512_shuffle_epi32(key, _MM_SHUFFLE(1, 0, 3, 2));
        const __m512i r3 = _mm512_shuffle_epi32(key, _MM_SHUFFLE(2, 1, 0, 3));
        const __mmask16 b1 = _mm512_cmpgt_epu32_mask(r1, key) | (low1 & _mm512_cmpeq_epu32_mask(r1, key));
        const __mmask16 b2 = _mm512_cmpgt_epu32_mask(r2, key) | (low2 & _mm512_cmpeq_epu32_mask(r2, key));
        const __mmask16 b3 = _mm512_cmpgt_epu32_mask(r3, key) | (low3 & _mm512_cmpeq_epu32_mask(r3, key));
        const __mmask16 pruned = (b1 & b2) | (b1 & b3) | (b2 & b3);
        const __m512 gd = _mm512_mask_add_ps(gv, pruned, gv, _mm512_mul_ps(lambda, wv));
        const __m512 gi = _mm512_add_ps(gd, _mm512_mul_ps(wd, wv));
        __m512 d = gi;
        if (b) {
            const __m512 bi = j->first ? gi
                : _mm512_add_ps(_mm512_mul_ps(mom, full ? _mm512_loadu_ps(b + e) : _mm512_maskz_loadu_ps(live, b + e)), _mm512_mul_ps(damp, gi));
            if (full) _mm512_storeu_ps(b + e, bi); else _mm512_mask_storeu_ps(b + e, live, bi);
            d = j->nesterov ? _mm512_add_ps(gi, _mm512_mul_ps(mom, bi)) : bi;
        }
        const __m512 wn = _mm512_sub_ps(wv, _mm512_mul_ps(lr, d));
        if (full) _mm512_storeu_ps(w + e, wn); else _mm512_mask_storeu_ps(w + e, live, wn);
    }
}

int fst_sgd_srste(float *w, const float *g, float *buf, int64_t n, int64_t k, float lambda, float lr, float wd, float mom,
                  float damp, int nesterov, int first, int nthreads) {
    if (!w || !g) return FST_ENULL;
    if (n < 0 || k <= 0 || k % 4 != 0 || n % k != 0 || nthreads < 1) return FST_EINVAL;
    sgd_srste_job j = { .w = w, .buf = buf, .g = g, .lambda = lambda, .lr = lr, .wd = wd, .mom = mom, .damp = damp,
                        .nesterov = nesterov, .first = first };
    /* the kernel family gemm.c chose for the process (FST4J_ISA=avx2|generic forces the portable loop here too) */
    const int avx512 = strcmp(fst_isa(), "avx512") == 0;
    fst_parallel(n / 4, chunks(n, nthreads), nthreads, avx512 ? sgd_srste_task_avx512 : sgd_srste_task, &j);
    return FST_OK;
}
