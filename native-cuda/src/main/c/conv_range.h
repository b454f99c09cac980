/* What the plain (conv.c), dilated (conv_general.c) and depthwise (conv_depthwise.c) lowerings share: the check of one
 * convolution's geometry, and the output columns of one kernel tap that read inside the input row. */
#ifndef FST4J_CONV_RANGE_H
#define FST4J_CONV_RANGE_H
#include <stdint.h>
#include "fst4j.h"

/* A convolution's geometry as the lowerings take it (dilation 1 for the plain one): sizes positive (n >= 0), each below
 * 2^31 as the Java side's int sizes are (Conv.Geom), C*kh*kw, Ho*Wo and N*Ho*Wo too, checked in an order in which no
 * product wraps int64 (C*kh first: C*kh*kw of three factors near 2^31 would); the dilated kernel no larger than the
 * padded input (else the truncated division gives Ho = 1 for a kernel that reads past it); Ho, Wo the geometry's. */
static inline int fst_conv_geom_check(int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                                      int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t ho, int64_t wo) {
    if (n < 0 || c <= 0 || h <= 0 || w <= 0 || kh <= 0 || kw <= 0 || sh <= 0 || sw <= 0 || ph < 0 || pw < 0 || dh <= 0 || dw <= 0
        || ho <= 0 || wo <= 0) return FST_EINVAL;
    const int64_t M = INT32_MAX;
    if (n > M || c > M || h > M || w > M || kh > M || kw > M || sh > M || sw > M || ph > M || pw > M || dh > M || dw > M
        || ho > M || wo > M) return FST_EINVAL;
    if (c * kh > M || c * kh * kw > M || ho * wo > M || n * ho * wo > M) return FST_EINVAL;
    const int64_t ekh = dh * (kh - 1) + 1, ekw = dw * (kw - 1) + 1;   /* the dilated kernel's extent */
    if (ekh > h + 2 * ph || ekw > w + 2 * pw) return FST_EINVAL;
    if ((h + 2 * ph - ekh) / sh + 1 != ho || (w + 2 * pw - ekw) / sw + 1 != wo) return FST_EINVAL;
    return FST_OK;
}

/* Output columns [lo, hi) of a row of wo outputs whose input column ow*sw - pw + off lies in [0, w); off is the tap's
 * column offset (j, or j*dw when dilated). Computed once per tap instead of tested per column. */
static inline void fst_tap_columns(int64_t w, int64_t pw, int64_t sw, int64_t wo, int64_t off, int64_t *lo, int64_t *hi) {
    const int64_t a = pw - off;                  /* need ow*sw >= a */
    *lo = a <= 0 ? 0 : (a + sw - 1) / sw;
    const int64_t b = w - 1 + pw - off;          /* need ow*sw <= b */
    *hi = b < 0 ? 0 : b / sw + 1;
    if (*hi > wo) *hi = wo;
    if (*lo > *hi) *lo = *hi;
}
#endif
