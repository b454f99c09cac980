/* Batch norm over (N, H, W) per channel for contiguous float32 NCHW (fst4j.tensor.Norm's float32 path).
 * Sums are accumulated in double, as in the Java reference; one pool task per range of channels. */
#include "overlap.h"
#include "fst4j.h"
#include "parallel.h"
#include "vec_paths.h"
#include <math.h>
#include <stddef.h>
#include <string.h>

/* Sums over a plane in 8 double lanes: lane k takes elements q = k (mod 8) of each plane in order, the tail of a plane
 * goes to lane 0, and the lanes are folded pairwise at the end. One accumulator would make every add wait for the
 * previous one (a ~4-cycle chain per element). Written with GCC vector types (8 doubles: one zmm, two ymm or four xmm
 * per target clone) because gcc left the equivalent scalar 8-accumulator loops scalar. Double precision, so the
 * result stays within rounding of the Java reference's sequential sums; lane by lane the same operations as the
 * scalar form, so the same bits. */
typedef double v8d __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
/* (macros, not functions: a vector-typed return would change the ABI of the baseline clone, -Wpsabi) */
#define ld8(p) ({ v8f f_; memcpy(&f_, (p), sizeof f_); f_; })
#define wide8(f) __builtin_convertvector((f), v8d)
/* f where r > 0, else +0.0f (the fused ReLU's mask), as keep_if lane by lane */
#define mask8(f, r) ({ v8f v_ = (f); v8i m_ = (r) > (v8f){ 0 }, u_; memcpy(&u_, &v_, 32); u_ &= m_; memcpy(&v_, &u_, 32); v_; })

/* v where cond, else +0.0f, without a branch: a ReLU mask is random, and a branch on it mispredicts on every other
 * element (gcc keeps these scalar double loops branchy). The forward's ReLU keeps a NaN (as PyTorch's); the backward's
 * mask of a NaN output is 0. */
static inline float keep_if(float v, int cond) {
    uint32_t u;
    memcpy(&u, &v, 4);
    u &= -(uint32_t)(cond != 0);
    memcpy(&v, &u, 4);
    return v;
}

#define fold8(a) ((((a)[0] + (a)[1]) + ((a)[2] + (a)[3])) + (((a)[4] + (a)[5]) + ((a)[6] + (a)[7])))

typedef struct {
    const float *x, *dy, *gamma, *beta, *mean_in, *invstd_in;
    float *y, *mean, *invstd, *rmean, *rvar, *dx, *dgamma, *dbeta;
    const float *relu_out;   /* backward: the fused ReLU's output, dy counts only where it is > 0 (NULL: no ReLU) */
    const double *relu_affine; /* backward, instead of relu_out: the forward's scale and shift per channel, [2c]; dy
                              * counts where (float)(x * scale + shift) > 0, the forward's own output recomputed */
    double *affine;          /* forward: where to keep that scale and shift (NULL: nowhere) */
    const float *add;        /* forward: a tensor added to BN(x) before the ReLU (a ResNet block's shortcut), or NULL */
    float *dmask;            /* backward: where to write dy masked by the ReLU (the shortcut's gradient), or NULL */
    /* the 2x2 / stride 2 max pool fused after the ReLU (pool_w > 0): the forward pools each plane of the output, computed
     * into a buffer, into pooled / pidx (fst_maxpool2d's indices); the backward expands dyp at pidx into each plane of dy
     * (fst_maxpool2d_backward's sums) before using it */
    int64_t pool_w, pool_ho, pool_wo;
    float *pooled; int32_t *pidx; const float *dyp; const int32_t *pidx_in;
    int bad;                 /* an index lay outside its plane (the fused pool's backward) */
    int relu;                /* forward: y = max(BN(x), 0) in the same pass */
    int64_t n, c, hw;
    double momentum, eps;
} bn_job;

