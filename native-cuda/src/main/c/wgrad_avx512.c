/* Eq. 3 of a convolution without packing: dW [M, K] = alpha * dY [M, P] * im2col(x)^T + beta * dW for the geometries
 * the planned lowering takes (lowering.h). A GEMM would lower and transpose im2col into slivers and amortise that
 * over only M rows; here each tile of KT lowered rows is written once per chunk of positions into an L1 buffer by the
 * plan's masked loads, and MT x KT dot products over the chunk run in 24 zmm accumulators (MT dY vectors and KT buffer
 * vectors per step, no transposes), reduced across lanes at the end of the chunk and added into dW.
 *
 * Why chunks: over all P positions at once (the first version) a tile's KT lowered rows (KT * P floats: 96 KB at
 * P = 4096) left L1, and dY's M rows (1 MB at 64 x 4096) were read again from L3 for every tile. Chunks of 1024
 * positions keep the tile's rows in L1 and the chunk of dY (M rows) in L2, at the cost of one lane reduction per dW
 * entry and chunk: on a Zen 5 core 1.15-1.3x faster than one chunk at 64-128 rows, and than the packed GEMM up to 128
 * rows (jmh/NOTES-step-cpu.md v17).
 *
 * Each thread owns one range of K (columns of dW) and walks the chunks in order, so the result does not depend on
 * the thread count; with one chunk it is the first version's bits. Compiled with -mavx512f; gemm.c calls it only
 * where the plan is available (an AVX-512 CPU). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <immintrin.h>
#include "lowering.h"
#include "alloc.h"
#include "parallel.h"
#include "shift_row.h"

#define MT 4   /* dY rows per tile */
#define KT 6   /* lowered rows per tile */
#define CHUNK 64   /* vectors of 16 positions per chunk: the KT-row buffer is 24 KB (L1), dY's chunk 4 KB a row (L2) */

/* chunk > 0: vectors of 16 positions per chunk (fst_wgrad_chunk; tests draw small ones), else CHUNK */
typedef struct {
    fst_lplan *plans;
    const fst_lowering *low;
    char *mem;
    const size_t *offs;
    int64_t chunk, P;
    int failed;
} plan_job;

static void plan_task(void *p, int64_t c0, int64_t c1) {
    plan_job *j = p;
    for (int64_t c = c0; c < c1; c++) {
        const int64_t col0 = c * j->chunk * 16, ncols = j->P - col0 < j->chunk * 16 ? j->P - col0 : j->chunk * 16;
        if (!fst_lplan_build(&j->plans[c], j->low, col0, ncols, (int)((ncols + 15) / 16), j->mem + j->offs[c]))
            __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
    }
}

int fst_wgrad_direct_avx512(int64_t M, float alpha, const float *A, int64_t lda, int64_t al, int64_t aimg, int64_t aseg,
                            int ashift, float acoeff, int acirc, const fst_lowering *low, float beta, float *C, int64_t ldc,
                            int chunk, int nthreads);

typedef struct {
    const fst_lplan *plans;   /* one per chunk */
    int nchunks, chunk;       /* chunk: vectors per chunk (the last may have fewer) */
    int64_t M, K, P, lda, ldc;
    int64_t al, aimg;         /* al > 0: A is images of al positions, image i at A + i * aimg (lda = al) */
    int64_t aseg;             /* > 0: ... of dY's planes of aseg positions with the IR shift read at the kept ones (shift_row.h) */
    int ashift, acirc;
    float acoeff;
    const float *A;
    float *C;
    float alpha, beta;
    int rc;
} wgrad_job;

/* fst_shift_row (shift_row.h) with its body 16 outputs at a time: the even and odd neighbours of a 32-float window
 * separated by two permutes, then the same multiply and add per element (no FMA), so the same bits. */
static void shift_row16(const float *restrict s, int64_t seg, int64_t q0, int64_t w, int shift, float coeff, int circular,
                        float *restrict out) {
    if (coeff == 0.0f || w < 16) { fst_shift_row(s, seg, q0, w, shift, coeff, circular, out); return; }
    int64_t t = 0;
    if (shift == -1 && q0 == 0) { fst_shift_row(s, seg, 0, 1, shift, coeff, circular, out); t = 1; }
    /* q < pairs (shift 1) has its right neighbour; q >= 1 (shift -1) its left one: the vector body takes those */
    const int64_t qend = shift == 1 ? (q0 + w < seg / 2 ? q0 + w : seg / 2) : q0 + w;
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    const __m512 c = _mm512_set1_ps(coeff);
    for (; q0 + t + 16 <= qend && (shift == 1 || 2 * (q0 + t) + 31 < seg); t += 16) {
        const float *p = s + 2 * (q0 + t) - (shift == -1);   /* the window starts at the left neighbour for shift -1 */
        const __m512 a = _mm512_loadu_ps(p), b = _mm512_loadu_ps(p + 16);
        const __m512 self = _mm512_permutex2var_ps(a, shift == 1 ? ev : od, b), nb = _mm512_permutex2var_ps(a, shift == 1 ? od : ev, b);
        _mm512_storeu_ps(out + t, _mm512_add_ps(self, _mm512_mul_ps(c, nb)));
    }
    if (t < w) fst_shift_row(s, seg, q0 + t, w - t, shift, coeff, circular, out + t);
}

