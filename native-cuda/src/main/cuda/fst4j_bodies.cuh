/* fst4j CUDA kernel bodies: for every kernel of fst4j_kargs.h, k_<name>(i, args) is the work of global thread i
 * (i = blockIdx.x * blockDim.x + threadIdx.x, computed by fst_gidx). The bodies are __host__ __device__ and use
 * no shared memory, no warp operations and no atomics, so that:
 *   - fst4j_kernels.cu (nvcc) wraps each in a one-line __global__ kernel for the device, and
 *   - src/main/c/cuda_emu.cc (g++) runs the very same function for every thread of the same grid on the CPU
 *     (libfst4j_cuda_emu.so), which is how the kernels are tested where there is no GPU.
 * Each body checks its own bound (the grid is rounded up to whole blocks, and the emulator runs those extra
 * threads too). Short reductions are one thread per output doing the CPU's serial loop; long ones (batch norm, long
 * sums) are FST_PARTS strided partial sums then their ordered sum (fst4j_kargs.h). Either way results are
 * deterministic, in double, and bit-identical to the C/Java float32 paths up to FST_PARTS elements per output
 * (beyond, the partial sums reorder the additions; exp/log may differ in the last bit between libm, Java and CUDA).
 * The block kernels at the end (kb_<name>(FstCtx &, args)) are the exception: they cooperate through shared memory,
 * barriers, warp shuffles and tensor-core mma, which the emulator models (see there).
 * No FMA contraction anywhere: the fatbin is built with -fmad=false and the emulator with -ffp-contract=off,
 * as the CPU shim is (gcc -std=c11) and as Java is by definition. */
#ifndef FST4J_BODIES_CUH
#define FST4J_BODIES_CUH
#include "fst4j_kargs.h"
#include "fst4j_act.h"
#include <math.h>
#include <string.h>

#ifdef __CUDACC__
#define FST_HD __host__ __device__ __forceinline__
#define FST_HD_MEMBER __host__ __device__ __forceinline__
#else
#define FST_HD static inline
#define FST_HD_MEMBER inline
#endif

typedef int64_t i64;
typedef uint32_t u32;
typedef uint16_t u16;

/* the global thread index; the device passes blockIdx.x, blockDim.x, threadIdx.x, the emulator its loop counters */
FST_HD i64 fst_gidx(unsigned block, unsigned dim, unsigned thread) { return (i64)block * dim + thread; }

FST_HD u32 f2u(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    u32 u; memcpy(&u, &f, 4); return u;
#endif
}
FST_HD float u2f(u32 u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f; memcpy(&f, &u, 4); return f;
#endif
}
/* a / b for 0 <= a, 0 < b, with a 32-bit division where both fit (small: the caller's whole grid is below 2^32), several
 * times cheaper on the device than a 64-bit one; the same quotient either way */
FST_HD i64 quot(i64 a, i64 b, bool small) { return small ? (i64)((u32)a / (u32)b) : a / b; }
/* read-only loads through the non-coherent cache on the device, plain loads on the host */
#ifdef __CUDA_ARCH__
#define LDG(p) __ldg(p)
#else
#define LDG(p) (*(p))
#endif
/* fixed-count loops unrolled on the device (their arrays stay in registers) */
#ifdef __CUDA_ARCH__
#define FST_UNROLL _Pragma("unroll")
#else
#define FST_UNROLL
#endif

FST_HD bool isnan_d(double v) { return v != v; }
/* java.lang.Math.max(double, double): NaN wins, +0.0 > -0.0 */
FST_HD double jmax(double a, double b) {
    if (isnan_d(a)) return a;
    if (isnan_d(b)) return b;
    if (a == 0.0 && b == 0.0) return signbit(a) ? b : a;
    return a > b ? a : b;
}

