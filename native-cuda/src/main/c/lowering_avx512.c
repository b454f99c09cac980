/* Planned lowering (lowering.h): im2col rows of a column block by AVX-512 masked loads. Compiled with -mavx512f;
 * conv.c calls fst_lplan_build_avx512 only on a CPU that has it. */
#include <stdint.h>
#include <string.h>
#include <immintrin.h>
#include "lowering.h"

int fst_lplan_build_avx512(fst_lplan *p, const fst_lowering *s, int64_t col0, int64_t ncols, int nvec, void *mem);
int fst_lplan_build_gather_avx512(fst_lplan *p, const fst_lowering *s, int64_t col0, int64_t ncols, int nvec, void *mem);
int fst_lplan_build_seg_avx512(fst_lplan *p, const fst_lowering *s, int64_t col0, int64_t ncols, int nvec, void *mem);
int fst_lplan_build_win_avx512(fst_lplan *p, const fst_lowering *s, int64_t col0, int64_t ncols, int nvec, void *mem);
void fst_lplan_row_avx512(const fst_lplan *p, int64_t r, float *out, int per, int64_t jump, int tail);
void fst_lplan_rows_avx512(const fst_lplan *p, int64_t r0, int64_t nrows, float *out, int64_t ldo, int per, int64_t jump);

/* Spreads the 16 lane bits of m to the even bits of a 32-bit word (lane l -> source element 2 l at sw = 2). */
static inline uint32_t spread(uint32_t m) {
    m = (m | (m << 8)) & 0x00FF00FFu;
    m = (m | (m << 4)) & 0x0F0F0F0Fu;
    m = (m | (m << 2)) & 0x33333333u;
    m = (m | (m << 1)) & 0x55555555u;
    return m;
}

/* Per column of the block: image (relative to the block's first; -1 past ncols), output row and column. */
static void block_columns(const fst_lowering *s, int64_t col0, int64_t ncols, int nvec, int32_t *oh, int32_t *ow, int32_t *im) {
    const int64_t L = s->ho * s->wo, pos = col0 % L;
    if (s->cols) {   /* selected columns: im is the absolute image */
        /* ascending lists (the authors' patterns) step forward a few columns at a time, without divisions; a step back
         * or a long jump decodes from scratch (three divisions per column cost as much as a 16-row chunk's products) */
        int64_t prev = -1;
        int32_t r = 0, c = 0, img = 0;
        for (int64_t q = 0; q < (int64_t)nvec * 16; q++) {
            if (q >= ncols) { oh[q] = 0; ow[q] = 0; im[q] = -1; continue; }
            const int64_t col = s->cols[col0 + q];
            if (prev >= 0 && col >= prev && col - prev <= 64) {
                for (int64_t d = col - prev; d > 0; d--)
                    if (++c == s->wo) { c = 0; if (++r == s->ho) { r = 0; img++; } }
            } else {
                const int64_t p = col % L;
                img = (int32_t)(col / L); r = (int32_t)(p / s->wo); c = (int32_t)(p % s->wo);
            }
            prev = col;
            oh[q] = r; ow[q] = c; im[q] = img;
        }
        return;
    }
    int32_t img = 0, r = (int32_t)(pos / s->wo), c = (int32_t)(pos % s->wo);
    for (int64_t q = 0; q < (int64_t)nvec * 16; q++) {
        oh[q] = r; ow[q] = c; im[q] = q < ncols ? img : -1;
        if (++c == s->wo) { c = 0; if (++r == s->ho) { r = 0; img++; } }
    }
}

