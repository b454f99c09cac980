/* 2:4 structured-sparse x dense GEMM on the CPU (fst_spmm24): argument checks, thread split and
 * ISA dispatch. The kernels live in sparse_kernel.c (one object per ISA). Compressed layout: see
 * sparse/FORMAT.md and fst4j.h. */
#include "fst4j.h"
#include "alloc.h"
#include <stdlib.h>
#include <string.h>
#include "parallel.h"
#include "lowering.h"
#include "sparse_jit.h"

typedef int (*spmm_range_fn)(int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, float alpha,
                             float beta, const float *values, const uint32_t *meta, const float *B, int64_t ldb,
                             float *C, int64_t ldc, float *buf, int mode, const fst_lowering *low, int64_t cimg);
#define RANGE_ARGS int64_t, int64_t, int64_t, int64_t, int64_t, float, float, const float *, const uint32_t *, \
                   const float *, int64_t, float *, int64_t, float *, int, const fst_lowering *, int64_t
int fst_spmm24_range_avx512(RANGE_ARGS);
int fst_spmm24_range_avx2(RANGE_ARGS);
int fst_spmm24_range_generic(RANGE_ARGS);

#define SPK_QUERY_BUF 1   /* range-function modes (as in sparse_kernel.c): return the buffer size in floats */
#define SPK_STREAM 2      /* flag: non-temporal C stores allowed */
#define SPK_BIGK 4        /* flag: S has enough rows (>= 32) for the kernel's L2-sized K blocks */
#ifndef SPK_ABIG
#define SPK_ABIG (1 << 20)  /* as in sparse_kernel.c: S values bytes above which a chunk's column blocks are grouped */
#endif
#ifndef SPK_ROW_CHUNK_K
#define SPK_ROW_CHUNK_K 2048      /* K from which a split over rows gives each thread one chunk */
#endif
#ifndef SPK_JIT_MIN_N
#define SPK_JIT_MIN_N 2048        /* columns of B from which the compiled product is used */
#endif
#ifndef SPK_JIT_MAX_MK
#define SPK_JIT_MAX_MK 40960      /* ... up to this many entries of S (M x Kp): its code, ~10 M Kp bytes, then stays in L2 */
#endif
#ifndef SPK_JIT_MIN_M
#define SPK_JIT_MIN_M 24          /* ... and, on a materialised B, at least two register blocks of rows */
#endif
#ifndef SPK_JIT_MAX_M_B
#define SPK_JIT_MAX_M_B 32        /* ... and at most this many (64 rows: 0.97-0.99x of the register kernel, NOTES v17) */
#endif
#ifndef SPK_JIT_MAX_M
#define SPK_JIT_MAX_M 64          /* ... and at most this many rows (96-576 rows measured slower, NOTES v15) */
#endif
#ifndef SPK_STREAM_BYTES
#define SPK_STREAM_BYTES (16 << 20)
#endif

/* The kernel's A/B switches, read by sparse_kernel.c (every ISA object); 1 is the default of each. */
int fst_spmm24_group_mode = 1;      /* large-weight column-block grouping */
int fst_spmm24_prefetch_mode = 1;   /* prefetch a big S's next register block */
int fst_spmm24_kblock_mode = 1;     /* L2-sized K blocks where K needs several */
int fst_spmm24_jit_mode = 1;        /* the code compiled per call (sparse_jit.c) where it measured faster */

/* The compiled product's convolution flavour (x read in place; sparse_jit.c): at most this many rows and entries of S.
 * On the Zen 5 (NOTES v15, v17) the code outgrew L2 with more (1.0-1.2x of the register kernel up to 64 x 576). On the
 * Intel Xeon of session 39 it kept winning further (NOTES v30; in-process, code already written, 1 and 2 threads):
 * 64 x 1152 1.14-1.29x, 128 x 576 1.17-1.20x, 128 x 1152 1.05-1.10x of the register kernel; but in training S changes
 * every step and writing the code (~17 ns per kept value then) took that back at 128 x 1152 (ResNet-18's 128-channel layer:
 * no change per step), while the small CNN's 64 x 1152 and 128 x 576 gained (Eq. 1 + 2 of that layer 23 -> 20 ms per
 * step). So 73728 entries there. -DSPK_JIT_CONV_MAX_M and _MK fix them. */