/* float bits -> bf16 bits, round to nearest even; NaN stays a (quiet) NaN with its sign. */
FST_HD u16 bf16_bits(u32 b) {
    if ((b & 0x7fffffffu) > 0x7f800000u) return (u16)((b >> 16) | 0x40u);
    return (u16)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

/* One group of 4 on float bit patterns: the same integer logic as GROUP24 in prune.c (keep the 2 largest |x|,
 * ties to the lower index, NaN above +Inf, pruned = +0.0f; stored values and nibble under Compressed24's fill
 * rule). m[] gets the masked entries, v0/v1 the stored values, the return value the nibble i0 | i1 << 2. */
FST_HD u32 group24(const u32 b[4], u32 m[4], u32 &v0, u32 &v1) {
    u32 k[4];
    for (int j = 0; j < 4; j++) { u32 t = b[j] & 0x7fffffffu; k[j] = t < 0x7f800001u ? t : 0x7f800001u; }
    const int c01 = k[1] > k[0], c02 = k[2] > k[0], c03 = k[3] > k[0];
    const int c12 = k[2] > k[1], c13 = k[3] > k[1], c23 = k[3] > k[2];
    const int r0 = c01 + c02 + c03, r1 = 1 - c01 + c12 + c13, r2 = 2 - c02 - c12 + c23, r3 = 3 - c03 - c13 - c23;
    m[0] = r0 < 2 ? b[0] : 0u; m[1] = r1 < 2 ? b[1] : 0u; m[2] = r2 < 2 ? b[2] : 0u; m[3] = r3 < 2 ? b[3] : 0u;
    const int n0 = (m[0] & 0x7fffffffu) != 0, n1 = (m[1] & 0x7fffffffu) != 0;
    const int n2 = (m[2] & 0x7fffffffu) != 0, n3 = (m[3] & 0x7fffffffu) != 0;
    const int cnt = n0 + n1 + n2 + n3;
    const int q0 = n0 | (cnt < 2);
    const int q1 = n1 | (cnt + q0 - n0 < 2);
    v0 = q0 ? m[0] : (q1 ? m[1] : m[2]);
    v1 = n3 ? m[3] : (n2 ? m[2] : m[1]);
    return (u32)((1 - q0) * (2 - q1) | (1 + n2 + n3 * (2 - n2)) << 2);
}

/* ======================= sparsification, IR shift, convolution lowering ======================= */

/* One group g of row r of S(W): its nibble; with write, also its stored values and masked dense entries. */
FST_HD u32 prune_group(const fst_k_prune_args &a, i64 r, i64 g, bool write) {
    const i64 G = (a.K + 3) / 4;
    u32 b[4], m[4], v0, v1;
    for (int j = 0; j < 4; j++) b[j] = 4 * g + j < a.K ? LDG((const u32 *)a.w + r * a.ldw + 4 * g + j) : 0u;
    const u32 nib = group24(b, m, v0, v1);
    if (write) {
        if (a.values) {
            u32 *vo = (u32 *)a.values + r * 2 * G + 2 * g;
            vo[0] = v0; vo[1] = v1;
        }
        for (int j = 0; j < 4; j++) {
            if (4 * g + j >= a.K) break;
            if (a.dense) ((u32 *)a.dense)[r * a.ldd + 4 * g + j] = m[j];
            if (a.dense16) a.dense16[r * a.ldd16 + 4 * g + j] = bf16_bits(m[j]);
        }
    }
    return nib;
}

/* S(W) along K: W [rows, K] (ldw). One thread per (row, group of 4): consecutive threads read consecutive 16-byte
 * groups of a row (coalesced) and write their stored values and masked dense entries. The metadata word of 8 groups
 * is written by the first thread of the 8, which recomputes the other 7 nibbles itself (their 28 floats are in the
 * cache lines its neighbours just loaded): no thread needs another's result, so no warp shuffle, which the host
 * emulator could not run. values [rows, 2G], meta [rows, ceil(G/8)]; optional masked dense copies (fp32 ldd, bf16
 * ldd16); padding columns are never written. */
FST_HD void k_prune24(i64 i, const fst_k_prune_args &a) {
    const i64 G = (a.K + 3) / 4, ldm = (G + 7) / 8;
    if (i >= a.rows * G) return;
    const i64 r = i / G, g = i % G;
    u32 word = prune_group(a, r, g, true);
    if (g % 8 != 0 || !a.meta) return;   /* no compressed form asked for: the masked copies only */
    for (i64 gg = g + 1; gg < g + 8 && gg < G; gg++) word |= prune_group(a, r, gg, false) << (4 * (gg & 7));
    a.meta[r * ldm + g / 8] = word;
}

/* S(W^T): W [cout = rows, K] read as W^T [K, cout], pruned along cout. One thread per (k, metadata word), consecutive
 * threads take consecutive k so that reads of a W row are coalesced. values [K, 2G], meta [K, ceil(G/8)],
 * G = ceil(cout/4); optional masked W^T copies [K, cout] in a.dense (ldd) / a.dense16 (ldd16). */
FST_HD void k_prune24_t(i64 i, const fst_k_prune_args &a) {
    const i64 cout = a.rows, K = a.K, G = (cout + 3) / 4, ldm = (G + 7) / 8;
    if (i >= K * ldm) return;
    const i64 wd = i / K, k = i % K;
    u32 word = 0;
    const i64 gend = 8 * wd + 8 < G ? 8 * wd + 8 : G;
    for (i64 g = 8 * wd; g < gend; g++) {
        u32 b[4], m[4], v0, v1;
        for (int j = 0; j < 4; j++) b[j] = 4 * g + j < cout ? LDG((const u32 *)a.w + (4 * g + j) * a.ldw + k) : 0u;
        word |= group24(b, m, v0, v1) << (4 * (g & 7));
        u32 *vo = (u32 *)a.values + k * 2 * G + 2 * g;
        vo[0] = v0; vo[1] = v1;
        for (int j = 0; j < 4; j++) {
            if (4 * g + j >= cout) break;
            if (a.dense) ((u32 *)a.dense)[k * a.ldd + 4 * g + j] = m[j];
            if (a.dense16) a.dense16[k * a.ldd16 + 4 * g + j] = bf16_bits(m[j]);
        }
    }
    a.meta[k * ldm + wd] = word;
}

/* S(W^T) as its masked copies only (values and meta NULL: cuSPARSELt's bf16 operand, fst_cuda_prune24_t): one thread
 * per (k, group of 4 along cout), consecutive threads on consecutive groups of one W^T row, so that its stores are
 * coalesced (k_prune24_t, a thread per W^T row and metadata word, strides its stores by a row: run 19, H100, 39 us a
 * call). The same selection (group24) and values. */
FST_HD void k_prune24_tg(i64 i, const fst_k_prune_args &a) {
    const i64 cout = a.rows, G = (cout + 3) / 4;
    if (i >= a.K * G) return;
    const i64 k = i / G, g = i % G;
    u32 b[4], m[4], v0, v1;
    for (int j = 0; j < 4; j++) b[j] = 4 * g + j < cout ? LDG((const u32 *)a.w + (4 * g + j) * a.ldw + k) : 0u;
    group24(b, m, v0, v1);
    for (int j = 0; j < 4; j++) {
        if (4 * g + j >= cout) break;
        if (a.dense) ((u32 *)a.dense)[k * a.ldd + 4 * g + j] = m[j];
        if (a.dense16) a.dense16[k * a.ldd16 + 4 * g + j] = bf16_bits(m[j]);
    }
}

/* IR shift + Eq. 7 half-K gather (fst_shift_gather): kept position j = 2q: out = dy[j] + coeff * dy[j + shift],
 * the neighbour wrapped (circular) or dropped at a segment's ends; coeff == 0 is a plain gather. */
FST_HD void k_shift_gather(i64 i, const fst_k_shift_gather_args &a) {
    const i64 h = (a.seg + 1) / 2;
    if (i >= a.nseg * h) return;
    const i64 sg = i / h, q = i % h;
    const float *s = a.dy + sg * a.seg;
    const float x = s[2 * q];
    float o;
    if (a.coeff == 0.0f) o = x;
    else if (a.shift == 1) {
        if (2 * q + 1 < a.seg) o = x + a.coeff * s[2 * q + 1];
        else o = a.circular ? x + a.coeff * s[0] : x;
    } else {
        if (q > 0) o = x + a.coeff * s[2 * q - 1];
        else o = a.circular ? x + a.coeff * s[a.seg - 1] : x;
    }
    a.out[i] = o;
    if (a.out16) a.out16[i] = bf16_bits(f2u(o));   /* the half-K GEMM's bf16 operand in the same pass (bf16_pad's bits) */
}

/* IR shift without the gather (shift.c fst_shift_add): every element of nseg segments of seg elements,
 * out = dy[q] + coeff * dy[q + shift], the neighbour wrapped (circular) or dropped at a segment's ends. */
FST_HD void k_shift_add(i64 i, const fst_k_shift_gather_args &a) {
    if (i >= a.nseg * a.seg) return;
    const i64 q = i % a.seg;
    const float *s = a.dy + (i - q);
    float o;
    if (a.shift == 1) {
        if (q + 1 < a.seg) o = s[q] + a.coeff * s[q + 1];
        else o = a.circular ? s[q] + a.coeff * s[0] : s[q];
    } else {
        if (q > 0) o = s[q] + a.coeff * s[q - 1];
        else o = a.circular ? s[0] + a.coeff * s[a.seg - 1] : s[0];
    }
    a.out[i] = o;
}

/* ReSprop (fst_k_resprop_args): one thread per element; the same float operations as prune.c's resprop_image */
FST_HD bool resprop_keep(const fst_k_resprop_args &a, i64 i, float *o) {
    const float p = a.p[i % a.per], d = a.g[i] - p;
    const bool keep = !(fabsf(d) <= a.tf);   /* a NaN difference is kept */
    if (o) *o = keep ? p + d : p;
    return keep;
}
FST_HD void k_resprop(i64 i, const fst_k_resprop_args &a) {
    if (i >= a.total) return;
    float o;
    resprop_keep(a, i, &o);
    a.out[i] = o;
}
FST_HD void k_resprop_count(i64 q, const fst_k_resprop_args &a) {
    if (q >= (i64)FST_PARTS * FST_PARTS) return;
    int64_t kept = 0;
    for (i64 i = q; i < a.total; i += (i64)FST_PARTS * FST_PARTS) kept += resprop_keep(a, i, nullptr);
    a.work[FST_PARTS + q] = kept;
}
FST_HD void k_resprop_sum(i64 q, const fst_k_resprop_args &a) {
    if (q >= FST_PARTS) return;
    int64_t kept = 0;
    for (i64 r = q; r < (i64)FST_PARTS * FST_PARTS; r += FST_PARTS) kept += a.work[FST_PARTS + r];
    a.work[q] = kept;
}

/* im2col: one thread per element of the [K = c*kh*kw, n*L] matrix (L = ho*wo), row stride ldo. */
FST_HD void k_im2col(i64 i, const fst_k_im2col_args &a) {
    const fst_geom &g = a.g;
    const i64 L = g.ho * g.wo, NL = g.n * L, K = g.c * g.kh * g.kw;
    if (i >= K * NL) return;
    const i64 r = i / NL, col = i % NL, img = col / L, p = col % L;
    const i64 ch = r / (g.kh * g.kw), ki = (r / g.kw) % g.kh, kj = r % g.kw;
    const i64 ih = (p / g.wo) * g.sh - g.ph + ki, iw = (p % g.wo) * g.sw - g.pw + kj;
    a.out[r * a.ldo + col] = (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) ? 0.0f : LDG(a.x + ((img * g.c + ch) * g.h + ih) * g.w + iw);
}

/* dilated im2col: k_im2col with tap (ki, kj) at input offset (ki*dh, kj*dw) */
FST_HD void k_im2col_dil(i64 i, const fst_k_im2col_dil_args &a) {
    const fst_geom &g = a.g;
    const i64 L = g.ho * g.wo, NL = g.n * L, K = g.c * g.kh * g.kw;
    if (i >= K * NL) return;
    const i64 r = i / NL, col = i % NL, img = col / L, p = col % L;
    const i64 ch = r / (g.kh * g.kw), ki = (r / g.kw) % g.kh, kj = r % g.kw;
    const i64 ih = (p / g.wo) * g.sh - g.ph + ki * a.dh, iw = (p % g.wo) * g.sw - g.pw + kj * a.dw;
    a.out[r * a.ldo + col] = (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) ? 0.0f : LDG(a.x + ((img * g.c + ch) * g.h + ih) * g.w + iw);
}

/* dilated col2im: a thread per dx element gathering its taps in the CPU's order (fst_col2im_dil adds tap (ki, kj) row
 * by row, ki then kj, from +0.0f; an element meets each tap at most once), so bit for bit without atomics. Tap ki
 * reaches ih from output row oh = (ih + ph - ki*dh) / sh when that divides and 0 <= oh < ho; likewise kj. */
FST_HD void k_col2im_dil(i64 i, const fst_k_col2im_dil_args &a) {
    const fst_geom &g = a.g;
    if (i >= g.n * g.c * g.h * g.w) return;
    const i64 iw = i % g.w, ih = (i / g.w) % g.h, ch = (i / (g.w * g.h)) % g.c, img = i / (g.w * g.h * g.c);
    const float *base = a.cols + ch * g.kh * g.kw * a.ldc + img * g.ho * g.wo;
    float s = 0.0f;
    for (i64 ki = 0; ki < g.kh; ki++) {
        const i64 th = ih + g.ph - ki * a.dh;
        if (th < 0) break;   /* th falls as ki rises */
        if (th % g.sh != 0 || th / g.sh >= g.ho) continue;
        const i64 oh = th / g.sh;
        for (i64 kj = 0; kj < g.kw; kj++) {
            const i64 tw = iw + g.pw - kj * a.dw;
            if (tw < 0) break;
            if (tw % g.sw != 0 || tw / g.sw >= g.wo) continue;
            s = s + LDG(base + (ki * g.kw + kj) * a.ldc + oh * g.wo + tw / g.sw);
        }
    }
    a.dx[i] = s;
}

/* W consecutive bf16 in one store: value j in bits 16 j .. 16 j + 15, in memory order (W = 4: one 8-byte store, the
 * operand 8-byte aligned; cuda_ops.c checks). The emulator stores the same packed value lane by lane, so the packing
 * is what the host tests check. */
template <int W> FST_HD void store_bf16(u16 *d, uint64_t v) {
#ifdef __CUDA_ARCH__
    if (W == 4) *reinterpret_cast<unsigned long long *>(d) = (unsigned long long)v;
    else
#endif
        for (int j = 0; j < W; j++) d[j] = (u16)(v >> (16 * j));
}

/* W consecutive floats from p (W = 4: one 16-byte load, p 16-byte aligned; cuda_ops.c checks) */
template <int W> FST_HD void load_f32(const float *p, float *v) {
#ifdef __CUDA_ARCH__
    if (W == 4) { const float4 q = __ldg(reinterpret_cast<const float4 *>(p)); v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w; }
    else
#endif
        for (int j = 0; j < W; j++) v[j] = LDG(p + j);
}

/* W consecutive floats in one store (W = 4: one 16-byte store, the address 16-byte aligned; cuda_ops.c checks) */
template <int W> FST_HD void store_f32(float *d, const float *v) {
#ifdef __CUDA_ARCH__
    if (W == 4) *reinterpret_cast<float4 *>(d) = make_float4(v[0], v[1], v[2], v[3]);
    else
#endif
        for (int j = 0; j < W; j++) d[j] = v[j];
}

/* im2col straight into a zero-padded bf16 GEMM operand [rows_p, cols_p] (rows_p >= K, cols_p >= n*ho*wo): the value
 * k_im2col would write, rounded as k_bf16_pad would round it, in one pass instead of a float32 matrix and a copy. */
/* One thread per (channel, W consecutive columns): it places its first column once (image, output row and column: the
 * only divisions), steps to the others (they may cross an output row or an image) and writes the channel's kh*kw rows
 * of those columns, W bf16 per store. Consecutive threads take consecutive columns, so every load of x and every store
 * of a row is coalesced across a warp (a thread per element was bound by its divisions, and a run of columns per
 * thread by uncoalesced loads). W = 4 where cols_p % 4 == 0: a warp stores 256 contiguous bytes per row instead of 64
 * (one column per thread is bound by its 2-byte stores: 0.56 ms for 400 MB on an H200). Channels past c fill the zero
 * rows up to rows_p. Index math in I: u32 where the grid fits in 32 bits, i64 beyond; the same values either way. */
/* SW = 1 or 2 (W = 4): a 3x3 kernel with horizontal padding 1 at horizontal stride SW, any vertical stride and padding
 * (cuda_ops.c checks; switched by fst_cuda_im2col_vec): "same" 3x3 convolutions (SW 1), stride-2 ones and Eq. 3's kept
 * half under the fixed mask, lowered with the horizontal stride doubled (SW 2). Where a thread's four columns lie in
 * one output row, each kernel row reads the 3 SW + 3 floats [SW ow - 1, SW ow + 4 SW + 1] of one input row once
 * (k3_span), and the three taps of that row take their four values from it in registers: one (SW 1) or two (SW 2)
 * 16-byte loads and one or two 4-byte ones where the run is 16-byte aligned, else 4-byte loads (k3_span<SW, 8>: the
 * 7 SW + 3 floats of eight columns, for the eight-column kernels below). The general walk issues
 * 12 four-byte loads per kernel row, each warp-wide load touching SW times four the sectors it uses (about a fifth of
 * the device's bandwidth); run 17 (H100) measured the ResNet-18 step 1.07x faster with SW 1 at planes of 56 and 28,
 * run 18 1.07x with it at every plane. Four columns that cross a row or an image (planes of 7) take the general walk.
 * The same values and stores either way. */
template <int SW, int W = 4> FST_HD void k3_span(const float *row, i64 w, i64 m0, float *seg) {
    constexpr int SPAN = (W - 1) * SW + 3, MID = W * SW;   /* seg[s] = row[m0 - 1 + s], 0 outside [0, w) */
    if (m0 + MID <= w && ((uintptr_t)(row + m0) & 15) == 0) {
        FST_UNROLL for (int v = 0; v < MID / 4; v++) load_f32<4>(row + m0 + 4 * v, seg + 1 + 4 * v);
    } else {
        FST_UNROLL for (int s = 0; s < MID; s++) seg[1 + s] = m0 + s < w ? LDG(row + m0 + s) : 0.0f;
    }
    seg[0] = m0 > 0 ? LDG(row + m0 - 1) : 0.0f;
    FST_UNROLL for (int s = MID + 1; s < SPAN; s++) seg[s] = m0 - 1 + s < w ? LDG(row + m0 - 1 + s) : 0.0f;
}
template <typename I, int W, int SW> FST_HD void im2col_bf16_cols(I ch, I col0, const fst_k_im2col_bf16_args &a);
template <typename I, int W, int SW> FST_HD void im2col_bf16_at(I i, const fst_k_im2col_bf16_args &a) {
    const I q = (I)(a.cols_p / W), ch = i / q;
    im2col_bf16_cols<I, W, SW>(ch, (i - ch * q) * W, a);
}
/* channel ch's kh*kw rows of the W columns from col0 on */
template <typename I, int W, int SW> FST_HD void im2col_bf16_cols(I ch, I col0, const fst_k_im2col_bf16_args &a) {
    const fst_geom &g = a.g;
    const i64 khw = g.kh * g.kw, r0 = (i64)ch * khw;
    u16 *d = a.dst + r0 * a.cols_p + col0;
    const i64 rows = (a.rows_p - r0 < khw ? a.rows_p - r0 : khw);
    const I L = (I)(g.ho * g.wo), NL = (I)g.n * L;
    if ((i64)ch >= g.c || col0 >= NL) {   /* zero rows (padding up to rows_p) or padding columns only */
        for (i64 t = 0; t < rows; t++) store_bf16<W>(d + t * a.cols_p, 0);
        return;
    }
    const I wo = (I)g.wo, ho = (I)g.ho;
    I img = col0 / L, p = col0 - img * L, oh = p / wo, ow = p - oh * wo;
    if (SW > 0 && ow + 4 <= wo) {   /* the four columns in one output row */
        const float *plane = a.x + ((i64)img * g.c + ch) * g.h * g.w;
        uint64_t v[9];
        FST_UNROLL for (int ki = 0; ki < 3; ki++) {
            const i64 ih = (i64)oh * g.sh - g.ph + ki;
            float seg[3 * SW + 3];
            if (ih >= 0 && ih < g.h) k3_span<SW>(plane + ih * g.w, g.w, (i64)ow * SW, seg);
            else FST_UNROLL for (int s = 0; s < 3 * SW + 3; s++) seg[s] = 0.0f;
            FST_UNROLL for (int kj = 0; kj < 3; kj++) {
                uint64_t b = 0;
                FST_UNROLL for (int j = 0; j < 4; j++) b |= (uint64_t)bf16_bits(f2u(seg[j * SW + kj])) << (16 * j);
                v[ki * 3 + kj] = b;
            }
        }
        FST_UNROLL for (int t = 0; t < 9; t++) if (t < rows) store_bf16<4>(d + t * a.cols_p, v[t]);
        return;
    }
    i64 base[W], ih0[W], iw0[W];
    bool live[W];
    for (int j = 0; j < W; j++) {
        live[j] = col0 + (I)j < NL;
        base[j] = ((i64)img * g.c + ch) * g.h * g.w;   /* an offset, dereferenced only for live columns */
        ih0[j] = (i64)oh * g.sh - g.ph;
        iw0[j] = (i64)ow * g.sw - g.pw;
        if (++ow == wo) { ow = 0; if (++oh == ho) { oh = 0; img++; } }
    }
    for (i64 ki = 0; ki < g.kh; ki++)
        for (i64 kj = 0; kj < g.kw; kj++) {
            uint64_t v = 0;
            for (int j = 0; j < W; j++) {
                const i64 ih = ih0[j] + ki, iw = iw0[j] + kj;
                if (live[j] && ih >= 0 && ih < g.h && iw >= 0 && iw < g.w)
                    v |= (uint64_t)bf16_bits(f2u(LDG(a.x + base[j] + ih * g.w + iw))) << (16 * j);
            }
            store_bf16<W>(d + (ki * g.kw + kj) * a.cols_p, v);
        }
}
template <int W, int SW> FST_HD void im2col_bf16_w(i64 i, const fst_k_im2col_bf16_args &a) {
    const i64 khw = a.g.kh * a.g.kw, chans = (a.rows_p + khw - 1) / khw, n = chans * (a.cols_p / W);
    if (i >= n) return;
    if (chans * a.cols_p <= 0xffffffffLL) im2col_bf16_at<u32, W, SW>((u32)i, a); else im2col_bf16_at<i64, W, SW>(i, a);
}
FST_HD void k_im2col_bf16(i64 i, const fst_k_im2col_bf16_args &a) { im2col_bf16_w<1, 0>(i, a); }
FST_HD void k_im2col_bf16x4(i64 i, const fst_k_im2col_bf16_args &a) { im2col_bf16_w<4, 0>(i, a); }
FST_HD void k_im2col_bf16_s1(i64 i, const fst_k_im2col_bf16_args &a) { im2col_bf16_w<4, 1>(i, a); }
FST_HD void k_im2col_bf16_s2(i64 i, const fst_k_im2col_bf16_args &a) { im2col_bf16_w<4, 2>(i, a); }

/* Eight bf16 in one 16-byte store (d 16-byte aligned: cols_p % 8 == 0, checked by the launcher); lo holds values 0-3 */
FST_HD void store_bf16x8(u16 *d, uint64_t lo, uint64_t hi) {
#ifdef __CUDA_ARCH__
    *reinterpret_cast<uint4 *>(d) = make_uint4((unsigned)lo, (unsigned)(lo >> 32), (unsigned)hi, (unsigned)(hi >> 32));
#else
    for (int j = 0; j < 4; j++) { d[j] = (u16)(lo >> (16 * j)); d[4 + j] = (u16)(hi >> (16 * j)); }
#endif
}

/* The span kernel with eight columns per thread (FST4J_CUDA_IM2COL_VEC=8, for output rows of a multiple of 8 positions,
 * the launcher checks): each kernel row's span of 7 SW + 3 floats read once, the nine rows stored 16 bytes at a time,
 * half the threads and store instructions of the four-column kernel. Eight columns that do not lie in one output row
 * (never, at such rows) go as two groups of four. The same values. */
template <typename I, int SW> FST_HD void im2col_bf16_at8(I i, const fst_k_im2col_bf16_args &a) {
    const fst_geom &g = a.g;
    const I q = (I)(a.cols_p / 8), ch = i / q, col0 = (i - ch * q) * 8;
    const i64 khw = g.kh * g.kw, r0 = (i64)ch * khw;
    const I L = (I)(g.ho * g.wo), NL = (I)g.n * L, wo = (I)g.wo;
    const bool live = (i64)ch < g.c && col0 + 8 <= NL;   /* else zero rows or padding columns (no division by an empty L) */
    const I img = live ? col0 / L : 0, p = col0 - img * L, oh = live ? p / wo : 0, ow = p - oh * wo;
    if (!live || ow + 8 > wo) {
        im2col_bf16_cols<I, 4, SW>(ch, col0, a);
        im2col_bf16_cols<I, 4, SW>(ch, col0 + 4, a);
        return;
    }
    u16 *d = a.dst + r0 * a.cols_p + col0;
    const float *plane = a.x + ((i64)img * g.c + ch) * g.h * g.w;
    uint64_t lo[9], hi[9];
    FST_UNROLL for (int ki = 0; ki < 3; ki++) {
        const i64 ih = (i64)oh * g.sh - g.ph + ki;
        float seg[7 * SW + 3];
        if (ih >= 0 && ih < g.h) k3_span<SW, 8>(plane + ih * g.w, g.w, (i64)ow * SW, seg);
        else FST_UNROLL for (int s = 0; s < 7 * SW + 3; s++) seg[s] = 0.0f;
        FST_UNROLL for (int kj = 0; kj < 3; kj++) {
            uint64_t b0 = 0, b1 = 0;
            FST_UNROLL for (int j = 0; j < 4; j++) {
                b0 |= (uint64_t)bf16_bits(f2u(seg[j * SW + kj])) << (16 * j);
                b1 |= (uint64_t)bf16_bits(f2u(seg[(j + 4) * SW + kj])) << (16 * j);
            }
            lo[ki * 3 + kj] = b0;
            hi[ki * 3 + kj] = b1;
        }
    }
    FST_UNROLL for (int t = 0; t < 9; t++) store_bf16x8(d + t * a.cols_p, lo[t], hi[t]);
}
template <int SW> FST_HD void im2col_bf16_w8(i64 i, const fst_k_im2col_bf16_args &a) {
    const i64 khw = a.g.kh * a.g.kw, chans = (a.rows_p + khw - 1) / khw, n = chans * (a.cols_p / 8);
    if (i >= n) return;
    if (chans * a.cols_p <= 0xffffffffLL) im2col_bf16_at8<u32, SW>((u32)i, a); else im2col_bf16_at8<i64, SW>(i, a);
}
FST_HD void k_im2col_bf16_s1x8(i64 i, const fst_k_im2col_bf16_args &a) { im2col_bf16_w8<1>(i, a); }
FST_HD void k_im2col_bf16_s2x8(i64 i, const fst_k_im2col_bf16_args &a) { im2col_bf16_w8<2>(i, a); }

/* col2im: each dx element gathers its contributions in the CPU's order (kernel row, then column, from +0.0f):
 * bit-identical without atomics. */
FST_HD float col_value(const float *p) { return LDG(p); }
FST_HD float col_value(const uint16_t *p) { return u2f((u32)LDG(p) << 16); }

/* K3 = true: a 3x3 kernel at stride 1 (cuda_ops.c checks), the taps in fixed, unrolled loops: every load of a thread
 * is issued before the sums that use it (the general walk's loop exits made each wait on the one before: the bf16
 * col2im ran at about a quarter of the device's bandwidth). The same taps in the same order, so the same bits. */
template <typename I, int W, bool K3, typename T> FST_HD void col2im_at(I i, const T *cols, i64 ldc, const fst_geom &g, float *dx) {
    const I w = (I)g.w, h = (I)g.h, c = (I)g.c, e = i * W;
    const I q = e / w, iw0 = e - q * w, q2 = q / h, ih = q - q2 * h, img = q2 / c, ch = q2 - img * c;
    const i64 L = g.ho * g.wo;
    if (K3) {
        const T *base = cols + (i64)ch * 9 * ldc + (i64)img * L;
        const i64 th = (i64)ih + g.ph, tw0 = (i64)iw0 + g.pw;
        float v[3][3][W];
        FST_UNROLL for (int ki = 0; ki < 3; ki++)
            FST_UNROLL for (int kj = 0; kj < 3; kj++)
                FST_UNROLL for (int j = 0; j < W; j++) {
                    const i64 oh = th - ki, ow = tw0 + j - kj;   /* stride 1: the output position of tap (ki, kj) */
                    v[ki][kj][j] = oh >= 0 && oh < g.ho && ow >= 0 && ow < g.wo ? col_value(base + (ki * 3 + kj) * ldc + oh * g.wo + ow) : 0.0f;
                }
        float acc[W];
        FST_UNROLL for (int j = 0; j < W; j++) {
            float s = 0.0f;
            FST_UNROLL for (int ki = 0; ki < 3; ki++)
                FST_UNROLL for (int kj = 0; kj < 3; kj++) {
                    const i64 oh = th - ki, ow = tw0 + j - kj;
                    if (oh >= 0 && oh < g.ho && ow >= 0 && ow < g.wo) s = s + v[ki][kj][j];   /* only the taps the walk adds */
                }
            acc[j] = s;
        }
        store_f32<W>(dx + e, acc);
        return;
    }
    /* the output rows oh with oh * sh + ki - ph == ih for a tap 0 <= ki < kh: walked from the highest oh down, which is
     * ki ascending (the CPU's order: kernel row, then column), with two divisions instead of one per tap */
    const i64 th = (i64)ih + g.ph;
    i64 oh_hi = quot(th, g.sh, sizeof(I) == 4);   /* 32-bit where the grid is */
    if (oh_hi > g.ho - 1) oh_hi = g.ho - 1;
    const T *base = cols + (i64)ch * g.kh * g.kw * ldc + (i64)img * L;
    float acc[W];
    for (int j = 0; j < W; j++) {
        const i64 tw = (i64)iw0 + j + g.pw;
        i64 ow_hi = quot(tw, g.sw, sizeof(I) == 4);
        if (ow_hi > g.wo - 1) ow_hi = g.wo - 1;
        float s = 0.0f;
        for (i64 oh = oh_hi; oh >= 0; oh--) {
            const i64 ki = th - oh * g.sh;
            if (ki >= g.kh) break;
            for (i64 ow = ow_hi; ow >= 0; ow--) {
                const i64 kj = tw - ow * g.sw;
                if (kj >= g.kw) break;
                s = s + col_value(base + (ki * g.kw + kj) * ldc + oh * g.wo + ow);
            }
        }
        acc[j] = s;
    }
    store_f32<W>(dx + e, acc);
}
/* one thread per W dx elements of a row (W = 4 where w % 4 == 0 and dx is 16-byte aligned, cuda_ops.c: the index math
 * once per four, one 16-byte store), each the contributions in the CPU's order (kernel row, then column) from +0.0f;
 * index math as im2col_bf16_at's. A: fst_k_col2im_args (float32 columns) or fst_k_col2im_bf16_args (bf16 columns, a
 * bf16 GEMM product: each value exact in float32, the same sums) */
template <int W, bool K3, typename A> FST_HD void col2im_grid(i64 i, const A &a) {
    const fst_geom &g = a.g;
    const i64 n = g.n * g.c * g.h * g.w;
    if (i >= n / W) return;
    if (n <= 0xffffffffLL) col2im_at<u32, W, K3>((u32)i, a.cols, a.ldc, g, a.dx); else col2im_at<i64, W, K3>(i, a.cols, a.ldc, g, a.dx);
}
FST_HD void k_col2im(i64 i, const fst_k_col2im_args &a) { col2im_grid<1, false>(i, a); }
FST_HD void k_col2im_bf16(i64 i, const fst_k_col2im_bf16_args &a) { col2im_grid<1, false>(i, a); }
FST_HD void k_col2im_bf16x4(i64 i, const fst_k_col2im_bf16_args &a) { col2im_grid<4, false>(i, a); }
FST_HD void k_col2im_bf16_k3(i64 i, const fst_k_col2im_bf16_args &a) { col2im_grid<1, true>(i, a); }
FST_HD void k_col2im_bf16x4_k3(i64 i, const fst_k_col2im_bf16_args &a) { col2im_grid<4, true>(i, a); }

/* im2col at output positions pos[0..npos) of every image: column img*npos + q. pos is validated by the caller;
 * any position still reads only inside x or gives 0. */
FST_HD void k_im2col_at(i64 i, const fst_k_im2col_at_args &a) {
    const fst_geom &g = a.g;
    const i64 NP = g.n * a.npos, K = g.c * g.kh * g.kw;
    if (i >= K * NP) return;
    const i64 r = i / NP, col = i % NP, img = col / a.npos, q = col % a.npos;
    const i64 ch = r / (g.kh * g.kw), ki = (r / g.kw) % g.kh, kj = r % g.kw;
    const i64 p = LDG(a.pos + q);
    const i64 ih = (p / g.wo) * g.sh - g.ph + ki, iw = (p % g.wo) * g.sw - g.pw + kj;
    a.out[r * a.ldo + col] = (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) ? 0.0f : LDG(a.x + ((img * g.c + ch) * g.h + ih) * g.w + iw);
}

/* embedding rows (fst_k_embed_gather_args): the launcher validated nothing of idx's values (the caller did); an index
 * outside [0, v) still reads nothing outside w and gives 0 */
FST_HD void k_embed_gather(i64 i, const fst_k_embed_gather_args &a) {
    if (i >= a.n * a.d) return;
    const i64 r = i / a.d, j = i % a.d, v = LDG(a.idx + r);
    a.out[i] = (v < 0 || v >= a.v) ? 0.0f : LDG(a.w + v * a.d + j);
}

/* the weight's gradient, one thread per element: its row's positions in order, summed in double (a position outside
 * [0, n) adds nothing; off is clamped to [0, n]) */
FST_HD void k_embed_scatter(i64 i, const fst_k_embed_scatter_args &a) {
    if (i >= a.v * a.d) return;
    const i64 r = i / a.d, j = i % a.d;
    i64 k0 = LDG(a.off + r), k1 = LDG(a.off + r + 1);
    if (k0 < 0) k0 = 0;
    if (k1 > a.n) k1 = a.n;
    double s = 0;
    for (i64 k = k0; k < k1; k++) {
        const i64 p = LDG(a.pos + k);
        if (p >= 0 && p < a.n) s += (double)LDG(a.g + p * a.d + j);
    }
    a.dw[i] = (float)s;
}

/* ---- sorting along an axis (fst_k_sort_args) ---- */
/* A float's sort key: unsigned order is Sort.compare's (-0 and 0 one key, every NaN the largest key, above +inf);
 * bit-inverted for descending. Paired with the position below it, equal keys come out by position ascending. */
FST_HD uint64_t sort_pair(float v, i64 p, int descending) {
    u32 u = f2u(v), key;
    if ((u & 0x7fffffffu) > 0x7f800000u) key = 0xffffffffu;        /* NaN, any sign or payload */
    else {
        if ((u & 0x7fffffffu) == 0) u = 0;                           /* -0 is 0 */
        key = (u & 0x80000000u) ? ~u : (u | 0x80000000u);           /* negatives reversed below the positives */
    }
    if (descending) key = ~key;
    return ((uint64_t)key << 32) | (uint64_t)(u32)p;
}
/* one compare-exchange of the bitonic network: pairs (lo, lo + j) of the flattened keys, ascending where the
 * position within its line (P a power of two) has bit k clear */
FST_HD void sort_cmpx(uint64_t *k, i64 lo, i64 j, i64 pos, i64 kk) {
    const uint64_t a = k[lo], b = k[lo + j];
    if (((pos & kk) == 0) == (a > b)) { k[lo] = b; k[lo + j] = a; }
}
/* keys [lines, P]: pair (x[(o n + p) inner + j], p) at line o * inner + j, position p; all ones past n */
FST_HD void k_sort_keys(i64 i, const fst_k_sort_args &a) {
    if (i >= a.total) return;
    const i64 line = i / a.P, p = i % a.P, o = line / a.inner, j = line % a.inner;
    a.keys[i] = p < a.n ? sort_pair(LDG(a.x + (o * a.n + p) * a.inner + j), p, a.descending) : ~(uint64_t)0;
}
/* one global step (k, j) of the network, a thread per pair */
FST_HD void k_sort_stage(i64 t, const fst_k_sort_args &a) {
    if (t >= a.total / 2) return;
    const i64 lo = (t / a.j) * 2 * a.j + t % a.j;
    sort_cmpx(a.keys, lo, a.j, lo & (a.P - 1), a.k);
}
/* output element i of [outer, count, inner]: its line's sorted pair at start + c */
FST_HD void k_sort_select(i64 i, const fst_k_sort_args &a) {
    if (i >= a.outer * a.count * a.inner) return;
    const i64 o = i / (a.count * a.inner), r = i % (a.count * a.inner), c = r / a.inner, j = r % a.inner;
    const uint64_t *line = a.keys + (o * a.inner + j) * a.P;
    i64 start = a.start;
    if (a.median) {   /* ascending: NaNs last; a line holding one gives its first (binary search for the first NaN key) */
        start = (a.n - 1) / 2;
        if ((LDG(line + a.n - 1) >> 32) == 0xffffffffu) {
            i64 lo = 0, hi = a.n - 1;
            while (lo < hi) {
                const i64 mid = lo + (hi - lo) / 2;
                if ((LDG(line + mid) >> 32) == 0xffffffffu) hi = mid; else lo = mid + 1;
            }
            start = lo;
        }
    }
    const i64 p = (i64)(u32)LDG(line + start + c), s = (o * a.n + p) * a.inner + j;
    if (p >= a.n) {   /* a padding pair (never, with keys from k_sort_keys): nothing read outside x, no source for the gradient */
        a.values[i] = 0.0f;
        a.indices[i] = -1.0f;
        if (a.src) a.src[i] = -1;
        return;
    }
    a.values[i] = LDG(a.x + s);
    a.indices[i] = (float)p;
    if (a.src) a.src[i] = (int32_t)s;
}
/* the values' gradient back to its sources: each is selected at most once, so a plain store (no sum, no atomics) */
FST_HD void k_sort_scatter(i64 i, const fst_k_sort_scatter_args &a) {
    if (i >= a.m) return;
    const i64 s = LDG(a.src + i);
    if (s >= 0 && s < a.numel) a.dx[s] = LDG(a.g + i);
}

/* one lane (o, j) of [outer, n, inner] per thread (fst_k_lanes_args): the CPU loops' order and double arithmetic */
FST_HD void k_lanes(i64 i, const fst_k_lanes_args &a) {
    if (i >= a.outer * a.inner) return;
    const i64 o = i / a.inner, j = i % a.inner, base = o * a.n * a.inner + j, st = a.inner;
    if (a.op == FST_LANE_CUMSUM || a.op == FST_LANE_CUMSUM_REV) {
        const int rev = a.op == FST_LANE_CUMSUM_REV;
        double acc = 0;
        for (i64 t = 0; t < a.n; t++) {
            const i64 at = base + (rev ? a.n - 1 - t : t) * st;
            acc += (double)LDG(a.x + at);
            a.out[at] = (float)acc;
        }
        return;
    }
    double p = 1, others = 1;
    i64 zeros = 0, zeroAt = -1;
    for (i64 k = 0; k < a.n; k++) {
        const double e = LDG(a.x + base + k * st);
        p *= e;
        if (e == 0) { zeros++; zeroAt = k; } else others *= e;
    }
    if (a.op == FST_LANE_PROD) { a.out[i] = (float)p; return; }
    const double gg = LDG(a.g + i);   /* FST_LANE_PROD_BWD */
    for (i64 k = 0; k < a.n; k++) {
        const i64 at = base + k * st;
        a.out[at] = zeros == 0 ? (float)(gg * p / (double)LDG(a.x + at)) : zeros == 1 && k == zeroAt ? (float)(gg * others) : 0.0f;
    }
}

FST_HD void k_f32_to_bf16(i64 i, const fst_k_f2bf_args &a) {
    if (i < a.n) a.dst[i] = bf16_bits(f2u(a.src[i]));
}

/* The operand of a cuSPARSELt / bf16 GEMM, padded with zeros: one thread per W consecutive elements of a padded row
 * and one store (W = 4 where cols_p % 4 == 0: an 8-byte store instead of four 2-byte ones). */
template <int W> FST_HD void bf16_pad_w(i64 i, const fst_k_bf16_pad_args &a) {
    const i64 q = a.cols_p / W, n = a.rows_p * q;
    if (i >= n) return;
    const i64 r = quot(i, q, n <= 0xffffffffLL), c0 = (i - r * q) * W;
    uint64_t v = 0;
    if (r < a.rows)
        for (int j = 0; j < W; j++)
            if (c0 + j < a.cols) v |= (uint64_t)bf16_bits(f2u(LDG(a.src + r * a.rs + (c0 + j) * a.cs))) << (16 * j);
    store_bf16<W>(a.dst + r * a.cols_p + c0, v);
}
FST_HD void k_bf16_pad(i64 i, const fst_k_bf16_pad_args &a) { bf16_pad_w<1>(i, a); }
FST_HD void k_bf16_pad4(i64 i, const fst_k_bf16_pad_args &a) { bf16_pad_w<4>(i, a); }

/* Thread i of a walk over a contiguous [outer, inner, plane] in runs of W positions, in that order: false past the end;
 * else its row (outer * inner + inner index), the two indices and its run's first position (32-bit divisions where the
 * walk fits). The permutes between NCHW and [C, N*H*W] below take it, each with its own outer and inner. */
template <int W> FST_HD bool plane_run(i64 i, i64 outer, i64 inner, i64 plane, i64 &row, i64 &o, i64 &in, i64 &p0) {
    const i64 q = plane / W, n = outer * inner * q;
    if (i >= n) return false;
    const bool small = n * W <= 0xffffffffLL;
    row = quot(i, q, small); p0 = (i - row * q) * W;
    o = quot(row, inner, small); in = row - o * inner;
    return true;
}

/* One thread per W consecutive positions of one image's plane in one row (W = 4 where the plane is whole groups of four
 * and dst 16-byte aligned, cuda_ops.c): threads in dst's order, so the stores are coalesced, and so are the loads (a
 * plane is a contiguous run of a source row). Replaces bf16_unpad into [rows, N*plane] and the permute to NCHW after it:
 * one pass instead of two over the float32 output. */
template <int W> FST_HD void bf16_unpad_nchw_w(i64 i, const fst_k_bf16_unpad_nchw_args &a) {
    i64 row, img, r, p0;   /* row = img * rows + r, dst's [img, r] row */
    if (!plane_run<W>(i, a.imgs, a.rows, a.plane, row, img, r, p0)) return;
    const uint16_t *src = a.src + r * a.ld + img * a.plane + p0;
    float v[W];
    for (int j = 0; j < W; j++) v[j] = u2f((u32)LDG(src + j) << 16);   /* exact: every bf16 is a float32 */
    store_f32<W>(a.dst + row * a.plane + p0, v);
}
FST_HD void k_bf16_unpad_nchw(i64 i, const fst_k_bf16_unpad_nchw_args &a) { bf16_unpad_nchw_w<1>(i, a); }
FST_HD void k_bf16_unpad_nchw4(i64 i, const fst_k_bf16_unpad_nchw_args &a) { bf16_unpad_nchw_w<4>(i, a); }

/* The reverse walk: a batch [imgs, rows, plane] (NCHW dY) as the GEMM operand [rows, imgs * plane], float32 and, where
 * dst16 is set, its bf16 rounding too (bf16_pad's bits), from one read of the batch: the permute and the operand that
 * Eq. 2 and Eq. 3 both take in bf16 in one pass instead of a copy and a bf16_pad per GEMM. One thread per W consecutive
 * positions of one plane, in dst's order (coalesced stores; a plane is a contiguous run of the source too). */
template <int W> FST_HD void by_channel_w(i64 i, const fst_k_by_channel_args &a) {
    i64 row, r, img, p0;   /* row = r * imgs + img, dst's [r, img] run */
    if (!plane_run<W>(i, a.rows, a.imgs, a.plane, row, r, img, p0)) return;
    float v[W];
    load_f32<W>(a.src + (img * a.rows + r) * a.plane + p0, v);
    store_f32<W>(a.dst + row * a.plane + p0, v);
    if (a.dst16) {
        uint64_t b = 0;
        for (int j = 0; j < W; j++) b |= (uint64_t)bf16_bits(f2u(v[j])) << (16 * j);
        store_bf16<W>(a.dst16 + row * a.plane + p0, b);
    }
}
FST_HD void k_by_channel(i64 i, const fst_k_by_channel_args &a) { by_channel_w<1>(i, a); }
FST_HD void k_by_channel4(i64 i, const fst_k_by_channel_args &a) { by_channel_w<4>(i, a); }

/* One thread per FST_UNPAD_RUN consecutive elements of a row: one 16-byte load and two 16-byte stores where the
 * strides allow (cudaMalloc'd bases), element by element otherwise. */
FST_HD void k_bf16_unpad(i64 i, const fst_k_bf16_unpad_args &a) {
    const i64 runs = (a.cols + FST_UNPAD_RUN - 1) / FST_UNPAD_RUN;
    if (i >= a.rows * runs) return;
    const i64 r = quot(i, runs, a.rows * runs <= 0xffffffffLL), c0 = (i - r * runs) * FST_UNPAD_RUN;
    const uint16_t *src = a.src + r * a.ld + c0;
    float *dst = a.dst + r * a.cols + c0;
#ifdef __CUDA_ARCH__
    /* the bases 16-byte aligned too: a caller's output may start inside a block (a slice), and a misaligned 16-byte store
     * faults the context (audit, session 44; the emulator takes the element loop and never saw it) */
    if (c0 + FST_UNPAD_RUN <= a.cols && a.ld % 8 == 0 && a.cols % 4 == 0
        && (((unsigned long long)a.src | (unsigned long long)a.dst) & 15ULL) == 0) {
        uint4 in = *reinterpret_cast<const uint4 *>(src);
        u16 h[8];
        memcpy(h, &in, 16);
        float4 lo, hi;
        lo.x = u2f((u32)h[0] << 16); lo.y = u2f((u32)h[1] << 16); lo.z = u2f((u32)h[2] << 16); lo.w = u2f((u32)h[3] << 16);
        hi.x = u2f((u32)h[4] << 16); hi.y = u2f((u32)h[5] << 16); hi.z = u2f((u32)h[6] << 16); hi.w = u2f((u32)h[7] << 16);
        reinterpret_cast<float4 *>(dst)[0] = lo;
        reinterpret_cast<float4 *>(dst)[1] = hi;
        return;
    }
#endif
    for (int j = 0; j < FST_UNPAD_RUN && c0 + j < a.cols; j++) dst[j] = u2f((u32)LDG(src + j) << 16);   /* exact: every bf16 is a float32 */
}

/* ======================= elementwise ======================= */

/* Offset of logical row-major element i of [shape] (rank dims) under strides st. */
FST_HD i64 strided_offset(i64 i, int rank, const i64 *shape, const i64 *st) {
    i64 off = 0;
    for (int d = rank - 1; d >= 0; d--) { const i64 c = i % shape[d]; i /= shape[d]; off += c * st[d]; }
    return off;
}

/* Offsets of logical element i < n under two operands' strides (s2 may be s1). The host merged the dimensions
 * (cuda_ops.c's coalesce), so a contiguous operand has rank 1 and needs no division; below 2^31 elements the
 * divisions are 32-bit, several times cheaper on the device than 64-bit ones. */
FST_HD void offsets2(i64 i, i64 n, int rank, const i64 *shape, const i64 *s1, const i64 *s2, i64 &o1, i64 &o2) {
    if (rank == 1) { o1 = i * s1[0]; o2 = i * s2[0]; return; }
    o1 = 0; o2 = 0;
    if (n <= 0x7fffffff) {
        u32 rem = (u32)i;
        for (int d = rank - 1; d >= 0; d--) { const u32 e = (u32)shape[d], c = rem % e; rem /= e; o1 += c * s1[d]; o2 += c * s2[d]; }
    } else {
        i64 rem = i;
        for (int d = rank - 1; d >= 0; d--) { const i64 c = rem % shape[d]; rem /= shape[d]; o1 += c * s1[d]; o2 += c * s2[d]; }
    }
}

/* java.lang.Math.min(double, double): NaN wins, -0.0 < +0.0 */
FST_HD double jmin(double a, double b) {
    if (isnan_d(a)) return a;
    if (isnan_d(b)) return b;
    if (a == 0.0 && b == 0.0) return signbit(a) ? a : b;
    return a < b ? a : b;
}
/* java.lang.Math.pow: C's pow but for a NaN exponent (NaN, where C gives pow(1, NaN) = 1) and |x| == 1 with an infinite
 * exponent (NaN, where C gives 1); every other special case is the same in both */
FST_HD double jpow(double x, double y) {
    if (isnan_d(y) || (fabs(x) == 1.0 && isinf(y))) return NAN;
    return pow(x, y);
}
/* java.lang.Math.signum: +-1, or the argument itself for +-0 and NaN */
FST_HD double jsignum(double v) { return v > 0 ? 1.0 : v < 0 ? -1.0 : v; }

/* op(x, y) in double, each op the Java lambda's expression in its order */
FST_HD double binary_op(int op, double x, double y, double s) {
    switch (op) {
        case FST_BIN_ADD: return x + y;
        case FST_BIN_SUB: return x - y;
        case FST_BIN_MUL: return x * y;
        case FST_BIN_DIV: return x / y;
        case FST_BIN_ADD_RELU: { const double r = x + y; return r > 0 || r != r ? r : 0.0; }   /* Elementwise.addRelu's zip: NaN stays */
        case FST_BIN_RELU_BWD: return y > 0 ? x : 0.0;
        case FST_BIN_POW: return jpow(x, y);
        case FST_BIN_MAX: return jmax(x, y);
        case FST_BIN_MIN: return jmin(x, y);
        case FST_BIN_GT: return x > y ? 1.0 : 0.0;
        case FST_BIN_GE: return x >= y ? 1.0 : 0.0;
        case FST_BIN_LT: return x < y ? 1.0 : 0.0;
        case FST_BIN_LE: return x <= y ? 1.0 : 0.0;
        case FST_BIN_EQ: return x == y ? 1.0 : 0.0;
        case FST_BIN_SIGMOID_BWD: return x * y * (1 - y);
        case FST_BIN_TANH_BWD: return x * (1 - y * y);
        case FST_BIN_MASK: return y != 0 ? x : 0.0;
        case FST_BIN_MASK_NOT: return y != 0 ? 0.0 : x;
        case FST_BIN_BCE_LIN: return (1 - y) * x;
        case FST_BIN_SMOOTH_L1_BWD: return x * (fabs(y) < s ? y / s : jsignum(y));
        case FST_BIN_SIN_BWD: return x * cos(y);
        case FST_BIN_COS_BWD: return x * -sin(y);
        case FST_BIN_LOG1P_BWD: return x * (1 / (y + 1));
        default: return x * exp(y);   /* FST_BIN_EXPM1_BWD */
    }
}

/* out[i] = op(a, b) with both broadcast by their strides; in double then rounded, as Elementwise.zip does. */
FST_HD void k_binary(i64 i, const fst_k_binary_args &a) {
    if (i >= a.n) return;
    i64 oa, ob;
    offsets2(i, a.n, a.rank, a.shape, a.sa, a.sb, oa, ob);
    a.out[i] = (float)binary_op(a.op, a.a[oa], a.b[ob], a.s);
}

/* k_binary on four consecutive elements where a, b and out are one contiguous run each (n % 4 == 0, 16-byte aligned;
 * the launcher checks): 16-byte loads and stores and no index math. The residual adds and ReLU backwards of a ResNet
 * step are such calls. Plain loads, not __ldg: out may be a or b (an in-place add). */
FST_HD void k_binary4(i64 i, const fst_k_binary_args &a) {
    if (i >= a.n / 4) return;
    float x[4], y[4], r[4];
#ifdef __CUDA_ARCH__
    const float4 p = reinterpret_cast<const float4 *>(a.a)[i], q = reinterpret_cast<const float4 *>(a.b)[i];
    x[0] = p.x; x[1] = p.y; x[2] = p.z; x[3] = p.w; y[0] = q.x; y[1] = q.y; y[2] = q.z; y[3] = q.w;
#else
    for (int j = 0; j < 4; j++) { x[j] = a.a[4 * i + j]; y[j] = a.b[4 * i + j]; }
#endif
    for (int j = 0; j < 4; j++) r[j] = (float)binary_op(a.op, x[j], y[j], a.s);
    store_f32<4>(a.out + 4 * i, r);
}

/* out[i] = cond != 0 ? a : b, the three broadcast by their strides (Elementwise.where: the chosen float as it is) */
FST_HD void k_where(i64 i, const fst_k_where_args &a) {
    if (i >= a.n) return;
    i64 oc = 0, oa = 0, ob = 0;
    if (a.n <= 0x7fffffff) {
        u32 rem = (u32)i;
        for (int d = a.rank - 1; d >= 0; d--) {
            const u32 e = (u32)a.shape[d], c = rem % e;
            rem /= e; oc += c * a.sc[d]; oa += c * a.sa[d]; ob += c * a.sb[d];
        }
    } else {
        i64 rem = i;
        for (int d = a.rank - 1; d >= 0; d--) {
            const i64 c = rem % a.shape[d];
            rem /= a.shape[d]; oc += c * a.sc[d]; oa += c * a.sa[d]; ob += c * a.sb[d];
        }
    }
    a.out[i] = (double)a.c[oc] != 0 ? a.a[oa] : a.b[ob];
}

/* y[i] = op(x[strided i]) as Elementwise.map does (double, then rounded); COPY keeps the bits. */
FST_HD void k_unary(i64 i, const fst_k_unary_args &a) {
    if (i >= a.n) return;
    if (a.op == FST_UN_FILL) { a.y[i] = (float)a.s; return; }
    i64 ox, unused;
    offsets2(i, a.n, a.rank, a.shape, a.sx, a.sx, ox, unused);
    const float xf = a.x[ox];
    const double x = xf;
    float r;
    switch (a.op) {
        case FST_UN_COPY: r = xf; break;
        case FST_UN_RELU: r = (float)(x > 0 || x != x ? x : 0.0); break;
        case FST_UN_NEG: r = (float)(-x); break;
        case FST_UN_ABS: r = (float)fabs(x); break;
        case FST_UN_ADD_SCALAR: r = (float)(x + a.s); break;
        case FST_UN_MUL_SCALAR: r = (float)(x * a.s); break;
        case FST_UN_EXP: r = (float)exp(x); break;
        case FST_UN_LOG: r = (float)log(x); break;
        case FST_UN_SQRT: r = (float)sqrt(x); break;
        case FST_UN_POW: r = (float)jpow(x, a.s); break;
        case FST_UN_SIGMOID: r = (float)(x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x))); break;
        case FST_UN_TANH: r = (float)tanh(x); break;
        case FST_UN_RSUB_SCALAR: r = (float)(a.s - x); break;
        case FST_UN_SOFTPLUS_NEG: r = (float)(jmax(-x, 0.0) + log1p(exp(-fabs(x)))); break;
        case FST_UN_SIGMOID_NEG: r = (float)(x >= 0 ? exp(-x) / (1 + exp(-x)) : 1 / (1 + exp(x))); break;
        case FST_UN_SMOOTH_L1: r = (float)(fabs(x) < a.s ? 0.5 * x * x / a.s : fabs(x) - 0.5 * a.s); break;
        case FST_UN_SIN: r = (float)sin(x); break;
        case FST_UN_COS: r = (float)cos(x); break;
        case FST_UN_LOG1P: r = (float)log1p(x); break;
        default: r = (float)expm1(x); break;   /* FST_UN_EXPM1 */
    }
    a.y[i] = r;
}

