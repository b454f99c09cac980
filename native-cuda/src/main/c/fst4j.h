/* fst4j native shim: the C entry points that fst4j.shim.Native binds through FFM.
 * Every function validates its arguments and returns FST_OK or a negative FST_E* code;
 * the Java side has already bounds-checked, so a code here means a bug in the caller. */
#ifndef FST4J_H
#define FST4J_H
#include <stdint.h>

#define FST_OK 0
#define FST_EINVAL (-1)   /* a dimension, leading dimension, flag or thread count is out of range */
#define FST_ENULL (-2)    /* a required pointer is NULL */
#define FST_EINDEX (-5)   /* an index given as data (a max pool's argmax) lies outside its range (-3, -4: fst4j_cuda.h) */
#define FST_ENOMEM (-6)   /* the shim could not allocate its working memory (malloc failed); nothing else was wrong */
#define FST_NO_NCHW 1     /* fst_spmm24_lowered_nchw: not for these shapes here (not an error; nothing was written) */

#define FST_API __attribute__((visibility("default")))

FST_API int fst_version(void);
/* Which kernel family the dispatcher chose at load time: "avx512", "avx2" or "generic". */
FST_API const char *fst_isa(void);
FST_API int fst_max_threads(void);
/* Tests only: after `after` more working-memory allocations of the CPU shim (alloc.h), every one fails until this is
 * called again; after < 0 lifts the limit. Process-wide: a test that sets it must not share the process's shim calls. */
FST_API void fst_debug_fail_allocs(int64_t after);

/* C = alpha * op(A) * op(B) + beta * C, row-major. op(A) is M x K, op(B) is K x N.
 * transA != 0 means A is stored K x M (lda >= M), else M x K (lda >= K); likewise B.
 * beta == 0 means C is overwritten (never read), so NaN in C does not propagate. */
FST_API int fst_sgemm(int transA, int transB, int64_t M, int64_t N, int64_t K,
                      float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                      float beta, float *C, int64_t ldc, int nthreads);
/* fst_sgemm with B (not transposed) read as the NCHW batch [N / bl, K, bl]: op(B)[p][j] = B[(j / bl) * K * bl + p * bl +
 * j % bl] (Eq. 2's W^T dY with dY as the convolution's output gradient, no [K, N] matrix gathered); N % bl == 0. The same
 * products and bits as fst_sgemm on the gathered matrix. */
FST_API int fst_sgemm_images_b(int transA, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                               const float *B, int64_t bl, float beta, float *C, int64_t ldc, int nthreads);

/* Information Restoration shift (fst-method.md, Eq. 8-10): for each of `rows` rows of `len`
 * elements, split into segments of `seg` elements (H*W of one image), out[j] = dy[j] + coeff * dy[j + shift]
 * where j + shift stays inside the segment; outside it wraps around the segment when circular != 0,
 * and adds nothing otherwise. shift is +1 or -1. out may equal dy only when it does not (in-place is rejected). */
FST_API int fst_shift_add(const float *dy, float *out, int64_t rows, int64_t len, int64_t seg,
                          int shift, float coeff, int circular, int nthreads);

/* ---- 2:4 structured sparsity (sparse.c, sparse_kernel.c; layout in sparse/FORMAT.md) ----
 * S is M x K, 2:4 along K, compressed: K is zero-padded to Kp = K rounded up to a multiple of 4;
 * values is M x (Kp/2) row-major (the two kept values of each group of 4, in index order);
 * meta is M x ceil(Kp/32) row-major uint32 words, group g of a row in word g/8, bits 4*(g%8)..+3,
 * the nibble holding the first (lower) 2-bit index in its low 2 bits and the second in its high 2 bits.
 * fst_spmm24: C = alpha * S * B + beta * C, B K x N row-major (ldb >= N), C M x N (ldc >= N);
 * beta == 0 overwrites C. Indices that point at padded positions (>= K) read zeros, never B. */
FST_API int fst_spmm24(int64_t M, int64_t N, int64_t K, float alpha, const float *values, const uint32_t *meta,
                       const float *B, int64_t ldb, float beta, float *C, int64_t ldc, int nthreads);
