/* Implicit im2col: the GEMM and 2:4 kernels read B = im2col(x) (or its transpose) by computing the pieces
 * they pack, instead of reading a materialised [C*kh*kw, N*Ho*Wo] matrix. Orientation as conv.c. */
#ifndef FST4J_LOWERING_H
#define FST4J_LOWERING_H
#include <stdint.h>
#include <string.h>

typedef struct {
    const float *x;                     /* contiguous [n, c, h, w] */
    int64_t n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo;
    int order;                          /* rows: 0 (c, i, j), c-major as im2col; 1 (i, j, c), tap-major */
    /* A selection of im2col (fst_sgemm_lowered_at; zero, as positional initialisers leave them: all of it). Column q is
     * im2col's column cols[q] (ncols of them; plans are then window, segment or gather plans); row r is im2col's row row0 + r * rstep
     * (nrows of them, when rstep > 0). The authors' random activation patterns keep columns that follow no stride, and
     * their checkerboards keep different columns in even and odd rows. */
    const int32_t *cols;
    int64_t ncols, row0, rstep, nrows;
} fst_lowering;

/* Whether rows row0 + r * rstep (r < nrows; rstep >= 1, row0, nrows >= 0) leave [0, K): by division, where the product
 * (nrows - 1) * rstep could wrap (rstep 2^62 passed the old test and read far outside x). */
static inline int fst_rows_outside(int64_t row0, int64_t rstep, int64_t nrows, int64_t K) {
    return nrows > 0 && (row0 >= K || (nrows > 1 && rstep > (K - 1 - row0) / (nrows - 1)));
}

/* Rows and columns of the (selected) lowering. */
static inline int64_t fst_lowering_rows(const fst_lowering *s) { return s->rstep > 0 ? s->nrows : s->c * s->kh * s->kw; }
static inline int64_t fst_lowering_cols(const fst_lowering *s) { return s->cols ? s->ncols : s->n * s->ho * s->wo; }

/* Row r's channel and tap (i * kw + j) in either order. */
static inline void fst_lowering_rc(const fst_lowering *s, int64_t r, int64_t *ch, int64_t *tap) {
    const int64_t kk = s->kh * s->kw;
    if (s->rstep > 0) r = s->row0 + r * s->rstep;
    if (s->order) { *ch = r % s->c; *tap = r / s->c; } else { *ch = r / kk; *tap = r % kk; }
}

/* 0 when the geometry is consistent (sizes positive, ho/wo the conv's output size), else FST_EINVAL. */
int fst_lowering_check(const fst_lowering *s);

/* out[0:ncols] = im2col(x)[r, col0 : col0 + ncols] (columns run over images, then output rows, then columns). */
void fst_lowering_row(const fst_lowering *s, int64_t r, int64_t col0, int64_t ncols, float *out);

/* A lowering plan: im2col(x)[r, col0 : col0 + ncols] for every row r of a column block, by AVX-512 masked loads
 * (lowering_avx512.c). For vertical stride 1 with wo * sw == w and sw 1 or 2 (3x3 pad 1 and 1x1 at stride 1;
 * the half-K lowering): then an output column's input element sits at one flat offset per tap from its image's
 * plane (2 * position at sw = 2), so each vector of 16 columns is one masked load (two when it spans two images;
 * two loads and one permute at sw = 2), with the padding, the wrapped border columns and the columns past ncols
 * masked to zero. Other geometries with strides or narrow planes (the stride-2 convolutions, planes under 16
 * columns) take a segment plan (fst_lseg below) where output rows have 5 columns or more at horizontal stride 1, 2 or 4,
 * else a gather plan (fst_lplan.gather). Masked-off lanes are never read. Built once per column block,
 * shared by all its c*kh*kw rows. */
typedef struct { int64_t off[2]; uint32_t mask[2]; } fst_lvec;   /* per tap and vector: image a, image a + 1 */
/* A segment plan (strided rows: vertical stride > 1, or output rows narrower than the plane, at horizontal stride 1, 2 or 4):
 * a vector's 16 columns fall into at most FST_LSEG runs of one output row each (output rows of 5 columns or more); a
 * run's input elements lie in one input row, sw apart (1, 2 or 4), within 16 * sw floats. Per tap, vector and run: the
 * element offset of the run's first lane from the row's channel plane of image 0 (as the gather plan's), the load mask
 * of that window (bit sw * (lane - first) for each lane in bounds: sw masked loads), the first lane, and the lanes it
 * fills; the run is moved into place by one permute and one blend (two of each at sw = 4). Runs with no lane in bounds are left out,
 * and a vector's list is filled up with empty runs (all masks zero: no element read, nothing blended), so that every
 * vector takes the plan's nseg runs without a data-dependent branch. */