/* A copy (k_unary's COPY) whose innermost dimension is contiguous in x and a multiple of 4 long, with x and y 16-byte
 * aligned and every other stride a multiple of 4 (checked by the launcher): one thread per 4 consecutive elements, one
 * 16-byte load and store, a quarter of the index math. The layout permutes of a convolution step are such copies. */
FST_HD void k_copy4(i64 i, const fst_k_unary_args &a) {
    if (i >= a.n / 4) return;
    i64 ox, unused;
    offsets2(4 * i, a.n, a.rank, a.shape, a.sx, a.sx, ox, unused);
#ifdef __CUDA_ARCH__
    reinterpret_cast<float4 *>(a.y)[i] = __ldg(reinterpret_cast<const float4 *>(a.x + ox));
#else
    for (int j = 0; j < 4; j++) a.y[4 * i + j] = a.x[ox + j];
#endif
}

/* ======================= reductions ======================= */

/* One partial sum of output o: reduced coordinates p, p + FST_PARTS, ... (fst4j_kargs.h) */
FST_HD void k_sum_part(i64 i, const fst_k_sum_args &a) {
    if (i >= a.nout * FST_PARTS) return;
    const i64 o = i / FST_PARTS, p = i % FST_PARTS;
    const i64 base = strided_offset(o, a.krank, a.kshape, a.kstride);
    double acc = 0;
    for (i64 r = p; r < a.nred; r += FST_PARTS) acc += a.x[base + strided_offset(r, a.rrank, a.rshape, a.rstride)];
    a.work[i] = acc;
}

FST_HD void k_sum(i64 i, const fst_k_sum_args &a) {
    if (i >= a.nout) return;
    double acc = 0;
    if (a.work) {
        for (i64 p = 0; p < FST_PARTS; p++) acc += a.work[i * FST_PARTS + p];
    } else {
        const i64 base = strided_offset(i, a.krank, a.kshape, a.kstride);
        for (i64 r = 0; r < a.nred; r++) acc += a.x[base + strided_offset(r, a.rrank, a.rshape, a.rstride)];
    }
    a.out[i] = (float)(a.mean ? acc / (double)a.nred : acc);
}

/* max / argmax (fst_k_argmax_args): whether the candidate (v at reduced index r) replaces the current choice (b at rb) of
 * a scan in increasing r: the first largest value, a NaN winning (a later NaN replaces an earlier one only for max) */
FST_HD bool argmax_takes(double v, double b, bool last_nan) {
    if (isnan_d(b)) return last_nan && isnan_d(v);
    return v > b || isnan_d(v);
}

/* The scan of output o over reduced indices r0, r0 + step, ... < nred: the chosen value and r (r = -1: none). */
FST_HD void argmax_scan(const fst_k_argmax_args &a, i64 o, i64 r0, i64 step, double &best, i64 &arg) {
    const i64 base = strided_offset(o, a.krank, a.kshape, a.kstride);
    best = -INFINITY;
    arg = -1;
    for (i64 r = r0; r < a.nred; r += step) {
        const double v = a.x[base + strided_offset(r, a.rrank, a.rshape, a.rstride)];
        if (arg < 0 || argmax_takes(v, best, a.last_nan)) { best = v; arg = r; }
    }
}

FST_HD void k_argmax_part(i64 i, const fst_k_argmax_args &a) {
    if (i >= a.nout * FST_PARTS) return;
    double best;
    i64 arg;
    argmax_scan(a, i / FST_PARTS, i % FST_PARTS, FST_PARTS, best, arg);
    a.work[i] = best;
    a.iwork[i] = arg;
}

/* One thread per output: the serial scan, or the partial scans combined in order. Every partial holds the element its
 * own serial scan chose; among them the serial scan of all would choose a NaN (the first or the last by r) if there is
 * one, else the largest value with the smallest r: so the same element. */
FST_HD void k_argmax(i64 o, const fst_k_argmax_args &a) {
    if (o >= a.nout) return;
    double best;
    i64 arg;
    if (a.work && a.nred > FST_PARTS) {
        best = a.work[o * FST_PARTS];
        arg = a.iwork[o * FST_PARTS];
        for (i64 p = 1; p < FST_PARTS; p++) {
            const double v = a.work[o * FST_PARTS + p];
            const i64 r = a.iwork[o * FST_PARTS + p];
            if (r < 0) continue;
            bool take;
            if (isnan_d(v)) take = !isnan_d(best) || (a.last_nan ? r > arg : r < arg);
            else take = !isnan_d(best) && (v > best || (v == best && r < arg));
            if (take) { best = v; arg = r; }
        }
    } else {
        argmax_scan(a, o, 0, 1, best, arg);
    }
    if (a.out) a.out[o] = (float)best;
    if (a.arg) a.arg[o] = (float)arg;
}

/* variance (fst_k_var_args): sum over the reduced indices r0, r0 + step, ... of x (phase 0) or of (x - mean)^2 */
FST_HD double var_sum(const fst_k_var_args &a, i64 o, i64 r0, i64 step, bool squares, double mean) {
    const i64 base = strided_offset(o, a.krank, a.kshape, a.kstride);
    double acc = 0;
    for (i64 r = r0; r < a.nred; r += step) {
        const double v = a.x[base + strided_offset(r, a.rrank, a.rshape, a.rstride)];
        if (squares) { const double d = v - mean; acc += d * d; } else acc += v;
    }
    return acc;
}

FST_HD void k_var_part(i64 i, const fst_k_var_args &a) {
    if (i >= a.nout * FST_PARTS) return;
    const i64 o = i / FST_PARTS;
    a.work[a.nout + i] = var_sum(a, o, i % FST_PARTS, FST_PARTS, a.phase != 0, a.phase != 0 ? a.work[o] : 0.0);
}

FST_HD double var_parts(const fst_k_var_args &a, i64 o) {
    double acc = 0;
    for (i64 p = 0; p < FST_PARTS; p++) acc += a.work[a.nout + o * FST_PARTS + p];
    return acc;
}

FST_HD void k_var_mean(i64 o, const fst_k_var_args &a) {
    if (o >= a.nout) return;
    a.work[o] = var_parts(a, o) / (double)a.nred;
}

FST_HD void k_var(i64 o, const fst_k_var_args &a) {
    if (o >= a.nout) return;
    double sq;
    if (a.work && a.nred > FST_PARTS) {
        sq = var_parts(a, o);
    } else {
        const double mean = var_sum(a, o, 0, 1, false, 0.0) / (double)a.nred;
        sq = var_sum(a, o, 0, 1, true, mean);
    }
    a.out[o] = (float)(sq / a.denom);
}

/* ======================= pooling ======================= */

/* Max pool: one thread per output; the CPU's scan (row-major window, first maximum, a NaN wins and ends it). The
 * output's coordinates by 32-bit divisions where the outputs fit in 32 bits (run 39, H200: the ResNet stem's pool
 * 0.88 -> 0.81 ms, so the 64-bit divisions were not what bounds it). */
template <typename I> FST_HD void maxpool_coords(I i, const fst_geom &g, i64 &ow, i64 &oh, i64 &p) {
    const I wo = (I)g.wo, ho = (I)g.ho, r = i / wo, q = r / ho;
    ow = (i64)(i - r * wo); oh = (i64)(r - q * ho); p = (i64)q;
}
FST_HD void k_maxpool(i64 i, const fst_k_maxpool_args &a) {
    const fst_geom &g = a.g;
    const i64 total = g.n * g.c * g.ho * g.wo;
    if (i >= total) return;
    i64 ow, oh, p;
    if (total <= 0xffffffffLL) maxpool_coords<u32>((u32)i, g, ow, oh, p); else maxpool_coords<i64>(i, g, ow, oh, p);
    const i64 h0 = oh * g.sh - g.ph > 0 ? oh * g.sh - g.ph : 0, h1 = oh * g.sh - g.ph + g.kh < g.h ? oh * g.sh - g.ph + g.kh : g.h;
    const i64 w0 = ow * g.sw - g.pw > 0 ? ow * g.sw - g.pw : 0, w1 = ow * g.sw - g.pw + g.kw < g.w ? ow * g.sw - g.pw + g.kw : g.w;
    const float *x = a.x + p * g.h * g.w;
    double best = -INFINITY;
    i64 arg = h0 * g.w + w0;
    bool done = false;
    for (i64 ih = h0; ih < h1 && !done; ih++)
        for (i64 iw = w0; iw < w1; iw++) {
            const double v = x[ih * g.w + iw];
            if (v > best || isnan_d(v)) {
                best = v;
                arg = ih * g.w + iw;
                if (isnan_d(v)) { done = true; break; }
            }
        }
    a.y[i] = (float)best;
    a.idx[i] = (int32_t)arg;
}