/* Implicit im2col (lowering.h): the same products with B = im2col(x) of a contiguous [n, c, h, w] float32 batch
 * (conv geometry as fst_im2col), computed piece by piece while packing instead of read from a matrix.
 * fst_sgemm_lowered: C[M, N] = alpha * A[M, K] * op(B) + beta * C with op(B) = im2col(x) [c*kh*kw, n*ho*wo]
 * (transB == 0: Eq. 1) or its transpose (transB != 0: Eq. 3, K = n*ho*wo); A row-major with lda >= K.
 * fst_spmm24_lowered: C[M, n*ho*wo] = alpha * S * im2col(x) + beta * C, S 2:4-compressed along K = c*kh*kw.
 * order 0: im2col's rows (c, i, j); order 1: tap-major rows (i, j, c), as a transposed convolution's weight
 * [Cin, kh*kw*Cout] needs to be 2:4 along Cout (Eq. 2 of a stride-1 conv computed as a convolution of dY). */
FST_API int fst_sgemm_lowered(int transB, int64_t M, float alpha, const float *A, int64_t lda,
                              const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                              int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo,
                              float beta, float *C, int64_t ldc, int nthreads, int order);
/* fst_sgemm_lowered_nchw: fst_sgemm_lowered's Eq. 1 (transB 0) into Y in NCHW, [n, M, ho*wo] (a convolution's output
 * written in place, no [M, n*ho*wo] matrix to scatter); the same products and bits as fst_sgemm_lowered. */
FST_API int fst_sgemm_lowered_nchw(int64_t M, float alpha, const float *A, int64_t lda,
                                   const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                                   int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo,
                                   float beta, float *Y, int nthreads, int order);
/* fst_sgemm_lowered_images: fst_sgemm_lowered's Eq. 3 (transB 1) with A read as the NCHW batch [n, M, ho*wo] (dY in place,
 * no [M, n*ho*wo] matrix gathered); the same products and bits as fst_sgemm_lowered on the gathered matrix. */
FST_API int fst_sgemm_lowered_images(int64_t M, float alpha, const float *A,
                                     const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                                     int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo,
                                     float beta, float *C, int64_t ldc, int nthreads, int order);
/* fst_sgemm_lowered_images_shift: Eq. 7's half-K Eq. 3 with dY read in place: C[M, K] = alpha * G * im2col(x)^T + beta * C
 * where G [M, n * ceil(seg/2)] is fst_shift_gather_images of dy, the NCHW batch [n, M, seg] (shift +-1, coeff, circular
 * as there): computed while Eq. 3's kernel without packing copies dY where that kernel runs (fst_wgrad_direct_max rows),
 * else gathered first for the packing GEMM; x's lowering gives each image's ceil(seg/2) kept positions as its columns
 * (ho * wo == ceil(seg/2): the stride-(1, 2) lowering of an even-width plane). The same bits either way. */
FST_API int fst_sgemm_lowered_images_shift(int64_t M, float alpha, const float *dy, int64_t seg, int shift, float coeff,
                                           int circular, const float *x, int64_t n, int64_t c, int64_t h, int64_t w,
                                           int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                                           int64_t ho, int64_t wo, float beta, float *C, int64_t ldc, int nthreads, int order);
/* fst_sgemm_lowered_at: Eq. 3 over a selection of im2col: C[M, nrows] = alpha * A[M, ncols] * B^T + beta * C with
 * B[r][q] = im2col(x)[row0 + r * rstep][cols[q]] (cols: ncols indices in [0, n*ho*wo), any order; rstep >= 1),
 * lowered while packing as fst_sgemm_lowered does (the authors' random activation patterns, whose kept columns follow
 * no stride). order is 0 (im2col's rows). */
FST_API int fst_sgemm_lowered_at(int64_t M, float alpha, const float *A, int64_t lda,
                                 const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                                 int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo,
                                 const int32_t *cols, int64_t ncols, int64_t row0, int64_t rstep, int64_t nrows,
                                 float beta, float *C, int64_t ldc, int nthreads);
/* fst_spmm24_lowered_nchw: fst_spmm24_lowered with beta 0 into Y in NCHW, [n, M, ho*wo] (a convolution's output, no
 * [M, n*ho*wo] matrix to scatter): by the compiled convolution where it runs (fst_spmm24_jit), else by the register
 * kernel storing each vector in its image where ho*wo is a multiple of 16 (the same bits as fst_spmm24_lowered without
 * the compiled product). FST_NO_NCHW, before anything is computed or written, elsewhere and for an empty sum (K == 0
 * or alpha == 0): the caller then takes fst_spmm24_lowered. */
