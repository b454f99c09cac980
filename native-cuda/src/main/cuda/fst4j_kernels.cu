/* fst4j CUDA kernels: the sparsification overhead of one FST step and the convolution lowering, with the
 * exact semantics of the CPU shim (prune.c, conv.c; layout in sparse/FORMAT.md). Compiled by nvcc into a
 * fatbin only (no host code, no CUDA runtime linked): cuda.c embeds it and launches the kernels through the
 * driver API (cuModuleLoadData + cuLaunchKernel), see native-cuda/CUDA.md. Every kernel is extern "C" so
 * that cuda.c finds it by its plain name; every index is 64-bit; arithmetic that the CPU does without FMA is
 * written with __fadd_rn / __fmul_rn so that nvcc cannot contract it and results match the CPU bit for bit. */
#include <stdint.h>

typedef uint32_t u32;
typedef uint16_t u16;
typedef int64_t i64;

/* float bits -> bf16 bits, round to nearest even; NaN stays a (quiet) NaN with its sign. */
__device__ __forceinline__ u16 bf16_bits(u32 b) {
    if ((b & 0x7fffffffu) > 0x7f800000u) return (u16)((b >> 16) | 0x40u);
    return (u16)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

/* One group of 4 on float bit patterns: the same integer logic as GROUP24 in prune.c (keep the 2 largest |x|,
 * ties to the lower index, NaN above +Inf, pruned = +0.0f; stored values and nibble under Compressed24's fill
 * rule). m[] gets the masked entries, v0/v1 the stored values, the return value the nibble i0 | i1 << 2. */
__device__ __forceinline__ u32 group24(const u32 b[4], u32 m[4], u32 &v0, u32 &v1) {
    u32 k[4];
#pragma unroll
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

/* S(W) along K: W [rows, K] row-major (ldw). One thread per (row, group); the groups of a row are numbered up
 * to Gp = ceil(G/8)*8 so that the 8 groups of one metadata word sit in 8 aligned lanes of a warp and are
 * OR-ed together with shuffles. values [rows, 2G], meta [rows, ceil(G/8)]; optional masked dense copies:
 * dense fp32 [rows, K] (ldd), dense16 bf16 [rows, K] (ldd16) - padding columns are never written. */
extern "C" __global__ void fst_k_prune24(i64 rows, i64 K, const float *__restrict__ w, i64 ldw,
                                         float *__restrict__ values, u32 *__restrict__ meta,
                                         float *__restrict__ dense, i64 ldd, u16 *__restrict__ dense16, i64 ldd16) {
    const i64 G = (K + 3) / 4, Gp = (G + 7) / 8 * 8, ldm = Gp / 8;
    const i64 idx = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    const i64 r = idx / Gp, g = idx % Gp;
    const bool live = r < rows && g < G;
    u32 nib = 0;
    if (live) {
        const u32 *x = (const u32 *)w + r * ldw + 4 * g;
        u32 b[4], m[4], v0, v1;
#pragma unroll
        for (int j = 0; j < 4; j++) b[j] = 4 * g + j < K ? __ldg(x + j) : 0u;
        nib = group24(b, m, v0, v1);
        u32 *vo = (u32 *)values + r * 2 * G + 2 * g;
        vo[0] = v0; vo[1] = v1;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            if (4 * g + j >= K) break;
            if (dense) ((u32 *)dense)[r * ldd + 4 * g + j] = m[j];
            if (dense16) dense16[r * ldd16 + 4 * g + j] = bf16_bits(m[j]);
        }
    }
    u32 word = nib << (4 * (g & 7));
    word |= __shfl_xor_sync(0xffffffffu, word, 1);
    word |= __shfl_xor_sync(0xffffffffu, word, 2);
    word |= __shfl_xor_sync(0xffffffffu, word, 4);
    if (live && (g & 7) == 0) meta[r * ldm + g / 8] = word;
}

/* S(W^T): W [cout, K] row-major (ldw) read as W^T [K, cout], pruned 2:4 along cout. One thread per (k, metadata
 * word): consecutive threads take consecutive k, so every read of a W row is coalesced. values [K, 2G],
 * meta [K, ceil(G/8)] with G = ceil(cout/4); optional masked dense W^T copies [K, cout]: fp32 (lddt), bf16 (ldd16t). */
extern "C" __global__ void fst_k_prune24_t(i64 cout, i64 K, const float *__restrict__ w, i64 ldw,
                                           float *__restrict__ values, u32 *__restrict__ meta,
                                           float *__restrict__ dense_t, i64 lddt, u16 *__restrict__ dense16_t, i64 ldd16t) {
    const i64 G = (cout + 3) / 4, ldm = (G + 7) / 8;
    const i64 idx = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= K * ldm) return;
    const i64 wd = idx / K, k = idx % K;
    u32 word = 0;
    const i64 gend = 8 * wd + 8 < G ? 8 * wd + 8 : G;
    for (i64 g = 8 * wd; g < gend; g++) {
        u32 b[4], m[4], v0, v1;
#pragma unroll
        for (int j = 0; j < 4; j++) b[j] = 4 * g + j < cout ? __ldg((const u32 *)w + (4 * g + j) * ldw + k) : 0u;
        word |= group24(b, m, v0, v1) << (4 * (g & 7));
        u32 *vo = (u32 *)values + k * 2 * G + 2 * g;
        vo[0] = v0; vo[1] = v1;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            if (4 * g + j >= cout) break;
            if (dense_t) ((u32 *)dense_t)[k * lddt + 4 * g + j] = m[j];
            if (dense16_t) dense16_t[k * ldd16t + 4 * g + j] = bf16_bits(m[j]);
        }
    }
    meta[k * ldm + wd] = word;
}

