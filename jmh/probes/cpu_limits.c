/* What bounds the CPU 2:4 kernel (issue #3): instruction-mix probes on this core, then the shim's dense and 2:4
 * GEMMs through the public API, all as 512-bit FMA instructions per nanosecond and as a share of the first line
 * (register-only FMAs, the core's FMA peak). Run: ./fst4j probe-cpu (builds the shim, then this file with gcc).
 *
 * Why these lines: the 2:4 kernel (sparse_kernel.c) issues every FMA with its B vector as a 512-bit memory operand
 * (the row its 2-bit index selects from an L1 buffer) plus two scalar broadcasts of the kept values per row and group
 * of 4; the dense kernel (gemm_kernel.c) reuses 3 B vectors from registers over 8 rows. So the 2:4 product does half the
 * FMAs but one load per FMA, and its speed-up over dense is about 2 x (its FMA rate / dense's FMA rate). Line 4 is the
 * alternative that keeps B in registers: lanes over rows of S, each lane's B value picked by vpermps. Lines 5 and 6 are
 * the form the compiled product (sparse_jit.c) takes instead: B rows in registers, chosen when the code is written,
 * and each kept value a broadcast memory operand of its FMA. */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "fst4j.h"

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

#define ITERS 4000000L   /* outer iterations per probe run: ~0.1 s each */
static float buf[64 * 96] __attribute__((aligned(64)));
static float av[64] __attribute__((aligned(64)));
static volatile float sink;

static void keep(__m512 *acc, int n) {
    float s = 0;
    for (int i = 0; i < n; i++) s += _mm512_reduce_add_ps(acc[i]);
    sink = s;
}

/* 1: 24 independent accumulators, FMA register operands only. 24 FMAs per iteration. */
static double probe_regs(void) {
    __m512 acc[24], b = _mm512_set1_ps(0.9999f), c = _mm512_set1_ps(1e-6f);
    for (int i = 0; i < 24; i++) acc[i] = _mm512_set1_ps(i * 1e-3f);
    double t = now();
    for (long k = 0; k < ITERS; k++) {
#pragma GCC unroll 24
        for (int i = 0; i < 24; i++) acc[i] = _mm512_fmadd_ps(acc[i], b, c);
        __asm__ volatile("" : "+v"(b));
    }
    t = now() - t;
    keep(acc, 24);
    return ITERS * 24.0 / t / 1e9;
}

/* 2 and 3: 4 rows x 6 vectors, each FMA's B a 512-bit load from two L1 rows (as the 2:4 kernel's b0_/b1_); with
 * bcast != 0 each row also broadcasts its two values from memory (the kernel's mix: 2 broadcasts per 12 FMAs).
 * The row pointer goes through an empty asm so that the compiler cannot share loads between rows. */
static double probe_mem(int bcast) {
    __m512 acc[24];
    for (int i = 0; i < 24; i++) acc[i] = _mm512_setzero_ps();
    __m512 y0 = _mm512_set1_ps(0.5f), y1 = _mm512_set1_ps(0.25f);
    double t = now();
    for (long k = 0; k < ITERS; k++) {
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            const float *b0 = buf + 96 * (i & 1), *b1 = buf + 96 * (2 + (i & 1)), *a = av + 2 * i;
            __asm__ volatile("" : "+r"(b0), "+r"(b1), "+r"(a));
            if (bcast) { y0 = _mm512_set1_ps(a[0]); y1 = _mm512_set1_ps(a[1]); }
#pragma GCC unroll 6
            for (int v = 0; v < 6; v++) {
                acc[i * 6 + v] = _mm512_fmadd_ps(y0, _mm512_load_ps(b0 + 16 * v), acc[i * 6 + v]);
                acc[i * 6 + v] = _mm512_fmadd_ps(y1, _mm512_load_ps(b1 + 16 * v), acc[i * 6 + v]);
            }
        }
    }
    t = now() - t;
    keep(acc, 24);
    return ITERS * 48.0 / t / 1e9;
}

