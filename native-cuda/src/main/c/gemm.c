/* Cache-blocked, multi-threaded SGEMM driver. Loop order (outer to inner):
 *   ic (MB rows of A packed at once) > pc (KC) > jc (NB columns of B packed into an L2-sized block)
 *   > ir (one MR x KC sliver of packed A, hot in L1) > jr (KC x NR slivers of packed B, streamed from L2).
 * beta is folded into the first KC block (no separate pass over C; beta == 0 never reads C).
 * Threads (the caller plus the shared pool's helpers, parallel.c) claim chunks of C rows or columns (whichever duplicates less
 * packing and balances better) and pack their own operands into per-thread buffers. */
#include "fst4j.h"
#include "alloc.h"
#include "gemm_internal.h"
#include <stdlib.h>
#include <string.h>
#include "parallel.h"
#include "lowering.h"
#include <pthread.h>

/* Eq. 3 (transposed lowering) with at most this many rows skips the GEMM's packing (wgrad_avx512.c). The direct kernel
 * won up to 128 rows on a Zen 4 and a Zen 5 (NOTES-step-cpu.md v14, v17). On session 38's Intel Xeon (two 512-bit FMAs
 * per cycle, the packed GEMM's kernel at 70-80 % of peak) the packed GEMM won from 64 rows at 3x3 kernels, 2 threads,
 * direct / packed 1.03x (64 @ 32x32), 1.18x (128 @ 16x16), 1.04x (128, stride 2) but lost at 1x1 and 3-channel
 * inputs (0.83-0.88x); ResNet-18's DENSE step 1.03x faster with 48 rows than with 128 (FST3_IR's half-K Eq. 3 the
 * same). So: 128 on AMD, 48 elsewhere (Intel cores other than that one are unmeasured). -DFST_WGRAD_MAX_M fixes it. */
#include "cpu_host.h"
int fst_wgrad_direct_avx512(int64_t M, float alpha, const float *A, int64_t lda, int64_t al, int64_t aimg, int64_t aseg,
                            int ashift, float acoeff, int acirc, const fst_lowering *low, float beta, float *C, int64_t ldc,
                            int chunk, int nthreads);
static int wgrad_max_m = -1;  /* -1 until the first use or setting: then the host's default or the value set */
static int wgrad_chunk = 0;   /* 0: the direct kernel sizes its chunks of positions */
int fst_wgrad_chunk(int vectors) {
    if (vectors >= 0) __atomic_store_n(&wgrad_chunk, vectors, __ATOMIC_RELAXED);
    return __atomic_load_n(&wgrad_chunk, __ATOMIC_RELAXED);
}
static int wgrad_max(void) {
    int m = __atomic_load_n(&wgrad_max_m, __ATOMIC_RELAXED);
    if (m >= 0) return m;
#ifdef FST_WGRAD_MAX_M
    int host = FST_WGRAD_MAX_M;
#else
    int host = fst_cpu_amd_family() ? 128 : 48;
#endif
    /* a value set meanwhile by fst_wgrad_direct_max wins */
    return __atomic_compare_exchange_n(&wgrad_max_m, &m, host, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED) ? host : m;
}
int fst_wgrad_direct_max(int m) {
    if (m >= 0) __atomic_store_n(&wgrad_max_m, m, __ATOMIC_RELAXED);
    return wgrad_max();
}
#ifndef FST_KC
#define FST_KC 384      /* max depth of one packed block */
#endif
#ifndef FST_NB
#define FST_NB 240      /* columns of B packed per L2 block (rounded down to NR) */
#endif
#ifndef FST_MB
#define FST_MB 1536     /* rows of A packed per block (rounded down to MR) */
#endif
#ifndef PF_LOCALITY
#define PF_LOCALITY 1   /* __builtin_prefetch locality of the next B block: 1 = towards L2 */
#endif

