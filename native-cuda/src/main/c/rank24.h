/* The 2:4 magnitude rule on one group of 4 float bit patterns (prune.c's GROUP24, Sparsifier.Magnitude24): keys are
 * |x| with every NaN above +Inf; an entry is pruned when at least two others beat it (a larger key, or an equal key at a
 * lower index). Branch-free, since on random weights every comparison is a coin flip. m[i] = all ones where entry i is
 * pruned, else 0. Shared by the SR-STE decay (prune.c) and the SGD step with that decay fused in (pool.c). */
#ifndef FST4J_RANK24_H
#define FST4J_RANK24_H
#include <stdint.h>

static inline void fst_pruned24(const uint32_t *wb, uint32_t m[4]) {
    uint32_t k0 = wb[0] & 0x7fffffffu, k1 = wb[1] & 0x7fffffffu, k2 = wb[2] & 0x7fffffffu, k3 = wb[3] & 0x7fffffffu;
    k0 = k0 < 0x7f800001u ? k0 : 0x7f800001u; k1 = k1 < 0x7f800001u ? k1 : 0x7f800001u;
    k2 = k2 < 0x7f800001u ? k2 : 0x7f800001u; k3 = k3 < 0x7f800001u ? k3 : 0x7f800001u;
    const int32_t c01 = k1 > k0, c02 = k2 > k0, c03 = k3 > k0, c12 = k2 > k1, c13 = k3 > k1, c23 = k3 > k2;
    m[0] = -(uint32_t)(c01 + c02 + c03 >= 2);
    m[1] = -(uint32_t)(1 - c01 + c12 + c13 >= 2);
    m[2] = -(uint32_t)(2 - c02 - c12 + c23 >= 2);
    m[3] = -(uint32_t)(3 - c03 - c13 - c23 >= 2);
}
#endif
