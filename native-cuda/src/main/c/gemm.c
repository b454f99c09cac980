/* Cache-blocked, multi-threaded SGEMM driver (Goto/BLIS loop order): B is packed in KC x NC panels
 * into NR-wide slivers, A in MC x KC blocks of MR-high slivers, and the ISA's micro-kernel multiplies
 * sliver pairs. Threads split C into disjoint column (or row) ranges and pack their own panels. */
#include "fst4j.h"
#include "gemm_internal.h"
#include <stdlib.h>
#include <string.h>
#include <omp.h>

#define KC 256
#define MC_BLOCKS 10   /* MC = MC_BLOCKS * MR */
#define NC 3072

const fst_kernel *fst_gemm_kernel(void) {
    static const fst_kernel *chosen;
    if (!chosen) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")) chosen = &fst_kernel_avx512;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) chosen = &fst_kernel_avx2;
        else chosen = &fst_kernel_generic;
    }
    return chosen;
}

typedef struct {
    int tA, tB;
    const float *A, *B;
    int64_t lda, ldb, K;
    float alpha;
    float *C;
    int64_t ldc;
} job;

static inline float elA(const job *j, int64_t i, int64_t p) { return j->tA ? j->A[p * j->lda + i] : j->A[i * j->lda + p]; }

static void pack_a(const job *jb, const fst_kernel *k, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float *dst) {
    const int mr = k->mr;
    for (int64_t is = 0; is < mc; is += mr) {
        int m = (int)(mc - is < mr ? mc - is : mr);
        float *d = dst + is * kc;
        if (!jb->tA) {
            for (int i = 0; i < m; i++) {
                const float *src = jb->A + (i0 + is + i) * jb->lda + p0;
                for (int64_t p = 0; p < kc; p++) d[p * mr + i] = src[p];
            }
        } else {
            for (int64_t p = 0; p < kc; p++) {
                const float *src = jb->A + (p0 + p) * jb->lda + i0 + is;
                for (int i = 0; i < m; i++) d[p * mr + i] = src[i];
            }
        }
        for (int i = m; i < mr; i++) for (int64_t p = 0; p < kc; p++) d[p * mr + i] = 0.0f;
    }
}

static void pack_b(const job *jb, const fst_kernel *k, int64_t j0, int64_t nc, int64_t p0, int64_t kc, float *dst) {
    const int nr = k->nr;
    for (int64_t js = 0; js < nc; js += nr) {
        int n = (int)(nc - js < nr ? nc - js : nr);
        float *d = dst + js * kc;
        if (!jb->tB) {
            for (int64_t p = 0; p < kc; p++) {
                const float *src = jb->B + (p0 + p) * jb->ldb + j0 + js;
                float *dp = d + p * nr;
                memcpy(dp, src, (size_t)n * 4);
                for (int j = n; j < nr; j++) dp[j] = 0.0f;
            }
        } else {
            for (int j = 0; j < n; j++) {
                const float *src = jb->B + (j0 + js + j) * jb->ldb + p0;
                for (int64_t p = 0; p < kc; p++) d[p * nr + j] = src[p];
            }
            for (int j = n; j < nr; j++) for (int64_t p = 0; p < kc; p++) d[p * nr + j] = 0.0f;
        }
    }
}

static _Thread_local float *tl_abuf, *tl_bbuf;

/* C[m0:m1, n0:n1] += alpha * op(A) op(B) on one thread. */
static int gemm_range(const job *jb, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    const fst_kernel *k = fst_gemm_kernel();
    const int mr = k->mr, nr = k->nr;
    const int64_t MC = (int64_t)MC_BLOCKS * mr;
    if (!tl_abuf) {
        tl_abuf = aligned_alloc(64, (size_t)MC * KC * 4);
        tl_bbuf = aligned_alloc(64, (size_t)(NC + 64) * KC * 4);
        if (!tl_abuf || !tl_bbuf) { free(tl_abuf); free(tl_bbuf); tl_abuf = tl_bbuf = NULL; return FST_EINVAL; }
    }
    for (int64_t jc = n0; jc < n1; jc += NC) {
        int64_t nc = n1 - jc < NC ? n1 - jc : NC;
        for (int64_t pc = 0; pc < jb->K; pc += KC) {
            int64_t kc = jb->K - pc < KC ? jb->K - pc : KC;
            pack_b(jb, k, jc, nc, pc, kc, tl_bbuf);
            for (int64_t ic = m0; ic < m1; ic += MC) {
                int64_t mc = m1 - ic < MC ? m1 - ic : MC;
                pack_a(jb, k, ic, mc, pc, kc, tl_abuf);
                for (int64_t jr = 0; jr < nc; jr += nr) {
                    int n = (int)(nc - jr < nr ? nc - jr : nr);
                    for (int64_t ir = 0; ir < mc; ir += mr) {
                        int m = (int)(mc - ir < mr ? mc - ir : mr);
                        k->kernel(kc, tl_abuf + ir * kc, tl_bbuf + jr * kc,
                                  jb->C + (ic + ir) * jb->ldc + jc + jr, jb->ldc, jb->alpha, m, n);
                    }
                }
            }
        }
    }
    return FST_OK;
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

    /* beta first, once: then the kernels only accumulate. beta == 0 overwrites (BLAS semantics). */
    for (int64_t i = 0; i < M; i++) {
        float *c = C + i * ldc;
        if (beta == 0.0f) memset(c, 0, (size_t)N * 4);
        else if (beta != 1.0f) for (int64_t j = 0; j < N; j++) c[j] *= beta;
    }
    if (K == 0 || alpha == 0.0f) return FST_OK;

    job jb = { transA != 0, transB != 0, A, B, lda, ldb, K, alpha, C, ldc };
    const fst_kernel *k = fst_gemm_kernel();
    double flops = 2.0 * (double)M * (double)N * (double)K;
    int nt = flops < 2e6 ? 1 : nthreads;
    if (nt == 1) return gemm_range(&jb, 0, M, 0, N);

    /* Split the larger of M and N into nt ranges aligned to the micro-tile. */
    int split_n = (N / k->nr) >= (M / k->mr);
    int64_t unit = split_n ? k->nr : k->mr, total = split_n ? N : M;
    int64_t units = (total + unit - 1) / unit;
    if (units < nt) nt = (int)units;
    int rc = FST_OK;
    #pragma omp parallel num_threads(nt) reduction(min:rc)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        int64_t u0 = units * t / T, u1 = units * (t + 1) / T;
        int64_t a = u0 * unit, b = u1 * unit < total ? u1 * unit : total;
        if (a < b) rc = split_n ? gemm_range(&jb, 0, M, a, b) : gemm_range(&jb, a, b, 0, N);
    }
    return rc;
}
