/* The largest float at or below a positive double: a float compare against it gives exactly the double compare
 * (every float above it is above t), which lets ReSprop's selection run in float vectors. Shared by the CPU loop
 * (prune.c) and the CUDA launcher (cuda_ops.c) so both keep the same bits; no libm, so the CUDA library needs none. */
#ifndef FST4J_FLOAT_BELOW_H
#define FST4J_FLOAT_BELOW_H
#include <stdint.h>
#include <string.h>

static inline float fst_float_at_or_below(double t) {   /* t > 0 and finite (callers check) */
    float f = (float)t;
    if ((double)f > t) { uint32_t b; memcpy(&b, &f, 4); b--; memcpy(&f, &b, 4); }   /* positive: one ulp toward 0 */
    return f;
}
#endif