const fst_kernel *fst_gemm_kernel(void) {
    static const fst_kernel *cached;   /* every thread computes the same value: a benign, atomic race */
    const fst_kernel *chosen = __atomic_load_n(&cached, __ATOMIC_ACQUIRE);
    if (!chosen) {
        __builtin_cpu_init();
        int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        int avx512 = avx2 && __builtin_cpu_supports("avx512f");
        /* FST4J_ISA=avx2|generic forces a lesser family (to test it on a bigger machine); never a missing one. */
        const char *force = getenv("FST4J_ISA");
        if (force && strcmp(force, "generic") == 0) avx2 = avx512 = 0;
        else if (force && strcmp(force, "avx2") == 0) avx512 = 0;
        chosen = avx512 ? &fst_kernel_avx512 : avx2 ? &fst_kernel_avx2 : &fst_kernel_generic;
        __atomic_store_n(&cached, chosen, __ATOMIC_RELEASE);
    }
    return chosen;
}

typedef struct {
    int tA, tB;
    const float *A, *B;
    int64_t lda, ldb, K;
    float alpha, beta;
    float *C;
    int64_t ldc;
    int64_t M, N;
    const fst_lowering *low;   /* non-NULL: B is im2col(low->x) (or its transpose when tB), computed while packing */
    /* cl > 0: C's columns are images of cl columns each, image i's [M, cl] block at C + i * cimg (NCHW output, ldc = cl) */
    int64_t cl, cimg;
    /* al > 0 (Eq. 3, not transposed A): A's columns (positions) are images of al each, image i's [M, al] block at A + i * aimg
     * (dY read as NCHW, lda = al) */
    int64_t al, aimg;
    /* bl > 0 (B not transposed, not lowered): B's columns are images of bl each, image i's [K, bl] block at B + i * bimg
     * (Eq. 2's dY read as NCHW, ldb = bl) */
    int64_t bl, bimg;
} job;

/* Copy of w floats with the width known at compile time for the kernel shapes (inlined vector moves). */
static inline void copy_w(float *restrict d, const float *restrict s, int w) {
    switch (w) {
    case 8: memcpy(d, s, 8 * 4); break;
    case 16: memcpy(d, s, 16 * 4); break;
    case 48: memcpy(d, s, 48 * 4); break;
    default: memcpy(d, s, (size_t)w * 4);
    }
}

/* Non-transposing pack: source rows run along the sliver width (A transposed, B not transposed).
 * Slivers of w: dst[s * w * kc + p * w + j] = src[p * ld + s * w + j], zero past cols. Row by row, so each
 * source row segment is read once, contiguously (friendly to the hardware prefetchers). */
/* One source row s[0:cols] spread over the slivers: d points at row p of the first sliver (dst + p * w). */
static inline void pack_n_row(const float *s, int64_t cols, int w, int64_t kc, float *restrict d) {
    const int64_t full = cols / w * w;
    const int n = (int)(cols - full);
    for (int64_t js = 0; js < full; js += w) copy_w(d + js * kc, s + js, w);
    if (n) {
        float *dp = d + full * kc;
        memcpy(dp, s + full, (size_t)n * 4);
        for (int j = n; j < w; j++) dp[j] = 0.0f;
    }
}

static void pack_n(const float *src, int64_t ld, int64_t cols, int w, int64_t kc, float *restrict dst) {
    for (int64_t p = 0; p < kc; p++) pack_n_row(src + p * ld, cols, w, kc, dst + p * w);
}

/* op(A)[i0:i0+mc, p0:p0+kc] into MR-high slivers: sliver s holds, for each p, rows s*MR .. s*MR+MR-1. */
static void pack_a(const job *jb, const fst_kernel *k, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float *dst) {
    const int mr = k->mr;
    if (jb->tA) { pack_n(jb->A + p0 * jb->lda + i0, jb->lda, mc, mr, kc, dst); return; }
    for (int64_t is = 0; is < mc; is += mr) {
        int m = (int)(mc - is < mr ? mc - is : mr);
        if (!jb->al) { k->pack_t(jb->A + (i0 + is) * jb->lda + p0, jb->lda, m, mr, kc, dst + is * kc); continue; }
        /* A as images: the block's positions image by image */
        for (int64_t p = p0; p < p0 + kc;) {
            const int64_t q = p % jb->al, w = jb->al - q < p0 + kc - p ? jb->al - q : p0 + kc - p;
            k->pack_t(jb->A + (p / jb->al) * jb->aimg + (i0 + is) * jb->lda + q, jb->lda, m, mr, w, dst + is * kc + (p - p0) * mr);
            p += w;
        }
    }
}

