/* fst4j CUDA kernels: the argument struct of every kernel and the list of kernels. Plain C, included by three
 * translation units that must agree byte for byte:
 *   - fst4j_kernels.cu (nvcc, device): each kernel takes its struct by value;
 *   - src/main/c/cuda_ops.c (gcc): validates a call, fills the struct, launches (cuLaunchKernel or the emulator);
 *   - src/main/c/cuda_emu.cc (g++, host): runs the same kernel bodies over the whole grid on the CPU.
 * One struct per kernel (instead of long parameter lists) means the launch packs one pointer, and the device
 * kernel, the host emulation and the launcher cannot disagree on the order or types of the arguments.
 * Every index and size is int64; strides and offsets are in elements. */
#ifndef FST4J_KARGS_H
#define FST4J_KARGS_H
#include <stdint.h>

#define FST_MAXRANK 8      /* broadcasting / strided kernels: tensors of rank <= 8 */
#define FST_BLOCK 256      /* threads per block of every launch (device and emulation) */
/* Long reductions run in two launches: FST_PARTS threads per output, thread p summing (in double) elements p,
 * p + FST_PARTS, p + 2 FST_PARTS, ... (consecutive threads read consecutive addresses), then one thread per output
 * adding the FST_PARTS partial sums in order p = 0, 1, ... The result is deterministic (fixed split and order) and,
 * when there are at most FST_PARTS elements, the CPU's serial sum bit for bit (each partial is 0 + one element). */
#define FST_PARTS 256

typedef struct { int64_t n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo; } fst_geom;

/* ---- sparsification and convolution lowering (prune.c, shift.c, conv.c twins) ---- */
typedef struct { int64_t rows, K; const float *w; int64_t ldw; float *values; uint32_t *meta;
                 float *dense; int64_t ldd; uint16_t *dense16; int64_t ldd16; } fst_k_prune_args;
typedef struct { const float *dy; float *out; int64_t nseg, seg; int shift; float coeff; int circular; uint16_t *out16; } fst_k_shift_gather_args;
/* ReSprop's reused gradient (prune.c fst_resprop): out = keep ? p + d : p with d = g - p[i % per], keep = !(|d| <= tf),
 * tf the largest float <= the threshold; the kept count in two deterministic integer passes: FST_PARTS^2 partial counts
 * (thread q counts elements q, q + FST_PARTS^2, ...) into work + FST_PARTS, then FST_PARTS sums of those into work[0..] */
typedef struct { const float *g, *p; float *out; int64_t total, per; float tf; int64_t *work; } fst_k_resprop_args;
typedef struct { const float *x; fst_geom g; float *out; int64_t ldo; } fst_k_im2col_args;
typedef struct { const float *cols; int64_t ldc; fst_geom g; float *dx; } fst_k_col2im_args;
typedef struct { const uint16_t *cols; int64_t ldc; fst_geom g; float *dx; } fst_k_col2im_bf16_args;
typedef struct { const float *x; fst_geom g; const int32_t *pos; int64_t npos; float *out; int64_t ldo; } fst_k_im2col_at_args;
/* dilated im2col / col2im (conv_general.c's twins): tap (i, j) of output (oh, ow) reads input (oh*sh - ph + i*dh,
 * ow*sw - pw + j*dw); g.ho, g.wo are the dilated geometry's sizes */
typedef struct { const float *x; fst_geom g; int64_t dh, dw; float *out; int64_t ldo; } fst_k_im2col_dil_args;
typedef struct { const float *cols; int64_t ldc; fst_geom g; int64_t dh, dw; float *dx; } fst_k_col2im_dil_args;
typedef struct { const float *src; uint16_t *dst; int64_t n; } fst_k_f2bf_args;
/* embedding (F.embedding, fst_cuda_embed_*): gather out [n, d] row i = w [v, d] row idx[i]; scatter dw [v, d] row r =
 * the sum, in double and in k order, of g [n, d] rows pos[k] for k in off[r]..off[r + 1) (the host's CSR of the indices,
 * positions ascending: the CPU's accumulation order, so bit for bit, and no atomics) */
typedef struct { const float *w; const int32_t *idx; float *out; int64_t v, n, d; } fst_k_embed_gather_args;
typedef struct { const float *g; const int32_t *off, *pos; float *dw; int64_t v, n, d; } fst_k_embed_scatter_args;
/* Lanes along one axis of a contiguous x seen as [outer, n, inner] (autograd's MathOps.Cumsum and Prod), one thread
 * per lane (o, j), its n elements in order, in double and rounded once, as the CPU loops: FST_LANE_CUMSUM out [outer, n,
 * inner] the running sum (FST_LANE_CUMSUM_REV from the lane's end: cumsum's backward); FST_LANE_PROD out [outer, inner]
 * the product; FST_LANE_PROD_BWD out [outer, n, inner] prod's gradient from g [outer, inner] (torch's rule: g prod / x
 * with no zero in the lane, g times the others' product at a lone zero and 0 elsewhere, all 0 with several zeros) */
enum { FST_LANE_CUMSUM, FST_LANE_CUMSUM_REV, FST_LANE_PROD, FST_LANE_PROD_BWD, FST_LANE_N };
typedef struct { const float *x, *g; float *out; int64_t outer, n, inner; int op; } fst_k_lanes_args;
/* Sorting along one axis (autograd's Sort: torch.sort / topk / kthvalue / median), x contiguous [outer, n, inner], one
 * line per (o, j), lines = outer * inner. Each element becomes a 64-bit pair (key << 32 | position) in keys [lines, P],
 * P = n rounded up to a power of two (padding: all ones, after every pair): the key orders floats as Sort.compare (every
 * NaN one key above +inf, -0 == 0), bit-inverted for descending, so that sorting the pairs ascending is the stable sort
 * (ties by position ascending, descending too). A bitonic network sorts them: k_sort_chunk (block kernel) over chunks of
 * FST_SORT_CHUNK pairs in shared memory (steps k = kmin .. kmax, strides below the chunk), k_sort_stage one global step
 * (k, j) per launch for strides of a chunk and more. k_sort_select then writes the sorted positions start .. start +
 * count - 1 of each line (median: the ascending ((n - 1) / 2)-th, or the first NaN of a line that holds one) into
 * values / indices (float32 positions) / src (int32 flat offsets into x, for the backward) [outer, count, inner].
 * k_sort_scatter: dx[src[i]] = g[i] for i < m (positions outside [0, numel) skipped; the caller zero-fills dx). */
