/* Sparsification overhead kernels of one FST training step (fst-method.md, FST steps 1-4), fused so that
 * nothing is materialised twice:
 *   fst_prune24_compress    S(W): magnitude 2:4 along K of W [rows, K] straight into the compressed layout
 *                           (sparse/FORMAT.md), optionally also the masked dense copy;
 *   fst_prune24_compress_t  S(W^T): W^T [K, Cout] pruned 2:4 along Cout, compressed, read from W [Cout, K]
 *                           without materialising the transpose;
 *   fst_shift_gather        Information Restoration shift + Eq. 7 half-K gather of dY in one pass;
 *   fst_pattern24           a fixed 2:4 pattern (Eq. 7's, or one of the authors' four) applied along an axis.
 * Semantics match the Java references exactly (Sparsifier.Magnitude24 + Compressed24.compress,
 * HalfK.gatherKept(Restoration.shiftAdd(...))): ties go to the lower index, NaN counts as the largest
 * magnitude (all NaNs equal), pruned entries become +0.0f, and a group with fewer than 2 non-zeros is
 * filled with the lowest unused indices. The hot loops are compiled for AVX-512, AVX2 and baseline x86-64
 * (target_clones, resolved once at load time). */
#include "fst4j.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <stddef.h>
#include "parallel.h"
#include "shift_row.h"
#include "rank24.h"
#include "float_below.h"
#include "overlap.h"
#include "alloc.h"

#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

/* Float bits seen as integers (the selection works on bit patterns, so it is exact and branch-free). */
typedef uint32_t ubits __attribute__((may_alias));

/* One group of 4, on float bit patterns (padded entries are +0.0f and lose every tie, so padding needs no
 * special case). Magnitude keys are |x| bit patterns with every NaN mapped to one value above +Inf; an entry
 * is kept when fewer than 2 others beat it (larger key, or equal key and lower index), i.e. the 2 largest
 * magnitudes with ties to the lower index. Gives the masked entries m0..m3 (pruned = +0.0f), the two stored
 * values v0, v1 and the nibble i0 | i1 << 2 under Compressed24's fill rule (a group with fewer than two
 * non-zeros takes the lowest unused indices). */
#define GROUP24(b0, b1, b2, b3, m0, m1, m2, m3, v0, v1, nib) do {                                   \
    uint32_t k0_ = (b0) & 0x7fffffffu, k1_ = (b1) & 0x7fffffffu;                                   \
    uint32_t k2_ = (b2) & 0x7fffffffu, k3_ = (b3) & 0x7fffffffu;                                   \
    k0_ = k0_ < 0x7f800001u ? k0_ : 0x7f800001u; k1_ = k1_ < 0x7f800001u ? k1_ : 0x7f800001u;      \
    k2_ = k2_ < 0x7f800001u ? k2_ : 0x7f800001u; k3_ = k3_ < 0x7f800001u ? k3_ : 0x7f800001u;      \
    const int32_t c01 = (int32_t)k1_ > (int32_t)k0_, c02 = (int32_t)k2_ > (int32_t)k0_;            \
    const int32_t c03 = (int32_t)k3_ > (int32_t)k0_, c12 = (int32_t)k2_ > (int32_t)k1_;            \
    const int32_t c13 = (int32_t)k3_ > (int32_t)k1_, c23 = (int32_t)k3_ > (int32_t)k2_;            \
    const int32_t r0_ = c01 + c02 + c03, r1_ = 1 - c01 + c12 + c13;                                 \
    const int32_t r2_ = 2 - c02 - c12 + c23, r3_ = 3 - c03 - c13 - c23;                             \
    m0 = (b0) & -(uint32_t)(r0_ < 2); m1 = (b1) & -(uint32_t)(r1_ < 2);                             \
    m2 = (b2) & -(uint32_t)(r2_ < 2); m3 = (b3) & -(uint32_t)(r3_ < 2);                             \
    const int32_t n0_ = (m0 & 0x7fffffffu) != 0, n1_ = (m1 & 0x7fffffffu) != 0;                     \
    const int32_t n2_ = (m2 & 0x7fffffffu) != 0, n3_ = (m3 & 0x7fffffffu) != 0;                     \
    const int32_t cnt_ = n0_ + n1_ + n2_ + n3_;                                                     \
    const int32_t q0_ = n0_ | (cnt_ < 2);                                                           \
    const int32_t q1_ = n1_ | (cnt_ + q0_ - n0_ < 2);                                               \
    const uint32_t Q0_ = -(uint32_t)q0_, Q1_ = -(uint32_t)q1_;                                      \
    const uint32_t N2_ = -(uint32_t)n2_, N3_ = -(uint32_t)n3_;                                      \
    v0 = (m0 & Q0_) | (~Q0_ & ((m1 & Q1_) | (~Q1_ & m2)));                                          \
    v1 = (m3 & N3_) | (~N3_ & ((m2 & N2_) | (~N2_ & m1)));                                          \
    nib = (uint32_t)((1 - q0_) * (2 - q1_) | (1 + n2_ + n3_ * (2 - n2_)) << 2);                     \
} while (0)

/* Up to CH full groups at a time of one row of S(W): the groups are de-interleaved into four lane arrays so
 * that the selection runs vertically (vectorised across groups), then the results are interleaved back. */
