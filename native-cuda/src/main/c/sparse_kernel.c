/* 2:4 sparse x dense product (fst_spmm24), the per-thread driver and register kernel, compiled once
 * per ISA by the Makefile (-DFST_ISA_AVX512 / -DFST_ISA_AVX2 / neither) from this one source, like
 * gemm_kernel.c. sparse.c validates, splits the work and picks the ISA at run time.
 *
 * Loop order: for each NB-wide column block of B and each KB-deep block of K (KB a multiple of 32, so a
 * block starts on a metadata word; KBB rows from an L2-sized buffer where K needs several blocks: fewer C tile
 * re-reads), B[k0:k0+KB, j:j+nb] is copied into a small aligned buffer with a row
 * stride of nb rounded up to whole vectors (zero-filled past N and past K, so padded groups read zeros);
 * while the MR-row register blocks stream over it, the next block's rows of B are prefetched a few lines
 * per register block. A register block keeps MR x nv vector accumulators; per group of 4 and per row it
 * broadcasts the two kept values and multiplies them with the buffer rows its 2-bit indices select, the
 * buffer row read straight from L1 as the FMA's memory operand (no B registers). The metadata word of
 * each row is read once per 8 groups; the group loop is unrolled 8 times so every nibble shift is a
 * constant. beta is applied when C is stored after the first K block (beta == 0 never reads C); N edges
 * use a narrower instantiation (fewer vectors) and, on AVX-512, a masked last vector. S is read one K block
 * per register block, rows ldv apart: with short (64-row) K blocks of an S that does not fit L2, the next register
 * block's values and metadata are prefetched (the hardware prefetchers miss 128 bytes per row). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <immintrin.h>
#include "lowering.h"
#include "alloc.h"

#if defined(FST_ISA_AVX512)
#  define VL 16
#  ifndef NV
#  define NV 6
#  endif
#  ifndef MR
#  define MR 4
#  endif
#  ifndef FN                                /* jmh/probes/spmm_ab.c builds two variants under other names */
#  define FN fst_spmm24_range_avx512
#  endif
#elif defined(FST_ISA_AVX2)
/* 2 rows x 6 vectors (12 of the 16 ymm registers): each (row, group) decodes its two indices and broadcasts its two
 * values once for 12 FMAs instead of 6 (4 x 3). On session 42's Intel Xeon forced to AVX2 (bench-eq123, 1 thread, B
 * materialised, median ms over 6 rounds): 16x6272x144 0.589 -> 0.417, 32x1568x288 0.361 -> 0.297, 64x392x576 0.277 ->
 * 0.225, 128x6272x1152 16.33 -> 13.38; 3 x 4 and 2 x 7 within 3 % of 2 x 6, 6 x 2 slower than 4 x 3. */
