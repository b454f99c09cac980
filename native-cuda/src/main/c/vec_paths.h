/* The per-plane vector kernels of col2im and max pooling, compiled in their own objects with -mavx512f or -mavx2 and
 * called only where the CPU has that family (fst_vec_switch, cpu_host.h): one declaration for the callers (conv.c, pool.c)
 * and the definitions, so that the compiler checks both against it. */
#ifndef FST4J_VEC_PATHS_H
#define FST4J_VEC_PATHS_H
#include <stdint.h>

/* col2im at stride 2 of one plane (col2im_avx512.c, col2im_avx2.c): cols is the matrix row of tap (0, 0) of the plane's
 * channel at its image's first column, ld the matrix's row stride */
void fst_col2im_s2_plane_avx512(const float *cols, int64_t ld, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t ph,
                                int64_t pw, int64_t ho, int64_t wo, float *plane);
void fst_col2im_s2_plane_avx2(const float *cols, int64_t ld, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t ph,
                              int64_t pw, int64_t ho, int64_t wo, float *plane);

/* max pooling's 2x2 / stride 2 window over one plane (pool_avx512.c, pool_avx2.c); the backward returns 0 (nothing to
 * trust in dx) where an index lies outside its window's 2x2 block */
void fst_maxpool2x2_plane_avx512(const float *x, int64_t w, int64_t ho, int64_t wo, float *y, int32_t *ix);
void fst_maxpool2x2_plane_avx2(const float *x, int64_t w, int64_t ho, int64_t wo, float *y, int32_t *ix);
int fst_maxpool2x2_bwd_plane_avx512(const float *dy, const int32_t *ix, int64_t h, int64_t w, int64_t ho, int64_t wo, float *dx);
/* ... and the one fst_maxpool2d runs for such a plane on this CPU (pool.c: the vector kernel or the scalar loop), for
 * batch norm's fused pooling (norm.c) */
void fst_maxpool2x2_plane(const float *x, int64_t w, int64_t ho, int64_t wo, float *y, int32_t *ix);
/* ... and the backward's scalar plane (any window): 1 where an index lay outside the plane */
int fst_maxpool_bwd_plane(const float *dy, const int32_t *ix, int64_t plane, int64_t out, float *dx);
#endif