/* Implicit im2col packing. Not transposed: each of the kc rows of the block is lowered into a scratch row, then
 * laid out in slivers as pack_n does. Transposed (B = im2col^T, Eq. 3): each sliver's nr im2col rows are lowered
 * over the kc positions into scratch [nr][kc] and packed by the kernel family's transposing pack. */
static void pack_b_lowered(const job *jb, const fst_kernel *k, int64_t j0, int64_t nc, int64_t p0, int64_t kc, float *dst,
                           float *scratch, void *plan_mem) {
    const int nr = k->nr;
    fst_lplan plan;
    /* planned lowering (lowering.h): vectors of 16 columns straight into the slivers, or rows of scratch */
    if (!jb->tB && nr % 16 == 0 && fst_lplan_build(&plan, jb->low, j0, nc, (int)((nc + nr - 1) / nr * nr / 16), plan_mem)) {
        fst_lplan_rows(&plan, p0, kc, dst, nr, nr / 16, (int64_t)nr * kc);
        return;
    }
    if (jb->tB && fst_lplan_build(&plan, jb->low, p0, kc, (int)((kc + 15) / 16), plan_mem)) {
        for (int64_t js = 0; js < nc; js += nr) {
            int n = (int)(nc - js < nr ? nc - js : nr);
            /* the sliver's rows in one call, whole vectors: a row's last partial vector spills into the next row's start,
             * which that row then overwrites (the scratch has a vector to spare after the last) */
            fst_lplan_rows(&plan, j0 + js, n, scratch, kc, 0, 0);
            k->pack_t(scratch, kc, n, nr, kc, dst + js * kc);
        }
        return;
    }
    if (!jb->tB) {
        for (int64_t p = 0; p < kc; p++) {
            fst_lowering_row(jb->low, p0 + p, j0, nc, scratch);
            pack_n_row(scratch, nc, nr, kc, dst + p * nr);
        }
        return;
    }
    for (int64_t js = 0; js < nc; js += nr) {
        int n = (int)(nc - js < nr ? nc - js : nr);
        for (int r = 0; r < n; r++) fst_lowering_row(jb->low, j0 + js + r, p0, kc, scratch + r * kc);
        k->pack_t(scratch, kc, n, nr, kc, dst + js * kc);
    }
}

/* op(B)[p0:p0+kc, j0:j0+nc] into NR-wide slivers: sliver s holds, for each p, columns s*NR .. s*NR+NR-1. */
static void pack_b(const job *jb, const fst_kernel *k, int64_t j0, int64_t nc, int64_t p0, int64_t kc, float *dst) {
    const int nr = k->nr;
    if (!jb->tB && jb->bl) {   /* B as images: each sliver's columns image by image */
        for (int64_t p = 0; p < kc; p++)
            for (int64_t js = 0; js < nc; js += nr) {
                const int64_t wn = nc - js < nr ? nc - js : nr, end = j0 + js + wn;
                float *dp = dst + js * kc + p * nr;
                for (int64_t j = j0 + js; j < end;) {
                    const int64_t q = j % jb->bl, len = jb->bl - q < end - j ? jb->bl - q : end - j;
                    memcpy(dp + (j - j0 - js), jb->B + (j / jb->bl) * jb->bimg + (p0 + p) * jb->ldb + q, (size_t)len * 4);
                    j += len;
                }
                for (int64_t j = wn; j < nr; j++) dp[j] = 0.0f;
            }
        return;
    }
    if (!jb->tB) { pack_n(jb->B + p0 * jb->ldb + j0, jb->ldb, nc, nr, kc, dst); return; }
    for (int64_t js = 0; js < nc; js += nr) {
        int n = (int)(nc - js < nr ? nc - js : nr);
        k->pack_t(jb->B + (j0 + js) * jb->ldb + p0, jb->ldb, n, nr, kc, dst + js * kc);
    }
}

typedef struct {
    const float *src;
    int64_t ld, rows, lines, per_call, r, l;
} prefetcher;

static inline void prefetch_some(prefetcher *pf) {
    for (int64_t i = 0; i < pf->per_call && pf->r < pf->rows; i++) {
        __builtin_prefetch(pf->src + pf->r * pf->ld + pf->l * 16, 0, PF_LOCALITY);
        if (++pf->l == pf->lines) { pf->l = 0; pf->r++; }
    }
}