/* Memory order: a channel's planes are hw floats each, c * hw floats apart (one per image), so a task that walks one
 * channel reads runs of hw floats, each on another page, and the hardware prefetchers (which stop at page boundaries)
 * leave it latency-bound: 6-15 GB/s measured, against ~44 GB/s for a streaming pass. So channels go in blocks whose
 * planes form runs of about 4 KB (BN_RUN floats) per image, and each run prefetches the next image's run as it goes.
 * Per channel the adds are the same operations in the same order as one channel at a time, so the bits do not change;
 * a block's planes (n runs) stay in L2 for the second pass. */
#define BN_RUN 1024
#define BN_CB 64   /* most channels per block (planes of 16 floats give runs of 1024) */
#define BN_L2 (256 * 1024)
static inline int64_t bn_block(int64_t n, int64_t hw) {
    /* planes with a scalar tail (7x7, 14x14) reload a channel's accumulators per short plane for little gain: one
     * channel at a time there (7x7 forward against the per-channel code before blocks: 0.85x in blocks of 20,
     * 0.87-1.00x alone; 14x14 1.03-1.10x either way) */
    int64_t b = hw >= BN_RUN || hw % 8 ? 1 : BN_RUN / hw;
    const int64_t fit = BN_L2 / (4 * n * hw);   /* and the block's planes stay within a quarter of L2 */
    if (b > fit) b = fit;
    return b < 1 ? 1 : b < BN_CB ? b : BN_CB;
}
/* Whether a pass over blocks of cb channels prefetches the next image: short planes alone (7x7) are strided reads the
 * hardware already prefetches (there the prefetch measured 0.9x). */
static inline int bn_prefetches(int64_t cb, int64_t hw) { return cb > 1 || hw >= 128; }
/* into L2, one image ahead (two ahead measured the same; without the prefetch the blocks alone were 0.77-0.91x) */
#define BN_PREFETCH(p, q) __builtin_prefetch((p) + (q), 0, 2)

