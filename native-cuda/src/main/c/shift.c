#include "overlap.h"
#include "alloc.h"
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
    /* out[j] reads dy[j +- 1] after another element may have written it: no overlap at all (not only out == dy) */
    if (rows > 0 && len > 0 && rows > INT64_MAX / 4 / len) return FST_EINVAL;
    if (rows > 0 && len > 0 && fst_overlap(out, 4 * rows * len, dy, 4 * rows * len)) return FST_EINVAL;
    shift_job j = { dy, out, seg, shift, coeff, circular };
    int64_t segs = rows * (len / seg);
    fst_parallel(segs, rows * len > 65536 ? 4 * (int64_t)nthreads : 1, nthreads, shift_task, &j);
    return FST_OK;
}

/* fst_shift_gather_at (fst4j.h): the shift of fst_shift_add read only at the given positions.
 * The positions come in runs: where the authors' whole-position patterns keep every other position of a plane, the kept
 * list is p, p + 2, p + 4, ... with every neighbour inside the segment. Such a run (RUN_MIN entries or more) is computed as
 * o[i] = s[2i] + coeff * s[2i + shift], a loop the compiler vectorises as it does fst_shift_gather's (the same operations in
 * the same order, so the same bits); the other positions one by one through their neighbour list. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(FST_NO_CLONES)
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif
#define RUN_MIN 8

/* len > 0: a regular run of len positions from q0; len < 0: -len positions from q0 taken one by one */
typedef struct { int32_t q0, len; } shift_run;

typedef struct { const float *dy; int64_t ldd; float *out; int64_t ldo; const int32_t *pos; const int32_t *nb; int64_t npos; float coeff;
                 int shift; const shift_run *runs; int64_t nruns; } shift_at_job;

/* One row: out[q] = s[pos[q]] (+ coeff * s[nb[q]] where nb[q] >= 0; a select rather than an added zero, so that -0.0
 * stays -0.0 as in fst_shift_add). */
static void CLONES shift_at_row(const float *restrict s, float *restrict o, const shift_at_job *j) {
    const int32_t *pos = j->pos, *nb = j->nb;
    const float coeff = j->coeff;
    const int shift = j->shift;
    for (int64_t r = 0; r < j->nruns; r++) {
        const int64_t q0 = j->runs[r].q0, len = j->runs[r].len;
        if (len > 0) {
            const float *a = s + pos[q0];
            float *d = o + q0;
            if (nb) for (int64_t i = 0; i < len; i++) d[i] = a[2 * i] + coeff * a[2 * i + shift];
            else for (int64_t i = 0; i < len; i++) d[i] = a[2 * i];
        } else {
            for (int64_t q = q0; q < q0 - len; q++) {
                const float v = s[pos[q]];
                o[q] = nb && nb[q] >= 0 ? v + coeff * s[nb[q]] : v;
            }
        }
    }
}

static void shift_at_task(void *p, int64_t r0, int64_t r1) {
    const shift_at_job *j = p;
    for (int64_t r = r0; r < r1; r++) shift_at_row(j->dy + r * j->ldd, j->out + r * j->ldo, j);
}

/* Whether position q continues a regular run from q - 1 (or may start one): stride 2, and its neighbour the next (previous)
 * position itself, inside the segment (with no IR, any position qualifies). */
static int regular_at(const int32_t *pos, const int32_t *nb, int64_t q, int shift) {
    return !nb || (nb[q] >= 0 && nb[q] == pos[q] + shift);
}

int fst_shift_gather_at(const float *dy, int64_t ldd, float *out, int64_t ldo, int64_t rows, int64_t len, int64_t seg,
                        const int32_t *pos, int64_t npos, int shift, float coeff, int circular, int nthreads) {
    if (!dy || !out || (npos > 0 && !pos)) return FST_ENULL;
    if (rows < 0 || len < 0 || len > INT32_MAX || seg <= 0 || len % seg != 0 || npos < 0 || (shift != 1 && shift != -1) || nthreads < 1
        || (rows > 1 && (ldd < len || ldo < npos))) return FST_EINVAL;
    for (int64_t q = 0; q < npos; q++) if (pos[q] < 0 || pos[q] >= len) return FST_EINVAL;
    if (rows == 0 || npos == 0) return FST_OK;
    int32_t *nb = NULL;
    shift_run *runs = fst_malloc((size_t)npos * sizeof(shift_run));
    if (!runs) return FST_ENOMEM;
    if (coeff != 0.0f) {
        nb = fst_malloc((size_t)npos * sizeof(int32_t));
        if (!nb) { free(runs); return FST_ENOMEM; }
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
    /* runs: maximal stretches of regular positions 2 apart, at least RUN_MIN long; the rest merged into one-by-one stretches */
    int64_t nruns = 0;
    for (int64_t q = 0; q < npos;) {
        int64_t e = q + 1;
        if (regular_at(pos, nb, q, shift))
            while (e < npos && pos[e] - pos[e - 1] == 2 && regular_at(pos, nb, e, shift)) e++;   /* no overflow near INT32_MAX */
        if (e - q >= RUN_MIN) {
            runs[nruns++] = (shift_run){ (int32_t)q, (int32_t)(e - q) };
        } else if (nruns > 0 && runs[nruns - 1].len < 0) {
            runs[nruns - 1].len -= (int32_t)(e - q);
        } else {
            runs[nruns++] = (shift_run){ (int32_t)q, (int32_t)-(e - q) };
        }
        q = e;
    }
    shift_at_job j = { dy, ldd, out, ldo, pos, nb, npos, coeff, shift, runs, nruns };
    fst_parallel(rows, rows * npos > 65536 ? 4 * (int64_t)nthreads : 1, nthreads, shift_at_task, &j);
    free(nb);
    free(runs);
    return FST_OK;
}