#define CH 64
static void CLONES prune_groups(const ubits *restrict w, int64_t ng, ubits *restrict val, uint8_t *restrict nib,
                                ubits *restrict dense) {
    uint32_t a0[CH], a1[CH], a2[CH], a3[CH], m0[CH], m1[CH], m2[CH], m3[CH], v0[CH], v1[CH], nb[CH];
    for (int64_t c = 0; c < ng; c += CH) {
        const int n = (int)(ng - c < CH ? ng - c : CH);
        const ubits *restrict x = w + 4 * c;
        for (int g = 0; g < n; g++) { a0[g] = x[4 * g]; a1[g] = x[4 * g + 1]; a2[g] = x[4 * g + 2]; a3[g] = x[4 * g + 3]; }
        for (int g = 0; g < n; g++) {
            const uint32_t x0 = a0[g], x1 = a1[g], x2 = a2[g], x3 = a3[g];
            uint32_t t0, t1, t2, t3, u0, u1, b;
            GROUP24(x0, x1, x2, x3, t0, t1, t2, t3, u0, u1, b);
            m0[g] = t0; m1[g] = t1; m2[g] = t2; m3[g] = t3; v0[g] = u0; v1[g] = u1; nb[g] = b;
        }
        ubits *restrict vo = val + 2 * c;
        for (int g = 0; g < n; g++) { vo[2 * g] = v0[g]; vo[2 * g + 1] = v1[g]; }
        for (int g = 0; g < n; g++) nib[c + g] = (uint8_t)nb[g];
        if (dense) {
            ubits *restrict d = dense + 4 * c;
            for (int g = 0; g < n; g++) { d[4 * g] = m0[g]; d[4 * g + 1] = m1[g]; d[4 * g + 2] = m2[g]; d[4 * g + 3] = m3[g]; }
        }
    }
}

static void prune_row(const ubits *w, int64_t K, ubits *val, uint32_t *meta, ubits *dense, uint8_t *nib) {
    const int64_t full = K / 4, G = (K + 3) / 4, words = (G + 7) / 8;
    prune_groups(w, full, val, nib, dense);
    if (full < G) {   /* the zero-padded last group */
        uint32_t a[4] = {0, 0, 0, 0}, m[4], v0, v1, nb;
        const int rem = (int)(K - 4 * full);
        for (int j = 0; j < rem; j++) a[j] = w[4 * full + j];
        GROUP24(a[0], a[1], a[2], a[3], m[0], m[1], m[2], m[3], v0, v1, nb);
        val[2 * full] = v0; val[2 * full + 1] = v1; nib[full] = (uint8_t)nb;
        if (dense) for (int j = 0; j < rem; j++) dense[4 * full + j] = m[j];
    }
    for (int64_t i = 0; i < words; i++) {
        uint32_t word = 0;
        const int64_t g0 = 8 * i, n = G - g0 < 8 ? G - g0 : 8;
        for (int64_t t = 0; t < n; t++) word |= (uint32_t)nib[g0 + t] << (4 * t);
        meta[i] = word;
    }
}

typedef struct {
    const float *w; int64_t ldw, K; float *values; int64_t ldv; uint32_t *meta; int64_t ldm;
    float *dense; int64_t ldd, G; int rc;
} prune_job;

static void prune_task(void *p, int64_t r0, int64_t r1) {
    prune_job *j = p;
    uint8_t *nib = fst_malloc((size_t)j->G + 64);
    if (!nib) { __atomic_store_n(&j->rc, FST_ENOMEM, __ATOMIC_RELAXED); return; }
    for (int64_t r = r0; r < r1; r++)
        prune_row((const ubits *)j->w + r * j->ldw, j->K, (ubits *)j->values + r * j->ldv, j->meta + r * j->ldm,
                  j->dense ? (ubits *)j->dense + r * j->ldd : NULL, nib);
    free(nib);
}

int fst_prune24_compress(int64_t rows, int64_t K, const float *w, int64_t ldw, float *values, uint32_t *meta,
                         float *dense, int64_t ldd, int nthreads) {
    if (rows < 0 || K < 0 || nthreads < 1) return FST_EINVAL;
    if (rows == 0 || K == 0) return FST_OK;
    if (!w || !values || !meta) return FST_ENULL;
    if (ldw < K || (dense && ldd < K)) return FST_EINVAL;
    const int64_t G = (K + 3) / 4, ldv = 2 * G, ldm = (G + 7) / 8;
    int nt = rows * K < 32768 ? 1 : nthreads;
    if (nt > rows) nt = (int)rows;
    int rc = FST_OK;
    prune_job j = { w, ldw, K, values, ldv, meta, ldm, dense, ldd, G, FST_OK };
    fst_parallel(rows, nt > 1 ? 4 * (int64_t)nt : 1, nt, prune_task, &j);
    rc = j.rc;
    return rc;
}

static void prune_t_run(int64_t cout, int64_t K, const float *w, int64_t ldw, float *values, int64_t ldv, uint32_t *meta,
                        int64_t ldm, int64_t kk, int nthreads);

/* ---- Eq. 2 of a stride-1 convolution as a convolution of dY: the weight W [Cout, Cin*kk] laid out as the transposed
 * convolution's A' [Cin, kk*Cout], A'[ci][t*Cout + co] = W[co][ci*kk + kk-1-t] (taps reversed, tap-major), and S(W^T)
 * in that layout: each (ci, t) run of Cout values is a row of W^T pruned 2:4 along Cout, so with Cout % 4 == 0 the
 * groups of A' along its K' = kk*Cout are exactly S(W^T)'s groups (same entries, same order, same ties). ---- */