#include "cpu_host.h"
static int64_t jit_conv_max(int mk) {
#if defined(SPK_JIT_CONV_MAX_M) && defined(SPK_JIT_CONV_MAX_MK)
    return mk ? SPK_JIT_CONV_MAX_MK : SPK_JIT_CONV_MAX_M;
#else
    const int amd = fst_cpu_amd_family() != 0;
    return mk ? (amd ? 40960 : 73728) : (amd ? 64 : 128);
#endif
}

/* Sets *sw to mode 0 or 1 (other values only ask); returns the mode in use. */
static int set_switch(int *sw, int mode) {
    if (mode == 0 || mode == 1) __atomic_store_n(sw, mode, __ATOMIC_RELAXED);
    return __atomic_load_n(sw, __ATOMIC_RELAXED);
}

int fst_spmm24_grouping(int mode) { return set_switch(&fst_spmm24_group_mode, mode); }
int fst_spmm24_prefetch(int mode) { return set_switch(&fst_spmm24_prefetch_mode, mode); }
int fst_spmm24_kblocks(int mode) { return set_switch(&fst_spmm24_kblock_mode, mode); }
int fst_spmm24_jit(int mode) {   /* also 2: wherever it fits (v15's rule), for tests and A/B runs */
    if (mode == 2) __atomic_store_n(&fst_spmm24_jit_mode, 2, __ATOMIC_RELAXED);
    return set_switch(&fst_spmm24_jit_mode, mode);
}

/* The kernel family for this CPU, chosen on first use, as one pointer to a constant entry: threads making their first
 * products at once (forwards of one model on several threads) may each choose it, and each sees a whole entry, the
 * function with its name, as gemm.c's fst_gemm_kernel publishes its choice. Two plain statics raced: a thread could read
 * the function another had just stored and a name not yet written (NULL into spmm_run's strcmp). */
typedef struct { spmm_range_fn fn; const char *name; } spmm_isa;
static const spmm_isa spmm_isas[3] = {
    { fst_spmm24_range_avx512, "avx512" }, { fst_spmm24_range_avx2, "avx2" }, { fst_spmm24_range_generic, "generic" } };

static spmm_range_fn spmm_kernel(const char **name) {
    static const spmm_isa *cached;
    const spmm_isa *chosen = __atomic_load_n(&cached, __ATOMIC_ACQUIRE);
    if (!chosen) {
        __builtin_cpu_init();
        int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        int avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
        /* FST4J_ISA=avx2|generic forces a lesser family (to test it on a bigger machine); never a missing one. */
        const char *force = getenv("FST4J_ISA");
        if (force && strcmp(force, "generic") == 0) avx2 = avx512 = 0;
        else if (force && strcmp(force, "avx2") == 0) avx512 = 0;
        chosen = &spmm_isas[avx512 ? 0 : avx2 ? 1 : 2];
        __atomic_store_n(&cached, chosen, __ATOMIC_RELEASE);
    }
    if (name) *name = chosen->name;
    return chosen->fn;
}

const char *fst_spmm24_isa(void) {
    const char *n;
    spmm_kernel(&n);
    return n;
}

/* One pool chunk: a range of column (or row) units, with its own L1 buffer for B. */
typedef struct {
    spmm_range_fn run;
    int64_t M, N, K;
    float alpha, beta;
    const float *values; const uint32_t *meta; const float *B; int64_t ldb; float *C; int64_t ldc;
    int mode, split_n;
    int64_t unit, total;
    size_t buf_bytes;
    int rc;
    const fst_lowering *low;
    const fst_jit24 *jit;    /* when set: the compiled product, over column ranges */
    int jconv;               /* ... its convolution flavour, over ranges of pieces (32 output columns) of the images */
    int64_t ld_img;          /* ... which writes image i's columns at C + i * ld_img (n*ho*wo columns: ho*wo; NCHW: M*ho*wo) */
    int64_t cimg;            /* the register kernel's C as NCHW images (0: a [M, N] matrix; see sparse_kernel.c) */
} spmm_job;

