/* Implicit im2col: the GEMM and 2:4 kernels read B = im2col(x) (or its transpose) by computing the pieces
 * they pack, instead of reading a materialised [C*kh*kw, N*Ho*Wo] matrix. Orientation as conv.c. */
#ifndef FST4J_LOWERING_H
#define FST4J_LOWERING_H
#include <stdint.h>

typedef struct {
    const float *x;                     /* contiguous [n, c, h, w] */
    int64_t n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo;
} fst_lowering;

/* 0 when the geometry is consistent (sizes positive, ho/wo the conv's output size), else FST_EINVAL. */
int fst_lowering_check(const fst_lowering *s);

/* out[0:ncols] = im2col(x)[r, col0 : col0 + ncols] (columns run over images, then output rows, then columns). */
void fst_lowering_row(const fst_lowering *s, int64_t r, int64_t col0, int64_t ncols, float *out);
#endif