/* A' in tiles of 16 output channels x TC input channels: each of the 16 rows of W is read as one run of TC*kk floats
 * (a channel at a time it was 16 runs of kk floats on 16 pages, latency-bound when W is not in cache) and each tap of
 * each input channel is stored as one contiguous 64-byte run of A'. */
#define TC 64
typedef struct { const float *w; int64_t ldw, cout, cin, kk; float *out; int64_t ldo; } tconv_job;

#if defined(__x86_64__)
#include <immintrin.h>
/* 16 output channels x 16 consecutive columns k of W (k = ci * kk + tap) through a 16 x 16 transpose in registers:
 * vector j holds column k0 + j of the 16 rows, which is A'[ci][(kk - 1 - tap) * Cout + c0 ..] (64 contiguous bytes).
 * Written one float at a time (as tconv_cols below still writes the tails), this layout cost ~7 ms of ResNet-18's
 * DENSE step (Eq. 2 of the 256- and 512-channel layers as a convolution of dY; perf, session 38), mostly loads and
 * stores per element. Moves only: the same bits as tconv_cols. */
__attribute__((target("avx512f"))) static void tconv_16x16(const float *w, int64_t ldw, int64_t k0, int64_t kk, int64_t cout,
                                                           int64_t c0, float *out, int64_t ldo, int stream) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(w + (c0 + i) * ldw + k0);
    for (int i = 0; i < 16; i += 2) {   /* 32-bit interleave of row pairs */
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4)     /* 64-bit interleave of pairs of pairs */
        for (int h = 0; h < 2; h++) {
            /* t[i + h] holds columns 4l + 2h, 4l + 2h + 1 of rows i, i+1 (lane l); t[i + 2 + h] those of rows i+2, i+3 */
            r[i + 2 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + h]), _mm512_castps_pd(t[i + 2 + h])));
            r[i + 2 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + h]), _mm512_castps_pd(t[i + 2 + h])));
        }
    /* r[4q + m]: rows 4q..4q+3, column m + 4l of 128-bit lane l. Gather lanes across the four groups of rows. */
    for (int m = 0; m < 4; m++) {
        const __m512 a = r[m], b = r[4 + m], c = r[8 + m], d = r[12 + m];
        const __m512 ab_lo = _mm512_shuffle_f32x4(a, b, 0x44), ab_hi = _mm512_shuffle_f32x4(a, b, 0xEE);
        const __m512 cd_lo = _mm512_shuffle_f32x4(c, d, 0x44), cd_hi = _mm512_shuffle_f32x4(c, d, 0xEE);
        t[m] = _mm512_shuffle_f32x4(ab_lo, cd_lo, 0x88);        /* lane 0 of a, b, c, d: column m */
        t[4 + m] = _mm512_shuffle_f32x4(ab_lo, cd_lo, 0xDD);    /* lane 1: column m + 4 */
        t[8 + m] = _mm512_shuffle_f32x4(ab_hi, cd_hi, 0x88);    /* lane 2: column m + 8 */
        t[12 + m] = _mm512_shuffle_f32x4(ab_hi, cd_hi, 0xDD);   /* lane 3: column m + 12 */
    }
    int64_t ci = k0 / kk, tap = k0 % kk;   /* one division per tile, then stepped */
    for (int jv = 0; jv < 16; jv++) {
        float *d = out + ci * ldo + (kk - 1 - tap) * cout + c0;
        if (stream) _mm512_stream_ps(d, t[jv]);   /* whole aligned lines, past the caches (tconv_stream) */
        else _mm512_storeu_ps(d, t[jv]);
        if (++tap == kk) { tap = 0; ci++; }
    }
}
#endif

/* Columns k0..k1 of W (k = ci * kk + tap) for output channels c0..c0+nc, one float at a time: the tails of the 16 x 16
 * tiles, and everything on a CPU without AVX-512 (or with FST4J_ISA forcing a lesser family, as for the GEMM). */
static void tconv_cols(const tconv_job *j, int64_t c0, int64_t nc, int64_t k0, int64_t k1) {
    int64_t ci = k0 / j->kk, tap = k0 % j->kk;
    for (int64_t k = k0; k < k1; k++) {
        float *restrict d = j->out + ci * j->ldo + (j->kk - 1 - tap) * j->cout + c0;
        for (int64_t c = 0; c < nc; c++) d[c] = j->w[(c0 + c) * j->ldw + k];
        if (++tap == j->kk) { tap = 0; ci++; }
    }
}

/* Whether the tiles go to A' by non-temporal stores: where A' is much bigger than L2 (the 512-channel layers' 9.4 MB) and
 * every tile row is a whole aligned line. Each 64-byte run lands on another line 2-18 KB from the last, so plain stores
 * read every line before writing it: 512 x 4608 cold 1.08-1.44 -> 0.59-0.61 ms on 2 threads, 1.60 -> 1.06 on one, hot
 * 0.54 -> 0.47 (Intel, NOTES v30); but at 256 x 2304 (2.4 MB) hot 0.11 -> 0.21, so only from 8 MB. Moves only. */
static int tconv_stream(const tconv_job *j) {
    return (double)j->cin * (double)j->kk * (double)j->cout * 4 >= 8e6 && ((uintptr_t)j->out & 63) == 0 && (j->ldo & 15) == 0
        && (j->cout & 15) == 0;
}