#define FST_SORT_CHUNK 4096
#define FST_SORT_T 256
typedef struct { const float *x; uint64_t *keys; float *values, *indices; int32_t *src;
                 int64_t outer, n, inner, P, count, start, k, j, kmin, kmax, total; int descending, median; } fst_k_sort_args;
typedef struct { const float *g; const int32_t *src; float *dx; int64_t m, numel; } fst_k_sort_scatter_args;
/* dst bf16 [rows_p, cols_p] (contiguous) = src [rows, cols] (strides rs, cs, in elements) rounded, zero elsewhere */
typedef struct { const float *src; int64_t rows, cols, rs, cs; uint16_t *dst; int64_t rows_p, cols_p; } fst_k_bf16_pad_args;
/* dst bf16 [rows_p, cols_p] = im2col(x) [K, n*ho*wo] rounded, zero outside it (the lowered operand of a bf16 GEMM) */
typedef struct { const float *x; fst_geom g; uint16_t *dst; int64_t rows_p, cols_p; } fst_k_im2col_bf16_args;
#define FST_UNPAD_RUN 8   /* k_bf16_unpad: elements per thread (8 bf16 = one 16-byte load) */
/* dst float32 [rows, cols] contiguous = the top-left corner of src bf16 (row stride ld): a bf16 GEMM product read back */
typedef struct { const uint16_t *src; int64_t ld; float *dst; int64_t rows, cols; } fst_k_bf16_unpad_args;
/* dst [imgs, rows, plane] float32 = src bf16 [rows, ld] with column img * plane + p (a convolution's product, [Cout,
 * N*H*W], read back straight into NCHW) */
typedef struct { const uint16_t *src; int64_t ld; float *dst; int64_t rows, imgs, plane; } fst_k_bf16_unpad_nchw_args;
typedef struct { const float *src; float *dst; uint16_t *dst16; int64_t imgs, rows, plane; } fst_k_by_channel_args;
/* dst bf16 [cin, ldd] with dst[ci][(co*kh + r)*kw + s] = w[co][ci][kh-1-r][kw-1-s] rounded (w float32 [cout, cin, kh, kw]
 * contiguous): the transposed, tap-reversed weight with which Eq. 2 of a stride-1 convolution is itself a convolution of dY */
typedef struct { const float *w; int64_t cout, cin, kh, kw; uint16_t *dst; int64_t ldd; int cfast /* (tap, co) order */; } fst_k_wflip16_args;
/* dst bf16 [cout, ldd] with dst[co][(r*kw + s)*cin + ci] = w[co][ci][r][s] rounded: W with K ordered (kh, kw, c), the
 * implicit GEMM's channels-fastest operand (one tap per 16 of K where cin is a multiple of 16: a cheaper gather) */
typedef struct { const float *w; int64_t cout, cin, khw; uint16_t *dst; int64_t ldd; } fst_k_wtap16_args;
/* x float32 NCHW [n, c, h, w] -> out bf16 NHWC [n, h, w, c] (rounded to nearest even): the activation layout of the
 * warpgroup convolution (wgconv), whose K slices are one tap's run of channels */
typedef struct { const float *x; int64_t n, c, h, w; uint16_t *out; } fst_k_nhwc16_args;
/* The 2:4 operand of Eq. 2 of a stride-1 convolution as a convolution of dY (S(W^T), 2:4 along Cout, Cout a multiple of
 * 32): from fst_cuda_prune24_t's kept values vt [cin*kh*kw, cout/2] (float) and metadata mt [cin*kh*kw, cout/32] of W^T,
 * row ci of the tap-reversed weight with K ordered (tap, co): v [cin, kh*kw*cout/2] bf16 and m [cin, kh*kw*cout/32], tap
 * t' taking W^T's row (ci, kh*kw - 1 - t'). One thread per kept value, then one per metadata word. */
typedef struct { const float *vt; const uint32_t *mt; int64_t cin, cout, khw; uint16_t *v; uint32_t *m; } fst_k_conv24_t_args;

/* ---- elementwise (fst4j.tensor.Elementwise): out contiguous [shape], inputs any strides (0 = broadcast) ---- */
/* Every op is Elementwise's Java formula (its lambda) in double, rounded once to float; java.lang.Math's special cases
 * where C's differ (pow, max, min, signum). The ops after FST_BIN_ADD_RELU / FST_UN_FILL are the math, comparison and
 * loss ops (Elementwise, Loss, autograd's backward formulas). */
enum { FST_BIN_ADD, FST_BIN_SUB, FST_BIN_MUL, FST_BIN_DIV, FST_BIN_RELU_BWD /* a = dy, b = x: b > 0 ? a : 0 */,
       FST_BIN_ADD_RELU /* max(a + b, 0): a ResNet block's end in one pass */,
       FST_BIN_POW /* Math.pow(a, b) */, FST_BIN_MAX /* Math.max */, FST_BIN_MIN /* Math.min */,
       FST_BIN_GT, FST_BIN_GE, FST_BIN_LT, FST_BIN_LE, FST_BIN_EQ /* a op b ? 1 : 0 */,
       FST_BIN_SIGMOID_BWD /* a = g, b = y: g y (1 - y) */, FST_BIN_TANH_BWD /* a = g, b = y: g (1 - y y) */,
       FST_BIN_MASK /* b != 0 ? a : 0 */, FST_BIN_MASK_NOT /* b != 0 ? 0 : a */, FST_BIN_BCE_LIN /* a = x, b = y: (1 - y) x */,
       FST_BIN_SMOOTH_L1_BWD /* a = g, b = d, s = beta: g (|d| < beta ? d / beta : signum(d)) */,
       /* Var.sin / cos / log1p / expm1's backward (autograd's MathOps lambdas), a = g, b = x: g cos x, g (-sin x),
        * g (1 / (x + 1)), g exp x */
       FST_BIN_SIN_BWD, FST_BIN_COS_BWD, FST_BIN_LOG1P_BWD, FST_BIN_EXPM1_BWD, FST_BIN_N };
