/* The activations of fst4j.tensor.Activation on contiguous float32 tensors of one shape (forward and backward): each
 * element by fst4j_act.h's formula, the text the CUDA kernels k_act / k_act_bwd run, in double and rounded once to float,
 * as the Java loops compute (those use Java's erfc series and java.lang.Math where this uses libm: a float result may
 * differ in its last bit, rarely). One loop per op, so that the op's switch folds away and the loop is one formula. */
#include "fst4j.h"
#include "parallel.h"
#include "../cuda/fst4j_act.h"

typedef struct { const float *a, *b; float *y; double s0, s1; int op; } act_job;

#define FWD_LOOP(OP) for (int64_t i = i0; i < i1; i++) y[i] = (float)fst_act_fwd(OP, a[i], s0, s1)
#define BWD_LOOP(OP) for (int64_t i = i0; i < i1; i++) y[i] = (float)fst_act_bwd(OP, a[i], b[i], s0, s1)

static void fwd_task(void *p, int64_t i0, int64_t i1) {
    const act_job *j = p;
    const float *a = j->a;
    float *y = j->y;
    const double s0 = j->s0, s1 = j->s1;
    switch (j->op) {
        case FST_ACT_GELU: FWD_LOOP(FST_ACT_GELU); break;
        case FST_ACT_GELU_TANH: FWD_LOOP(FST_ACT_GELU_TANH); break;
        case FST_ACT_SILU: FWD_LOOP(FST_ACT_SILU); break;
        case FST_ACT_MISH: FWD_LOOP(FST_ACT_MISH); break;
        case FST_ACT_LEAKY_RELU: FWD_LOOP(FST_ACT_LEAKY_RELU); break;
        case FST_ACT_ELU: FWD_LOOP(FST_ACT_ELU); break;
        case FST_ACT_SOFTPLUS: FWD_LOOP(FST_ACT_SOFTPLUS); break;
        default: FWD_LOOP(FST_ACT_CLAMP); break;
    }
}

static void bwd_task(void *p, int64_t i0, int64_t i1) {
    const act_job *j = p;
    const float *a = j->a, *b = j->b;
    float *y = j->y;
    const double s0 = j->s0, s1 = j->s1;
    switch (j->op) {
        case FST_ACTB_GELU: BWD_LOOP(FST_ACTB_GELU); break;
        case FST_ACTB_GELU_TANH: BWD_LOOP(FST_ACTB_GELU_TANH); break;
        case FST_ACTB_SILU: BWD_LOOP(FST_ACTB_SILU); break;
        case FST_ACTB_MISH: BWD_LOOP(FST_ACTB_MISH); break;
        case FST_ACTB_LEAKY_RELU: BWD_LOOP(FST_ACTB_LEAKY_RELU); break;
        case FST_ACTB_ELU: BWD_LOOP(FST_ACTB_ELU); break;
        case FST_ACTB_SOFTPLUS: BWD_LOOP(FST_ACTB_SOFTPLUS); break;
        case FST_ACTB_HARDTANH: BWD_LOOP(FST_ACTB_HARDTANH); break;
        case FST_ACTB_CLAMP: BWD_LOOP(FST_ACTB_CLAMP); break;
        case FST_ACTB_ABS: BWD_LOOP(FST_ACTB_ABS); break;
        case FST_ACTB_MAX_SHARE: BWD_LOOP(FST_ACTB_MAX_SHARE); break;
        case FST_ACTB_MIN_SHARE: BWD_LOOP(FST_ACTB_MIN_SHARE); break;
        default: BWD_LOOP(FST_ACTB_MUL_SHARE); break;
    }
}

/* The ops with a libm call cost some 10-50 ns an element, the others about 1: threads pay off from a few thousand of
 * the former and some tens of thousands of the latter (a pool hand-off costs microseconds). */
static int64_t act_chunks(int64_t n, int costly, int nthreads) {
    return nthreads <= 1 || n < (costly ? 4096 : 32768) ? 1 : 4 * (int64_t)nthreads;
}

/* Activation refuses the same before calling (and fst_cuda_act's act_params): parameters an op reads must be usable. */
static int act_params(int fwd, int op, double s0, double s1) {
    const int leaky = fwd ? op == FST_ACT_LEAKY_RELU : op == FST_ACTB_LEAKY_RELU, elu = fwd ? op == FST_ACT_ELU : op == FST_ACTB_ELU;
    const int softplus = fwd ? op == FST_ACT_SOFTPLUS : op == FST_ACTB_SOFTPLUS;
    const int bounds = fwd ? op == FST_ACT_CLAMP : op == FST_ACTB_CLAMP || op == FST_ACTB_HARDTANH;
    if ((leaky || elu) && !isfinite(s0)) return FST_EINVAL;                       /* slope / alpha */
    if (softplus && (!isfinite(s0) || s0 == 0 || isnan(s1))) return FST_EINVAL;   /* beta, threshold */
    if (bounds && (isnan(s0) || isnan(s1))) return FST_EINVAL;                    /* min, max */
    if (!fwd && op == FST_ACTB_HARDTANH && s0 > s1) return FST_EINVAL;
    return FST_OK;
}

/* y may be x itself (each element is read before it is written) but not overlap it otherwise */
static int shifted(const float *y, const float *x, int64_t n) { return y != x && y < x + n && x < y + n; }

int fst_act_f32(int op, double s0, double s1, const float *x, float *y, int64_t n, int nthreads) {
    if (op < 0 || op >= FST_ACT_N || n < 0 || nthreads < 1) return FST_EINVAL;
    int rc = act_params(1, op, s0, s1);
    if (rc) return rc;
    if (n == 0) return FST_OK;
    if (!x || !y) return FST_ENULL;
    if (shifted(y, x, n)) return FST_EINVAL;
    act_job j = { .a = x, .y = y, .s0 = s0, .s1 = s1, .op = op };
    fst_parallel(n, act_chunks(n, op <= FST_ACT_MISH || op == FST_ACT_ELU || op == FST_ACT_SOFTPLUS, nthreads), nthreads, fwd_task, &j);
    return FST_OK;
}

int fst_act_bwd_f32(int op, double s0, double s1, const float *a, const float *b, float *out, int64_t n, int nthreads) {
    if (op < 0 || op >= FST_ACTB_N || n < 0 || nthreads < 1) return FST_EINVAL;
    int rc = act_params(0, op, s0, s1);
    if (rc) return rc;
    if (n == 0) return FST_OK;
    if (!a || !b || !out) return FST_ENULL;
    if (shifted(out, a, n) || shifted(out, b, n)) return FST_EINVAL;
    act_job j = { .a = a, .b = b, .y = out, .s0 = s0, .s1 = s1, .op = op };
    fst_parallel(n, act_chunks(n, op <= FST_ACTB_MISH || op == FST_ACTB_ELU || op == FST_ACTB_SOFTPLUS, nthreads), nthreads, bwd_task, &j);
    return FST_OK;
}