static void tconv_task(void *p, int64_t b0, int64_t b1) {
    const tconv_job *j = p;
#if defined(__x86_64__)
    const int avx512 = strcmp(fst_isa(), "avx512") == 0;   /* the kernel family gemm.c chose for the process */
    const int stream = avx512 && tconv_stream(j);
#endif
    for (int64_t b = b0; b < b1; b++) {
        const int64_t ci0 = b * TC, ci1 = ci0 + TC < j->cin ? ci0 + TC : j->cin, k1 = ci1 * j->kk;
        for (int64_t c0 = 0; c0 < j->cout; c0 += 16) {
            const int64_t nc = j->cout - c0 < 16 ? j->cout - c0 : 16;
            int64_t k = ci0 * j->kk;
#if defined(__x86_64__)
            if (nc == 16 && avx512)   /* whole 16 x 16 tiles, then the rest */
                for (; k + 16 <= k1; k += 16) tconv_16x16(j->w, j->ldw, k, j->kk, j->cout, c0, j->out, j->ldo, stream);
#endif
            tconv_cols(j, c0, nc, k, k1);
        }
    }
#if defined(__x86_64__)
    if (stream) _mm_sfence();   /* this thread's non-temporal stores drained before the task counts as done */
#endif
}

int fst_tconv_weight(int64_t cout, int64_t cin, int64_t kk, const float *w, int64_t ldw, float *out, int64_t ldo, int nthreads) {
    if (cout < 0 || cin < 0 || kk <= 0 || nthreads < 1) return FST_EINVAL;
    if (cout == 0 || cin == 0) return FST_OK;
    if (!w || !out) return FST_ENULL;
    if (ldw < cin * kk || ldo < kk * cout) return FST_EINVAL;
    tconv_job j = { w, ldw, cout, cin, kk, out, ldo };
    const int64_t blocks = (cin + TC - 1) / TC;
    int nt = cin * kk * cout < 32768 ? 1 : nthreads;
    if (nt > blocks) nt = (int)blocks;
    fst_parallel(blocks, nt > 1 ? blocks : 1, nt, tconv_task, &j);
    return FST_OK;
}

/* S(W^T) by fst_prune24_compress_t (rows ci*kk + tap, compressed along Cout), then each A' row ci gathered from its kk
 * rows in reversed tap order: values by memcpy, metadata nibbles re-packed (a word copy when Cout % 32 == 0). */
typedef struct { const float *tv; const uint32_t *tm; int64_t cout, kk; float *values; uint32_t *meta; } tconv_pack_job;

static void tconv_pack_task(void *p, int64_t r0, int64_t r1) {
    const tconv_pack_job *j = p;
    const int64_t G = j->cout / 4, sw = (G + 7) / 8, ldv = 2 * G * j->kk, ldm = (G * j->kk + 7) / 8;
    for (int64_t ci = r0; ci < r1; ci++) {
        float *vo = j->values + ci * ldv;
        uint32_t *mo = j->meta + ci * ldm;
        if (G % 8) memset(mo, 0, (size_t)ldm * 4);
        for (int64_t t = 0; t < j->kk; t++) {
            const int64_t src = ci * j->kk + j->kk - 1 - t;
            memcpy(vo + t * 2 * G, j->tv + src * 2 * G, (size_t)(2 * G) * 4);
            const uint32_t *mi = j->tm + src * sw;
            if (G % 8 == 0) { memcpy(mo + t * sw, mi, (size_t)sw * 4); continue; }
            for (int64_t g = 0; g < G; g++) {
                const uint32_t nib = (mi[g / 8] >> (4 * (g % 8))) & 15u;
                const int64_t d = t * G + g;
                mo[d / 8] |= nib << (4 * (d % 8));
            }
        }
    }
}

int fst_prune24_compress_tconv(int64_t cout, int64_t cin, int64_t kk, const float *w, int64_t ldw, float *values,
                               uint32_t *meta, int nthreads) {
    if (cout < 0 || cin < 0 || kk <= 0 || nthreads < 1 || cout % 4 != 0) return FST_EINVAL;
    if (cout == 0 || cin == 0) return FST_OK;
    if (!w || !values || !meta) return FST_ENULL;
    if (ldw < cin * kk) return FST_EINVAL;
    const int64_t K = cin * kk, G = cout / 4, sw = (G + 7) / 8;
    if (G % 8 == 0) {   /* every tap's metadata starts on a word: S(W^T) straight into A' (no staging, no re-pack) */
        prune_t_run(cout, K, w, ldw, values, 2 * G * kk, meta, sw * kk, kk, nthreads);
        return FST_OK;
    }
    float *tv = fst_malloc((size_t)(K * 2 * G) * 4 + 64);
    uint32_t *tm = fst_malloc((size_t)(K * sw) * 4 + 64);
    if (!tv || !tm) { free(tv); free(tm); return FST_ENOMEM; }
    int rc = fst_prune24_compress_t(cout, K, w, ldw, tv, tm, nthreads);
    if (rc == FST_OK) {
        tconv_pack_job j = { tv, tm, cout, kk, values, meta };
        int nt = K * cout < 32768 ? 1 : nthreads;
        if (nt > cin) nt = (int)cin;
        fst_parallel(cin, nt > 1 ? 4 * (int64_t)nt : 1, nt, tconv_pack_task, &j);
    }
    free(tv);
    free(tm);
    return rc;
}

