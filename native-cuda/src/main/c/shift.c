#include "fst4j.h"
#include "parallel.h"
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

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

/* fst_shift_gather_at (fst4j.h): the shift of fst_shift_add read only at the given positions */
typedef struct { const float *dy; int64_t ldd; float *out; int64_t ldo; const int32_t *pos; const int32_t *nb; int64_t npos; float coeff; } shift_at_job;

/* One row: out[q] = s[pos[q]] (+ coeff * s[nb[q]] where nb[q] >= 0; a select rather than an added zero, so that -0.0
 * stays -0.0 as in fst_shift_add). */
static void shift_at_row(const float *s, float *o, const int32_t *pos, const int32_t *nb, int64_t npos, float coeff) {
    for (int64_t q = 0; q < npos; q++) {
        const float v = s[pos[q]];
        o[q] = nb && nb[q] >= 0 ? v + coeff * s[nb[q]] : v;
    }
}

/* Scalar: 16-lane AVX-512 gathers measured slower in the step (3.75 % of resnet-small's samples against 2.99 %). */
static void shift_at_task(void *p, int64_t r0, int64_t r1) {
    const shift_at_job *j = p;
    for (int64_t r = r0; r < r1; r++) shift_at_row(j->dy + r * j->ldd, j->out + r * j->ldo, j->pos, j->nb, j->npos, j->coeff);
}

int fst_shift_gather_at(const float *dy, int64_t ldd, float *out, int64_t ldo, int64_t rows, int64_t len, int64_t seg,
                        const int32_t *pos, int64_t npos, int shift, float coeff, int circular, int nthreads) {
    if (!dy || !out || (npos > 0 && !pos)) return FST_ENULL;
    if (rows < 0 || len < 0 || len > INT32_MAX || seg <= 0 || len % seg != 0 || npos < 0 || (shift != 1 && shift != -1) || nthreads < 1
        || (rows > 1 && (ldd < len || ldo < npos))) return FST_EINVAL;
    for (int64_t q = 0; q < npos; q++) if (pos[q] < 0 || pos[q] >= len) return FST_EINVAL;
    if (rows == 0 || npos == 0) return FST_OK;
    int32_t *nb = NULL;
    if (coeff != 0.0f) {
        nb = malloc((size_t)npos * sizeof(int32_t));
        if (!nb) return FST_EINVAL;
        /* the segment's start follows ascending positions without a division (a step back divides) */
        int64_t s0 = 0;
        for (int64_t q = 0; q < npos; q++) {
            const int64_t p = pos[q];
            if (p < s0 || p >= s0 + 4 * seg) s0 = p - p % seg;
            while (p >= s0 + seg) s0 += seg;
            const int64_t t = p - s0 + shift;
            nb[q] = (int32_t)(t >= 0 && t < seg ? s0 + t : circular ? s0 + (t + seg) % seg : -1);
        }
    }
    shift_at_job j = { dy, ldd, out, ldo, pos, nb, npos, coeff };
    fst_parallel(rows, rows * npos > 65536 ? 4 * (int64_t)nthreads : 1, nthreads, shift_at_task, &j);
    free(nb);
    return FST_OK;
}
