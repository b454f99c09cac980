/* The IR shift of Eq. 8-10 read at Eq. 7's kept positions of one segment (an image's plane of one channel), as
 * fst_shift_gather's segments (prune.c) are: out[t] = s[2q] + coeff * s[2q + shift] for q = q0 + t, the neighbour
 * wrapped (circular) or dropped at the segment's ends; coeff == 0: s[2q] (neighbours not read). fst_shift_gather's
 * segments (prune.c) and Eq. 3 without packing, which copies dY's images with the shift applied (wgrad_avx512.c): one
 * definition, so the two give the same bits (no FMA contraction under -std=c11). */
#ifndef FST4J_SHIFT_ROW_H
#define FST4J_SHIFT_ROW_H
#include <stdint.h>

static inline void fst_shift_row(const float *restrict s, int64_t seg, int64_t q0, int64_t w, int shift, float coeff,
                                 int circular, float *restrict out) {
    if (coeff == 0.0f) {
        for (int64_t t = 0; t < w; t++) out[t] = s[2 * (q0 + t)];
        return;
    }
    int64_t t = 0;
    if (shift == 1) {
        const int64_t pairs = seg / 2, end = q0 + w < pairs ? q0 + w : pairs;   /* q < pairs has its right neighbour */
        for (int64_t q = q0; q < end; q++, t++) out[t] = s[2 * q] + coeff * s[2 * q + 1];
        if (t < w) out[t] = circular ? s[seg - 1] + coeff * s[0] : s[seg - 1];   /* the odd segment's last kept value */
        return;
    }
    if (q0 == 0) { out[0] = circular ? s[0] + coeff * s[seg - 1] : s[0]; t = 1; }
    for (; t < w; t++) out[t] = s[2 * (q0 + t)] + coeff * s[2 * (q0 + t) - 1];
}
#endif
