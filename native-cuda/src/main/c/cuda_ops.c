/* fst4j CUDA shim, the part shared by the device library (libfst4j_cuda.so, with cuda.c) and the host emulator
 * (libfst4j_cuda_emu.so, with cuda_emu.cc): the public kernel entry points. Each validates its arguments (sizes,
 * leading dimensions, NULLs, and, under the emulator, that every device range lies inside one live allocation),
 * fills the kernel's argument struct (fst4j_kargs.h) and launches it on FST_BLOCK-thread blocks through the back
 * end. Launches are asynchronous on the device; errors of the launch itself come back at once. */
#include "cuda_backend.h"
#include "../cuda/fst4j_kargs.h"
#include "float_below.h"
#include "overlap.h"
#include <pthread.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* messages are cut to their buffer on purpose */
#pragma GCC diagnostic ignored "-Wformat-truncation"

__thread char fst_cuda_err[768];
const char *fst_cuda_last_error(void) { return fst_cuda_err; }
int fst_cuda_version(void) { return 2; }

int fst_cuda_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fst_cuda_err, sizeof fst_cuda_err, fmt, ap);
    va_end(ap);
    return FST_ECUDA;
}

#define FST_KERNEL_NAME(name, args) "fst_k_" #name,
#define FST_BLOCK_KERNEL_NAME(name, args, threads, smem) "fst_k_" #name,
static const char *const names[FST_N_KERNELS] = { FST_KERNELS(FST_KERNEL_NAME) FST_BLOCK_KERNELS(FST_BLOCK_KERNEL_NAME) };
#define FST_BLOCK_KERNEL_SHAPE(name, args, threads, smem) { threads, smem },
static const struct { int threads, smem; } block_shapes[FST_N_KERNELS - FST_N_THREAD_KERNELS] = { FST_BLOCK_KERNELS(FST_BLOCK_KERNEL_SHAPE) };
const char *fst_cuda_kernel_name(int k) { return k >= 0 && k < FST_N_KERNELS ? names[k] : "?"; }

/* ---- the kernel profile (fst_cuda_kprof, or FST4J_CUDA_KPROF=1 from the start): time per kernel (and per library call), for finding where a step's device time goes.
 * Each timed call is bracketed by device synchronisations and timed on the host clock, so the totals are the device
 * time of each kind of work plus a launch latency each (a few microseconds); the step itself runs slower. ---- */
enum { KPROF_ROWS = 128 };
typedef struct { const char *name, *sub; int64_t calls, items; double ms; } kprof_row;
static kprof_row kprof_rows[KPROF_ROWS];
static int kprof_n;
static int kprof_state = -1;   /* -1: not yet read from the environment; atomic, as the switches below (every launch reads it) */
static pthread_mutex_t kprof_lock = PTHREAD_MUTEX_INITIALIZER;

static double now_ms(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e3 + t.tv_nsec / 1e6; }