int fst_lplan_build_avx512(fst_lplan *p, const fst_lowering *s, int64_t col0, int64_t ncols, int nvec, void *mem) {
    const int64_t L = s->ho * s->wo, plane = s->h * s->w, chw = s->c * plane, kk = s->kh * s->kw;
    const int sw = (int)s->sw;
    fst_lvec *tab = mem;
    int32_t *oh = (int32_t *)(tab + kk * nvec), *ow = oh + nvec * 16, *im = ow + nvec * 16;
    const int64_t img0 = col0 / L;
    block_columns(s, col0, ncols, nvec, oh, ow, im);
    p->s = s; p->x = s->x; p->plane = plane; p->kk = kk; p->ncols = ncols; p->nvec = nvec; p->sw = sw; p->v = tab;
    p->gather = 0; p->gidx = NULL; p->gmask = NULL; p->seg = NULL; p->nseg = 0; p->win = NULL; p->widx = NULL; p->wsplit = NULL;
    const __m512i zero = _mm512_setzero_si512(), hv = _mm512_set1_epi32((int)s->h), wv = _mm512_set1_epi32((int)s->w);
    for (int v = 0; v < nvec; v++) {
        const __m512i vo = _mm512_loadu_si512(oh + 16 * v), vw = _mm512_loadu_si512(ow + 16 * v), vi = _mm512_loadu_si512(im + 16 * v);
        const int32_t ia = im[16 * v] < 0 ? 0 : im[16 * v];
        const __mmask16 in_a = _mm512_cmpeq_epi32_mask(vi, _mm512_set1_epi32(ia));
        const __mmask16 in_b = _mm512_cmpeq_epi32_mask(vi, _mm512_set1_epi32(ia + 1));
        const __mmask16 live = _mm512_cmpge_epi32_mask(vi, zero);
        if ((__mmask16)(in_a | in_b) != live) return 0;   /* a vector over three images: planes under 16 columns, which conv.c sends to the gather plan */
        /* flat index of lane 0 of image a, image a + 1: (img) * chw + sw * position, position = column - img * L */
        const int64_t col = col0 + 16 * v, ga = img0 + ia;
        const int64_t base_a = ga * chw + sw * (col - ga * L), base_b = (ga + 1) * chw + sw * (col - (ga + 1) * L);
        for (int64_t i = 0; i < s->kh; i++) {
            const __m512i ih = _mm512_add_epi32(vo, _mm512_set1_epi32((int)(i - s->ph)));
            const __mmask16 rok = _mm512_cmpge_epi32_mask(ih, zero) & _mm512_cmplt_epi32_mask(ih, hv);
            for (int64_t j = 0; j < s->kw; j++) {
                const __m512i iw = _mm512_add_epi32(_mm512_mullo_epi32(vw, _mm512_set1_epi32(sw)),
                                                    _mm512_set1_epi32((int)(j - s->pw)));
                const __mmask16 ok = rok & _mm512_cmpge_epi32_mask(iw, zero) & _mm512_cmplt_epi32_mask(iw, wv);
                const int64_t d = (i - s->ph) * s->w + (j - s->pw);
                fst_lvec *e = &tab[(i * s->kw + j) * nvec + v];
                uint32_t ma = (uint32_t)(ok & in_a), mb = (uint32_t)(ok & in_b);
                /* an all-masked load still costs an assist when its address is unmapped (past x for the last
                 * image, before it for padding): point empty halves at the row's own plane, always mapped */
                e->off[0] = ma ? base_a + d : 0; e->off[1] = mb ? base_b + d : 0;
                e->mask[0] = sw == 2 ? spread(ma) : ma; e->mask[1] = sw == 2 ? spread(mb) : mb;
            }
        }
    }
    return 1;
}

