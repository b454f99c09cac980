/* Magnitude N:M along one axis of a contiguous float32 tensor seen as [outer, len, inner] (fst4j.sparse.Sparsifier.
 * MagnitudeNM) and SR-STE's decay at that pattern (fst4j.nn.SrSte): the host rule of Masks.magnitudeNM and
 * SrSte.decayPrunedNM and the CUDA kernel k_nm (fst4j_bodies.cuh), the same selection bit for bit. In each group of m
 * consecutive elements of a line, |x| as the bits of x with the sign cleared, every NaN one key above +Inf (Float.compare's
 * order on Math.abs: -0.0 equal to +0.0, all NaNs equal and largest); an element is kept when fewer than n others of its
 * group beat it (a larger key, or an equal key at a lower index); a short last group is compared among its real elements
 * (zero padding, later and of magnitude 0, never beats one). */
#include "fst4j.h"
#include "parallel.h"
#include <string.h>

#define NM_MAX_M 32   /* fst4j.sparse.NM.MAX_M, FST_NM_MAX_M */

typedef struct { const float *x; float *out, *g; int64_t outer, len, inner, groups; int n, m; float lambda; } nm_job;

static inline uint32_t nm_key(float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    u &= 0x7fffffffu;
    return u < 0x7f800001u ? u : 0x7f800001u;
}

/* units are (outer index, group) pairs; each runs its group over the inner lines, reading m rows of inner side by side */
static void nm_task(void *p, int64_t u0, int64_t u1) {
    const nm_job *j = p;
    const int64_t inner = j->inner, len = j->len;
    const int n = j->n, m = j->m;
    uint32_t key[NM_MAX_M];
    for (int64_t u = u0; u < u1; u++) {
        const int64_t o = u / j->groups, g0 = (u - o * j->groups) * m;
        const int cnt = len - g0 < m ? (int)(len - g0) : m;
        for (int64_t r = 0; r < inner; r++) {
            const int64_t base = (o * len + g0) * inner + r;
            for (int q = 0; q < cnt; q++) key[q] = nm_key(j->x[base + q * inner]);
            for (int e = 0; e < cnt; e++) {
                int beaten = 0;
                for (int q = 0; q < cnt; q++) beaten += q != e && (key[q] > key[e] || (key[q] == key[e] && q < e));
                const int64_t at = base + e * inner;
                if (j->out) j->out[at] = beaten < n ? j->x[at] : 0.0f;
                if (j->g && beaten >= n) j->g[at] += j->lambda * j->x[at];
            }
        }
    }
}

static int nm_run(const float *x, float *out, float *g, int64_t outer, int64_t len, int64_t inner, int n, int m, float lambda,
                  int nthreads) {
    if (outer < 0 || len < 0 || inner < 0 || m < 2 || m > NM_MAX_M || n < 1 || n >= m || nthreads < 1) return FST_EINVAL;
    const int64_t groups = (len + m - 1) / m;
    if (outer == 0 || groups == 0 || inner == 0) return FST_OK;
    if (inner > INT64_MAX / len || outer > INT64_MAX / (len * inner)) return FST_EINVAL;
    const int64_t total = outer * len * inner;
    if (!x || (!out && !g)) return FST_ENULL;
    float *y = out ? out : g;   /* written while x is read at other positions: only x itself or no overlap */
    if (y != x && y < x + total && x < y + total) return FST_EINVAL;
    if (out && g && out < g + total && g < out + total) return FST_EINVAL;
    nm_job j = { .x = x, .out = out, .g = g, .outer = outer, .len = len, .inner = inner, .groups = groups, .n = n, .m = m,
                 .lambda = lambda };
    const int64_t units = outer * groups;
    fst_parallel(units, nthreads <= 1 || total < 32768 ? 1 : 4 * (int64_t)nthreads, nthreads, nm_task, &j);
    return FST_OK;
}

int fst_prune_nm(const float *x, float *out, int64_t outer, int64_t len, int64_t inner, int n, int m, int nthreads) {
    if (!out && outer > 0 && len > 0 && inner > 0) return FST_ENULL;
    return nm_run(x, out, NULL, outer, len, inner, n, m, 0.0f, nthreads);
}

int fst_srste_decay_nm(const float *w, float *g, int64_t rows, int64_t k, int n, int m, float lambda, int nthreads) {
    if (!g && rows > 0 && k > 0) return FST_ENULL;
    return nm_run(w, NULL, g, rows, k, 1, n, m, lambda, nthreads);
}