enum { FST_UN_COPY, FST_UN_RELU, FST_UN_NEG, FST_UN_ABS, FST_UN_ADD_SCALAR, FST_UN_MUL_SCALAR, FST_UN_FILL /* x unused */,
       FST_UN_EXP, FST_UN_LOG, FST_UN_SQRT, FST_UN_POW /* Math.pow(x, s) */, FST_UN_SIGMOID /* Elementwise.sigmoid's two branches */,
       FST_UN_TANH, FST_UN_RSUB_SCALAR /* s - x */, FST_UN_SOFTPLUS_NEG /* max(-x, 0) + log1p(exp(-|x|)) */,
       FST_UN_SIGMOID_NEG /* sigmoid(-x): x >= 0 ? exp(-x) / (1 + exp(-x)) : 1 / (1 + exp(x)) */,
       FST_UN_SMOOTH_L1 /* s = beta: |x| < beta ? 0.5 x x / beta : |x| - 0.5 beta */,
       FST_UN_SIN, FST_UN_COS, FST_UN_LOG1P, FST_UN_EXPM1 /* Math.sin ... Math.expm1 in double (Var.sin ...) */, FST_UN_N };
typedef struct { const float *a, *b; float *out; int64_t n; int op, rank;
                 int64_t shape[FST_MAXRANK], sa[FST_MAXRANK], sb[FST_MAXRANK]; double s; } fst_k_binary_args;
/* out = cond != 0 ? a : b (Elementwise.where; a NaN condition counts as true), all three broadcast by their strides */
typedef struct { const float *c, *a, *b; float *out; int64_t n; int rank;
                 int64_t shape[FST_MAXRANK], sc[FST_MAXRANK], sa[FST_MAXRANK], sb[FST_MAXRANK]; } fst_k_where_args;
typedef struct { const float *x; float *y; int64_t n; double s; int op, rank;
                 int64_t shape[FST_MAXRANK], sx[FST_MAXRANK]; } fst_k_unary_args;

/* ---- activations (fst4j.tensor.Activation; added with GELU, SiLU, ...): k_act is an activation's forward of x (out
 * contiguous [shape], x any strides), k_act_bwd its backward, or a part of one, from two operands broadcast by their
 * strides (a = the incoming gradient g, b = the forward's input x, unless the op says otherwise). s0 and s1 are the
 * op's parameters. Each op is Activation's Java formula in double, rounded once to float (as k_unary / k_binary);
 * NaN and infinities follow those formulas, which are torch 1.13's. ---- */
enum { FST_ACT_GELU /* x Phi(x), Phi(x) = erfc(-x / sqrt 2) / 2 */, FST_ACT_GELU_TANH /* torch's approximate='tanh' */,
       FST_ACT_SILU /* x / (1 + exp(-x)) */, FST_ACT_MISH /* x tanh(log1p(exp(x))) */,
       FST_ACT_LEAKY_RELU /* s0 = slope: x > 0 ? x : x s0 */, FST_ACT_ELU /* s0 = alpha: x <= 0 ? expm1(x) s0 : x */,
       FST_ACT_SOFTPLUS /* s0 = beta, s1 = threshold: x s0 > s1 ? x : log1p(exp(x s0)) / s0 */,
       FST_ACT_CLAMP /* s0 = min, s1 = max: t = x < s0 ? s0 : x, then t > s1 ? s1 : t (a tie or NaN keeps x's bits: torch's -0.0; also hardtanh's forward) */, FST_ACT_N };
enum { FST_ACTB_GELU, FST_ACTB_GELU_TANH, FST_ACTB_SILU, FST_ACTB_MISH, FST_ACTB_LEAKY_RELU, FST_ACTB_ELU, FST_ACTB_SOFTPLUS,
       FST_ACTB_HARDTANH /* x <= s0 || x >= s1 ? 0 : g (a NaN x passes g) */, FST_ACTB_CLAMP /* x >= s0 && x <= s1 ? g : 0 */,
       FST_ACTB_ABS /* g sgn(x), sgn(NaN) = 0 */,
       FST_ACTB_MAX_SHARE /* a, b: the share of maximum(a, b)'s gradient a gets: a == b ? 0.5 : a < b ? 0 : 1 */,
       FST_ACTB_MIN_SHARE /* a == b ? 0.5 : a > b ? 0 : 1 */, FST_ACTB_MUL_SHARE /* a = g, b = a share: b == 0 ? 0 : a b */,
       FST_ACTB_N };
typedef struct { const float *x; float *y; int64_t n; double s0, s1; int op, rank;
                 int64_t shape[FST_MAXRANK], sx[FST_MAXRANK]; } fst_k_act_args;
typedef struct { const float *a, *b; float *out; int64_t n; double s0, s1; int op, rank;
                 int64_t shape[FST_MAXRANK], sa[FST_MAXRANK], sb[FST_MAXRANK]; } fst_k_act_bwd_args;

/* ---- sum / mean over axes (fst4j.tensor.Reduce), in double over the reduced coordinates in row-major order (the
 * CPU's order for one output): one thread per output (work NULL), or, for long sums, sum_part's FST_PARTS partial
 * sums per output into work [nout * FST_PARTS] and sum adding them in order ---- */
typedef struct { const float *x; float *out; int64_t nout, nred; int krank, rrank, mean;
                 int64_t kshape[FST_MAXRANK], kstride[FST_MAXRANK], rshape[FST_MAXRANK], rstride[FST_MAXRANK];
                 double *work; } fst_k_sum_args;

/* ---- max / argmax over axes (Reduce.max, Reduce.argmax): per output, the CPU's scan in row-major order of the reduced
 * coordinates r: the first largest value (an equal later one, +0 after -0 included, does not replace it), a NaN wins
 * (max keeps the last NaN, last_nan = 1; argmax the first, last_nan = 0). out gets the value (may be NULL), arg the r
 * of the chosen element as a float (may be NULL; argmax reduces one axis, so r is the index along it). Short: one
 * thread per output. Long (work given and nred > FST_PARTS): argmax_part's FST_PARTS strided partial scans (value into
 * work, r into iwork, [nout * FST_PARTS] each), then argmax combines them by value and r: the element the serial scan
 * chooses, so the same bits either way. ---- */