int fst_lplan_build_gather_avx512(fst_lplan *p, const fst_lowering *s, int64_t col0, int64_t ncols, int nvec, void *mem) {
    const int64_t kk = s->kh * s->kw, kv = kk * nvec;
    int32_t *gidx = mem;
    uint16_t *gmask = (uint16_t *)(gidx + kv * 16);
    int32_t *oh = (int32_t *)((char *)gmask + ((kv * (int64_t)sizeof(uint16_t) + 63) & ~(int64_t)63)), *ow = oh + nvec * 16, *im = ow + nvec * 16;
    block_columns(s, col0, ncols, nvec, oh, ow, im);
    p->s = s; p->x = s->x; p->plane = s->h * s->w; p->kk = kk; p->ncols = ncols; p->nvec = nvec; p->sw = (int)s->sw; p->v = NULL;
    p->gather = 1; p->gidx = gidx; p->gmask = gmask; p->seg = NULL; p->nseg = 0; p->win = NULL; p->widx = NULL; p->wsplit = NULL;
    /* lane offset from the row's channel plane of image 0: (img0 + image) * c*h*w + iy * w + ix (fits int32: conv.c) */
    const int32_t chw = (int32_t)(s->c * s->h * s->w), img0 = s->cols ? 0 : (int32_t)(col0 / (s->ho * s->wo));
    const __m512i zero = _mm512_setzero_si512(), hv = _mm512_set1_epi32((int)s->h), wv = _mm512_set1_epi32((int)s->w);
    const __m512i shv = _mm512_set1_epi32((int)s->sh), swv = _mm512_set1_epi32((int)s->sw);
    for (int v = 0; v < nvec; v++) {
        const __m512i vi = _mm512_loadu_si512(im + 16 * v);
        const __mmask16 live = _mm512_cmpge_epi32_mask(vi, zero);
        const __m512i ibase = _mm512_mullo_epi32(_mm512_add_epi32(vi, _mm512_set1_epi32(img0)), _mm512_set1_epi32(chw));
        const __m512i y0 = _mm512_mullo_epi32(_mm512_loadu_si512(oh + 16 * v), shv), x0 = _mm512_mullo_epi32(_mm512_loadu_si512(ow + 16 * v), swv);
        for (int64_t i = 0; i < s->kh; i++) {
            const __m512i iy = _mm512_add_epi32(y0, _mm512_set1_epi32((int)(i - s->ph)));
            const __mmask16 rok = live & _mm512_cmpge_epi32_mask(iy, zero) & _mm512_cmplt_epi32_mask(iy, hv);
            const __m512i rowoff = _mm512_add_epi32(ibase, _mm512_mullo_epi32(iy, wv));
            for (int64_t j = 0; j < s->kw; j++) {
                const __m512i ix = _mm512_add_epi32(x0, _mm512_set1_epi32((int)(j - s->pw)));
                const __mmask16 ok = rok & _mm512_cmpge_epi32_mask(ix, zero) & _mm512_cmplt_epi32_mask(ix, wv);
                const int64_t e = (i * s->kw + j) * nvec + v;
                _mm512_storeu_si512(gidx + 16 * e, _mm512_maskz_add_epi32(ok, rowoff, ix));   /* 0 where masked off */
                gmask[e] = (uint16_t)ok;
            }
        }
    }
    return 1;
}