/* Lane j of the result: the sum of v[j]'s 16 lanes, for 16 vectors at once (a transposing add tree: 15 adds and 30
 * shuffles where 16 separate lane reductions take ~8 instructions each). */
static inline __attribute__((always_inline)) __m512 hsum16(const __m512 *v) {
    __m512 a[8], b[4], c[2];
    for (int k = 0; k < 8; k++)   /* per 128-bit lane: [x0+x2, y0+y2, x1+x3, y1+y3] of v[2k] = x, v[2k+1] = y */
        a[k] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * k], v[2 * k + 1]), _mm512_unpackhi_ps(v[2 * k], v[2 * k + 1]));
    for (int k = 0; k < 4; k++)   /* per 128-bit lane: the lane's sum of v[4k .. 4k + 3] */
        b[k] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a[2 * k]), _mm512_castps_pd(a[2 * k + 1]))),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a[2 * k]), _mm512_castps_pd(a[2 * k + 1]))));
    for (int k = 0; k < 2; k++)   /* 128-bit lanes 0 + 1 and 2 + 3 */
        c[k] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * k], b[2 * k + 1], 0x88), _mm512_shuffle_f32x4(b[2 * k], b[2 * k + 1], 0xDD));
    return _mm512_add_ps(_mm512_shuffle_f32x4(c[0], c[1], 0x88), _mm512_shuffle_f32x4(c[0], c[1], 0xDD));
}

/* out[q] = the lane sum of acc[q] for the MT * KT (24) accumulators: 16 in one tree, 8 (and 8 zeros) in another. */
static inline __attribute__((always_inline)) void hsum(const __m512 *acc, float *out) {
    float t[32] __attribute__((aligned(64)));
    __m512 rest[16];
    for (int q = 0; q < 16; q++) rest[q] = q < MT * KT - 16 ? acc[16 + q] : _mm512_setzero_ps();
    _mm512_store_ps(t, hsum16(acc));
    _mm512_store_ps(t + 16, hsum16(rest));
    for (int q = 0; q < MT * KT; q++) out[q] = t[q];
}