FST_API int fst_spmm24_lowered_nchw(int64_t M, float alpha, const float *values, const uint32_t *meta,
                                    const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                                    int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo,
                                    float *Y, int nthreads, int order);
FST_API int fst_spmm24_lowered(int64_t M, float alpha, const float *values, const uint32_t *meta,
                               const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                               int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo,
                               float beta, float *C, int64_t ldc, int nthreads, int order);
/* Kernel family fst_spmm24 uses on this CPU: "avx512", "avx2" or "generic". */
FST_API const char *fst_spmm24_isa(void);


/* ---- convolution lowering (conv.c) ----
 * x: contiguous [n, c, h, w]; the [K = c*kh*kw, n*ho*wo] matrix has row stride ldo (or ldc).
 * fst_im2col_at writes only output positions pos[0..npos) of each image (column img*npos + q).
 * fst_im2col_at_csr takes one list per image: image img's positions are pos[off[img] .. off[img + 1]) (off[0] == 0,
 * non-decreasing, n + 1 entries), written to those columns; only im2col rows row0, row0 + rstep, ... (nrows of them),
 * as output rows 0 .. nrows (the authors' checkerboard patterns keep different positions in even and odd rows). */
FST_API int fst_im2col(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                       int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo,
                       float *out, int64_t ldo, int nthreads);
FST_API int fst_col2im(const float *cols, int64_t ldc, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                       int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo, float *dx, int nthreads);
FST_API int fst_im2col_at(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                          int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo,
                          const int32_t *pos, int64_t npos, float *out, int64_t ldo, int nthreads);
FST_API int fst_im2col_at_csr(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                              int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo,
                              const int64_t *off, const int32_t *pos, int64_t row0, int64_t rstep, int64_t nrows,
                              float *out, int64_t ldo, int nthreads);
/* Dilated im2col / col2im (conv_general.c): as fst_im2col / fst_col2im with tap (i, j) reading input row
 * oh*sh - ph + i*dh and column ow*sw - pw + j*dw (torch's dilation); ho, wo must be the sizes that geometry gives. */
FST_API int fst_im2col_dil(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                           int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t ho, int64_t wo,
                           float *out, int64_t ldo, int nthreads);
FST_API int fst_col2im_dil(const float *cols, int64_t ldc, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                           int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t ho, int64_t wo,
                           float *dx, int nthreads);
/* Depthwise convolution (conv_depthwise.c): groups == c, weight [c*mult, 1, kh, kw], output channel co reading input
 * channel co / mult; geom = {n, c, mult, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo} (ho, wo the sizes the geometry
 * gives), every tensor contiguous NCHW float32. fst_dwconv_fwd: y = conv(x, w) + bias (bias [c*mult] or NULL).
 * fst_dwconv_dx: dx overwritten. fst_dwconv_dw: dw [c*mult, kh*kw] and / or dbias [c*mult] (either NULL) overwritten,
 * zeros for an empty batch. */
FST_API int fst_dwconv_fwd(const int64_t *geom, const float *x, const float *w, const float *bias, float *y, int nthreads);
FST_API int fst_dwconv_dx(const int64_t *geom, const float *dy, const float *w, float *dx, int nthreads);
FST_API int fst_dwconv_dw(const int64_t *geom, const float *x, const float *dy, float *dw, float *dbias, int nthreads);
/* PAUSEs a helper thread spins waiting for the next parallel call before it sleeps (default 20000: about 1 ms where a
 * PAUSE takes ~140 cycles, as on the Xeons of sessions 37-42; far less on cores with a short PAUSE): iters >= 0 sets it (0:
 * sleep at once), -1 only asks; returns the value in use. For A/B timing. */
FST_API int fst_parallel_spin(int iters);
/* Max pooling's 2x2 / stride 2 window with vectors: 16 outputs at a time forward and backward where the CPU has AVX-512,
 * 8 forward where it has AVX2 (FST4J_ISA=avx2 included): mode 0 off, 1 on where the CPU allows, -1 asks; returns 0 (off),
 * 1 (AVX2) or 2 (AVX-512). The same outputs, indices and gradients as the scalar loops. FST4J_MAXPOOL_VEC=0 keeps it off. */
