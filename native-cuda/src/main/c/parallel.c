/* The one helper-thread pool of the shim (GEMM, spmm, conv, prune, shift, norm). See parallel.h. */
#include "parallel.h"
#include "fst4j.h"
#include <pthread.h>
#include <sched.h>

#define MAX_HELPERS 63
#define CLOSED 0xffffffffu
#define LD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define ST(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

static struct {
    pthread_mutex_t mu, owner;
    pthread_cond_t cv;
    int helpers, max_helpers;
    uint64_t gen, claim;         /* claim: (gen << 32) | next chunk, atomic */
    int64_t done, n, chunks;     /* done: atomic count of finished chunks */
    fst_task fn;
    void *ctx;
} P = { .mu = PTHREAD_MUTEX_INITIALIZER, .owner = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void run_chunks(uint64_t g) {
    for (;;) {
        uint64_t c = __atomic_load_n(&P.claim, __ATOMIC_ACQUIRE);
        if (c >> 32 != (g & 0xffffffffu)) return;
        int64_t i = (int64_t)(c & 0xffffffffu), chunks = LD(P.chunks);
        if (i >= chunks) return;
        int64_t n = LD(P.n);
        fst_task fn = LD(P.fn);
        void *ctx = LD(P.ctx);
        /* the fields are valid only if the claim (generation + index in one word) succeeds */
        if (!__atomic_compare_exchange_n(&P.claim, &c, c + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) continue;
        int64_t b = n * i / chunks, e = n * (i + 1) / chunks;
        if (b < e) fn(ctx, b, e);
        __atomic_add_fetch(&P.done, 1, __ATOMIC_RELEASE);
    }
}

static int spin_iters = 20000;   /* PAUSEs a helper spins for the next call before it sleeps (~1 ms on session 37-42's Xeon) */

int fst_parallel_spin(int iters) {
    if (iters >= 0) __atomic_store_n(&spin_iters, iters, __ATOMIC_RELAXED);
    return __atomic_load_n(&spin_iters, __ATOMIC_RELAXED);
}

static void *helper_main(void *arg) {
    int id = (int)(intptr_t)arg;
    uint64_t seen = 0;
    for (;;) {
        uint64_t g = seen;   /* no spin at all (fst_parallel_spin(0)): straight to the wait below */
        const int spin = __atomic_load_n(&spin_iters, __ATOMIC_RELAXED);
        for (int s = 0; s < spin; s++) {           /* back-to-back calls: spin briefly, then sleep */
            g = __atomic_load_n(&P.gen, __ATOMIC_ACQUIRE);
            if (g != seen) break;
            __builtin_ia32_pause();
        }
        if (g == seen) {
            pthread_mutex_lock(&P.mu);
            while ((g = P.gen) == seen) pthread_cond_wait(&P.cv, &P.mu);
            pthread_mutex_unlock(&P.mu);
        }
        seen = g;
        if (id < __atomic_load_n(&P.max_helpers, __ATOMIC_ACQUIRE)) run_chunks(g);
    }
    return NULL;
}

void fst_parallel(int64_t n, int64_t chunks, int nthreads, fst_task fn, void *ctx) {
    if (n <= 0) return;
    if (chunks > n) chunks = n;
    if (chunks > 0xfffffffeLL) chunks = 0xfffffffeLL;
    if (nthreads <= 1 || chunks <= 1 || pthread_mutex_trylock(&P.owner) != 0) { fn(ctx, 0, n); return; }
    int want = nthreads - 1 < MAX_HELPERS ? nthreads - 1 : MAX_HELPERS;
    while (P.helpers < want) {
        pthread_t t;
        pthread_attr_t at;
        if (pthread_attr_init(&at) != 0) break;
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        int ok = pthread_create(&t, &at, helper_main, (void *)(intptr_t)P.helpers) == 0;
        pthread_attr_destroy(&at);
        if (!ok) break;                            /* fewer helpers: the caller takes their chunks */
        P.helpers++;
    }
    if (want > P.helpers) want = P.helpers;
    ST(P.n, n); ST(P.chunks, chunks); ST(P.fn, fn); ST(P.ctx, ctx); ST(P.done, 0); ST(P.max_helpers, want);
    pthread_mutex_lock(&P.mu);
    uint64_t g = P.gen + 1;
    __atomic_store_n(&P.claim, (g & 0xffffffffu) << 32, __ATOMIC_RELEASE);
    __atomic_store_n(&P.gen, g, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&P.cv);
    pthread_mutex_unlock(&P.mu);
    run_chunks(g);
    for (int s = 0; __atomic_load_n(&P.done, __ATOMIC_ACQUIRE) < chunks; s++) {
        if (s < 1000) __builtin_ia32_pause(); else sched_yield();
    }
    __atomic_store_n(&P.claim, ((g & 0xffffffffu) << 32) | CLOSED, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&P.owner);
}