int fst_kprof_on(void) {
    const int on = __atomic_load_n(&kprof_state, __ATOMIC_RELAXED);
    if (on >= 0) return on;
    const char *e = getenv("FST4J_CUDA_KPROF");
    int unset = -1;
    __atomic_compare_exchange_n(&kprof_state, &unset, e && *e && strcmp(e, "0") != 0, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return __atomic_load_n(&kprof_state, __ATOMIC_RELAXED);
}

int fst_cuda_kprof(int on) {
    const int was = fst_kprof_on();
    if (on >= 0) return __atomic_exchange_n(&kprof_state, on != 0, __ATOMIC_RELAXED);
    return was;
}

/* The start of a timed call (0 when off): the device is idle first, so that earlier work is not booked to it. */
double fst_kprof_begin(void) { return fst_kprof_on() && fst_cuda_sync() == FST_OK ? now_ms() : 0; }

void fst_kprof_end(const char *name, const char *sub, int64_t items, double t0) {
    if (t0 == 0 || fst_cuda_sync() != FST_OK) return;   /* a failure surfaces at the caller's next check */
    const double ms = now_ms() - t0;
    pthread_mutex_lock(&kprof_lock);
    int i = 0;
    while (i < kprof_n && !(kprof_rows[i].name == name && kprof_rows[i].sub == sub)) i++;
    if (i == kprof_n && kprof_n < KPROF_ROWS) kprof_rows[kprof_n++] = (kprof_row){ name, sub, 0, 0, 0 };
    if (i < kprof_n) { kprof_rows[i].calls++; kprof_rows[i].items += items; kprof_rows[i].ms += ms; }
    pthread_mutex_unlock(&kprof_lock);
}

static int kprof_desc(const void *a, const void *b) {
    const double x = ((const kprof_row *)a)->ms, y = ((const kprof_row *)b)->ms;
    return x < y ? 1 : x > y ? -1 : 0;
}

const char *fst_cuda_kprof_report(int reset) {
    static char buf[16384];
    pthread_mutex_lock(&kprof_lock);
    kprof_row rows[KPROF_ROWS];
    const int n = kprof_n;
    memcpy(rows, kprof_rows, sizeof rows);
    if (reset) kprof_n = 0;
    pthread_mutex_unlock(&kprof_lock);
    if (!fst_kprof_on() && n == 0) return "off (fst_cuda_kprof(1) or FST4J_CUDA_KPROF=1 switches it on)";
    qsort(rows, (size_t)n, sizeof rows[0], kprof_desc);
    double total = 0;
    for (int i = 0; i < n; i++) total += rows[i].ms;
    size_t at = (size_t)snprintf(buf, sizeof buf, "%-34s %8s %10s %6s %12s\n", "kernel / call", "calls", "ms", "share", "items/call");
    for (int i = 0; i < n && at < sizeof buf; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s%s%s", rows[i].name, rows[i].sub ? ":" : "", rows[i].sub ? rows[i].sub : "");
        at += (size_t)snprintf(buf + at, sizeof buf - at, "%-34s %8lld %10.3f %5.1f%% %12.0f\n", name, (long long)rows[i].calls, rows[i].ms,
                               total > 0 ? 100 * rows[i].ms / total : 0, rows[i].calls ? (double)rows[i].items / rows[i].calls : 0);
    }
    if (at < sizeof buf) snprintf(buf + at, sizeof buf - at, "%-34s %8s %10.3f\n", "total", "", total);
    return buf;
}

/* items threads rounded up to whole blocks; the bodies check their own bound. sub: a label for the profile (an op) */
static int launch_op(int k, int64_t items, const void *args, const char *sub) {
    if (items <= 0) return FST_OK;
    const int64_t blocks = (items + FST_BLOCK - 1) / FST_BLOCK;
    if (blocks > 0x7fffffff) return fst_cuda_fail("%s: %lld work items exceed one launch", names[k], (long long)items);
    const double t0 = fst_kprof_begin();
    const int rc = fst_backend_launch(k, blocks, FST_BLOCK, 0, args);
    if (rc == FST_OK) fst_kprof_end(names[k], sub, items, t0);
    return rc;
}

/* a block kernel (FST_BLOCK_KERNELS) on `blocks` blocks of its own size; sub: the profile's sub-row (a static string or NULL) */
static int launch_blocks_op(int k, int64_t blocks, const void *args, const char *sub) {
    if (blocks <= 0) return FST_OK;
    if (k < FST_N_THREAD_KERNELS || k >= FST_N_KERNELS) return fst_cuda_fail("launch_blocks: %d is not a block kernel", k);
    if (blocks > 0x7fffffff) return fst_cuda_fail("%s: %lld blocks exceed one launch", names[k], (long long)blocks);
    const double t0 = fst_kprof_begin();
    const int rc = fst_backend_launch(k, blocks, block_shapes[k - FST_N_THREAD_KERNELS].threads, block_shapes[k - FST_N_THREAD_KERNELS].smem, args);
    if (rc == FST_OK) fst_kprof_end(names[k], sub, blocks, t0);
    return rc;
}

static int launch_blocks(int k, int64_t blocks, const void *args) { return launch_blocks_op(k, blocks, args, NULL); }

static int launch(int k, int64_t items, const void *args) { return launch_op(k, items, args, NULL); }

/* Whether a kernel may take four elements per thread: runs (rows, planes) of a multiple of 4 elements and every
 * operand 16-byte aligned (NULL: an absent operand), for its 16-byte loads and stores */
static int by_four(int64_t run, const void *a, const void *b, const void *c, const void *d) {
    return run % 4 == 0 && (((uintptr_t)a | (uintptr_t)b | (uintptr_t)c | (uintptr_t)d) & 15) == 0;
}

/* [p, p + bytes) must be device memory (checked under the emulator; see fst_backend_owns) */
static int own(const char *fn, const char *what, const void *p, int64_t bytes) {
    if (!p || bytes <= 0 || fst_backend_owns(p, (size_t)bytes)) return FST_OK;
    snprintf(fst_cuda_err, sizeof fst_cuda_err, "%s: %s [%p, +%lld bytes) is not inside one device allocation", fn, what, p, (long long)bytes);
    return FST_EINVAL;
}
#define OWN(p, bytes) do { int rc_ = own(fn, #p, (p), (bytes)); if (rc_) return rc_; } while (0)
#define READY() const char *fn = __func__; do { int rc_ = fst_backend_ready(); if (rc_) return rc_; } while (0)
#define BAD(cond) do { if (cond) { snprintf(fst_cuda_err, sizeof fst_cuda_err, "%s: invalid argument (%s)", fn, #cond); return FST_EINVAL; } } while (0)
#define NUL(cond) do { if (cond) { snprintf(fst_cuda_err, sizeof fst_cuda_err, "%s: null pointer (%s)", fn, #cond); return FST_ENULL; } } while (0)

/* ======================= sparsification, IR shift, convolution lowering ======================= */

int fst_cuda_prune24(int64_t rows, int64_t K, const float *w, int64_t ldw, float *values, uint32_t *meta,
                     float *dense, int64_t ldd, uint16_t *dense16, int64_t ldd16) {
    READY();
    BAD(rows < 0 || K < 0);
    if (rows == 0 || K == 0) return FST_OK;
    NUL(!w || !values != !meta);   /* the compressed form (values and meta) or neither: the masked copies only */
    BAD(!values && !dense && !dense16);
    BAD(ldw < K || (dense && ldd < K) || (dense16 && ldd16 < K));
    const int64_t G = (K + 3) / 4, ldm = (G + 7) / 8;
    OWN(w, ((rows - 1) * ldw + K) * 4);
    if (values) { OWN(values, rows * 2 * G * 4); OWN(meta, rows * ldm * 4); }
    if (dense) OWN(dense, ((rows - 1) * ldd + K) * 4);
    if (dense16) OWN(dense16, ((rows - 1) * ldd16 + K) * 2);
    fst_k_prune_args a = { rows, K, w, ldw, values, meta, dense, ldd, dense16, ldd16 };
    return launch(FST_K_prune24, rows * G, &a);
}

int fst_cuda_prune24_t(int64_t cout, int64_t K, const float *w, int64_t ldw, float *values, uint32_t *meta,
                       float *dense_t, int64_t lddt, uint16_t *dense16_t, int64_t ldd16t) {
    READY();
    BAD(cout < 0 || K < 0);
    if (cout == 0 || K == 0) return FST_OK;
    NUL(!w || !values != !meta);   /* the compressed form (values and meta) or neither: the masked copies only */
    BAD(!values && !dense_t && !dense16_t);
    BAD(ldw < K || (dense_t && lddt < cout) || (dense16_t && ldd16t < cout));
    const int64_t G = (cout + 3) / 4, ldm = (G + 7) / 8;
    OWN(w, ((cout - 1) * ldw + K) * 4);
    if (values) { OWN(values, K * 2 * G * 4); OWN(meta, K * ldm * 4); }
    if (dense_t) OWN(dense_t, ((K - 1) * lddt + cout) * 4);
    if (dense16_t) OWN(dense16_t, ((K - 1) * ldd16t + cout) * 2);
    fst_k_prune_args a = { cout, K, w, ldw, values, meta, dense_t, lddt, dense16_t, ldd16t };
    if (!values) return launch(FST_K_prune24_tg, K * G, &a);   /* coalesced stores, a thread per group */
    return launch(FST_K_prune24_t, K * ldm, &a);
}

int fst_cuda_shift_gather(const float *dy, float *out, int64_t rows, int64_t len, int64_t seg, int shift, float coeff, int circular) {
    return fst_cuda_shift_gather16(dy, out, NULL, rows, len, seg, shift, coeff, circular);
}

int fst_cuda_shift_gather16(const float *dy, float *out, uint16_t *out16, int64_t rows, int64_t len, int64_t seg, int shift, float coeff,
                            int circular) {
    READY();
    BAD(rows < 0 || len < 0 || seg <= 0 || len % seg != 0 || (shift != 1 && shift != -1));
    if (rows == 0 || len == 0) return FST_OK;
    NUL(!dy || !out);
    const int64_t nseg = rows * (len / seg), h = (seg + 1) / 2;
    BAD((const char *)out < (const char *)(dy + rows * len) && (const char *)dy < (const char *)(out + nseg * h));   /* overlap */
    OWN(dy, rows * len * 4); OWN(out, nseg * h * 4);
    if (out16) OWN(out16, nseg * h * 2);
    fst_k_shift_gather_args a = { dy, out, nseg, seg, shift, coeff, circular, out16 };
    return launch(FST_K_shift_gather, nseg * h, &a);
}

int fst_cuda_shift_add(const float *dy, float *out, int64_t rows, int64_t len, int64_t seg, int shift, float coeff, int circular) {
    READY();
    BAD(rows < 0 || len < 0 || seg <= 0 || len % seg != 0 || (shift != 1 && shift != -1));
    if (rows == 0 || len == 0) return FST_OK;
    NUL(!dy || !out);
    BAD((const char *)out < (const char *)(dy + rows * len) && (const char *)dy < (const char *)(out + rows * len));   /* overlap */
    OWN(dy, rows * len * 4); OWN(out, rows * len * 4);
    fst_k_shift_gather_args a = { dy, out, rows * (len / seg), seg, shift, coeff, circular, NULL };
    return launch(FST_K_shift_add, rows * len, &a);
}

int fst_cuda_resprop(const float *g, const float *p, float *out, int64_t n, int64_t per, double threshold, int64_t *work) {
    READY();
    BAD(n < 0 || per < 0 || !(threshold > 0) || isinf(threshold));
    NUL(!work);
    BAD(n > 0 && per > INT64_MAX / 4 / n);
    const int64_t total = n * per, nwork = (int64_t)(FST_PARTS + 1) * FST_PARTS;
    OWN(work, nwork * 8);
    if (total > 0) {
        NUL(!g || !p || !out);
        BAD(((const char *)out < (const char *)(g + total) && (const char *)g < (const char *)(out + total))
            || ((const char *)out < (const char *)(p + per) && (const char *)p < (const char *)(out + total)));   /* overlap */
        OWN(g, total * 4); OWN(p, per * 4); OWN(out, total * 4);
    }
    float tf = fst_float_at_or_below(threshold);   /* as prune.c */
    fst_k_resprop_args a = { g, p, out, total, per, tf, work };
    int rc = total > 0 ? launch(FST_K_resprop, total, &a) : FST_OK;
    if (!rc) rc = launch(FST_K_resprop_count, (int64_t)FST_PARTS * FST_PARTS, &a);
    return rc ? rc : launch(FST_K_resprop_sum, FST_PARTS, &a);
}

static int check_geom(const fst_geom *g) {
    if (g->n < 0 || g->c <= 0 || g->h <= 0 || g->w <= 0 || g->kh <= 0 || g->kw <= 0 || g->sh <= 0 || g->sw <= 0
        || g->ph < 0 || g->pw < 0 || g->ho <= 0 || g->wo <= 0) return FST_EINVAL;
    /* the kernels divide by the strides and offset by the padding in 32 bits: a stride of 2^32 divided by zero there */
    if (g->kh > INT32_MAX || g->kw > INT32_MAX || g->sh > INT32_MAX || g->sw > INT32_MAX || g->ph > INT32_MAX || g->pw > INT32_MAX)
        return FST_EINVAL;
    if ((g->h + 2 * g->ph - g->kh) / g->sh + 1 != g->ho || (g->w + 2 * g->pw - g->kw) / g->sw + 1 != g->wo) return FST_EINVAL;
    return FST_OK;
}
#define GEOM(g) BAD(check_geom(&(g)) != FST_OK)

int fst_cuda_im2col(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                    int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo, float *out, int64_t ldo) {
    READY();
    fst_geom g = { n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo };
    NUL(!x || !out);
    GEOM(g);
    BAD(ldo < n * ho * wo);
    if (n == 0) return FST_OK;
    OWN(x, n * c * h * w * 4); OWN(out, ((c * kh * kw - 1) * ldo + n * ho * wo) * 4);
    fst_k_im2col_args a = { x, g, out, ldo };
    return launch(FST_K_im2col, c * kh * kw * n * ho * wo, &a);
}

/* the dilated geometry: as check_geom, with the dilated kernel's extent dh (kh - 1) + 1 fitting the padded input */
static int check_geom_dil(const fst_geom *g, int64_t dh, int64_t dw) {
    if (g->n < 0 || g->c <= 0 || g->h <= 0 || g->w <= 0 || g->kh <= 0 || g->kw <= 0 || g->sh <= 0 || g->sw <= 0
        || g->ph < 0 || g->pw < 0 || g->ho <= 0 || g->wo <= 0 || dh <= 0 || dw <= 0) return FST_EINVAL;
    if (dh > INT32_MAX || dw > INT32_MAX || g->kh > INT32_MAX || g->kw > INT32_MAX) return FST_EINVAL;   /* no overflow below */
    const int64_t ekh = dh * (g->kh - 1) + 1, ekw = dw * (g->kw - 1) + 1;
    if (ekh > g->h + 2 * g->ph || ekw > g->w + 2 * g->pw) return FST_EINVAL;
    if ((g->h + 2 * g->ph - ekh) / g->sh + 1 != g->ho || (g->w + 2 * g->pw - ekw) / g->sw + 1 != g->wo) return FST_EINVAL;
    return FST_OK;
}

int fst_cuda_im2col_dil(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                        int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t ho, int64_t wo, float *out, int64_t ldo) {
    READY();
    fst_geom g = { n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo };
    NUL(!x || !out);
    BAD(check_geom_dil(&g, dh, dw) != FST_OK);
    BAD(ldo < n * ho * wo);
    if (n == 0) return FST_OK;
    OWN(x, n * c * h * w * 4); OWN(out, ((c * kh * kw - 1) * ldo + n * ho * wo) * 4);
    BAD((const char *)out < (const char *)(x + n * c * h * w) && (const char *)x < (const char *)(out + (c * kh * kw - 1) * ldo + n * ho * wo));   /* overlap */
    fst_k_im2col_dil_args a = { x, g, dh, dw, out, ldo };
    return launch(FST_K_im2col_dil, c * kh * kw * n * ho * wo, &a);
}

int fst_cuda_col2im_dil(const float *cols, int64_t ldc, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh,
                        int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t ho, int64_t wo, float *dx) {
    READY();
    fst_geom g = { n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo };
    NUL(!cols || !dx);
    BAD(check_geom_dil(&g, dh, dw) != FST_OK);
    BAD(ldc < n * ho * wo);
    if (n == 0) return FST_OK;
    OWN(cols, ((c * kh * kw - 1) * ldc + n * ho * wo) * 4); OWN(dx, n * c * h * w * 4);
    BAD((const char *)dx < (const char *)(cols + (c * kh * kw - 1) * ldc + n * ho * wo) && (const char *)cols < (const char *)(dx + n * c * h * w));   /* overlap */
    fst_k_col2im_dil_args a = { cols, ldc, g, dh, dw, dx };
    return launch(FST_K_col2im_dil, n * c * h * w, &a);
}

/* col2im of float32 (elem 4) or bf16 (elem 2) columns: the two argument structs have the same layout but for the
 * columns' type */
static int col2im_launch(const char *fn, int kernel, const void *cols, int elem, int64_t ldc, fst_geom g, float *dx) {
    NUL(!cols || !dx);
    GEOM(g);
    BAD(ldc < g.n * g.ho * g.wo);
    if (g.n == 0) return FST_OK;
    OWN(cols, ((g.c * g.kh * g.kw - 1) * ldc + g.n * g.ho * g.wo) * elem); OWN(dx, g.n * g.c * g.h * g.w * 4);
    if (elem == 4) { fst_k_col2im_args a = { (const float *)cols, ldc, g, dx }; return launch(kernel, g.n * g.c * g.h * g.w, &a); }
    fst_k_col2im_bf16_args a = { (const uint16_t *)cols, ldc, g, dx };
    /* bf16 columns: four elements of a row per thread where rows allow, fixed unrolled taps for a 3x3 kernel at stride 1 */
    const int k3 = g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1;
    if (by_four(g.w, dx, NULL, NULL, NULL))
        return launch(k3 ? FST_K_col2im_bf16x4_k3 : FST_K_col2im_bf16x4, g.n * g.c * g.h * g.w / 4, &a);
    return launch(k3 ? FST_K_col2im_bf16_k3 : kernel, g.n * g.c * g.h * g.w, &a);
}

int fst_cuda_col2im(const float *cols, int64_t ldc, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                    int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo, float *dx) {
    READY();
    return col2im_launch(fn, FST_K_col2im, cols, 4, ldc, (fst_geom){ n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo }, dx);
}

int fst_cuda_col2im_bf16(const uint16_t *cols, int64_t ldc, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                         int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo, float *dx) {
    READY();
    return col2im_launch(fn, FST_K_col2im_bf16, cols, 2, ldc, (fst_geom){ n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo }, dx);
}

int fst_cuda_im2col_at(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                       int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo,
                       const int32_t *pos, int64_t npos, float *out, int64_t ldo) {
    READY();
    fst_geom g = { n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo };
    NUL(!x || !out || (npos > 0 && !pos));
    GEOM(g);
    BAD(npos < 0 || ldo < n * npos);
    if (n == 0 || npos == 0) return FST_OK;
    OWN(x, n * c * h * w * 4); OWN(pos, npos * 4); OWN(out, ((c * kh * kw - 1) * ldo + n * npos) * 4);
    fst_k_im2col_at_args a = { x, g, pos, npos, out, ldo };
    return launch(FST_K_im2col_at, c * kh * kw * n * npos, &a);
}

int fst_cuda_embed_gather(const float *w, int64_t v, int64_t d, const int32_t *idx, int64_t n, float *out) {
    READY();
    NUL(!w || !out || (n > 0 && !idx));
    BAD(v <= 0 || d < 0 || n < 0);
    BAD(d > 0 && (v > INT64_MAX / 4 / d || n > INT64_MAX / 4 / d));   /* the byte sizes below must not wrap past OWN's check */
    if (n == 0 || d == 0) return FST_OK;
    OWN(w, v * d * 4); OWN(idx, n * 4); OWN(out, n * d * 4);
    fst_k_embed_gather_args a = { w, idx, out, v, n, d };
    return launch(FST_K_embed_gather, n * d, &a);
}

int fst_cuda_embed_scatter(const float *g, int64_t n, int64_t d, const int32_t *off, const int32_t *pos, int64_t v, float *dw) {
    READY();
    NUL(!g || !off || !dw || (n > 0 && !pos));
    BAD(v <= 0 || d < 0 || n < 0);
    BAD(v > INT64_MAX / 4 - 1 || n > INT64_MAX / 4 || (d > 0 && (v > INT64_MAX / 4 / d || n > INT64_MAX / 4 / d)));   /* no byte size wraps */
    if (d == 0) return FST_OK;
    OWN(g, n * d * 4); OWN(off, (v + 1) * 4); if (n > 0) OWN(pos, n * 4); OWN(dw, v * d * 4);
    fst_k_embed_scatter_args a = { g, off, pos, dw, v, n, d };
    return launch(FST_K_embed_scatter, v * d, &a);
}

int fst_cuda_f32_to_bf16(const float *src, uint16_t *dst, int64_t n) {
    READY();
    BAD(n < 0);
    if (n == 0) return FST_OK;
    NUL(!src || !dst);
    OWN(src, n * 4); OWN(dst, n * 2);
    fst_k_f2bf_args a = { src, dst, n };
    return launch(FST_K_f32_to_bf16, n, &a);
}

/* im2col_bf16_s1 / _s2 for 3x3 kernels at horizontal stride 1 / 2 (1; runs 17-18, H100: ResNet-18 step 1.07x faster),
 * and 8, the default: their eight-column forms where output rows hold a multiple of 8 positions (run 41, H200: layer 1's
 * lowering 2.87 -> 2.41 ms a step; the step itself 0.99x, within its spread); FST4J_CUDA_IM2COL_VEC=0 / 1 or
 * fst_cuda_im2col_vec(0 / 1) for A/Bs; -1 reads the environment on first use. The environment: "0" off, "1" four
 * columns, anything else (or unset) the default 8; the argument: 0 off, 8 eight columns, any other positive value 1
 * (Java's on / off switch passes 1 or 0). */
static int im2col_vec = -1;   /* atomic, as igemm_tile below */
int fst_cuda_im2col_vec(int on) {
    if (__atomic_load_n(&im2col_vec, __ATOMIC_RELAXED) < 0) {
        const char *e = getenv("FST4J_CUDA_IM2COL_VEC");
        int unset = -1, mode = e && strcmp(e, "0") == 0 ? 0 : e && strcmp(e, "1") == 0 ? 1 : 8;
        __atomic_compare_exchange_n(&im2col_vec, &unset, mode, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    }
    if (on >= 0) return __atomic_exchange_n(&im2col_vec, on == 0 ? 0 : on == 8 ? 8 : 1, __ATOMIC_RELAXED);
    return __atomic_load_n(&im2col_vec, __ATOMIC_RELAXED);
}

int fst_cuda_im2col_bf16(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                         int64_t ph, int64_t pw, int64_t ho, int64_t wo, uint16_t *dst, int64_t rows_p, int64_t cols_p) {
    READY();
    fst_geom g = { n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo };
    NUL(!x || !dst);
    GEOM(g);
    BAD(rows_p < c * kh * kw || cols_p < n * ho * wo);
    if (rows_p == 0 || cols_p == 0) return FST_OK;
    if (n > 0) OWN(x, n * c * h * w * 4);
    OWN(dst, rows_p * cols_p * 2);
    fst_k_im2col_bf16_args a = { x, g, dst, rows_p, cols_p };
    const int64_t chans = (rows_p + kh * kw - 1) / (kh * kw);
    /* four columns and one 8-byte store per thread and row where the rows keep 8-byte alignment */
    if (cols_p % 4 == 0 && ((uintptr_t)dst & 7) == 0) {
        /* 3x3 kernels with horizontal padding 1 at horizontal stride 1 or 2: each input row's span read once */
        const int vec = fst_cuda_im2col_vec(-1), k3 = kh == 3 && kw == 3 && pw == 1 && (sw == 1 || sw == 2) && vec;
        if (k3 && vec == 8 && wo % 8 == 0 && cols_p % 8 == 0 && ((uintptr_t)dst & 15) == 0)   /* eight columns, 16-byte stores */
            return launch(sw == 1 ? FST_K_im2col_bf16_s1x8 : FST_K_im2col_bf16_s2x8, chans * (cols_p / 8), &a);
        if (k3) return launch(sw == 1 ? FST_K_im2col_bf16_s1 : FST_K_im2col_bf16_s2, chans * (cols_p / 4), &a);   /* chans of 9 rows, as for x4 */
        return launch(FST_K_im2col_bf16x4, chans * (cols_p / 4), &a);
    }
    return launch(FST_K_im2col_bf16, chans * cols_p, &a);   /* a thread per (channel, column) */
}

int fst_cuda_bf16_pad(const float *src, int64_t rows, int64_t cols, int64_t rs, int64_t cs, uint16_t *dst, int64_t rows_p, int64_t cols_p) {
    READY();
    BAD(rows < 0 || cols < 0 || rs < 0 || cs < 0 || rows_p < rows || cols_p < cols);
    if (rows_p == 0 || cols_p == 0) return FST_OK;
    NUL(!dst || (rows > 0 && cols > 0 && !src));
    OWN(dst, rows_p * cols_p * 2);
    if (rows > 0 && cols > 0) OWN(src, ((rows - 1) * rs + (cols - 1) * cs + 1) * 4);
    fst_k_bf16_pad_args a = { src, rows, cols, rs, cs, dst, rows_p, cols_p };
    if (cols_p % 4 == 0 && ((uintptr_t)dst & 7) == 0) return launch(FST_K_bf16_pad4, rows_p * (cols_p / 4), &a);   /* 8-byte stores */
    return launch(FST_K_bf16_pad, rows_p * cols_p, &a);
}

int fst_cuda_bf16_unpad_nchw(const uint16_t *src, int64_t ld, float *dst, int64_t rows, int64_t imgs, int64_t plane) {
    READY();
    BAD(rows < 0 || imgs < 0 || plane < 0 || ld < imgs * plane);
    if (rows == 0 || imgs == 0 || plane == 0) return FST_OK;
    NUL(!src || !dst);
    OWN(src, ((rows - 1) * ld + imgs * plane) * 2);
    OWN(dst, imgs * rows * plane * 4);
    fst_k_bf16_unpad_nchw_args a = { src, ld, dst, rows, imgs, plane };
    if (by_four(plane, dst, NULL, NULL, NULL)) return launch(FST_K_bf16_unpad_nchw4, imgs * rows * plane / 4, &a);
    return launch(FST_K_bf16_unpad_nchw, imgs * rows * plane, &a);
}

/* The implicit GEMMs' tile: 128 output channels x 64 positions from 128 output channels on (half the im2col gather per
 * product), else 64 x 128. FST4J_CUDA_IGEMM_TILE=64 or 128 (read on first use) or fst_cuda_igemm_tile(64 / 128, 0 for
 * this choice) fixes it for an A/B. */
static int igemm_tile = -1;   /* atomic: host threads launching at once read it; the first reads agree on the environment's value */
int fst_cuda_igemm_tile(int tile) {
    if (__atomic_load_n(&igemm_tile, __ATOMIC_RELAXED) < 0) {
        const char *e = getenv("FST4J_CUDA_IGEMM_TILE");
        int unset = -1;
        __atomic_compare_exchange_n(&igemm_tile, &unset, e ? atoi(e) : 0, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    }
    if (tile == 0 || tile == 64 || tile == 128) return __atomic_exchange_n(&igemm_tile, tile, __ATOMIC_RELAXED);
    return __atomic_load_n(&igemm_tile, __ATOMIC_RELAXED);
}
static int igemm_m128(int64_t cout) {
    const int t = fst_cuda_igemm_tile(-1);
    return t == 128 || (t != 64 && cout >= 128);
}

/* the kernel profile's sub-row of a convolution: its kernel size and output channels (a ResNet's stages) */
static const char *conv_sub(int64_t kh, int64_t kw, int64_t cout) {
    static const char *const subs[3][4] = { { "1x1 cout<=64", "1x1 cout<=128", "1x1 cout<=256", "1x1 cout>256" },
                                            { "3x3 cout<=64", "3x3 cout<=128", "3x3 cout<=256", "3x3 cout>256" },
                                            { "kxk cout<=64", "kxk cout<=128", "kxk cout<=256", "kxk cout>256" } };
    const int ks = kh == 1 && kw == 1 ? 0 : kh == 3 && kw == 3 ? 1 : 2, cs = cout <= 64 ? 0 : cout <= 128 ? 1 : cout <= 256 ? 2 : 3;
    return subs[ks][cs];
}

int fst_cuda_conv_igemm_sp(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh,
                           int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo, const uint16_t *v, int64_t ldv,
                           const uint32_t *meta, int64_t ldm, int64_t cout, float *y, int cfast) {
    READY();
    fst_geom g = { n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo };
    NUL(!x || !v || !meta || !y);
    GEOM(g);
    const int64_t K = c * kh * kw, npix = n * ho * wo, G = (K + 3) / 4;
    BAD(cout <= 0 || ldv < 2 * G || ldm < (K + 31) / 32);
    BAD(c * h * w >= ((int64_t)1 << 31) || K >= ((int64_t)1 << 31));   /* the kernel's 32-bit index math inside an image */
    if (n == 0) return FST_OK;
    OWN(x, n * c * h * w * 4); OWN(v, ((cout - 1) * ldv + 2 * G) * 2); OWN(meta, ((cout - 1) * ldm + (K + 31) / 32) * 4); OWN(y, npix * cout * 4);
    const int m128 = igemm_m128(cout);
    const int64_t bm = m128 ? 128 : 64, bn = m128 ? 64 : 128, mtiles = (cout + bm - 1) / bm, ntiles = (npix + bn - 1) / bn;
    BAD(cfast != 0 && cfast != 1);
    fst_k_igemm_sp_args a = { x, g, v, ldv, meta, ldm, cout, K, npix, mtiles, y, cfast };
    return launch_blocks_op(m128 ? FST_K_igemm_sp_m128 : FST_K_igemm_sp, mtiles * ntiles, &a, conv_sub(kh, kw, cout));
}

int fst_cuda_conv24_t(const float *vt, const uint32_t *mt, int64_t cin, int64_t cout, int64_t khw, uint16_t *v, uint32_t *m) {
    READY();
    NUL(!vt || !mt || !v || !m);
    BAD(cin <= 0 || khw <= 0 || cout <= 0 || cout % 32 != 0);
    const int64_t nv = cin * khw * cout / 2, nm = cin * khw * cout / 32;
    OWN(vt, nv * 4); OWN(mt, nm * 4); OWN(v, nv * 2); OWN(m, nm * 4);
    fst_k_conv24_t_args a = { vt, mt, cin, cout, khw, v, m };
    return launch(FST_K_conv24_t, nv + nm, &a);
}

int64_t fst_cuda_conv_wgrad_splits(int64_t cout, int64_t K, int64_t npix, int64_t requested) {
    if (cout <= 0 || K <= 0 || npix <= 0) return 1;
    const int64_t tiles = ((cout + 63) / 64) * ((K + 127) / 128), slices = (npix + FST_IG_BK - 1) / FST_IG_BK;
    int64_t s = requested > 0 ? requested : (528 + tiles - 1) / tiles;   /* about 4 blocks per SM of a 132-SM GPU */
    if (s > slices) s = slices;
    if (s > 1024) s = 1024;
    return s < 1 ? 1 : s;
}

static int conv_wgrad(const char *fn, const float *x, fst_geom geo, const uint16_t *g, int64_t ldg, const float *src, int64_t lds, int64_t seg,
                      int64_t sseg, int gather, float coeff, int shift, int circular, int64_t cout, float *ws, int64_t splits, float *dw,
                      int64_t ldd, float beta, int cfast);

int fst_cuda_conv_wgrad(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                        int64_t ph, int64_t pw, int64_t ho, int64_t wo, const uint16_t *g, int64_t ldg, int64_t cout, float *ws,
                        int64_t splits, float *dw, int64_t ldd, float beta, int cfast) {
    READY();
    fst_geom geo = { n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo };
    NUL(!g);
    return conv_wgrad(fn, x, geo, g, ldg, NULL, 0, 0, 0, 0, 0.0f, 1, 0, cout, ws, splits, dw, ldd, beta, cfast);
}

int fst_cuda_conv_wgrad_sg(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                           int64_t ph, int64_t pw, int64_t ho, int64_t wo, const float *src, int64_t lds, int64_t seg, int64_t sseg, int gather,
                           float coeff, int shift, int circular, int64_t cout, float *ws, int64_t splits, float *dw, int64_t ldd, float beta,
                           int cfast) {
    READY();
    fst_geom geo = { n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo };
    NUL(!src);
    BAD(seg <= 0 || (shift != 1 && shift != -1) || (circular != 0 && circular != 1) || (gather != 0 && gather != 1) || lds < 0 || sseg < 0);
    const int64_t npix = n * ho * wo, hk = gather ? (seg + 1) / 2 : seg;
    BAD(npix % hk != 0);   /* whole segments: the positions are npix = segments * h */
    const int64_t segs = npix / hk;
    OWN(src, ((cout - 1) * lds + (segs - 1) * sseg + seg) * 4);
    return conv_wgrad(fn, x, geo, NULL, npix, src, lds, seg, sseg, gather, coeff, shift, circular, cout, ws, splits, dw, ldd, beta, cfast);
}

static int conv_wgrad(const char *fn, const float *x, fst_geom geo, const uint16_t *g, int64_t ldg, const float *src, int64_t lds, int64_t seg,
                      int64_t sseg, int gather, float coeff, int shift, int circular, int64_t cout, float *ws, int64_t splits, float *dw,
                      int64_t ldd, float beta, int cfast) {
    const int64_t n = geo.n, c = geo.c, h = geo.h, w = geo.w, kh = geo.kh, kw = geo.kw;
    NUL(!x || !ws || !dw);
    GEOM(geo);
    const int64_t K = c * kh * kw, npix = n * geo.ho * geo.wo;
    BAD(cout <= 0 || ldg < npix || ldd < K || splits < 1 || (cfast != 0 && cfast != 1));
    BAD(c * h * w >= ((int64_t)1 << 31) || K >= ((int64_t)1 << 31));   /* the kernel's 32-bit index math inside an image */
    OWN(dw, ((cout - 1) * ldd + K) * 4);
    if (npix == 0) {   /* an empty sum: dw = beta dw */
        fst_k_splitk_args z = { ws, 0, cout, K, dw, ldd, beta, 0, c, kh * kw };
        return launch(FST_K_splitk_sum, cout * K, &z);
    }
    /* positions per split: a multiple of the slice, so that splits never share one */
    const int64_t chunk = ((npix + splits - 1) / splits + FST_IG_BK - 1) / FST_IG_BK * FST_IG_BK, used = (npix + chunk - 1) / chunk;
    OWN(x, n * c * h * w * 4); OWN(ws, used * cout * K * 4);
    if (g) OWN(g, ((cout - 1) * ldg + npix) * 2);
    const int64_t mtiles = (cout + 63) / 64, ntiles = (K + 127) / 128;
    fst_k_igemm_wg_args a = { x, geo, g, ldg, cout, K, npix, chunk, mtiles, ntiles, ws, cfast, src, lds, seg, coeff, shift, circular, sseg, gather };
    int rc = launch_blocks_op(FST_K_igemm_wg, mtiles * ntiles * used, &a, conv_sub(kh, kw, cout));
    if (rc) return rc;
    fst_k_splitk_args r = { ws, used, cout, K, dw, ldd, beta, cfast, c, kh * kw };
    return launch(FST_K_splitk_sum, cout * K, &r);
}

int fst_cuda_wflip16(const float *w, int64_t cout, int64_t cin, int64_t kh, int64_t kw, uint16_t *dst, int64_t ldd, int cfast) {
    READY();
    NUL(!w || !dst);
    BAD(cout <= 0 || cin <= 0 || kh <= 0 || kw <= 0 || ldd < cout * kh * kw || (cfast != 0 && cfast != 1));
    OWN(w, cout * cin * kh * kw * 4); OWN(dst, ((cin - 1) * ldd + cout * kh * kw) * 2);
    fst_k_wflip16_args a = { w, cout, cin, kh, kw, dst, ldd, cfast };
    return launch(FST_K_wflip16, cin * cout * kh * kw, &a);
}

int fst_cuda_wtap16(const float *w, int64_t cout, int64_t cin, int64_t khw, uint16_t *dst, int64_t ldd) {
    READY();
    NUL(!w || !dst);
    BAD(cout <= 0 || cin <= 0 || khw <= 0 || ldd < cin * khw);
    OWN(w, cout * cin * khw * 4); OWN(dst, ((cout - 1) * ldd + cin * khw) * 2);
    fst_k_wtap16_args a = { w, cout, cin, khw, dst, ldd };
    return launch(FST_K_wtap16, cout * cin * khw, &a);
}

/* ======================= block kernels ======================= */


int fst_cuda_block_selftest(const float *in, float *out, const uint16_t *a, const uint16_t *bt, float *d, int64_t blocks, int mode,
                            const uint16_t *sa, const uint32_t *sm, const uint16_t *sbt, float *sd) {
    READY();
    NUL(!in || !out || !a || !bt || !d || !sa || !sm || !sbt || !sd);
    BAD(blocks < 0 || mode < 0 || mode > 3);
    if (mode != 0 && !fst_backend_emulated()) {
        snprintf(fst_cuda_err, sizeof fst_cuda_err, "%s: mode %d breaks the barrier rules on purpose: emulator only", fn, mode);
        return FST_EINVAL;
    }
    if (blocks == 0) return FST_OK;
    const int64_t T = FST_SELFTEST_T;
    OWN(in, blocks * T * 4); OWN(out, blocks * 3 * T * 4); OWN(a, blocks * 256 * 2); OWN(bt, blocks * 128 * 2); OWN(d, blocks * 128 * 4);
    OWN(sa, blocks * 256 * 2); OWN(sm, blocks * 16 * 4); OWN(sbt, blocks * 256 * 2); OWN(sd, blocks * 128 * 4);
    fst_k_selftest_args k = { in, out, a, bt, d, mode, sa, sm, sbt, sd };
    return launch_blocks(FST_K_selftest, blocks, &k);
}

int fst_cuda_wgmma_probe(const uint16_t *a, const uint16_t *bt, float *d, int64_t lbo, int64_t sbo, int64_t blocks, int *ok,
                         const uint32_t *meta) {
    return fst_cuda_wgmma_probe_t(a, bt, d, lbo, sbo, blocks, ok, meta, 0);
}

int fst_cuda_wgmma_probe_t(const uint16_t *a, const uint16_t *bt, float *d, int64_t lbo, int64_t sbo, int64_t blocks, int *ok,
                           const uint32_t *meta, int transb) {
    READY();
    NUL(!a || !bt || !d || !ok);
    BAD(transb < 0 || transb > 2 || (transb && meta));
    const int kc = meta ? 4 : 2;   /* B's core matrices along K (A has 2) */
    BAD(blocks < 0 || lbo < 0 || sbo < 0 || lbo % 16 || sbo % 16 || lbo > 0x3fff * 16 || sbo > 0x3fff * 16 ||
        7 * sbo + (kc - 1) * lbo + 128 > FST_WG_BOFF);
    for (int i = 0; i < 8 * kc; i++)   /* an operand's core matrices (8 row groups x kc along K) must not overlap */
        for (int j = 0; j < i; j++) {
            const int64_t oi = (i / kc) * sbo + (i % kc) * lbo, oj = (j / kc) * sbo + (j % kc) * lbo;
            BAD(oi - oj < 128 && oj - oi < 128);
        }
    if (blocks == 0) return FST_OK;
    OWN(a, blocks * 1024 * 2); OWN(bt, blocks * 64 * 8 * kc * 2); OWN(d, blocks * 4096 * 4); OWN(ok, blocks * 4);
    if (meta) OWN(meta, blocks * 64 * 4);
    fst_k_wgprobe_args k = { a, bt, d, lbo, sbo, ok, meta, transb };
    return launch_blocks(FST_K_wgprobe, blocks, &k);
}

/* The 128-row warpgroup tile's pipeline: 0 (wggemm2: the next K slice in registers, two shared-memory stages) or 1 (wggemm3:
 * three stages filled by cp.async). FST4J_CUDA_WG_ASYNC=0 or 1 (read on first use) or fst_cuda_wg_async(0 / 1) sets it;
 * -1 only asks. Returns the previous setting. */
static int wg_async = -1;   /* atomic, as igemm_tile */
int fst_cuda_wg_async(int mode) {
    if (__atomic_load_n(&wg_async, __ATOMIC_RELAXED) < 0) {
        const char *e = getenv("FST4J_CUDA_WG_ASYNC");
        int unset = -1;
        __atomic_compare_exchange_n(&wg_async, &unset, e && atoi(e) == 1, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    }
    if (mode == 0 || mode == 1) return __atomic_exchange_n(&wg_async, mode, __ATOMIC_RELAXED);
    return __atomic_load_n(&wg_async, __ATOMIC_RELAXED);
}
static int wg_kernel(int rows) { return rows == 64 ? FST_K_wggemm : fst_cuda_wg_async(-1) ? FST_K_wggemm3 : FST_K_wggemm2; }

int fst_cuda_wggemm(const uint16_t *a, int64_t lda, const uint16_t *bt, int64_t ldb, float *c, int64_t ldc, int64_t m, int64_t n,
                    int64_t k, float alpha, float beta, const uint32_t *meta, int64_t ldm, int *ok, int rows) {
    READY();
    NUL(!a || !bt || !c || !ok);
    BAD(rows != 64 && rows != 128);
    const int64_t bk = rows == 64 ? 64 : 32;   /* the tile's K slice */
    BAD(m < 0 || n < 0 || k < 0 || m % rows || n % FST_WGG_BN || k % bk);
    BAD(lda < (meta ? k / 2 : k) || ldb < k || ldc < n || (meta && ldm < k / 32) || lda % 8 || ldb % 8);
    BAD(((uintptr_t)a & 15) || ((uintptr_t)bt & 15));
    if (m == 0 || n == 0) return FST_OK;
    BAD(k == 0);
    OWN(a, ((m - 1) * lda + (meta ? k / 2 : k)) * 2); OWN(bt, ((n - 1) * ldb + k) * 2); OWN(c, ((m - 1) * ldc + n) * 4); OWN(ok, 4);
    if (meta) OWN(meta, ((m - 1) * ldm + k / 32) * 4);
    fst_k_wggemm_args g = { a, lda, bt, ldb, c, ldc, m, n, k, n / FST_WGG_BN, alpha, beta, meta, ldm, ok, NULL, {0}, 0 };
    return launch_blocks(wg_kernel(rows), (m / rows) * (n / FST_WGG_BN), &g);
}

int fst_cuda_nhwc16(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, uint16_t *out) {
    READY();
    NUL(!x || !out);
    BAD(n < 0 || c < 0 || h < 0 || w < 0);
    const int64_t total = n * c * h * w;
    if (total == 0) return FST_OK;
    OWN(x, total * 4); OWN(out, total * 2);
    fst_k_nhwc16_args a = { x, n, c, h, w, out };
    return launch(FST_K_nhwc16, total, &a);
}

int fst_cuda_wgconv(const uint16_t *xh, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                    int64_t ph, int64_t pw, int64_t ho, int64_t wo, const uint16_t *wt, int64_t ldw, int64_t cout, float *y,
                    float beta, const uint32_t *meta, int64_t ldm, int *ok, int rows) {
    READY();
    NUL(!xh || !wt || !y || !ok);
    BAD(rows != 64 && rows != 128);
    const int64_t bk = rows == 64 ? 64 : 32, K = kh * kw * c;
    BAD(n < 0 || c <= 0 || h <= 0 || w <= 0 || kh <= 0 || kw <= 0 || sh <= 0 || sw <= 0 || ph < 0 || pw < 0);
    BAD(ho != (h + 2 * ph - kh) / sh + 1 || wo != (w + 2 * pw - kw) / sw + 1 || ho <= 0 || wo <= 0);
    BAD(c % bk || cout <= 0 || cout % rows || ldw % 8 || ldw < (meta ? K / 2 : K) || (meta && ldm < K / 32));
    BAD(((uintptr_t)xh & 15) || ((uintptr_t)wt & 15));
    const int64_t npos = n * ho * wo;
    if (npos == 0) return FST_OK;
    OWN(xh, n * h * w * c * 2); OWN(wt, ((cout - 1) * ldw + (meta ? K / 2 : K)) * 2); OWN(y, n * cout * ho * wo * 4); OWN(ok, 4);
    if (meta) OWN(meta, ((cout - 1) * ldm + K / 32) * 4);
    const int64_t ntiles = (npos + FST_WGG_BN - 1) / FST_WGG_BN;
    fst_geom g = { n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo };
    fst_k_wggemm_args a = { wt, ldw, NULL, 0, y, 0, cout, ntiles * FST_WGG_BN, K, ntiles, 1.0f, beta, meta, ldm, ok, xh, g, npos };
    return launch_blocks(wg_kernel(rows), (cout / rows) * ntiles, &a);
}

int fst_cuda_conv_igemm(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh,
                        int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo, const uint16_t *wt, int64_t ldw,
                        int64_t cout, float *y, int cfast) {
    READY();
    fst_geom g = { n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo };
    NUL(!x || !wt || !y);
    GEOM(g);
    const int64_t K = c * kh * kw, npix = n * ho * wo;
    BAD(cout <= 0 || ldw < K);
    BAD(c * h * w >= ((int64_t)1 << 31) || K >= ((int64_t)1 << 31));   /* the kernel's 32-bit index math inside an image */
    if (n == 0) return FST_OK;
    OWN(x, n * c * h * w * 4); OWN(wt, ((cout - 1) * ldw + K) * 2); OWN(y, npix * cout * 4);
    const int m128 = igemm_m128(cout);
    const int64_t bm = m128 ? 128 : 64, bn = m128 ? 64 : 128, mtiles = (cout + bm - 1) / bm, ntiles = (npix + bn - 1) / bn;
    BAD(cfast != 0 && cfast != 1);
    fst_k_igemm_args a = { x, g, wt, ldw, cout, K, npix, mtiles, y, cfast };
    return launch_blocks_op(m128 ? FST_K_igemm_m128 : FST_K_igemm, mtiles * ntiles, &a, conv_sub(kh, kw, cout));
}

int fst_cuda_by_channel(const float *src, int64_t imgs, int64_t rows, int64_t plane, float *dst, uint16_t *dst16) {
    READY();
    BAD(rows < 0 || imgs < 0 || plane < 0);
    if (rows == 0 || imgs == 0 || plane == 0) return FST_OK;
    NUL(!src || !dst);
    const int64_t n = imgs * rows * plane;
    OWN(src, n * 4); OWN(dst, n * 4);
    if (dst16) OWN(dst16, n * 2);
    fst_k_by_channel_args a = { src, dst, dst16, imgs, rows, plane };
    if (by_four(plane, src, dst, dst16, NULL)) return launch(FST_K_by_channel4, n / 4, &a);
    return launch(FST_K_by_channel, n, &a);
}

int fst_cuda_bf16_unpad(const uint16_t *src, int64_t ld, float *dst, int64_t rows, int64_t cols) {
    READY();
    BAD(rows < 0 || cols < 0 || ld < cols);
    if (rows == 0 || cols == 0) return FST_OK;
    NUL(!src || !dst);
    OWN(src, ((rows - 1) * ld + cols) * 2);
    OWN(dst, rows * cols * 4);
    fst_k_bf16_unpad_args a = { src, ld, dst, rows, cols };
    return launch(FST_K_bf16_unpad, rows * ((cols + FST_UNPAD_RUN - 1) / FST_UNPAD_RUN), &a);
}

/* ======================= elementwise ======================= */

/* Copies a host shape / strides of rank <= FST_MAXRANK; n = element count; extent = elements spanned by strides. */
static int layout(const char *fn, int rank, const int64_t *shape, const int64_t *st, int64_t dshape[], int64_t dst[],
                  int64_t *n, int64_t *extent) {
    BAD(rank < 0 || rank > FST_MAXRANK);
    NUL(rank > 0 && !shape);
    int64_t count = 1, span = 1;
    for (int d = 0; d < rank; d++) {
        BAD(shape[d] < 0);
        if (dshape) dshape[d] = shape[d];
        count *= shape[d];
        if (st) {
            BAD(st[d] < 0);
            dst[d] = st[d];
            if (shape[d] > 0) span += (shape[d] - 1) * st[d];
        }
    }
    *n = count;
    if (extent) *extent = span;
    return FST_OK;
}
#define LAYOUT(rank, shape, st, dshape, dst, n, extent) do { int rc_ = layout(fn, rank, shape, st, dshape, dst, n, extent); if (rc_) return rc_; } while (0)

/* Merges the dimensions an elementwise kernel walks: size-1 dimensions dropped, and dimension d folded into the one
 * before it where every operand steps through the pair as through one (s[prev] == s[d] * shape[d]). The kernel then
 * pays one index division per merged dimension (none at rank 1, a contiguous operand): the same elements in the same
 * order, so the same results. s2 may be NULL. Returns the new rank (0 when every dimension is 1). */
static int coalesce(int rank, int64_t *shape, int64_t *s1, int64_t *s2) {
    int r = 0;
    for (int d = 0; d < rank; d++) {
        if (shape[d] == 1) continue;
        if (r > 0 && s1[r - 1] == s1[d] * shape[d] && (!s2 || s2[r - 1] == s2[d] * shape[d])) {
            shape[r - 1] *= shape[d]; s1[r - 1] = s1[d]; if (s2) s2[r - 1] = s2[d];
        } else {
            shape[r] = shape[d]; s1[r] = s1[d]; if (s2) s2[r] = s2[d];
            r++;
        }
    }
    return r;
}


/* The ops added with the math and loss ops (FST_BIN_POW on) write a fresh output: none of their inputs may overlap it.
 * (The older ops keep their contract: add may write into its own first operand, element by element.) */
static int binary_ops(const char *fn, int op, double s, int rank, const int64_t *shape, const float *a, const int64_t *sa,
                      const float *b, const int64_t *sb, float *out) {
    BAD(op < 0 || op >= FST_BIN_N);
    BAD(op == FST_BIN_SMOOTH_L1_BWD && !(s >= 0 && !isinf(s)));
    NUL(rank > 0 && (!sa || !sb));
    fst_k_binary_args k;
    memset(&k, 0, sizeof k);
    int64_t n, ea, eb;
    LAYOUT(rank, shape, sa, k.shape, k.sa, &n, &ea);
    LAYOUT(rank, shape, sb, NULL, k.sb, &n, &eb);
    if (n == 0) return FST_OK;
    NUL(!a || !b || !out);
    OWN(a, ea * 4); OWN(b, eb * 4); OWN(out, n * 4);
    BAD(op >= FST_BIN_POW && (fst_overlap(out, n * 4, a, ea * 4) || fst_overlap(out, n * 4, b, eb * 4)));   /* overlap */
    k.a = a; k.b = b; k.out = out; k.n = n; k.op = op; k.s = s; k.rank = coalesce(rank, k.shape, k.sa, k.sb);
    static const char *const ops[FST_BIN_N] = { "add", "sub", "mul", "div", "relu_bwd", "add_relu", "pow", "max", "min", "gt", "ge",
                                                "lt", "le", "eq", "sigmoid_bwd", "tanh_bwd", "mask", "mask_not", "bce_lin", "smooth_l1_bwd",
                                                "sin_bwd", "cos_bwd", "log1p_bwd", "expm1_bwd" };
    /* four elements per thread: both operands one contiguous run, and out either one of them or apart from both */
    const int run = k.rank == 1 && k.sa[0] == 1 && k.sb[0] == 1;
    if (run && by_four(n, a, b, out, NULL) && (out == a || !fst_overlap(out, n * 4, a, n * 4)) && (out == b || !fst_overlap(out, n * 4, b, n * 4)))
        return launch_op(FST_K_binary4, n / 4, &k, ops[op]);
    return launch_op(FST_K_binary, n, &k, ops[op]);
}

int fst_cuda_binary(int op, int rank, const int64_t *shape, const float *a, const int64_t *sa, const float *b, const int64_t *sb, float *out) {
    READY();
    return binary_ops(fn, op, 0, rank, shape, a, sa, b, sb, out);
}

int fst_cuda_binary_s(int op, double s, int rank, const int64_t *shape, const float *a, const int64_t *sa, const float *b, const int64_t *sb,
                      float *out) {
    READY();
    return binary_ops(fn, op, s, rank, shape, a, sa, b, sb, out);
}

int fst_cuda_where(int rank, const int64_t *shape, const float *c, const int64_t *sc, const float *a, const int64_t *sa, const float *b,
                   const int64_t *sb, float *out) {
    READY();
    NUL(rank > 0 && (!sc || !sa || !sb));
    fst_k_where_args k;
    memset(&k, 0, sizeof k);
    int64_t n, ec, ea, eb;
    LAYOUT(rank, shape, sc, k.shape, k.sc, &n, &ec);
    LAYOUT(rank, shape, sa, NULL, k.sa, &n, &ea);
    LAYOUT(rank, shape, sb, NULL, k.sb, &n, &eb);
    if (n == 0) return FST_OK;
    NUL(!c || !a || !b || !out);
    OWN(c, ec * 4); OWN(a, ea * 4); OWN(b, eb * 4); OWN(out, n * 4);
    BAD(fst_overlap(out, n * 4, c, ec * 4) || fst_overlap(out, n * 4, a, ea * 4) || fst_overlap(out, n * 4, b, eb * 4));   /* overlap */
    /* dimensions merged as coalesce does, over three operands */
    int r = 0;
    for (int d = 0; d < rank; d++) {
        if (k.shape[d] == 1) continue;
        if (r > 0 && k.sc[r - 1] == k.sc[d] * k.shape[d] && k.sa[r - 1] == k.sa[d] * k.shape[d] && k.sb[r - 1] == k.sb[d] * k.shape[d]) {
            k.shape[r - 1] *= k.shape[d]; k.sc[r - 1] = k.sc[d]; k.sa[r - 1] = k.sa[d]; k.sb[r - 1] = k.sb[d];
        } else {
            k.shape[r] = k.shape[d]; k.sc[r] = k.sc[d]; k.sa[r] = k.sa[d]; k.sb[r] = k.sb[d];
            r++;
        }
    }
    k.c = c; k.a = a; k.b = b; k.out = out; k.n = n; k.rank = r;
    return launch(FST_K_where, n, &k);
}

int fst_cuda_unary(int op, double s, int rank, const int64_t *shape, const float *x, const int64_t *sx, float *y) {
    READY();
    BAD(op < 0 || op >= FST_UN_N);
    const int fill = op == FST_UN_FILL;
    NUL(rank > 0 && !fill && !sx);
    fst_k_unary_args k;
    memset(&k, 0, sizeof k);
    int64_t n, ex = 0;
    LAYOUT(rank, shape, fill ? NULL : sx, k.shape, k.sx, &n, &ex);
    if (n == 0) return FST_OK;
    NUL(!y || (!fill && !x));
    if (!fill) OWN(x, ex * 4);
    OWN(y, n * 4);
    BAD(op >= FST_UN_EXP && fst_overlap(y, n * 4, x, ex * 4));   /* overlap (the math and loss ops write a fresh output) */
    BAD(op == FST_UN_SMOOTH_L1 && !(s >= 0 && !isinf(s)));
    k.x = fill ? NULL : x; k.y = y; k.n = n; k.s = s; k.op = op; k.rank = fill ? 0 : coalesce(rank, k.shape, k.sx, NULL);
    static const char *const ops[FST_UN_N] = { "copy", "relu", "neg", "abs", "add_scalar", "mul_scalar", "fill", "exp", "log", "sqrt", "pow",
                                               "sigmoid", "tanh", "rsub_scalar", "softplus_neg", "sigmoid_neg", "smooth_l1",
                                               "sin", "cos", "log1p", "expm1" };
    /* for the profile: a copy that permutes or gathers is told apart from a flat one (merged, a flat one is one run) */
    const int dense = k.rank == 0 || (k.rank == 1 && k.sx[0] == 1);
    if (op == FST_UN_COPY && k.rank >= 1 && k.sx[k.rank - 1] == 1 && k.shape[k.rank - 1] % 4 == 0
        && ((uintptr_t)x | (uintptr_t)y) % 16 == 0) {   /* the 4-wide copy: innermost run contiguous, 16-byte aligned */
        int ok4 = 1;
        for (int d = 0; d < k.rank - 1; d++) ok4 &= k.sx[d] % 4 == 0;
        if (ok4) return launch_op(FST_K_copy4, n / 4, &k, dense ? "copy4" : "copy4_strided");
    }
    return launch_op(FST_K_unary, n, &k, op == FST_UN_COPY && !dense ? "copy_strided" : ops[op]);
}

/* Lanes along an axis (autograd's cumsum and prod, fst4j.tensor.Lanes): a fresh output, refused where it overlaps an input */
int fst_cuda_lanes(int op, const float *x, const float *g, int64_t outer, int64_t n, int64_t inner, float *out) {
    READY();
    BAD(op < 0 || op >= FST_LANE_N);
    BAD(outer < 0 || n < 0 || inner < 0);
    BAD(outer > 0 && inner > INT64_MAX / 4 / outer);
    BAD(outer > 0 && inner > 0 && n > INT64_MAX / 4 / (outer * inner));   /* no byte size wraps past OWN's check */
    const int bwd = op == FST_LANE_PROD_BWD, reduce = op == FST_LANE_PROD;
    const int64_t lanes = outer * inner, all = lanes * n, outs = reduce ? lanes : all;
    if (lanes == 0) return FST_OK;
    NUL(!out || (n > 0 && !x) || (bwd && !g));
    if (n > 0) OWN(x, all * 4);
    if (bwd) OWN(g, lanes * 4);
    if (outs > 0) OWN(out, outs * 4);
    BAD(fst_overlap(out, outs * 4, x, all * 4) || (bwd && fst_overlap(out, outs * 4, g, lanes * 4)));   /* overlap */
    fst_k_lanes_args a = { x, bwd ? g : NULL, out, outer, n, inner, op };
    static const char *const ops[FST_LANE_N] = { "cumsum", "cumsum_rev", "prod", "prod_bwd" };
    return launch_op(FST_K_lanes, lanes, &a, ops[op]);
}

/* Sorting along an axis (autograd's Sort through fst4j.tensor.LineSort): the bitonic network over (key, position) pairs
 * (fst4j_kargs.h), whole chunks in shared memory and one launch per global step beyond; then the selection. keys is
 * the caller's scratch of lines * P pairs (P = n rounded up to a power of two: fst_cuda_sort_pairs); src may be NULL
 * (no backward). The outputs are fresh: none may overlap x, the keys or each other. */
int64_t fst_cuda_sort_pairs(int64_t n) {
    if (n < 1 || n > (1 << 24)) return -1;
    int64_t P = 1;
    while (P < n) P <<= 1;
    return P;
}

int fst_cuda_sort(const float *x, int64_t outer, int64_t n, int64_t inner, int descending, int64_t start, int median, int64_t count,
                  uint64_t *keys, float *values, float *indices, int32_t *src) {
    READY();
    BAD(outer < 0 || inner < 0 || n < 1 || n > (1 << 24));   /* positions are exact float32 values and 32-bit in a pair */
    BAD(descending != 0 && descending != 1);
    BAD(median != 0 && median != 1);
    BAD(median && (descending || count != 1));
    BAD(count < 0 || count > n || start < 0 || start > n - count);
    BAD(outer > 0 && inner > INT32_MAX / outer);
    BAD(outer > 0 && inner > 0 && n > INT32_MAX / (outer * inner));   /* src holds int32 flat offsets into x */
    const int64_t lines = outer * inner, P = fst_cuda_sort_pairs(n), outs = lines * count;
    if (lines == 0) return FST_OK;
    BAD(lines > INT64_MAX / 8 / P);
    NUL(!x || !keys || (outs > 0 && (!values || !indices)));
    OWN(x, lines * n * 4);
    OWN(keys, lines * P * 8);
    if (outs > 0) { OWN(values, outs * 4); OWN(indices, outs * 4); if (src) OWN(src, outs * 4); }
    BAD(fst_overlap(keys, lines * P * 8, x, lines * n * 4) || fst_overlap(values, outs * 4, x, lines * n * 4) ||
        fst_overlap(indices, outs * 4, x, lines * n * 4) || fst_overlap(src, outs * 4, x, lines * n * 4) ||
        fst_overlap(values, outs * 4, keys, lines * P * 8) || fst_overlap(indices, outs * 4, keys, lines * P * 8) ||
        fst_overlap(src, outs * 4, keys, lines * P * 8) || fst_overlap(values, outs * 4, indices, outs * 4) ||
        fst_overlap(src, outs * 4, values, outs * 4) || fst_overlap(src, outs * 4, indices, outs * 4));   /* overlap */
    fst_k_sort_args a = { x, keys, values, indices, src, outer, n, inner, P, count, start, 0, 0, 0, 0, lines * P, descending, median };
    int rc = launch_op(FST_K_sort_keys, a.total, &a, "keys");
    const int64_t C = FST_SORT_CHUNK, chunks = (a.total + C - 1) / C;
    if (rc == FST_OK && P > 1) {
        a.kmin = 2; a.kmax = P < C ? P : C;
        rc = launch_blocks_op(FST_K_sort_chunk, chunks, &a, "chunk");
    }
    for (int64_t k = 2 * C; rc == FST_OK && k <= P; k <<= 1) {
        for (int64_t j = k / 2; rc == FST_OK && j >= C; j >>= 1) {
            a.k = k; a.j = j;
            rc = launch_op(FST_K_sort_stage, a.total / 2, &a, "stage");
        }
        a.kmin = a.kmax = k;
        if (rc == FST_OK) rc = launch_blocks_op(FST_K_sort_chunk, chunks, &a, "chunk");
    }
    if (rc == FST_OK) rc = launch_op(FST_K_sort_select, outs, &a, median ? "median" : "select");
    return rc;
}

/* the values' gradient: dx [numel] (zero-filled by the caller) gets g[i] at src[i], i < m */
int fst_cuda_sort_scatter(const float *g, const int32_t *src, int64_t m, float *dx, int64_t numel) {
    READY();
    BAD(m < 0 || numel < 0 || m > numel);   /* each source at most once */
    if (m == 0) return FST_OK;
    NUL(!g || !src || !dx);
    OWN(g, m * 4); OWN(src, m * 4); OWN(dx, numel * 4);
    BAD(fst_overlap(dx, numel * 4, g, m * 4) || fst_overlap(dx, numel * 4, src, m * 4));   /* overlap */
    fst_k_sort_scatter_args a = { g, src, dx, m, numel };
    return launch(FST_K_sort_scatter, m, &a);
}

/* ======================= activations (fst4j.tensor.Activation) ======================= */

/* The parameters an op reads must be numbers it can use (Activation refuses the same before calling). */
static int act_params(const char *fn, int fwd, int op, double s0, double s1) {
    const int leaky = fwd ? op == FST_ACT_LEAKY_RELU : op == FST_ACTB_LEAKY_RELU, elu = fwd ? op == FST_ACT_ELU : op == FST_ACTB_ELU;
    const int softplus = fwd ? op == FST_ACT_SOFTPLUS : op == FST_ACTB_SOFTPLUS;
    const int bounds = fwd ? op == FST_ACT_CLAMP : op == FST_ACTB_CLAMP || op == FST_ACTB_HARDTANH;
    BAD((leaky || elu) && !isfinite(s0));                       /* slope / alpha */
    BAD(softplus && (!isfinite(s0) || s0 == 0 || isnan(s1)));  /* beta, threshold */
    BAD(bounds && (isnan(s0) || isnan(s1)));                   /* min, max */
    BAD(!fwd && op == FST_ACTB_HARDTANH && s0 > s1);
    return FST_OK;
}

int fst_cuda_act(int op, double s0, double s1, int rank, const int64_t *shape, const float *x, const int64_t *sx, float *y) {
    READY();
    BAD(op < 0 || op >= FST_ACT_N);
    int rc = act_params(fn, 1, op, s0, s1);
    if (rc) return rc;
    NUL(rank > 0 && !sx);
    fst_k_act_args k;
    memset(&k, 0, sizeof k);
    int64_t n, ex = 0;
    LAYOUT(rank, shape, sx, k.shape, k.sx, &n, &ex);
    if (n == 0) return FST_OK;
    NUL(!x || !y);
    OWN(x, ex * 4); OWN(y, n * 4);
    BAD(fst_overlap(y, n * 4, x, ex * 4));   /* overlap: a fresh output */
    k.x = x; k.y = y; k.n = n; k.s0 = s0; k.s1 = s1; k.op = op; k.rank = coalesce(rank, k.shape, k.sx, NULL);
    static const char *const ops[FST_ACT_N] = { "gelu", "gelu_tanh", "silu", "mish", "leaky_relu", "elu", "softplus", "clamp" };
    return launch_op(FST_K_act, n, &k, ops[op]);
}

int fst_cuda_act_bwd(int op, double s0, double s1, int rank, const int64_t *shape, const float *a, const int64_t *sa, const float *b,
                     const int64_t *sb, float *out) {
    READY();
    BAD(op < 0 || op >= FST_ACTB_N);
    int rc = act_params(fn, 0, op, s0, s1);
    if (rc) return rc;
    NUL(rank > 0 && (!sa || !sb));
    fst_k_act_bwd_args k;
    memset(&k, 0, sizeof k);
    int64_t n, ea, eb;
    LAYOUT(rank, shape, sa, k.shape, k.sa, &n, &ea);
    LAYOUT(rank, shape, sb, NULL, k.sb, &n, &eb);
    if (n == 0) return FST_OK;
    NUL(!a || !b || !out);
    OWN(a, ea * 4); OWN(b, eb * 4); OWN(out, n * 4);
    BAD(fst_overlap(out, n * 4, a, ea * 4) || fst_overlap(out, n * 4, b, eb * 4));   /* overlap: a fresh output */
    k.a = a; k.b = b; k.out = out; k.n = n; k.s0 = s0; k.s1 = s1; k.op = op; k.rank = coalesce(rank, k.shape, k.sa, k.sb);
    static const char *const ops[FST_ACTB_N] = { "gelu_bwd", "gelu_tanh_bwd", "silu_bwd", "mish_bwd", "leaky_relu_bwd", "elu_bwd", "softplus_bwd",
                                                 "hardtanh_bwd", "clamp_bwd", "abs_bwd", "max_share", "min_share", "mul_share" };
    return launch_op(FST_K_act_bwd, n, &k, ops[op]);
}

/* ======================= reductions ======================= */

int fst_cuda_sum(const float *x, int krank, const int64_t *kshape, const int64_t *kstride, int rrank, const int64_t *rshape,
                 const int64_t *rstride, int mean, float *out, double *work) {
    READY();
    NUL((krank > 0 && !kstride) || (rrank > 0 && !rstride));
    fst_k_sum_args k;
    memset(&k, 0, sizeof k);
    int64_t nout, nred, ek, er;
    LAYOUT(krank, kshape, kstride, k.kshape, k.kstride, &nout, &ek);
    LAYOUT(rrank, rshape, rstride, k.rshape, k.rstride, &nred, &er);
    if (nout == 0) return FST_OK;
    NUL(!out || (nred > 0 && !x));
    if (nred > 0) OWN(x, (ek + er - 1) * 4);
    OWN(out, nout * 4);
    k.x = x; k.out = out; k.nout = nout; k.nred = nred; k.krank = krank; k.rrank = rrank; k.mean = mean != 0;
    if (!work || nred <= FST_PARTS) return launch(FST_K_sum, nout, &k);   /* short: one thread per output, the CPU's order */
    OWN(work, nout * FST_PARTS * 8);
    k.work = work;
    int rc = launch(FST_K_sum_part, nout * FST_PARTS, &k);
    return rc ? rc : launch(FST_K_sum, nout, &k);
}

/* The kept / reduced layout of a reduction (as fst_cuda_sum's), checked; x's extent in ex */
#define REDUCE_LAYOUT(k, nout, nred, ex) do {                                                            \
    NUL((krank > 0 && !kstride) || (rrank > 0 && !rstride));                                             \
    int64_t ek_, er_;                                                                                    \
    LAYOUT(krank, kshape, kstride, (k).kshape, (k).kstride, &(nout), &ek_);                              \
    LAYOUT(rrank, rshape, rstride, (k).rshape, (k).rstride, &(nred), &er_);                              \
    (ex) = ek_ + er_ - 1;                                                                                \
    (k).krank = krank; (k).rrank = rrank;                                                                \
} while (0)

int fst_cuda_argmax(const float *x, int krank, const int64_t *kshape, const int64_t *kstride, int rrank, const int64_t *rshape,
                    const int64_t *rstride, int last_nan, float *out, float *arg, double *work, int64_t *iwork) {
    READY();
    fst_k_argmax_args k;
    memset(&k, 0, sizeof k);
    int64_t nout, nred, ex;
    REDUCE_LAYOUT(k, nout, nred, ex);
    if (nout == 0) return FST_OK;
    BAD(nred == 0);   /* the maximum of no values (Reduce refuses it) */
    NUL(!x || (!out && !arg));
    OWN(x, ex * 4);
    if (out) OWN(out, nout * 4);
    if (arg) OWN(arg, nout * 4);
    BAD(fst_overlap(out, nout * 4, x, ex * 4) || fst_overlap(arg, nout * 4, x, ex * 4) || fst_overlap(out, nout * 4, arg, nout * 4));   /* overlap */
    k.x = x; k.out = out; k.arg = arg; k.nout = nout; k.nred = nred; k.last_nan = last_nan != 0;
    if (!work || nred <= FST_PARTS) return launch(FST_K_argmax, nout, &k);   /* short: one thread per output */
    NUL(!iwork);
    OWN(work, nout * FST_PARTS * 8); OWN(iwork, nout * FST_PARTS * 8);
    BAD(fst_overlap(work, nout * FST_PARTS * 8, iwork, nout * FST_PARTS * 8));   /* overlap */
    k.work = work; k.iwork = iwork;
    int rc = launch(FST_K_argmax_part, nout * FST_PARTS, &k);
    return rc ? rc : launch(FST_K_argmax, nout, &k);
}

int fst_cuda_var(const float *x, int krank, const int64_t *kshape, const int64_t *kstride, int rrank, const int64_t *rshape,
                 const int64_t *rstride, int64_t correction, float *out, double *work) {
    READY();
    fst_k_var_args k;
    memset(&k, 0, sizeof k);
    int64_t nout, nred, ex;
    REDUCE_LAYOUT(k, nout, nred, ex);
    if (nout == 0) return FST_OK;
    NUL(!out || (nred > 0 && !x));
    if (nred > 0) OWN(x, ex * 4);
    OWN(out, nout * 4);
    BAD(nred > 0 && fst_overlap(out, nout * 4, x, ex * 4));   /* overlap */
    BAD(correction < -(INT64_MAX / 2) || correction > INT64_MAX / 2);
    k.x = x; k.out = out; k.nout = nout; k.nred = nred;
    k.denom = nred - correction > 0 ? (double)(nred - correction) : 0.0;   /* Reduce.var: max(0, count - correction) */
    if (!work || nred <= FST_PARTS) return launch(FST_K_var, nout, &k);   /* short: one thread per output, the CPU's order */
    OWN(work, nout * (FST_PARTS + 1) * 8);
    k.work = work;
    int rc = launch(FST_K_var_part, nout * FST_PARTS, &k);
    if (!rc) rc = launch(FST_K_var_mean, nout, &k);
    k.phase = 1;
    if (!rc) rc = launch(FST_K_var_part, nout * FST_PARTS, &k);
    return rc ? rc : launch(FST_K_var, nout, &k);
}

/* ======================= pooling ======================= */

int fst_cuda_maxpool(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                     int64_t ph, int64_t pw, int64_t ho, int64_t wo, float *y, int32_t *idx) {
    READY();
    fst_geom g = { n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo };
    GEOM(g);
    BAD(2 * ph > kh || 2 * pw > kw || h * w > 0x7fffffff);
    if (n == 0) return FST_OK;
    NUL(!x || !y || !idx);
    OWN(x, n * c * h * w * 4); OWN(y, n * c * ho * wo * 4); OWN(idx, n * c * ho * wo * 4);
    fst_k_maxpool_args a = { x, y, idx, g };
    return launch(FST_K_maxpool, n * c * ho * wo, &a);
}

int fst_cuda_maxpool_bwd(const float *dy, const int32_t *idx, int64_t planes, int64_t in_plane, int64_t out_plane, float *dx) {
    READY();
    BAD(planes < 0 || in_plane <= 0 || out_plane < 0 || in_plane > 0x7fffffff);
    if (planes == 0) return FST_OK;
    NUL(!dx || (out_plane > 0 && (!dy || !idx)));
    if (out_plane > 0) { OWN(dy, planes * out_plane * 4); OWN(idx, planes * out_plane * 4); }
    OWN(dx, planes * in_plane * 4);
    fst_k_maxpool_bwd_args a = { dy, idx, dx, planes, in_plane, out_plane };
    return launch(FST_K_maxpool_bwd, planes, &a);
}
int fst_cuda_maxpool_bwd_geom(const float *dy, const int32_t *idx, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                              int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo, float *dx) {
    READY();
    fst_geom g = { n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo };
    GEOM(g);
    BAD(2 * ph > kh || 2 * pw > kw || h * w > 0x7fffffff);
    if (n == 0 || c == 0) return FST_OK;
    NUL(!dx || (ho * wo > 0 && (!dy || !idx)));
    if (ho * wo > 0) { OWN(dy, n * c * ho * wo * 4); OWN(idx, n * c * ho * wo * 4); }
    OWN(dx, n * c * h * w * 4);
    fst_k_maxpool_bwd_gather_args a = { dy, idx, g, dx };
    if (by_four(w, dx, NULL, NULL, NULL)) {   /* four of a row */
        const int k3s2 = kh == 3 && kw == 3 && sh == 2 && sw == 2 && ph == 1 && pw == 1 && ho == (h - 1) / 2 + 1 && wo == (w - 1) / 2 + 1;
        return launch(k3s2 ? FST_K_maxpool_bwd_k3s2 : FST_K_maxpool_bwd_gather4, n * c * h * w / 4, &a);
    }
    return launch(FST_K_maxpool_bwd_gather, n * c * h * w, &a);
}

int fst_cuda_adaptive_avg(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t oh, int64_t ow, float *y) {
    READY();
    BAD(n < 0 || c < 0 || h <= 0 || w <= 0 || oh <= 0 || ow <= 0);
    if (n == 0 || c == 0) return FST_OK;
    NUL(!x || !y);
    OWN(x, n * c * h * w * 4); OWN(y, n * c * oh * ow * 4);
    fst_k_adaptive_avg_args a = { x, y, n, c, h, w, oh, ow };
    return launch(FST_K_adaptive_avg, n * c * oh * ow, &a);
}

int fst_cuda_adaptive_avg_bwd(const float *dy, int64_t n, int64_t c, int64_t h, int64_t w, int64_t oh, int64_t ow, float *dx) {
    READY();
    BAD(n < 0 || c < 0 || h <= 0 || w <= 0 || oh <= 0 || ow <= 0);
    if (n == 0 || c == 0) return FST_OK;
    NUL(!dy || !dx);
    OWN(dy, n * c * oh * ow * 4); OWN(dx, n * c * h * w * 4);
    fst_k_adaptive_avg_bwd_args a = { dy, dx, n, c, h, w, oh, ow };
    return launch(FST_K_adaptive_avg_bwd, n * c * h * w, &a);
}

/* ======================= batch norm ======================= */

int64_t fst_cuda_bn_parts(int64_t c, int64_t m) {
    int64_t p = FST_PARTS;
    while (c > 0 && p < FST_BN_PARTS_MAX && c * p < FST_BN_THREADS && m / (2 * p) >= FST_BN_MIN_RUN) p *= 2;
    return p;
}

/* the per-element pass: four elements of a channel plane per thread where planes and operands allow (bn_apply4,
 * bn_bwd_apply4), else one */
static int bn_elementwise(int k1, int k4, int64_t total, int64_t hw, const void *p0, const void *p1, const void *p2,
                          const void *p3, const void *args) {
    return by_four(hw, p0, p1, p2, p3) ? launch(k4, total / 4, args) : launch(k1, total, args);
}

/* the partial sums: units of four elements (bn_*_part*4) where there are more than FST_PARTS partial sums and planes and
 * operands allow, else single elements */
static int bn_partials(int k1, int k4, int64_t c, int64_t parts, int64_t hw, const void *p0, const void *p1, const void *p2,
                       const void *args) {
    return launch(parts > FST_PARTS && by_four(hw, p0, p1, p2, NULL) ? k4 : k1, c * parts, args);
}

int64_t fst_cuda_bn_work(int64_t c, int64_t m, int backward) { return FST_BN_WORK(c, fst_cuda_bn_parts(c, m), backward ? 2 : 1); }

/* where there are more than FST_PARTS partial sums per channel, fold each row's into FST_BN_FOLD (see fst4j_kargs.h) */
static int bn_fold(double *work, int64_t c, int64_t parts, int64_t rows) {
    if (parts <= FST_PARTS) return FST_OK;
    fst_k_bn_fold_args f = { work + 3 * c, work + 3 * c + rows * c * parts, rows * c, parts };
    return launch(FST_K_bn_fold, rows * c * FST_BN_FOLD, &f);
}

int fst_cuda_bn_train(const float *x, const float *gamma, const float *beta, float *rmean, float *rvar, int64_t n, int64_t c,
                      int64_t hw, double momentum, double eps, float *y, float *mean, float *invstd, double *work, int relu) {
    READY();
    BAD(n <= 0 || c <= 0 || hw <= 0 || !(eps >= 0));
    NUL(!x || !y || !mean || !invstd || !work);
    const int64_t parts = fst_cuda_bn_parts(c, n * hw);
    OWN(x, n * c * hw * 4); OWN(y, n * c * hw * 4); OWN(mean, c * 4); OWN(invstd, c * 4); OWN(work, FST_BN_WORK(c, parts, 1) * 8);
    if (gamma) OWN(gamma, c * 4);
    if (beta) OWN(beta, c * 4);
    if (rmean) OWN(rmean, c * 4);
    if (rvar) OWN(rvar, c * 4);
    fst_k_bn_train_args a = { x, gamma, beta, rmean, rvar, n, c, hw, momentum, eps, y, mean, invstd, work, relu != 0, parts };
    int rc = bn_partials(FST_K_bn_part_sum, FST_K_bn_part_sum4, c, parts, hw, x, NULL, NULL, &a);
    if (!rc) rc = bn_fold(work, c, parts, 1);
    if (!rc) rc = launch(FST_K_bn_mean, c, &a);
    if (!rc) rc = bn_partials(FST_K_bn_part_sq, FST_K_bn_part_sq4, c, parts, hw, x, NULL, NULL, &a);
    if (!rc) rc = bn_fold(work, c, parts, 1);
    if (!rc) rc = launch(FST_K_bn_stats, c, &a);
    return rc ? rc : bn_elementwise(FST_K_bn_apply, FST_K_bn_apply4, n * c * hw, hw, x, y, NULL, NULL, &a);
}

int fst_cuda_bn_apply(const float *x, int64_t n, int64_t c, int64_t hw, const double *work, float *y) {
    READY();
    BAD(n <= 0 || c <= 0 || hw <= 0);
    NUL(!x || !y || !work);
    OWN(x, n * c * hw * 4); OWN(y, n * c * hw * 4); OWN(work, 2 * c * 8);
    fst_k_bn_train_args a;
    memset(&a, 0, sizeof a);
    a.x = x; a.y = y; a.n = n; a.c = c; a.hw = hw; a.work = (double *)work;   /* bn_apply only reads work */
    return bn_elementwise(FST_K_bn_apply, FST_K_bn_apply4, n * c * hw, hw, x, y, NULL, NULL, &a);
}

int fst_cuda_bn_backward(const float *dy, const float *x, const float *gamma, const float *mean, const float *invstd, int64_t n,
                         int64_t c, int64_t hw, float *dx, float *dgamma, float *dbeta, double *work,
                         const float *relu_out) {
    READY();
    BAD(n <= 0 || c <= 0 || hw <= 0);
    NUL(!dy || !x || !mean || !invstd || !dx || !dgamma || !dbeta || !work);
    OWN(dy, n * c * hw * 4); OWN(x, n * c * hw * 4); OWN(dx, n * c * hw * 4);
    const int64_t parts = fst_cuda_bn_parts(c, n * hw);
    OWN(mean, c * 4); OWN(invstd, c * 4); OWN(dgamma, c * 4); OWN(dbeta, c * 4); OWN(work, FST_BN_WORK(c, parts, 2) * 8);
    if (gamma) OWN(gamma, c * 4);
    if (relu_out) OWN(relu_out, n * c * hw * 4);
    fst_k_bn_bwd_args a = { dy, x, gamma, mean, invstd, n, c, hw, dx, dgamma, dbeta, work, relu_out, parts };
    int rc = bn_partials(FST_K_bn_bwd_part, FST_K_bn_bwd_part4, c, parts, hw, dy, x, relu_out, &a);
    if (!rc) rc = bn_fold(work, c, parts, 2);
    if (!rc) rc = launch(FST_K_bn_bwd_stats, c, &a);
    return rc ? rc : bn_elementwise(FST_K_bn_bwd_apply, FST_K_bn_bwd_apply4, n * c * hw, hw, dy, x, dx, relu_out, &a);
}

/* ======================= cuda-gaps: average pool, eval-mode batch norm backward, non-finite check, strided writes =======================
 * (ops that ran only on the CPU before; kept together so that other additions to this file merge around them) */

static int avg_pool_check(const char *fn, const fst_geom *g, int count_pad) {
    GEOM(*g);
    BAD(count_pad != 0 && count_pad != 1);
    BAD(g->kh * g->kw > 0x7fffffff);   /* Pool's int divisor kh*kw */
    return FST_OK;
}

int fst_cuda_avg_pool(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                      int64_t ph, int64_t pw, int64_t ho, int64_t wo, int count_pad, float *y) {
    READY();
    fst_geom g = { n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo };
    int rc = avg_pool_check(fn, &g, count_pad);
    if (rc) return rc;
    if (n == 0) return FST_OK;
    NUL(!x || !y);
    OWN(x, n * c * h * w * 4); OWN(y, n * c * ho * wo * 4);
    BAD(fst_overlap(y, n * c * ho * wo * 4, x, n * c * h * w * 4));   /* overlap */
    fst_k_avg_pool_args a = { x, y, g, count_pad };
    return launch(FST_K_avg_pool, n * c * ho * wo, &a);
}

int fst_cuda_avg_pool_bwd(const float *dy, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                          int64_t ph, int64_t pw, int64_t ho, int64_t wo, int count_pad, float *dx) {
    READY();
    fst_geom g = { n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo };
    int rc = avg_pool_check(fn, &g, count_pad);
    if (rc) return rc;
    if (n == 0) return FST_OK;
    NUL(!dy || !dx);
    OWN(dy, n * c * ho * wo * 4); OWN(dx, n * c * h * w * 4);
    BAD(fst_overlap(dx, n * c * h * w * 4, dy, n * c * ho * wo * 4));   /* overlap */
    fst_k_avg_pool_bwd_args a = { dy, dx, g, count_pad };
    return launch(FST_K_avg_pool_bwd, n * c * h * w, &a);
}

int fst_cuda_bn_eval_backward(const float *dy, const float *x, const float *gamma, const float *rmean, const float *rvar, int64_t n,
                              int64_t c, int64_t hw, double eps, float *dx, float *dgamma, float *dbeta, double *work) {
    READY();
    BAD(n <= 0 || c <= 0 || hw <= 0);
    NUL(!dy || !x || !rmean || !rvar || !dx || !dgamma || !dbeta || !work);
    const int64_t total = n * c * hw, parts = fst_cuda_bn_parts(c, n * hw);
    OWN(dy, total * 4); OWN(x, total * 4); OWN(dx, total * 4);
    OWN(rmean, c * 4); OWN(rvar, c * 4); OWN(dgamma, c * 4); OWN(dbeta, c * 4); OWN(work, FST_BN_WORK(c, parts, 2) * 8);
    if (gamma) OWN(gamma, c * 4);
    /* fresh outputs: dx is written after the sums read dy and x, but an aliased dx would still be a caller's mistake */
    BAD(fst_overlap(dx, total * 4, dy, total * 4) || fst_overlap(dx, total * 4, x, total * 4) || fst_overlap(dgamma, c * 4, dbeta, c * 4));   /* overlap */
    fst_k_bn_eval_bwd_args a = { dy, x, gamma, rmean, rvar, n, c, hw, eps, dx, dgamma, dbeta, work, parts };
    int rc = launch(FST_K_bn_eval_bwd_part, c * parts, &a);
    if (!rc) rc = bn_fold(work, c, parts, 2);
    if (!rc) rc = launch(FST_K_bn_eval_bwd_stats, c, &a);
    return rc ? rc : launch(FST_K_bn_eval_bwd_apply, total, &a);
}

int fst_cuda_nonfinite(int rank, const int64_t *shape, const void *x, const int64_t *sx, int f64, int32_t *flags) {
    READY();
    BAD(f64 != 0 && f64 != 1);
    NUL(rank > 0 && !sx);
    fst_k_nonfinite_args k;
    memset(&k, 0, sizeof k);
    int64_t n, ex;
    LAYOUT(rank, shape, sx, k.shape, k.sx, &n, &ex);
    NUL(!flags || (n > 0 && !x));
    /* about 256 elements per part, at most FST_NONFINITE_PARTS parts (one thread then reads their flags) */
    int64_t parts = (n + FST_PARTS - 1) / FST_PARTS;
    if (parts < 1) parts = 1;
    if (parts > FST_NONFINITE_PARTS) parts = FST_NONFINITE_PARTS;
    OWN(flags, (1 + parts) * 4);
    if (n > 0) OWN(x, ex * (f64 ? 8 : 4));
    BAD(n > 0 && fst_overlap(flags, (1 + parts) * 4, x, ex * (f64 ? 8 : 4)));   /* overlap */
    k.x = x; k.n = n; k.parts = parts; k.f64 = f64; k.flags = flags; k.rank = coalesce(rank, k.shape, k.sx, NULL);
    int rc = launch(FST_K_nonfinite_part, parts, &k);
    return rc ? rc : launch(FST_K_nonfinite_any, 1, &k);
}

/* Whether no two elements of [shape] under strides st share an address: taken by ascending stride, each stride is at
 * least the extent of the dimensions before it. Sufficient, not necessary: a layout it cannot prove disjoint (an
 * asStrided view whose rows overlap, or interleaved strides) is written serially. */
static int disjoint(int rank, const int64_t *shape, const int64_t *st) {
    int64_t s[FST_MAXRANK], e[FST_MAXRANK];
    int m = 0;
    for (int d = 0; d < rank; d++) {
        if (shape[d] <= 1) continue;
        int j = m++;
        while (j > 0 && s[j - 1] > st[d]) { s[j] = s[j - 1]; e[j] = e[j - 1]; j--; }
        s[j] = st[d]; e[j] = shape[d];
    }
    int64_t extent = 1;   /* one past the largest offset of the dimensions taken so far */
    for (int j = 0; j < m; j++) {
        if (s[j] < extent) return 0;
        extent += (e[j] - 1) * s[j];
    }
    return 1;
}

int fst_cuda_strided_write(int rank, const int64_t *shape, const void *x, const int64_t *sx, int xf64, void *y, const int64_t *sy,
                           int yf64, int fill, double s) {
    READY();
    BAD((xf64 != 0 && xf64 != 1) || (yf64 != 0 && yf64 != 1) || (fill != 0 && fill != 1));
    NUL(rank > 0 && (!sy || (!fill && !sx)));
    fst_k_strided_write_args k;
    memset(&k, 0, sizeof k);
    int64_t n, ex = 0, ey;
    LAYOUT(rank, shape, sy, k.shape, k.sy, &n, &ey);
    if (!fill) LAYOUT(rank, shape, sx, NULL, k.sx, &n, &ex);
    if (n == 0) return FST_OK;
    NUL(!y || (!fill && !x));
    const int xb = xf64 ? 8 : 4, yb = yf64 ? 8 : 4;
    OWN(y, ey * yb);
    if (!fill) OWN(x, ex * xb);
    BAD(!fill && fst_overlap(y, ey * yb, x, ex * xb));   /* overlap (the caller copies a source that shares memory with y first) */
    k.serial = !disjoint(rank, k.shape, k.sy);
    k.rank = fill ? coalesce(rank, k.shape, k.sy, NULL) : coalesce(rank, k.shape, k.sx, k.sy);
    k.x = fill ? NULL : x; k.y = y; k.n = n; k.s = s; k.fill = fill; k.xf64 = xf64; k.yf64 = yf64;
    return launch_op(FST_K_strided_write, k.serial ? 1 : n, &k, fill ? "fill_strided" : k.serial ? "write_serial" : "write_strided");
}
/* ======================= end of cuda-gaps ======================= */

/* ======================= cross-entropy ======================= */

/* The four-pass cross-entropy keeps a double per logit; past this many logits the one-thread-per-row kernel runs
 * instead (the same values), so that a large vocabulary does not take gigabytes of scratch (32 MiB at most here). */
#define FST_XENT_PARALLEL_MAX ((int64_t)1 << 22)
static int xent_parallel(int64_t n, int64_t c) { return n > 0 && c > 0 && c <= FST_XENT_PARALLEL_MAX / n; }
int64_t fst_cuda_xent_work(int64_t n, int64_t c) {
    if (n <= 0 || c <= 0) return n > 0 ? n : 0;
    return xent_parallel(n, c) ? n * (c + 3) : n;
}

int fst_cuda_xent(const float *logits, const int32_t *labels, int64_t n, int64_t c, double smoothing, double grad_scale,
                  float *loss, float *grad, double *work) {
    READY();
    BAD(n <= 0 || c <= 0 || !(smoothing >= 0 && smoothing <= 1));
    NUL(!logits || !labels || !work || (!loss && !grad));
    BAD(c > INT64_MAX / 4 / n);   /* the logits' byte size */
    const int par = xent_parallel(n, c);
    OWN(logits, n * c * 4); OWN(labels, n * 4); OWN(work, fst_cuda_xent_work(n, c) * 8);
    if (loss) OWN(loss, 4);
    if (grad) OWN(grad, n * c * 4);
    fst_k_xent_args a = { logits, labels, n, c, smoothing, grad_scale, loss, grad, work };
    int rc;
    if (par) {
        rc = launch(FST_K_xent_max, n, &a);
        if (!rc) rc = launch(FST_K_xent_exp, n * c, &a);
        if (!rc) rc = launch(FST_K_xent_sum, n, &a);
        if (!rc && grad) rc = launch(FST_K_xent_grad, n * c, &a);
    } else {
        rc = launch(FST_K_xent_rows, n, &a);
    }
    return rc || !loss ? rc : launch(FST_K_xent_total, 1, &a);
}

/* ======================= softmax ======================= */

int fst_cuda_softmax(const float *x, int64_t outer, int64_t n, int64_t inner, int log, float *y) {
    READY();
    BAD(outer < 0 || n < 0 || inner < 0);
    if (outer == 0 || n == 0 || inner == 0) return FST_OK;
    NUL(!x || !y);
    OWN(x, outer * n * inner * 4); OWN(y, outer * n * inner * 4);
    fst_k_softmax_args a = { x, NULL, y, outer, n, inner, log != 0 };
    return launch(FST_K_softmax, outer * inner, &a);
}

int fst_cuda_softmax_bwd(const float *y, const float *dy, int64_t outer, int64_t n, int64_t inner, int log, float *dx) {
    READY();
    BAD(outer < 0 || n < 0 || inner < 0);
    if (outer == 0 || n == 0 || inner == 0) return FST_OK;
    NUL(!y || !dy || !dx);
    OWN(y, outer * n * inner * 4); OWN(dy, outer * n * inner * 4); OWN(dx, outer * n * inner * 4);
    fst_k_softmax_args a = { y, dy, dx, outer, n, inner, log != 0 };
    return launch(FST_K_softmax_bwd, outer * inner, &a);
}

/* ======================= GEMM (fallback) ======================= */

int fst_cuda_gemm(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    READY();
    BAD(M < 0 || N < 0 || K < 0);
    BAD(lda < (transA ? M : K) || ldb < (transB ? K : N) || ldc < N || lda < 1 || ldb < 1 || ldc < 1);
    if (M == 0 || N == 0) return FST_OK;
    NUL(!C || (K > 0 && (!A || !B)));
    if (K > 0) {
        OWN(A, (transA ? (K - 1) * lda + M : (M - 1) * lda + K) * 4);
        OWN(B, (transB ? (N - 1) * ldb + K : (K - 1) * ldb + N) * 4);
    }
    OWN(C, ((M - 1) * ldc + N) * 4);
    fst_k_gemm_args a = { transA != 0, transB != 0, M, N, K, alpha, beta, A, lda, B, ldb, C, ldc };
    return launch(FST_K_gemm, M * N, &a);
}

/* ======================= optimizer ======================= */

int fst_cuda_sgd(float *w, const float *g, float *buf, int64_t n, float lr, float wd, float mom, float damp, int first, int nesterov) {
    READY();
    BAD(n < 0);
    if (n == 0) return FST_OK;
    NUL(!w || !g);
    OWN(w, n * 4); OWN(g, n * 4);
    if (buf) OWN(buf, n * 4);
    fst_k_sgd_args a = { w, g, buf, n, lr, wd, mom, damp, first != 0, nesterov != 0 };
    return launch(FST_K_sgd, n, &a);
}

int fst_cuda_sgd_srste(float *w, const float *g, float *buf, int64_t n, int64_t k, float lambda, float lr, float wd, float mom, float damp,
                       int first, int nesterov) {
    READY();
    BAD(n < 0 || k <= 0 || k % 4 != 0 || n % k != 0);
    if (n == 0) return FST_OK;
    NUL(!w || !g);
    OWN(w, n * 4); OWN(g, n * 4);
    if (buf) OWN(buf, n * 4);
    fst_k_sgd_srste_args a = { w, g, buf, n, k, lambda, lr, wd, mom, damp, first != 0, nesterov != 0 };
    return launch(FST_K_sgd_srste, n / 4, &a);
}

int fst_cuda_srste_decay(const float *w, float *g, int64_t rows, int64_t k, float lambda) {
    READY();
    BAD(rows < 0 || k < 0);
    if (rows == 0 || k == 0) return FST_OK;
    NUL(!w || !g);
    OWN(w, rows * k * 4); OWN(g, rows * k * 4);
    fst_k_srste_args a = { w, g, rows, k, lambda };
    return launch(FST_K_srste, rows * ((k + 3) / 4), &a);
}

static int nm_launch(const char *fn, const float *x, float *out, float *g, int64_t outer, int64_t len, int64_t inner, int n, int m,
                     float lambda) {
    BAD(outer < 0 || len < 0 || inner < 0 || m < 2 || m > FST_NM_MAX_M || n < 1 || n >= m);
    const int64_t groups = outer * inner * ((len + m - 1) / m);
    if (groups == 0) return FST_OK;
    NUL(!x || (!out && !g));
    OWN(x, outer * len * inner * 4);
    if (out) OWN(out, outer * len * inner * 4);
    if (g) OWN(g, outer * len * inner * 4);
    fst_k_nm_args a = { x, out, g, outer, len, inner, n, m, lambda };
    return launch(FST_K_nm, groups, &a);
}

int fst_cuda_prune_nm(const float *x, float *out, int64_t outer, int64_t len, int64_t inner, int n, int m) {
    READY();
    return nm_launch(fn, x, out, NULL, outer, len, inner, n, m, 0.0f);
}

int fst_cuda_srste_decay_nm(const float *w, float *g, int64_t rows, int64_t k, int n, int m, float lambda) {
    READY();
    return nm_launch(fn, w, NULL, g, rows, k, 1, n, m, lambda);
}

int fst_cuda_adamw(float *w, const float *g, float *m, float *v, float *vmax, int64_t n, float decay, float beta1, float c1, float beta2,
                   float c2, float step, float bc2, float eps) {
    READY();
    BAD(n < 0);
    /* the scalars fst4j.nn.AdamW derives from hyper-parameters it accepted (optim.c fst_adamw's checks) */
    BAD(!(beta1 >= 0 && beta1 <= 1) || !(beta2 >= 0 && beta2 <= 1) || !(c1 > 0 && c1 <= 1) || !(c2 > 0 && c2 <= 1));
    BAD(!(step >= 0) || isinf(step) || !(bc2 > 0 && bc2 <= 1) || !(eps >= 0) || isinf(eps) || !isfinite(decay));
    if (n == 0) return FST_OK;
    NUL(!w || !g || !m || !v);
    OWN(w, n * 4); OWN(g, n * 4); OWN(m, n * 4); OWN(v, n * 4);
    if (vmax) OWN(vmax, n * 4);
    fst_k_adamw_args a = { w, g, m, v, vmax, n, decay, beta1, c1, beta2, c2, step, bc2, eps };
    return launch(FST_K_adamw, n, &a);
}

int fst_cuda_sumsq_parts(const float *x, int64_t n, double *parts) {
    READY();
    BAD(n < 0);
    NUL(!parts || (n > 0 && !x));
    OWN(parts, FST_PARTS * 8);
    if (n > 0) OWN(x, n * 4);
    fst_k_sumsq_args a = { x, n, parts };
    return launch(FST_K_sumsq_part, FST_PARTS, &a);
}

int fst_cuda_scale(float *x, int64_t n, float s) {
    READY();
    BAD(n < 0);
    if (n == 0) return FST_OK;
    NUL(!x);
    OWN(x, n * 4);
    fst_k_scale_args a = { x, n, s };
    return launch(FST_K_scale, n, &a);
}

/* ======================= shared checks of the vendor-library calls (cuBLAS GemmEx, cuSPARSELt) ======================= */

int fst_type_bytes(int type) { return type == 0 ? 4 : type == 2 || type == 14 ? 2 : 0; }

int fst_gemm_ex_check(const char *fn, int transA, int transB, int64_t M, int64_t N, int64_t K, const void *A, int atype, int64_t lda,
                      const void *B, int btype, int64_t ldb, const void *C, int ctype, int64_t ldc, int tf32, int *nothing) {
    *nothing = 0;
    BAD(M < 0 || N < 0 || K < 0);
    BAD(M > 0x7fffffff || N > 0x7fffffff || K > 0x7fffffff || lda > 0x7fffffff || ldb > 0x7fffffff || ldc > 0x7fffffff);
    BAD(lda < (transA ? M : K) || ldb < (transB ? K : N) || ldc < N || lda < 1 || ldb < 1 || ldc < 1);
    if (!((atype == 0 || atype == 14) && btype == atype)) {
        snprintf(fst_cuda_err, sizeof fst_cuda_err, "%s: invalid argument (A and B must both be CUDA_R_32F (0) or both CUDA_R_16BF (14); "
                 "got atype %d, btype %d)", fn, atype, btype);
        return FST_EINVAL;
    }
    if (!(ctype == 0 || (ctype == 14 && atype == 14))) {
        snprintf(fst_cuda_err, sizeof fst_cuda_err, "%s: invalid argument (C must be CUDA_R_32F (0), or CUDA_R_16BF (14) for bf16 inputs; "
                 "got ctype %d with atype %d)", fn, ctype, atype);
        return FST_EINVAL;
    }
    if (tf32 && atype != 0) {
        snprintf(fst_cuda_err, sizeof fst_cuda_err, "%s: invalid argument (tf32 compute needs fp32 inputs; got atype %d)", fn, atype);
        return FST_EINVAL;
    }
    if (M == 0 || N == 0) { *nothing = 1; return FST_OK; }
    NUL(!C || (K > 0 && (!A || !B)));
    const int ea = fst_type_bytes(atype), ec = fst_type_bytes(ctype);
    if (K > 0) {
        OWN(A, (transA ? (K - 1) * lda + M : (M - 1) * lda + K) * ea);
        OWN(B, (transB ? (N - 1) * ldb + K : (K - 1) * ldb + N) * ea);
    }
    OWN(C, ((M - 1) * ldc + N) * ec);
    return FST_OK;
}

int fst_gemm_ex_batched_check(int transA, int transB, int64_t M, int64_t N, int64_t K, const void *A, int atype, int64_t lda,
                              int64_t strideA, const void *B, int btype, int64_t ldb, int64_t strideB, const void *C, int ctype,
                              int64_t ldc, int64_t strideC, int64_t batch, int tf32, int *nothing) {
    const char *fn = "fst_cuda_gemm_ex_batched";
    *nothing = 0;
    BAD(batch < 0 || batch > 0x7fffffff || strideA < 0 || strideB < 0 || strideC < 0);
    if (batch == 0) { *nothing = 1; return FST_OK; }
    int rc = fst_gemm_ex_check(fn, transA, transB, M, N, K, A, atype, lda, B, btype, ldb, C, ctype, ldc, tf32, nothing);
    if (rc || *nothing) return rc;
    BAD(batch > 1 && strideC < (M - 1) * ldc + N);   /* products writing one another's C */
    BAD(strideA > INT64_MAX / 4 / batch || strideB > INT64_MAX / 4 / batch || strideC > INT64_MAX / 4 / batch);
    const int ea = fst_type_bytes(atype), ec = fst_type_bytes(ctype);
    if (K > 0) {
        OWN(A, ((batch - 1) * strideA + (transA ? (K - 1) * lda + M : (M - 1) * lda + K)) * ea);
        OWN(B, ((batch - 1) * strideB + (transB ? (N - 1) * ldb + K : (K - 1) * ldb + N)) * ea);
    }
    OWN(C, ((batch - 1) * strideC + (M - 1) * ldc + N) * ec);
    return FST_OK;
}

/* cuSPARSELt's constraints for the 16-bit types we use (native-cuda/CUDA.md cites the documentation): the structured
 * operand's rows, columns and leading dimension multiples of 16, the dense ones at least 8 (16-bit) / 4 (32-bit);
 * we ask 16 of M, N and K alike (the ld are the row lengths), which covers both. */
#define FST_SPLT_MULT 16
int fst_splt_check_plan(int64_t M, int64_t N, int64_t K, int ab_type, int cd_type) {
    const char *fn = "fst_cuda_splt_plan";
    if (ab_type != 14 && ab_type != 2) {
        snprintf(fst_cuda_err, sizeof fst_cuda_err, "%s: invalid argument (ab_type %d: A and B must be CUDA_R_16BF (14) or CUDA_R_16F (2); "
                 "cuSPARSELt's 50%% sparsity is 2:4 only for 16- and 8-bit types)", fn, ab_type);
        return FST_EINVAL;
    }
    if (cd_type != 0 && cd_type != ab_type) {
        snprintf(fst_cuda_err, sizeof fst_cuda_err, "%s: invalid argument (cd_type %d: C and D must be CUDA_R_32F (0) or the type of A and B (%d))",
                 fn, cd_type, ab_type);
        return FST_EINVAL;
    }
    const int64_t d[3] = { M, N, K };
    static const char *const names[3] = { "M (rows of A, C)", "N (columns of B, C)", "K (columns of A, rows of B)" };
    for (int i = 0; i < 3; i++)
        if (d[i] <= 0 || d[i] % FST_SPLT_MULT != 0) {
            snprintf(fst_cuda_err, sizeof fst_cuda_err, "%s: invalid argument (%s = %lld must be a positive multiple of %d: cuSPARSELt's "
                     "size rule for 16-bit structured / dense row-major matrices, leading dimensions included; pad with zeros)",
                     fn, names[i], (long long)d[i], FST_SPLT_MULT);
            return FST_EINVAL;
        }
    if (M > 0x7fffffff || N > 0x7fffffff || K > 0x7fffffff) {
        snprintf(fst_cuda_err, sizeof fst_cuda_err, "%s: invalid argument (M, N, K must fit in 31 bits)", fn);
        return FST_EINVAL;
    }
    return FST_OK;
}

int fst_splt_check_ptr(const char *fn, const char *what, const void *p, size_t bytes) {
    if (!p) {
        snprintf(fst_cuda_err, sizeof fst_cuda_err, "%s: null pointer (%s)", fn, what);
        return FST_ENULL;
    }
    if ((uintptr_t)p % 16 != 0) {
        snprintf(fst_cuda_err, sizeof fst_cuda_err, "%s: invalid argument (%s = %p is not 16-byte aligned, as cuSPARSELt requires)", fn, what, p);
        return FST_EINVAL;
    }
    return own(fn, what, p, (int64_t)bytes);
}
