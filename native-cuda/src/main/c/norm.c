/* Batch norm over (N, H, W) per channel for contiguous float32 NCHW (fst4j.tensor.Norm's float32 path).
 * Sums are accumulated in double, as in the Java reference; one pool task per range of channels. */
#include "fst4j.h"
#include "parallel.h"
#include <math.h>
#include <stddef.h>
#include <string.h>

/* Sums over a plane with 8 independent double accumulators: one accumulator would make every add wait for the
 * previous one (a ~4-cycle chain per element); eight break the chain and let gcc pair them into vector adds.
 * Still double precision, so the result stays within rounding of the Java reference's sequential sums. */
#define ACC8(n, body)                                                                    \
    do {                                                                                 \
        int64_t q_ = 0;                                                                  \
        for (; q_ + 8 <= (n); q_ += 8)                                                   \
            for (int k_ = 0; k_ < 8; k_++) { const int64_t q = q_ + k_; double *acc = a8 + k_; body; } \
        for (; q_ < (n); q_++) { const int64_t q = q_; double *acc = a8; body; }        \
    } while (0)

/* v where cond, else +0.0f, without a branch: a ReLU mask is random, and a branch on it mispredicts on every other
 * element (gcc keeps these scalar double loops branchy); the bit mask also turns a masked NaN into 0, like ReLU. */
static inline float keep_if(float v, int cond) {
    uint32_t u;
    memcpy(&u, &v, 4);
    u &= -(uint32_t)(cond != 0);
    memcpy(&v, &u, 4);
    return v;
}

static inline double fold8(const double *a) { return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])); }

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
        double a8[8] = { 0 }, b8[8] = { 0 };
        const double s0 = j->x[ch * j->hw];
        for (int64_t i = 0; i < j->n; i++) {
            const float *xp = j->x + (i * j->c + ch) * j->hw;
            ACC8(j->hw, { double d = xp[q] - s0; *acc += d; b8[acc - a8] += d * d; });
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
        double a8[8] = { 0 }, b8[8] = { 0 };
        const float *rp0 = j->relu_out;
        for (int64_t i = 0; i < j->n; i++) {
            const float *xp = j->x + (i * j->c + ch) * j->hw, *gp = j->dy + (i * j->c + ch) * j->hw;
            if (rp0) {
                const float *rp = rp0 + (i * j->c + ch) * j->hw;
                ACC8(j->hw, { double g = keep_if(gp[q], rp[q] > 0.0f); *acc += g; b8[acc - a8] += g * (xp[q] - mu); });
            } else {
                ACC8(j->hw, { double g = gp[q]; *acc += g; b8[acc - a8] += g * (xp[q] - mu); });
            }
        }
        double sdy = fold8(a8), sdyx = fold8(b8) * is;
        double k = gm * is / m;
        for (int64_t i = 0; i < j->n; i++) {
            const float *xp = j->x + (i * j->c + ch) * j->hw, *gp = j->dy + (i * j->c + ch) * j->hw;
            float *dp = j->dx + (i * j->c + ch) * j->hw;
            const float *rp = rp0 ? rp0 + (i * j->c + ch) * j->hw : NULL;
            for (int64_t q = 0; q < j->hw; q++) {
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