int fst_lplan_build_seg_avx512(fst_lplan *p, const fst_lowering *s, int64_t col0, int64_t ncols, int nvec, void *mem) {
    const int64_t kk = s->kh * s->kw;
    fst_lseg *tab = mem;
    int32_t *oh = (int32_t *)(tab + kk * nvec * FST_LSEG), *ow = oh + nvec * 16, *im = ow + nvec * 16;
    block_columns(s, col0, ncols, nvec, oh, ow, im);
    /* sw: input elements between the lanes of a run. With selected columns (s->cols) a run is a stretch of one output row
     * whose kept columns step evenly (every other column for the authors' patterns 1-3): step * s->sw, the same for the
     * whole plan, taken from the first two lanes of one output row; a stretch that steps otherwise starts a new run. */
    int step = 1;
    if (s->cols) {
        step = 0;
        for (int64_t q = 1; q < ncols && !step; q++)
            if (im[q] == im[q - 1] && oh[q] == oh[q - 1]) step = ow[q] - ow[q - 1];
        if (step <= 0) return 0;
    }
    const int sw = (int)s->sw * step;
    if (sw != 1 && sw != 2 && sw != 4) return 0;
    p->s = s; p->x = s->x; p->plane = s->h * s->w; p->kk = kk; p->ncols = ncols; p->nvec = nvec; p->sw = sw; p->v = NULL;
    p->gather = 0; p->gidx = NULL; p->gmask = NULL; p->seg = tab; p->nseg = 1; p->win = NULL; p->widx = NULL; p->wsplit = NULL;
    const int32_t chw = (int32_t)(s->c * s->h * s->w), img0 = s->cols ? 0 : (int32_t)(col0 / (s->ho * s->wo));
    for (int v = 0; v < nvec; v++) {
        /* the vector's runs: lanes [first[q], first[q + 1]) share an image and an output row (and step evenly) */
        int first[FST_LSEG + 1], nrun = 0;
        for (int l = 0; l < 16; l++) {
            const int q = 16 * v + l;
            if (im[q] < 0) break;
            if (l == 0 || im[q] != im[q - 1] || oh[q] != oh[q - 1] || ow[q] - ow[q - 1] != step) {
                if (nrun == FST_LSEG) return 0;   /* output rows under 5 columns: conv.c does not ask for this plan */
                first[nrun++] = l;
            }
        }
        int end = 16;
        while (end > 0 && im[16 * v + end - 1] < 0) end--;
        first[nrun] = end;
        if (nrun > p->nseg) p->nseg = nrun;
        for (int64_t i = 0; i < s->kh; i++)
            for (int64_t j = 0; j < s->kw; j++) {
                fst_lseg *e = tab + ((i * s->kw + j) * nvec + v) * FST_LSEG;
                int out = 0;
                for (int q = 0; q < nrun; q++) {
                    const int l0 = first[q], c0 = 16 * v + l0;
                    const int64_t iy = (int64_t)oh[c0] * s->sh + i - s->ph, ix0 = (int64_t)ow[c0] * s->sw + j - s->pw;
                    if (iy < 0 || iy >= s->h) continue;
                    uint32_t lanes = 0;
                    uint64_t lmask = 0;
                    for (int l = l0; l < first[q + 1]; l++) {
                        const int64_t ix = ix0 + (int64_t)sw * (l - l0);
                        if (ix >= 0 && ix < s->w) { lanes |= 1u << l; lmask |= (uint64_t)1 << (sw * (l - l0)); }
                    }
                    if (!lanes) continue;
                    e[out].off = (img0 + im[c0]) * chw + (int32_t)(iy * s->w + ix0);
                    e[out].lmask = lmask; e[out].lanes = (uint16_t)lanes; e[out].first = (uint16_t)l0;
                    out++;
                }
                for (; out < FST_LSEG; out++) { e[out].off = 0; e[out].lmask = 0; e[out].lanes = 0; e[out].first = 0; }
            }
    }
    return 1;
}

/* Builds a window plan (lowering.h) in the room of a gather plan (fst_lplan_bytes), or returns 0 where a vector spans
 * more than two images or more than 32 floats of one image's plane (then the caller tries the other plans). */