FST_API int fst_maxpool_vec(int mode);
/* col2im at stride 2 (both axes) as a gather, each plane row written once (AVX-512, or AVX2 without it): mode 0 off, 1 on
 * where the CPU allows, -1 asks; returns 0 (off), 1 (AVX2) or 2 (AVX-512). The same bits as the scatter. FST4J_COL2IM_S2=0 keeps it off (mode 1 reads
 * the environment again). Each call decides once, so a switch flipped during a call does not mix the two. */
FST_API int fst_col2im_s2(int mode);
/* The planned lowering of the implicit-im2col GEMMs (AVX-512 masked loads; lowering.h): mode 0 turns it off (every
 * row lowered by the portable row-by-row code), 1 on where the CPU has AVX-512 (and FST4J_ISA / FST4J_LPLAN=0 do not
 * say otherwise), -1 only asks. Returns 1 when it is in use. For tests and A/B timing; results are the same bits. */
/* The segment plan for strided lowerings (lowering.h: vertical stride > 1 or narrow output rows, at horizontal stride 1, 2 or 4,
 * output rows of 5 columns or more): 1 on (the default), 0 those geometries take the gather plan; -1 only asks. */
FST_API int fst_lowering_seg(int mode);
/* The window plan for selected columns (fst_sgemm_lowered_at; lowering.h): 1 on (the default), 0 they take the segment or
 * gather plans; -1 only asks. */
FST_API int fst_lowering_win(int mode);
FST_API int fst_lowering_plan(int mode);
/* The 2:4 product's blocking for weights over 1 MB of compressed values (sparse_kernel.c): mode 1 (default) runs each
 * K block over a group of column blocks, one column chunk per thread, equal-width blocks; 0 the earlier order (one
 * column block at a time, two chunks per thread); -1 only asks. Returns the mode in use. Same bits either way; for
 * A/B timing. */
FST_API int fst_spmm24_grouping(int mode);
/* The 2:4 product's software prefetch of S (sparse_kernel.c): where a thread's rows of compressed values exceed 512 KB
 * and K runs in blocks of <= 128 rows (fst_spmm24_kblocks(0), S under 32 rows, or the default blocks on cores other
 * than Zen 4), each register block prefetches the
 * next one's values and metadata. mode 1 (default) on, 0 off, -1 only asks; returns
 * the mode in use. Same bits either way; for A/B timing. */
FST_API int fst_spmm24_prefetch(int mode);
/* The 2:4 product's K blocks where K does not fit one L1-sized block and S has at least 32 rows (sparse_kernel.c,
 * AVX-512): mode 1 (default) the larger blocks, 256 rows from a 96 KB (L2) buffer on Zen 4 and 96 rows (36 KB) on other
 * cores, 0 the L1-sized blocks (64 rows at 96 columns), -1 only asks; returns the
 * mode in use. The K blocks set where each C element's partial sums are rounded, so the two modes differ in the last
 * bits; for A/B timing. */
FST_API int fst_spmm24_kblocks(int mode);
/* The 2:4 product compiled per call (sparse_jit.c, AVX-512): fst_spmm24 / fst_spmm24_lowered write x86-64 code for
 * this S (each kept value's B row a register) and run it over B (a materialised B read in place; a convolution with
 * stride 1, "same" padding and output rows of 14-32 columns read from a padded copy of x, without lowering; other
 * lowerings staged in blocks), where B has at least 2048 columns. mode 1 (default): where it measured faster (a
 * materialised B with 24-32 rows and at most 40960 entries, M x Kp; the convolutions read from x, in either row order,
 * up to 64 rows and 40960 entries on AMD, 128 rows and 73728 entries elsewhere; never staged), 2: there and wherever
 * v15's rule let it (at most 40960 entries in at most 64 rows, at least 24 on a materialised B), 0: the register kernel
 * everywhere, -1 only asks; returns the mode in use. They sum in different K blocks and orders, so the last bits
 * differ; for tests and A/B timing (jmh/NOTES-step-cpu.md v15, v17, v30). */
