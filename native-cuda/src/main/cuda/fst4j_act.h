/* The activations of fst4j.tensor.Activation, one element at a time: fst_act_fwd(op, x, s0, s1) is an op's forward,
 * fst_act_bwd(op, a, b, s0, s1) its backward (a = the incoming gradient g, b = the forward's input x, unless the op says
 * otherwise; fst4j_kargs.h lists the ops and their parameters). Each is Activation's Java formula, operation for
 * operation, in double; the caller rounds the result once to float. The formulas are torch 1.13's (so are their NaN and
 * infinities: gelu(-inf) is NaN as -inf * 0 is). erfc, exp, log1p, expm1 and tanh are the C library's (CUDA's on the
 * device) where Java has its own: the results may differ in the last bit of a double, which rounding to float almost
 * always hides.
 *
 * Plain C99 that C++ and nvcc also compile, so that one text serves three builds: the CUDA kernels k_act / k_act_bwd
 * (fst4j_bodies.cuh: the device and the host emulator) and the C shim's loops over contiguous float32 (act.c). */
#ifndef FST4J_ACT_H
#define FST4J_ACT_H
#include "fst4j_kargs.h"
#include <math.h>

#ifdef __CUDACC__
#define FST_ACT_FN __host__ __device__ __forceinline__
#else
#define FST_ACT_FN static inline
#endif

#define FST_SQRT1_2 0.7071067811865476       /* Math.sqrt(0.5) */
#define FST_INV_SQRT_2PI 0.3989422804014327  /* 1 / sqrt(2 pi): the normal density at 0 */
#define FST_GELU_BETA 0.7978845608028654     /* sqrt(2 / pi), torch's kBeta */
#define FST_GELU_KAPPA 0.044715

FST_ACT_FN double fst_act_fwd(int op, double x, double s0, double s1) {
    switch (op) {
        case FST_ACT_GELU: return x * 0.5 * erfc(-x * FST_SQRT1_2);
        case FST_ACT_GELU_TANH: {
            const double cube = x * x * x, inner = FST_GELU_BETA * (x + FST_GELU_KAPPA * cube);
            return 0.5 * x * (1 + tanh(inner));
        }
        case FST_ACT_SILU: return x / (1 + exp(-x));
        case FST_ACT_MISH: return x * tanh(log1p(exp(x)));
        case FST_ACT_LEAKY_RELU: return x > 0 ? x : x * s0;
        case FST_ACT_ELU: return x <= 0 ? expm1(x) * s0 : x;
        case FST_ACT_SOFTPLUS: return x * s0 > s1 ? x : log1p(exp(x * s0)) / s0;
        default: { const double t = x < s0 ? s0 : x; return t > s1 ? s1 : t; }   /* FST_ACT_CLAMP: a tie (and NaN) keeps x, as torch's */
    }
}

FST_ACT_FN double fst_act_bwd(int op, double g, double x, double s0, double s1) {
    switch (op) {
        case FST_ACTB_GELU: {
            const double cdf = 0.5 * erfc(-x * FST_SQRT1_2), pdf = FST_INV_SQRT_2PI * exp(-0.5 * x * x);
            return g * (cdf + x * pdf);
        }
        case FST_ACTB_GELU_TANH: {
            const double sq = x * x, cube = sq * x, inner = FST_GELU_BETA * (x + FST_GELU_KAPPA * cube), t = tanh(inner);
            const double left = 0.5 * x, right = 1 + t, dleft = 0.5 * right, dtanh = 1 - t * t;
            const double dinner = FST_GELU_BETA * (1 + 3 * FST_GELU_KAPPA * sq), dright = left * dtanh * dinner;
            return g * (dleft + dright);
        }
        case FST_ACTB_SILU: { const double s = 1 / (1 + exp(-x)); return g * s * (1 + x * (1 - s)); }
        case FST_ACTB_MISH: { const double s = 1 / (1 + exp(-x)), t = tanh(log1p(exp(x))); return g * (t + x * s * (1 - t * t)); }
        case FST_ACTB_LEAKY_RELU: return x > 0 ? g : g * s0;
        case FST_ACTB_ELU: return x <= 0 ? g * s0 * exp(x) : g;
        case FST_ACTB_SOFTPLUS: { const double z = exp(x * s0); return x * s0 > s1 ? g : g * z / (z + 1); }
        case FST_ACTB_HARDTANH: return x <= s0 || x >= s1 ? 0.0 : g;
        case FST_ACTB_CLAMP: return x >= s0 && x <= s1 ? g : 0.0;
        case FST_ACTB_ABS: return g * (x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0);
        case FST_ACTB_MAX_SHARE: return g == x ? 0.5 : g < x ? 0.0 : 1.0;   /* a and b are the two inputs here */
        case FST_ACTB_MIN_SHARE: return g == x ? 0.5 : g > x ? 0.0 : 1.0;
        default: return x == 0 ? 0.0 : g * x;   /* FST_ACTB_MUL_SHARE: b is the share */
    }
}
#endif