/* Per-thread packing buffers, grown on demand and freed when the thread exits (pthread key destructor),
 * so Java threads calling in do not leak them. */
typedef struct { float *a, *b, *s, *p; size_t acap, bcap, scap, pcap; } buffers;
static pthread_key_t buf_key;
static pthread_once_t buf_once = PTHREAD_ONCE_INIT;
static void buf_free(void *p) { buffers *b = p; free(b->a); free(b->b); free(b->s); free(b->p); free(b); }
static void buf_key_init(void) { (void)pthread_key_create(&buf_key, buf_free); }

static float *grow(float **p, size_t *cap, size_t floats) {
    if (*cap >= floats) return *p;
    size_t bytes = (floats * 4 + 63) & ~(size_t)63;
    float *q = fst_aligned_alloc(64, bytes);
    if (!q) return NULL;
    free(*p);
    *p = q;
    *cap = floats;
    return q;
}

static buffers *thread_buffers(size_t afloats, size_t bfloats, size_t sfloats, size_t pfloats) {
    pthread_once(&buf_once, buf_key_init);
    buffers *b = pthread_getspecific(buf_key);
    if (!b) {
        b = fst_calloc(1, sizeof *b);
        if (!b || pthread_setspecific(buf_key, b) != 0) { free(b); return NULL; }
    }
    if (!grow(&b->a, &b->acap, afloats) || !grow(&b->b, &b->bcap, bfloats)) return NULL;
    if (sfloats && !grow(&b->s, &b->scap, sfloats)) return NULL;
    if (pfloats && !grow(&b->p, &b->pcap, pfloats)) return NULL;
    return b;
}

/* The tile C[i0 : i0 + m, j0 : j0 + n] of a job whose C is a batch of images (cl > 0): in place where its columns lie in
 * one image; where they cross into the next (1 tile in 17 at 28x28 planes; every tile at 4x4), through an L1 buffer:
 * the pieces of C in (beta != 0), the kernel with the same alpha and beta, the pieces back out. Same products, same bits. */
static void image_tile(const job *jb, const fst_kernel *k, int64_t kc, const float *ap, const float *bp, int64_t i0,
                       int64_t j0, float beta, int m, int n) {
    const int64_t cl = jb->cl, q = j0 % cl;
    float *c = jb->C + (j0 / cl) * jb->cimg + i0 * jb->ldc + q;
    if (q + n <= cl) { k->kernel(kc, ap, bp, c, jb->ldc, jb->alpha, beta, m, n); return; }
    float t[FST_MR_MAX * FST_NR_MAX] __attribute__((aligned(64)));
    const int nr = k->nr;
    if (beta != 0.0f)
        for (int j = 0; j < n;) {   /* piece by piece: the rest of the current image, then the next */
            const int64_t jj = j0 + j, w = cl - jj % cl < n - j ? cl - jj % cl : n - j;
            const float *src = jb->C + (jj / cl) * jb->cimg + i0 * jb->ldc + jj % cl;
            for (int i = 0; i < m; i++) memcpy(t + i * nr + j, src + i * jb->ldc, (size_t)w * 4);
            j += (int)w;
        }
    k->kernel(kc, ap, bp, t, nr, jb->alpha, beta, m, n);
    for (int j = 0; j < n;) {
        const int64_t jj = j0 + j, w = cl - jj % cl < n - j ? cl - jj % cl : n - j;
        float *dst = jb->C + (jj / cl) * jb->cimg + i0 * jb->ldc + jj % cl;
        for (int i = 0; i < m; i++) memcpy(dst + i * jb->ldc, t + i * nr + j, (size_t)w * 4);
        j += (int)w;
    }
}

