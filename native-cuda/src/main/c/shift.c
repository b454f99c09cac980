#include "fst4j.h"
#include "parallel.h"
#include <stddef.h>

typedef struct { const float *dy; float *out; int64_t seg; int shift; float coeff; int circular; } shift_job;

static void shift_task(void *p, int64_t r0, int64_t r1) {
    const shift_job *j = p;
    const int64_t seg = j->seg;
    const float coeff = j->coeff;
    for (int64_t rs = r0; rs < r1; rs++) {
        const float *s = j->dy + rs * seg;
        float *o = j->out + rs * seg;
        if (j->shift == 1) {
            for (int64_t q = 0; q + 1 < seg; q++) o[q] = s[q] + coeff * s[q + 1];
            o[seg - 1] = j->circular ? s[seg - 1] + coeff * s[0] : s[seg - 1];
        } else {
            o[0] = j->circular ? s[0] + coeff * s[seg - 1] : s[0];
            for (int64_t q = 1; q < seg; q++) o[q] = s[q] + coeff * s[q - 1];
        }
    }
}

int fst_shift_add(const float *dy, float *out, int64_t rows, int64_t len, int64_t seg,
                  int shift, float coeff, int circular, int nthreads) {
    if (!dy || !out) return FST_ENULL;
    if (rows < 0 || len < 0 || seg <= 0 || len % seg != 0 || (shift != 1 && shift != -1) || nthreads < 1)
        return FST_EINVAL;
    if (dy == out && rows > 0 && len > 0) return FST_EINVAL;
    shift_job j = { dy, out, seg, shift, coeff, circular };
    int64_t segs = rows * (len / seg);
    fst_parallel(segs, rows * len > 65536 ? 4 * (int64_t)nthreads : 1, nthreads, shift_task, &j);
    return FST_OK;
}