/* Max pool backward: one thread per plane zeroes its dx plane, then adds each dy at its argmax in ascending output
 * order, exactly the CPU's scatter (float sums rounded from double), so bit-identical without atomics. An index
 * outside the plane (the Java side rejects them first) is skipped. */
FST_HD void k_maxpool_bwd(i64 p, const fst_k_maxpool_bwd_args &a) {
    if (p >= a.planes) return;
    float *dx = a.dx + p * a.in_plane;
    const float *dy = a.dy + p * a.out_plane;
    const int32_t *idx = a.idx + p * a.out_plane;
    for (i64 q = 0; q < a.in_plane; q++) dx[q] = 0.0f;
    for (i64 o = 0; o < a.out_plane; o++) {
        const i64 t = idx[o];
        if (t >= 0 && t < a.in_plane) dx[t] = (float)((double)dx[t] + (double)dy[o]);
    }
}

/* Max pool backward with the pooling geometry: each dx element gathers the dy of the windows that contain it and chose
 * it, in ascending output order, with the scatter's roundings (float sums from double, starting at +0.0f): the same bits
 * as k_maxpool_bwd, with a thread per W elements instead of a thread per plane. Thread i takes the W elements from W i
 * on, in one input row (w % W == 0, checked by the launcher), sharing their plane, row and window rows: with one
 * element per thread, a ResNet stem's 205M elements took 3 ms on an H100 (about 3x a plain elementwise pass). */
template <int W> FST_HD void maxpool_bwd_gather_w(i64 i, const fst_k_maxpool_bwd_gather_args &a) {
    const fst_geom &g = a.g;
    const i64 in_plane = g.h * g.w, out_plane = g.ho * g.wo, total = g.n * g.c * in_plane;
    if (i >= total / W) return;
    const bool small = total <= 0xffffffffLL;
    const i64 e = i * W, p = quot(e, in_plane, small), t0 = e - p * in_plane, ih = quot(t0, g.w, small), iw0 = t0 - ih * g.w;
    const i64 lh = ih + g.ph - g.kh + 1;
    const i64 oh0 = lh <= 0 ? 0 : quot(lh + g.sh - 1, g.sh, small);
    i64 oh1 = quot(ih + g.ph, g.sh, small);
    if (oh1 > g.ho - 1) oh1 = g.ho - 1;
    const int32_t *idx = a.idx + p * out_plane;
    const float *dy = a.dy + p * out_plane;
    i64 ow0[W], ow1[W];
    for (int j = 0; j < W; j++) {
        const i64 iw = iw0 + j, lw = iw + g.pw - g.kw + 1;
        ow0[j] = lw <= 0 ? 0 : quot(lw + g.sw - 1, g.sw, small);
        ow1[j] = quot(iw + g.pw, g.sw, small);
        if (ow1[j] > g.wo - 1) ow1[j] = g.wo - 1;
    }
    float acc[W];
    if (oh1 - oh0 < 2 && ow1[W - 1] - ow0[0] < 4) {
        /* the group's windows lie in 2 rows and 4 columns (a 3x3 pool at stride 2, for one): all their indices and dy
         * loaded first, then each element's sum in the same order (the loop below waits on each load in turn) */
        int32_t iv[2][4];
        float dv[2][4];
        FST_UNROLL for (int r = 0; r < 2; r++)
            FST_UNROLL for (int q = 0; q < 4; q++) {
                const bool in = oh0 + r <= oh1 && ow0[0] + q <= ow1[W - 1];
                const i64 o = (oh0 + r) * g.wo + ow0[0] + q;
                iv[r][q] = in ? LDG(idx + o) : -1;   /* an index is >= 0 */
                dv[r][q] = in ? LDG(dy + o) : 0.0f;
            }
        FST_UNROLL for (int j = 0; j < W; j++) {
            float s = 0.0f;
            FST_UNROLL for (int r = 0; r < 2; r++)
                FST_UNROLL for (int q = 0; q < 4; q++) {
                    const i64 ow = ow0[0] + q;
                    if (ow >= ow0[j] && ow <= ow1[j] && iv[r][q] == t0 + j) s = (float)((double)s + (double)dv[r][q]);
                }
            acc[j] = s;
        }
    } else {
        for (int j = 0; j < W; j++) {
            float s = 0.0f;
            for (i64 oh = oh0; oh <= oh1; oh++)
                for (i64 ow = ow0[j]; ow <= ow1[j]; ow++) {
                    const i64 o = oh * g.wo + ow;
                    if (LDG(idx + o) == t0 + j) s = (float)((double)s + (double)LDG(dy + o));
                }
            acc[j] = s;
        }
    }
    store_f32<W>(a.dx + e, acc);
}
FST_HD void k_maxpool_bwd_gather(i64 i, const fst_k_maxpool_bwd_gather_args &a) { maxpool_bwd_gather_w<1>(i, a); }
FST_HD void k_maxpool_bwd_gather4(i64 i, const fst_k_maxpool_bwd_gather_args &a) { maxpool_bwd_gather_w<4>(i, a); }

/* maxpool_bwd_gather_w<4> for the 3x3 window at stride 2 and padding 1 (a ResNet stem's pool; the launcher checks the
 * geometry, w % 4 == 0 and dx's alignment): element ih of a column lies in the windows of output rows ih >> 1 ..
 * (ih + 1) >> 1, so a thread's four elements from column 4m on need output columns 2m .. 2m + 2 of at most two rows,
 * found by shifts instead of the general form's twelve divisions, and each element tries its at most four windows
 * instead of eight. The same windows in the same ascending output order and the same roundings: the same bits. */
FST_HD void k_maxpool_bwd_k3s2(i64 i, const fst_k_maxpool_bwd_gather_args &a) {
    const fst_geom &g = a.g;
    const i64 in_plane = g.h * g.w, out_plane = g.ho * g.wo, total = g.n * g.c * in_plane;
    if (i >= total / 4) return;
    const bool small = total <= 0xffffffffLL;
    const i64 e = i * 4, p = quot(e, in_plane, small), t0 = e - p * in_plane, ih = quot(t0, g.w, small), iw0 = t0 - ih * g.w;
    const i64 oh0 = ih >> 1, oh1 = ((ih + 1) >> 1) < g.ho ? (ih + 1) >> 1 : g.ho - 1, ow0 = iw0 >> 1;
    const int32_t *idx = a.idx + p * out_plane;
    const float *dy = a.dy + p * out_plane;
    int32_t iv[2][3];
    float dv[2][3];
    FST_UNROLL for (int r = 0; r < 2; r++)
        FST_UNROLL for (int q = 0; q < 3; q++) {
            const bool in = oh0 + r <= oh1 && ow0 + q < g.wo;
            const i64 o = (oh0 + r) * g.wo + ow0 + q;
            iv[r][q] = in ? LDG(idx + o) : -1;   /* an index is >= 0 */
            dv[r][q] = in ? LDG(dy + o) : 0.0f;
        }
    float acc[4];
    FST_UNROLL for (int j = 0; j < 4; j++) {   /* element iw0 + j: output columns ow0 + (j >> 1) .. ow0 + ((j + 1) >> 1) */
        float s = 0.0f;
        FST_UNROLL for (int r = 0; r < 2; r++)
            FST_UNROLL for (int q = j >> 1; q <= (j + 1) >> 1; q++)
                if (iv[r][q] == t0 + j) s = (float)((double)s + (double)dv[r][q]);
        acc[j] = s;
    }
    store_f32<4>(a.dx + e, acc);
}

FST_HD i64 bin_start(i64 i, i64 in, i64 out) { return i * in / out; }
FST_HD i64 bin_end(i64 i, i64 in, i64 out) { return ((i + 1) * in + out - 1) / out; }

FST_HD void k_adaptive_avg(i64 i, const fst_k_adaptive_avg_args &a) {
    if (i >= a.n * a.c * a.oh * a.ow) return;
    const i64 ow = i % a.ow, oh = (i / a.ow) % a.oh, p = i / (a.ow * a.oh);
    const i64 h0 = bin_start(oh, a.h, a.oh), h1 = bin_end(oh, a.h, a.oh), w0 = bin_start(ow, a.w, a.ow), w1 = bin_end(ow, a.w, a.ow);
    const float *x = a.x + p * a.h * a.w;
    double s = 0;
    for (i64 ih = h0; ih < h1; ih++)
        for (i64 iw = w0; iw < w1; iw++) s += x[ih * a.w + iw];
    a.y[i] = (float)(s / (double)((h1 - h0) * (w1 - w0)));
}

/* Gather form of the CPU's scatter: bins in ascending output order, each adding dy / bin size (double, rounded). */
FST_HD void k_adaptive_avg_bwd(i64 i, const fst_k_adaptive_avg_bwd_args &a) {
    if (i >= a.n * a.c * a.h * a.w) return;
    const i64 iw = i % a.w, ih = (i / a.w) % a.h, p = i / (a.w * a.h);
    const float *dy = a.dy + p * a.oh * a.ow;
    float acc = 0.0f;
    for (i64 oh = 0; oh < a.oh; oh++) {
        const i64 h0 = bin_start(oh, a.h, a.oh), h1 = bin_end(oh, a.h, a.oh);
        if (ih < h0 || ih >= h1) continue;
        for (i64 ow = 0; ow < a.ow; ow++) {
            const i64 w0 = bin_start(ow, a.w, a.ow), w1 = bin_end(ow, a.w, a.ow);
            if (iw < w0 || iw >= w1) continue;
            acc = (float)((double)acc + (double)dy[oh * a.ow + ow] / (double)((h1 - h0) * (w1 - w0)));
        }
    }
    a.dx[i] = acc;
}

/* ======================= batch norm (training) ======================= */

/* The channel of NCHW element i (of n elements): 32-bit divisions below 2^32 elements. */
FST_HD i64 chan_of(i64 i, i64 n, i64 c, i64 hw) {
    const bool small = n <= 0xffffffffLL;
    const i64 q = quot(i, hw, small);
    return q - quot(q, c, small) * c;
}

/* The elements q = p, p + step, p + 2 step, ... < n*hw of channel ch, in that order, as offsets into NCHW
 * ((q / hw * c + ch) * hw + q % hw), stepped without a division per element: the partial sums are bound by index math otherwise. */
#define BN_BATCH 8
struct chan_walk {
    i64 img, pos, n, c, ch, hw, step;
    FST_HD_MEMBER chan_walk(i64 p, i64 ch_, const i64 n_, i64 c_, i64 hw_, i64 step_)
        : img(p / hw_), pos(p % hw_), n(n_), c(c_), ch(ch_), hw(hw_), step(step_) {}
    FST_HD_MEMBER bool more() const { return img < n; }
    FST_HD_MEMBER i64 at() const { return (img * c + ch) * hw + pos; }
    /* pos < hw + step < 2^32: one 32-bit division where the step crosses an image (every step when hw < step) */
    FST_HD_MEMBER void next() {
        pos += step;
        if (pos >= hw) { const i64 d = quot(pos, hw, true); img += d; pos -= d * hw; }
    }
    /* the next up to B offsets into at[] (their count returned): the loads of a batch are issued before the sums that
     * use them, in the same order, so that a thread has B loads in flight instead of one */
    template <int B> FST_HD_MEMBER int batch(i64 *at) {   /* fixed trip counts with guards: the arrays stay in registers */
        int k = 0;
        FST_UNROLL for (int j = 0; j < B; j++) if (more()) { at[j] = this->at(); next(); k = j + 1; }
        return k;
    }
};

/* The ordered sum of one channel's partial sums w[0 .. parts) (parts a multiple of BN_BATCH): loads batched ahead of
 * the additions, which stay in order p = 0, 1, ... (the single thread per channel would wait on each load otherwise) */
FST_HD double bn_sum_parts(const double *w, i64 parts) {
    double s = 0, v[BN_BATCH];
    for (i64 p = 0; p < parts; p += BN_BATCH) {
        FST_UNROLL for (int j = 0; j < BN_BATCH; j++) v[j] = LDG(w + p + j);
        FST_UNROLL for (int j = 0; j < BN_BATCH; j++) s += v[j];
    }
    return s;
}

/* Channel row r's total of partial sums (parts each, from work + 3c): its FST_BN_FOLD folded sums where bn_fold ran
 * (parts > FST_PARTS), else its partials in order */
FST_HD double bn_total(const double *work, i64 c, i64 parts, i64 rows, i64 r) {
    const double *partials = work + 3 * c;
    return parts > FST_PARTS ? bn_sum_parts(partials + rows * c * parts + r * FST_BN_FOLD, FST_BN_FOLD)
                             : bn_sum_parts(partials + r * parts, parts);
}

FST_HD void k_bn_fold(i64 i, const fst_k_bn_fold_args &a) {
    if (i >= a.rows * FST_BN_FOLD) return;
    const i64 r = i / FST_BN_FOLD, g = i % FST_BN_FOLD, run = a.parts / FST_BN_FOLD;
    a.out[i] = bn_sum_parts(a.in + r * a.parts + g * run, run);
}

/* The partial sums walk units of V elements of a channel (V = 4 where hw % 4 == 0, the operands are 16-byte aligned
 * and there are more than FST_PARTS partial sums, cuda_ops.c): partial p sums the units p, p + parts, p + 2 parts, ...,
 * each unit's elements in order, with 16-byte loads (one float per load reached about a third of the device's
 * bandwidth). BN_UNITS(V) units per batch: 8 floats per thread in flight with V = 1, 16 with V = 4. */
#define BN_UNITS(V) ((V) == 1 ? BN_BATCH : BN_BATCH / 2)
template <int V> FST_HD chan_walk bn_walk(i64 i, i64 parts, i64 ch, i64 n, i64 c, i64 hw) {
    return chan_walk(i % parts * V, ch, n, c, hw, parts * V);
}

/* SQ = false: partial sums of x (mean 0 subtracted: the same value, -0 included); true: of (x - mean)^2 */
template <int V, bool SQ> FST_HD void bn_part_x_v(i64 i, const fst_k_bn_train_args &a) {
    if (i >= a.c * a.parts) return;
    const i64 ch = i / a.parts;
    const double mu = SQ ? a.work[2 * a.c + ch] : 0.0;
    double s = 0;
    i64 at[BN_UNITS(V)];
    float v[BN_UNITS(V)][V];
    for (chan_walk q = bn_walk<V>(i, a.parts, ch, a.n, a.c, a.hw); q.more();) {
        const int k = q.batch<BN_UNITS(V)>(at);
        FST_UNROLL for (int j = 0; j < BN_UNITS(V); j++) if (j < k) load_f32<V>(a.x + at[j], v[j]);
        FST_UNROLL for (int j = 0; j < BN_UNITS(V); j++) if (j < k) for (int u = 0; u < V; u++) {
            const double d = v[j][u] - mu;
            s += SQ ? d * d : d;
        }
    }
    a.work[3 * a.c + i] = s;
}
FST_HD void k_bn_part_sum(i64 i, const fst_k_bn_train_args &a) { bn_part_x_v<1, false>(i, a); }
FST_HD void k_bn_part_sum4(i64 i, const fst_k_bn_train_args &a) { bn_part_x_v<4, false>(i, a); }

FST_HD void k_bn_mean(i64 ch, const fst_k_bn_train_args &a) {
    if (ch >= a.c) return;
    a.work[2 * a.c + ch] = bn_total(a.work, a.c, a.parts, 1, ch) / (double)(a.n * a.hw);
}

FST_HD void k_bn_part_sq(i64 i, const fst_k_bn_train_args &a) { bn_part_x_v<1, true>(i, a); }
FST_HD void k_bn_part_sq4(i64 i, const fst_k_bn_train_args &a) { bn_part_x_v<4, true>(i, a); }

FST_HD void k_bn_stats(i64 ch, const fst_k_bn_train_args &a) {
    if (ch >= a.c) return;
    const i64 m = a.n * a.hw;
    const double sq = bn_total(a.work, a.c, a.parts, 1, ch);
    const double mu = a.work[2 * a.c + ch];
    const double var = sq / (double)m, is = 1.0 / sqrt(var + a.eps);
    const double gm = a.gamma ? a.gamma[ch] : 1.0, bt = a.beta ? a.beta[ch] : 0.0;
    const double scale = gm * is, shift = bt - mu * scale;
    a.work[2 * ch] = scale;
    a.work[2 * ch + 1] = shift;
    a.mean[ch] = (float)mu;
    a.invstd[ch] = (float)is;
    if (a.rmean) a.rmean[ch] = (float)((1 - a.momentum) * a.rmean[ch] + a.momentum * mu);
    if (a.rvar) {
        const double unbiased = m > 1 ? sq / (double)(m - 1) : var;
        a.rvar[ch] = (float)((1 - a.momentum) * a.rvar[ch] + a.momentum * unbiased);
    }
}

/* The per-element passes take W elements of one channel plane per thread (W = 4 where hw % 4 == 0, cuda_ops.c): one
 * channel lookup and 16-byte loads and stores per four elements (one element per thread reached about half the
 * device's bandwidth). */
template <int W> FST_HD void bn_apply_w(i64 i, const fst_k_bn_train_args &a) {
    const i64 total = a.n * a.c * a.hw;
    if (i >= total / W) return;
    const i64 e = i * W, ch = chan_of(e, total, a.c, a.hw);
    const double scale = a.work[2 * ch], shift = a.work[2 * ch + 1];
    float x[W], y[W];
    load_f32<W>(a.x + e, x);
    for (int j = 0; j < W; j++) {
        const float v = (float)(x[j] * scale + shift);
        y[j] = a.relu && !(v > 0) && v == v ? 0.0f : v;   /* k_unary's ReLU of the stored value: -0 becomes +0, NaN stays */
    }
    store_f32<W>(a.y + e, y);
}
FST_HD void k_bn_apply(i64 i, const fst_k_bn_train_args &a) { bn_apply_w<1>(i, a); }
FST_HD void k_bn_apply4(i64 i, const fst_k_bn_train_args &a) { bn_apply_w<4>(i, a); }

template <int V> FST_HD void bn_bwd_part_v(i64 i, const fst_k_bn_bwd_args &a) {
    if (i >= a.c * a.parts) return;
    const i64 ch = i / a.parts;
    const double mu = a.mean[ch], is = a.invstd[ch];
    double sdy = 0, sdyx = 0;
    i64 at[BN_UNITS(V)];
    float gv[BN_UNITS(V)][V], xv[BN_UNITS(V)][V], ov[BN_UNITS(V)][V];
    for (chan_walk q = bn_walk<V>(i, a.parts, ch, a.n, a.c, a.hw); q.more();) {
        const int k = q.batch<BN_UNITS(V)>(at);
        FST_UNROLL for (int j = 0; j < BN_UNITS(V); j++) if (j < k) {
            load_f32<V>(a.dy + at[j], gv[j]);
            load_f32<V>(a.x + at[j], xv[j]);
            if (a.relu_out) load_f32<V>(a.relu_out + at[j], ov[j]);
        }
        FST_UNROLL for (int j = 0; j < BN_UNITS(V); j++) if (j < k) for (int u = 0; u < V; u++) {
            /* dy as the backward of the fused ReLU passes it on (k_binary's RELU_BWD: dy where the output is > 0) */
            const double g = a.relu_out && !(ov[j][u] > 0) ? 0.0f : gv[j][u];
            sdy += g;
            sdyx += g * (xv[j][u] - mu) * is;
        }
    }
    a.work[3 * a.c + i] = sdy;
    a.work[3 * a.c + a.c * a.parts + i] = sdyx;
}
FST_HD void k_bn_bwd_part(i64 i, const fst_k_bn_bwd_args &a) { bn_bwd_part_v<1>(i, a); }
FST_HD void k_bn_bwd_part4(i64 i, const fst_k_bn_bwd_args &a) { bn_bwd_part_v<4>(i, a); }

FST_HD void k_bn_bwd_stats(i64 ch, const fst_k_bn_bwd_args &a) {
    if (ch >= a.c) return;
    const double m = (double)(a.n * a.hw);
    const double is = a.invstd[ch], gm = a.gamma ? a.gamma[ch] : 1.0;
    const double sdy = bn_total(a.work, a.c, a.parts, 2, ch), sdyx = bn_total(a.work, a.c, a.parts, 2, a.c + ch);
    a.work[3 * ch] = gm * is / m;
    a.work[3 * ch + 1] = sdy;
    a.work[3 * ch + 2] = sdyx;
    a.dgamma[ch] = (float)sdyx;
    a.dbeta[ch] = (float)sdy;
}

template <int W> FST_HD void bn_bwd_apply_w(i64 i, const fst_k_bn_bwd_args &a) {
    const i64 total = a.n * a.c * a.hw;
    if (i >= total / W) return;
    const i64 e = i * W, ch = chan_of(e, total, a.c, a.hw);
    const double m = (double)(a.n * a.hw), mu = a.mean[ch], is = a.invstd[ch];
    const double k = a.work[3 * ch], sdy = a.work[3 * ch + 1], sdyx = a.work[3 * ch + 2];
    float x[W], dy[W], out[W], dx[W];
    load_f32<W>(a.x + e, x);
    load_f32<W>(a.dy + e, dy);
    if (a.relu_out) load_f32<W>(a.relu_out + e, out);
    for (int j = 0; j < W; j++) {
        const float g = a.relu_out && !(out[j] > 0) ? 0.0f : dy[j];   /* the fused ReLU's mask, as in bn_bwd_part_v */
        const double xh = (x[j] - mu) * is;
        dx[j] = (float)(k * (m * g - sdy - xh * sdyx));
    }
    store_f32<W>(a.dx + e, dx);
}
FST_HD void k_bn_bwd_apply(i64 i, const fst_k_bn_bwd_args &a) { bn_bwd_apply_w<1>(i, a); }
FST_HD void k_bn_bwd_apply4(i64 i, const fst_k_bn_bwd_args &a) { bn_bwd_apply_w<4>(i, a); }

/* ======================= cross-entropy with label smoothing ======================= */

/* Row r's loss term lse - off * sum(z) - (on - off) * z[label] into work[r] (z = x - max), and when grad is given,
 * grad = (softmax - target) * grad_scale / n: in the four passes fst4j_kargs.h describes, or, where their exps scratch
 * of n * c doubles would be large (cuda_ops.c, FST_XENT_PARALLEL_MAX; a language model's vocabulary), one thread per
 * row. Both use the pieces below, so they give the same values. A label outside [0, c) (Loss checks them first) makes
 * the row's term and gradient NaN. */
FST_HD bool xent_bad(const fst_k_xent_args &a, i64 row) { const int32_t l = a.labels[row]; return l < 0 || l >= a.c; }
FST_HD double xent_off(const fst_k_xent_args &a) { return a.smoothing / (double)a.c; }   /* the smoothed target off the label */
FST_HD double xent_on(const fst_k_xent_args &a) { return 1 - a.smoothing + xent_off(a); }   /* and at it */
FST_HD double xent_max(const float *x, i64 c) {   /* jmax: a NaN wins */
    double mx = -INFINITY;
    for (i64 k = 0; k < c; k++) mx = jmax(mx, x[k]);
    return mx;
}
/* the loss term from the sums of exp(z) and of z in k order and the label's z */
FST_HD double xent_term(const fst_k_xent_args &a, double s, double sumz, double zl) {
    return log(s) - xent_off(a) * sumz - (xent_on(a) - xent_off(a)) * zl;
}
/* element k's gradient from its softmax p */
FST_HD float xent_grad_of(const fst_k_xent_args &a, double p, i64 k, int32_t label) {
    return (float)((p - (k == label ? xent_on(a) : xent_off(a))) * (a.grad_scale / (double)a.n));
}