typedef struct { const float *x; float *out, *arg; int64_t nout, nred; int krank, rrank, last_nan;
                 int64_t kshape[FST_MAXRANK], kstride[FST_MAXRANK], rshape[FST_MAXRANK], rstride[FST_MAXRANK];
                 double *work; int64_t *iwork; } fst_k_argmax_args;

/* ---- variance over axes (Reduce.var): the CPU's two passes in double, mean = sum / nred, then sum (x - mean)^2 / denom
 * with denom = max(0, nred - correction). Short (work NULL or nred <= FST_PARTS): one thread per output, the CPU's
 * order, bit for bit. Long: var_part (phase 0) FST_PARTS strided partial sums of x into work + nout, var_mean the
 * means into work[0 .. nout), var_part (phase 1) partial sums of (x - mean)^2, var their ordered sum / denom. ---- */
typedef struct { const float *x; float *out; int64_t nout, nred; int krank, rrank, phase; double denom;
                 int64_t kshape[FST_MAXRANK], kstride[FST_MAXRANK], rshape[FST_MAXRANK], rstride[FST_MAXRANK];
                 double *work /* [nout] means, then [nout * FST_PARTS] partial sums */; } fst_k_var_args;

/* ---- pooling (fst4j.tensor.Pool), contiguous NCHW; idx = ih*w + iw inside the plane (PyTorch's) ---- */
typedef struct { const float *x; float *y; int32_t *idx; fst_geom g; } fst_k_maxpool_args;
/* backward: one thread per plane (n*c of them) zeroes its dx plane and adds its dy at the argmaxes in output order:
 * the CPU's scatter, serial per plane, so bit-identical without atomics and without the pooling geometry */
typedef struct { const float *dy; const int32_t *idx; float *dx; int64_t planes, in_plane, out_plane; } fst_k_maxpool_bwd_args;
/* backward with the geometry: each dx element gathers its windows (four of a row per thread where rows allow; the same
 * bits as the scatter above) */
typedef struct { const float *dy; const int32_t *idx; fst_geom g; float *dx; } fst_k_maxpool_bwd_gather_args;
typedef struct { const float *x; float *y; int64_t n, c, h, w, oh, ow; } fst_k_adaptive_avg_args;
typedef struct { const float *dy; float *dx; int64_t n, c, h, w, oh, ow; } fst_k_adaptive_avg_bwd_args;

/* ---- batch norm, training mode (norm.c's contract, sums in double): per channel, `parts` partial sums of x
 * (bn_part_sum), the mean (bn_mean), partial sums of (x - mean)^2 (bn_part_sq), the statistics, running statistics
 * and the per-channel scale and shift (bn_stats), then one thread per element (bn_apply). Backward: partial sums
 * of dy and dy * xhat (bn_bwd_part), per channel dgamma, dbeta and the factors (bn_bwd_stats), per element dx. ---- */
typedef struct { const float *x, *gamma, *beta; float *rmean, *rvar; int64_t n, c, hw; double momentum, eps;
                 float *y, *mean, *invstd;
                 double *work /* [2c] scale, shift; [c] mean; then partial sums (FST_BN_WORK) */;
                 int relu /* y = max(BN(x), 0) in the same pass (the stored float decides, -0 -> +0, NaN stays) */;
                 int64_t parts /* partial sums per channel, fst_cuda_bn_parts(c, n * hw) */; } fst_k_bn_train_args;
typedef struct { const float *dy, *x, *gamma, *mean, *invstd; int64_t n, c, hw;
                 float *dx, *dgamma, *dbeta;
                 double *work /* [3c] k, sdy, sdyx; then partial sums of dy, of dy * xhat (FST_BN_WORK) */;
                 const float *relu_out /* the fused forward's output: dy counts only where it is > 0 (NULL: no ReLU) */;
                 int64_t parts; } fst_k_bn_bwd_args;
/* Partial sums per channel: a power of two from FST_PARTS (so that up to FST_PARTS elements a channel's sums are the
 * CPU's bits) to FST_BN_PARTS_MAX, doubled while the grid has under FST_BN_THREADS threads and each keeps at least
 * FST_BN_MIN_RUN elements (fst_cuda_bn_parts). With FST_PARTS per channel, a 64-channel layer of 3.2M elements per
 * channel ran 16K threads each walking 12.5K elements: bound by memory latency (0.73 ms for the backward's sums on an
 * H100, 16 % of a ResNet-18 step). */
#define FST_BN_PARTS_MAX 2048
#define FST_BN_THREADS (1 << 18)
#define FST_BN_MIN_RUN 32
/* Past FST_PARTS partial sums per channel, bn_fold first adds each channel's partials in FST_BN_FOLD runs of
 * consecutive ones (in order), and the per-channel kernels add those FST_BN_FOLD sums: one thread per channel adding
 * 2048 partials took 0.27 ms (bn_bwd_stats, H100). Up to FST_PARTS, no fold: the CPU's order. */
#define FST_BN_FOLD 32
/* doubles of scratch: [3c] per-channel values, [rows * c * parts] partial sums, [rows * c * FST_BN_FOLD] folded sums
 * (rows: 1 for training's sums of x, 2 for the backward's sums of dy and dy * xhat) */
#define FST_BN_WORK(c, parts, rows) (3 * (c) + (rows) * (c) * ((parts) + FST_BN_FOLD))
/* out[r * FST_BN_FOLD + g] = the ordered sum of in[r * parts + g * parts / FST_BN_FOLD ...] over parts / FST_BN_FOLD */
typedef struct { const double *in; double *out; int64_t rows, parts; } fst_k_bn_fold_args;

/* ---- cross-entropy with label smoothing (fst4j.tensor.Loss), in four passes and a total: a thread per row finds the
 * row's maximum (work[n + row]), a thread per element its exp(x - max) (work[3n + row c + k]), a thread per row sums
 * them in the CPU's order (work[2n + row]) and writes its loss term (work[row]), a thread per element its gradient;
 * one thread then sums the terms in row order. The exps, the expensive part, run in parallel; every sum keeps its
 * serial order, so the values are those of the one-thread-per-row kernel (xent_rows), which runs instead where n c is
 * large (work then holds the n terms only; fst_cuda_xent_work says how many doubles). ---- */
typedef struct { const float *logits; const int32_t *labels; int64_t n, c; double smoothing, grad_scale;
                 float *loss, *grad; double *work /* [fst_cuda_xent_work(n, c)] */; } fst_k_xent_args;