/* 4: one vpermps (a distinct index vector per FMA, so nothing can be shared) feeding each FMA, B from registers. */
static double probe_perm(void) {
    __m512 acc[12];
    __m512i ix[8];
    for (int i = 0; i < 12; i++) acc[i] = _mm512_setzero_ps();
    for (int i = 0; i < 8; i++) ix[i] = _mm512_set1_epi32(i * 3 % 16);
    const __m512 val = _mm512_set1_ps(0.999f);
    double t = now();
    for (long k = 0; k < ITERS / 4; k++) {
        const float *b = buf;
        __asm__ volatile("" : "+r"(b));
#pragma GCC unroll 12
        for (int j = 0; j < 12; j++) {
            __m512 x = _mm512_load_ps(b + 16 * j);
#pragma GCC unroll 8
            for (int g = 0; g < 8; g++) acc[j] = _mm512_fmadd_ps(val, _mm512_permutexvar_ps(ix[g], x), acc[j]);
        }
    }
    t = now() - t;
    keep(acc, 12);
    return (ITERS / 4) * 96.0 / t / 1e9;
}

/* 5 and 6: the compiled product's forms (sparse_jit.c): B in registers, each kept value broadcast from memory inside its
 * FMA (vfmadd231ps zmm, zmm, m32{1to16}). 5: that FMA alone, 24 accumulators over 4 B registers; 6: its group, 8
 * vector loads of B rows (4 rows x 2 vectors) then 48 broadcast-operand FMAs (12 rows x 2 kept values x 2 vectors,
 * the rows' index pairs mixed). Written as asm with fixed registers, as the compiled product's code is: compiled from
 * intrinsics, the two FMAs of a value shared one vbroadcastss, and 32 live vectors spilled. */
#define BF(acc, b, d) "vfmadd231ps " #d "(%0)%{1to16%}, %%zmm" #b ", %%zmm" #acc "\n\t"
#define ZMM_ALL "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", \
    "xmm13", "xmm14", "xmm15", "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25",    \
    "xmm26", "xmm27", "xmm28", "xmm29", "xmm30", "xmm31"