static void spmm_task(void *p, int64_t u0, int64_t u1) {
    spmm_job *j = p;
    int64_t a = u0 * j->unit, b = u1 * j->unit < j->total ? u1 * j->unit : j->total;
    if (a >= b) return;
    if (j->jit) {
        int rc = j->jconv ? fst_jit24_conv_range(j->jit, a, b, j->alpha, j->beta, j->low->x, j->C, j->ldc, j->ld_img)
                          : fst_jit24_range(j->jit, a, b, j->alpha, j->beta, j->B, j->ldb, j->C, j->ldc, j->low);
        if (rc != FST_OK) __atomic_store_n(&j->rc, rc, __ATOMIC_RELAXED);
        return;
    }
    float *buf = fst_aligned_alloc(64, j->buf_bytes);
    if (!buf) { __atomic_store_n(&j->rc, FST_ENOMEM, __ATOMIC_RELAXED); return; }
    const int r = j->split_n ? j->run(0, j->M, a, b, j->K, j->alpha, j->beta, j->values, j->meta, j->B, j->ldb, j->C, j->ldc, buf, j->mode, j->low, j->cimg)
                             : j->run(a, b, 0, j->N, j->K, j->alpha, j->beta, j->values, j->meta, j->B, j->ldb, j->C, j->ldc, buf, j->mode, j->low, j->cimg);
    if (r < 0) __atomic_store_n(&j->rc, FST_EINVAL, __ATOMIC_RELAXED);   /* a range the kernel refused (NCHW off 16 columns) */
    free(buf);
}

static int spmm_run(int64_t M, int64_t N, int64_t K, float alpha, const float *values, const uint32_t *meta,
                    const float *B, int64_t ldb, float beta, float *C, int64_t ldc, int nthreads, const fst_lowering *low,
                    int64_t ld_img);

int fst_spmm24(int64_t M, int64_t N, int64_t K, float alpha, const float *values, const uint32_t *meta,
               const float *B, int64_t ldb, float beta, float *C, int64_t ldc, int nthreads) {
    if (M < 0 || N < 0 || K < 0 || nthreads < 1) return FST_EINVAL;
    if (M == 0 || N == 0) return FST_OK;
    if (!C) return FST_ENULL;
    if (ldc < N) return FST_EINVAL;
    if (K > 0 && (!values || !meta || !B)) return FST_ENULL;
    if (K > 0 && ldb < N) return FST_EINVAL;
    return spmm_run(M, N, K, alpha, values, meta, B, ldb, beta, C, ldc, nthreads, NULL, 0);
}

/* The two lowered entries: x's geometry and the arguments checked, then the product (ld_img as spmm_run's). */
static int spmm_lowered(int64_t M, float alpha, const float *values, const uint32_t *meta, const fst_lowering *low,
                        float beta, float *C, int64_t ldc, int nthreads, int64_t ld_img) {
    int rc = fst_lowering_check(low);
    if (rc != FST_OK) return rc;
    const int64_t K = low->c * low->kh * low->kw, N = low->n * low->ho * low->wo;
    if (M < 0 || nthreads < 1) return FST_EINVAL;
    if (M == 0) return FST_OK;
    if (!C || !values || !meta) return FST_ENULL;
    if (!ld_img && ldc < N) return FST_EINVAL;
    return spmm_run(M, N, K, alpha, values, meta, NULL, N, beta, C, ldc, nthreads, low, ld_img);
}

int fst_spmm24_lowered(int64_t M, float alpha, const float *values, const uint32_t *meta,
                       const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                       int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo,
                       float beta, float *C, int64_t ldc, int nthreads, int order) {
    const fst_lowering low = { x, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, order, NULL, 0, 0, 0, 0 };
    return spmm_lowered(M, alpha, values, meta, &low, beta, C, ldc, nthreads, 0);
}

int fst_spmm24_lowered_nchw(int64_t M, float alpha, const float *values, const uint32_t *meta,
                            const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                            int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo,
                            float *Y, int nthreads, int order) {
    const fst_lowering low = { x, n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, order, NULL, 0, 0, 0, 0 };
    return spmm_lowered(M, alpha, values, meta, &low, 0.0f, Y, ho * wo, nthreads, M * ho * wo);
}

/* ld_img 0: C [M, N] with row stride ldc. ld_img > 0 (a lowering only): image i's columns of row r at C + r * ldc + i *
 * ld_img (NCHW: ldc = ho*wo, ld_img = M*ho*wo), written by the compiled convolution where it runs, else by the register
 * kernel where ho*wo is a multiple of 16; FST_NO_NCHW (nothing computed or written) elsewhere and for an empty sum. */
