/* Internal interface between cuda_ops.c (argument checks and kernel launches, shared) and the two back ends that
 * implement memory and launching: cuda.c (the real device, libfst4j_cuda.so) and cuda_emu.cc (the host emulator,
 * libfst4j_cuda_emu.so, which runs the same kernel bodies on the CPU). Not part of the public API. */
#ifndef FST4J_CUDA_BACKEND_H
#define FST4J_CUDA_BACKEND_H
#include "fst4j_cuda.h"
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

#define FST_INTERNAL __attribute__((visibility("hidden")))

/* Per-thread message of the last failure (fst_cuda_last_error); fst_cuda_fail formats it and returns FST_ECUDA. */
FST_INTERNAL extern __thread char fst_cuda_err[768];
FST_INTERNAL int fst_cuda_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
FST_INTERNAL const char *fst_cuda_kernel_name(int kernel);

/* FST4J_CUDA_KPROF=1 (cuda_ops.c): t0 = fst_kprof_begin() before a call, fst_kprof_end(name, sub, items, t0) after it
 * books the call's device time under name[:sub]; both do nothing when the profile is off (t0 == 0). */
FST_INTERNAL int fst_kprof_on(void);
FST_INTERNAL double fst_kprof_begin(void);
FST_INTERNAL void fst_kprof_end(const char *name, const char *sub, int64_t items, double t0);

/* FST_OK, or FST_EUNAVAIL with the reason in fst_cuda_err. */
FST_INTERNAL int fst_backend_ready(void);
/* Runs kernel (FST_K_*) on blocks x threads threads (FST_BLOCK for the thread kernels, the list's count for the block
 * kernels) with smem bytes of dynamic shared memory and its argument struct; asynchronous on the device. */
FST_INTERNAL int fst_backend_launch(int kernel, int64_t blocks, int threads, int smem, const void *args);
/* 1 in the host emulator, 0 on the device */
FST_INTERNAL int fst_backend_emulated(void);
/* Whether [p, p + bytes) lies inside one live device allocation: the emulator checks it (every kernel argument
 * is checked before a launch there), the device cannot cheaply and answers 1. */
FST_INTERNAL int fst_backend_owns(const void *p, size_t bytes);

/* Shared argument checks (cuda_ops.c) of the vendor-library entry points, used by both back ends so that the device
 * and the emulator refuse the same calls with the same messages. FST_OK or FST_EINVAL / FST_ENULL with the message
 * in fst_cuda_err. *nothing = 1 when there is nothing to compute (M == 0 or N == 0). */
FST_INTERNAL int fst_gemm_ex_check(const char *fn, int transA, int transB, int64_t M, int64_t N, int64_t K, const void *A, int atype, int64_t lda,
                                   const void *B, int btype, int64_t ldb, const void *C, int ctype, int64_t ldc, int tf32, int *nothing);
/* fst_gemm_ex_check (fn: the entry point its messages name) for fst_cuda_gemm_ex_batched: the first product's checks,
 * then the strides and every product's extent (the emulator: from the first product's start to the last one's end inside one device block) */
FST_INTERNAL int fst_gemm_ex_batched_check(int transA, int transB, int64_t M, int64_t N, int64_t K, const void *A, int atype, int64_t lda,
                                           int64_t strideA, const void *B, int btype, int64_t ldb, int64_t strideB, const void *C,
                                           int ctype, int64_t ldc, int64_t strideC, int64_t batch, int tf32, int *nothing);
FST_INTERNAL int fst_splt_check_plan(int64_t M, int64_t N, int64_t K, int ab_type, int cd_type);
/* p non-NULL, 16-byte aligned and (emulator) inside one live device block of at least bytes */
FST_INTERNAL int fst_splt_check_ptr(const char *fn, const char *what, const void *p, size_t bytes);
/* bytes per element of a cudaDataType code (0 when not one we use) */
FST_INTERNAL int fst_type_bytes(int type);

#ifdef __cplusplus
}
#endif
#endif
