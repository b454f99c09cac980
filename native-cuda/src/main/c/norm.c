/* Batch norm over (N, H, W) per channel for contiguous float32 NCHW (fst4j.tensor.Norm's float32 path).
 * Sums are accumulated in double, as in the Java reference; one pool task per range of channels. */
#include "fst4j.h"
#include "parallel.h"
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
 * element (gcc keeps these scalar double loops branchy); the bit mask also turns a masked NaN into 0, like ReLU. */
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
    int relu;                /* forward: y = max(BN(x), 0) in the same pass */
    int64_t n, c, hw;
    double momentum, eps;
} bn_job;

FST_CLONES
static void bn_fwd_task(void *p, int64_t c0, int64_t c1) {
    const bn_job *j = p;
    const int64_t m = j->n * j->hw;
    for (int64_t ch = c0; ch < c1; ch++) {
        /* One pass for both moments, about a shift (the channel's first value) so that E[(x-s)^2] - E[x-s]^2
         * does not cancel when the mean is large against the spread; in double, it stays within rounding of
         * the two-pass Java reference. */
        v8d a8 = { 0 }, b8 = { 0 };
        const double s0 = j->x[ch * j->hw];
        const v8d S0 = s0 - (v8d){ 0 };
        for (int64_t i = 0; i < j->n; i++) {
            const float *xp = j->x + (i * j->c + ch) * j->hw;
            int64_t q = 0;
            for (; q + 8 <= j->hw; q += 8) { v8d d = wide8(ld8(xp + q)) - S0; a8 += d; b8 += d * d; }
            for (; q < j->hw; q++) { double d = xp[q] - s0; a8[0] += d; b8[0] += d * d; }
        }
        double s1 = fold8(a8), mu = s0 + s1 / (double)m;
        double sq = fold8(b8) - s1 * s1 / (double)m;
        if (sq < 0) sq = 0;
        double var = sq / (double)m, is = 1.0 / sqrt(var + j->eps);
        double gm = j->gamma ? j->gamma[ch] : 1.0, bt = j->beta ? j->beta[ch] : 0.0;
        double scale = gm * is, shift = bt - mu * scale;
        for (int64_t i = 0; i < j->n; i++) {
            const float *xp = j->x + (i * j->c + ch) * j->hw;
            float *yp = j->y + (i * j->c + ch) * j->hw;
            if (j->relu) for (int64_t q = 0; q < j->hw; q++) { float v = (float)(xp[q] * scale + shift); yp[q] = keep_if(v, v > 0.0f); }
            else for (int64_t q = 0; q < j->hw; q++) yp[q] = (float)(xp[q] * scale + shift);
        }
        j->mean[ch] = (float)mu;
        j->invstd[ch] = (float)is;
        if (j->rmean) j->rmean[ch] = (float)((1 - j->momentum) * j->rmean[ch] + j->momentum * mu);
        if (j->rvar) {
            double unbiased = m > 1 ? sq / (double)(m - 1) : var;
            j->rvar[ch] = (float)((1 - j->momentum) * j->rvar[ch] + j->momentum * unbiased);
        }
    }
}

int fst_bn_train(const float *x, const float *gamma, const float *beta, float *rmean, float *rvar,
                 int64_t n, int64_t c, int64_t hw, double momentum, double eps,
                 float *y, float *mean, float *invstd, int relu, int nthreads) {
    if (n <= 0 || c <= 0 || hw <= 0 || nthreads < 1 || !(eps >= 0)) return FST_EINVAL;
    if (!x || !y || !mean || !invstd) return FST_ENULL;
    bn_job j = { .x = x, .gamma = gamma, .beta = beta, .y = y, .mean = mean, .invstd = invstd, .rmean = rmean,
                 .rvar = rvar, .n = n, .c = c, .hw = hw, .momentum = momentum, .eps = eps, .relu = relu != 0 };
    fst_parallel(c, n * c * hw < 32768 ? 1 : 4 * (int64_t)nthreads, nthreads, bn_fwd_task, &j);
    return FST_OK;
}

