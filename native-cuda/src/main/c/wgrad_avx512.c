/* Eq. 3 of a convolution without packing: dW [M, K] = alpha * dY [M, P] * im2col(x)^T + beta * dW for the geometries
 * the planned lowering takes (lowering.h), when M (Cout) is small. A GEMM would lower and transpose im2col into
 * slivers and amortise that over only M rows; here each tile of KT lowered rows is written once into a buffer by the
 * plan's masked loads, and MT x KT dot products over all P positions run in 24 zmm accumulators (MT dY vectors and KT
 * buffer vectors per step, no transposes), reduced across lanes once at the end. Each thread owns a range of K
 * (columns of dW), so the result does not depend on the thread count. Compiled with -mavx512f; gemm.c calls it only
 * where the plan is available (an AVX-512 CPU). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <immintrin.h>
#include "lowering.h"
#include "parallel.h"

#define MT 4   /* dY rows per tile */
#define KT 6   /* lowered rows per tile */

int fst_wgrad_direct_avx512(int64_t M, float alpha, const float *A, int64_t lda, const fst_lowering *low, float beta,
                            float *C, int64_t ldc, int nthreads);

typedef struct {
    const fst_lplan *plan;
    int64_t M, K, P, lda, ldc;
    const float *A;
    float *C;
    float alpha, beta;
    int rc;
} wgrad_job;

static void wgrad_task(void *p, int64_t t0, int64_t t1) {
    wgrad_job *j = p;
    const int nvec = j->plan->nvec, full = (int)(j->P / 16);
    const __mmask16 tail = (__mmask16)((1u << (j->P % 16)) - 1);
    const int64_t ldb = (int64_t)nvec * 16;
    float *xb = aligned_alloc(64, (size_t)(KT * ldb) * 4);
    if (!xb) { __atomic_store_n(&j->rc, 1, __ATOMIC_RELAXED); return; }
    for (int64_t t = t0; t < t1; t++) {
        const int64_t k0 = t * KT, kt = j->K - k0 < KT ? j->K - k0 : KT;
        for (int r = 0; r < KT; r++) {
            if (r < kt) fst_lplan_row(j->plan, k0 + r, xb + r * ldb, 0, 0, 0);   /* zeros past P */
            else memset(xb + r * ldb, 0, (size_t)ldb * 4);
        }
        for (int64_t m0 = 0; m0 < j->M; m0 += MT) {
            const int64_t mt = j->M - m0 < MT ? j->M - m0 : MT;
            const float *a[MT];
            for (int i = 0; i < MT; i++) a[i] = j->A + (m0 + (i < mt ? i : mt - 1)) * j->lda;   /* padded rows: repeat, not stored */
            __m512 acc[MT][KT];
            for (int i = 0; i < MT; i++)
                for (int r = 0; r < KT; r++) acc[i][r] = _mm512_setzero_ps();
            for (int v = 0; v < nvec; v++) {
                __m512 y[MT], b[KT];
                for (int i = 0; i < MT; i++) y[i] = v < full ? _mm512_loadu_ps(a[i] + 16 * v) : _mm512_maskz_loadu_ps(tail, a[i] + 16 * v);
                for (int r = 0; r < KT; r++) b[r] = _mm512_load_ps(xb + r * ldb + 16 * v);
                for (int i = 0; i < MT; i++)
                    for (int r = 0; r < KT; r++) acc[i][r] = _mm512_fmadd_ps(y[i], b[r], acc[i][r]);
            }
            for (int i = 0; i < mt; i++) {
                float *c = j->C + (m0 + i) * j->ldc + k0;
                for (int r = 0; r < kt; r++) {
                    const float s = j->alpha * _mm512_reduce_add_ps(acc[i][r]);
                    c[r] = j->beta == 0.0f ? s : s + j->beta * c[r];
                }
            }
        }
    }
    free(xb);
}

int fst_wgrad_direct_avx512(int64_t M, float alpha, const float *A, int64_t lda, const fst_lowering *low, float beta,
                            float *C, int64_t ldc, int nthreads) {
    const int64_t P = low->n * low->ho * low->wo, K = low->c * low->kh * low->kw;
    if (P <= 0 || P > INT32_MAX / 2) return 0;
    const int nvec = (int)((P + 15) / 16);
    void *mem = aligned_alloc(64, (fst_lplan_bytes(low, nvec) + 63) & ~(size_t)63);
    if (!mem) return 0;
    fst_lplan plan;
    if (!fst_lplan_build(&plan, low, 0, P, nvec, mem)) { free(mem); return 0; }
    wgrad_job j = { &plan, M, K, P, lda, ldc, A, C, alpha, beta, 0 };
    const int64_t tiles = (K + KT - 1) / KT;
    int nt = (double)M * (double)K * (double)P < 1e6 ? 1 : nthreads;
    if (nt > tiles) nt = (int)tiles;
    fst_parallel(tiles, nt > 1 ? 4 * (int64_t)nt : 1, nt, wgrad_task, &j);
    free(mem);
    return j.rc == 0 ? 1 : -1;
}