int fst_lplan_build_win_avx512(fst_lplan *p, const fst_lowering *s, int64_t col0, int64_t ncols, int nvec, void *mem) {
    const int64_t kk = s->kh * s->kw, kv = kk * nvec;
    fst_lwin *tab = mem;
    uint8_t *widx = (uint8_t *)(tab + kv);
    uint16_t *split = (uint16_t *)(widx + (int64_t)nvec * 16);
    /* the columns' scratch where the gather plan keeps it (the table and the indices fit before it: 20 + 18 / kk bytes
     * per tap and vector against the gather's 66) */
    int32_t *oh = (int32_t *)((char *)mem + kv * 64 + ((kv * 2 + 63) & ~(int64_t)63)), *ow = oh + nvec * 16, *im = ow + nvec * 16;
    block_columns(s, col0, ncols, nvec, oh, ow, im);
    /* in vectors, as the gather plan's build: the scalar version cost as much as a 16-row product of the block */
    const int32_t chw = (int32_t)(s->c * s->h * s->w);
    const __m512i zero = _mm512_setzero_si512(), one = _mm512_set1_epi32(1), hv = _mm512_set1_epi32((int)s->h), wv = _mm512_set1_epi32((int)s->w);
    const __m512i shw = _mm512_set1_epi32((int)(s->sh * s->w)), swv = _mm512_set1_epi32((int)s->sw), shv = _mm512_set1_epi32((int)s->sh);
    for (int v = 0; v < nvec; v++) {
        const __m512i vo = _mm512_loadu_si512(oh + 16 * v), vw = _mm512_loadu_si512(ow + 16 * v), vi = _mm512_loadu_si512(im + 16 * v);
        const __mmask16 live = _mm512_cmpge_epi32_mask(vi, zero);
        if (!live) { memset(widx + 16 * v, 0, 16); split[v] = 0; for (int64_t t = 0; t < kk; t++) tab[t * nvec + v] = (fst_lwin){{0, 0}, {0, 0}, 0}; continue; }
        const int32_t a = im[16 * v];   /* lanes fill from lane 0: the first is live */
        const __mmask16 inA = _mm512_mask_cmpeq_epi32_mask(live, vi, _mm512_set1_epi32(a));
        const __mmask16 inB = _mm512_mask_cmpeq_epi32_mask(live, vi, _mm512_set1_epi32(a + 1));
        if ((__mmask16)(inA | inB) != live) return 0;   /* a vector over three images */
        /* each lane's window origin (flat index, padding aside); each image's lanes within 32 floats */
        const __m512i f = _mm512_add_epi32(_mm512_mullo_epi32(vo, shw), _mm512_mullo_epi32(vw, swv));
        const int32_t loA = _mm512_mask_reduce_min_epi32(inA, f), hiA = _mm512_mask_reduce_max_epi32(inA, f);
        const int32_t loB = inB ? _mm512_mask_reduce_min_epi32(inB, f) : 0, hiB = inB ? _mm512_mask_reduce_max_epi32(inB, f) : 0;
        if (hiA - loA >= 32 || hiB - loB >= 32) return 0;
        const __m512i idx = _mm512_maskz_sub_epi32(live, f, _mm512_mask_blend_epi32(inB, _mm512_set1_epi32(loA), _mm512_set1_epi32(loB)));
        _mm_storeu_si128((__m128i *)(widx + 16 * v), _mm512_cvtepi32_epi8(idx));
        split[v] = (uint16_t)inB;
        const __m512i bit = _mm512_sllv_epi32(one, idx);
        const __m512i y0 = _mm512_mullo_epi32(vo, shv), x0 = _mm512_mullo_epi32(vw, swv);
        for (int64_t i = 0; i < s->kh; i++) {
            const __m512i iy = _mm512_add_epi32(y0, _mm512_set1_epi32((int)(i - s->ph)));
            const __mmask16 rok = live & _mm512_cmpge_epi32_mask(iy, zero) & _mm512_cmplt_epi32_mask(iy, hv);
            for (int64_t j = 0; j < s->kw; j++) {
                const __m512i ix = _mm512_add_epi32(x0, _mm512_set1_epi32((int)(j - s->pw)));
                const __mmask16 ok = rok & _mm512_cmpge_epi32_mask(ix, zero) & _mm512_cmplt_epi32_mask(ix, wv);
                const uint32_t m0 = (uint32_t)_mm512_mask_reduce_or_epi32(ok & inA, bit), m1 = (uint32_t)_mm512_mask_reduce_or_epi32(ok & inB, bit);
                const int32_t d = (int32_t)((i - s->ph) * s->w + (j - s->pw));
                fst_lwin *e = &tab[(i * s->kw + j) * nvec + v];
                /* an all-masked load still costs an assist at an unmapped address: empty windows point at the plane */
                e->off[0] = m0 ? a * chw + loA + d : 0; e->mask[0] = m0;
                e->off[1] = m1 ? (a + 1) * chw + loB + d : 0; e->mask[1] = m1;
                e->lanes = (uint16_t)ok;
            }
        }
    }
    p->s = s; p->x = s->x; p->plane = s->h * s->w; p->kk = kk; p->ncols = ncols; p->nvec = nvec; p->sw = (int)s->sw; p->v = NULL;
    p->gather = 0; p->gidx = NULL; p->gmask = NULL; p->seg = NULL; p->nseg = 0; p->win = tab; p->widx = widx; p->wsplit = split;
    return 1;
}