static int spmm_run(int64_t M, int64_t N, int64_t K, float alpha, const float *values, const uint32_t *meta,
                    const float *B, int64_t ldb, float beta, float *C, int64_t ldc, int nthreads, const fst_lowering *low,
                    int64_t ld_img) {
    if (ld_img && (K == 0 || alpha == 0.0f)) return FST_NO_NCHW;

    if (K == 0 || alpha == 0.0f) {
        for (int64_t i = 0; i < M; i++) {
            float *c = C + i * ldc;
            if (beta == 0.0f) memset(c, 0, (size_t)N * 4);
            else if (beta != 1.0f) for (int64_t j = 0; j < N; j++) c[j] *= beta;
        }
        return FST_OK;
    }

    /* beta is applied by the kernel as it stores the first K block of C (beta == 0 never reads C). */
    const char *isa;
    spmm_range_fn run = spmm_kernel(&isa);
    /* Wide B and a small S: the product compiled for this S (sparse_jit.c). Its code (~10 bytes per kept value) runs once
     * per 32 columns of B, so it pays where B is wide and the code stays in L2; the calling thread keeps it for its next
     * call with the same S. On Zen 5 it measured slower with more than 64 rows or ~400 KB of code (NOTES v15). NULL (not
     * wanted, or no executable memory): the register kernel. */
    const fst_jit24 *jit = NULL;   /* the calling thread's, kept for its next call */
    /* the convolution flavour reads x itself (no lowering), in 32-column pieces of its images */
    const int conv_fits = low && fst_jit24_conv_fits(low);
    /* Where it runs (Zen 5, NOTES v17): a materialised B with 24-32 rows (1.13-1.45x of the register kernel; 64 rows
     * 0.97-0.99x); convolutions it reads straight from x (1.0-1.2x; up to the host's jit_conv_max), tap-major ones
     * (Eq. 2 as a convolution of dY) too since their groups run channel by channel (sparse_jit.c; before, over 16384
     * entries they ran at 0.93x there). Never on a staged lowering (7 x 7 planes, strided: 0.84-0.92x): there the
     * register kernel, faster since its K blocks were fitted to L1, wins. */
    const double mk = (double)M * (double)((K + 3) & ~(int64_t)3);
    const int jit_mode = __atomic_load_n(&fst_spmm24_jit_mode, __ATOMIC_RELAXED);
    const int by_default = low ? conv_fits && M <= jit_conv_max(0) && mk <= (double)jit_conv_max(1)
                               : M >= SPK_JIT_MIN_M && M <= SPK_JIT_MAX_M_B && mk <= SPK_JIT_MAX_MK;
    /* mode 2: that, and wherever v15's rule let it run */
    const int jit_shape = by_default || (jit_mode == 2 && (low || M >= SPK_JIT_MIN_M) && mk <= SPK_JIT_MAX_MK && M <= SPK_JIT_MAX_M);
    /* NCHW output takes the compiled convolution or the register kernel (which stores its blocks image by image): the
     * compiled product's matrix flavour writes a [M, N] C only, so it is not even fetched (compiled) then */
    if (strcmp(isa, "avx512") == 0 && jit_mode && N >= SPK_JIT_MIN_N && jit_shape && (conv_fits || !ld_img))
        jit = conv_fits ? fst_jit24_get_conv(M, values, meta, low) : fst_jit24_get(M, K, values, meta, low ? 0 : ldb);
    const int jconv = jit && conv_fits;
    const int64_t cimg = ld_img && !jconv ? ld_img : 0;
    if (cimg && ldc % 16) return FST_NO_NCHW;   /* planes of whole vectors only (sparse_kernel.c) */
    const int64_t img_stride = ld_img ? ld_img : low ? low->ho * low->wo : 0;   /* the compiled convolution's image stride in C */
    const int64_t pieces = jconv ? low->n * fst_jit24_conv_pieces(jit) : 0;   /* its work units */
    /* A materialised B is read in place by whole 32-column pieces: the last N % 32 columns (always the same ones, whatever
     * the threads) go to the register kernel. */
    const int64_t njit = !jit ? 0 : low ? N : N & ~(int64_t)31;
    /* the register kernel's B buffer (the compiled product uses its own per-thread scratch) */
    const size_t buf_bytes = (size_t)run(0, 0, 0, 0, 0, 0, 0, NULL, NULL, NULL, 0, NULL, 0, NULL, SPK_QUERY_BUF, NULL, 0) * 4;
    /* C much bigger than the caches: where it is written once, the kernel may bypass the caches. */
    const int mode = ((double)M * (double)N * 4 >= SPK_STREAM_BYTES ? SPK_STREAM : 0) | (M >= 32 ? SPK_BIGK : 0);
    double flops = (double)M * (double)N * (double)K;   /* 2:4: half of 2MNK */
    int nt = flops < 5e5 ? 1 : nthreads;
    int rc = FST_OK;
    if (jit && njit < N) {   /* the tail first, with the register kernel */
        float *buf = fst_aligned_alloc(64, buf_bytes);
        if (!buf) return FST_ENOMEM;
        const int r = run(0, M, njit, N, K, alpha, beta, values, meta, B, ldb, C, ldc, buf, mode, low, cimg);
        free(buf);
        if (r < 0) return FST_EINVAL;
    }
    const int64_t N1 = jit ? njit : N;   /* columns left for the code below */
    if (nt == 1) {
        if (jconv) return fst_jit24_conv_range(jit, 0, pieces, alpha, beta, low->x, C, ldc, img_stride);
        if (jit) return fst_jit24_range(jit, 0, N1, alpha, beta, B, ldb, C, ldc, low);
        float *buf = fst_aligned_alloc(64, buf_bytes);
        if (!buf) return FST_ENOMEM;
        const int r = run(0, M, 0, N, K, alpha, beta, values, meta, B, ldb, C, ldc, buf, mode, low, cimg);
        free(buf);
        return r < 0 ? FST_EINVAL : rc;
    }
    /* Threads take disjoint column ranges (units of 16 columns, one cache line) when every thread gets at
     * least 64 columns and S has fewer rows than B has columns: each copies only its own part of B, nothing is shared
     * or synchronised. Otherwise rows in multiples of 4 (the register block height), every thread copying all of B
     * but streaming only its share of S. With M >= N (Eq. 2 of the wide layers, Eq. 1 at small batches) rows measured
     * 1.01-1.06x faster on 2 threads with the host in its fast state and 1.06-1.39x in its slow one (512 x 392 x 4608,
     * 4608 x 392 x 512, 2304 x 1568 x 256, 1024 x 392 x 2048; in-process alternating A/Bs), never slower, lowered B
     * included; with M < N columns stay ahead (1.2-1.6x). The result is the same either way: every element sums its
     * products in the same order. The compiled product always splits columns, in 32-column pieces where it reads B in
     * place. */
    const int64_t un = jit && !low ? 32 : 16, ur = 4;
    const int split_n = jit || (N >= 64 * (int64_t)nt && M < N);
    const int64_t unit = jconv ? 1 : split_n ? un : ur, total = jconv ? pieces : split_n ? N1 : M, units = (total + unit - 1) / unit;
    if (units < nt) nt = (int)units;
    spmm_job j = { run, M, N, K, alpha, beta, values, meta, B, ldb, C, ldc, mode, split_n, unit, total, buf_bytes, FST_OK, low, jit, jconv,
                   img_stride, cimg };
    /* Two chunks per thread balance a thread the OS runs late; but every column chunk reads all of S, so with a large S
     * (read from memory, not L2) one chunk per thread halves that traffic. Likewise every row chunk stages all of B, so
     * with a tall B (K >= SPK_ROW_CHUNK_K) rows go one chunk per thread: on 2 threads, in alternating runs of the two
     * rules, 512 x 392 x 4608 took 2.97-2.99 ms against 3.16-3.20, 512 x 128 x 4608 0.94-0.96 against 1.01-1.07,
     * 512 x 512 x 4608 3.76-3.94 against 3.88-4.00, and 1024 x 392 x 2048 the same; with K = 256 (2304 x 1568 x 256) it
     * was 3-4 % slower, so short K keeps two (NOTES v27). */
    const int grouped = __atomic_load_n(&fst_spmm24_group_mode, __ATOMIC_RELAXED);
    const int64_t chunks = grouped && (split_n ? (double)M * (double)((K + 3) & ~(int64_t)3) * 2 > SPK_ABIG : K >= SPK_ROW_CHUNK_K)
                         ? nt : 2 * (int64_t)nt;
    fst_parallel(units, chunks, nt, spmm_task, &j);
    rc = __atomic_load_n(&j.rc, __ATOMIC_RELAXED);
    return rc;
}