static double probe_bcast(int group) {
    double t = now();
    /* the accumulators from zero: a stale register holding a subnormal would cost microcode assists */
#define Z(i) "vpxord %%zmm" #i ", %%zmm" #i ", %%zmm" #i "\n\t"
    __asm__ volatile(Z(0) Z(1) Z(2) Z(3) Z(4) Z(5) Z(6) Z(7) Z(8) Z(9) Z(10) Z(11) Z(12) Z(13) Z(14) Z(15) Z(16) Z(17) Z(18)
                     Z(19) Z(20) Z(21) Z(22) Z(23) ::: ZMM_ALL);
#undef Z
    if (!group) {
        __asm__ volatile("vmovaps (%0), %%zmm24\n\t vmovaps 64(%0), %%zmm25\n\t vmovaps 128(%0), %%zmm26\n\t vmovaps 192(%0), %%zmm27\n\t"
                         :: "r"(buf) : "memory", ZMM_ALL);
        for (long k = 0; k < ITERS; k++)
            __asm__ volatile(BF(0, 24, 0) BF(1, 25, 4) BF(2, 26, 8) BF(3, 27, 12) BF(4, 24, 16) BF(5, 25, 20) BF(6, 26, 24)
                             BF(7, 27, 28) BF(8, 24, 32) BF(9, 25, 36) BF(10, 26, 40) BF(11, 27, 44) BF(12, 24, 48)
                             BF(13, 25, 52) BF(14, 26, 56) BF(15, 27, 60) BF(16, 24, 64) BF(17, 25, 68) BF(18, 26, 72)
                             BF(19, 27, 76) BF(20, 24, 80) BF(21, 25, 84) BF(22, 26, 88) BF(23, 27, 92)
                             :: "r"(av) : "memory", ZMM_ALL);
    } else {
        for (long k = 0; k < ITERS / 2; k++)
            __asm__ volatile("vmovaps (%1), %%zmm24\n\t vmovaps 64(%1), %%zmm25\n\t vmovaps 384(%1), %%zmm26\n\t"
                             "vmovaps 448(%1), %%zmm27\n\t vmovaps 768(%1), %%zmm28\n\t vmovaps 832(%1), %%zmm29\n\t"
                             "vmovaps 1152(%1), %%zmm30\n\t vmovaps 1216(%1), %%zmm31\n\t"
                             BF(0, 24, 0) BF(1, 25, 0) BF(0, 28, 4) BF(1, 29, 4) BF(2, 26, 8) BF(3, 27, 8) BF(2, 30, 12)
                             BF(3, 31, 12) BF(4, 24, 16) BF(5, 25, 16) BF(4, 26, 20) BF(5, 27, 20) BF(6, 28, 24)
                             BF(7, 29, 24) BF(6, 30, 28) BF(7, 31, 28) BF(8, 26, 32) BF(9, 27, 32) BF(8, 30, 36)
                             BF(9, 31, 36) BF(10, 24, 40) BF(11, 25, 40) BF(10, 28, 44) BF(11, 29, 44) BF(12, 24, 48)
                             BF(13, 25, 48) BF(12, 30, 52) BF(13, 31, 52) BF(14, 26, 56) BF(15, 27, 56) BF(14, 28, 60)
                             BF(15, 29, 60) BF(16, 24, 64) BF(17, 25, 64) BF(16, 26, 68) BF(17, 27, 68) BF(18, 28, 72)
                             BF(19, 29, 72) BF(18, 30, 76) BF(19, 31, 76) BF(20, 24, 80) BF(21, 25, 80) BF(20, 28, 84)
                             BF(21, 29, 84) BF(22, 26, 88) BF(23, 27, 88) BF(22, 30, 92) BF(23, 31, 92)
                             :: "r"(av), "r"(buf) : "memory", ZMM_ALL);
    }
    /* an accumulator out before now() (whose result comes back in xmm0); the registers carry the sums from one asm
     * statement to the next, which gcc keeps (nothing vector runs between them) but does not promise: a probe, not
     * the product */
    float out[16];
    __asm__ volatile("vmovups %%zmm1, (%0)" :: "r"(out) : "memory");
    t = now() - t;
    sink = out[0];
    return (group ? ITERS / 2 * 48.0 : ITERS * 24.0) / t / 1e9;
}

static void *alloc64(int64_t bytes) { return aligned_alloc(64, (size_t)((bytes + 63) & ~(int64_t)63)); }

static int cmpd(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return (x > y) - (x < y); }

/* (Every loop above is unrolled so that the accumulators stay in registers.) */