/* ---- softmax / log-softmax along the middle axis of a contiguous [outer, n, inner] (Loss.softmax, logSoftmax and
 * their backward): one thread per (outer, inner) line, the CPU's loops in double. Forward reads x, backward reads
 * y (the forward's output) and dy; out gets the result. ---- */
typedef struct { const float *x, *dy; float *out; int64_t outer, n, inner; int log; } fst_k_softmax_args;

/* ---- fst4j's own SGEMM, row-major C = alpha op(A) op(B) + beta C (fst_sgemm's contract): one thread per element of
 * C, a float sum over k in order. Slow; it is the fallback where cuBLAS is missing, and what the emulator runs for
 * matmul and convolution (cuBLAS is not emulated). beta == 0: C is not read. ---- */
typedef struct { int ta, tb; int64_t m, n, k; float alpha, beta; const float *a; int64_t lda; const float *b; int64_t ldb;
                 float *c; int64_t ldc; } fst_k_gemm_args;

/* ---- optimizer (fst4j.nn.SGD, fst4j.nn.SrSte): float arithmetic of the Java loops, operation for operation ---- */
typedef struct { float *w; const float *g; float *buf; int64_t n; float lr, wd, mom, damp; int first, nesterov; } fst_k_sgd_args;
typedef struct { const float *w; float *g; int64_t rows, k; float lambda; } fst_k_srste_args;
/* Magnitude N:M (fst4j.sparse.Sparsifier.MagnitudeNM) along the middle axis of a contiguous [outer, len, inner]: one
 * thread per group of m (outer * inner * ceil(len / m) groups); in a group the n largest |x| are kept, ties to the lower
 * index, every NaN equal and above +Inf, a short last group compared among its real elements (zero padding never wins).
 * out != NULL: out = x where kept, +0.0 where pruned; g != NULL (SR-STE, fst4j.nn.SrSte): g += lambda * x where pruned.
 * m <= FST_NM_MAX_M (fst4j.sparse.NM.MAX_M). */
#define FST_NM_MAX_M 32
typedef struct { const float *x; float *out; float *g; int64_t outer, len, inner; int n, m; float lambda; } fst_k_nm_args;
/* SGD with SR-STE's decay fused (prune.c / pool.c fst_sgd_srste): one thread per group of 4 of rows of k (k % 4 == 0);
 * g' = g + lambda w where magnitude 2:4 prunes (g itself is not written), then the SGD step with g' */
typedef struct { float *w; const float *g; float *buf; int64_t n, k; float lambda, lr, wd, mom, damp; int first, nesterov; } fst_k_sgd_srste_args;
/* AdamW (optim.c fst_adamw, fst4j.nn.AdamW): one thread per element, vmax NULL without amsgrad; the scalars derived by
 * fst4j.nn.AdamW.Scalars */
typedef struct { float *w; const float *g; float *m, *v, *vmax; int64_t n; float decay, b1, c1, b2, c2, step, bc2, eps; } fst_k_adamw_args;
/* gradient clipping (fst4j.nn.GradClip): sumsq_part's FST_PARTS partial sums of squares in double (optim.c
 * fst_sumsq_parts's split and order) into parts; scale: x *= s */
typedef struct { const float *x; int64_t n; double *parts; } fst_k_sumsq_args;
typedef struct { float *x; int64_t n; float s; } fst_k_scale_args;

/* ==== CPU-only ops brought to the device (branch cuda-gaps): average pool, eval-mode batch norm backward, the non-finite
 * check, strided and converting writes. Kept together so that other additions to this file merge around them. ==== */
/* avg_pool: y [n, c, ho, wo] = Pool.avgPool2d of contiguous NCHW x, one thread per output: the window's sum in double in
 * row-major order over its part inside the input, divided by kh*kw (count_pad) or by that part's size (at least 1), rounded
 * once. avg_pool_bwd: dx (contiguous NCHW, overwritten) gathers for each element the windows covering it in output order,
 * adding dy / divisor (double) to a float accumulator: the CPU's scatter (dx[t] = (float)(dx[t] + g)) bit for bit. */
typedef struct { const float *x; float *y; fst_geom g; int count_pad; } fst_k_avg_pool_args;
typedef struct { const float *dy; float *dx; fst_geom g; int count_pad; } fst_k_avg_pool_bwd_args;
/* Eval-mode batch norm backward (Norm.batchNorm2dEvalBackward: the running statistics are constants), is = 1 / sqrt(rvar +
 * eps) per channel in double: bn_eval_bwd_part's `parts` partial sums per channel of dy and of dy (x - rmean) is into work +
 * 3c (fst_k_bn_bwd_args' layout, bn_fold's rows 2), bn_eval_bwd_stats dgamma and dbeta, bn_eval_bwd_apply dx = dy gamma is
 * (double, rounded once) per element. gamma NULL: 1. */
typedef struct { const float *dy, *x, *gamma, *rmean, *rvar; int64_t n, c, hw; double eps; float *dx, *dgamma, *dbeta;
                 double *work; int64_t parts; } fst_k_bn_eval_bwd_args;
/* Elementwise.hasNonFinite: nonfinite_part's `parts` threads, thread p looking at the elements p, p + parts, ... of x (any
 * strides; float32, or float64 where f64) and writing flags[1 + p] = 1 if one is NaN or infinite, else 0; then
 * nonfinite_any's one thread flags[0] = whether any flag is set. At most FST_NONFINITE_PARTS parts. */
#define FST_NONFINITE_PARTS 4096
typedef struct { const void *x; int64_t n, parts; int rank, f64; int64_t shape[FST_MAXRANK], sx[FST_MAXRANK]; int32_t *flags; } fst_k_nonfinite_args;
/* strided_write: y (any strides) = x (any strides), converted from x's type to y's (float32, or float64 where xf64 / yf64;
 * the same type: the bits), or = s (fill: x unused), as Tensor.copyFrom / fill write a view. One thread per element where
 * no two elements of y share an address; serial (the launcher could not rule that out): thread 0 writes every element in
 * row-major order, so the last write wins as in the CPU's loop. */
typedef struct { const void *x; void *y; int64_t n; double s; int rank, fill, xf64, yf64, serial;
                 int64_t shape[FST_MAXRANK], sx[FST_MAXRANK], sy[FST_MAXRANK]; } fst_k_strided_write_args;