/* C[m0:m1, n0:n1] = alpha * op(A) op(B) + beta * C on one thread. */
static int gemm_range(const job *jb, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    const fst_kernel *k = fst_gemm_kernel();
    const int mr = k->mr, nr = k->nr;
    const int64_t MB = (FST_MB / mr) * mr, NB = (FST_NB / nr) * nr;
    const int64_t K = jb->K, nkb = (K + FST_KC - 1) / FST_KC, kcb = (K + nkb - 1) / nkb;
    int64_t mspan = m1 - m0 < MB ? m1 - m0 : MB, nspan = n1 - n0 < NB ? n1 - n0 : NB;
    const size_t sfloats = !jb->low ? 0 : jb->tB ? (size_t)nr * kcb + 16 : (size_t)nspan;
    /* a lowering plan covers the slivers of one block (not transposed) or kc positions (transposed) */
    const int pvec = (int)(jb->tB ? (kcb + 15) / 16 : (nspan + nr - 1) / nr * nr / 16);
    const size_t pfloats = jb->low ? (fst_lplan_bytes(jb->low, pvec) + 3) / 4 : 0;
    buffers *buf = thread_buffers((size_t)((mspan + mr - 1) / mr * mr) * kcb, (size_t)((nspan + nr - 1) / nr * nr) * kcb, sfloats,
                                  pfloats);
    if (!buf) return FST_ENOMEM;
    float *const tl_abuf = buf->a, *const tl_bbuf = buf->b;
    for (int64_t ic = m0; ic < m1; ic += MB) {
        int64_t mc = m1 - ic < MB ? m1 - ic : MB;
        for (int64_t pc = 0; pc < K; pc += kcb) {
            int64_t kc = K - pc < kcb ? K - pc : kcb;
            float beta = pc == 0 ? jb->beta : 1.0f;
            pack_a(jb, k, ic, mc, pc, kc, tl_abuf);
            for (int64_t jc = n0; jc < n1; jc += NB) {
                int64_t nc = n1 - jc < NB ? n1 - jc : NB;
                if (jb->low) pack_b_lowered(jb, k, jc, nc, pc, kc, tl_bbuf, buf->s, buf->p);
                else pack_b(jb, k, jc, nc, pc, kc, tl_bbuf);
                /* While this block computes, pull the next block of B (row-major source) towards L2 a few
                 * lines per micro-kernel call, so its packing does not wait on DRAM. */
                prefetcher pf = { 0 };
                int64_t npc = pc, njc = jc + NB;
                if (njc >= n1) { njc = n0; npc = pc + kcb; }
                if (npc < K && !jb->low && !jb->bl) {
                    int64_t nnc = n1 - njc < NB ? n1 - njc : NB, nkc = K - npc < kcb ? K - npc : kcb;
                    pf.ld = jb->ldb;
                    if (!jb->tB) { pf.src = jb->B + npc * jb->ldb + njc; pf.rows = nkc; pf.lines = (nnc + 15) / 16; }
                    else { pf.src = jb->B + njc * jb->ldb + npc; pf.rows = nnc; pf.lines = (nkc + 15) / 16; }
                    int64_t calls = ((mc + mr - 1) / mr) * ((nc + nr - 1) / nr);
                    pf.per_call = (pf.rows * pf.lines + calls - 1) / calls;
                }
                for (int64_t ir = 0; ir < mc; ir += mr) {
                    int m = (int)(mc - ir < mr ? mc - ir : mr);
                    const float *ap = tl_abuf + ir * kc;
                    float *cp = jb->C + (ic + ir) * jb->ldc + jc;
                    for (int64_t jr = 0; jr < nc; jr += nr) {
                        int n = (int)(nc - jr < nr ? nc - jr : nr);
                        if (pf.src) prefetch_some(&pf);
                        if (jb->cl) image_tile(jb, k, kc, ap, tl_bbuf + jr * kc, ic + ir, jc + jr, beta, m, n);
                        else k->kernel(kc, ap, tl_bbuf + jr * kc, cp + jr, jb->ldc, jb->alpha, beta, m, n);
                    }
                }
            }
        }
    }
    return FST_OK;
}

static void scale_c(int64_t m0, int64_t m1, int64_t N, float beta, float *C, int64_t ldc) {
    for (int64_t i = m0; i < m1; i++) {
        float *c = C + i * ldc;
        if (beta == 0.0f) memset(c, 0, (size_t)N * 4);
        else if (beta != 1.0f) for (int64_t j = 0; j < N; j++) c[j] *= beta;
    }
}