/* S(W^T) for output rows r0 .. r0+nr (columns of W), nr <= TB, eight groups of 4 rows of W (one metadata word) at a
 * time: first each group of every output row is computed across the block (vectorised across r, reading each of the 32
 * rows of W as one run of nr floats), then each output row's 16 values and its metadata word are written in one run.
 * Until session 25 it took one group at a time over 64 columns and scattered 8 bytes into each of 64 output rows per
 * group: at 512 x 4608 it read W in 256-byte pieces of rows 18 KB apart, 3x slower than S(W) along K (NOTES v17).
 * Output row r goes to values row vrow(r) and metadata row mrow(r): row r itself, or with kk > 0
 * (fst_prune24_compress_tconv with word-aligned taps) the tap segment of A' row r / kk for tap kk-1 - r % kk. */
#define TB 256
typedef struct { const float *w; int64_t ldw, cout, K; float *values; int64_t ldv; uint32_t *meta; int64_t ldm, kk; } prune_t_job;

static void CLONES prune_t_block(const prune_t_job *j, int64_t r0, int nr) {
    static const uint32_t zeros[TB];
    uint32_t v0[8][TB], v1[8][TB], nb[8][TB];
    ubits *vrow[TB];
    uint32_t *mrow[TB];
    const ubits *restrict w = (const ubits *)j->w;
    const int64_t ldw = j->ldw, cout = j->cout, G = (cout + 3) / 4;
    for (int r = 0; r < nr; r++) {
        int64_t vo = (r0 + r) * j->ldv, mo = (r0 + r) * j->ldm;
        if (j->kk > 0) {
            const int64_t ci = (r0 + r) / j->kk, seg = j->kk - 1 - (r0 + r) % j->kk;
            vo = ci * j->ldv + seg * 2 * G;
            mo = ci * j->ldm + seg * (G / 8);
        }
        vrow[r] = (ubits *)j->values + vo;
        mrow[r] = j->meta + mo;
    }
    for (int64_t g8 = 0; g8 < G; g8 += 8) {
        const int ng = G - g8 < 8 ? (int)(G - g8) : 8;
        for (int q = 0; q < ng; q++) {
            const int64_t g = g8 + q;
            const ubits *p[4];
            for (int i = 0; i < 4; i++) p[i] = 4 * g + i < cout ? w + (4 * g + i) * ldw + r0 : zeros;
            const ubits *restrict p0 = p[0], *restrict p1 = p[1], *restrict p2 = p[2], *restrict p3 = p[3];
            /* the runs of the group two ahead: rows 18 KB apart at 512 x 4608, a run per row too short for the hardware
             * prefetchers. Cold in memory (as in the step) 1.23-1.29 -> 1.08-1.10 ms on 2 threads, 1.95 -> 1.75 on one,
             * in cache 0.67 -> 0.61 (Intel, NOTES v30; on a Zen 4 in cache it gained nothing, v13). Moves no bits. */
            if (4 * (g + 2) + 3 < cout)
                for (int i = 0; i < 4; i++) {
                    const char *pf = (const char *)(w + (4 * (g + 2) + i) * ldw + r0);
                    for (int o = 0; o < nr * 4; o += 64) __builtin_prefetch(pf + o, 0, 3);
                }
            uint32_t *restrict o0 = v0[q], *restrict o1 = v1[q], *restrict on = nb[q];
            for (int r = 0; r < nr; r++) {
                const uint32_t x0 = p0[r], x1 = p1[r], x2 = p2[r], x3 = p3[r];
                uint32_t m0, m1, m2, m3, u0, u1, b;
                GROUP24(x0, x1, x2, x3, m0, m1, m2, m3, u0, u1, b);
                (void)m0; (void)m1; (void)m2; (void)m3;
                o0[r] = u0; o1[r] = u1; on[r] = b;
            }
        }
        for (int r = 0; r < nr; r++) {
            ubits *restrict vr = vrow[r] + 2 * g8;
            uint32_t word = 0;
            for (int q = 0; q < ng; q++) {
                vr[2 * q] = v0[q][r];
                vr[2 * q + 1] = v1[q][r];
                word |= nb[q][r] << (4 * q);
            }
            mrow[r][g8 >> 3] = word;
        }
    }
}

static void prune_t_task(void *p, int64_t b0, int64_t b1) {
    const prune_t_job *j = p;
    for (int64_t b = b0; b < b1; b++) {
        const int64_t r0 = b * TB;
        prune_t_block(j, r0, (int)(j->K - r0 < TB ? j->K - r0 : TB));
    }
}

/* Rows of W^T (ldv values, ldm metadata words apart; kk as in prune_t_block) pruned and compressed over the threads. */
static void prune_t_run(int64_t cout, int64_t K, const float *w, int64_t ldw, float *values, int64_t ldv, uint32_t *meta,
                        int64_t ldm, int64_t kk, int nthreads) {
    const int64_t blocks = (K + TB - 1) / TB;
    int nt = cout * K < 32768 ? 1 : nthreads;
    if (nt > blocks) nt = (int)blocks;
    prune_t_job j = { w, ldw, cout, K, values, ldv, meta, ldm, kk };
    fst_parallel(blocks, nt > 1 ? 4 * (int64_t)nt : 1, nt, prune_t_task, &j);
}