FST_CLONES
static void bn_fwd_range(void *p, int64_t c0, int64_t c1, float *pbuf) {
    const bn_job *j = p;
    const int64_t m = j->n * j->hw, hw = j->hw, img = j->c * hw, cb = bn_block(j->n, hw);
    const int pf = bn_prefetches(cb, hw);
    v8d a8[BN_CB], b8[BN_CB];
    double s0[BN_CB];
    for (int64_t cb0 = c0; cb0 < c1; cb0 += cb) {
        const int64_t nb = c1 - cb0 < cb ? c1 - cb0 : cb;
        for (int64_t b = 0; b < nb; b++) { a8[b] = (v8d){ 0 }; b8[b] = (v8d){ 0 }; s0[b] = j->x[(cb0 + b) * hw]; }
        for (int64_t i = 0; i < j->n; i++) {
            const float *run = j->x + i * img + cb0 * hw, *next = i + 1 < j->n ? run + img : run;
            for (int64_t b = 0; b < nb; b++) {
                /* One pass for both moments, about a shift (the channel's first value) so that E[(x-s)^2] - E[x-s]^2
                 * does not cancel when the mean is large against the spread; in double, it stays within rounding of
                 * the two-pass Java reference. */
                const float *xp = run + b * hw;
                const v8d S0 = s0[b] - (v8d){ 0 };
                v8d a = a8[b], bb = b8[b];
                int64_t q = 0;
                for (; q + 8 <= hw; q += 8) {
                    if (pf && (q & 15) == 0) BN_PREFETCH(next + b * hw, q);
                    v8d d = wide8(ld8(xp + q)) - S0; a += d; bb += d * d;
                }
                for (; q < hw; q++) { double d = xp[q] - s0[b]; a[0] += d; bb[0] += d * d; }
                a8[b] = a; b8[b] = bb;
            }
        }
        for (int64_t b = 0; b < nb; b++) {
            const int64_t ch = cb0 + b;
            double s1 = fold8(a8[b]), mu = s0[b] + s1 / (double)m;
            double sq = fold8(b8[b]) - s1 * s1 / (double)m;
            if (sq < 0) sq = 0;
            double var = sq / (double)m, is = 1.0 / sqrt(var + j->eps);
            double gm = j->gamma ? j->gamma[ch] : 1.0, bt = j->beta ? j->beta[ch] : 0.0;
            /* scale and shift of the second pass, kept in the (now free) moment slots */
            a8[b][0] = gm * is; a8[b][1] = bt - mu * (gm * is);
            if (j->affine) { j->affine[2 * ch] = a8[b][0]; j->affine[2 * ch + 1] = a8[b][1]; }
            j->mean[ch] = (float)mu;
            j->invstd[ch] = (float)is;
            if (j->rmean) j->rmean[ch] = (float)((1 - j->momentum) * j->rmean[ch] + j->momentum * mu);
            if (j->rvar) {
                double unbiased = m > 1 ? sq / (double)(m - 1) : var;
                j->rvar[ch] = (float)((1 - j->momentum) * j->rvar[ch] + j->momentum * unbiased);
            }
        }
        for (int64_t i = 0; i < j->n; i++)
            for (int64_t b = 0; b < nb; b++) {
                const float *xp = j->x + i * img + (cb0 + b) * hw;
                float *yp = j->pool_w > 0 ? pbuf : j->y + i * img + (cb0 + b) * hw;
                const double scale = a8[b][0], shift = a8[b][1];
                if (j->add) {
                    /* fst_add_relu's float sum of the stored batch norm output and the shortcut, in the same pass */
                    const float *ap = j->add + i * img + (cb0 + b) * hw;
                    if (j->relu) for (int64_t q = 0; q < hw; q++) { float v = (float)(xp[q] * scale + shift) + ap[q]; yp[q] = keep_if(v, v > 0.0f || v != v); }
                    else for (int64_t q = 0; q < hw; q++) yp[q] = (float)(xp[q] * scale + shift) + ap[q];
                }
                else if (j->relu) for (int64_t q = 0; q < hw; q++) { float v = (float)(xp[q] * scale + shift); yp[q] = keep_if(v, v > 0.0f || v != v); }
                else for (int64_t q = 0; q < hw; q++) yp[q] = (float)(xp[q] * scale + shift);
                if (j->pool_w > 0) {   /* the plane, never stored, pooled as fst_maxpool2d pools it */
                    const int64_t o = (i * j->c + cb0 + b) * j->pool_ho * j->pool_wo;
                    fst_maxpool2x2_plane(pbuf, j->pool_w, j->pool_ho, j->pool_wo, j->pooled + o, j->pidx + o);
                }
            }
    }
}

/* A plane of the fused pool's buffer lives on the task's stack (nothing to allocate, so nothing can fail halfway through
 * the running statistics); planes are at most BN_POOL_MAX_HW floats (64 KB), checked by the entry points. */
#define BN_POOL_MAX_HW 16384
static void bn_fwd_task(void *p, int64_t c0, int64_t c1) { bn_fwd_range(p, c0, c1, NULL); }
static void bn_fwd_pool_task(void *p, int64_t c0, int64_t c1) { float buf[BN_POOL_MAX_HW]; bn_fwd_range(p, c0, c1, buf); }

/* n * c * hw elements addressable (the products below cannot wrap) */
static int bn_size_ok(int64_t n, int64_t c, int64_t hw) {
    int64_t t;
    return !__builtin_mul_overflow(n, c, &t) && !__builtin_mul_overflow(t, hw, &t) && t <= INT64_MAX / 8;
}