/* Dense (fst_sgemm) and 2:4 (fst_spmm24, weight compressed beforehand) on 1 thread: median seconds of reps. */
static void gemms(int64_t M, int64_t N, int64_t K, int reps, double peak) {
    /* 64-byte aligned, as fst4j's tensors are (Native.malloc): with malloc's 16-byte alignment every vector store of C
     * would straddle two cache lines, which costs the 2:4 kernel (C updated once per 64-row K block) 5-15 %. */
    int64_t Kp = (K + 3) & ~(int64_t)3;
    float *A = alloc64(M * K * 4), *B = alloc64(K * N * 4), *C = alloc64(M * N * 4), *v = alloc64(M * Kp / 2 * 4);
    uint32_t *m = alloc64(M * ((Kp + 31) / 32) * 4);
    double *td = malloc(reps * sizeof(double)), *ts = malloc(reps * sizeof(double));
    if (!A || !B || !C || !v || !m || !td || !ts) { fprintf(stderr, "out of memory\n"); exit(1); }
    srand(1);
    for (int64_t i = 0; i < M * K; i++) A[i] = rand() / (float)RAND_MAX - 0.5f;
    for (int64_t i = 0; i < K * N; i++) B[i] = rand() / (float)RAND_MAX - 0.5f;
    if (fst_prune24_compress(M, K, A, K, v, m, NULL, 0, 1) != 0) { fprintf(stderr, "prune failed\n"); exit(1); }
    /* each product in its own run of calls after a warm-up call, as JMH times them: interleaved with the dense GEMM, the
     * 2:4 product at 512 x 4608 found its compressed weight evicted and ran ~20 % slower */
    for (int r = -1; r < reps; r++) {
        double t = now();
        if (fst_sgemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N, 1) != 0) { fprintf(stderr, "sgemm failed\n"); exit(1); }
        if (r >= 0) td[r] = now() - t;
    }
    for (int r = -1; r < reps; r++) {
        double t = now();
        if (fst_spmm24(M, N, K, 1.0f, v, m, B, N, 0.0f, C, N, 1) != 0) { fprintf(stderr, "spmm24 failed\n"); exit(1); }
        if (r >= 0) ts[r] = now() - t;
    }
    qsort(td, reps, sizeof(double), cmpd);
    qsort(ts, reps, sizeof(double), cmpd);
    double d = td[reps / 2], s = ts[reps / 2];
    double fd = (double)M * N * K / 16 / d / 1e9, fs = (double)M * N * Kp / 2 / 16 / s / 1e9;   /* FMA instructions / ns */
    printf("  %4ld x %5ld x %4ld   dense %6.3f ms %5.2f FMA/ns (%3.0f %%)   2:4 %6.3f ms %5.2f FMA/ns (%3.0f %%)   2:4 / dense %.2fx\n",
           (long)M, (long)N, (long)K, d * 1e3, fd, 100 * fd / peak, s * 1e3, fs, 100 * fs / peak, d / s);
    free(A); free(B); free(C); free(v); free(m); free(td); free(ts);
}

int main(void) {
    for (int i = 0; i < 64 * 96; i++) buf[i] = 1e-6f * (float)i;
    for (int i = 0; i < 64; i++) av[i] = 1e-3f * (float)i;
    double best[6] = { 0, 0, 0, 0, 0, 0 };
    for (int r = 0; r < 5; r++) {   /* best of 5: the VM's speed moves between runs */
        double x;
        if ((x = probe_regs()) > best[0]) best[0] = x;
        if ((x = probe_mem(0)) > best[1]) best[1] = x;
        if ((x = probe_mem(1)) > best[2]) best[2] = x;
        if ((x = probe_perm()) > best[3]) best[3] = x;
        if ((x = probe_bcast(0)) > best[4]) best[4] = x;
        if ((x = probe_bcast(1)) > best[5]) best[5] = x;
    }
    const double peak = best[0];
    printf("512-bit FMA instructions per ns, 1 thread, best of 5 (share of line 1):\n");
    printf("  1 register operands only (the core's FMA peak)          %5.2f  (100 %%)\n", best[0]);
    printf("  2 B as a 512-bit memory operand, one load per FMA        %5.2f  (%3.0f %%)\n", best[1], 100 * best[1] / peak);
    printf("  3 as 2, plus 2 scalar broadcasts per 12 FMAs (2:4 mix)   %5.2f  (%3.0f %%)\n", best[2], 100 * best[2] / peak);
    printf("  4 vpermps + FMA pairs (B in registers, lanes over rows)  %5.2f  (%3.0f %%)\n", best[3], 100 * best[3] / peak);
    printf("  5 B in registers, the value a broadcast memory operand   %5.2f  (%3.0f %%)\n", best[4], 100 * best[4] / peak);
    printf("  6 as 5 in the compiled product's group (8 loads/48 FMAs) %5.2f  (%3.0f %%)\n", best[5], 100 * best[5] / peak);
    printf("The shim, 1 thread, median of the runs (shim ISA %s), FMA/ns counting only the 2:4 product's kept half:\n",
           fst_spmm24_isa());
    gemms(256, 96, 576, 201, peak);     /* one 96-column block of B, hot in L1/L2: the kernel with the least driver work */
    gemms(64, 25088, 576, 11, peak);    /* the conv-as-GEMM shapes (Eq. 1, ResNet-18 at batch 8) */
    gemms(128, 6272, 1152, 11, peak);
    gemms(256, 1568, 2304, 11, peak);
    gemms(512, 392, 4608, 11, peak);
    return 0;
}