FST_API int fst_spmm24_jit(int mode);
/* Eq. 3 of a convolution (fst_sgemm_lowered with transB) without packing (dot products over the positions) for at most
 * m output rows, else the packing GEMM: m >= 0 sets it, -1 only asks; returns the value in use. Default by host: 128 on
 * AMD, 48 elsewhere (gemm.c says why). For A/B timing; the two paths sum in different orders (results within float
 * rounding of each other). */
FST_API int fst_wgrad_direct_max(int m);
/* The direct Eq. 3 kernel's chunk of positions, in vectors of 16: vectors > 0 sets it, 0 restores the default (sized
 * for L1 and L2 from the row count), -1 only asks; returns the setting (0 = default). For tests that cross chunk
 * boundaries at small sizes; chunks change the order of the sums. */
FST_API int fst_wgrad_chunk(int vectors);
/* ---- sparsification overhead kernels (prune.c): fused prune + compress, IR shift + half-K gather ----
 * Magnitude 2:4 as fst4j.sparse.Sparsifier.Magnitude24: in each group of 4 keep the 2 largest |x|, ties to
 * the lower index, NaN counts as the largest (all NaNs equal); pruned entries become +0.0f. The output is
 * exactly Compressed24.compress of the pruned matrix (layout above; values ld Kp/2, meta ld ceil(Kp/32)).
 * fst_prune24_compress: W [rows, K] row-major (ldw >= K), pruned along K (zero-padded to Kp); when
 * dense != NULL also writes the pruned copy S(W) [rows, K] (ldd >= K; padding columns are not written). */
FST_API int fst_prune24_compress(int64_t rows, int64_t K, const float *w, int64_t ldw, float *values, uint32_t *meta,
                                 float *dense, int64_t ldd, int nthreads);
/* fst_prune24_compress_t: S(W^T) for W [Cout, K] row-major (ldw >= K): the matrix W^T [K, Cout] pruned 2:4
 * along Cout (Cout zero-padded to Cp), compressed as K rows: values [K, Cp/2], meta [K, ceil(Cp/32)]. */
FST_API int fst_prune24_compress_t(int64_t cout, int64_t K, const float *w, int64_t ldw, float *values, uint32_t *meta,
                                   int nthreads);
/* Eq. 2 of a stride-1 convolution as a convolution of dY (taps reversed, Cin and Cout swapped), for W [Cout, Cin*kk]
 * row-major (ldw >= Cin*kk): fst_tconv_weight writes A' [Cin, kk*Cout] (ldo >= kk*Cout),
 * A'[ci][t*Cout + co] = W[co][ci*kk + kk-1-t], the left operand for a tap-major lowering (order 1) of dY;
 * fst_prune24_compress_tconv writes S(W^T) in that layout, compressed along K' = kk*Cout (values [Cin, kk*Cout/2],
 * meta [Cin, ceil(kk*Cout/32)]): the same kept entries as fst_prune24_compress_t. Needs Cout % 4 == 0. */
FST_API int fst_tconv_weight(int64_t cout, int64_t cin, int64_t kk, const float *w, int64_t ldw, float *out, int64_t ldo,
                             int nthreads);
FST_API int fst_prune24_compress_tconv(int64_t cout, int64_t cin, int64_t kk, const float *w, int64_t ldw, float *values,
                                       uint32_t *meta, int nthreads);
/* fst_shift_gather: IR shift fused with the Eq. 7 half-K gather. dy is rows x len contiguous, len a multiple of
 * seg; out is rows x (len/seg)*ceil(seg/2) contiguous. For kept position j = 2i of each segment,
 * out = dy[j] + coeff * dy[j + shift] with the neighbour rule of fst_shift_add (wrap when circular, else nothing
 * added past the segment's ends); coeff == 0 means no IR: a plain gather (neighbours never read).
 * out must not overlap dy. */
FST_API int fst_shift_gather(const float *dy, float *out, int64_t rows, int64_t len, int64_t seg,
                             int shift, float coeff, int circular, int nthreads);
/* fst_shift_gather_images: fst_shift_gather of the rows x (images * seg) matrix whose segment (r, i) lies at
 * dy + i * ld_image + r * ld_row (channel r's plane of image i in an NCHW block: ld_row = seg = H*W, ld_image =
 * C*H*W), read in place: out is rows x images*ceil(seg/2), contiguous, as fst_shift_gather writes for that matrix.
 * ld_row, ld_image >= seg; out must not overlap what dy reads. */