/* ---- threads ----
 * A job is cut into chunks of C rows or columns, each spanning all of K (no two threads touch one C element), and
 * run on the shared helper-thread pool (parallel.c): the caller claims chunks too and never waits for a helper
 * the OS has not scheduled (an OpenMP region would wait at its closing barrier for every team thread). */
typedef struct { const job *jb; int split_m; int64_t unit, total; int rc; } gemm_par;

static void gemm_chunk(void *p, int64_t u0, int64_t u1) {
    gemm_par *g = p;
    int64_t a = u0 * g->unit, b = u1 * g->unit < g->total ? u1 * g->unit : g->total;
    if (a >= b) return;
    int r = g->split_m ? gemm_range(g->jb, a, b, 0, g->jb->N) : gemm_range(g->jb, 0, g->jb->M, a, b);
    if (r != FST_OK) __atomic_store_n(&g->rc, r, __ATOMIC_RELAXED);
}

static int run_pool(const job *jb, int split_m, int64_t unit, int64_t total, int64_t units, int64_t chunks, int nt) {
    gemm_par g = { jb, split_m, unit, total, FST_OK };
    fst_parallel(units, chunks, nt, gemm_chunk, &g);
    return __atomic_load_n(&g.rc, __ATOMIC_RELAXED);
}

static int sgemm_run(job jb, int nthreads);

int fst_sgemm(int transA, int transB, int64_t M, int64_t N, int64_t K,
              float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
              float beta, float *C, int64_t ldc, int nthreads) {
    if (M < 0 || N < 0 || K < 0 || nthreads < 1) return FST_EINVAL;
    if (M == 0 || N == 0) return FST_OK;
    if (!C) return FST_ENULL;
    if (ldc < N) return FST_EINVAL;
    if (K > 0 && (!A || !B)) return FST_ENULL;
    if (K > 0 && (lda < (transA ? M : K) || ldb < (transB ? K : N))) return FST_EINVAL;
    if (K == 0 || alpha == 0.0f) { scale_c(0, M, N, beta, C, ldc); return FST_OK; }
    job jb = { .tA = transA != 0, .tB = transB != 0, .A = A, .B = B, .lda = lda, .ldb = ldb, .K = K, .alpha = alpha, .beta = beta,
               .C = C, .ldc = ldc, .M = M, .N = N };
    return sgemm_run(jb, nthreads);
}

int fst_sgemm_images_b(int transA, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                       const float *B, int64_t bl, float beta, float *C, int64_t ldc, int nthreads) {
    if (M < 0 || N < 0 || K < 0 || bl < 1 || N % bl != 0 || nthreads < 1) return FST_EINVAL;
    if (M == 0 || N == 0) return FST_OK;
    if (!C) return FST_ENULL;
    if (ldc < N) return FST_EINVAL;
    if (K > 0 && (!A || !B)) return FST_ENULL;
    if (K > 0 && lda < (transA ? M : K)) return FST_EINVAL;
    if (K == 0 || alpha == 0.0f) { scale_c(0, M, N, beta, C, ldc); return FST_OK; }
    job jb = { .tA = transA != 0, .A = A, .B = B, .lda = lda, .ldb = bl, .K = K, .alpha = alpha, .beta = beta, .C = C, .ldc = ldc,
               .M = M, .N = N, .bl = bl, .bimg = K * bl };
    return sgemm_run(jb, nthreads);
}

/* A as dY's images (planes of seg positions) of which Eq. 3 takes the IR shift at Eq. 7's kept positions (shift_row.h) */
typedef struct { int64_t seg; int shift, circular; float coeff; } a_shift;
static int sgemm_lowered_run(int transB, int64_t M, float alpha, const float *A, int64_t lda, const fst_lowering *lowp,
                             float beta, float *C, int64_t ldc, int64_t cl, int64_t al, const a_shift *sh, int nthreads);

int fst_sgemm_lowered(int transB, int64_t M, float alpha, const float *A, int64_t lda,
                      const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                      int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo,
                      float beta, float *C, int64_t ldc, int nthreads, int order) {
    const fst_lowering low = { x, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, order, NULL, 0, 0, 0, 0 };
    int rc = fst_lowering_check(&low);
    if (rc != FST_OK) return rc;
    return sgemm_lowered_run(transB, M, alpha, A, lda, &low, beta, C, ldc, 0, 0, NULL, nthreads);
}

