/* The 2:4 product with its register choices compiled at run time (sparse_jit.c, AVX-512 only). */
#ifndef FST4J_SPARSE_JIT_H
#define FST4J_SPARSE_JIT_H
#include <stddef.h>
#include <stdint.h>
#include "lowering.h"
typedef struct fst_jit24 fst_jit24;
/* Code for S (M x K, compressed as fst_spmm24 takes it), reading B in place with rows ldb floats apart (ldb > 0: a
 * materialised B, whole 32-column pieces only) or from its own staging buffer (ldb == 0: any columns, and the implicit
 * lowering); NULL when memory or an executable mapping cannot be had. The calling thread owns it, and it stays valid
 * until that thread's next fst_jit24_get (which returns it again, unwritten, for an S with the same bits). */
fst_jit24 *fst_jit24_get(int64_t M, int64_t K, const float *values, const uint32_t *meta, int64_t ldb);
/* The same for a convolution's Eq. 1 or Eq. 2 on the implicit lowering, reading x straight from a zero-padded copy
 * instead of lowering it: stride 1, "same" padding of an odd kernel, output rows of 14 to 32 columns (else NULL, as
 * fst_jit24_conv_fits says). */
int fst_jit24_conv_fits(const fst_lowering *low);
fst_jit24 *fst_jit24_get_conv(int64_t M, const float *values, const uint32_t *meta, const fst_lowering *low);
/* Pieces (of 32 output columns: one row, or two) per image of code from fst_jit24_get_conv. */
int64_t fst_jit24_conv_pieces(const fst_jit24 *j);
/* C[:, columns of pieces u0..u1 of the call's images] = alpha * S * im2col(x) + beta * C, for code from
 * fst_jit24_get_conv (piece u: image u / pieces, that image's piece u % pieces); row r of image i's columns at
 * C + r * ldc + i * ld_img (ld_img = ho*wo: C [M, n*ho*wo]; ldc = ho*wo, ld_img = M*ho*wo: C in NCHW). */
int fst_jit24_conv_range(const fst_jit24 *j, int64_t u0, int64_t u1, float alpha, float beta, const float *x, float *C,
                         int64_t ldc, int64_t ld_img);
/* C[:, n0:n1] = alpha * S * B[:, n0:n1] + beta * C (B a matrix, or im2col(x) when low != NULL). Code built with
 * ldb > 0 needs B a matrix with that row stride and n1 - n0 a multiple of 32 (else FST_EINVAL). */
int fst_jit24_range(const fst_jit24 *j, int64_t n0, int64_t n1, float alpha, float beta, const float *B, int64_t ldb,
                    float *C, int64_t ldc, const fst_lowering *low);
#endif