FST_API int fst_shift_gather_images(const float *dy, float *out, int64_t rows, int64_t images, int64_t seg, int64_t ld_row,
                                    int64_t ld_image, int shift, float coeff, int circular, int nthreads);
/* fst_shift_gather_at: the IR shift of fst_shift_add read only at positions pos[0..npos) of each row (the authors'
 * random patterns' kept columns, which no fixed stride describes): out[r][q] = dy[r][p] + coeff * dy[r][p + shift]
 * for p = pos[q], with fst_shift_add's neighbour rule within p's segment of seg elements (wrap when circular, else
 * nothing added past the segment's ends); coeff == 0 is a plain gather. dy rows x len with row stride ldd, out rows x
 * npos with row stride ldo, not overlapping dy. */
FST_API int fst_shift_gather_at(const float *dy, int64_t ldd, float *out, int64_t ldo, int64_t rows, int64_t len, int64_t seg,
                                const int32_t *pos, int64_t npos, int shift, float coeff, int circular, int nthreads);
/* fst_pattern24: out = x where a fixed 2:4 pattern keeps the element, +0.0f elsewhere, for x and out contiguous
 * [outer, len, inner] and the pattern along the middle axis: pattern -1 keeps positions 0, 2, 4, ... (Eq. 7,
 * Sparsifier.Fixed24); 0..3 are AuthorsFixed24's four patterns (position i along the axis, row r = o * inner + q).
 * out must not overlap x. */
FST_API int fst_pattern24(const float *x, float *out, int64_t outer, int64_t len, int64_t inner, int pattern, int nthreads);

/* fst_topk: out = x at the k largest |x| of every line along the middle axis of x [outer, len, inner] (contiguous),
 * +0.0 elsewhere: fst4j.sparse.Sparsifier.TopK (meProp's unstructured rule). Every NaN counts as the largest (all NaNs
 * equal), -0.0 as +0.0, ties go to the lower index. 0 <= k <= len < 2^32; out must not overlap x. Kept values are copied
 * bit for bit (a signalling NaN stays signalling; Java's host selection, through double, quiets it). FST_EINVAL also
 * when a line's keys cannot be allocated (the shim has no out-of-memory code). */
FST_API int fst_topk(const float *x, float *out, int64_t outer, int64_t len, int64_t inner, int64_t k, int nthreads);

/* fst_resprop: ReSprop's output gradient (fst4j.nn.ReSprop) for g [n, per] and one sample p [per] (contiguous floats):
 * d = g - p (float); out = p + d where !(|d| <= threshold) (so a NaN difference too), else p; *kept = how many were.
 * threshold positive and finite; out must not overlap g or p. The same bits as the Java loop it replaces. */
FST_API int fst_resprop(const float *g, const float *p, float *out, int64_t n, int64_t per, double threshold, int64_t *kept,
                        int nthreads);

/* SR-STE decay: g += lambda * w where magnitude 2:4 along each row of w [rows, k] (contiguous) prunes. */
FST_API int fst_srste_decay(const float *w, float *g, int64_t rows, int64_t k, float lambda, int nthreads);

/* Batch norm 2d, training mode, contiguous float32 NCHW; gamma/beta/rmean/rvar may be NULL (1, 0, not updated).
 * add (or NULL), a tensor of x's shape, is added to the batch norm's float output: y = BN(x) + add (a ResNet block's
 * shortcut, summed as fst_add_relu sums). relu != 0 fuses a following ReLU: y = max(BN(x) [+ add], 0). affine (or
 * NULL; not with add) gets each channel's scale and shift, [2c] doubles: BN(x) = (float)(x * scale + shift). In the
 * backward, the fused ReLU's mask comes from relu_out (that fused output: only positions where relu_out > 0 count) or
 * from relu_affine (the forward's affine: positions where (float)(x * scale + shift) > 0, the same positions without
 * reading y); at most one of the two, or neither. dmask (or NULL) gets dy so masked (with add: the shortcut's
 * gradient, as fst_relu_backward gives it); it may be dy itself, but must not overlap x, relu_out, dx or part of dy
 * (FST_EINVAL). */