int fst_prune24_compress_t(int64_t cout, int64_t K, const float *w, int64_t ldw, float *values, uint32_t *meta,
                           int nthreads) {
    if (cout < 0 || K < 0 || nthreads < 1) return FST_EINVAL;
    if (cout == 0 || K == 0) return FST_OK;
    if (!w || !values || !meta) return FST_ENULL;
    if (ldw < K) return FST_EINVAL;
    const int64_t G = (cout + 3) / 4;
    prune_t_run(cout, K, w, ldw, values, 2 * G, meta, (G + 7) / 8, 0, nthreads);
    return FST_OK;
}

/* One segment: o[i] = s[2i] + coeff * s[2i + shift] (neighbour wrapped or dropped at the segment's ends): shift_row.h's
 * row over all of the segment's kept positions, in a clone per ISA. */
static void CLONES shift_gather_seg(const float *restrict s, float *restrict o, int64_t seg, int shift,
                                    float coeff, int circular) {
    fst_shift_row(s, seg, 0, (seg + 1) / 2, shift, coeff, circular, o);
}

/* Segment (r, i), the i-th segment of row r (a matrix) or channel r's plane of image i (NCHW), at dy + i * ld_image + r *
 * ld_row; out [rows, images * h], segment s = r * images + i at out + s * h. */
typedef struct { const float *dy; float *out; int64_t images, seg, h, ld_row, ld_image; int shift; float coeff; int circular; } shift_images_job;

static void shift_images_task(void *p, int64_t s0, int64_t s1) {
    const shift_images_job *j = p;
    for (int64_t s = s0; s < s1; s++) {
        const int64_t r = s / j->images, i = s % j->images;
        shift_gather_seg(j->dy + i * j->ld_image + r * j->ld_row, j->out + s * j->h, j->seg, j->shift, j->coeff, j->circular);
    }
}

int fst_shift_gather_images(const float *dy, float *out, int64_t rows, int64_t images, int64_t seg, int64_t ld_row,
                            int64_t ld_image, int shift, float coeff, int circular, int nthreads) {
    if (rows < 0 || images < 0 || seg <= 0 || ld_row < seg || ld_image < seg || (shift != 1 && shift != -1) || nthreads < 1)
        return FST_EINVAL;
    if (rows == 0 || images == 0) return FST_OK;
    if (!dy || !out) return FST_ENULL;
    const int64_t h = (seg + 1) / 2, total = rows * images;
    const float *end = dy + (images - 1) * ld_image + (rows - 1) * ld_row + seg;   /* one past the last element read */
    if (fst_overlap(out, 4 * total * h, dy, (const char *)end - (const char *)dy)) return FST_EINVAL;
    int nt = total * seg < 65536 ? 1 : nthreads;
    shift_images_job j = { dy, out, images, seg, h, ld_row, ld_image, shift, coeff, circular };
    fst_parallel(total, nt > 1 ? 4 * (int64_t)nt : 1, nt, shift_images_task, &j);
    return FST_OK;
}

/* A contiguous rows x len matrix is the images layout with len / seg segments a row, seg apart, rows len apart. */
int fst_shift_gather(const float *dy, float *out, int64_t rows, int64_t len, int64_t seg,
                     int shift, float coeff, int circular, int nthreads) {
    if (rows < 0 || len < 0 || seg <= 0 || len % seg != 0 || (shift != 1 && shift != -1) || nthreads < 1)
        return FST_EINVAL;
    if (rows == 0 || len == 0) return FST_OK;
    return fst_shift_gather_images(dy, out, rows, len / seg, seg, len, seg, shift, coeff, circular, nthreads);
}

/* SR-STE decay (fst4j.nn.SrSte): g += lambda * w at the weights magnitude 2:4 along each row prunes, with the
 * same keys and ties as the prune above (lower index wins, NaN largest; a last partial group counts as padded
 * with zeros, which never beat a real weight). */
typedef struct { const float *w; float *g; int64_t k; float lambda; } srste_job;

static void srste_task(void *p, int64_t r0, int64_t r1) {
    const srste_job *j = p;
    for (int64_t r = r0; r < r1; r++) {
        const ubits *wb = (const ubits *)j->w + r * j->k;
        const float *wf = j->w + r * j->k;
        float *gf = j->g + r * j->k;
        const int64_t full = j->k / 4 * 4;
        const float lambda = j->lambda;
        for (int64_t g0 = 0; g0 < full; g0 += 4) {
            /* a pruned entry gets lambda * w added, selected by bit mask (so a kept -0.0 gradient stays -0.0) */
            uint32_t m[4];
            fst_pruned24(wb + g0, m);
            for (int i = 0; i < 4; i++) {
                float old = gf[g0 + i], upd = old + lambda * wf[g0 + i];
                uint32_t uo, uu;
                memcpy(&uo, &old, 4); memcpy(&uu, &upd, 4);
                uo = (uu & m[i]) | (uo & ~m[i]);
                memcpy(&gf[g0 + i], &uo, 4);
            }
        }
        for (int64_t g0 = full; g0 < j->k; g0 += 4) {
            int n = j->k - g0 < 4 ? (int)(j->k - g0) : 4;
            uint32_t key[4] = {0, 0, 0, 0};
            for (int i = 0; i < n; i++) {
                uint32_t a = wb[g0 + i] & 0x7fffffffu;
                key[i] = a < 0x7f800001u ? a : 0x7f800001u;
            }
            for (int i = 0; i < n; i++) {
                int beaten = 0;
                for (int q = 0; q < 4; q++)
                    if (q != i && (key[q] > key[i] || (key[q] == key[i] && q < i))) beaten++;
                if (beaten >= 2) gf[g0 + i] += j->lambda * wf[g0 + i];
            }
        }
    }
}