int fst_sgemm_lowered_images(int64_t M, float alpha, const float *A,
                             const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                             int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo,
                             float beta, float *C, int64_t ldc, int nthreads, int order) {
    const fst_lowering low = { x, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, order, NULL, 0, 0, 0, 0 };
    int rc = fst_lowering_check(&low);
    if (rc != FST_OK) return rc;
    return sgemm_lowered_run(1, M, alpha, A, ho * wo, &low, beta, C, ldc, 0, ho * wo, NULL, nthreads);
}

int fst_sgemm_lowered_images_shift(int64_t M, float alpha, const float *dy, int64_t seg, int shift, float coeff, int circular,
                                   const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                                   int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo,
                                   float beta, float *C, int64_t ldc, int nthreads, int order) {
    const fst_lowering low = { x, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, order, NULL, 0, 0, 0, 0 };
    int rc = fst_lowering_check(&low);
    if (rc != FST_OK) return rc;
    /* each image's kept positions (ceil(seg / 2)) are the lowering's columns of that image */
    if (seg < 1 || (shift != 1 && shift != -1) || (seg + 1) / 2 != ho * wo || !(coeff == coeff)) return FST_EINVAL;
    if (M > 0 && !dy) return FST_ENULL;
    const a_shift s = { seg, shift, circular != 0, coeff };
    return sgemm_lowered_run(1, M, alpha, dy, seg, &low, beta, C, ldc, 0, ho * wo, &s, nthreads);
}

int fst_sgemm_lowered_nchw(int64_t M, float alpha, const float *A, int64_t lda,
                           const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                           int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo,
                           float beta, float *Y, int nthreads, int order) {
    const fst_lowering low = { x, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, order, NULL, 0, 0, 0, 0 };
    int rc = fst_lowering_check(&low);
    if (rc != FST_OK) return rc;
    return sgemm_lowered_run(0, M, alpha, A, lda, &low, beta, Y, ho * wo, ho * wo, 0, NULL, nthreads);
}

int fst_sgemm_lowered_at(int64_t M, float alpha, const float *A, int64_t lda,
                         const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                         int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo,
                         const int32_t *cols, int64_t ncols, int64_t row0, int64_t rstep, int64_t nrows,
                         float beta, float *C, int64_t ldc, int nthreads) {
    const fst_lowering low = { x, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, 0, cols, ncols, row0, rstep, nrows };
    int rc = fst_lowering_check(&low);
    if (rc != FST_OK) return rc;
    if (ncols > 0 && !cols) return FST_ENULL;
    if (ncols < 0 || rstep < 1 || row0 < 0 || nrows < 0 || fst_rows_outside(row0, rstep, nrows, c * kh * kw))
        return FST_EINVAL;
    for (int64_t q = 0; q < ncols; q++) if (cols[q] < 0 || cols[q] >= n * ho * wo) return FST_EINVAL;
    if (ncols == 0 && M > 0 && nrows > 0) {   /* an empty sum: C = beta * C */
        if (!C) return FST_ENULL;
        if (ldc < nrows) return FST_EINVAL;
        scale_c(0, M, nrows, beta, C, ldc);
        return FST_OK;
    }
    return sgemm_lowered_run(1, M, alpha, A, lda, &low, beta, C, ldc, 0, 0, NULL, nthreads);
}

/* cl > 0 (transB == 0 only): C is the NCHW batch [n, M, cl] (cl = ho * wo, ldc = cl) rather than [M, n * cl].
 * al > 0 (transB only): A is the NCHW batch [n, M, al] (al = ho * wo, lda = al) rather than [M, n * al]. */