/* A masked load, or a plain one where every lane is live: on Zen 5 a masked 512-bit load cost ~1.8x a plain one
 * (0.75 against 0.42 ns per vector, with a store, hot in L1), and most vectors of a plan are whole. */
static inline __attribute__((always_inline)) __m512 mload(__mmask16 m, uintptr_t a) {
    return m == (__mmask16)0xFFFF ? _mm512_loadu_ps((const void *)a) : _mm512_maskz_loadu_ps(m, (const void *)a);
}

/* One vector of a masked-load plan: 16 columns of a lowered row (lowering.h). */
static inline __attribute__((always_inline)) __m512 lvec(const fst_lvec *e, uintptr_t xc, int sw) {
    /* addresses as integers: a masked-off lane's address may lie outside x and is never dereferenced */
    if (sw == 1) {
        __m512 y = mload((__mmask16)e->mask[0], xc + 4 * e->off[0]);
        /* the second load is rare: only a vector over two images has one */
        if (__builtin_expect(e->mask[1] != 0, 0)) y = _mm512_mask_loadu_ps(y, (__mmask16)e->mask[1], (const void *)(xc + 4 * e->off[1]));
        return y;
    }
    __m512 lo = mload((__mmask16)e->mask[0], xc + 4 * e->off[0]);
    __m512 hi = mload((__mmask16)(e->mask[0] >> 16), xc + 4 * e->off[0] + 64);
    if (e->mask[1]) {
        lo = _mm512_mask_loadu_ps(lo, (__mmask16)e->mask[1], (const void *)(xc + 4 * e->off[1]));
        hi = _mm512_mask_loadu_ps(hi, (__mmask16)(e->mask[1] >> 16), (const void *)(xc + 4 * e->off[1] + 64));
    }
    return _mm512_permutex2var_ps(lo, _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), hi);
}

/* One vector of a segment plan: each of its n runs' window loaded (masked: lanes out of bounds are never read) and
 * permuted into its lanes. n is the plan's most runs per vector (a constant per instantiation: no data-dependent branch;
 * a vector with fewer runs has empty ones, whose masks are all zero). The window may start before x's first element
 * (left padding): masked-off lanes are not dereferenced. */
static inline __attribute__((always_inline)) __m512 svec(const fst_lseg *e, uintptr_t xc, int sw, int n) {
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512 y = _mm512_setzero_ps();
    for (int q = 0; q < n; q++) {
        const uintptr_t a = xc + 4 * (intptr_t)e[q].off;
        const uint64_t lm = e[q].lmask;
        const __m512 w0 = _mm512_maskz_loadu_ps((__mmask16)lm, (const void *)a);
        const __m512 w1 = sw >= 2 ? _mm512_maskz_loadu_ps((__mmask16)(lm >> 16), (const void *)(a + 64)) : _mm512_setzero_ps();
        /* lane l takes window element sw * (l - first): bits 4..0 of the index pick one of two vectors and the element */
        __m512i idx = _mm512_sub_epi32(lane, _mm512_set1_epi32(e[q].first));
        if (sw == 2) idx = _mm512_slli_epi32(idx, 1);
        if (sw == 4) idx = _mm512_slli_epi32(idx, 2);
        if (sw == 4) {   /* lanes first .. first + 7 from the window's first 32 floats, the rest from the next 32 */
            const __m512 w2 = _mm512_maskz_loadu_ps((__mmask16)(lm >> 32), (const void *)(a + 128));
            const __m512 w3 = _mm512_maskz_loadu_ps((__mmask16)(lm >> 48), (const void *)(a + 192));
            const __mmask16 near = (__mmask16)((0xFFu << e[q].first) & e[q].lanes);
            y = _mm512_mask_mov_ps(y, near, _mm512_permutex2var_ps(w0, idx, w1));
            y = _mm512_mask_mov_ps(y, (__mmask16)(e[q].lanes & ~near), _mm512_permutex2var_ps(w2, idx, w3));
        } else {
            y = _mm512_mask_mov_ps(y, (__mmask16)e[q].lanes, _mm512_permutex2var_ps(w0, idx, w1));
        }
    }
    return y;
}