#define FST_KERNELS_GAPS(X)                                                                                  \
    X(avg_pool, fst_k_avg_pool_args) X(avg_pool_bwd, fst_k_avg_pool_bwd_args)                                \
    X(bn_eval_bwd_part, fst_k_bn_eval_bwd_args) X(bn_eval_bwd_stats, fst_k_bn_eval_bwd_args)                \
    X(bn_eval_bwd_apply, fst_k_bn_eval_bwd_args) X(nonfinite_part, fst_k_nonfinite_args)                    \
    X(nonfinite_any, fst_k_nonfinite_args) X(strided_write, fst_k_strided_write_args)
/* ==== end of cuda-gaps ==== */

/* ---- block-level kernels (FST_BLOCK_KERNELS): bodies kb_<name>(FstCtx &, args) that cooperate within a block
 * through shared memory, barriers, warp shuffles and tensor-core mma (fst4j_bodies.cuh); the emulator runs each
 * thread as a fiber and switches at every barrier and warp operation (cuda_emu.cc) ---- */
/* The emulator's self-test, also run on a device so that both are seen to agree: per block of FST_SELFTEST_T threads,
 * out[b][0][t] = in[b][T - 1 - t] (through shared memory and a barrier), out[b][1][t] = the butterfly sum of in over
 * t's warp (shfl_xor 16, 8, 4, 2, 1), out[b][2][t] = in[b][warp base + 31 - lane] (shfl); and warp 0 of block b
 * d[b] (16 x 8, row-major, float32) = a[b] (16 x 16 bf16, row-major) x bt[b] (8 x 16 bf16: B^T, row-major) by one
 * mma.m16n8k16; and warp 1 sd[b] (16 x 8) = A x sbt[b] (8 x 32 bf16: B^T) by one mma.sp.m16n8k32, A 16 x 32 2:4 along
 * k given as its kept values sa[b] (16 x 16 bf16) and metadata sm[b] (16 words, one per row: k_prune24's layout). mode
 * 1 / 2 / 3 (emulator only) break the rules on purpose: thread 0 skips the barrier / lane 3 of warp 1 skips its shuffles /
 * thread 0 writes one float past the block's shared memory. */
#define FST_SELFTEST_T 128
typedef struct { const float *in; float *out; const uint16_t *a, *bt; float *d; int mode;
                 const uint16_t *sa; const uint32_t *sm; const uint16_t *sbt; float *sd; } fst_k_selftest_args;
/* Implicit-GEMM convolution (Eq. 1 without a lowered matrix): y [n, cout, ho, wo] float32 = W x im2col(x), W bf16
 * [cout, ldw] (K = c*kh*kw columns used), x float32 NCHW rounded to bf16 as it is staged; fp32 accumulation on the tensor
 * cores (mma.m16n8k16). Tiles of BM output channels x BN output positions x FST_IG_BK of K per block of FST_IG_T
 * threads (8 warps of 32 x 32 outputs), two shared-memory buffers of both slices; two tile shapes: 64 x 128 (igemm) and
 * 128 x 64 (igemm_m128: half the im2col gather per product, for 128 channels and more). */
#define FST_IG_BK 32
#define FST_IG_T 256
#define FST_IG_LDS 40   /* shared-memory row stride in bf16 (32 + 8: the fragment loads of a warp hit 32 banks) */
#define FST_IG_SMEM(bm, bn) (2 * ((bm) + (bn)) * FST_IG_LDS * 2)
typedef struct { const float *x; fst_geom g; const uint16_t *w; int64_t ldw, cout, K, npix, mtiles; float *y;
                 int cfast /* K ordered (kh, kw, c), channels fastest: W from fst_cuda_wtap16 */; } fst_k_igemm_args;
/* The same with W 2:4 along K, as k_prune24 compresses it: kept values v bf16 [cout, ldv >= 2 ceil(K/4)] (two per group of
 * 4, in order) and metadata words [cout, ldm >= ceil(K/32)] (8 groups per word, 4 bits per group: the two kept positions,
 * the first in the low two bits); mma.sp.m16n8k32 on the sparse tensor cores. Per buffer: the kept values (FST_IGS_LDA
 * bf16 per row), the metadata (a word per row), the im2col slice. */
#define FST_IGS_LDA 24
#define FST_IGS_META(bm) ((bm) * FST_IGS_LDA * 2)
#define FST_IGS_BS(bm) (FST_IGS_META(bm) + (bm) * 4)
#define FST_IGS_BUF(bm, bn) (FST_IGS_BS(bm) + (bn) * FST_IG_LDS * 2)
typedef struct { const float *x; fst_geom g; const uint16_t *v; int64_t ldv; const uint32_t *meta; int64_t ldm, cout, K, npix, mtiles; float *y;
                 int cfast /* K ordered (kh, kw, c), channels fastest, instead of (c, kh, kw) */; } fst_k_igemm_sp_args;

/* Eq. 3 as an implicit GEMM (the weight gradient without a lowered matrix): ws[split] [cout, K] = g (bf16 [cout, ldg], the
 * first npix columns: dY laid out by channel, or its gathered kept half) x im2col(x)^T over the split's range of the npix
 * positions (chunk of them per split, a multiple of FST_IG_BK), x float32 NCHW rounded to bf16 as it is staged; then
 * k_splitk_sum adds the splits in order: dw [cout, ldd] = sum + beta dw (beta == 0: dw not read). Tiles of 64 output
 * channels x 128 of K x FST_IG_BK positions. */
typedef struct { const float *x; fst_geom g; const uint16_t *gr; int64_t ldg, cout, K, npix, chunk, mtiles, ntiles; float *ws;
                 int cfast /* the workspace's K ordered (kh, kw, c): a thread's 8 values share one tap where c % 8 == 0 */;
                 /* where src is not NULL, g is made while it is staged, as fst_cuda_shift_gather16 would make it: g[co][i*h + q] =
                  * src[co][i*seg + 2q] + coeff * its neighbour (shift +-1, wrapped or dropped at a segment's end), h = (seg + 1) / 2,
                  * rounded to bf16 (FST3_IR's Eq. 3: the IR shift and the fixed mask's gather in the staging, no separate pass) */
                 const float *src; int64_t lds, seg; float coeff; int shift, circular;
                 /* src's layout: row co at co * lds, segment i at i * sseg within it (dY by channel: lds, seg; NCHW dY:
                  * seg, cout * seg); gather 0: every position of a segment as it is (no shift), g[co][i*seg + p] */
                 int64_t sseg; int gather; } fst_k_igemm_wg_args;