#  define VL 8
#  ifndef NV
#  define NV 6
#  endif
#  ifndef MR
#  define MR 2
#  endif
#  define FN fst_spmm24_range_avx2
#else
#  define VL 4
#  define NV 3
#  define MR 4
#  define FN fst_spmm24_range_generic
#endif
#define NB (VL * NV)                                /* columns per block */
#ifndef SPK_BUF
#define SPK_BUF 24576                               /* bytes of the B buffer (L1-resident) */
#endif
#ifndef NV_ONE
#define NV_ONE 3                                    /* narrowest block worth a single K block */
#endif
#ifndef SPK_CSLAB
#define SPK_CSLAB (256 << 10)                       /* bytes of C one pass over a column block updates */
#endif
#ifndef SPK_ABIG
#define SPK_ABIG (1 << 20)                          /* S rows' values bytes above which column blocks are grouped */
#endif
#ifndef SPK_CSLAB_BIG
#define SPK_CSLAB_BIG (640 << 10)                   /* bytes of C a group of column blocks keeps in L2 */
#endif
#ifndef SPK_PF_LOC
#define SPK_PF_LOC 2                                /* __builtin_prefetch locality of the next B block (2: towards L2) */
#endif
#ifndef SPK_PF_S
#define SPK_PF_S 1                                  /* register blocks ahead whose S is prefetched (0: none) */
#endif
#ifndef SPK_PF_S_BYTES
#define SPK_PF_S_BYTES (512 << 10)                  /* ... when a thread's rows of S hold more bytes of values than this */
#endif
#define SPK_GROUP_MAX 8                             /* column blocks per group at most */
#define SPK_QUERY_BUF 1                             /* modes, as in sparse.c */
#define SPK_STREAM 2                                /* flag: non-temporal C stores allowed */
#define SPK_BIGK 4                                  /* flag: S has enough rows for the L2-sized K blocks */
#define KB ((SPK_BUF / (NB * 4)) & ~31)             /* K rows per block, whole metadata words */
/* Bytes of the B buffer where K needs several blocks: 96 KB (L2) on a core with one 512-bit FMA per cycle (Zen 4), 36
 * KB (L1) elsewhere: on a core with two (Zen 5; session 37's Intel Xeon, AMX, two FMAs per cycle in probe-cpu) the
 * FMAs' B operands no longer stream from L2 fast enough. Intel cores with one 512-bit FMA unit are unmeasured and take
 * 36 KB. In-process A/Bs (spmm_ab.sh, 1 thread, the four Eq. 1 shapes), 96 rows (36 KB) against 256 (96 KB):
 * Zen 5 1.03-1.10x (128 rows 1.00-1.09x, 64 rows 0.99-1.05x, 160 and 192 rows 0.97-1.04x); an Intel Xeon with AMX
 * (session 37) 1.11-1.22x (64 rows 0.97-1.10x). -DSPK_BUF_BIG fixes it (probes).
 */
#ifdef SPK_BUF_BIG
#define KBB ((int64_t)((SPK_BUF_BIG / (NB * 4)) & ~31))
#else
#include "cpu_host.h"
static int64_t kbb_rows(void) {
    static int64_t rows;   /* 0 until known; every thread computes the same value */
    int64_t r = __atomic_load_n(&rows, __ATOMIC_RELAXED);
    if (r) return r;
    /* AMD family 0x19 with AVX-512 (this kernel only runs where there is AVX-512): Zen 4 */
    const int zen4 = fst_cpu_amd_family() == 0x19;
    r = (((zen4 ? 98304 : 36864) / (NB * 4)) & ~31);
    __atomic_store_n(&rows, r, __ATOMIC_RELAXED);
    return r;
}
#define KBB kbb_rows()
#endif

extern int fst_spmm24_group_mode;                   /* sparse.c: fst_spmm24_grouping */
extern int fst_spmm24_prefetch_mode;                /* sparse.c: fst_spmm24_prefetch */
extern int fst_spmm24_kblock_mode;                  /* sparse.c: fst_spmm24_kblocks */
#define INLINE static inline __attribute__((always_inline))
typedef float vf __attribute__((vector_size(VL * 4)));
typedef float vfu __attribute__((vector_size(VL * 4), aligned(4)));
/* The C update, alpha * acc (+ C or + beta * C), as explicit instructions: written as vector expressions, gcc
 * contracted them into FMAs differently in the kernel's (mr, nv) instantiations, so with beta other than 0 and 1 the
 * last columns' bits depended on how threads split the columns (the dense GEMM's order: fma(beta, C, alpha * acc)). */
