/* Cache-blocked, multi-threaded SGEMM driver. Loop order (outer to inner):
 *   ic (MB rows of A packed at once) > pc (KC) > jc (NB columns of B packed into an L2-sized block)
 *   > ir (one MR x KC sliver of packed A, hot in L1) > jr (KC x NR slivers of packed B, streamed from L2).
 * beta is folded into the first KC block (no separate pass over C; beta == 0 never reads C).
 * Threads (the caller plus a pool of helpers) claim chunks of C rows or columns (whichever duplicates less
 * packing and balances better) and pack their own operands into per-thread buffers. */
#include "fst4j.h"
#include "gemm_internal.h"
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sched.h>

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
static void pack_n(const float *src, int64_t ld, int64_t cols, int w, int64_t kc, float *restrict dst) {
    const int64_t full = cols / w * w;
    const int n = (int)(cols - full);
    for (int64_t p = 0; p < kc; p++) {
        const float *s = src + p * ld;
        float *restrict d = dst + p * w;
        for (int64_t js = 0; js < full; js += w) copy_w(d + js * kc, s + js, w);
        if (n) {
            float *dp = d + full * kc;
            memcpy(dp, s + full, (size_t)n * 4);
            for (int j = n; j < w; j++) dp[j] = 0.0f;
        }
    }
}

/* op(A)[i0:i0+mc, p0:p0+kc] into MR-high slivers: sliver s holds, for each p, rows s*MR .. s*MR+MR-1. */
static void pack_a(const job *jb, const fst_kernel *k, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float *dst) {
    const int mr = k->mr;
    if (jb->tA) { pack_n(jb->A + p0 * jb->lda + i0, jb->lda, mc, mr, kc, dst); return; }
    for (int64_t is = 0; is < mc; is += mr) {
        int m = (int)(mc - is < mr ? mc - is : mr);
        k->pack_t(jb->A + (i0 + is) * jb->lda + p0, jb->lda, m, mr, kc, dst + is * kc);
    }
}