/* dw [cout, ldd] (K in (c, kh, kw) order) = the splits' sum + beta dw; with cfast the workspace's K is (kh, kw, c): c, khw */
typedef struct { const float *ws; int64_t splits, cout, K; float *dw; int64_t ldd; float beta; int cfast; int64_t c, khw; } fst_k_splitk_args;

/* Hopper's warpgroup tensor-core products against the emulator's models of them, per block of FST_WG_T threads (one
 * warpgroup): dense (meta NULL) wgmma.mma_async.m64n64k16, d[b] (64 x 64 float32, row-major) = a[b] (64 x 16 bf16,
 * row-major) x bt[b] (64 x 16 bf16: B^T, row-major); 2:4 (meta given) wgmma.mma_async.sp.m64n64k32 (sparsity selector 0),
 * d[b] = A x bt[b] (64 x 32 bf16: B^T) with A 64 x 32 2:4 along k given as its kept values a[b] (64 x 16 bf16) and
 * meta[b] (64 words, one per row, k_prune24's layout), the metadata registers as mma.sp.m16n8k32's for each warp's 16
 * rows. A and B are staged in the K-major layout of core matrices (8 rows of 8 values, 16 bytes each, 128 contiguous
 * bytes), lbo bytes apart along K and sbo bytes apart every 8 rows; A at shared-memory byte 0, B at FST_WG_BOFF. ok[b] =
 * 1 where the instruction ran (a device built for sm_90a, or the emulator), else 0 and d untouched. transb (dense only):
 * B staged MN-major instead (core matrix (n / 8, k / 8) at (n / 8) sbo + (k / 8) lbo, its row k % 8 the 8 values n .. n + 7)
 * and wgmma run with imm-trans-b = 1, B's descriptor carrying lbo and sbo as given (1) or swapped (2). */
#define FST_WG_T 128
#define FST_WG_BOFF 4096
typedef struct { const uint16_t *a, *bt; float *d; int64_t lbo, sbo; int *ok; const uint32_t *meta; int transb; } fst_k_wgprobe_args;

/* A GEMM on Hopper's warpgroup tensor cores (sm_90a): c [m, n] float32 = alpha a b + beta c (beta == 0: c not read), a
 * bf16 [m, lda] row-major (K = k columns used), b given as B^T bf16 [n, ldb] (K-major), fp32 accumulation. wggemm: one
 * warpgroup (FST_WG_T threads) per 64 x 128 tile of c, K in slices of 64; wggemm2: two warpgroups per 128 x 128 tile
 * sharing B^T's slice, K in slices of 32; both through two shared-memory stages of K-major core matrices (128-byte 8 x 8
 * blocks, lbo 128 bytes along K), wgmma.m64n64k16 per warpgroup, 64 x 64 output and 16 of K. The 2:4 form
 * (meta given): a holds A's kept values, bf16 [m, lda >= k / 2] (two per group of 4, in order), meta its positions
 * (k_prune24's words, [m, ldm >= k / 32]), and each slice is four wgmma.sp.m64n64k32 with the metadata registers as
 * mma.sp.m16n8k32's. m a multiple of the tile's rows, n of 128, k of the slice; the rows 16-byte aligned. ok[0] = 1 where the instructions
 * ran (a device built for sm_90a, or the emulator), else 0 and c untouched. */
#define FST_WGG_BN 128
#define FST_WGG_STAGE ((64 + FST_WGG_BN) * 64 * 2)    /* wggemm: 64 rows of A and 128 of B^T, K slices of 64 */
#define FST_WGG_STAGE2 ((128 + FST_WGG_BN) * 32 * 2)  /* wggemm2: two warpgroups, 128 rows of A, K slices of 32 */
#define FST_WGG_ASYNC_STAGES 3                        /* wggemm3: wggemm2's tile, its stages filled by cp.async */
typedef struct { const uint16_t *a; int64_t lda; const uint16_t *bt; int64_t ldb; float *c; int64_t ldc, m, n, k, ntiles;
                 float alpha, beta; const uint32_t *meta; int64_t ldm; int *ok;
                 /* the convolution form (xh not NULL; wgconv): B^T's rows are the output positions n = (image, oh, ow) of a
                  * convolution of xh (bf16 NHWC [g.n, g.h, g.w, g.c]), gathered as they are staged (zero outside the
                  * image and past npos = g.n * g.ho * g.wo), K in (kh, kw, c) order (a's layout from fst_cuda_wtap16), and
                  * c is y float32 NCHW [g.n, m, g.ho, g.wo] */
                 const uint16_t *xh; fst_geom g; int64_t npos; } fst_k_wggemm_args;

/* X(name, argument struct, threads per block, bytes of shared memory) */
#define FST_BLOCK_KERNELS(X) \
    X(wgprobe, fst_k_wgprobe_args, FST_WG_T, 2 * FST_WG_BOFF) X(wggemm, fst_k_wggemm_args, FST_WG_T, 2 * FST_WGG_STAGE) \
    X(wggemm2, fst_k_wggemm_args, 2 * FST_WG_T, 2 * FST_WGG_STAGE2) \
    X(wggemm3, fst_k_wggemm_args, 2 * FST_WG_T, FST_WGG_ASYNC_STAGES * FST_WGG_STAGE2) \
    X(selftest, fst_k_selftest_args, FST_SELFTEST_T, FST_SELFTEST_T * 4) \
    X(igemm, fst_k_igemm_args, FST_IG_T, FST_IG_SMEM(64, 128)) X(igemm_m128, fst_k_igemm_args, FST_IG_T, FST_IG_SMEM(128, 64)) \
    X(igemm_sp, fst_k_igemm_sp_args, FST_IG_T, 2 * FST_IGS_BUF(64, 128)) X(igemm_sp_m128, fst_k_igemm_sp_args, FST_IG_T, 2 * FST_IGS_BUF(128, 64)) \
    X(igemm_wg, fst_k_igemm_wg_args, FST_IG_T, FST_IG_SMEM(64, 128)) \
    X(sort_chunk, fst_k_sort_args, FST_SORT_T, FST_SORT_CHUNK * 8)