/* One vector of a window plan: per image two masked loads and a permute by the lanes' window indices, then the lanes
 * out of bounds zeroed. */
static inline __attribute__((always_inline)) __m512 wvec(const fst_lwin *e, const uint8_t *idx8, uint16_t split, uintptr_t xc) {
    const __m512i idx = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)idx8));
    const uintptr_t a0 = xc + 4 * (intptr_t)e->off[0];
    __m512 y = _mm512_permutex2var_ps(mload((__mmask16)e->mask[0], a0), idx, mload((__mmask16)(e->mask[0] >> 16), a0 + 64));
    if (e->mask[1]) {
        const uintptr_t a1 = xc + 4 * (intptr_t)e->off[1];
        y = _mm512_mask_mov_ps(y, (__mmask16)split,
                               _mm512_permutex2var_ps(mload((__mmask16)e->mask[1], a1), idx, mload((__mmask16)(e->mask[1] >> 16), a1 + 64)));
    }
    return _mm512_maskz_mov_ps((__mmask16)e->lanes, y);
}

/* One vector of a gather plan; masked-off lanes are zero and never read. */
static inline __attribute__((always_inline)) __m512 gvec(const fst_lplan *p, int64_t e, const float *xc) {
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), (__mmask16)p->gmask[e], _mm512_loadu_si512(p->gidx + 16 * e), xc, 4);
}

/* The row's vectors in order; vector v lands at out + (v / per) * jump + (v % per) * 16, walked without a division
 * (per == 0: contiguous), one loop per kind of plan so that each is branch-light. */
#define LPLAN_ROW_LOOP(VEC)                                                                       \
    for (int v = 0; v < full; v++) {                                                              \
        _mm512_storeu_ps(sliver + 16 * k, VEC);                                                   \
        if (++k == per) { k = 0; sliver += jump; }                                                \
    }
/* Row (ch, tap) of the plan into out, laid out as lowering.h's fst_lplan_row says. */
static inline __attribute__((always_inline)) void plan_row(const fst_lplan *p, int64_t ch, int64_t tap, float *out, int per,
                                                           int64_t jump, int tail) {
    const float *x = p->x + ch * p->plane;
    const uintptr_t xc = (uintptr_t)x;
    const int64_t e0 = tap * p->nvec;
    const fst_lvec *e = p->gather || p->seg || p->win ? NULL : p->v + e0;
    const fst_lseg *sg = p->seg ? p->seg + e0 * FST_LSEG : NULL;
    /* tail: only ncols floats are written (whole vectors, then one masked partial vector) */
    const int full = tail && p->ncols < (int64_t)p->nvec * 16 ? (int)(p->ncols / 16) : p->nvec;
    float *sliver = out;
    int k = 0;
    if (per == 0 && !p->gather && !sg && !p->win && p->sw == 1) {   /* contiguous, the common case: no sliver walk */
        for (int v = 0; v < full; v++) _mm512_storeu_ps(out + 16 * v, lvec(e + v, xc, 1));
        sliver = out + 16 * full;
    }
    else if (p->gather) { LPLAN_ROW_LOOP(gvec(p, e0 + v, x)) }
    else if (p->win) { LPLAN_ROW_LOOP(wvec(p->win + e0 + v, p->widx + 16 * v, p->wsplit[v], xc)) }
    else if (sg) {
#define SEG_CASE(n, w) case 8 * (n) + (w): { LPLAN_ROW_LOOP(svec(sg + v * FST_LSEG, xc, w, n)) } break;
        switch (8 * p->nseg + p->sw) { SEG_CASE(1, 1) SEG_CASE(1, 2) SEG_CASE(1, 4) SEG_CASE(2, 1) SEG_CASE(2, 2) SEG_CASE(2, 4)
                                       SEG_CASE(3, 1) SEG_CASE(3, 2) SEG_CASE(3, 4) SEG_CASE(4, 1) SEG_CASE(4, 2) SEG_CASE(4, 4)
                                       default: break; }
#undef SEG_CASE
    }
    else if (p->sw == 1) { LPLAN_ROW_LOOP(lvec(e + v, xc, 1)) }
    else { LPLAN_ROW_LOOP(lvec(e + v, xc, 2)) }
    const int64_t rest = tail && full < p->nvec ? p->ncols - (int64_t)full * 16 : 0;
    if (rest > 0) {
        const __m512 y = p->gather ? gvec(p, e0 + full, x)
                       : p->win ? wvec(p->win + e0 + full, p->widx + 16 * full, p->wsplit[full], xc)
                       : sg ? (p->sw == 4 ? svec(sg + full * FST_LSEG, xc, 4, FST_LSEG) : p->sw == 2 ? svec(sg + full * FST_LSEG, xc, 2, FST_LSEG)
                                                 : svec(sg + full * FST_LSEG, xc, 1, FST_LSEG))
                       : lvec(e + full, xc, p->sw);
        _mm512_mask_storeu_ps(sliver + 16 * k, (__mmask16)((1u << rest) - 1), y);
    }
}

