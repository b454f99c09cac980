/* 2:4 structured-sparse x dense GEMM on the CPU (fst_spmm24): argument checks, beta, thread split and
 * ISA dispatch. The kernels live in sparse_kernel.c (one object per ISA). Compressed layout: see
 * sparse/FORMAT.md and fst4j.h. */
#include "fst4j.h"
#include <stdlib.h>
#include <string.h>
#include <omp.h>

typedef int (*spmm_range_fn)(int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t K, float alpha,
                             const float *values, const uint32_t *meta, const float *B, int64_t ldb,
                             float *C, int64_t ldc, float *buf, int query);
int fst_spmm24_range_avx512(int64_t, int64_t, int64_t, int64_t, int64_t, float, const float *, const uint32_t *,
                            const float *, int64_t, float *, int64_t, float *, int);
int fst_spmm24_range_avx2(int64_t, int64_t, int64_t, int64_t, int64_t, float, const float *, const uint32_t *,
                          const float *, int64_t, float *, int64_t, float *, int);
int fst_spmm24_range_generic(int64_t, int64_t, int64_t, int64_t, int64_t, float, const float *, const uint32_t *,
                             const float *, int64_t, float *, int64_t, float *, int);

static spmm_range_fn spmm_kernel(const char **name) {
    static spmm_range_fn chosen;
    static const char *chosen_name;
    if (!chosen) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma")) { chosen_name = "avx512"; chosen = fst_spmm24_range_avx512; }
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) { chosen_name = "avx2"; chosen = fst_spmm24_range_avx2; }
        else { chosen_name = "generic"; chosen = fst_spmm24_range_generic; }
    }
    if (name) *name = chosen_name;
    return chosen;
}

const char *fst_spmm24_isa(void) {
    const char *n;
    spmm_kernel(&n);
    return n;
}

int fst_spmm24(int64_t M, int64_t N, int64_t K, float alpha, const float *values, const uint32_t *meta,
               const float *B, int64_t ldb, float beta, float *C, int64_t ldc, int nthreads) {
    if (M < 0 || N < 0 || K < 0 || nthreads < 1) return FST_EINVAL;
    if (M == 0 || N == 0) return FST_OK;
    if (!C) return FST_ENULL;
    if (ldc < N) return FST_EINVAL;
    if (K > 0 && (!values || !meta || !B)) return FST_ENULL;
    if (K > 0 && ldb < N) return FST_EINVAL;

    for (int64_t i = 0; i < M; i++) {
        float *c = C + i * ldc;
        if (beta == 0.0f) memset(c, 0, (size_t)N * 4);
        else if (beta != 1.0f) for (int64_t j = 0; j < N; j++) c[j] *= beta;
    }
    if (K == 0 || alpha == 0.0f) return FST_OK;

    spmm_range_fn run = spmm_kernel(NULL);
    const int64_t nb = run(0, 0, 0, 0, 0, 0, NULL, NULL, NULL, 0, NULL, 0, NULL, 1);
    const int64_t kb = run(0, 0, 0, 0, 0, 0, NULL, NULL, NULL, 0, NULL, 0, NULL, 2);
    const size_t buf_bytes = (size_t)(kb * nb * 4);
    double flops = (double)M * (double)N * (double)K;   /* 2:4: half of 2MNK */
    int nt = flops < 5e5 ? 1 : nthreads;
    if (nt == 1) {
        float *buf = aligned_alloc(64, buf_bytes);
        if (!buf) return FST_EINVAL;
        run(0, M, 0, N, K, alpha, values, meta, B, ldb, C, ldc, buf, 0);
        free(buf);
        return FST_OK;
    }
    /* Split column blocks when there are enough of them (each thread copies only its own B), else rows
     * in multiples of 4 (the register block). */
    const int64_t nblocks = (N + nb - 1) / nb, mblocks = (M + 3) / 4;
    const int split_n = nblocks >= nt || nblocks >= mblocks;
    const int64_t units = split_n ? nblocks : mblocks;
    if (units < nt) nt = (int)units;
    int rc = FST_OK;
    #pragma omp parallel num_threads(nt) reduction(min:rc)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        int64_t u0 = units * t / T, u1 = units * (t + 1) / T;
        float *buf = aligned_alloc(64, buf_bytes);
        if (!buf) rc = FST_EINVAL;
        else if (u0 < u1) {
            if (split_n) {
                int64_t a = u0 * nb, b = u1 * nb < N ? u1 * nb : N;
                run(0, M, a, b, K, alpha, values, meta, B, ldb, C, ldc, buf, 0);
            } else {
                int64_t a = u0 * 4, b = u1 * 4 < M ? u1 * 4 : M;
                run(a, b, 0, N, K, alpha, values, meta, B, ldb, C, ldc, buf, 0);
            }
        }
        free(buf);
    }
    return rc;
}