/* Every kernel: X(name, argument struct). The device kernel is fst_k_<name>, its body k_<name>. */
#define FST_KERNELS(X)                                                                                  \
    X(prune24, fst_k_prune_args) X(prune24_t, fst_k_prune_args) X(shift_gather, fst_k_shift_gather_args) \
    X(shift_add, fst_k_shift_gather_args) X(resprop, fst_k_resprop_args) X(resprop_count, fst_k_resprop_args) \
    X(resprop_sum, fst_k_resprop_args) \
    X(im2col, fst_k_im2col_args) X(col2im, fst_k_col2im_args) X(im2col_at, fst_k_im2col_at_args)         \
    X(im2col_dil, fst_k_im2col_dil_args) X(col2im_dil, fst_k_col2im_dil_args)                            \
    X(f32_to_bf16, fst_k_f2bf_args) X(binary, fst_k_binary_args) X(unary, fst_k_unary_args)              \
    X(act, fst_k_act_args) X(act_bwd, fst_k_act_bwd_args)                                                \
    X(sum_part, fst_k_sum_args) X(sum, fst_k_sum_args) X(maxpool, fst_k_maxpool_args) X(maxpool_bwd, fst_k_maxpool_bwd_args)         \
    X(adaptive_avg, fst_k_adaptive_avg_args) X(adaptive_avg_bwd, fst_k_adaptive_avg_bwd_args)            \
    FST_KERNELS_GAPS(X)                                                                                  \
    X(bn_part_sum, fst_k_bn_train_args) X(bn_mean, fst_k_bn_train_args) X(bn_part_sq, fst_k_bn_train_args) \
    X(bn_stats, fst_k_bn_train_args) X(bn_apply, fst_k_bn_train_args)                                    \
    X(bn_bwd_part, fst_k_bn_bwd_args) X(bn_bwd_stats, fst_k_bn_bwd_args) X(bn_bwd_apply, fst_k_bn_bwd_args) \
    X(bn_fold, fst_k_bn_fold_args)                                                                          \
    X(xent_rows, fst_k_xent_args) X(xent_total, fst_k_xent_args)                                \
    X(softmax, fst_k_softmax_args) X(softmax_bwd, fst_k_softmax_args) X(gemm, fst_k_gemm_args)           \
    X(sgd, fst_k_sgd_args) X(srste, fst_k_srste_args) X(bf16_pad, fst_k_bf16_pad_args) X(im2col_bf16, fst_k_im2col_bf16_args) \
    X(bf16_unpad, fst_k_bf16_unpad_args) X(col2im_bf16, fst_k_col2im_bf16_args) \
    X(maxpool_bwd_gather, fst_k_maxpool_bwd_gather_args) X(copy4, fst_k_unary_args) \
    X(im2col_bf16x4, fst_k_im2col_bf16_args) X(bf16_pad4, fst_k_bf16_pad_args)                            \
    X(maxpool_bwd_gather4, fst_k_maxpool_bwd_gather_args) X(bn_apply4, fst_k_bn_train_args)                \
    X(bn_bwd_apply4, fst_k_bn_bwd_args) X(col2im_bf16x4, fst_k_col2im_bf16_args)                        \
    X(bn_part_sum4, fst_k_bn_train_args) X(bn_part_sq4, fst_k_bn_train_args) X(bn_bwd_part4, fst_k_bn_bwd_args) \
    X(col2im_bf16_k3, fst_k_col2im_bf16_args) X(col2im_bf16x4_k3, fst_k_col2im_bf16_args)                  \
    X(bf16_unpad_nchw, fst_k_bf16_unpad_nchw_args) X(bf16_unpad_nchw4, fst_k_bf16_unpad_nchw_args)          \
    X(im2col_bf16_s1, fst_k_im2col_bf16_args) X(im2col_bf16_s2, fst_k_im2col_bf16_args) X(by_channel, fst_k_by_channel_args) X(by_channel4, fst_k_by_channel_args) X(prune24_tg, fst_k_prune_args) \
    X(wflip16, fst_k_wflip16_args) X(conv24_t, fst_k_conv24_t_args) X(splitk_sum, fst_k_splitk_args) X(wtap16, fst_k_wtap16_args) X(sgd_srste, fst_k_sgd_srste_args) X(nhwc16, fst_k_nhwc16_args) \
    X(adamw, fst_k_adamw_args) X(sumsq_part, fst_k_sumsq_args) X(scale, fst_k_scale_args)                 \
    X(where, fst_k_where_args) X(argmax_part, fst_k_argmax_args) X(argmax, fst_k_argmax_args)               \
    X(var_part, fst_k_var_args) X(var_mean, fst_k_var_args) X(var, fst_k_var_args) X(nm, fst_k_nm_args) \
    X(embed_gather, fst_k_embed_gather_args) X(embed_scatter, fst_k_embed_scatter_args) X(lanes, fst_k_lanes_args) \
    X(sort_keys, fst_k_sort_args) X(sort_stage, fst_k_sort_args) X(sort_select, fst_k_sort_args) X(sort_scatter, fst_k_sort_scatter_args) \
    X(binary4, fst_k_binary_args) X(maxpool_bwd_k3s2, fst_k_maxpool_bwd_gather_args) X(xent_max, fst_k_xent_args) \
    X(xent_exp, fst_k_xent_args) X(xent_sum, fst_k_xent_args) X(xent_grad, fst_k_xent_args) \
    X(im2col_bf16_s1x8, fst_k_im2col_bf16_args) X(im2col_bf16_s2x8, fst_k_im2col_bf16_args)

#define FST_KERNEL_ENUM(name, args) FST_K_##name,
#define FST_BLOCK_KERNEL_ENUM(name, args, threads, smem) FST_K_##name,
/* thread kernels first, then the block kernels (FST_N_THREAD_KERNELS <= k < FST_N_KERNELS) */
enum { FST_KERNELS(FST_KERNEL_ENUM) FST_N_THREAD_KERNELS, FST_BLOCK_BEFORE_FIRST = FST_N_THREAD_KERNELS - 1,
       FST_BLOCK_KERNELS(FST_BLOCK_KERNEL_ENUM) FST_N_KERNELS };

#endif
