/* The output columns of one kernel tap that read inside the input row, shared by the plain (conv.c), dilated
 * (conv_general.c) and depthwise (conv_depthwise.c) lowerings. */
#ifndef FST4J_CONV_RANGE_H
#define FST4J_CONV_RANGE_H
#include <stdint.h>

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