int fst_srste_decay(const float *w, float *g, int64_t rows, int64_t k, float lambda, int nthreads) {
    if (rows < 0 || k < 0 || nthreads < 1) return FST_EINVAL;
    if (rows == 0 || k == 0) return FST_OK;
    if (!w || !g) return FST_ENULL;
    srste_job j = { w, g, k, lambda };
    fst_parallel(rows, rows * k < 65536 ? 1 : 4 * (int64_t)nthreads, nthreads, srste_task, &j);
    return FST_OK;
}

/* ---- fixed 2:4 patterns (Sparsifier.Fixed24, AuthorsFixed24) ----
 * Whether a pattern keeps position i along the axis in row r (the row-major index over the other axes) depends only on
 * i mod 8 and r mod 2, so one 2 x 8 table of all-ones / all-zeros words per call selects every element: a kept NaN
 * stays NaN, a pruned entry of any sign becomes +0.0f, as the Java rule gives. */
static int pattern_keeps(int p, int64_t i, int64_t r) {
    switch (p) {
    case -1: return (i & 1) == 0;                          /* Eq. 7: positions 0, 2, 4, ... */
    case 0: return (i & 1) == (((i >> 2) & 1) == 0);       /* AuthorsFixed24.keeps: alternating {1,3} / {0,2} */
    case 1: return (i & 1) == 1;                           /* odd positions */
    case 2: return ((i + r) & 1) == 0;                     /* checkerboard A */
    default: return ((i + r) & 1) == 1;                    /* checkerboard B */
    }
}

typedef struct { const ubits *x; ubits *out; int64_t len, inner; uint32_t tab[2][8]; } pattern_job;

/* Units are lines (o, i) of [outer, len, inner], inner floats each. */
static void pattern_task(void *p, int64_t u0, int64_t u1) {
    const pattern_job *j = p;
    int64_t o = u0 / j->len, i = u0 - o * j->len;
    if (j->inner == 1) {   /* the axis is the last one: runs along it, row parity fixed per row */
        for (int64_t u = u0; u < u1; o++, i = 0) {
            const int64_t run = u1 - u < j->len - i ? u1 - u : j->len - i;
            const uint32_t *m = j->tab[o & 1];
            const ubits *x = j->x + u;
            ubits *out = j->out + u;
            for (int64_t k = 0; k < run; k++) out[k] = x[k] & m[(i + k) & 7];
            u += run;
        }
        return;
    }
    for (int64_t u = u0; u < u1; u++) {
        const int64_t base = u * j->inner, r0 = o * j->inner;
        const uint32_t a = j->tab[r0 & 1][i & 7], b = j->tab[(r0 + 1) & 1][i & 7];
        for (int64_t q = 0; q < j->inner; q++) j->out[base + q] = j->x[base + q] & ((q & 1) ? b : a);
        if (++i == j->len) { i = 0; o++; }
    }
}

int fst_pattern24(const float *x, float *out, int64_t outer, int64_t len, int64_t inner, int pattern, int nthreads) {
    if (outer < 0 || len < 0 || inner < 0 || nthreads < 1 || pattern < -1 || pattern > 3) return FST_EINVAL;
    if (outer == 0 || len == 0 || inner == 0) return FST_OK;
    if (!x || !out) return FST_ENULL;
    if (outer > INT64_MAX / len || outer * len > INT64_MAX / inner / 4) return FST_EINVAL;
    /* as documented: out must not overlap x (an exact alias is the identity's in-place case, also refused) */
    if (fst_overlap(out, 4 * outer * len * inner, x, 4 * outer * len * inner)) return FST_EINVAL;
    pattern_job j = { (const ubits *)x, (ubits *)out, len, inner, { { 0 } } };
    for (int r = 0; r < 2; r++)
        for (int t = 0; t < 8; t++) j.tab[r][t] = pattern_keeps(pattern, t, r) ? 0xffffffffu : 0u;
    const int64_t units = outer * len, n = units * inner;
    const int nt = n < 65536 ? 1 : nthreads;
    fst_parallel(units, nt > 1 ? 4 * (int64_t)nt : 1, nt, pattern_task, &j);
    return FST_OK;
}

/* ---- fst_topk (fst4j.h): unstructured top-k along an axis, Sparsifier.TopK's rule ---- */
typedef struct { const ubits *x; ubits *out; int64_t len, inner, k; int failed; } topk_job;

/* Sort key of one element: |x| as an ordered bit pattern (every NaN the largest, all NaNs equal, -0.0 = +0.0) in the
 * high word, the complement of its index in the low word, so that the k largest keys are the k largest |x| with ties
 * to the lower index (Masks.topK: Double.compare of |x|, then the index). */
static inline uint64_t topk_key(ubits b, int64_t i) {
    uint32_t a = b & 0x7fffffffu;
    if (a > 0x7f800000u) a = 0x7fffffffu;   /* NaN */
    return ((uint64_t)a << 32) | (uint32_t)(0xffffffffu - (uint32_t)i);
}