static int sgemm_lowered_run(int transB, int64_t M, float alpha, const float *A, int64_t lda, const fst_lowering *lowp,
                             float beta, float *C, int64_t ldc, int64_t cl, int64_t al, const a_shift *sh, int nthreads) {
    const fst_lowering low = *lowp;
    if (M < 0 || nthreads < 1) return FST_EINVAL;
    const int64_t rows = fst_lowering_rows(&low), cols = fst_lowering_cols(&low);
    const int64_t K = transB ? cols : rows, N = transB ? rows : cols;
    if (M == 0) return FST_OK;
    if (!A || !C) return FST_ENULL;
    if ((cl ? (transB || ldc != cl) : ldc < N) || (al ? (!transB || lda != (sh ? sh->seg : al)) : lda < K)) return FST_EINVAL;
    if (N == 0) return FST_OK;
    if (alpha == 0.0f || K == 0) {   /* an empty sum (no columns selected): C = beta * C; the K blocks below divide by K's */
        if (!cl) scale_c(0, M, N, beta, C, ldc);
        else for (int64_t i = 0; i < low.n; i++) scale_c(0, M, cl, beta, C + i * M * cl, cl);
        return FST_OK;
    }
    /* Eq. 3 with few output rows: dot products over the positions without packing (wgrad_avx512.c) */
    if (transB && M <= wgrad_max() && fst_lowering_plan(-1)) {
        int r = fst_wgrad_direct_avx512(M, alpha, A, lda, al, M * (sh ? sh->seg : al), sh ? sh->seg : 0, sh ? sh->shift : 0,
                                        sh ? sh->coeff : 0.0f, sh ? sh->circular : 0, &low, beta, C, ldc,
                                        __atomic_load_n(&wgrad_chunk, __ATOMIC_RELAXED), nthreads);
        if (r != 0) return r > 0 ? FST_OK : FST_ENOMEM;   /* r < 0: a thread could not allocate its buffers */
    }
    float *shifted = NULL;
    if (sh) {
        /* The packing GEMM takes the shifted kept columns gathered first: packing them from the images there (each thread
         * packing all of A again when the threads split C's columns) measured 0.93-1.02x of the gather at 64-128 rows. */
        const int64_t n = low.n, h = al;
        shifted = fst_malloc((size_t)(M * n * h) * 4);
        if (!shifted) return FST_ENOMEM;
        int rc = fst_shift_gather_images(A, shifted, M, n, sh->seg, sh->seg, M * sh->seg, sh->shift, sh->coeff, sh->circular, nthreads);
        if (rc != FST_OK) { free(shifted); return rc; }
        A = shifted; lda = n * h; al = 0;
    }
    job jb = { .tB = transB != 0, .A = A, .lda = lda, .K = K, .alpha = alpha, .beta = beta, .C = C, .ldc = ldc, .M = M, .N = N,
               .low = &low, .cl = cl, .cimg = M * cl, .al = al, .aimg = M * al };
    const int rc = sgemm_run(jb, nthreads);
    free(shifted);
    return rc;
}

static int sgemm_run(job jb, int nthreads) {
    const int64_t M = jb.M, N = jb.N, K = jb.K;
    const fst_kernel *k = fst_gemm_kernel();
    double flops = 2.0 * (double)M * (double)N * (double)K;
    int nt = flops < 2e6 ? 1 : nthreads;
    if (nt == 1) return gemm_range(&jb, 0, M, 0, N);

    /* Split C by rows (units of MR) or by columns (units of NR), whichever gives the lower estimated time: the
     * largest share of multiply-adds plus the operand every chunk packs again. */
    const int64_t mr = k->mr, nr = k->nr;
    int64_t um = (M + mr - 1) / mr, unn = (N + nr - 1) / nr;
    int ntm = um < nt ? (int)um : nt, ntn = unn < nt ? (int)unn : nt;
    const double bpack = jb.low ? 12.0 : 4.0;   /* lowering B while packing costs more than copying it */
    double costM = (double)((um + ntm - 1) / ntm) * mr * N * K + bpack * K * N;
    double costN = (double)((unn + ntn - 1) / ntn) * nr * M * K + 4.0 * K * M;
    int split_m = costM <= costN;
    nt = split_m ? ntm : ntn;
    int64_t units = split_m ? um : unn;
    /* One chunk per thread, or two when a chunk stays big enough that packing the other operand again is cheap. */
    int64_t chunks = nt;
    if ((split_m ? M : N * 2) / (2 * nt) >= 256) chunks = 2 * (int64_t)nt;
    if (chunks > units) chunks = units;
    return run_pool(&jb, split_m, split_m ? mr : nr, split_m ? M : N, units, chunks, nt);
}