#if defined(FST_ISA_AVX512)
#  define BCAST(x) ((vf)_mm512_set1_ps(x))
#  define STREAM(p, x) _mm512_stream_ps(p, (__m512)(x))
#  define XMUL(a, b) ((vf)_mm512_mul_ps((__m512)(a), (__m512)(b)))
#  define XADD(a, b) ((vf)_mm512_add_ps((__m512)(a), (__m512)(b)))
#  define XFMA(a, b, c) ((vf)_mm512_fmadd_ps((__m512)(a), (__m512)(b), (__m512)(c)))
#elif defined(FST_ISA_AVX2)
#  define BCAST(x) ((vf)_mm256_set1_ps(x))
#  define STREAM(p, x) _mm256_stream_ps(p, (__m256)(x))
#  define XMUL(a, b) ((vf)_mm256_mul_ps((__m256)(a), (__m256)(b)))
#  define XADD(a, b) ((vf)_mm256_add_ps((__m256)(a), (__m256)(b)))
#  define XFMA(a, b, c) ((vf)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c)))
#  define XFMA1(a, b, c) __builtin_fmaf(a, b, c)
#else   /* no FMA instructions: nothing to contract */
#  define BCAST(x) ((vf){ (x), (x), (x), (x) })
#  define STREAM(p, x) _mm_stream_ps(p, (__m128)(x))
#  define XMUL(a, b) ((a) * (b))
#  define XADD(a, b) ((a) + (b))
#  define XFMA(a, b, c) ((a) * (b) + (c))
#  define XFMA1(a, b, c) ((a) * (b) + (c))
#endif

/* Same prototype as declared in sparse.c. buf holds KB * NB floats, 64-byte aligned. mode SPK_QUERY_BUF:
 * return KB * NB. Otherwise computes C[m0:m1, n0:n1] = alpha * S[m0:m1, :] * B[:, n0:n1] + beta * C[...]; with cimg > 0
 * C is a batch of images (NCHW): column j of row i at C + (j / ldc) * cimg + i * ldc + j % ldc, ldc = ho * wo a multiple
 * of 16 and n0 too, so that every vector of a block lies in one image (its store goes to its own offset; 7x7 or 14x14
 * planes, whose vectors would cross images, are left to the caller's scatter: through a buffer they ran 0.93x). */
int FN(int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, float alpha, float beta, const float *values,
       const uint32_t *meta, const float *B, int64_t ldb, float *C, int64_t ldc, float *buf, int mode,
       const fst_lowering *low, int64_t cimg);

/* Contribution of group (bg = its 4 buffer rows) of row i, nibble nib, values x0/x1. */
#define GROUP(i, nib, x0, x1)                                                                   \
    do {                                                                                        \
        const float *b0_ = bg + ((nib) & 3u) * ls, *b1_ = bg + (((nib) >> 2) & 3u) * ls;        \
        const vf y0_ = BCAST(x0), y1_ = BCAST(x1);                                                \
        _Pragma("GCC unroll 8")                                                                 \
        for (int v = 0; v < nv; v++) {                                                          \
            acc[i][v] += y0_ * *(const vf *)(b0_ + v * VL);                                     \
            acc[i][v] += y1_ * *(const vf *)(b1_ + v * VL);                                     \
        }                                                                                       \
    } while (0)

/* One register block: C[0:mr, 0:n] (first K block: = alpha*acc + beta*C, else += alpha*acc) over groups
 * [g0, g0+ng) of the rows (g0 a multiple of 8), buf rows of stride ls = nv * VL floats. */