int fst_bn_train(const float *x, const float *gamma, const float *beta, float *rmean, float *rvar,
                 int64_t n, int64_t c, int64_t hw, double momentum, double eps,
                 const float *add, float *y, float *mean, float *invstd, double *affine, int relu, int nthreads) {
    if (n <= 0 || c <= 0 || hw <= 0 || nthreads < 1 || !(eps >= 0) || !bn_size_ok(n, c, hw)) return FST_EINVAL;
    if (!x || !y || !mean || !invstd) return FST_ENULL;
    if (add && affine) return FST_EINVAL;   /* the output is no longer x's alone: its mask cannot be recomputed from x */
    bn_job j = { .x = x, .gamma = gamma, .beta = beta, .y = y, .mean = mean, .invstd = invstd, .rmean = rmean,
                 .rvar = rvar, .affine = affine, .add = add, .n = n, .c = c, .hw = hw, .momentum = momentum, .eps = eps,
                 .relu = relu != 0 };
    fst_parallel(c, n * c * hw < 32768 ? 1 : 4 * (int64_t)nthreads, nthreads, bn_fwd_task, &j);
    return FST_OK;
}

/* Plane (i, ch) of the fused max pool's input gradient into buf by fst_maxpool2d_backward's own plane code (so the same
 * bits); an index outside the plane is reported (bad) and skipped. */
static const float *expand_pooled(const bn_job *j, float *buf, int64_t i, int64_t ch) {
    const int64_t out = j->pool_ho * j->pool_wo, o = (i * j->c + ch) * out;
    if (fst_maxpool_bwd_plane(j->dyp + o, j->pidx_in + o, j->hw, out, buf)) __atomic_store_n(&((bn_job *)j)->bad, 1, __ATOMIC_RELAXED);
    return buf;
}