#define FST_LSEG 4
typedef struct { int32_t off; uint16_t lanes, first; uint64_t lmask; } fst_lseg;
/* A window plan (selected columns only, fst_sgemm_lowered_at): each vector's 16 columns read, per image (at most two), a
 * window of 32 consecutive floats of the channel plane, whatever their order inside it: two masked loads and one
 * permute per image, where the gather plan pays a 16-lane gather (~5x). The authors' random patterns keep 16 of every
 * 32 positions of a plane, so a stride-1 convolution whose output rows are as wide as its input (3x3 "same", 1x1) reads
 * each vector from one window. Per tap and vector: each image's window offset (as the gather plan's offsets: image *
 * c*h*w + flat index), its load mask, and the lanes in bounds (others zero); per vector: each lane's index into its
 * window (one byte) and the lanes of the second image. */
typedef struct { int32_t off[2]; uint32_t mask[2]; uint16_t lanes; } fst_lwin;
typedef struct {
    const fst_lowering *s;
    const float *x;
    int64_t plane, kk, ncols;           /* h * w, kh * kw, columns in the block */
    int nvec, sw;                       /* 16-column vectors per row (>= ceil(ncols / 16)) */
    fst_lvec *v;                        /* [kk][nvec] */
    /* Other geometries (vertical stride > 1, strided columns that are not the half-K case, planes under 16
     * columns): a gather plan. Per tap and vector, 16 int32 element offsets from the row's channel plane of image 0
     * (image * c*h*w + iy * w + ix) and the lane mask of in-bounds columns; a row is one masked gather per vector. */
    int gather;
    const int32_t *gidx;                /* [kk][nvec][16] */
    const uint16_t *gmask;              /* [kk][nvec] */
    const fst_lseg *seg;                /* a segment plan: [kk][nvec][FST_LSEG] (gather == 0, v == NULL) */
    int nseg;                           /* ... its most runs in a vector (1..FST_LSEG): the runs each vector takes */
    const fst_lwin *win;                /* a window plan: [kk][nvec] (gather == 0, v == seg == NULL) */
    const uint8_t *widx;                /* ... [nvec][16] lane indices into the lane's window */
    const uint16_t *wsplit;             /* ... [nvec] lanes of the vector's second image */
} fst_lplan;

/* Bytes of memory a plan of nvec vectors needs (the table and the build's per-column scratch). */
size_t fst_lplan_bytes(const fst_lowering *s, int nvec);
/* Builds the plan in mem (fst_lplan_bytes(s, nvec) bytes, 64-byte aligned) when the CPU has AVX-512 (and FST4J_ISA
 * does not force a lesser family) and the geometry qualifies; returns 1, or 0 when the caller must use
 * fst_lowering_row. nvec * 16 >= ncols; vectors past ncols are all zeros. */
int fst_lplan_build(fst_lplan *p, const fst_lowering *s, int64_t col0, int64_t ncols, int nvec, void *mem);
/* Row r into out: whole vectors (nvec * 16 floats, zeros past ncols) at out, out + vstride, out + 2 * vstride...
 * where vector v lands at out + (v / per) * jump + (v % per) * 16: per = 0 means contiguous (out + 16 v). With
 * tail != 0 only ncols floats are written (a masked last store). */
void fst_lplan_row(const fst_lplan *p, int64_t r, float *out, int per, int64_t jump, int tail);
/* Rows [r0, r0 + nrows) (all < the lowering's rows), row i laid out as fst_lplan_row(p, r0 + i, out + i * ldo, per,
 * jump, 0) would: the same bits, in one call. */
void fst_lplan_rows(const fst_lplan *p, int64_t r0, int64_t nrows, float *out, int64_t ldo, int per, int64_t jump);
/* Rows k0 .. k0 + rows of B's columns jn .. jn + n staged into buf (row stride ldbuf floats, each row width >= n floats,
 * zeros past n and in rows past K): by the plan where one was built (plan != NULL), else row by row from the lowering
 * (low != NULL) or from the matrix B (row stride ldb). The 2:4 register kernel's and the compiled product's staging. */
static inline void fst_stage_rows(const fst_lplan *plan, const fst_lowering *low, const float *B, int64_t ldb, int64_t K,
                                  int64_t k0, int64_t rows, int64_t jn, int n, int width, float *buf, int64_t ldbuf) {
    int64_t p = 0;
    if (plan) {   /* the block's rows in one call */
        p = K - k0 < rows ? K - k0 : rows;
        fst_lplan_rows(plan, k0, p, buf, ldbuf, 0, 0);
    }
    for (; p < rows; p++) {
        float *d = buf + p * ldbuf;
        if (k0 + p < K) {
            /* B row, or (implicit im2col) the same piece of the lowered row computed from x */
            if (low) fst_lowering_row(low, k0 + p, jn, n, d);
            else memcpy(d, B + (k0 + p) * ldb + jn, (size_t)n * 4);
            if (n < width) memset(d + n, 0, (size_t)(width - n) * 4);
        } else {
            memset(d, 0, (size_t)width * 4);
        }
    }
}
#endif