/* Moves the k largest of v[0..n) to v[0..k) (any order): quickselect, median of three, no recursion. */
static void topk_select(uint64_t *v, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        uint64_t a = v[lo], b = v[mid], c = v[hi];
        const uint64_t p = a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b));
        int64_t i = lo, j = hi;
        while (i <= j) {   /* descending: larger keys to the left (keys are distinct: the index is in them) */
            while (v[i] > p) i++;
            while (v[j] < p) j--;
            if (i <= j) { const uint64_t t = v[i]; v[i] = v[j]; v[j] = t; i++; j--; }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else return;
    }
}

static void topk_task(void *p, int64_t l0, int64_t l1) {
    topk_job *j = p;
    uint64_t *v = fst_malloc((size_t)j->len * sizeof(uint64_t));
    if (!v) { __atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED); return; }   /* the caller reports it */
    for (int64_t l = l0; l < l1; l++) {
        const int64_t o = l / j->inner, q = l - o * j->inner, base = o * j->len * j->inner + q;
        for (int64_t i = 0; i < j->len; i++) {
            v[i] = topk_key(j->x[base + i * j->inner], i);
            j->out[base + i * j->inner] = 0;
        }
        if (j->k < j->len) topk_select(v, j->len, j->k);
        for (int64_t t = 0; t < j->k; t++) {
            const int64_t i = (int64_t)(0xffffffffu - (uint32_t)v[t]);
            j->out[base + i * j->inner] = j->x[base + i * j->inner];
        }
    }
    free(v);
}

int fst_topk(const float *x, float *out, int64_t outer, int64_t len, int64_t inner, int64_t k, int nthreads) {
    if (outer < 0 || len < 0 || inner < 0 || k < 0 || k > len || len > 0xffffffffLL || nthreads < 1) return FST_EINVAL;
    if (outer == 0 || len == 0 || inner == 0) return FST_OK;
    if (!x || !out) return FST_ENULL;
    if (outer > INT64_MAX / len || outer * len > INT64_MAX / inner / 4) return FST_EINVAL;   /* 4 * the count: the overlap test's bytes */
    if (fst_overlap(out, 4 * outer * len * inner, x, 4 * outer * len * inner)) return FST_EINVAL;
    if (k == 0) { memset(out, 0, (size_t)(outer * len * inner) * sizeof(float)); return FST_OK; }
    topk_job j = { (const ubits *)x, (ubits *)out, len, inner, k, 0 };
    const int64_t lines = outer * inner, n = lines * len;
    const int nt = n < 65536 ? 1 : nthreads;
    fst_parallel(lines, nt > 1 ? 4 * (int64_t)nt : 1, nt, topk_task, &j);
    return __atomic_load_n(&j.failed, __ATOMIC_RELAXED) ? FST_ENOMEM : FST_OK;   /* out of memory for a line's keys */
}

/* ---- fst_resprop (fst4j.h): ReSprop's reused output gradient ---- */
typedef struct { const float *g, *p; float *out; int64_t per; double t; int64_t kept; } resprop_job;

/* One image. tf is the largest float <= the double threshold, so |d| <= tf in float decides as |d| <= t in double
 * (every float above tf is above t); a branch-free float loop vectorises, the double compare with a branch did not
 * (4.6 ms against 0.3-0.5 ms for 128 x 16 x 28 x 28 on one Zen 5 core). */
static int64_t CLONES resprop_image(const float *restrict g, const float *restrict p, float *restrict out, int64_t per, float tf) {
    int64_t kept = 0;
    for (int64_t i = 0; i < per; i++) {
        const float d = g[i] - p[i];
        const int keep = !(fabsf(d) <= tf);   /* a NaN difference is kept */
        out[i] = keep ? p[i] + d : p[i];
        kept += keep;
    }
    return kept;
}

static void resprop_task(void *q, int64_t b0, int64_t b1) {   /* images b0..b1 */
    resprop_job *j = q;
    float tf = fst_float_at_or_below(j->t);
    int64_t kept = 0;
    for (int64_t b = b0; b < b1; b++) kept += resprop_image(j->g + b * j->per, j->p, j->out + b * j->per, j->per, tf);
    __atomic_fetch_add(&j->kept, kept, __ATOMIC_RELAXED);   /* integers: the sum does not depend on the split */
}

int fst_resprop(const float *g, const float *p, float *out, int64_t n, int64_t per, double threshold, int64_t *kept, int nthreads) {
    if (n < 0 || per < 0 || nthreads < 1 || !(threshold > 0) || isinf(threshold)) return FST_EINVAL;
    if (!kept) return FST_ENULL;
    *kept = 0;
    if (n == 0 || per == 0) return FST_OK;
    if (!g || !p || !out) return FST_ENULL;
    if (n > INT64_MAX / per || n * per > PTRDIFF_MAX / (int64_t)sizeof(float)) return FST_EINVAL;   /* the overlap test's pointers too */
    const int64_t total = n * per;
    if (fst_overlap(out, 4 * total, g, 4 * total) || fst_overlap(out, 4 * total, p, 4 * per)) return FST_EINVAL;
    resprop_job j = { g, p, out, per, threshold, 0 };
    const int nt = total < 65536 ? 1 : nthreads;
    fst_parallel(n, nt > 1 ? 2 * (int64_t)nt : 1, nt, resprop_task, &j);
    *kept = j.kept;
    return FST_OK;
}
