/* Optimizer updates beyond SGD (pool.c) and gradient clipping (fst4j.nn.AdamW, fst4j.nn.GradClip): float loops that
 * are operation for operation the Java references, so that C, Java and the CUDA kernels (k_adamw, k_sumsq_part,
 * k_scale in fst4j_bodies.cuh) give the same bits. No FMA contraction (-std=c11 keeps -ffp-contract=off); built with
 * -fno-math-errno so that sqrtf vectorises (it only drops errno, v >= 0 or NaN here, not the correctly rounded result). */
#include "fst4j.h"
#include "parallel.h"
#include "../cuda/fst4j_kargs.h"
#include <math.h>

/* the CPU's partial sums must be the CUDA kernel's, part for part, for the same norm on both */
_Static_assert(FST_NORM_PARTS == FST_PARTS, "fst_sumsq_parts and k_sumsq_part split a norm alike");

static int64_t chunks(int64_t work, int nthreads) { return work < 32768 || nthreads <= 1 ? 1 : 4 * (int64_t)nthreads; }

/* java.lang.Math.max(float, float), torch.maximum's rule: a NaN wins (the first), +0 over -0 */
static inline float jmaxf(float a, float b) {
    if (a != a) return a;
    if (a == 0.0f && b == 0.0f) return signbit(a) ? b : a;
    return a >= b ? a : b;
}

typedef struct {
    float *w, *m, *v, *vmax;
    const float *g;
    float decay, b1, c1, b2, c2, step, bc2, eps;
} adamw_job;

static void FST_CLONES adamw_task(void *p, int64_t i0, int64_t i1) {
    const adamw_job *j = p;
    float *restrict w = j->w, *restrict m = j->m, *restrict v = j->v, *restrict vmax = j->vmax;
    const float *restrict g = j->g;
    const float decay = j->decay, b1 = j->b1, c1 = j->c1, b2 = j->b2, c2 = j->c2, step = j->step, bc2 = j->bc2, eps = j->eps;
    if (!vmax) {
        for (int64_t i = i0; i < i1; i++) {
            const float wi = w[i] * decay, gi = g[i];
            const float mi = m[i] * b1 + c1 * gi;
            const float vi = v[i] * b2 + c2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            const float d = sqrtf(vi) / bc2 + eps;
            w[i] = wi - step * mi / d;
        }
        return;
    }
    for (int64_t i = i0; i < i1; i++) {
        const float wi = w[i] * decay, gi = g[i];
        const float mi = m[i] * b1 + c1 * gi;
        const float vi = v[i] * b2 + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        const float vh = jmaxf(vmax[i], vi);
        vmax[i] = vh;
        const float d = sqrtf(vh) / bc2 + eps;
        w[i] = wi - step * mi / d;
    }
}

int fst_adamw(float *w, const float *g, float *m, float *v, float *vmax, int64_t n, float decay, float beta1, float c1, float beta2,
              float c2, float step, float bc2, float eps, int nthreads) {
    if (!w || !g || !m || !v) return FST_ENULL;
    if (n < 0 || nthreads < 1) return FST_EINVAL;
    /* what fst4j.nn.AdamW derives from hyper-parameters it accepted; !(x >= 0) is true for NaN */
    if (!(beta1 >= 0 && beta1 <= 1) || !(beta2 >= 0 && beta2 <= 1) || !(c1 > 0 && c1 <= 1) || !(c2 > 0 && c2 <= 1)
        || !(step >= 0) || isinf(step) || !(bc2 > 0 && bc2 <= 1) || !(eps >= 0) || isinf(eps) || !isfinite(decay)) return FST_EINVAL;
    adamw_job j = { .w = w, .m = m, .v = v, .vmax = vmax, .g = g, .decay = decay, .b1 = beta1, .c1 = c1, .b2 = beta2, .c2 = c2,
                    .step = step, .bc2 = bc2, .eps = eps };
    fst_parallel(n, chunks(n, nthreads), nthreads, adamw_task, &j);
    return FST_OK;
}

/* ---- the squared L2 norm of a gradient in FST_NORM_PARTS strided partial sums: part p = sum over r, in order, of
 * (double)x[r * FST_NORM_PARTS + p]^2 (each square exact in double). The threads split the parts, never a part's
 * order, so the sums are the same on any thread count, and the same as k_sumsq_part's on CUDA. ---- */
typedef struct { const float *x; int64_t n; double *parts; } sumsq_job;

static void FST_CLONES sumsq_task(void *p, int64_t p0, int64_t p1) {
    const sumsq_job *j = p;
    const float *restrict x = j->x;
    double acc[FST_NORM_PARTS];
    for (int64_t q = p0; q < p1; q++) acc[q] = 0;
    const int64_t full = j->n / FST_NORM_PARTS;
    for (int64_t r = 0; r < full; r++) {
        const float *restrict row = x + r * FST_NORM_PARTS;
        for (int64_t q = p0; q < p1; q++) acc[q] += (double)row[q] * (double)row[q];
    }
    for (int64_t q = p0; q < p1 && full * FST_NORM_PARTS + q < j->n; q++) {
        const double e = x[full * FST_NORM_PARTS + q];
        acc[q] += e * e;
    }
    for (int64_t q = p0; q < p1; q++) j->parts[q] = acc[q];
}

int fst_sumsq_parts(const float *x, int64_t n, double *parts, int nthreads) {
    if (!parts || (!x && n > 0)) return FST_ENULL;
    if (n < 0 || nthreads < 1) return FST_EINVAL;
    sumsq_job j = { x, n, parts };
    /* 8 chunks of 32 parts: each thread's slice of a row is two cache lines */
    fst_parallel(FST_NORM_PARTS, n < 65536 || nthreads <= 1 ? 1 : 8, nthreads, sumsq_task, &j);
    return FST_OK;
}

typedef struct { float *x; float s; } scale_job;

static void FST_CLONES scale_task(void *p, int64_t i0, int64_t i1) {
    const scale_job *j = p;
    float *restrict x = j->x;
    const float s = j->s;
    for (int64_t i = i0; i < i1; i++) x[i] = x[i] * s;
}

int fst_scale_f32(float *x, int64_t n, float s, int nthreads) {
    if (!x && n > 0) return FST_ENULL;
    if (n < 0 || nthreads < 1) return FST_EINVAL;
    scale_job j = { x, s };
    fst_parallel(n, chunks(n, nthreads), nthreads, scale_task, &j);
    return FST_OK;
}