FST_API int fst_bn_train(const float *x, const float *gamma, const float *beta, float *rmean, float *rvar,
                         int64_t n, int64_t c, int64_t hw, double momentum, double eps, const float *add,
                         float *y, float *mean, float *invstd, double *affine, int relu, int nthreads);
FST_API int fst_bn_backward(const float *dy, const float *x, const float *gamma, const float *mean, const float *invstd,
                            const float *relu_out, const double *relu_affine, int64_t n, int64_t c, int64_t hw, float *dx,
                            float *dgamma, float *dbeta, float *dmask, int nthreads);
/* Batch norm (training), ReLU and a 2x2 / stride 2 max pool in one pass over the output, which is never stored: pooled
 * [n, c, h/2, w/2] and idx (each window's argmax inside its [h, w] plane) as fst_maxpool2d gives them for the ReLU's
 * output, and affine ([2c], as fst_bn_train's) for the backward. The backward takes the pooled gradient dyp and idx,
 * expands them as fst_maxpool2d_backward does, and runs fst_bn_backward on that with the mask from affine; FST_EINDEX
 * where an index lies outside its plane. h, w >= 2, h * w <= 16384 (a plane on each task's stack). */
FST_API int fst_bn_relu_maxpool2_train(const float *x, const float *gamma, const float *beta, float *rmean, float *rvar,
                                       int64_t n, int64_t c, int64_t h, int64_t w, double momentum, double eps, float *pooled,
                                       int32_t *idx, float *mean, float *invstd, double *affine, int nthreads);
FST_API int fst_bn_relu_maxpool2_backward(const float *dyp, const int32_t *idx, const float *x, const float *gamma,
                                          const float *mean, const float *invstd, const double *affine, int64_t n, int64_t c,
                                          int64_t h, int64_t w, float *dx, float *dgamma, float *dbeta, int nthreads);

/* Max pool 2d over `planes` contiguous [h, w] float32 planes (N*C); y [planes, ho, wo]; idx gets each output's
 * argmax as ih*w + iw inside its plane (NaN wins). Requires 2*ph <= kh, 2*pw <= kw, kh <= h + 2*ph, kw <= w + 2*pw. */
FST_API int fst_maxpool2d(const float *x, int64_t planes, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                          int64_t ph, int64_t pw, int64_t ho, int64_t wo, float *y, int32_t *idx, int nthreads);
/* dx [planes, h, w] = 0, then dy scattered-added at idx; FST_EINDEX when an index is outside its plane. */
FST_API int fst_maxpool2d_backward(const float *dy, const int32_t *idx, int64_t planes, int64_t h, int64_t w, int64_t ho, int64_t wo,
                                   float *dx, int nthreads);
/* Adaptive average pool of contiguous float32 planes [planes, h, w] into [planes, ho, wo] (PyTorch's windows), and its
 * backward (dx overwritten). */
FST_API int fst_adaptive_avgpool2d(const float *x, int64_t planes, int64_t h, int64_t w, int64_t ho, int64_t wo, float *y, int nthreads);
FST_API int fst_adaptive_avgpool2d_backward(const float *dy, int64_t planes, int64_t h, int64_t w, int64_t ho, int64_t wo, float *dx,
                                            int nthreads);
/* Contiguous float32 elementwise ops of a training step (pool.c). */
FST_API int fst_relu(const float *x, float *y, int64_t n, int nthreads);
FST_API int fst_relu_backward(const float *dy, const float *a, float *dx, int64_t n, int nthreads);
FST_API int fst_add(const float *a, const float *b, float *y, int64_t n, int nthreads);
FST_API int fst_add_relu(const float *a, const float *b, float *y, int64_t n, int nthreads);
/* The activations of fst4j.tensor.Activation on n contiguous float32 (act.c): y = f_op(x) (fst_act_f32), out =
 * b_op(a, b) (fst_act_bwd_f32; a the incoming gradient, b the forward's input, or the op's two operands), with op, s0 and
 * s1 as fst4j_kargs.h's FST_ACT_* / FST_ACTB_* and each formula fst4j_act.h's, in double, rounded once. y may be x (out
 * may be a or b) itself, but no other overlap; FST_EINVAL for an unknown op or a parameter it cannot use. */