static void wgrad_task(void *p, int64_t t0, int64_t t1) {
    wgrad_job *j = p;
    const int full = (int)(j->P / 16);
    const __mmask16 tail = (__mmask16)((1u << (j->P % 16)) - 1);
    const int64_t ldb = (int64_t)j->chunk * 16;
    float *xb = fst_aligned_alloc(64, (size_t)(KT * ldb) * 4);
    /* A given as images: each chunk's positions of all M rows copied into one buffer (L2) that its tiles then read */
    float *ab = j->al && t1 > t0 ? fst_aligned_alloc(64, (size_t)(j->M * ldb) * 4) : NULL;
    if (!xb || (j->al && t1 > t0 && !ab)) { free(xb); free(ab); __atomic_store_n(&j->rc, 1, __ATOMIC_RELAXED); return; }
    for (int ch = 0; ch < j->nchunks; ch++) {
        const fst_lplan *plan = &j->plans[ch];
        const int v0 = ch * j->chunk, nv = plan->nvec;
        const float *A = j->A;
        int64_t lda = j->lda, a0 = 16 * (int64_t)v0;   /* the chunk's first position in A */
        if (ab) {
            const int64_t p0 = 16 * (int64_t)v0, np = j->P - p0 < ldb ? j->P - p0 : ldb;
            for (int64_t p = p0; p < p0 + np;) {
                const int64_t q = p % j->al, w = j->al - q < p0 + np - p ? j->al - q : p0 + np - p;
                const float *src = j->A + (p / j->al) * j->aimg;
                if (j->aseg)
                    for (int64_t m = 0; m < j->M; m++)
                        shift_row16(src + m * j->lda, j->aseg, q, w, j->ashift, j->acoeff, j->acirc, ab + m * ldb + (p - p0));
                else
                    for (int64_t m = 0; m < j->M; m++) memcpy(ab + m * ldb + (p - p0), src + q + m * j->lda, (size_t)w * 4);
                p += w;
            }
            A = ab; lda = ldb; a0 = 0;
        }
        for (int64_t t = t0; t < t1; t++) {
            const int64_t k0 = t * KT, kt = j->K - k0 < KT ? j->K - k0 : KT;
            fst_lplan_rows(plan, k0, kt, xb, ldb, 0, 0);   /* the tile's rows in one call (zeros past P) */
            for (int r = (int)kt; r < KT; r++) memset(xb + r * ldb, 0, (size_t)ldb * 4);
            for (int64_t m0 = 0; m0 < j->M; m0 += MT) {
                const int64_t mt = j->M - m0 < MT ? j->M - m0 : MT;
                const float *a[MT];
                for (int i = 0; i < MT; i++) a[i] = A + (m0 + (i < mt ? i : mt - 1)) * lda + a0;   /* padded rows: repeat, not stored */
                __m512 acc[MT][KT];
                for (int i = 0; i < MT; i++)
                    for (int r = 0; r < KT; r++) acc[i][r] = _mm512_setzero_ps();
                for (int v = 0; v < nv; v++) {
                    __m512 y[MT], b[KT];
                    for (int i = 0; i < MT; i++) y[i] = v0 + v < full ? _mm512_loadu_ps(a[i] + 16 * v) : _mm512_maskz_loadu_ps(tail, a[i] + 16 * v);
                    for (int r = 0; r < KT; r++) b[r] = _mm512_load_ps(xb + r * ldb + 16 * v);
                    for (int i = 0; i < MT; i++)
                        for (int r = 0; r < KT; r++) acc[i][r] = _mm512_fmadd_ps(y[i], b[r], acc[i][r]);
                }
                /* all MT x KT sums first, with constant bounds: reducing acc under the variable mt / kt made gcc keep
                 * the accumulators in memory, 24 stores per step of the loop above (a third of the FMA rate) */
                float sum[MT][KT];
                hsum(&acc[0][0], &sum[0][0]);
                for (int i = 0; i < mt; i++) {
                    float *c = j->C + (m0 + i) * j->ldc + k0;
                    for (int r = 0; r < kt; r++) {
                        const float s = j->alpha * sum[i][r];
                        c[r] = ch > 0 ? c[r] + s : j->beta == 0.0f ? s : s + j->beta * c[r];
                    }
                }
            }
        }
    }
    free(xb);
    free(ab);
}

int fst_wgrad_direct_avx512(int64_t M, float alpha, const float *A, int64_t lda, int64_t al, int64_t aimg, int64_t aseg,
                            int ashift, float acoeff, int acirc, const fst_lowering *low, float beta, float *C, int64_t ldc,
                            int chunk_vectors, int nthreads) {
    const int64_t P = fst_lowering_cols(low), K = fst_lowering_rows(low);
    if (P <= 0 || P > INT32_MAX / 2) return 0;
    const int64_t nvec = (P + 15) / 16;
    int64_t chunk = chunk_vectors;
    if (chunk <= 0) chunk = CHUNK;
    if (chunk > nvec) chunk = nvec;
    const int nchunks = (int)((nvec + chunk - 1) / chunk);
    size_t bytes = (size_t)nchunks * sizeof(fst_lplan);
    size_t *offs = fst_malloc((size_t)nchunks * sizeof(size_t));
    if (!offs) return 0;
    for (int c = 0; c < nchunks; c++) {
        const int nv = (int)(c + 1 < nchunks ? chunk : nvec - (int64_t)c * chunk);
        bytes = (bytes + 63) & ~(size_t)63;
        offs[c] = bytes;
        bytes += fst_lplan_bytes(low, nv);
    }
    char *mem = fst_aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!mem) { free(offs); return 0; }
    fst_lplan *plans = (fst_lplan *)mem;
    const int64_t tiles = (K + KT - 1) / KT;
    int nt = (double)M * (double)K * (double)P < 1e6 ? 1 : nthreads;
    if (nt > tiles) nt = (int)tiles;
    /* the chunks' plans, built on the threads that then share them (each thread reads every chunk) */
    plan_job pj = { plans, low, mem, offs, chunk, P, 0 };
    fst_parallel(nchunks, nt > 1 ? nchunks : 1, nt, plan_task, &pj);
    free(offs);
    if (pj.failed) { free(mem); return 0; }
    wgrad_job j = { plans, nchunks, (int)chunk, M, K, P, lda, ldc, al, aimg, aseg, ashift, acirc, acoeff, A, C, alpha, beta, 0 };
    /* one range of K per thread: the chunk of dY is read from memory once per thread and stays in its L2 */
    fst_parallel(tiles, nt, nt, wgrad_task, &j);
    free(mem);
    return j.rc == 0 ? 1 : -1;
}