FST_HD void k_xent_rows(i64 i, const fst_k_xent_args &a) {
    if (i >= a.n) return;
    const i64 c = a.c;
    const float *x = a.logits + i * c;
    if (xent_bad(a, i)) {
        a.work[i] = NAN;
        if (a.grad) for (i64 k = 0; k < c; k++) a.grad[i * c + k] = NAN;
        return;
    }
    const int32_t label = a.labels[i];
    const double mx = xent_max(x, c);
    double s = 0, sumz = 0;
    for (i64 k = 0; k < c; k++) { const double z = x[k] - mx; s += exp(z); sumz += z; }
    a.work[i] = xent_term(a, s, sumz, x[label] - mx);
    if (a.grad)
        for (i64 k = 0; k < c; k++) a.grad[i * c + k] = xent_grad_of(a, exp(x[k] - mx) / s, k, label);
}

/* Pass 1, a thread per row: the row's maximum */
FST_HD void k_xent_max(i64 i, const fst_k_xent_args &a) {
    if (i >= a.n) return;
    a.work[a.n + i] = xent_max(a.logits + i * a.c, a.c);
}

/* Pass 2, a thread per element: exp(x - max), in double */
FST_HD void k_xent_exp(i64 i, const fst_k_xent_args &a) {
    if (i >= a.n * a.c) return;
    const i64 row = i / a.c;
    a.work[3 * a.n + i] = exp(a.logits[i] - a.work[a.n + row]);
}

/* Pass 3, a thread per row: the sums of the exps and of x - max in k order, the loss term */
FST_HD void k_xent_sum(i64 i, const fst_k_xent_args &a) {
    if (i >= a.n) return;
    if (xent_bad(a, i)) { a.work[i] = NAN; return; }
    const i64 c = a.c;
    const float *x = a.logits + i * c;
    const double *e = a.work + 3 * a.n + i * c;
    const double mx = a.work[a.n + i];
    double s = 0, sumz = 0;
    for (i64 k = 0; k < c; k++) { s += e[k]; sumz += x[k] - mx; }
    a.work[2 * a.n + i] = s;
    a.work[i] = xent_term(a, s, sumz, x[a.labels[i]] - mx);
}

/* Pass 4, a thread per element: (softmax - smoothed target) * grad_scale / n */
FST_HD void k_xent_grad(i64 i, const fst_k_xent_args &a) {
    if (i >= a.n * a.c) return;
    const i64 row = i / a.c, k = i - row * a.c;
    if (xent_bad(a, row)) { a.grad[i] = NAN; return; }
    a.grad[i] = xent_grad_of(a, a.work[3 * a.n + i] / a.work[2 * a.n + row], k, a.labels[row]);
}

/* Thread 0 only: the mean of the row terms, summed in row order as the CPU does. */
FST_HD void k_xent_total(i64 i, const fst_k_xent_args &a) {
    if (i != 0 || !a.loss) return;
    double total = 0;
    for (i64 r = 0; r < a.n; r++) total += a.work[r];
    a.loss[0] = (float)(total / (double)a.n);
}

/* ======================= softmax ======================= */

FST_HD void k_softmax(i64 i, const fst_k_softmax_args &a) {
    if (i >= a.outer * a.inner) return;
    const i64 base = (i / a.inner) * a.n * a.inner + i % a.inner;
    const float *x = a.x + base;
    float *y = a.out + base;
    double mx = -INFINITY;
    for (i64 k = 0; k < a.n; k++) mx = jmax(mx, x[k * a.inner]);
    if (mx == -INFINITY) mx = 0;
    double s = 0;
    for (i64 k = 0; k < a.n; k++) s += exp(x[k * a.inner] - mx);
    const double lse = log(s);
    for (i64 k = 0; k < a.n; k++) {
        const double z = x[k * a.inner] - mx;
        y[k * a.inner] = (float)(a.log ? z - lse : exp(z) / s);
    }
}

/* dx = y (dy - sum(dy y)) for softmax, dy - exp(y) sum(dy) for log-softmax (a.x is y here) */
FST_HD void k_softmax_bwd(i64 i, const fst_k_softmax_args &a) {
    if (i >= a.outer * a.inner) return;
    const i64 base = (i / a.inner) * a.n * a.inner + i % a.inner;
    const float *y = a.x + base, *g = a.dy + base;
    float *dx = a.out + base;
    double s = 0;
    for (i64 k = 0; k < a.n; k++) {
        const double gv = g[k * a.inner];
        s += a.log ? gv : gv * (double)y[k * a.inner];
    }
    for (i64 k = 0; k < a.n; k++) {
        const double yv = y[k * a.inner], gv = g[k * a.inner];
        dx[k * a.inner] = (float)(a.log ? gv - exp(yv) * s : yv * (gv - s));
    }
}

/* ======================= GEMM (fallback) ======================= */

FST_HD void k_gemm(i64 i, const fst_k_gemm_args &a) {
    if (i >= a.m * a.n) return;
    const i64 r = i / a.n, col = i % a.n;
    float acc = 0.0f;
    for (i64 p = 0; p < a.k; p++) {
        const float x = a.ta ? a.a[p * a.lda + r] : a.a[r * a.lda + p];
        const float y = a.tb ? a.b[col * a.ldb + p] : a.b[p * a.ldb + col];
        acc += x * y;
    }
    float *c = a.c + r * a.ldc + col;
    *c = a.beta == 0.0f ? a.alpha * acc : a.alpha * acc + a.beta * *c;
}

/* ======================= optimizer ======================= */

/* torch.optim.SGD as fst4j.nn.SGD.step (float arithmetic, no contraction); buf == NULL: no momentum. */
FST_HD void k_sgd(i64 i, const fst_k_sgd_args &a) {
    if (i >= a.n) return;
    const float wi = a.w[i];
    if (!a.buf) { a.w[i] = wi - a.lr * (a.g[i] + a.wd * wi); return; }
    const float gi = a.g[i] + a.wd * wi;
    const float b = a.first ? gi : a.mom * a.buf[i] + a.damp * gi;
    a.buf[i] = b;
    const float d = a.nesterov ? gi + a.mom * b : b;
    a.w[i] = wi - a.lr * d;
}

/* SGD with SR-STE's decay in one pass (fst_k_sgd_srste_args): k_srste's selection and k_sgd's arithmetic, operation for
 * operation (the bits of the two kernels in turn, and of the CPU's fst_sgd_srste), without writing the decayed gradient. */
FST_HD void k_sgd_srste(i64 i, const fst_k_sgd_srste_args &a) {
    if (i >= a.n / 4) return;
    float *w = a.w + 4 * i;
    const float *g = a.g + 4 * i;
    u32 key[4];
    float wv[4];
    for (int j = 0; j < 4; j++) {
        wv[j] = w[j];
        const u32 v = f2u(wv[j]) & 0x7fffffffu;
        key[j] = v < 0x7f800001u ? v : 0x7f800001u;
    }
    for (int j = 0; j < 4; j++) {
        int beaten = 0;
        for (int q = 0; q < 4; q++)
            if (q != j && (key[q] > key[j] || (key[q] == key[j] && q < j))) beaten++;
        const float gd = beaten >= 2 ? g[j] + a.lambda * wv[j] : g[j];
        const float gi = gd + a.wd * wv[j];
        float d = gi;
        if (a.buf) {
            float *b = a.buf + 4 * i + j;
            const float bi = a.first ? gi : a.mom * *b + a.damp * gi;
            *b = bi;
            d = a.nesterov ? gi + a.mom * bi : bi;
        }
        w[j] = wv[j] - a.lr * d;
    }
}

/* java.lang.Math.max(float, float), torch.maximum's rule (optim.c jmaxf): a NaN wins (the first), +0 over -0 */
FST_HD float jmaxf(float a, float b) {
    if (a != a) return a;
    if (a == 0.0f && b == 0.0f) return signbit(a) ? b : a;
    return a >= b ? a : b;
}

/* AdamW as fst4j.nn.AdamW.update and optim.c fst_adamw, operation for operation (sqrtf and / correctly rounded: no
 * -use_fast_math, -fmad=false). */
FST_HD void k_adamw(i64 i, const fst_k_adamw_args &a) {
    if (i >= a.n) return;
    const float wi = a.w[i] * a.decay, gi = a.g[i];
    const float mi = a.m[i] * a.b1 + a.c1 * gi;
    const float vi = a.v[i] * a.b2 + a.c2 * gi * gi;
    a.m[i] = mi;
    a.v[i] = vi;
    float vh = vi;
    if (a.vmax) {
        vh = jmaxf(a.vmax[i], vi);
        a.vmax[i] = vh;
    }
    const float d = sqrtf(vh) / a.bc2 + a.eps;
    a.w[i] = wi - a.step * mi / d;
}

/* thread p < FST_PARTS: the sum in double of x[r * FST_PARTS + p]^2 over r ascending (fst_sumsq_parts's parts) */
FST_HD void k_sumsq_part(i64 i, const fst_k_sumsq_args &a) {
    if (i >= FST_PARTS) return;
    double acc = 0;
    for (i64 r = i; r < a.n; r += FST_PARTS) {
        const double e = a.x[r];
        acc += e * e;
    }
    a.parts[i] = acc;
}

FST_HD void k_scale(i64 i, const fst_k_scale_args &a) {
    if (i >= a.n) return;
    a.x[i] = a.x[i] * a.s;
}

/* SR-STE decay (prune.c fst_srste_decay): one thread per group of 4 of a row; g += lambda * w where 2:4 prunes. */
FST_HD void k_srste(i64 i, const fst_k_srste_args &a) {
    const i64 G = (a.k + 3) / 4;
    if (i >= a.rows * G) return;
    const i64 r = i / G, g0 = 4 * (i % G);
    const int n = a.k - g0 < 4 ? (int)(a.k - g0) : 4;
    const float *wf = a.w + r * a.k;
    float *gf = a.g + r * a.k;
    u32 key[4] = {0, 0, 0, 0};
    for (int j = 0; j < n; j++) {
        const u32 v = f2u(wf[g0 + j]) & 0x7fffffffu;
        key[j] = v < 0x7f800001u ? v : 0x7f800001u;
    }
    for (int j = 0; j < n; j++) {
        int beaten = 0;
        for (int q = 0; q < 4; q++)
            if (q != j && (key[q] > key[j] || (key[q] == key[j] && q < j))) beaten++;
        if (beaten >= 2) gf[g0 + j] += a.lambda * wf[g0 + j];
    }
}

/* Magnitude N:M along lines (fst_k_nm_args): one thread per group. Keys as k_srste's (|x| bits, every NaN one value
 * above +Inf); an element is kept when fewer than n others of its group beat it (larger key, or an equal key at a lower
 * index), which is Masks.magnitudeNM's rule on the host and, at 2:4, k_srste's and GROUP24's. */
FST_HD void k_nm(i64 i, const fst_k_nm_args &a) {
    const i64 G = (a.len + a.m - 1) / a.m;
    if (i >= a.outer * a.inner * G) return;
    const i64 line = i / G, grp = i - line * G, o = line / a.inner, r = line - o * a.inner;
    const i64 g0 = grp * a.m, base = (o * a.len + g0) * a.inner + r;
    const int cnt = a.len - g0 < a.m ? (int)(a.len - g0) : a.m;
    u32 key[FST_NM_MAX_M];
    for (int j = 0; j < cnt; j++) {
        const u32 v = f2u(a.x[base + j * a.inner]) & 0x7fffffffu;
        key[j] = v < 0x7f800001u ? v : 0x7f800001u;
    }
    for (int j = 0; j < cnt; j++) {
        int beaten = 0;
        for (int q = 0; q < cnt; q++)
            if (q != j && (key[q] > key[j] || (key[q] == key[j] && q < j))) beaten++;
        const i64 at = base + j * a.inner;
        if (a.out) a.out[at] = beaten < a.n ? a.x[at] : 0.0f;
        if (a.g && beaten >= a.n) a.g[at] += a.lambda * a.x[at];
    }
}

/* One thread per element of the flipped weight (fst_k_wflip16_args), in dst's order: its reads of w are strided, its
 * writes coalesced; the weight is small (at most a few million elements per layer). */
FST_HD void k_wflip16(i64 i, const fst_k_wflip16_args &a) {
    const i64 khw = a.kh * a.kw, kk = a.cout * khw;
    if (i >= a.cin * kk) return;
    const i64 ci = i / kk, j = i - ci * kk;
    i64 co, t;
    if (a.cfast) { t = j / a.cout; co = j - t * a.cout; }   /* (tap, co) */
    else { co = j / khw; t = j - co * khw; }                 /* (co, tap) */
    const i64 r = t / a.kw, s = t - r * a.kw;
    a.dst[ci * a.ldd + j] = bf16_bits(f2u(a.w[((co * a.cin + ci) * a.kh + (a.kh - 1 - r)) * a.kw + (a.kw - 1 - s)]));
}

FST_HD void k_wtap16(i64 i, const fst_k_wtap16_args &a) {
    const i64 kk = a.cin * a.khw;
    if (i >= a.cout * kk) return;
    const i64 co = i / kk, j = i - co * kk, tap = j / a.cin, ci = j - tap * a.cin;
    a.dst[co * a.ldd + j] = bf16_bits(f2u(a.w[(co * a.cin + ci) * a.khw + tap]));
}

FST_HD void k_nhwc16(i64 i, const fst_k_nhwc16_args &a) {
    if (i >= a.n * a.c * a.h * a.w) return;
    const i64 ch = i % a.c, pix = i / a.c, x = pix % a.w, y = (pix / a.w) % a.h, img = pix / (a.w * a.h);
    a.out[i] = bf16_bits(f2u(a.x[((img * a.c + ch) * a.h + y) * a.w + x]));
}

FST_HD void k_conv24_t(i64 i, const fst_k_conv24_t_args &a) {
    const i64 hv = a.cout / 2, hm = a.cout / 32, nv = a.cin * a.khw * hv;
    if (i < nv) {
        const i64 ci = i / (a.khw * hv), j = i - ci * a.khw * hv, tp = j / hv, e = j - tp * hv;
        a.v[i] = bf16_bits(f2u(a.vt[(ci * a.khw + a.khw - 1 - tp) * hv + e]));
        return;
    }
    i -= nv;
    if (i >= a.cin * a.khw * hm) return;
    const i64 ci = i / (a.khw * hm), j = i - ci * a.khw * hm, tp = j / hm, w = j - tp * hm;
    a.m[i] = a.mt[(ci * a.khw + a.khw - 1 - tp) * hm + w];
}

/* One thread per element of dw: the splits' partial sums added in split order (deterministic), then beta dw. */
FST_HD void k_splitk_sum(i64 i, const fst_k_splitk_args &a) {
    if (i >= a.cout * a.K) return;
    const i64 co = i / a.K, k = i - co * a.K;
    float v = 0.0f;
    for (i64 s = 0; s < a.splits; s++) v += a.ws[s * a.cout * a.K + i];
    i64 kd = k;   /* the column of dw: the workspace's (kh, kw, c) column k back in (c, kh, kw) order */
    if (a.cfast) { const i64 tap = k / a.c; kd = (k - tap * a.c) * a.khw + tap; }
    float *d = a.dw + co * a.ldd + kd;
    if (a.beta != 0.0f) v += a.beta * *d;
    *d = v;
}

/* ======================= cuda-gaps: average pool, eval-mode batch norm backward, non-finite check, strided writes =======================
 * (fst4j_kargs.h's cuda-gaps block; kept together so that other additions to this file merge around them) */

/* The window of output (oh, ow) clipped to the input, as Pool.avgPool2d computes it: rows [h0, h1), columns [w0, w1) */
FST_HD void avg_window(const fst_geom &g, i64 oh, i64 ow, i64 &h0, i64 &h1, i64 &w0, i64 &w1) {
    const i64 hs = oh * g.sh - g.ph, ws = ow * g.sw - g.pw;
    h0 = hs > 0 ? hs : 0; h1 = hs + g.kh < g.h ? hs + g.kh : g.h;
    w0 = ws > 0 ? ws : 0; w1 = ws + g.kw < g.w ? ws + g.kw : g.w;
}
/* Pool.avgPool2d's divisor: kh*kw with count_pad, else the window's part inside the input (at least 1; the CPU's int
 * product, so a window wholly in the padding counts as it does there) */
FST_HD double avg_divisor(const fst_geom &g, int count_pad, i64 h0, i64 h1, i64 w0, i64 w1) {
    if (count_pad) return (double)(g.kh * g.kw);
    const i64 area = (h1 - h0) * (w1 - w0);
    return (double)(area > 1 ? area : 1);
}

FST_HD void k_avg_pool(i64 i, const fst_k_avg_pool_args &a) {
    const fst_geom &g = a.g;
    if (i >= g.n * g.c * g.ho * g.wo) return;
    const i64 ow = i % g.wo, oh = (i / g.wo) % g.ho, p = i / (g.wo * g.ho);
    i64 h0, h1, w0, w1;
    avg_window(g, oh, ow, h0, h1, w0, w1);
    const float *x = a.x + p * g.h * g.w;
    double s = 0;
    for (i64 ih = h0; ih < h1; ih++)
        for (i64 iw = w0; iw < w1; iw++) s += x[ih * g.w + iw];
    a.y[i] = (float)(s / avg_divisor(g, a.count_pad, h0, h1, w0, w1));
}

/* Gather form of the CPU's scatter: the outputs whose window covers (ih, iw) are those with start <= ih < start + kh
 * (start = oh sh - ph), visited in output order, each adding dy / divisor (double) to the float accumulator. */
FST_HD void k_avg_pool_bwd(i64 i, const fst_k_avg_pool_bwd_args &a) {
    const fst_geom &g = a.g;
    if (i >= g.n * g.c * g.h * g.w) return;
    const i64 iw = i % g.w, ih = (i / g.w) % g.h, p = i / (g.w * g.h);
    const i64 rh = ih + g.ph - g.kh + 1, rw = iw + g.pw - g.kw + 1;   /* the first start that still covers the element */
    const i64 oh0 = rh <= 0 ? 0 : (rh + g.sh - 1) / g.sh, ow0 = rw <= 0 ? 0 : (rw + g.sw - 1) / g.sw;
    const i64 oh1 = (ih + g.ph) / g.sh < g.ho - 1 ? (ih + g.ph) / g.sh : g.ho - 1;
    const i64 ow1 = (iw + g.pw) / g.sw < g.wo - 1 ? (iw + g.pw) / g.sw : g.wo - 1;
    const float *dy = a.dy + p * g.ho * g.wo;
    float acc = 0.0f;
    for (i64 oh = oh0; oh <= oh1; oh++)
        for (i64 ow = ow0; ow <= ow1; ow++) {
            i64 h0, h1, w0, w1;
            avg_window(g, oh, ow, h0, h1, w0, w1);
            acc = (float)((double)acc + (double)dy[oh * g.wo + ow] / avg_divisor(g, a.count_pad, h0, h1, w0, w1));
        }
    a.dx[i] = acc;
}

/* 1 / sqrt(running variance + eps) of channel ch, in double as Norm.batchNorm2dEvalBackward computes it */
FST_HD double bn_eval_is(const fst_k_bn_eval_bwd_args &a, i64 ch) { return 1.0 / sqrt((double)a.rvar[ch] + a.eps); }

/* partial sums of dy and dy (x - rmean) is: bn_bwd_part_v's walk and order (no fused ReLU) */
FST_HD void k_bn_eval_bwd_part(i64 i, const fst_k_bn_eval_bwd_args &a) {
    if (i >= a.c * a.parts) return;
    const i64 ch = i / a.parts;
    const double mu = a.rmean[ch], is = bn_eval_is(a, ch);
    double sdy = 0, sdyx = 0;
    i64 at[BN_BATCH];
    float gv[BN_BATCH], xv[BN_BATCH];
    for (chan_walk q = bn_walk<1>(i, a.parts, ch, a.n, a.c, a.hw); q.more();) {
        const int k = q.batch<BN_BATCH>(at);
        FST_UNROLL for (int j = 0; j < BN_BATCH; j++) if (j < k) { gv[j] = LDG(a.dy + at[j]); xv[j] = LDG(a.x + at[j]); }
        FST_UNROLL for (int j = 0; j < BN_BATCH; j++) if (j < k) {
            const double g = gv[j];
            sdy += g;
            sdyx += g * (xv[j] - mu) * is;
        }
    }
    a.work[3 * a.c + i] = sdy;
    a.work[3 * a.c + a.c * a.parts + i] = sdyx;
}

FST_HD void k_bn_eval_bwd_stats(i64 ch, const fst_k_bn_eval_bwd_args &a) {
    if (ch >= a.c) return;
    a.dbeta[ch] = (float)bn_total(a.work, a.c, a.parts, 2, ch);
    a.dgamma[ch] = (float)bn_total(a.work, a.c, a.parts, 2, a.c + ch);
}

FST_HD void k_bn_eval_bwd_apply(i64 i, const fst_k_bn_eval_bwd_args &a) {
    const i64 total = a.n * a.c * a.hw;
    if (i >= total) return;
    const i64 ch = chan_of(i, total, a.c, a.hw);
    const double gm = a.gamma ? (double)a.gamma[ch] : 1.0;
    a.dx[i] = (float)((double)a.dy[i] * gm * bn_eval_is(a, ch));   /* the CPU's g * gm * is, in that order */
}

FST_HD uint64_t d2u(double d) {
#ifdef __CUDA_ARCH__
    return (uint64_t)__double_as_longlong(d);
#else
    uint64_t u; memcpy(&u, &d, 8); return u;
#endif
}

/* NaN or an infinity: every exponent bit set (a bit test, the same under any floating-point mode) */
FST_HD int nonfinite_at(const fst_k_nonfinite_args &a, i64 e) {
    i64 o, unused;
    offsets2(e, a.n, a.rank, a.shape, a.sx, a.sx, o, unused);
    if (a.f64) return (d2u(((const double *)a.x)[o]) & 0x7ff0000000000000ull) == 0x7ff0000000000000ull;
    return (f2u(((const float *)a.x)[o]) & 0x7f800000u) == 0x7f800000u;
}

FST_HD void k_nonfinite_part(i64 p, const fst_k_nonfinite_args &a) {
    if (p >= a.parts) return;
    int32_t f = 0;
    for (i64 e = p; e < a.n && !f; e += a.parts) f = nonfinite_at(a, e);
    a.flags[1 + p] = f;
}

