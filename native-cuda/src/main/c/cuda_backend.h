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

/* FST_OK, or FST_EUNAVAIL with the reason in fst_cuda_err. */
FST_INTERNAL int fst_backend_ready(void);
/* Runs kernel (FST_K_*) on blocks x FST_BLOCK threads with its argument struct; asynchronous on the device. */
FST_INTERNAL int fst_backend_launch(int kernel, int64_t blocks, const void *args);
/* Whether [p, p + bytes) lies inside one live device allocation: the emulator checks it (every kernel argument
 * is checked before a launch there), the device cannot cheaply and answers 1. */
FST_INTERNAL int fst_backend_owns(const void *p, size_t bytes);

#ifdef __cplusplus
}
#endif
#endif