FST_CLONES
static void bn_bwd_task(void *p, int64_t c0, int64_t c1) {
    const bn_job *j = p;
    const double m = (double)(j->n * j->hw);
    for (int64_t ch = c0; ch < c1; ch++) {
        double mu = j->mean_in[ch], is = j->invstd_in[ch], gm = j->gamma ? j->gamma[ch] : 1.0;
        v8d a8 = { 0 }, b8 = { 0 };
        const v8d MU = mu - (v8d){ 0 };
        const float *rp0 = j->relu_out;
        for (int64_t i = 0; i < j->n; i++) {
            const float *xp = j->x + (i * j->c + ch) * j->hw, *gp = j->dy + (i * j->c + ch) * j->hw;
            const float *rp = rp0 ? rp0 + (i * j->c + ch) * j->hw : NULL;
            int64_t q = 0;
            for (; q + 8 <= j->hw; q += 8) {
                v8d g = wide8(rp ? mask8(ld8(gp + q), ld8(rp + q)) : ld8(gp + q));
                a8 += g;
                b8 += g * (wide8(ld8(xp + q)) - MU);
            }
            for (; q < j->hw; q++) {
                double g = rp ? keep_if(gp[q], rp[q] > 0.0f) : gp[q];
                a8[0] += g;
                b8[0] += g * (xp[q] - mu);
            }
        }
        double sdy = fold8(a8), sdyx = fold8(b8) * is;
        double k = gm * is / m;
        const v8d IS = is - (v8d){ 0 }, K8 = k - (v8d){ 0 }, M8 = m - (v8d){ 0 }, SDY = sdy - (v8d){ 0 }, SDYX = sdyx - (v8d){ 0 };
        for (int64_t i = 0; i < j->n; i++) {
            const float *xp = j->x + (i * j->c + ch) * j->hw, *gp = j->dy + (i * j->c + ch) * j->hw;
            float *dp = j->dx + (i * j->c + ch) * j->hw;
            const float *rp = rp0 ? rp0 + (i * j->c + ch) * j->hw : NULL;
            int64_t q = 0;
            for (; q + 8 <= j->hw; q += 8) {
                v8d xh = (wide8(ld8(xp + q)) - MU) * IS;
                v8d g = wide8(rp ? mask8(ld8(gp + q), ld8(rp + q)) : ld8(gp + q));
                v8f r = __builtin_convertvector(K8 * (M8 * g - SDY - xh * SDYX), v8f);
                memcpy(dp + q, &r, sizeof r);
            }
            for (; q < j->hw; q++) {
                double xh = (xp[q] - mu) * is;
                double g = rp ? keep_if(gp[q], rp[q] > 0.0f) : gp[q];
                dp[q] = (float)(k * (m * g - sdy - xh * sdyx));
            }
        }
        j->dgamma[ch] = (float)sdyx;
        j->dbeta[ch] = (float)sdy;
    }
}

int fst_bn_backward(const float *dy, const float *x, const float *gamma, const float *mean, const float *invstd,
                    const float *relu_out, int64_t n, int64_t c, int64_t hw, float *dx, float *dgamma, float *dbeta, int nthreads) {
    if (n <= 0 || c <= 0 || hw <= 0 || nthreads < 1) return FST_EINVAL;
    if (!dy || !x || !mean || !invstd || !dx || !dgamma || !dbeta) return FST_ENULL;
    bn_job j = { .x = x, .dy = dy, .gamma = gamma, .mean_in = mean, .invstd_in = invstd, .dx = dx, .dgamma = dgamma,
                 .dbeta = dbeta, .n = n, .c = c, .hw = hw, .relu_out = relu_out };
    fst_parallel(c, n * c * hw < 32768 ? 1 : 4 * (int64_t)nthreads, nthreads, bn_bwd_task, &j);
    return FST_OK;
}