FST_CLONES
static void bn_bwd_range(void *p, int64_t c0, int64_t c1, float *pbuf) {
    const bn_job *j = p;
    const double m = (double)(j->n * j->hw);
    const int64_t hw = j->hw, img = j->c * hw, cb = bn_block(j->n, hw);
    const int pf = bn_prefetches(cb, hw);
    const float *rp0 = j->relu_out;
    const double *af = j->relu_affine;   /* the mask recomputed from x (read anyway): one tensor fewer to read, twice */
    v8d a8[BN_CB], b8[BN_CB];
    for (int64_t cb0 = c0; cb0 < c1; cb0 += cb) {   /* channel blocks as in bn_fwd_task: the same bits, runs of ~4 KB */
        const int64_t nb = c1 - cb0 < cb ? c1 - cb0 : cb;
        for (int64_t b = 0; b < nb; b++) { a8[b] = (v8d){ 0 }; b8[b] = (v8d){ 0 }; }
        for (int64_t i = 0; i < j->n; i++) {
            const int64_t o = i * img + cb0 * hw, on = i + 1 < j->n ? o + img : o;
            for (int64_t b = 0; b < nb; b++) {
                const float *xp = j->x + o + b * hw, *gp = pbuf ? expand_pooled(j, pbuf, i, cb0 + b) : j->dy + o + b * hw;
                const float *rp = rp0 ? rp0 + o + b * hw : NULL;
                float *mp = j->dmask ? j->dmask + o + b * hw : NULL;
                const double mu = j->mean_in[cb0 + b];
                const double sc = af ? af[2 * (cb0 + b)] : 0, sh = af ? af[2 * (cb0 + b) + 1] : 0;
                const v8d MU = mu - (v8d){ 0 }, SC = sc - (v8d){ 0 }, SH = sh - (v8d){ 0 };
                v8d a = a8[b], bb = b8[b];
                int64_t q = 0;
                for (; q + 8 <= hw; q += 8) {
                    if (pf && (q & 15) == 0) {
                        BN_PREFETCH(j->x + on + b * hw, q);
                        if (!pbuf) BN_PREFETCH(j->dy + on + b * hw, q);
                        if (rp) BN_PREFETCH(rp0 + on + b * hw, q);
                    }
                    const v8d xd = wide8(ld8(xp + q));
                    const v8f gf = rp ? mask8(ld8(gp + q), ld8(rp + q))
                                      : af ? mask8(ld8(gp + q), __builtin_convertvector(xd * SC + SH, v8f)) : ld8(gp + q);
                    if (mp) memcpy(mp + q, &gf, sizeof gf);
                    const v8d g = wide8(gf);
                    a += g;
                    bb += g * (xd - MU);
                }
                for (; q < hw; q++) {
                    const float gf = rp ? keep_if(gp[q], rp[q] > 0.0f) : af ? keep_if(gp[q], (float)(xp[q] * sc + sh) > 0.0f) : gp[q];
                    if (mp) mp[q] = gf;
                    double g = gf;
                    a[0] += g;
                    bb[0] += g * (xp[q] - mu);
                }
                a8[b] = a; b8[b] = bb;
            }
        }
        for (int64_t b = 0; b < nb; b++) {
            const int64_t ch = cb0 + b;
            const double is = j->invstd_in[ch], gm = j->gamma ? j->gamma[ch] : 1.0;
            const double sdy = fold8(a8[b]), sdyx = fold8(b8[b]) * is;
            j->dgamma[ch] = (float)sdyx;
            j->dbeta[ch] = (float)sdy;
            a8[b][0] = sdy; a8[b][1] = sdyx; a8[b][2] = gm * is / m;   /* for the second pass */
        }
        for (int64_t i = 0; i < j->n; i++)
            for (int64_t b = 0; b < nb; b++) {
                const int64_t o = i * img + (cb0 + b) * hw;
                const float *xp = j->x + o, *gp = pbuf ? expand_pooled(j, pbuf, i, cb0 + b) : j->dy + o;
                float *dp = j->dx + o;
                const float *rp = rp0 ? rp0 + o : NULL;
                const double mu = j->mean_in[cb0 + b], is = j->invstd_in[cb0 + b];
                const double sc = af ? af[2 * (cb0 + b)] : 0, sh = af ? af[2 * (cb0 + b) + 1] : 0;
                const double sdy = a8[b][0], sdyx = a8[b][1], k = a8[b][2];
                const v8d MU = mu - (v8d){ 0 }, IS = is - (v8d){ 0 }, K8 = k - (v8d){ 0 }, M8 = m - (v8d){ 0 };
                const v8d SDY = sdy - (v8d){ 0 }, SDYX = sdyx - (v8d){ 0 }, SC = sc - (v8d){ 0 }, SH = sh - (v8d){ 0 };
                int64_t q = 0;
                for (; q + 8 <= hw; q += 8) {
                    const v8d xd = wide8(ld8(xp + q));
                    v8d xh = (xd - MU) * IS;
                    v8d g = wide8(rp ? mask8(ld8(gp + q), ld8(rp + q))
                                     : af ? mask8(ld8(gp + q), __builtin_convertvector(xd * SC + SH, v8f)) : ld8(gp + q));
                    v8f r = __builtin_convertvector(K8 * (M8 * g - SDY - xh * SDYX), v8f);
                    memcpy(dp + q, &r, sizeof r);
                }
                for (; q < hw; q++) {
                    double xh = (xp[q] - mu) * is;
                    double g = rp ? keep_if(gp[q], rp[q] > 0.0f) : af ? keep_if(gp[q], (float)(xp[q] * sc + sh) > 0.0f) : gp[q];
                    dp[q] = (float)(k * (m * g - sdy - xh * sdyx));
                }
            }
    }
}

static void bn_bwd_task(void *p, int64_t c0, int64_t c1) { bn_bwd_range(p, c0, c1, NULL); }
static void bn_bwd_pool_task(void *p, int64_t c0, int64_t c1) { float buf[BN_POOL_MAX_HW]; bn_bwd_range(p, c0, c1, buf); }