FST_API int fst_act_f32(int op, double s0, double s1, const float *x, float *y, int64_t n, int nthreads);
FST_API int fst_act_bwd_f32(int op, double s0, double s1, const float *a, const float *b, float *out, int64_t n, int nthreads);
/* Magnitude N:M (nm.c; fst4j.sparse.Sparsifier.MagnitudeNM) along the middle axis of contiguous float32 [outer, len, inner]:
 * in each group of m the n largest |x| are kept (ties to the lower index, every NaN equal and largest, -0.0 equal to +0.0,
 * a short last group among its real elements), out = x there and +0.0 elsewhere; out may be x itself, no other overlap.
 * fst_srste_decay_nm: g += lambda * w where that rule along each row of w [rows, k] prunes (fst4j.nn.SrSte), in float.
 * 1 <= n < m <= 32, else FST_EINVAL. */
FST_API int fst_prune_nm(const float *x, float *out, int64_t outer, int64_t len, int64_t inner, int n, int m, int nthreads);
FST_API int fst_srste_decay_nm(const float *w, float *g, int64_t rows, int64_t k, int n, int m, float lambda, int nthreads);
/* dst[dst_off + sum i_d * dst_strides[d]] = src[src_off + sum i_d * src_strides[d]] over the index space shape
 * (rank 1..8, element strides, negative allowed), split over the threads; the caller bounds-checks both views. */
FST_API int fst_copy_f32(float *dst, int64_t dst_off, const float *src, int64_t src_off, int rank, const int64_t *shape,
                         const int64_t *dst_strides, const int64_t *src_strides, int nthreads);
/* One SGD step over n floats as torch.optim.SGD: g' = g + wd*w; buf = first ? g' : mom*buf + damp*g' (skipped when
 * buf is NULL: no momentum); d = nesterov ? g' + mom*buf : buf (or g'); w -= lr*d. */
FST_API int fst_sgd(float *w, const float *g, float *buf, int64_t n, float lr, float wd, float mom, float damp, int nesterov,
                    int first, int nthreads);
/* fst_srste_decay(w, g, n / k, k, lambda) then fst_sgd, in one pass and with the same bits, g left unchanged; rows of
 * k % 4 == 0 floats (so the decay's groups of 4 are consecutive), n % k == 0. */
FST_API int fst_sgd_srste(float *w, const float *g, float *buf, int64_t n, int64_t k, float lambda, float lr, float wd, float mom,
                          float damp, int nesterov, int first, int nthreads);

/* ---- AdamW and gradient clipping (optim.c; fst4j.nn.AdamW, fst4j.nn.GradClip) ---- */
/* One AdamW step over n floats as torch.optim.AdamW, the scalars derived by the caller (fst4j.nn.AdamW.Scalars: decay =
 * 1 - lr*wd, c1 = 1 - beta1, c2 = 1 - beta2, step = lr / (1 - beta1^t), bc2 = sqrt(1 - beta2^t)), per element in this
 * order: w' = w*decay; m = m*beta1 + c1*g; v = v*beta2 + (c2*g)*g; vh = vmax ? (vmax = max(vmax, v), NaN wins) : v;
 * d = sqrtf(vh)/bc2 + eps; w = w' - (step*m)/d. vmax NULL: no amsgrad. FST_EINVAL for scalars no AdamW derives
 * (NaN, betas outside [0, 1], bc2 outside (0, 1], a negative or infinite step or eps). */
FST_API int fst_adamw(float *w, const float *g, float *m, float *v, float *vmax, int64_t n, float decay, float beta1, float c1,
                      float beta2, float c2, float step, float bc2, float eps, int nthreads);
/* parts[p] = sum over r of (double)x[r*FST_NORM_PARTS + p]^2, r ascending (a squared L2 norm in fixed partial sums: the
 * same on any thread count and on CUDA, fst_cuda_sumsq_parts); the caller adds parts[0..FST_NORM_PARTS) in order. */
#define FST_NORM_PARTS 256
FST_API int fst_sumsq_parts(const float *x, int64_t n, double *parts, int nthreads);
/* x[i] = x[i] * s over n contiguous floats (a clipped gradient). */
FST_API int fst_scale_f32(float *x, int64_t n, float s, int nthreads);

#endif