/* op(B)[p0:p0+kc, j0:j0+nc] into NR-wide slivers: sliver s holds, for each p, columns s*NR .. s*NR+NR-1. */
static void pack_b(const job *jb, const fst_kernel *k, int64_t j0, int64_t nc, int64_t p0, int64_t kc, float *dst) {
    const int nr = k->nr;
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
typedef struct { float *a, *b; size_t acap, bcap; } buffers;
static pthread_key_t buf_key;
static pthread_once_t buf_once = PTHREAD_ONCE_INIT;
static void buf_free(void *p) { buffers *b = p; free(b->a); free(b->b); free(b); }
static void buf_key_init(void) { (void)pthread_key_create(&buf_key, buf_free); }

static float *grow(float **p, size_t *cap, size_t floats) {
    if (*cap >= floats) return *p;
    size_t bytes = (floats * 4 + 63) & ~(size_t)63;
    float *q = aligned_alloc(64, bytes);
    if (!q) return NULL;
    free(*p);
    *p = q;
    *cap = floats;
    return q;
}

static buffers *thread_buffers(size_t afloats, size_t bfloats) {
    pthread_once(&buf_once, buf_key_init);
    buffers *b = pthread_getspecific(buf_key);
    if (!b) {
        b = calloc(1, sizeof *b);
        if (!b || pthread_setspecific(buf_key, b) != 0) { free(b); return NULL; }
    }
    if (!grow(&b->a, &b->acap, afloats) || !grow(&b->b, &b->bcap, bfloats)) return NULL;
    return b;
}

/* C[m0:m1, n0:n1] = alpha * op(A) op(B) + beta * C on one thread. */
static int gemm_range(const job *jb, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    const fst_kernel *k = fst_gemm_kernel();
    const int mr = k->mr, nr = k->nr;
    const int64_t MB = (FST_MB / mr) * mr, NB = (FST_NB / nr) * nr;
    const int64_t K = jb->K, nkb = (K + FST_KC - 1) / FST_KC, kcb = (K + nkb - 1) / nkb;
    int64_t mspan = m1 - m0 < MB ? m1 - m0 : MB, nspan = n1 - n0 < NB ? n1 - n0 : NB;
    buffers *buf = thread_buffers((size_t)((mspan + mr - 1) / mr * mr) * kcb, (size_t)((nspan + nr - 1) / nr * nr) * kcb);
    if (!buf) return FST_EINVAL;   /* out of memory: fst4j.h has no code of its own for it */
    float *const tl_abuf = buf->a, *const tl_bbuf = buf->b;
    for (int64_t ic = m0; ic < m1; ic += MB) {
        int64_t mc = m1 - ic < MB ? m1 - ic : MB;
        for (int64_t pc = 0; pc < K; pc += kcb) {
            int64_t kc = K - pc < kcb ? K - pc : kcb;
            float beta = pc == 0 ? jb->beta : 1.0f;
            pack_a(jb, k, ic, mc, pc, kc, tl_abuf);
            for (int64_t jc = n0; jc < n1; jc += NB) {
                int64_t nc = n1 - jc < NB ? n1 - jc : NB;
                pack_b(jb, k, jc, nc, pc, kc, tl_bbuf);
                /* While this block computes, pull the next block of B (row-major source) towards L2 a few
                 * lines per micro-kernel call, so its packing does not wait on DRAM. */
                prefetcher pf = { 0 };
                int64_t npc = pc, njc = jc + NB;
                if (njc >= n1) { njc = n0; npc = pc + kcb; }
                if (npc < K) {
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
                        k->kernel(kc, ap, tl_bbuf + jr * kc, cp + jr, jb->ldc, jb->alpha, beta, m, n);
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

/* ---- thread pool ----
 * A job is cut into chunks of C rows or columns, each spanning all of K (no two threads touch one C element).
 * The calling thread and the helpers claim chunks from one atomic counter that also holds the job's generation,
 * and the caller waits only for chunks that were claimed. A helper the OS has not scheduled yet (common on a
 * machine shared with other processes) therefore never holds the call up: the caller does its chunks instead.
 * (An OpenMP parallel region would wait at its closing barrier for every team thread to have run.) */
#define MAX_HELPERS 63
typedef struct {
    pthread_mutex_t mu;          /* guards gen/helpers for sleeping and waking */
    pthread_cond_t cv;
    pthread_mutex_t owner;       /* one job at a time; a second concurrent caller runs alone */
    int helpers;                 /* started helper threads */
    uint64_t gen;                /* job generation, written under mu */
    uint64_t claim;              /* atomic: (gen << 32) | next chunk */
    int64_t done;                /* atomic: chunks finished */
    int rc;                      /* atomic: min return code */
    int max_helpers;             /* helpers allowed on this job */
    const job *jb;
    int split_m;
    int64_t unit, total, units, chunks;
} pool_t;
static pool_t pool = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .owner = PTHREAD_MUTEX_INITIALIZER };

#define LD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define ST(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define CLOSED 0xffffffffu   /* chunk index of a finished generation: nothing left to claim */

/* Claims and runs chunks of generation g until none are left. The job fields are read before the claim and used
 * only if the claim (generation and index in one word) succeeds: then the job is still the one they describe,
 * because the caller cannot finish a job with an unclaimed chunk. */
static void run_chunks(uint64_t g) {
    for (;;) {
        uint64_t c = __atomic_load_n(&pool.claim, __ATOMIC_ACQUIRE);
        if (c >> 32 != (g & 0xffffffffu)) return;
        int64_t i = (int64_t)(c & 0xffffffffu), chunks = LD(pool.chunks);
        if (i >= chunks) return;
        const job *jb = LD(pool.jb);
        int split_m = LD(pool.split_m);
        int64_t unit = LD(pool.unit), total = LD(pool.total), units = LD(pool.units);
        if (!__atomic_compare_exchange_n(&pool.claim, &c, c + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) continue;
        int64_t u0 = units * i / chunks, u1 = units * (i + 1) / chunks;
        int64_t a = u0 * unit, b = u1 * unit < total ? u1 * unit : total;
        int r = FST_OK;
        if (a < b) r = split_m ? gemm_range(jb, a, b, 0, jb->N) : gemm_range(jb, 0, jb->M, a, b);
        if (r != FST_OK) ST(pool.rc, r);
        __atomic_add_fetch(&pool.done, 1, __ATOMIC_RELEASE);
    }
}

static void *helper_main(void *arg) {
    int id = (int)(intptr_t)arg;
    uint64_t seen = 0;
    for (;;) {
        uint64_t g = 0;
        /* spin a little (back-to-back calls), then sleep until a new generation */
        for (int s = 0; s < 20000; s++) {
            g = __atomic_load_n(&pool.gen, __ATOMIC_ACQUIRE);
            if (g != seen) break;
            __builtin_ia32_pause();
        }
        if (g == seen) {
            pthread_mutex_lock(&pool.mu);
            while ((g = pool.gen) == seen) pthread_cond_wait(&pool.cv, &pool.mu);
            pthread_mutex_unlock(&pool.mu);
        }
        seen = g;
        if (id < __atomic_load_n(&pool.max_helpers, __ATOMIC_ACQUIRE)) run_chunks(g);
    }
    return NULL;
}

static int run_pool(const job *jb, int split_m, int64_t unit, int64_t total, int64_t units, int64_t chunks, int nt) {
    if (pthread_mutex_trylock(&pool.owner) != 0)   /* another Java thread is using the pool: run alone */
        return gemm_range(jb, 0, jb->M, 0, jb->N);
    int want = nt - 1 < MAX_HELPERS ? nt - 1 : MAX_HELPERS;
    while (pool.helpers < want) {
        pthread_t t;
        pthread_attr_t at;
        if (pthread_attr_init(&at) != 0) break;
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        int ok = pthread_create(&t, &at, helper_main, (void *)(intptr_t)pool.helpers) == 0;
        pthread_attr_destroy(&at);
        if (!ok) break;   /* fewer helpers: the caller claims their chunks */
        pool.helpers++;
    }
    if (want > pool.helpers) want = pool.helpers;
    ST(pool.jb, jb); ST(pool.split_m, split_m); ST(pool.unit, unit); ST(pool.total, total); ST(pool.units, units);
    ST(pool.chunks, chunks); ST(pool.max_helpers, want); ST(pool.done, 0); ST(pool.rc, FST_OK);
    pthread_mutex_lock(&pool.mu);
    uint64_t g = pool.gen + 1;
    __atomic_store_n(&pool.claim, (g & 0xffffffffu) << 32, __ATOMIC_RELEASE);
    __atomic_store_n(&pool.gen, g, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
    run_chunks(g);
    /* every chunk is claimed now; wait for the claimed ones still running on helpers */
    for (int s = 0; __atomic_load_n(&pool.done, __ATOMIC_ACQUIRE) < chunks; s++) {
        if (s < 1000) __builtin_ia32_pause(); else sched_yield();
    }
    /* close the generation before the next job rewrites the fields (a late helper then finds nothing) */
    __atomic_store_n(&pool.claim, ((g & 0xffffffffu) << 32) | CLOSED, __ATOMIC_RELEASE);
    int rc = LD(pool.rc);
    pthread_mutex_unlock(&pool.owner);
    return rc;
}

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

    job jb = { transA != 0, transB != 0, A, B, lda, ldb, K, alpha, beta, C, ldc, M, N };
    const fst_kernel *k = fst_gemm_kernel();
    double flops = 2.0 * (double)M * (double)N * (double)K;
    int nt = flops < 2e6 ? 1 : nthreads;
    if (nt == 1) return gemm_range(&jb, 0, M, 0, N);

    /* Split C by rows (units of MR) or by columns (units of NR), whichever gives the lower estimated time: the
     * largest share of multiply-adds plus the operand every chunk packs again. */
    const int64_t mr = k->mr, nr = k->nr;
    int64_t um = (M + mr - 1) / mr, unn = (N + nr - 1) / nr;
    int ntm = um < nt ? (int)um : nt, ntn = unn < nt ? (int)unn : nt;
    double costM = (double)((um + ntm - 1) / ntm) * mr * N * K + 4.0 * K * N;
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