int fst_bn_backward(const float *dy, const float *x, const float *gamma, const float *mean, const float *invstd,
                    const float *relu_out, const double *relu_affine, int64_t n, int64_t c, int64_t hw, float *dx,
                    float *dgamma, float *dbeta, float *dmask, int nthreads) {
    if (n <= 0 || c <= 0 || hw <= 0 || nthreads < 1 || !bn_size_ok(n, c, hw)) return FST_EINVAL;
    if (relu_out && relu_affine) return FST_EINVAL;   /* one mask or none */
    /* dmask is written in the first pass over what the second reads again: it may be dy (masked twice, the same values)
     * but must not overlap x, the mask's source or dx (which the second pass writes: the caller would get dx back) */
    const int64_t bytes = 4 * n * c * hw;
    if (dmask && (fst_overlap(dmask, bytes, x, bytes) || fst_overlap(dmask, bytes, relu_out, bytes) || fst_overlap(dmask, bytes, dx, bytes)
                  || (fst_overlap(dmask, bytes, dy, bytes) && (const float *)dmask != dy))) return FST_EINVAL;
    if (!dy || !x || !mean || !invstd || !dx || !dgamma || !dbeta) return FST_ENULL;
    bn_job j = { .x = x, .dy = dy, .gamma = gamma, .mean_in = mean, .invstd_in = invstd, .dx = dx, .dgamma = dgamma,
                 .dbeta = dbeta, .dmask = dmask, .n = n, .c = c, .hw = hw, .relu_out = relu_out, .relu_affine = relu_affine };
    fst_parallel(c, n * c * hw < 32768 ? 1 : 4 * (int64_t)nthreads, nthreads, bn_bwd_task, &j);
    return FST_OK;
}

int fst_bn_relu_maxpool2_train(const float *x, const float *gamma, const float *beta, float *rmean, float *rvar,
                               int64_t n, int64_t c, int64_t h, int64_t w, double momentum, double eps, float *pooled,
                               int32_t *idx, float *mean, float *invstd, double *affine, int nthreads) {
    if (n <= 0 || c <= 0 || h < 2 || w < 2 || h > BN_POOL_MAX_HW || w > BN_POOL_MAX_HW || h * w > BN_POOL_MAX_HW || nthreads < 1
        || !(eps >= 0) || !bn_size_ok(n, c, h * w)) return FST_EINVAL;
    if (!x || !pooled || !idx || !mean || !invstd || !affine) return FST_ENULL;
    const int64_t hw = h * w;
    bn_job j = { .x = x, .gamma = gamma, .beta = beta, .mean = mean, .invstd = invstd, .rmean = rmean, .rvar = rvar,
                 .affine = affine, .n = n, .c = c, .hw = hw, .momentum = momentum, .eps = eps, .relu = 1,
                 .pool_w = w, .pool_ho = h / 2, .pool_wo = w / 2, .pooled = pooled, .pidx = idx };
    fst_parallel(c, n * c * hw < 32768 ? 1 : 4 * (int64_t)nthreads, nthreads, bn_fwd_pool_task, &j);
    return FST_OK;
}

int fst_bn_relu_maxpool2_backward(const float *dyp, const int32_t *idx, const float *x, const float *gamma, const float *mean,
                                  const float *invstd, const double *affine, int64_t n, int64_t c, int64_t h, int64_t w,
                                  float *dx, float *dgamma, float *dbeta, int nthreads) {
    if (n <= 0 || c <= 0 || h < 2 || w < 2 || h > BN_POOL_MAX_HW || w > BN_POOL_MAX_HW || h * w > BN_POOL_MAX_HW || nthreads < 1
        || !bn_size_ok(n, c, h * w)) return FST_EINVAL;
    if (!dyp || !idx || !x || !mean || !invstd || !affine || !dx || !dgamma || !dbeta) return FST_ENULL;
    bn_job j = { .x = x, .gamma = gamma, .mean_in = mean, .invstd_in = invstd, .dx = dx, .dgamma = dgamma, .dbeta = dbeta,
                 .n = n, .c = c, .hw = h * w, .relu_affine = affine, .pool_w = w, .pool_ho = h / 2, .pool_wo = w / 2,
                 .dyp = dyp, .pidx_in = idx };
    fst_parallel(c, n * c * h * w < 32768 ? 1 : 4 * (int64_t)nthreads, nthreads, bn_bwd_pool_task, &j);
    return j.bad ? FST_EINDEX : FST_OK;
}