void fst_lplan_row_avx512(const fst_lplan *p, int64_t r, float *out, int per, int64_t jump, int tail) {
    int64_t ch, tap;
    fst_lowering_rc(p->s, r, &ch, &tap);
    plan_row(p, ch, tap, out, per, jump, tail);
}

/* The row after (ch, tap) in the lowering's row order (lowering.h), without a division. */
static inline void next_row(const fst_lplan *p, int64_t *ch, int64_t *tap) {
    if (p->s->order) { if (++*ch == p->s->c) { *ch = 0; ++*tap; } }
    else if (++*tap == p->kk) { *tap = 0; ++*ch; }
}

/* Rows [r0, r0 + nrows) of the plan, row i at out + i * ldo laid out as fst_lplan_row lays out one row (whole vectors,
 * no tail). One call per block of rows instead of one per row: a row of a 2:4 product's column block is only 6
 * vectors, and the per-row call with its channel / tap division cost as much as the row's loads (perf: the lowering was
 * 15 % of a 64-channel lowered 2:4 product). Channel and tap advance without a division. */
void fst_lplan_rows_avx512(const fst_lplan *p, int64_t r0, int64_t nrows, float *out, int64_t ldo, int per, int64_t jump) {
    if (nrows <= 0) return;
    int64_t ch, tap;
    if (p->s->rstep > 1) {   /* every other row (the checkerboards' selections): channel and tap per row */
        for (int64_t i = 0; i < nrows; i++, out += ldo) {
            fst_lowering_rc(p->s, r0 + i, &ch, &tap);
            plan_row(p, ch, tap, out, per, jump, 0);
        }
        return;
    }
    fst_lowering_rc(p->s, r0, &ch, &tap);
    if (per == 0 && !p->gather && !p->seg && !p->win && p->sw == 1) {
        /* The 2:4 product's case (contiguous rows of a masked-load plan): plan_row's per-row branches hoisted out of
         * the row loop (4.6 against 5.3 cycles per vector), and the plan's fields read into locals once (the stores
         * through out could alias them). The same loads and stores. */
        const int nvec = p->nvec;
        const int64_t plane = p->plane;
        const float *x = p->x;
        const fst_lvec *tab = p->v;
        for (int64_t i = 0; i < nrows; i++, out += ldo) {
            const uintptr_t xc = (uintptr_t)(x + ch * plane);
            const fst_lvec *e = tab + tap * nvec;
            for (int v = 0; v < nvec; v++) _mm512_storeu_ps(out + 16 * v, lvec(e + v, xc, 1));
            next_row(p, &ch, &tap);
        }
        return;
    }
    for (int64_t i = 0; i < nrows; i++, out += ldo) {
        plan_row(p, ch, tap, out, per, jump, 0);
        next_row(p, &ch, &tap);
    }
}