INLINE void block(const int mr, const int nv, const float *restrict val, int64_t ldv,
                  const uint32_t *restrict meta, int64_t ldm, int64_t g0, int64_t ng,
                  const float *restrict buf, float *restrict c, int64_t ldc, float alpha, float beta,
                  int first, int n, const int64_t *voff) {
    const int stream = first > 1;   /* beta == 0, single K block, C 64-byte aligned rows: bypass the caches */
    const int ls = nv * VL;
    vf acc[MR][NV];
    _Pragma("GCC unroll 8")
    for (int i = 0; i < mr; i++)
        _Pragma("GCC unroll 8")
        for (int v = 0; v < nv; v++) acc[i][v] = (vf){0};
    const float *vp[MR];
    const uint32_t *mp[MR];
    _Pragma("GCC unroll 8")
    for (int i = 0; i < mr; i++) { vp[i] = val + i * ldv + 2 * g0; mp[i] = meta + i * ldm + g0 / 8; }
    const float *bg = buf;
    int64_t g = 0;
    for (; g + 8 <= ng; g += 8) {
        uint32_t w[MR];
        _Pragma("GCC unroll 8")
        for (int i = 0; i < mr; i++) w[i] = mp[i][g >> 3];
        _Pragma("GCC unroll 8")
        for (int j = 0; j < 8; j++) {
            _Pragma("GCC unroll 8")
            for (int i = 0; i < mr; i++) GROUP(i, w[i] >> (4 * j), vp[i][2 * (g + j)], vp[i][2 * (g + j) + 1]);
            bg += 4 * ls;
        }
    }
    if (g < ng) {
        uint32_t w[MR];
        _Pragma("GCC unroll 8")
        for (int i = 0; i < mr; i++) w[i] = mp[i][g >> 3];
        for (int j = 0; g < ng; g++, j++) {
            _Pragma("GCC unroll 8")
            for (int i = 0; i < mr; i++) GROUP(i, w[i] >> (4 * j), vp[i][2 * g], vp[i][2 * g + 1]);
            bg += 4 * ls;
        }
    }
    const vf va = BCAST(alpha), vb = BCAST(beta);
    const int rem = n - (nv - 1) * VL;   /* 1..VL columns in the last vector */
    _Pragma("GCC unroll 8")
    for (int i = 0; i < mr; i++) {
        float *ci = c + i * ldc;
        _Pragma("GCC unroll 8")
        for (int v = 0; v < nv; v++) {
            /* voff: each vector's own offset (a batch of images, vectors never across two), else contiguous */
            float *cp = voff ? ci + voff[v] - v * VL : ci;
            vf r = XMUL(acc[i][v], va);
            if (v < nv - 1 || rem == VL) {
                if (stream) { STREAM(cp + v * VL, r); continue; }
                vfu *q = (vfu *)(cp + v * VL);
                if (!first || beta == 1.0f) r = XADD(r, *q);
                else if (beta != 0.0f) r = XFMA(vb, *q, r);
                *q = r;
            } else {
#if defined(FST_ISA_AVX512)
                const __mmask16 k = (__mmask16)((1u << rem) - 1);
                if (!first || beta == 1.0f) r = XADD(r, (vf)_mm512_maskz_loadu_ps(k, cp + v * VL));
                else if (beta != 0.0f) r = XFMA(vb, (vf)_mm512_maskz_loadu_ps(k, cp + v * VL), r);
                _mm512_mask_storeu_ps(cp + v * VL, k, (__m512)r);
#else
                float t[VL];
                memcpy(t, &r, sizeof t);
                float *d = cp + v * VL;
                for (int j = 0; j < rem; j++) {   /* as the full vectors: t + C, fma(beta, C, t) */
                    if (!first || beta == 1.0f) d[j] = t[j] + d[j];
                    else if (beta != 0.0f) d[j] = XFMA1(beta, d[j], t[j]);
                    else d[j] = t[j];
                }
#endif
            }
        }
    }
}

/* Runtime (mr, nv) to a compile-time instantiation. */
#define BLOCK_ARGS val, ldv, meta, ldm, g0, ng, buf, c, ldc, alpha, beta, first, n, voff
#define NVC(mr, k) case k: if (NV >= k) block(mr, k > NV ? NV : k, BLOCK_ARGS); break;
#define NV_CASES(mr) switch (nv) { NVC(mr, 1) NVC(mr, 2) NVC(mr, 3) NVC(mr, 4) NVC(mr, 5) NVC(mr, 6) NVC(mr, 7) \
                                   default: block(mr, NV, BLOCK_ARGS); break; }
#define MRC(k) else if (mr == k && MR >= k) NV_CASES(k > MR ? MR : k)
static void run_block(int mr, int nv, const float *val, int64_t ldv, const uint32_t *meta, int64_t ldm,
                      int64_t g0, int64_t ng, const float *buf, float *c, int64_t ldc, float alpha, float beta,
                      int first, int n, const int64_t *voff) {
    if (mr == MR) NV_CASES(MR)
    MRC(1) MRC(2) MRC(3) MRC(4) MRC(5) MRC(6) MRC(7)
}

