#include "fst4j.h"
#include <stddef.h>

int fst_shift_add(const float *dy, float *out, int64_t rows, int64_t len, int64_t seg,
                  int shift, float coeff, int circular, int nthreads) {
    if (!dy || !out) return FST_ENULL;
    if (rows < 0 || len < 0 || seg <= 0 || len % seg != 0 || (shift != 1 && shift != -1) || nthreads < 1)
        return FST_EINVAL;
    if (dy == out && rows > 0 && len > 0) return FST_EINVAL;
    int64_t segs = len / seg;
    #pragma omp parallel for num_threads(nthreads) schedule(static) if (rows * len > 65536)
    for (int64_t rs = 0; rs < rows * segs; rs++) {
        const float *s = dy + rs * seg;
        float *o = out + rs * seg;
        if (shift == 1) {
            for (int64_t j = 0; j + 1 < seg; j++) o[j] = s[j] + coeff * s[j + 1];
            o[seg - 1] = circular ? s[seg - 1] + coeff * s[0] : s[seg - 1];
        } else {
            o[0] = circular ? s[0] + coeff * s[seg - 1] : s[0];
            for (int64_t j = 1; j < seg; j++) o[j] = s[j] + coeff * s[j - 1];
        }
    }
    return FST_OK;
}