FST_HD void k_nonfinite_any(i64 i, const fst_k_nonfinite_args &a) {
    if (i != 0) return;
    int32_t f = 0;
    for (i64 p = 0; p < a.parts && !f; p++) f = a.flags[1 + p];
    a.flags[0] = f;
}

/* element e (row-major) of a strided write: the same type copies the bits, float64 -> float32 rounds to nearest (Java's
 * (float) cast), float32 -> float64 is exact, a fill stores s in y's type */
FST_HD void strided_write_one(const fst_k_strided_write_args &a, i64 e) {
    i64 ox = 0, oy;
    if (a.fill) offsets2(e, a.n, a.rank, a.shape, a.sy, a.sy, oy, ox);
    else offsets2(e, a.n, a.rank, a.shape, a.sx, a.sy, ox, oy);
    if (a.yf64) {
        if (a.fill) ((double *)a.y)[oy] = a.s;
        else if (a.xf64) ((uint64_t *)a.y)[oy] = ((const uint64_t *)a.x)[ox];
        else ((double *)a.y)[oy] = (double)((const float *)a.x)[ox];
    } else {
        if (a.fill) ((float *)a.y)[oy] = (float)a.s;
        else if (a.xf64) ((float *)a.y)[oy] = (float)((const double *)a.x)[ox];
        else ((u32 *)a.y)[oy] = ((const u32 *)a.x)[ox];
    }
}

FST_HD void k_strided_write(i64 i, const fst_k_strided_write_args &a) {
    if (a.serial) {   /* y's elements may share addresses: one thread, row-major order, the last write wins */
        if (i == 0) for (i64 e = 0; e < a.n; e++) strided_write_one(a, e);
        return;
    }
    if (i >= a.n) return;
    strided_write_one(a, i);
}
/* ======================= end of cuda-gaps ======================= */
/* ======================= activations (fst4j.tensor.Activation) =======================
 * The formulas are fst4j_act.h's, the same text the C shim's loops (act.c) run on the CPU: each in double, rounded once
 * to float (see there). */
FST_HD void k_act(i64 i, const fst_k_act_args &a) {
    if (i >= a.n) return;
    i64 ox, unused;
    offsets2(i, a.n, a.rank, a.shape, a.sx, a.sx, ox, unused);
    a.y[i] = (float)fst_act_fwd(a.op, a.x[ox], a.s0, a.s1);
}

FST_HD void k_act_bwd(i64 i, const fst_k_act_bwd_args &a) {
    if (i >= a.n) return;
    i64 oa, ob;
    offsets2(i, a.n, a.rank, a.shape, a.sa, a.sb, oa, ob);
    a.out[i] = (float)fst_act_bwd(a.op, a.a[oa], a.b[ob], a.s0, a.s1);
}

/* ======================= block-level kernels (FST_BLOCK_KERNELS in fst4j_kargs.h) =======================
 * kb_<name>(FstCtx &c, args) is one thread's work in a block that cooperates: c.tid() is its index in the block,
 * c.block() the block's, c.smem the block's shared memory (the size the list gives), c.sync() a barrier every thread of
 * the block must reach, c.shfl / c.shfl_xor warp shuffles and c.mma16816 a tensor-core product, all of which every lane
 * of the warp must execute together. On the device these are __syncthreads, __shfl_sync and mma.sync. The emulator
 * (cuda_emu.cc) runs every thread as a fiber and switches at each of them, so that the same body runs there; it is
 * stricter than the device: shared memory starts as NaN bytes, a barrier or warp operation that some threads skip is an
 * error, and the threads between two barriers run in reverse, forward or shuffled order (fst_cuda_emu_order), so that
 * a result that depends on the order (a race on the device) shows. */
#ifdef __CUDACC__
#define FST_BD __device__ __forceinline__
struct FstCtx {
    unsigned char *smem;
    __device__ __forceinline__ i64 block() const { return blockIdx.x; }
    __device__ __forceinline__ int tid() const { return threadIdx.x; }
    __device__ __forceinline__ void sync() const { __syncthreads(); }
    __device__ __forceinline__ u32 shfl(u32 v, int src) const { return __shfl_sync(0xffffffffu, v, src); }
    __device__ __forceinline__ u32 shfl_xor(u32 v, int mask) const { return __shfl_xor_sync(0xffffffffu, v, mask); }
    /* d += A (16 x 16 bf16, row-major fragments a[4]) x B (16 x 8 bf16, column-major fragments b[2]), fp32 accumulation */
    __device__ __forceinline__ void mma16816(float d[4], const u32 a[4], const u32 b[2]) const {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
    /* d += A (16 x 32 bf16, 2:4 along k: its kept values a[4] as A's fragments of mma.m16n8k16, their positions in the
     * metadata e) x B (32 x 8 bf16, column-major fragments b[4]), fp32 accumulation; sparsity selector 0 */
    __device__ __forceinline__ void mma_sp16832(float d[4], const u32 a[4], const u32 b[4], u32 e) const {
        asm volatile("mma.sp::ordered_metadata.sync.aligned.m16n8k32.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
                     "{%8,%9,%10,%11}, {%0,%1,%2,%3}, %12, 0x0;"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "r"(b[2]), "r"(b[3]), "r"(e));
    }
    /* Hopper's warpgroup instructions (sm_90a only: wg_available() says whether this build has them). A shared-memory
     * matrix descriptor without swizzle: the address, lbo and sbo, each in units of 16 bytes, 14 bits */
    /* cp.async (sm_80+): 16 bytes from global src to shared dst, or 16 zeros where !valid (src-size 0: nothing read);
     * commit closes this thread's group of copies; wait_group<N> waits until at most N of its groups are in flight */
    __device__ __forceinline__ void cp_async16(void *dst, const void *src, bool valid) const {
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"((u32)__cvta_generic_to_shared(dst)), "l"(src), "r"(valid ? 16 : 0) : "memory");
    }
    __device__ __forceinline__ void cp_commit() const { asm volatile("cp.async.commit_group;" ::: "memory"); }
    template <int N> __device__ __forceinline__ void cp_wait_group() const { asm volatile("cp.async.wait_group %0;" :: "n"(N) : "memory"); }
    __device__ __forceinline__ unsigned long long wg_desc(const void *p, u32 lbo, u32 sbo) const {
        const u32 a = (u32)__cvta_generic_to_shared(p);
        return (unsigned long long)((a >> 4) & 0x3fff) | ((unsigned long long)((lbo >> 4) & 0x3fff) << 16) |
               ((unsigned long long)((sbo >> 4) & 0x3fff) << 32);
    }
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    __device__ __forceinline__ bool wg_available() const { return true; }
    /* shared-memory writes of the generic proxy made visible to the tensor cores' (async) proxy */
    __device__ __forceinline__ void fence_proxy_async() const { asm volatile("fence.proxy.async.shared::cta;" ::: "memory"); }
    __device__ __forceinline__ void wg_fence() const { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
    __device__ __forceinline__ void wg_commit() const { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
    __device__ __forceinline__ void wg_wait0() const { asm volatile("wgmma.wait_group.sync.aligned 0;" ::: "memory"); }
    /* d += A (64 x 16 bf16, descriptor da) x B (16 x 64 bf16, K-major: descriptor db of B^T), fp32; the warpgroup's
     * fragments: thread t (warp w, lane q * 4 + r) holds d[4 j + x] = D[16 w + q + 8 (x >> 1)][8 j + 2 r + (x & 1)] */
    __device__ __forceinline__ void wgmma64(float d[32], unsigned long long da, unsigned long long db) const {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 0;\n}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                     : "l"(da), "l"(db));
    }
    /* wgmma64 with B MN-major (imm-trans-b = 1: core matrices of 8 k-rows of 8 consecutive n, descriptor db of B itself) */
    __device__ __forceinline__ void wgmma64_tb(float d[32], unsigned long long da, unsigned long long db) const {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, p, 1, 1, 0, 1;\n}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                     : "l"(da), "l"(db));
    }
    /* d += A (64 x 32 bf16, 2:4 along k: its kept values, 64 x 16, by descriptor da; their positions in e, laid out per
     * warp as mma.sp.m16n8k32's, selector 0) x B (32 x 64 bf16, K-major: descriptor db of B^T), fp32 */
    __device__ __forceinline__ void wgmma_sp64(float d[32], unsigned long long da, unsigned long long db, u32 e) const {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
                     "wgmma.mma_async.sp.sync.aligned.m64n64k32.f32.bf16.bf16 {%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, %32, %33, %34, 0, p, 1, 1, 0, 0;\n}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                     : "l"(da), "l"(db), "r"(e));
    }
#else
    __device__ __forceinline__ bool wg_available() const { return false; }
    __device__ __forceinline__ void fence_proxy_async() const {}
    __device__ __forceinline__ void wg_fence() const {}
    __device__ __forceinline__ void wg_commit() const {}
    __device__ __forceinline__ void wg_wait0() const {}
    __device__ __forceinline__ void wgmma64(float *, unsigned long long, unsigned long long) const {}
    __device__ __forceinline__ void wgmma64_tb(float *, unsigned long long, unsigned long long) const {}
    __device__ __forceinline__ void wgmma_sp64(float *, unsigned long long, unsigned long long, u32) const {}
#endif
};
FST_BD u32 ld32(const u16 *p) { return *(const u32 *)p; }
FST_BD void st32(u16 *p, u32 v) { *(u32 *)p = v; }
#else
#define FST_BD static inline
struct FstFiber;
/* the emulator's context: the members below are defined in cuda_emu.cc (they switch fibers) */
struct FstCtx {
    unsigned char *smem;
    i64 blk;
    int t;
    FstFiber *fiber;
    i64 block() const { return blk; }
    int tid() const { return t; }
    /* line: where in the body a warp operation is called (GCC fills it in), so that lanes meeting at different ones
     * are told apart even where the compiler merges the calls */
    void sync() const;
    u32 shfl(u32 v, int src, int line = __builtin_LINE()) const;
    u32 shfl_xor(u32 v, int mask, int line = __builtin_LINE()) const { return shfl(v, (t & 31) ^ mask, line); }
    /* the functional model: per element of D, d + the 16 products in k order, in float (products of bf16 are exact) */
    void mma16816(float d[4], const u32 a[4], const u32 b[2], int line = __builtin_LINE()) const;
    /* the functional model: per element of D, d + the 16 kept products in k order, in float */
    void mma_sp16832(float d[4], const u32 a[4], const u32 b[4], u32 e, int line = __builtin_LINE()) const;
    /* Hopper's warpgroup instructions: the descriptor's address is the byte offset in the block's shared memory; the
     * fences, commit and wait have nothing to order here (the product is carried out when the warpgroup meets at it) */
    /* cp.async: the copy is carried out at once (the fiber holds the thread until its next barrier or warp operation, and a
     * kernel reads a stage only after a barrier that follows its wait); commit and wait have nothing left to order */
    void cp_async16(void *dst, const void *src, bool valid) const {
        if (valid) memcpy(dst, src, 16);
        else memset(dst, 0, 16);
    }
    void cp_commit() const {}
    template <int N> void cp_wait_group() const {}
    unsigned long long wg_desc(const void *p, u32 lbo, u32 sbo) const {
        const u32 a = (u32)((const unsigned char *)p - smem);
        return (unsigned long long)((a >> 4) & 0x3fff) | ((unsigned long long)((lbo >> 4) & 0x3fff) << 16) |
               ((unsigned long long)((sbo >> 4) & 0x3fff) << 32);
    }
    bool wg_available() const { return true; }
    void fence_proxy_async() const {}
    void wg_fence() const {}
    void wg_commit() const {}
    void wg_wait0() const {}
    /* the functional model: the 128 threads of the warpgroup meet; A and B read from shared memory through the
     * descriptors (no swizzle, K-major core matrices); per element of D, d + the 16 products in k order, in float */
    void wgmma64(float d[32], unsigned long long da, unsigned long long db, int line = __builtin_LINE()) const;
    /* B MN-major (imm-trans-b): a core matrix holds 8 rows along K of 8 consecutive n; lbo along K, sbo along N (the
     * model; wgmmaTransposedBProbe checks it on a device) */
    void wgmma64_tb(float d[32], unsigned long long da, unsigned long long db, int line = __builtin_LINE()) const;
    /* the 2:4 one: A's 16 kept values per row through da, their positions from each warp's metadata as mma.sp's */
    void wgmma_sp64(float d[32], unsigned long long da, unsigned long long db, u32 e, int line = __builtin_LINE()) const;
};
FST_BD u32 ld32(const u16 *p) { u32 v; memcpy(&v, p, 4); return v; }
FST_BD void st32(u16 *p, u32 v) { memcpy(p, &v, 4); }
#endif

/* Fragment coordinates of mma.m16n8k16 (.bf16, PTX ISA "Matrix Fragments for mma.m16n8k16"), with q = lane >> 2 and
 * r = lane % 4: A's register j holds row q + 8 (j & 1), columns 2r + 8 (j >> 1) and the next (low half first); B's
 * register j holds column q, rows 2r + 8 j and the next; D's element e is row q + 8 (e >> 1), column 2r + (e & 1). */
FST_BD u32 pack_bf16(u16 lo, u16 hi) { return (u32)lo | ((u32)hi << 16); }
/* two floats rounded to bf16 (nearest even) and packed, lo in the low half: one cvt.rn.bf16x2.f32 on the device, bf16_bits
 * twice here. The same bits except for NaN payloads (the device writes its canonical NaN) */
#ifdef __CUDACC__
FST_BD u32 pack2_bf16(float lo, float hi) {
    u32 d;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(hi), "f"(lo));
    return d;
}
#else
FST_BD u32 pack2_bf16(float lo, float hi) { return pack_bf16(bf16_bits(f2u(lo)), bf16_bits(f2u(hi))); }
#endif
/* mma.sp.m16n8k32 (.bf16, sparsity selector 0): A's kept values are a 16 x 16 matrix in mma.m16n8k16's A fragments
 * (kept column c of a row: group c / 2 of 4 columns, the (c % 2)-th kept one); B's register j holds column q, rows
 * 2r + 8 j and the next; the metadata of lanes with r = 0 and 1 holds, in its low half, row q's 2-bit positions for
 * columns 16 r .. 16 r + 15 (group j of 4 in bits 4 j .. 4 j + 3, the first kept position in the low two bits) and in
 * its high half row q + 8's. That is one half of the metadata word k_prune24 writes for 8 groups: a row's word w
 * covers columns 32 w .. 32 w + 31, low half first. */
FST_BD u32 sp_meta(u32 row_q, u32 row_q8, int r) { return r == 0 ? (row_q & 0xffffu) | (row_q8 << 16) : (row_q >> 16) | (row_q8 & 0xffff0000u); }

/* A's fragments of mma.m16n8k16 (or mma.sp's kept values) for the 16 rows from `row`, columns from ks, row stride lda */
FST_BD void ig_frag_a(const u16 *As, int lda, int row, int ks, int r4, u32 a[4]) {
    const u16 *ap = As + row * lda + ks + 2 * r4;
    a[0] = ld32(ap);
    a[1] = ld32(ap + 8 * lda);
    a[2] = ld32(ap + 8);
    a[3] = ld32(ap + 8 * lda + 8);
}

FST_BD void kb_selftest(FstCtx &c, const fst_k_selftest_args &a) {
    const int T = FST_SELFTEST_T, t = c.tid(), lane = t & 31;
    const i64 b = c.block();
    float *s = (float *)c.smem;
    const float v = a.in[b * T + t];
    s[t] = v;
    if (a.mode == 3 && t == 0) s[T] = v;   /* (emulator only) a write past the block's shared memory */
    if (a.mode == 1 && t == 0) return;   /* (emulator only) a thread that never reaches the barrier */
    c.sync();
    float *out = a.out + b * 3 * T;
    out[t] = s[T - 1 - t];
    float w = v;
    if (!(a.mode == 2 && t == 35))   /* (emulator only) a lane that skips its warp's shuffles */
        for (int m = 16; m >= 1; m >>= 1) w += u2f(c.shfl_xor(f2u(w), m));
    out[T + t] = w;
    out[2 * T + t] = u2f(c.shfl(f2u(v), 31 - lane));
    if (t < 32) {
        const int q = lane >> 2, r = lane & 3;
        const u16 *A = a.a + b * 256, *Bt = a.bt + b * 128;
        u32 af[4], bf[2];
        ig_frag_a(A, 16, q, 0, r, af);
        for (int j = 0; j < 2; j++) bf[j] = pack_bf16(Bt[q * 16 + 2 * r + 8 * j], Bt[q * 16 + 2 * r + 8 * j + 1]);
        float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        c.mma16816(d, af, bf);
        for (int e = 0; e < 4; e++) a.d[b * 128 + (q + 8 * (e >> 1)) * 8 + 2 * r + (e & 1)] = d[e];
    } else if (t < 64) {   /* warp 1: one mma.sp.m16n8k32 of A (kept values sa, metadata sm: one word per row) and sbt (B^T) */
        const int q = lane >> 2, r = lane & 3;
        const u16 *A = a.sa + b * 256, *Bt = a.sbt + b * 256;
        u32 af[4], bf[4];
        ig_frag_a(A, 16, q, 0, r, af);
        for (int j = 0; j < 4; j++) bf[j] = pack_bf16(Bt[q * 32 + 2 * r + 8 * j], Bt[q * 32 + 2 * r + 8 * j + 1]);
        const u32 e = sp_meta(a.sm[b * 16 + q], a.sm[b * 16 + q + 8], r & 1);
        float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        c.mma_sp16832(d, af, bf, e);
        for (int k = 0; k < 4; k++) a.sd[b * 128 + (q + 8 * (k >> 1)) * 8 + 2 * r + (k & 1)] = d[k];
    }
}

/* wgmma's probe (fst4j_kargs.h, fst_k_wgprobe_args): A (or its kept values) and B^T staged in the K-major core-matrix
 * layout, one wgmma.m64n64k16 (or wgmma.sp.m64n64k32 with the metadata in mma.sp's layout), D written back from the
 * warpgroup's fragments */
FST_BD void kb_wgprobe(FstCtx &c, const fst_k_wgprobe_args &a) {
    const int t = c.tid(), kb = a.meta ? 32 : 16;   /* B's k */
    const i64 b = c.block();
    const u16 *A = a.a + b * 1024, *Bt = a.bt + b * 64 * kb;
    u16 *sa = (u16 *)c.smem, *sb = (u16 *)(c.smem + FST_WG_BOFF);
    for (int i = t; i < 64 * kb; i += FST_WG_T) {
        const int m = i / kb, k = i % kb;
        const i64 off = (m / 8) * a.sbo + (k / 8) * a.lbo + (m % 8) * 16 + (k % 8) * 2;
        if (k < 16) sa[off / 2] = A[m * 16 + k];
        /* transb: B (k, n = m) MN-major, core matrix (n / 8, k / 8) at (n / 8) * sbo + (k / 8) * lbo, row k % 8 of 8 n's */
        const i64 offb = a.transb ? (m / 8) * a.sbo + (k / 8) * a.lbo + (k % 8) * 16 + (m % 8) * 2 : off;
        sb[offb / 2] = Bt[i];
    }
    c.fence_proxy_async();
    c.sync();
    if (!c.wg_available()) {
        if (t == 0) a.ok[b] = 0;
        return;
    }
    const int w = t >> 5, q = (t & 31) >> 2, r = t & 3;
    float d[32];
    for (int i = 0; i < 32; i++) d[i] = 0.0f;
    c.wg_fence();
    if (a.meta) {
        const u32 *mb = a.meta + b * 64;
        c.wgmma_sp64(d, c.wg_desc(sa, (u32)a.lbo, (u32)a.sbo), c.wg_desc(sb, (u32)a.lbo, (u32)a.sbo),
                     r < 2 ? sp_meta(mb[16 * w + q], mb[16 * w + q + 8], r) : 0u);
    } else if (a.transb) {   /* B's descriptor with lbo and sbo as given, or swapped (transb == 2): which one the device takes along K */
        c.wgmma64_tb(d, c.wg_desc(sa, (u32)a.lbo, (u32)a.sbo),
                     a.transb == 2 ? c.wg_desc(sb, (u32)a.sbo, (u32)a.lbo) : c.wg_desc(sb, (u32)a.lbo, (u32)a.sbo));
    } else {
        c.wgmma64(d, c.wg_desc(sa, (u32)a.lbo, (u32)a.sbo), c.wg_desc(sb, (u32)a.lbo, (u32)a.sbo));
    }
    c.wg_commit();
    c.wg_wait0();
    for (int j = 0; j < 8; j++)
        for (int x = 0; x < 4; x++) a.d[b * 4096 + (16 * w + q + 8 * (x >> 1)) * 64 + 8 * j + 2 * r + (x & 1)] = d[4 * j + x];
    if (t == 0) a.ok[b] = 1;
}

/* 16 bytes from global memory into registers and from registers into shared memory */
FST_BD void ld16(const u16 *p, u32 v[4]) {
#ifdef __CUDA_ARCH__
    const uint4 q = *(const uint4 *)p;
    v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
#else
    memcpy(v, p, 16);
#endif
}
FST_BD void st16(u16 *p, const u32 v[4]) {
#ifdef __CUDA_ARCH__
    *(uint4 *)p = make_uint4(v[0], v[1], v[2], v[3]);
#else
    memcpy(p, v, 16);
#endif
}

/* A GEMM on the warpgroup tensor cores (fst_k_wggemm_args), two tile shapes: WGS = 1 warpgroup per block on 64 rows
 * x 128 columns of c with K slices of 64 (wggemm), or WGS = 2 warpgroups on 128 x 128, sharing each slice of B^T, with K
 * slices of 32 (wggemm2). Block b: tile (b / ntiles, b % ntiles). Per K slice each thread moves 16-byte pieces (8 bf16
 * along K of one row: one row of a core matrix) of A (or its kept values) and B^T from global memory into registers
 * before the slice's products are issued, and into the other stage while the tensor cores work on this one, in the
 * core-matrix layout: row r, K group g at (r / 8) * SBO + g * 128 + (r % 8) * 16 bytes, SBO = 128 x the row's groups. */
template <bool SP, int WGS> struct Wgg {
    static constexpr int T = FST_WG_T * WGS, BM = 64 * WGS, BN = FST_WGG_BN, BK = WGS == 1 ? 64 : 32;
    static constexpr int GA = SP ? BK / 16 : BK / 8, GB = BK / 8;   /* 16-byte groups per row of the slice: A (kept), B^T */
    static constexpr int PA = BM * GA / T, PB = BN * GB / T;          /* pieces per thread */
    static constexpr int SBO_A = GA * 128, SBO_B = GB * 128, STAGE = (BM * GA + BN * GB) * 16;
    static_assert(PA >= 1 && PB >= 1 && BM * GA % T == 0 && BN * GB % T == 0, "warpgroup GEMM tile");
};

/* Where a slice's 16-byte pieces come from and go to, for both ways of filling a stage (wgg_load_ab / wgg_store through
 * registers, wgg_issue by cp.async). The convolution form's tap of the slice at k0: its first channel and kernel offsets
 * (zeros in the GEMM form, whose geometry is empty) */