typedef struct {
    const float *src;
    int64_t ld, rows, lines, per_call, r, l;
} prefetcher;

static inline void prefetch_some(prefetcher *pf) {
    for (int64_t i = 0; i < pf->per_call && pf->r < pf->rows; i++) {
        __builtin_prefetch(pf->src + pf->r * pf->ld + pf->l * 16, 0, SPK_PF_LOC);
        if (++pf->l == pf->lines) { pf->l = 0; pf->r++; }
    }
}

int FN(int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, float alpha, float beta, const float *values,
       const uint32_t *meta, const float *B, int64_t ldb, float *C, int64_t ldc, float *buf, int mode,
       const fst_lowering *low, int64_t cimg) {
    if (mode == SPK_QUERY_BUF) return (int)((VL == 16 ? KBB : KB) * NB);   /* the largest block any call may use */
    const int64_t Kp = (K + 3) & ~(int64_t)3, ldv = Kp / 2, ldm = (Kp + 31) / 32;
    /* K blocks: where K does not fit one L1-sized block (KB rows, or one block of at least NV_ONE vectors), the
     * AVX-512 kernel takes blocks of KBB rows from an L2-resident buffer instead: the register blocks then store and
     * re-read their C tile once per KBB rows rather than per KB, and the FMAs' B operands still stream from L2 fast
     * enough. In-process A/Bs (one thread, 96 KB against 24 KB): 1.02-1.07x at 64-512 x 392-25088 x 576-4608 and
     * 2304 x 1568 x 256, 1.01-1.02x at 4608 x 392 x 512 and 576 x 25088 x 64; with K of 128 (one small block) it was 5 %
     * slower, so small K keeps the L1 block. 192 KB was slower than 96 KB at 64 x 25088 x 576 (0.90x). With 16 rows
     * (too few register blocks to reuse an L2-resident block) it was 0.93-0.95x at K = 144-256, 0.99-1.02x at 32 rows,
     * 1.00-1.05x at 64 and more: S under 32 rows keeps the L1 block too (the caller's SPK_BIGK, from all of S's rows,
     * so that the blocking and the bits do not depend on how threads split the rows). */
    const int64_t kbmax = VL == 16 && Kp * NV_ONE * VL > KB * NB && (mode & SPK_BIGK) &&
                          __atomic_load_n(&fst_spmm24_kblock_mode, __ATOMIC_RELAXED) ? KBB : KB;
    /* Block shape: NB columns x kbmax rows of K, or, when all of K fits the buffer with at least NV_ONE vectors
     * per row, one K block as wide as fits (C then stored once: no re-reads, and streamable). */
    int64_t nbw = NB, kbw = kbmax;
    if (Kp > kbmax && Kp * NV_ONE * VL <= kbmax * NB) {
        kbw = Kp;
        nbw = kbmax * NB / (Kp * VL) * VL;
        if (nbw > NB) nbw = NB;
    }
    /* Equal column blocks (whole vectors) rather than full ones and a narrow rest: 128 columns as 64 + 64, not 96 + 32,
     * whose 2-vector block pays a group's broadcasts and index decoding for half the multiply-adds. The sums per
     * column do not depend on the blocking. */
    const int grouping = __atomic_load_n(&fst_spmm24_group_mode, __ATOMIC_RELAXED);
    if (grouping && n1 - n0 > nbw) {
        const int64_t nblk = (n1 - n0 + nbw - 1) / nbw, even = ((n1 - n0 + nblk - 1) / nblk + VL - 1) / VL * VL;
        if (even < nbw) nbw = even;
    }
    /* Rows per pass over a group of column blocks: the C slab (mbw x nbw per block) stays in L2 across the K blocks.
     * Column blocks are taken gb at a time, each K block of the group's rows running over all of them before the
     * next: the rows' compressed values for that K block are then read from memory once per group rather than once
     * per column block. That matters when S is large (a 512 x 4608 weight is 4.7 MB: read again for every 96 columns
     * it came from DRAM or a contended L3: with the caches flushed between calls, a 2:4 product at that shape ran at
     * 1.06-1.12x of the dense one, 1.15-1.17x grouped); with a small S (L2-resident anyway) gb = 1, the order of one
     * block at a time. Mode 0 (fst_spmm24_grouping) keeps the earlier blocking exactly, for A/B runs. */
    const int64_t rows = m1 - m0, rows_r = (rows + MR - 1) / MR * MR;
    int64_t mbw = SPK_CSLAB / ((grouping ? nbw : NB) * 4) / MR * MR, gb = 1;
    if (grouping && rows_r * ldv * 4 > SPK_ABIG && rows_r * nbw * 4 <= SPK_CSLAB_BIG) {
        mbw = rows_r;
        gb = SPK_CSLAB_BIG / (rows_r * nbw * 4);
        if (gb > SPK_GROUP_MAX) gb = SPK_GROUP_MAX;
        /* one group a little over the slab budget rather than a second pass over S for a last block or two: 5 blocks at
         * a budget of 4 (512 x 4608 at 392 columns on one thread) ran 10-11 % faster as one group in an alternating A/B */
        const int64_t nblk = (n1 - n0 + nbw - 1) / nbw;
        if (nblk > gb && nblk <= gb + gb / 4 && nblk <= SPK_GROUP_MAX) gb = nblk;
    }
    const int64_t mblocks = ((rows < mbw ? rows : mbw) + MR - 1) / MR;
    /* S bigger than about half of L2, read in short K blocks (<= 128 rows: 128-256 bytes of values per row and visit,
     * rows ldv apart): the hardware prefetchers miss that pattern, so each register block prefetches the next one's
     * values and metadata. In-process A/Bs with 64-row blocks (1 thread): 1.32-1.36x at 4608 x 392 x 512, 1.11-1.19x at
     * 512 x 256-392 x 4608, 1.05-1.06x at 256 x 704-1568 x 2304 and 2304 x 1568 x 256; with S in L2 (64-128 rows of
     * 576-1152) 0.92-1.01x, so off there; with the 256-row K blocks (512 bytes per row and visit, which the hardware
     * follows) 0.98-1.01x, so off there too. */
    const int pf_s = (double)rows_r * (double)ldv * 4 > SPK_PF_S_BYTES && kbw < Kp && kbw <= 128 &&
                     __atomic_load_n(&fst_spmm24_prefetch_mode, __ATOMIC_RELAXED);
    (void)pf_s;
    /* C written once, never read (one K block, beta == 0) and big (mode SPK_STREAM, set by the caller):
     * non-temporal stores save the read-for-ownership of every line. Needs 64-byte aligned rows. */
    if (cimg && (ldc % 16 || n0 % 16)) return -1;   /* vectors would cross images: refused (the caller reports FST_EINVAL) */
    const int stream = !cimg && (mode & SPK_STREAM) && Kp <= kbw && beta == 0.0f &&
                       ((uintptr_t)C & 63) == 0 && (ldc & 15) == 0 && (n0 & 15) == 0;
    /* AVX-512 and a qualifying geometry: each column block's lowering is planned once (lowering.h) */
    char *plan_mem = NULL;
    size_t plan_bytes = 0;
    fst_lplan plans[SPK_GROUP_MAX];
    int planned[SPK_GROUP_MAX];
#if VL == 16
    if (low) {
        plan_bytes = (fst_lplan_bytes(low, (int)(nbw / VL)) + 63) & ~(size_t)63;
        plan_mem = fst_aligned_alloc(64, plan_bytes * (size_t)gb);   /* NULL: staged without a plan */
    }
#endif
    for (int64_t jg = n0; jg < n1; jg += gb * nbw) {
        const int64_t jg1 = n1 - jg < gb * nbw ? n1 : jg + gb * nbw;
        const int nbg = (int)((jg1 - jg + nbw - 1) / nbw);
        for (int bi = 0; bi < nbg; bi++) {
            const int64_t jn = jg + bi * nbw;
            const int n = (int)(jg1 - jn < nbw ? jg1 - jn : nbw);
            planned[bi] = plan_mem && fst_lplan_build(&plans[bi], low, jn, n, (n + VL - 1) / VL, plan_mem + bi * plan_bytes);
        }
        for (int64_t mb0 = m0; mb0 < m1; mb0 += mbw) {
            const int64_t mb1 = m1 - mb0 < mbw ? m1 : mb0 + mbw;
            for (int64_t k0 = 0; k0 < Kp; k0 += kbw) {
                const int64_t kb = Kp - k0 < kbw ? Kp - k0 : kbw;
                for (int bi = 0; bi < nbg; bi++) {
                    const int64_t jn = jg + bi * nbw;
                    const int n = (int)(jg1 - jn < nbw ? jg1 - jn : nbw);
                    const int nv = (n + VL - 1) / VL, ls = nv * VL;
                    fst_stage_rows(planned[bi] ? &plans[bi] : NULL, low, B, ldb, K, k0, kb, jn, n, ls, buf, ls);
                    /* Next block of B towards L2 while this one computes: the group's next column block, else
                     * its first one at the next K block, else (slab done) the next slab's or group's first. */
                    prefetcher pf = { 0 };
                    int64_t nk0 = k0, njn = jn + nbw;
                    if (bi + 1 >= nbg) {
                        njn = jg;
                        nk0 = k0 + kbw;
                        if (nk0 >= Kp) { nk0 = 0; if (mb1 >= m1) njn = jg1; }
                    }
                    if (njn < n1 && !low) {
                        const int64_t nn = n1 - njn < nbw ? n1 - njn : nbw, nkb = K - nk0 < kbw ? K - nk0 : kbw;
                        if (nkb > 0) {
                            pf.src = B + nk0 * ldb + njn;
                            pf.ld = ldb;
                            pf.rows = nkb;
                            pf.lines = (nn + 15) / 16 + 1;
                            pf.per_call = (pf.rows * pf.lines + mblocks - 1) / mblocks;
                        }
                    }
                    const int64_t g0 = k0 / 4, ng = kb / 4;
                    const int first = k0 == 0 ? 1 + stream : 0;
                    /* C as images: each vector's offset in C (a vector never spans two images, see FN) */
                    int64_t voff[NV];
                    if (cimg)
                        for (int v = 0; v < nv; v++) voff[v] = ((jn + v * VL) / ldc) * cimg + (jn + v * VL) % ldc;
                    for (int64_t i = mb0; i < mb1; i += MR) {
                        const int mr = (int)(mb1 - i < MR ? mb1 - i : MR);
                        if (pf.src) prefetch_some(&pf);
#if SPK_PF_S
                        /* the register block SPK_PF_S ahead: its rows' values and metadata for this K block */
                        if (pf_s && i + SPK_PF_S * MR < mb1)
                            for (int r = 0; r < MR && i + SPK_PF_S * MR + r < mb1; r++) {
                                const float *vq = values + (i + SPK_PF_S * MR + r) * ldv + 2 * g0;
                                for (int64_t o = 0; o < kb / 2; o += 16) __builtin_prefetch(vq + o, 0, 2);
                                __builtin_prefetch(meta + (i + SPK_PF_S * MR + r) * ldm + g0 / 8, 0, 2);
                            }
#endif
                        if (cimg) run_block(mr, nv, values + i * ldv, ldv, meta + i * ldm, ldm, g0, ng, buf, C + i * ldc, ldc,
                                            alpha, beta, first, n, voff);
                        else run_block(mr, nv, values + i * ldv, ldv, meta + i * ldm, ldm, g0, ng, buf, C + i * ldc + jn,
                                       ldc, alpha, beta, first, n, NULL);
                    }
                }
            }
        }
    }
    free(plan_mem);
    if (stream) _mm_sfence();
    return 0;
}