/* IR shift + Eq. 7 half-K gather (fst_shift_gather): nseg segments of seg elements, out nseg x ceil(seg/2);
 * kept position j = 2i: out = dy[j] + coeff * dy[j + shift], neighbour wrapped (circular) or dropped at the
 * segment's ends; coeff == 0 is a plain gather. One thread per output element. */
extern "C" __global__ void fst_k_shift_gather(const float *__restrict__ dy, float *__restrict__ out, i64 nseg, i64 seg,
                                              int shift, float coeff, int circular) {
    const i64 h = (seg + 1) / 2;
    const i64 idx = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= nseg * h) return;
    const i64 sg = idx / h, i = idx % h;
    const float *s = dy + sg * seg;
    const float x = s[2 * i];
    float o;
    if (coeff == 0.0f) o = x;
    else if (shift == 1) {
        if (2 * i + 1 < seg) o = __fadd_rn(x, __fmul_rn(coeff, s[2 * i + 1]));
        else o = circular ? __fadd_rn(x, __fmul_rn(coeff, s[0])) : x;
    } else {
        if (i > 0) o = __fadd_rn(x, __fmul_rn(coeff, s[2 * i - 1]));
        else o = circular ? __fadd_rn(x, __fmul_rn(coeff, s[seg - 1])) : x;
    }
    out[idx] = o;
}

/* ---- convolution lowering (conv.c): x [n, c, h, w] contiguous; cols [K = c*kh*kw, n*L] with row stride ld ---- */
struct Geom { i64 n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo; };

/* One thread per element of the [K, n*L] matrix (L = ho*wo). */
extern "C" __global__ void fst_k_im2col(const float *__restrict__ x, Geom g, float *__restrict__ out, i64 ldo) {
    const i64 L = g.ho * g.wo, NL = g.n * L, K = g.c * g.kh * g.kw;
    const i64 idx = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= K * NL) return;
    const i64 r = idx / NL, col = idx % NL, img = col / L, p = col % L;
    const i64 ch = r / (g.kh * g.kw), i = (r / g.kw) % g.kh, j = r % g.kw;
    const i64 ih = (p / g.wo) * g.sh - g.ph + i, iw = (p % g.wo) * g.sw - g.pw + j;
    out[r * ldo + col] = (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) ? 0.0f : __ldg(x + ((img * g.c + ch) * g.h + ih) * g.w + iw);
}

/* dx [n, c, h, w] (overwritten) = col2im(cols): one thread per dx element gathers its contributions in the
 * CPU's order (kernel row i, then column j, starting from +0.0f), so the sums are bit-identical. */
extern "C" __global__ void fst_k_col2im(const float *__restrict__ cols, i64 ldc, Geom g, float *__restrict__ dx) {
    const i64 L = g.ho * g.wo;
    const i64 idx = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= g.n * g.c * g.h * g.w) return;
    const i64 iw = idx % g.w, ih = (idx / g.w) % g.h, ch = (idx / (g.w * g.h)) % g.c, img = idx / (g.w * g.h * g.c);
    float acc = 0.0f;
    for (i64 i = 0; i < g.kh; i++) {
        const i64 th = ih + g.ph - i;
        if (th < 0 || th % g.sh != 0 || th / g.sh >= g.ho) continue;
        const i64 oh = th / g.sh;
        for (i64 j = 0; j < g.kw; j++) {
            const i64 tw = iw + g.pw - j;
            if (tw < 0 || tw % g.sw != 0 || tw / g.sw >= g.wo) continue;
            acc = __fadd_rn(acc, __ldg(cols + ((ch * g.kh + i) * g.kw + j) * ldc + img * L + oh * g.wo + tw / g.sw));
        }
    }
    dx[idx] = acc;
}

/* im2col at output positions pos[0..npos) of every image: column img*npos + q. pos is not validated here
 * (the host side does); any position still reads only inside x or gives 0. */
extern "C" __global__ void fst_k_im2col_at(const float *__restrict__ x, Geom g, const int32_t *__restrict__ pos, i64 npos,
                                           float *__restrict__ out, i64 ldo) {
    const i64 NP = g.n * npos, K = g.c * g.kh * g.kw;
    const i64 idx = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= K * NP) return;
    const i64 r = idx / NP, col = idx % NP, img = col / npos, q = col % npos;
    const i64 ch = r / (g.kh * g.kw), i = (r / g.kw) % g.kh, j = r % g.kw;
    const i64 p = __ldg(pos + q);
    const i64 ih = (p / g.wo) * g.sh - g.ph + i, iw = (p % g.wo) * g.sw - g.pw + j;
    out[r * ldo + col] = (ih < 0 || ih >= g.h || iw < 0 || iw >= g.w) ? 0.0f : __ldg(x + ((img * g.c + ch) * g.h + ih) * g.w + iw);
}

/* fp32 -> bf16 (round to nearest even), n elements: operands of cuBLAS / cuSPARSELt bf16 GEMMs. */
extern "C" __global__ void fst_k_f32_to_bf16(const float *__restrict__ src, u16 *__restrict__ dst, i64 n) {
    const i64 idx = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx < n) dst[idx] = bf16_bits(__float_as_uint(src[idx]));
}