struct WggTap { i64 c0, khi, kwi; };
FST_BD WggTap wgg_tap(const fst_k_wggemm_args &a, i64 k0) {
    if (!a.xh) return WggTap{0, 0, 0};
    const i64 tap = k0 / a.g.c, khi = tap / a.g.kw;
    return WggTap{k0 - tap * a.g.c, khi, tap - khi * a.g.kw};
}
/* A's piece (row, 16-byte group g) of the slice at k0 (its kept values in the 2:4 form) */
template <bool SP> FST_BD const u16 *wgg_src_a(const fst_k_wggemm_args &a, i64 m0, i64 k0, int row, int g) {
    return a.a + (m0 + row) * a.lda + (SP ? k0 / 2 : k0) + 8 * g;
}
/* B^T's piece (row, group g) of the slice at k0; in the convolution form row n is output position n0 + row and the slice
 * one tap's run of channels, and NULL (16 zeros) where that reads outside the image or past npos */
FST_BD const u16 *wgg_src_b(const fst_k_wggemm_args &a, const WggTap &tp, i64 n0, i64 k0, int row, int g) {
    if (!a.xh) return a.bt + (n0 + row) * a.ldb + k0 + 8 * g;
    const fst_geom &G = a.g;
    const i64 hw = G.ho * G.wo, n = n0 + row, img = n / hw, pos = n - img * hw, oh = pos / G.wo, ow = pos - oh * G.wo;
    const i64 ih = oh * G.sh - G.ph + tp.khi, iw = ow * G.sw - G.pw + tp.kwi;
    return n < a.npos && ih >= 0 && ih < G.h && iw >= 0 && iw < G.w ? a.xh + ((img * G.h + ih) * G.w + iw) * G.c + tp.c0 + 8 * g : nullptr;
}
/* A stage's element offset of piece (row, group g) in the core-matrix layout with sbo bytes per 8 rows */
FST_BD int wgg_at(int row, int g, int sbo) { return ((row / 8) * sbo + g * 128 + (row % 8) * 16) / 2; }
/* Which piece thread-piece p moves, of a slice with G 16-byte groups per row: p runs through the stage's core matrices
 * in their order (8 rows of one group, then the next group, then the next 8 rows), so that a warp's 16-byte shared-memory
 * stores are one contiguous run (no bank conflicts), while its global loads still read runs of 4 groups (64 bytes) from
 * each of 8 rows. Row-major pieces (row p / G, group p % G) made each quarter warp store into one 16-byte bank group: an
 * 8-way conflict on 87 % of the stores' wavefronts (Nsight Compute, device run 33). */
FST_BD int wgg_row(int p, int G) { return (p / (8 * G)) * 8 + (p & 7); }
FST_BD int wgg_grp(int p, int G) { return (p >> 3) % G; }

template <bool SP, int WGS> FST_BD void wgg_load_ab(const fst_k_wggemm_args &a, i64 m0, i64 n0, i64 k0, int t, u32 ra[4][4], u32 rb[8][4]) {
    typedef Wgg<SP, WGS> W;
    FST_UNROLL for (int i = 0; i < W::PA; i++) {
        const int p = t + W::T * i;
        ld16(wgg_src_a<SP>(a, m0, k0, wgg_row(p, W::GA), wgg_grp(p, W::GA)), ra[i]);
    }
    const WggTap tp = wgg_tap(a, k0);
    FST_UNROLL for (int i = 0; i < W::PB; i++) {
        const int p = t + W::T * i;
        const u16 *src = wgg_src_b(a, tp, n0, k0, wgg_row(p, W::GB), wgg_grp(p, W::GB));
        if (src) ld16(src, rb[i]);
        else rb[i][0] = rb[i][1] = rb[i][2] = rb[i][3] = 0u;
    }
}

template <bool SP, int WGS> FST_BD void wgg_load(const fst_k_wggemm_args &a, i64 m0, i64 n0, i64 k0, int t, u32 ra[4][4], u32 rb[8][4], u32 me[4],
                                                  bool metaOnly = false) {
    typedef Wgg<SP, WGS> W;
    if (!metaOnly) wgg_load_ab<SP, WGS>(a, m0, n0, k0, t, ra, rb);
    if (SP) {   /* the metadata words of this warp's rows q and q + 8 for the slice's k32 halves (lanes r = 0, 1 use them) */
        const int w = t >> 5, q = (t & 31) >> 2;
        FST_UNROLL for (int h = 0; h < W::BK / 32; h++) {
            me[2 * h] = a.meta[(m0 + 16 * w + q) * a.ldm + k0 / 32 + h];
            me[2 * h + 1] = a.meta[(m0 + 16 * w + q + 8) * a.ldm + k0 / 32 + h];
        }
    }
}

template <bool SP, int WGS> FST_BD void wgg_store(unsigned char *stage, int t, u32 ra[4][4], u32 rb[8][4]) {
    typedef Wgg<SP, WGS> W;
    u16 *sa = (u16 *)stage, *sb = (u16 *)(stage + W::BM * W::GA * 16);
    FST_UNROLL for (int i = 0; i < W::PA; i++) {
        const int p = t + W::T * i;
        st16(sa + wgg_at(wgg_row(p, W::GA), wgg_grp(p, W::GA), W::SBO_A), ra[i]);
    }
    FST_UNROLL for (int i = 0; i < W::PB; i++) {
        const int p = t + W::T * i;
        st16(sb + wgg_at(wgg_row(p, W::GB), wgg_grp(p, W::GB), W::SBO_B), rb[i]);
    }
}

/* The products of one K slice in stage st: this warpgroup's 64 rows of A (8 row groups from row group 8 wg) by the
 * slice of B^T, into d (two 64 x 64 halves); cur: the slice's metadata words (2:4) */
template <bool SP, int WGS> FST_BD void wgg_slice(FstCtx &c, const unsigned char *st, int wg, int r, const u32 cur[4], float d[2][32]) {
    typedef Wgg<SP, WGS> W;
    const u16 *sa = (const u16 *)(st + 8 * wg * W::SBO_A), *sb = (const u16 *)(st + W::BM * W::GA * 16);
    c.wg_fence();
    if (SP) {
        FST_UNROLL for (int h = 0; h < W::BK / 32; h++) {   /* k32 step h of the slice: metadata word h of each row */
            const u32 e = r < 2 ? sp_meta(cur[2 * h], cur[2 * h + 1], r) : 0u;
            FST_UNROLL for (int nh = 0; nh < 2; nh++)
                c.wgmma_sp64(d[nh], c.wg_desc(sa + h * 128, 128, W::SBO_A), c.wg_desc(sb + (nh * 8 * W::SBO_B + h * 512) / 2, 128, W::SBO_B), e);
        }
    } else {
        FST_UNROLL for (int k16 = 0; k16 < W::BK / 16; k16++)
            FST_UNROLL for (int nh = 0; nh < 2; nh++)
                c.wgmma64(d[nh], c.wg_desc(sa + k16 * 128, 128, W::SBO_A), c.wg_desc(sb + (nh * 8 * W::SBO_B + k16 * 256) / 2, 128, W::SBO_B));
    }
    c.wg_commit();
}

/* c = alpha d + beta c for this thread's fragments of the tile (m0, n0); the convolution form writes NCHW */
template <int WGS> FST_BD void wgg_store_c(const fst_k_wggemm_args &a, i64 m0, i64 n0, int wg, int w, int q, int r, const float d[2][32]) {
    const i64 hw = a.g.ho * a.g.wo;
    if (!a.xh && (a.ldc & 1) == 0 && ((uintptr_t)a.c & 7) == 0) {
        /* the GEMM form: a thread's two adjacent columns as one 8-byte store, so that a quarter warp writes 32 contiguous
         * bytes of a row (one float at a time used half of every sector written, device run 33) */
        FST_UNROLL for (int nh = 0; nh < 2; nh++)
            FST_UNROLL for (int j = 0; j < 8; j++)
                FST_UNROLL for (int x = 0; x < 4; x += 2) {
                    const i64 row = m0 + 64 * wg + 16 * w + q + 8 * (x >> 1), col = n0 + 64 * nh + 8 * j + 2 * r;
                    float *cp = a.c + row * a.ldc + col;
                    float v0 = a.alpha * d[nh][4 * j + x], v1 = a.alpha * d[nh][4 * j + x + 1];
                    if (a.beta != 0.0f) { v0 += a.beta * cp[0]; v1 += a.beta * cp[1]; }
#ifdef __CUDA_ARCH__
                    *(float2 *)cp = make_float2(v0, v1);
#else
                    cp[0] = v0; cp[1] = v1;
#endif
                }
        return;
    }
    FST_UNROLL for (int nh = 0; nh < 2; nh++)
        FST_UNROLL for (int j = 0; j < 8; j++)
            FST_UNROLL for (int x = 0; x < 4; x++) {
                const i64 row = m0 + 64 * wg + 16 * w + q + 8 * (x >> 1), col = n0 + 64 * nh + 8 * j + 2 * r + (x & 1);
                float *cp;
                if (a.xh) {   /* NCHW: column col is output position (image, pos) */
                    if (col >= a.npos) continue;
                    const i64 img = col / hw;
                    cp = a.c + (img * a.m + row) * hw + (col - img * hw);
                } else {
                    cp = a.c + row * a.ldc + col;
                }
                const float v = a.alpha * d[nh][4 * j + x];
                *cp = a.beta == 0.0f ? v : v + a.beta * *cp;
            }
}

template <bool SP, int WGS> FST_BD void wgg_run(FstCtx &c, const fst_k_wggemm_args &a) {
    typedef Wgg<SP, WGS> W;
    const int t = c.tid(), wg = t >> 7, w = (t >> 5) & 3, q = (t & 31) >> 2, r = t & 3;
    const i64 b = c.block(), m0 = (b / a.ntiles) * W::BM, n0 = (b % a.ntiles) * W::BN;
    float d[2][32];
    FST_UNROLL for (int h = 0; h < 2; h++)
        FST_UNROLL for (int i = 0; i < 32; i++) d[h][i] = 0.0f;
    u32 ra[4][4], rb[8][4], me[4] = {0u, 0u, 0u, 0u}, cur[4] = {0u, 0u, 0u, 0u};
    const i64 slices = a.k / W::BK;
    wgg_load<SP, WGS>(a, m0, n0, 0, t, ra, rb, me);
    wgg_store<SP, WGS>(c.smem, t, ra, rb);
    c.fence_proxy_async();
    c.sync();
    for (i64 s = 0; s < slices; s++) {
        if (SP) FST_UNROLL for (int i = 0; i < 4; i++) cur[i] = me[i];
        if (s + 1 < slices) wgg_load<SP, WGS>(a, m0, n0, (s + 1) * W::BK, t, ra, rb, me);   /* in flight during the products */
        wgg_slice<SP, WGS>(c, c.smem + (s & 1) * W::STAGE, wg, r, cur, d);
        if (s + 1 < slices) {   /* the other stage, while the tensor cores read this one */
            wgg_store<SP, WGS>(c.smem + ((s + 1) & 1) * W::STAGE, t, ra, rb);
            c.fence_proxy_async();
        }
        c.wg_wait0();   /* before the next slice's stores overwrite this stage */
        c.sync();
    }
    wgg_store_c<WGS>(a, m0, n0, wg, w, q, r, d);
}

/* wggemm3: wggemm2's tile (two warpgroups, 128 x 128, K slices of 32) with its slices copied into FST_WGG_ASYNC_STAGES
 * shared-memory stages by cp.async (16 bytes a piece, no staging registers; a piece outside the image zero-filled): two
 * slices are in flight while the tensor cores work on a third, where wggemm2 has one in registers. */
template <bool SP> FST_BD void wgg_issue(FstCtx &c, const fst_k_wggemm_args &a, unsigned char *stage, i64 m0, i64 n0, i64 k0, int t) {
    typedef Wgg<SP, 2> W;
    u16 *sa = (u16 *)stage, *sb = (u16 *)(stage + W::BM * W::GA * 16);
    FST_UNROLL for (int i = 0; i < W::PA; i++) {
        const int p = t + W::T * i, row = wgg_row(p, W::GA), g = wgg_grp(p, W::GA);
        c.cp_async16(sa + wgg_at(row, g, W::SBO_A), wgg_src_a<SP>(a, m0, k0, row, g), true);
    }
    const WggTap tp = wgg_tap(a, k0);
    FST_UNROLL for (int i = 0; i < W::PB; i++) {
        const int p = t + W::T * i, row = wgg_row(p, W::GB), g = wgg_grp(p, W::GB);
        const u16 *src = wgg_src_b(a, tp, n0, k0, row, g);
        c.cp_async16(sb + wgg_at(row, g, W::SBO_B), src ? src : a.xh, src != nullptr);   /* a zero piece reads nothing */
    }
}

template <bool SP> FST_BD void wgg_run_async(FstCtx &c, const fst_k_wggemm_args &a) {
    typedef Wgg<SP, 2> W;
    constexpr int S = FST_WGG_ASYNC_STAGES;
    const int t = c.tid(), wg = t >> 7, w = (t >> 5) & 3, q = (t & 31) >> 2, r = t & 3;
    const i64 b = c.block(), m0 = (b / a.ntiles) * W::BM, n0 = (b % a.ntiles) * W::BN;
    float d[2][32];
    FST_UNROLL for (int h = 0; h < 2; h++)
        FST_UNROLL for (int i = 0; i < 32; i++) d[h][i] = 0.0f;
    u32 ra[4][4], rb[8][4], me[4] = {0u, 0u, 0u, 0u}, cur[4] = {0u, 0u, 0u, 0u};
    const i64 slices = a.k / W::BK;
    if (SP) wgg_load<SP, 2>(a, m0, n0, 0, t, ra, rb, me, true);   /* the first slice's metadata words only */
    FST_UNROLL for (int s = 0; s < S - 1; s++) {   /* one group per slice, empty past the last, so the counts below hold */
        if (s < slices) wgg_issue<SP>(c, a, c.smem + s * W::STAGE, m0, n0, s * W::BK, t);
        c.cp_commit();
    }
    for (i64 s = 0; s < slices; s++) {
        c.cp_wait_group<S - 2>();   /* this thread's pieces of slice s have landed */
        c.fence_proxy_async();      /* ... visible to the tensor cores */
        c.sync();                   /* everyone's; and every warpgroup is done with slice s - 1's stage */
        if (s + S - 1 < slices) wgg_issue<SP>(c, a, c.smem + ((s + S - 1) % S) * W::STAGE, m0, n0, (s + S - 1) * W::BK, t);
        c.cp_commit();
        if (SP) {
            FST_UNROLL for (int i = 0; i < 4; i++) cur[i] = me[i];
            if (s + 1 < slices) wgg_load<SP, 2>(a, m0, n0, (s + 1) * W::BK, t, ra, rb, me, true);
        }
        wgg_slice<SP, 2>(c, c.smem + (s % S) * W::STAGE, wg, r, cur, d);
        c.wg_wait0();
    }
    c.cp_wait_group<0>();
    wgg_store_c<2>(a, m0, n0, wg, w, q, r, d);
}

template <int WGS> FST_BD void wgg_kernel(FstCtx &c, const fst_k_wggemm_args &a) {
    if (!c.wg_available()) {
        if (c.block() == 0 && c.tid() == 0) a.ok[0] = 0;
        return;
    }
    if (a.meta) wgg_run<true, WGS>(c, a);
    else wgg_run<false, WGS>(c, a);
    if (c.block() == 0 && c.tid() == 0) a.ok[0] = 1;
}
FST_BD void kb_wggemm(FstCtx &c, const fst_k_wggemm_args &a) { wgg_kernel<1>(c, a); }
FST_BD void kb_wggemm2(FstCtx &c, const fst_k_wggemm_args &a) { wgg_kernel<2>(c, a); }
FST_BD void kb_wggemm3(FstCtx &c, const fst_k_wggemm_args &a) {
    if (!c.wg_available()) {
        if (c.block() == 0 && c.tid() == 0) a.ok[0] = 0;
        return;
    }
    if (a.meta) wgg_run_async<true>(c, a);
    else wgg_run_async<false>(c, a);
    if (c.block() == 0 && c.tid() == 0) a.ok[0] = 1;
}

/* Implicit-GEMM convolution, Eq. 1 (fst_k_igemm_args): block (mt, nt) computes output channels mt*BM.. and output
 * positions nt*BN.. (position j = (image, oh, ow) in NCHW order). For each BK slice of K it stages W's slice (bf16) and
 * the im2col slice (x gathered and rounded to bf16, never written to global memory) in shared memory, then its 8 warps
 * (32 x 32 outputs each) run 2 x 4 mma.m16n8k16 per 16 of K. The products are written straight into NCHW. Consecutive
 * lanes stage consecutive positions, so the reads of x coalesce along a row. Two shared-memory buffers: the next slice's
 * global loads are issued into registers before the current slice's products and stored into the other buffer after
 * them, so one barrier per slice separates the writes of one buffer from the reads of the other. */
/* A tile shape: BM output channels x BN positions, 8 warps of 32 x 32 outputs (BN / 32 of them along N); per thread and
 * slice BE im2col elements (position t % BN, k from (t / BN) BE) and AE of W (row t / (32 / AE), k from (t % (32 / AE)) AE) */
template <int BM, int BN> struct IgTile {
    static constexpr int WN = BN / 32, WM = 8 / WN, BE = FST_IG_BK * BN / FST_IG_T, AE = BM * FST_IG_BK / FST_IG_T;
    static constexpr int APR = FST_IG_BK / AE;        /* threads per W row */
    static constexpr int KE = BM * 16 / FST_IG_T;     /* kept values per thread and slice (2:4 W) */
    static constexpr int KPR = 16 / KE;               /* threads per kept-values row */
    static_assert(WM * 32 == BM && WM * WN == 8 && BE % 2 == 0 && AE % 2 == 0 && KE % 2 == 0, "implicit-GEMM tile shape");
};

struct IgStage {
    const float *xb;   /* this thread's image */
    i64 ih0, iw0;      /* its output position's top-left input coordinates */
    bool jok;          /* its position exists */
    int bp, bk;
    uint64_t vmask;    /* bit r*kw + s: tap (r, s) of this position lies inside the image (kh*kw <= 64; 0 when !jok) */
    int base;          /* ih0 * w + iw0 */
};

/* This thread's position of the block's tile (t % BN) for the im2col slices. */
template <int BN, int BE> FST_BD IgStage ig_stage(const fst_geom &g, int t, i64 n0, i64 npix, const float *x) {
    IgStage st;
    st.bp = t % BN;
    st.bk = (t / BN) * BE;
    const i64 P = g.ho * g.wo, j = n0 + st.bp;
    st.jok = j < npix;
    i64 img = 0, oh = 0, ow = 0;
    if (st.jok) { img = j / P; const i64 rem = j - img * P; oh = rem / g.wo; ow = rem - oh * g.wo; }
    st.xb = x + img * g.c * g.h * g.w;
    st.ih0 = oh * g.sh - g.ph;
    st.iw0 = ow * g.sw - g.pw;
    st.base = (int)(st.ih0 * g.w + st.iw0);
    st.vmask = 0;
    if (st.jok && g.kh * g.kw <= 64)
        for (int r = 0; r < (int)g.kh; r++)
            for (int s = 0; s < (int)g.kw; s++)
                if ((u32)(st.ih0 + r) < (u32)g.h && (u32)(st.iw0 + s) < (u32)g.w) st.vmask |= (uint64_t)1 << (r * (int)g.kw + s);
    return st;
}

/* the im2col slice at k0 into registers: BE bf16 of this thread's position, k0 + bk .. k0 + bk + BE - 1, packed in pairs;
 * k is (c, kh, kw) in that order, or with cfast (kh, kw, c), channels fastest */
/* 32-bit arithmetic inside one image (the launcher requires c*h*w < 2^31 and K < 2^31): half the instructions of 64-bit
 * index math, which this gather, not the tensor cores, is bound by */
template <int BE> FST_BD void ig_load_x(const fst_geom &g, i64 K, const IgStage &st, i64 k0, u32 xv[BE / 2], bool cfast) {
    const int C = (int)g.c, H = (int)g.h, W = (int)g.w, KH = (int)g.kh, KW = (int)g.kw, khw = KH * KW;
    const int ih0 = (int)st.ih0, iw0 = (int)st.iw0, kend = (int)K;
    int k = (int)(k0 + st.bk), ci, r, s;
    if (cfast && C % BE == 0) {
        /* channels fastest and C a multiple of BE: this thread's BE values share one tap (k0 + bk is a multiple of BE), so one
         * bounds check, then a load every H*W floats */
        const int tap = k / C;
        ci = k - tap * C;
        r = tap / KW;
        s = tap - r * KW;
        const int ih = ih0 + r, iw = iw0 + s;
        if (st.jok && k < kend && (unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W) {
            const float *p = st.xb + (ci * H + ih) * W + iw;
            const int HW = H * W;
            for (int e = 0; e < BE; e += 2, p += 2 * HW) xv[e / 2] = pack2_bf16(LDG(p), LDG(p + HW));
        } else {
            for (int e = 0; e < BE / 2; e++) xv[e] = 0u;
        }
        return;
    }
    if (!cfast && khw <= 64) {
        /* (c, kh, kw) order: the taps' validity from the position's mask, the address advanced by one per value (by a row or
         * a plane where the tap wraps): no bounds arithmetic per value */
        ci = k / khw;
        int t = k - ci * khw;
        s = t % KW;
        const int HW = H * W, kvalid = kend - k;
        int off = ci * HW + st.base + (t / KW) * W + s;
        float lo = 0.0f;
        for (int e = 0; e < BE; e++) {
            float v = 0.0f;
            if (e < kvalid && ((st.vmask >> t) & 1u)) v = LDG(st.xb + off);
            if (e & 1) xv[e / 2] = pack2_bf16(lo, v);
            else lo = v;
            off++;
            t++;
            if (++s == KW) {
                s = 0;
                off += W - KW;
                if (t == khw) { t = 0; off += HW - KH * W; }
            }
        }
        return;
    }
    if (cfast) {
        const int tap = k / C;
        ci = k - tap * C;
        r = tap / KW;
        s = tap - r * KW;
    } else {
        ci = k / khw;
        const int rr = k - ci * khw;
        r = rr / KW;
        s = rr - r * KW;
    }
    float lo = 0.0f;
    for (int e = 0; e < BE; e++, k++) {
        float v = 0.0f;
        const int ih = ih0 + r, iw = iw0 + s;
        if (st.jok && k < kend && (unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W) v = LDG(st.xb + (ci * H + ih) * W + iw);
        if (e & 1) xv[e / 2] = pack2_bf16(lo, v);
        else lo = v;
        if (cfast) { if (++ci == C) { ci = 0; if (++s == KW) { s = 0; r++; } } }
        else if (++s == KW) { s = 0; if (++r == KH) { r = 0; ci++; } }
    }
}

template <int BE> FST_BD void ig_store_x(u16 *bs, const IgStage &st, const u32 xv[BE / 2]) {
    u16 *bd = bs + st.bp * FST_IG_LDS + st.bk;
    for (int e = 0; e < BE / 2; e++) st32(bd + 2 * e, xv[e]);
}

/* B's fragments of 16 (dense mma: regs 2) or 32 (mma.sp: regs 4) of k from ks, for the 8 positions of ni at column q */
FST_BD void ig_frag_b(const u16 *Bs, int wn, int ni, int q, int r4, int ks, int regs, u32 *b) {
    const u16 *bq = Bs + (wn * 32 + ni * 8 + q) * FST_IG_LDS + ks + 2 * r4;
    for (int j = 0; j < regs; j++) b[j] = ld32(bq + 8 * j);
}

/* One 32-wide slice of the dense kernels: the warp's 32 x 32 outputs += As (its 32 rows from wm * 32) x Bs (its 32 columns
 * from wn * 32), 2 x 4 mma.m16n8k16 per 16 of K */
FST_BD void ig_mma_slice(FstCtx &c, const u16 *As, const u16 *Bs, int wm, int wn, int q, int r4, float acc[2][4][4]) {
    for (int ks = 0; ks < FST_IG_BK; ks += 16) {
        u32 af[2][4], bfr[4][2];
        for (int mi = 0; mi < 2; mi++) ig_frag_a(As, FST_IG_LDS, wm * 32 + mi * 16 + q, ks, r4, af[mi]);
        for (int ni = 0; ni < 4; ni++) ig_frag_b(Bs, wn, ni, q, r4, ks, 2, bfr[ni]);
        for (int mi = 0; mi < 2; mi++)
            for (int ni = 0; ni < 4; ni++) c.mma16816(acc[mi][ni], af[mi], bfr[ni]);
    }
}

/* the 32 x 32 outputs of this thread's warp, straight into NCHW */
FST_BD void ig_epilogue(const fst_geom &g, float *y, i64 cout, i64 npix, i64 m0, i64 n0, int wm, int wn, int q, int r4,
                        const float acc[2][4][4]) {
    const i64 P = g.ho * g.wo;
    for (int mi = 0; mi < 2; mi++)
        for (int ni = 0; ni < 4; ni++)
            for (int e = 0; e < 4; e++) {
                const i64 o = m0 + wm * 32 + mi * 16 + q + 8 * (e >> 1), jj = n0 + wn * 32 + ni * 8 + 2 * r4 + (e & 1);
                if (o < cout && jj < npix) {
                    const i64 im = jj / P;
                    y[(im * cout + o) * P + (jj - im * P)] = acc[mi][ni][e];
                }
            }
}

/* W's slice at k0: AE bf16 of row m0 + t / APR from k0 + (t % APR) AE, packed in pairs */
/* N (a multiple of 8) bf16 of a row from column c0, zero at and past lim (and everywhere when !rowok), packed in pairs: one
 * 16-byte load per 8 where the row's 8 values are inside and 16-byte aligned (the weights' usual case), else one by one */
template <int N> FST_BD void ld_row16(const u16 *row, i64 c0, i64 lim, bool rowok, u32 out[N / 2]) {
    if (rowok && c0 + N <= lim && (((uintptr_t)(row + c0)) & 15) == 0) {
        for (int e = 0; e < N; e += 8) {
#ifdef __CUDA_ARCH__
            const uint4 v = *(const uint4 *)(row + c0 + e);
            out[e / 2] = v.x; out[e / 2 + 1] = v.y; out[e / 2 + 2] = v.z; out[e / 2 + 3] = v.w;
#else
            memcpy(out + e / 2, row + c0 + e, 16);
#endif
        }
        return;
    }
    for (int e = 0; e < N; e += 2) {
        const u16 lo = rowok && c0 + e < lim ? row[c0 + e] : 0;
        const u16 hi = rowok && c0 + e + 1 < lim ? row[c0 + e + 1] : 0;
        out[e / 2] = pack_bf16(lo, hi);
    }
}

template <int BM, int BN> FST_BD void ig_load_w(const fst_k_igemm_args &a, i64 m0, int t, i64 k0, u32 wv[IgTile<BM, BN>::AE / 2]) {
    typedef IgTile<BM, BN> Tl;
    const i64 co = m0 + t / Tl::APR, kc = k0 + (t % Tl::APR) * Tl::AE;
    const bool ok = co < a.cout;
    ld_row16<Tl::AE>(a.w + (ok ? co * a.ldw : 0), kc, a.K, ok, wv);
}

template <int BM, int BN> FST_BD void ig_store_w(u16 *as, int t, const u32 wv[IgTile<BM, BN>::AE / 2]) {
    typedef IgTile<BM, BN> Tl;
    u16 *ad = as + (t / Tl::APR) * FST_IG_LDS + (t % Tl::APR) * Tl::AE;
    for (int e = 0; e < Tl::AE / 2; e++) st32(ad + 2 * e, wv[e]);
}

FST_BD void ig_zero(float acc[2][4][4]) {
    for (int mi = 0; mi < 2; mi++)
        for (int ni = 0; ni < 4; ni++)
            for (int e = 0; e < 4; e++) acc[mi][ni][e] = 0.0f;
}

template <int BM, int BN> FST_BD void igemm_body(FstCtx &c, const fst_k_igemm_args &a) {
    typedef IgTile<BM, BN> Tl;
    const int t = c.tid(), lane = t & 31, warp = t >> 5;
    const i64 m0 = (c.block() % a.mtiles) * BM, n0 = (c.block() / a.mtiles) * BN;
    const IgStage st = ig_stage<BN, Tl::BE>(a.g, t, n0, a.npix, a.x);
    const int wm = warp / Tl::WN, wn = warp % Tl::WN, q = lane >> 2, r4 = lane & 3;
    const int BUF = (BM + BN) * FST_IG_LDS;   /* bf16 per buffer: W's slice, then the im2col slice */
    u16 *smem = (u16 *)c.smem;
    float acc[2][4][4];
    ig_zero(acc);
    u32 wv[Tl::AE / 2], xv[Tl::BE / 2];
    ig_load_w<BM, BN>(a, m0, t, 0, wv);
    ig_load_x<Tl::BE>(a.g, a.K, st, 0, xv, a.cfast != 0);
    ig_store_w<BM, BN>(smem, t, wv);
    ig_store_x<Tl::BE>(smem + BM * FST_IG_LDS, st, xv);
    c.sync();
    int cur = 0;
    for (i64 k0 = 0; k0 < a.K; k0 += FST_IG_BK) {
        const bool more = k0 + FST_IG_BK < a.K;
        if (more) { ig_load_w<BM, BN>(a, m0, t, k0 + FST_IG_BK, wv); ig_load_x<Tl::BE>(a.g, a.K, st, k0 + FST_IG_BK, xv, a.cfast != 0); }
        const u16 *As = smem + cur * BUF, *Bs = As + BM * FST_IG_LDS;
        ig_mma_slice(c, As, Bs, wm, wn, q, r4, acc);
        if (more) {
            u16 *nb = smem + (cur ^ 1) * BUF;
            ig_store_w<BM, BN>(nb, t, wv);
            ig_store_x<Tl::BE>(nb + BM * FST_IG_LDS, st, xv);
        }
        c.sync();
        cur ^= 1;
    }
    ig_epilogue(a.g, a.y, a.cout, a.npix, m0, n0, wm, wn, q, r4, acc);
}

FST_BD void kb_igemm(FstCtx &c, const fst_k_igemm_args &a) { igemm_body<64, 128>(c, a); }
FST_BD void kb_igemm_m128(FstCtx &c, const fst_k_igemm_args &a) { igemm_body<128, 64>(c, a); }

/* The same convolution with W 2:4 along K (fst_k_igemm_sp_args): each 32-wide slice of K is one mma.sp.m16n8k32 per 16 x 8
 * outputs, A staged as its kept values (16 per row and slice, half W's bytes) and one metadata word per row (k_prune24's
 * word w covers exactly slice w). Groups past K and rows past Cout get positions 0 and 1 of zero values: metadata with
 * equal positions is undefined on the device. Thread t stages KE kept values of row t / KPR, and threads below BM the
 * metadata word of row t. */
template <int BM, int BN> FST_BD void igs_load_w(const fst_k_igemm_sp_args &a, i64 m0, int t, i64 k0, u32 wv[IgTile<BM, BN>::KE / 2], u32 &mv) {
    typedef IgTile<BM, BN> Tl;
    const i64 G = (a.K + 3) / 4, co = m0 + t / Tl::KPR, kv0 = k0 / 2 + (t % Tl::KPR) * Tl::KE;
    if constexpr (Tl::KE % 8 == 0) {
        const bool ok = co < a.cout;
        ld_row16<Tl::KE>(a.v + (ok ? co * a.ldv : 0), kv0, 2 * G, ok, wv);
    } else {
        for (int e = 0; e < Tl::KE; e += 2) {
            const u16 lo = co < a.cout && kv0 + e < 2 * G ? a.v[co * a.ldv + kv0 + e] : 0;
            const u16 hi = co < a.cout && kv0 + e + 1 < 2 * G ? a.v[co * a.ldv + kv0 + e + 1] : 0;
            wv[e / 2] = pack_bf16(lo, hi);
        }
    }
    if (t < BM) {
        const i64 row = m0 + t, wd = k0 / 32;
        u32 m = row < a.cout ? a.meta[row * a.ldm + wd] : 0u;
        for (int gi = 0; gi < 8; gi++)
            if (row >= a.cout || 8 * wd + gi >= G) m = (m & ~(0xfu << (4 * gi))) | (0x4u << (4 * gi));
        mv = m;
    }
}

template <int BM, int BN> FST_BD void igs_store_w(unsigned char *buf, int t, const u32 wv[IgTile<BM, BN>::KE / 2], u32 mv) {
    typedef IgTile<BM, BN> Tl;
    u16 *as = (u16 *)buf + (t / Tl::KPR) * FST_IGS_LDA + (t % Tl::KPR) * Tl::KE;
    for (int e = 0; e < Tl::KE / 2; e++) st32(as + 2 * e, wv[e]);
    if (t < BM) ((u32 *)(buf + FST_IGS_META(BM)))[t] = mv;
}

template <int BM, int BN> FST_BD void igemm_sp_body(FstCtx &c, const fst_k_igemm_sp_args &a) {
    typedef IgTile<BM, BN> Tl;
    const int t = c.tid(), lane = t & 31, warp = t >> 5;
    const i64 m0 = (c.block() % a.mtiles) * BM, n0 = (c.block() / a.mtiles) * BN;
    const IgStage st = ig_stage<BN, Tl::BE>(a.g, t, n0, a.npix, a.x);
    const int wm = warp / Tl::WN, wn = warp % Tl::WN, q = lane >> 2, r4 = lane & 3;
    const bool cfast = a.cfast != 0;
    float acc[2][4][4];
    ig_zero(acc);
    u32 wv[Tl::KE / 2], mv = 0, xv[Tl::BE / 2];
    igs_load_w<BM, BN>(a, m0, t, 0, wv, mv);
    ig_load_x<Tl::BE>(a.g, a.K, st, 0, xv, cfast);
    igs_store_w<BM, BN>(c.smem, t, wv, mv);
    ig_store_x<Tl::BE>((u16 *)(c.smem + FST_IGS_BS(BM)), st, xv);
    c.sync();
    int cur = 0;
    for (i64 k0 = 0; k0 < a.K; k0 += FST_IG_BK) {
        const bool more = k0 + FST_IG_BK < a.K;
        if (more) { igs_load_w<BM, BN>(a, m0, t, k0 + FST_IG_BK, wv, mv); ig_load_x<Tl::BE>(a.g, a.K, st, k0 + FST_IG_BK, xv, cfast); }
        const unsigned char *buf = c.smem + cur * FST_IGS_BUF(BM, BN);
        const u16 *As = (const u16 *)buf, *Bs = (const u16 *)(buf + FST_IGS_BS(BM));
        const u32 *Ms = (const u32 *)(buf + FST_IGS_META(BM));
        u32 af[2][4], em[2], bfr[4][4];
        for (int mi = 0; mi < 2; mi++) {
            const int row = wm * 32 + mi * 16 + q;
            ig_frag_a(As, FST_IGS_LDA, row, 0, r4, af[mi]);
            em[mi] = sp_meta(Ms[row], Ms[row + 8], r4 & 1);
        }
        for (int ni = 0; ni < 4; ni++) ig_frag_b(Bs, wn, ni, q, r4, 0, 4, bfr[ni]);
        for (int mi = 0; mi < 2; mi++)
            for (int ni = 0; ni < 4; ni++) c.mma_sp16832(acc[mi][ni], af[mi], bfr[ni], em[mi]);
        if (more) {
            unsigned char *nb = c.smem + (cur ^ 1) * FST_IGS_BUF(BM, BN);
            igs_store_w<BM, BN>(nb, t, wv, mv);
            ig_store_x<Tl::BE>((u16 *)(nb + FST_IGS_BS(BM)), st, xv);
        }
        c.sync();
        cur ^= 1;
    }
    ig_epilogue(a.g, a.y, a.cout, a.npix, m0, n0, wm, wn, q, r4, acc);
}

FST_BD void kb_igemm_sp(FstCtx &c, const fst_k_igemm_sp_args &a) { igemm_sp_body<64, 128>(c, a); }
FST_BD void kb_igemm_sp_m128(FstCtx &c, const fst_k_igemm_sp_args &a) { igemm_sp_body<128, 64>(c, a); }

/* Eq. 3 as an implicit GEMM (fst_k_igemm_wg_args): block (mt, nt, split) computes dW's output channels mt*64.. and
 * columns nt*128.. of K over positions split*chunk ..: A = g's slice (bf16 rows, as W is staged in kb_igemm), B = the
 * im2col^T slice gathered from x, each thread two consecutive positions (one packed pair per k) and 8 consecutive k of
 * the tile (its (c, kh, kw) fixed for the whole kernel), so that consecutive lanes read consecutive positions. The partial
 * product goes to ws[split]; k_splitk_sum adds the splits. */
FST_BD void igwg_load_b(const fst_k_igemm_wg_args &a, i64 j0, int jl, int ci0, int r0, int s0, bool kok[8], u32 xv[8], bool onetap) {
    const fst_geom &g = a.g;
    const int H = (int)g.h, W = (int)g.w, C = (int)g.c, KH = (int)g.kh, KW = (int)g.kw;
    const i64 P = g.ho * g.wo;
    const float *xb[2];
    int ihb[2], iwb[2];
    bool ok[2];
    for (int u = 0; u < 2; u++) {
        const i64 j = j0 + jl + u;
        ok[u] = j < a.npix;
        i64 img = 0, oh = 0, ow = 0;
        if (ok[u]) { img = j / P; const i64 rem = j - img * P; oh = rem / g.wo; ow = rem - oh * g.wo; }
        xb[u] = a.x + img * g.c * g.h * g.w;
        ihb[u] = (int)(oh * g.sh - g.ph);
        iwb[u] = (int)(ow * g.sw - g.pw);
    }
    if (onetap) {
        /* K channels fastest with C % 8 == 0: the 8 values share tap (r0, s0); one bounds check per position, then a load
         * a plane apart */
        const float *p[2];
        for (int u = 0; u < 2; u++) {
            const int ih = ihb[u] + r0, iw = iwb[u] + s0;
            p[u] = ok[u] && kok[0] && (unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W ? xb[u] + (ci0 * H + ih) * W + iw : nullptr;
        }
        const int HW = H * W;
        for (int e = 0; e < 8; e++) xv[e] = pack2_bf16(p[0] ? LDG(p[0] + e * HW) : 0.0f, p[1] ? LDG(p[1] + e * HW) : 0.0f);
        return;
    }
    int ci = ci0, r = r0, s = s0;
    for (int e = 0; e < 8; e++) {
        float v[2];
        for (int u = 0; u < 2; u++) {
            const int ih = ihb[u] + r, iw = iwb[u] + s;
            v[u] = ok[u] && kok[e] && (unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W ? LDG(xb[u] + (ci * H + ih) * W + iw) : 0.0f;
        }
        xv[e] = pack2_bf16(v[0], v[1]);
        if (a.cfast) { if (++ci == C) { ci = 0; if (++s == KW) { s = 0; r++; } } }
        else if (++s == KW) { s = 0; if (++r == KH) { r = 0; ci++; } }
    }
}

FST_BD void kb_igemm_wg(FstCtx &c, const fst_k_igemm_wg_args &a) {
    const int t = c.tid(), lane = t & 31, warp = t >> 5;
    const i64 b = c.block(), mt = b % a.mtiles, nt = (b / a.mtiles) % a.ntiles, split = b / (a.mtiles * a.ntiles);
    const i64 m0 = mt * 64, n0 = nt * 128, jbeg = split * a.chunk, jend = jbeg + a.chunk < a.npix ? jbeg + a.chunk : a.npix;
    const int wm = warp >> 2, wn = warp & 3, q = lane >> 2, r4 = lane & 3;
    const int BUF = (64 + 128) * FST_IG_LDS;
    u16 *smem = (u16 *)c.smem;
    /* A staging (g): row co = m0 + t / 4, 8 positions from (t % 4) * 8; B staging: positions 2 (t % 16), k from (t / 16) * 8 */
    const i64 co = m0 + (t >> 2);
    const int ac = (t & 3) * 8, jl = 2 * (t & 15), kl = (t >> 4) * 8;
    const i64 khw = a.g.kh * a.g.kw, k0 = n0 + kl;
    int ci0, r0, s0;
    if (a.cfast) {
        const int tap = (int)(k0 / a.g.c);
        ci0 = (int)(k0 - (i64)tap * a.g.c);
        r0 = tap / (int)a.g.kw;
        s0 = tap - r0 * (int)a.g.kw;
    } else {
        ci0 = (int)(k0 / khw);
        const int rr = (int)(k0 - ci0 * khw);
        r0 = rr / (int)a.g.kw;
        s0 = rr - r0 * (int)a.g.kw;
    }
    const bool onetap = a.cfast && a.g.c % 8 == 0;
    bool kok[8];
    for (int e = 0; e < 8; e++) kok[e] = k0 + e < a.K;
    float acc[2][4][4];
    ig_zero(acc);
    u32 av[4], xv[8];
    auto load = [&](i64 j0) {
        if (a.src) {
            /* the shift-gathered dY, made here: k_shift_gather's arithmetic and rounding, value by value (gather 0: dY's
             * positions as they are, from NCHW or by channel) */
            const i64 h = a.gather ? (a.seg + 1) / 2 : a.seg;
            for (int e = 0; e < 8; e += 2) {
                u16 b2[2];
                for (int u = 0; u < 2; u++) {
                    const i64 j = j0 + ac + e + u;
                    float o = 0.0f;
                    if (co < a.cout && j < jend) {
                        const i64 sg = j / h, qq = j - sg * h;
                        const float *sp = a.src + co * a.lds + sg * a.sseg;
                        const float xv0 = sp[a.gather ? 2 * qq : qq];
                        if (!a.gather || a.coeff == 0.0f) o = xv0;
                        else if (a.shift == 1) {
                            if (2 * qq + 1 < a.seg) o = xv0 + a.coeff * sp[2 * qq + 1];
                            else o = a.circular ? xv0 + a.coeff * sp[0] : xv0;
                        } else {
                            if (qq > 0) o = xv0 + a.coeff * sp[2 * qq - 1];
                            else o = a.circular ? xv0 + a.coeff * sp[a.seg - 1] : xv0;
                        }
                        b2[u] = bf16_bits(f2u(o));
                    } else b2[u] = 0;
                }
                av[e / 2] = pack_bf16(b2[0], b2[1]);
            }
        } else ld_row16<8>(a.gr + (co < a.cout ? co * a.ldg : 0), j0 + ac, jend, co < a.cout, av);
        igwg_load_b(a, j0, jl, ci0, r0, s0, kok, xv, onetap);
        if (j0 + jl >= jend) xv[0] = xv[1] = xv[2] = xv[3] = xv[4] = xv[5] = xv[6] = xv[7] = 0u;
        else if (j0 + jl + 1 >= jend)
            for (int e = 0; e < 8; e++) xv[e] &= 0xffffu;   /* the pair's second position is past the split */
    };
    auto store = [&](u16 *buf) {
        for (int e = 0; e < 4; e++) st32(buf + (t >> 2) * FST_IG_LDS + ac + 2 * e, av[e]);
        u16 *bs = buf + 64 * FST_IG_LDS;
        for (int e = 0; e < 8; e++) st32(bs + (kl + e) * FST_IG_LDS + jl, xv[e]);
    };
    load(jbeg);
    store(smem);
    c.sync();
    int cur = 0;
    for (i64 j0 = jbeg; j0 < jend; j0 += FST_IG_BK) {
        const bool more = j0 + FST_IG_BK < jend;
        if (more) load(j0 + FST_IG_BK);
        const u16 *As = smem + cur * BUF, *Bs = As + 64 * FST_IG_LDS;
        ig_mma_slice(c, As, Bs, wm, wn, q, r4, acc);
        if (more) store(smem + (cur ^ 1) * BUF);
        c.sync();
        cur ^= 1;
    }
    float *ws = a.ws + split * a.cout * a.K;
    for (int mi = 0; mi < 2; mi++)
        for (int ni = 0; ni < 4; ni++)
            for (int e = 0; e < 4; e++) {
                const i64 o = m0 + wm * 32 + mi * 16 + q + 8 * (e >> 1), kk = n0 + wn * 32 + ni * 8 + 2 * r4 + (e & 1);
                if (o < a.cout && kk < a.K) ws[o * a.K + kk] = acc[mi][ni][e];
            }
}

/* The bitonic network in shared memory over chunk b of the flattened keys (FST_SORT_CHUNK pairs, or the rest: a whole
 * number of lines, since P divides both the chunk when smaller and the total): steps k = kmin .. kmax, each with its
 * strides j below min(k, chunk) (the larger ones are k_sort_stage's); pairs never cross a line (j < k <= P). */
FST_BD void kb_sort_chunk(FstCtx &c, const fst_k_sort_args &a) {
    uint64_t *s = (uint64_t *)c.smem;
    const i64 base = c.block() * FST_SORT_CHUNK, rest = a.total - base, len = rest < FST_SORT_CHUNK ? rest : FST_SORT_CHUNK;
    const int t = c.tid();
    for (i64 q = t; q < len; q += FST_SORT_T) s[q] = a.keys[base + q];
    c.sync();
    for (i64 k = a.kmin; k <= a.kmax; k <<= 1)
        for (i64 j = (k < FST_SORT_CHUNK ? k : FST_SORT_CHUNK) / 2; j > 0; j >>= 1) {
            for (i64 u = t; u < len / 2; u += FST_SORT_T) {
                const i64 lo = (u / j) * 2 * j + u % j;
                sort_cmpx(s, lo, j, (base + lo) & (a.P - 1), k);
            }
            c.sync();
        }
    for (i64 q = t; q < len; q += FST_SORT_T) a.keys[base + q] = s[q];
}

#endif
