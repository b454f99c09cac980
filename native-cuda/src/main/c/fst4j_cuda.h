/* fst4j CUDA shim (libfst4j_cuda.so): the C entry points that fst4j.shim.Native.Cuda binds through FFM.
 * Nothing of CUDA is linked at build time: libcudart, libcuda (driver), libcublas and libcusparseLt are found
 * and dlopen-ed at run time (search order in native-cuda/CUDA.md) and called through this file's own
 * declarations; the kernels (src/main/cuda/fst4j_kernels.cu) are an embedded fatbin launched with the driver API.
 * Every function returns FST_OK (0) or a negative code; after a non-zero code, fst_cuda_last_error() (per
 * thread) says which call failed and why, e.g. "cudaMalloc(1048576): out of memory (cudaError 2)".
 * Device pointers are plain addresses; every kernel wrapper launches on the legacy default stream and does
 * not synchronise (fst_cuda_sync does, and reports asynchronous errors). */
#ifndef FST4J_CUDA_H
#define FST4J_CUDA_H
#include <stddef.h>
#include <stdint.h>

#define FST_OK 0
#define FST_EINVAL (-1)     /* an argument is out of range */
#define FST_ENULL (-2)      /* a required pointer is NULL */
#define FST_ECUDA (-3)      /* a CUDA / cuBLAS / cuSPARSELt call failed (message in fst_cuda_last_error) */
#define FST_EUNAVAIL (-4)   /* a library is missing or no device: fst_cuda_init / *_status say why */

#define FST_API __attribute__((visibility("default")))

#ifdef __cplusplus
extern "C" {
#endif

FST_API int fst_cuda_version(void);
/* Message of the last failure on this thread ("" when none). */
FST_API const char *fst_cuda_last_error(void);

/* Loads libcudart and the driver, checks for a device, loads the kernels. extra_dirs: colon-separated folders
 * searched first (FST4J_CUDA_LIB_DIR; NULL or "" for none); defaults != 0 adds the standard search (dlopen's own:
 * LD_LIBRARY_PATH, ld.so.cache; then /usr/local/cuda/lib64, /usr/local/cuda-13.x/lib64, NVIDIA Python wheels).
 * Idempotent: the first call's outcome is kept. FST_OK, or FST_EUNAVAIL with the one-line reason in
 * fst_cuda_status(). */
FST_API int fst_cuda_init(const char *extra_dirs, int defaults);
/* One line: "ok: <device>, ..." or why CUDA is unavailable; "not initialised" before fst_cuda_init. */
FST_API const char *fst_cuda_status(void);
/* Folder libcudart was loaded from ("" when found by the dynamic linker's own search or not found). */
FST_API const char *fst_cuda_runtime_path(void);

FST_API int fst_cuda_device_count(int *count);
FST_API int fst_cuda_malloc(void **p, size_t bytes);
FST_API int fst_cuda_free(void *p);
/* kind: 1 host->device, 2 device->host, 3 device->device (cudaMemcpyKind values). */
FST_API int fst_cuda_memcpy(void *dst, const void *src, size_t bytes, int kind);
FST_API int fst_cuda_memset(void *p, int value, size_t bytes);
FST_API int fst_cuda_sync(void);

/* ---- kernels (cuda_ops.c): same contracts as prune.c / conv.c (fst4j.h), all pointers device pointers ---- */
/* S(W) along K into values [rows, Kp/2], meta [rows, ceil(Kp/32)]; dense (fp32, ldd) and dense16 (bf16 bits,
 * ldd16) optional masked copies [rows, K]. values and meta both NULL: the masked copies only (at least one). */
FST_API int fst_cuda_prune24(int64_t rows, int64_t K, const float *w, int64_t ldw, float *values, uint32_t *meta,
                             float *dense, int64_t ldd, uint16_t *dense16, int64_t ldd16);
/* S(W^T) from W [cout, K]: values [K, Cp/2], meta [K, ceil(Cp/32)]; optional masked W^T copies [K, cout]; values and
 * meta both NULL: the masked copies only (a faster kernel: coalesced stores). */
FST_API int fst_cuda_prune24_t(int64_t cout, int64_t K, const float *w, int64_t ldw, float *values, uint32_t *meta,
                               float *dense_t, int64_t lddt, uint16_t *dense16_t, int64_t ldd16t);
FST_API int fst_cuda_shift_gather(const float *dy, float *out, int64_t rows, int64_t len, int64_t seg,
                                  int shift, float coeff, int circular);
/* fst_cuda_shift_gather, and where out16 is not NULL the output's bf16 rounding [rows, nseg/rows * ceil(seg/2)] too */
FST_API int fst_cuda_shift_gather16(const float *dy, float *out, uint16_t *out16, int64_t rows, int64_t len, int64_t seg,
                                    int shift, float coeff, int circular);
/* fst_shift_add (fst4j.h) on the device: every segment shifted and added, out the same size as dy. */
FST_API int fst_cuda_shift_add(const float *dy, float *out, int64_t rows, int64_t len, int64_t seg, int shift, float coeff, int circular);
/* fst_resprop on the device: out [n, per] from g [n, per] and the sample p [per] (device floats, out apart from both); the
 * kept count is left on the device as FST_PARTS int64 partial counts in work[0 .. FST_PARTS) (work: (FST_PARTS + 1) *
 * FST_PARTS int64), whose sum is fst_resprop's *kept */
FST_API int fst_cuda_resprop(const float *g, const float *p, float *out, int64_t n, int64_t per, double threshold, int64_t *work);
FST_API int fst_cuda_im2col(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                            int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo, float *out, int64_t ldo);
FST_API int fst_cuda_col2im(const float *cols, int64_t ldc, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                            int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo, float *dx);
/* fst_cuda_im2col / fst_cuda_col2im with dilation (fst_im2col_dil / fst_col2im_dil's twins, the same values and sums):
 * tap (i, j) reads input row oh*sh - ph + i*dh, column ow*sw - pw + j*dw; ho, wo the sizes that geometry gives */
FST_API int fst_cuda_im2col_dil(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                                int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t ho, int64_t wo, float *out, int64_t ldo);
FST_API int fst_cuda_col2im_dil(const float *cols, int64_t ldc, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh,
                                int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t ho, int64_t wo, float *dx);
/* fst_cuda_col2im of bf16 columns (row stride ldc): a bf16 GEMM product (Eq. 2 at BF16 precision) folded back without
 * a float32 copy; each value is exact in float32, so the sums are those of fst_cuda_col2im on the widened columns */
FST_API int fst_cuda_col2im_bf16(const uint16_t *cols, int64_t ldc, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                                 int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo, float *dx);
/* F.embedding on the device: out [n, d] row i = w [v, d] row idx[i] (idx device int32[n], each in [0, v), validated by
 * the caller; one outside gives a zero row). */
FST_API int fst_cuda_embed_gather(const float *w, int64_t v, int64_t d, const int32_t *idx, int64_t n, float *out);
/* its weight gradient: dw [v, d] row r = sum over k in off[r]..off[r+1) of g [n, d] row pos[k], in double, in k order
 * (off device int32[v + 1], pos device int32[n]: the indices' CSR, made by the caller); every row of dw is written. */
FST_API int fst_cuda_embed_scatter(const float *g, int64_t n, int64_t d, const int32_t *off, const int32_t *pos, int64_t v, float *dw);
/* Lanes of a contiguous x [outer, n, inner] (FST_LANE_* in fst4j_kargs.h): cumsum along n, forward or from the end, into
 * out [outer, n, inner]; the product along n into out [outer, inner]; prod's gradient from g [outer, inner] into out
 * [outer, n, inner]. One thread per lane, in double, in the CPU loops' order. */
FST_API int fst_cuda_lanes(int op, const float *x, const float *g, int64_t outer, int64_t n, int64_t inner, float *out);
/* Sorting along an axis of a contiguous x [outer, n, inner] (autograd's Sort): each line's stable order (Sort.compare's:
 * NaN largest, -0 == 0; descending by the reversed order, ties by position) by a bitonic network over keys (device
 * scratch of outer * inner * fst_cuda_sort_pairs(n) uint64); then [outer, count, inner] values, float32 positions and,
 * where src is not NULL, int32 flat offsets into x, from sorted position start (median: the lower median, or a line's
 * first NaN; ascending, count 1). 1 <= n <= 2^24. fst_cuda_sort_pairs: the padded line length, -1 outside that range. */
FST_API int64_t fst_cuda_sort_pairs(int64_t n);
FST_API int fst_cuda_sort(const float *x, int64_t outer, int64_t n, int64_t inner, int descending, int64_t start, int median, int64_t count,
                          uint64_t *keys, float *values, float *indices, int32_t *src);
/* its backward: dx [numel] (zeroed by the caller) gets g [m] at the flat offsets src [m] (each at most once; m <= numel) */
FST_API int fst_cuda_sort_scatter(const float *g, const int32_t *src, int64_t m, float *dx, int64_t numel);
/* pos: device int32[npos], validated by the caller. */
FST_API int fst_cuda_im2col_at(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw,
                               int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo,
                               const int32_t *pos, int64_t npos, float *out, int64_t ldo);
FST_API int fst_cuda_f32_to_bf16(const float *src, uint16_t *dst, int64_t n);
/* dst bf16 [rows_p, cols_p] contiguous = src [rows, cols] (element strides rs, cs; 0 allowed) rounded to nearest even,
 * zero outside it: a padded GEMM operand in one pass. */
/* dst bf16 [rows_p, cols_p] contiguous = im2col of contiguous x [n, c, h, w] ([c*kh*kw, n*ho*wo], fst_cuda_im2col's
 * orientation) rounded to nearest even, zero outside it: the lowered operand of a bf16 / cuSPARSELt GEMM in one pass. */
FST_API int fst_cuda_im2col_bf16(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh,
                                 int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo, uint16_t *dst, int64_t rows_p, int64_t cols_p);
FST_API int fst_cuda_bf16_pad(const float *src, int64_t rows, int64_t cols, int64_t rs, int64_t cs, uint16_t *dst,
                              int64_t rows_p, int64_t cols_p);
/* The kernel profile: while on (fst_cuda_kprof(1), or FST4J_CUDA_KPROF=1 in the environment from the start), every
 * kernel launch and vendor-library call is bracketed by device synchronisations and its time booked per kernel (per
 * op for the elementwise kernels); slow, for finding where device time goes. fst_cuda_kprof(on) switches it (-1: only
 * asks) and returns the previous state; fst_cuda_kprof_report gives the table since the last reset, longest first. */
FST_API int fst_cuda_kprof(int on);
FST_API const char *fst_cuda_kprof_report(int reset);
/* dst float32 [rows, cols] contiguous = the first rows x cols of src bf16 (row stride ld >= cols), exactly (the
 * reverse of fst_cuda_bf16_pad, for a product the library wrote in bf16) */
FST_API int fst_cuda_bf16_unpad(const uint16_t *src, int64_t ld, float *dst, int64_t rows, int64_t cols);
/* Whether fst_cuda_im2col_bf16 takes its span kernels for 3x3 convolutions at horizontal stride 1 or 2 (the same values;
 * on since the H100 timed them 1.06x faster, runs 17-19), and their eight-column forms at rows of a multiple of 8 (mode 8,
 * the default since run 41); FST4J_CUDA_IM2COL_VEC=0 / 1 starts with them off / four columns only: off 0 / four columns
 * 1 / eight columns 8 / -1 only asks; returns the previous setting. */
FST_API int fst_cuda_im2col_vec(int on);
/* dst float32 [imgs, rows, plane] contiguous = src bf16 [rows, ld >= imgs * plane] with dst[img, r, p] = src[r, img *
 * plane + p], exactly: a convolution's product [Cout, N*H*W] read back straight into NCHW (bf16_unpad and the permute
 * in one pass) */
FST_API int fst_cuda_bf16_unpad_nchw(const uint16_t *src, int64_t ld, float *dst, int64_t rows, int64_t imgs, int64_t plane);
/* dst fp32 [rows, imgs * plane] = src fp32 [imgs, rows, plane] permuted (bits kept), and where dst16 is not NULL its
 * bf16 rounding [rows, imgs * plane] (as fst_cuda_bf16_pad rounds): a batch's dY as Eq. 2's and Eq. 3's operand */
FST_API int fst_cuda_by_channel(const float *src, int64_t imgs, int64_t rows, int64_t plane, float *dst, uint16_t *dst16);

/* Eq. 3 as an implicit GEMM: dw [cout, ldd >= K] = g x im2col(x)^T + beta dw (beta == 0: dw not read), g bf16 [cout, ldg >=
 * npix] (dY by channel, or its gathered kept half with x's lowering at the kept positions), x float32 NCHW rounded to bf16
 * as it is staged, K = c*kh*kw, npix = n*ho*wo; the positions split into `splits` ranges whose partial products go to
 * ws [splits, cout, K] float32 and are added in order (deterministic). fst_cuda_conv_wgrad_splits: the split count for a
 * shape (requested <= 0: enough blocks to fill a large GPU; else at most requested), for sizing ws. */
FST_API int64_t fst_cuda_conv_wgrad_splits(int64_t cout, int64_t K, int64_t npix, int64_t requested);
FST_API int fst_cuda_conv_wgrad(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                                int64_t ph, int64_t pw, int64_t ho, int64_t wo, const uint16_t *g, int64_t ldg, int64_t cout, float *ws,
                                int64_t splits, float *dw, int64_t ldd, float beta, int cfast);
/* (cfast = 1: the kernel runs K channels fastest, one tap per thread's 8 values where c % 8 == 0, and the split sum writes
 * dw back in (c, kh, kw) order: the same dw up to the order of the sums.) */
/* fst_cuda_conv_wgrad with g made while it is staged from src float32 (row co at co * lds, segment i of seg values at
 * i * sseg within it: dY by channel is lds, seg; NCHW dY is seg, cout * seg): with gather 1 as fst_cuda_shift_gather16
 * makes it (the IR shift, coeff 0 for none, and the fixed mask's even positions of each segment, rounded to bf16: the
 * same bits without the separate pass; x's lowering covers the kept positions, segments * ceil(seg / 2) of them), with
 * gather 0 every position as it is (DENSE's Eq. 3 straight from NCHW dY: no by-channel copy). */
FST_API int fst_cuda_conv_wgrad_sg(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                                   int64_t ph, int64_t pw, int64_t ho, int64_t wo, const float *src, int64_t lds, int64_t seg, int64_t sseg,
                                   int gather, float coeff, int shift, int circular, int64_t cout, float *ws, int64_t splits, float *dw,
                                   int64_t ldd, float beta, int cfast);
/* The implicit GEMMs' tile: 0 (choose: 128 output channels x 64 positions from 128 output channels on, else 64 x 128), 64
 * or 128 (always that); -1 only asks. Returns the previous setting. FST4J_CUDA_IGEMM_TILE sets it from the start. */
FST_API int fst_cuda_igemm_tile(int tile);
/* The 128-row tile of fst_cuda_wggemm / fst_cuda_wgconv: 0 its K slices through registers into two shared-memory stages
 * (wggemm2), 1 through cp.async into three (wggemm3); -1 only asks. Returns the previous setting. FST4J_CUDA_WG_ASYNC=1
 * sets it from the start. */
FST_API int fst_cuda_wg_async(int mode);
/* The implicit-GEMM convolution with W 2:4 along K on the sparse tensor cores (mma.sp): W as fst_cuda_prune24 compresses it,
 * its kept values v in bf16 [cout, ldv >= 2 ceil(K/4)] and its metadata words [cout, ldm >= ceil(K/32)]. */
FST_API int fst_cuda_conv_igemm_sp(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh,
                                   int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo, const uint16_t *v, int64_t ldv,
                                   const uint32_t *meta, int64_t ldm, int64_t cout, float *y, int cfast);
/* (with cfast = 1, W's K is ordered (kh, kw, c), channels fastest: the operand fst_cuda_conv24_t makes.)
 * Eq. 2 of a stride-1 convolution with S(W^T) 2:4 along Cout (Cout a multiple of 32) as a 2:4 convolution of dY: from
 * fst_cuda_prune24_t's vt [cin*kh*kw, cout/2] float and mt [cin*kh*kw, cout/32] of W^T, the tap-reversed operand with K
 * ordered (tap, co): v [cin, kh*kw*cout/2] bf16, m [cin, kh*kw*cout/32]. */
FST_API int fst_cuda_conv24_t(const float *vt, const uint32_t *mt, int64_t cin, int64_t cout, int64_t khw, uint16_t *v, uint32_t *m);
/* dst bf16 [cin, ldd >= cout*kh*kw] = the transposed, tap-reversed weight of w float32 [cout, cin, kh, kw] (contiguous),
 * rounded: dst[ci][(co*kh + r)*kw + s] = w[co][ci][kh-1-r][kw-1-s]. Eq. 2 of a stride-1 convolution with padding p is
 * the convolution of dY with it at padding kh-1-p (fst_cuda_conv_igemm). */
FST_API int fst_cuda_wflip16(const float *w, int64_t cout, int64_t cin, int64_t kh, int64_t kw, uint16_t *dst, int64_t ldd, int cfast);
/* (cfast = 1: dst[ci][t*cout + co] = w[co][ci][tap-reversed t]: K ordered (tap, co), channels fastest.) */

/* ---- block kernels (fst4j_kargs.h FST_BLOCK_KERNELS) ---- */
/* The block-kernel self-test (fst_k_selftest_args): `blocks` blocks of FST_SELFTEST_T (128) threads; in [blocks * 128],
 * out [blocks * 3 * 128], a [blocks * 256] bf16, bt [blocks * 128] bf16, d [blocks * 128]; the 2:4 product's sa [blocks *
 * 256] bf16 kept values, sm [blocks * 16] metadata words, sbt [blocks * 256] bf16, sd [blocks * 128]. Mode 0 on either back end;
 * modes 1, 2 and 3 break the barrier / warp / shared-memory rules on purpose and are refused on a device (the emulator must
 * report them). */
FST_API int fst_cuda_block_selftest(const float *in, float *out, const uint16_t *a, const uint16_t *bt, float *d, int64_t blocks, int mode,
                                    const uint16_t *sa, const uint32_t *sm, const uint16_t *sbt, float *sd);
/* Hopper's wgmma against the emulator's model (fst4j_kargs.h, fst_k_wgprobe_args): per block, d [64 x 64] float32 =
 * a [64 x 16] bf16 x bt [64 x 16] bf16 (B^T) by wgmma.m64n64k16, or with meta [64] words (k_prune24's layout) A 2:4 along
 * k, given as its kept values a, times bt [64 x 32] by wgmma.sp.m64n64k32; both staged in shared memory as K-major core
 * matrices lbo bytes apart along K and sbo bytes apart every 8 rows (multiples of 16, an operand's core matrices apart,
 * within FST_WG_BOFF bytes); ok[b] = 1 where the instruction ran (0: a device build without sm_90a). */
FST_API int fst_cuda_wgmma_probe(const uint16_t *a, const uint16_t *bt, float *d, int64_t lbo, int64_t sbo, int64_t blocks, int *ok,
                                 const uint32_t *meta);
/* The same with transb (dense only): 1 B staged MN-major (core matrix (n / 8, k / 8) at (n / 8) sbo + (k / 8) lbo, its row
 * k % 8 the values n .. n + 7) and wgmma with imm-trans-b = 1; 2 the same with lbo and sbo swapped in B's descriptor. */
FST_API int fst_cuda_wgmma_probe_t(const uint16_t *a, const uint16_t *bt, float *d, int64_t lbo, int64_t sbo, int64_t blocks, int *ok,
                                   const uint32_t *meta, int transb);
/* A GEMM on Hopper's warpgroup tensor cores (fst4j_kargs.h, fst_k_wggemm_args): c [m, n] float32 = alpha a b + beta c,
 * a bf16 [m, lda] row-major, b as B^T bf16 [n, ldb]; with meta (k_prune24's words, [m, ldm]) a holds A's kept values
 * ([m, lda >= k / 2]) and the product runs on wgmma.sp. rows: the tile, 64 (one warpgroup, K slices of 64) or 128 (two
 * warpgroups sharing B^T, K slices of 32); m a multiple of rows, n of 128, k of the slice, rows of a and b 16-byte aligned.
 * ok[0] = 1 where the instructions ran (0: a device build without sm_90a, c untouched). */
FST_API int fst_cuda_wggemm(const uint16_t *a, int64_t lda, const uint16_t *bt, int64_t ldb, float *c, int64_t ldc, int64_t m, int64_t n,
                            int64_t k, float alpha, float beta, const uint32_t *meta, int64_t ldm, int *ok, int rows);
/* out bf16 NHWC [n, h, w, c] = x float32 NCHW [n, c, h, w], rounded to nearest even: the warpgroup convolution's input. */
FST_API int fst_cuda_nhwc16(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, uint16_t *out);
/* The convolution form of fst_cuda_wggemm (Eq. 1 as an implicit GEMM on the warpgroup tensor cores): y float32 NCHW
 * [n, cout, ho, wo] = W x im2col(x) + beta y, with x bf16 NHWC [n, h, w, c] (fst_cuda_nhwc16) gathered one tap's run of
 * channels at a time as the stages are filled, W bf16 [cout, ldw] with K = kh * kw * c in (kh, kw, c) order
 * (fst_cuda_wtap16), or with meta its kept values and k_prune24's words along that K (wgmma.sp). rows: the tile (64 or
 * 128 output channels); c a multiple of the K slice (64 or 32), cout of rows. */
FST_API int fst_cuda_wgconv(const uint16_t *xh, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                            int64_t ph, int64_t pw, int64_t ho, int64_t wo, const uint16_t *wt, int64_t ldw, int64_t cout, float *y,
                            float beta, const uint32_t *meta, int64_t ldm, int *ok, int rows);
/* Emulator only (FST_EUNAVAIL on a device): the order in which the threads of a block run between two barriers and
 * warp operations: 0 reverse (the default), 1 forward, 2 shuffled per round from seed (for the JVM, until set again).
 * FST4J_CUDA_EMU_ORDER=order[:seed] in the environment sets it before the first block kernel runs. */
FST_API int fst_cuda_emu_order(int order, int64_t seed);
/* Implicit-GEMM convolution (Eq. 1 without a lowered matrix): y [n, cout, ho, wo] fp32 = W x im2col(x), W bf16 [cout, ldw]
 * (its first K = c*kh*kw columns), x fp32 NCHW rounded to bf16 as fst_cuda_im2col_bf16 rounds it, fp32 accumulation on the
 * tensor cores (the emulator: in k order, as its GemmEx). */
FST_API int fst_cuda_conv_igemm(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh,
                                int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo, const uint16_t *wt, int64_t ldw,
                                int64_t cout, float *y, int cfast);
/* (cfast = 1: W's K ordered (kh, kw, c), channels fastest, as fst_cuda_wtap16 writes it; where c is a multiple of 16 each
 * thread's 16 values of a slice then share one tap: one bounds check, one load per value.)
 * dst bf16 [cout, ldd >= c*kh*kw] = w float32 [cout, cin, kh, kw] (contiguous) rounded, K reordered (kh, kw, c). */
FST_API int fst_cuda_wtap16(const float *w, int64_t cout, int64_t cin, int64_t khw, uint16_t *dst, int64_t ldd);

/* ---- cuBLAS (loaded on first use) ---- */
/* Row-major fp32 C = alpha op(A) op(B) + beta C, the contract of fst_sgemm; int32 dimensions (cuBLAS's). */
FST_API int fst_cuda_sgemm(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                           const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
FST_API const char *fst_cuda_blas_status(void);
/* Row-major mixed-precision C = alpha op(A) op(B) + beta C with fst_cuda_sgemm's contract and checks, through
 * cublasGemmEx with fp32 accumulation. Types are cudaDataType codes: atype == btype, CUDA_R_32F (0) or CUDA_R_16BF
 * (14); ctype CUDA_R_32F, or CUDA_R_16BF for bf16 inputs (cuBLAS has no fp32 x fp32 -> bf16 GemmEx).
 * tf32 != 0 (fp32 inputs only) selects CUBLAS_COMPUTE_32F_FAST_TF32 (TF32 tensor cores), else CUBLAS_COMPUTE_32F.
 * As in BLAS, C is not read when beta == 0. The host emulator computes it (bf16 -> float exactly, float sums in k
 * order, bf16 output rounded to nearest even; tf32 computed as fp32). */
FST_API int fst_cuda_gemm_ex(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const void *A, int atype,
                             int64_t lda, const void *B, int btype, int64_t ldb, float beta, void *C, int ctype, int64_t ldc, int tf32);
/* fst_cuda_gemm_ex over `batch` products at once (cublasGemmStridedBatchedEx): product i multiplies the operands at
 * A + i strideA, B + i strideB (elements; 0 repeats an operand) into C + i strideC, which must not overlap another
 * product's C (strideC >= (M - 1) ldc + N). The same checks, over every product's extent; batch == 0 does nothing.
 * The emulator computes each product as fst_cuda_gemm_ex does. */
FST_API int fst_cuda_gemm_ex_batched(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const void *A, int atype,
                                     int64_t lda, int64_t strideA, const void *B, int btype, int64_t ldb, int64_t strideB, float beta,
                                     void *C, int ctype, int64_t ldc, int64_t strideC, int64_t batch, int tf32);

/* ---- CUDA events on the legacy default stream (timing): create, record (cudaEventRecord(e, 0)), elapsed
 * milliseconds between two recorded events (cudaEventSynchronize(stop) then cudaEventElapsedTime), destroy.
 * The host emulator records the host's monotonic clock at the call (its launches run before they return). ---- */
FST_API int fst_cuda_event_create(void **event);
FST_API int fst_cuda_event_record(void *event);
FST_API int fst_cuda_event_elapsed_ms(void *start, void *stop, float *ms);
FST_API int fst_cuda_event_destroy(void *event);

/* ---- cuSPARSELt (loaded on first use): D = alpha * A * B + beta * C, all row-major, A [M, K] 2:4 along K
 * (its masked dense form, compressed by cuSPARSELt itself), B [K, N], C = D [M, N]. ab_type / cd_type are
 * cudaDataType values (CUDA_R_16BF = 14, CUDA_R_16F = 2, CUDA_R_32F = 0); compute is CUSPARSE_COMPUTE_32F.
 * The plan is an opaque host object; sizes[3] = compressed A bytes, compress buffer bytes, workspace bytes.
 * Checked up front by both back ends (FST_EINVAL naming the rule): ab_type CUDA_R_16BF or CUDA_R_16F, cd_type
 * CUDA_R_32F or ab_type; M, N, K positive multiples of 16 (leading dimensions are the row lengths, so they are too);
 * every pointer 16-byte aligned (native-cuda/CUDA.md: the constraints and their source). The emulator also checks
 * that A is 2:4 along K (compress: FST_EINVAL naming the row and group), that each pointer lies in a live device
 * block of at least the size the plan reported, and that compressed_a came from compress with a plan of this shape.
 * As in BLAS, C is not read when beta == 0. ---- */
FST_API int fst_cuda_splt_plan(int64_t M, int64_t N, int64_t K, int ab_type, int cd_type, void **plan, size_t sizes[3]);
FST_API int fst_cuda_splt_compress(void *plan, const void *dense_a, void *compressed, void *buffer);
FST_API int fst_cuda_splt_matmul(void *plan, float alpha, const void *compressed_a, const void *b, float beta,
                                 void *c, void *workspace);
FST_API int fst_cuda_splt_plan_free(void *plan);
FST_API const char *fst_cuda_splt_status(void);

/* ---- tensor ops (fst4j.tensor's CUDA paths), float32, device pointers; each is the CPU op's contract
 * (fst4j_kargs.h says how each kernel works). Shapes and strides are host arrays of rank <= 8, strides in
 * elements and >= 0 (0 = broadcast), pointers already at the tensor's first element; outputs contiguous. ---- */
/* op (FST_BIN_* in fst4j_kargs.h): 0 add, 1 sub, 2 mul, 3 div, 4 relu backward (a = dy, b = x), 5 relu(a + b), 6 pow,
 * 7 max, 8 min, 9-13 gt, ge, lt, le, eq (1 or 0), 14 sigmoid backward (a = g, b = y), 15 tanh backward, 16 b != 0 ? a : 0,
 * 17 b != 0 ? 0 : a, 18 (1 - b) a, 19 smooth-L1 backward (a = g, b = d; fst_cuda_binary_s's s = beta); out [shape]
 * contiguous. From op 6 on, out must not overlap a or b. */
FST_API int fst_cuda_binary(int op, int rank, const int64_t *shape, const float *a, const int64_t *sa, const float *b,
                            const int64_t *sb, float *out);
/* fst_cuda_binary with the op's scalar s (smooth-L1's beta: finite, >= 0) */
FST_API int fst_cuda_binary_s(int op, double s, int rank, const int64_t *shape, const float *a, const int64_t *sa, const float *b,
                              const int64_t *sb, float *out);
/* op (FST_UN_*): 0 copy (strided -> contiguous), 1 relu, 2 neg, 3 abs, 4 x + s, 5 x * s, 6 fill with s (x unused, may be
 * NULL), 7 exp, 8 log, 9 sqrt, 10 pow(x, s), 11 sigmoid, 12 tanh, 13 s - x, 14 softplus(-x), 15 sigmoid(-x), 16 smooth L1
 * with beta s (finite, >= 0). From op 7 on, y must not overlap x. */
FST_API int fst_cuda_unary(int op, double s, int rank, const int64_t *shape, const float *x, const int64_t *sx, float *y);
/* ---- activations (fst4j.tensor.Activation): y [shape] contiguous = op(x) with op FST_ACT_* (fst4j_kargs.h: gelu, gelu
 * tanh, silu, mish, leaky relu with slope s0, elu with alpha s0, softplus with beta s0 and threshold s1, clamp to [s0, s1]);
 * out = FST_ACTB_*(a, b), the backward formulas (a = g, b = x) and maximum / minimum's gradient shares, a and b broadcast
 * by their strides. Parameters checked (finite slope and alpha, finite non-zero beta, no NaN bound, hardtanh's s0 <= s1);
 * outputs overlap no input. ---- */
FST_API int fst_cuda_act(int op, double s0, double s1, int rank, const int64_t *shape, const float *x, const int64_t *sx, float *y);
FST_API int fst_cuda_act_bwd(int op, double s0, double s1, int rank, const int64_t *shape, const float *a, const int64_t *sa,
                             const float *b, const int64_t *sb, float *out);
/* out [shape] contiguous = c != 0 ? a : b, the three broadcast by their strides; out overlaps none of them. */
FST_API int fst_cuda_where(int rank, const int64_t *shape, const float *c, const int64_t *sc, const float *a, const int64_t *sa,
                           const float *b, const int64_t *sb, float *out);
/* Max / argmax over the reduced coordinates (layout as fst_cuda_sum's, nred > 0): out the value (last_nan: a NaN wins as
 * the last one, else the first), arg the reduced index of the chosen element as a float; either may be NULL. work and
 * iwork: device scratch of nout * 256 doubles / int64 for more than 256 values per output (NULL: one thread per output). */
FST_API int fst_cuda_argmax(const float *x, int krank, const int64_t *kshape, const int64_t *kstride, int rrank,
                            const int64_t *rshape, const int64_t *rstride, int last_nan, float *out, float *arg, double *work,
                            int64_t *iwork);
/* Variance over the reduced coordinates (layout as fst_cuda_sum's): sum (x - mean)^2 / max(0, nred - correction). work:
 * device scratch of nout * 257 doubles for more than 256 values per output (NULL: one thread per output). */
FST_API int fst_cuda_var(const float *x, int krank, const int64_t *kshape, const int64_t *kstride, int rrank,
                         const int64_t *rshape, const int64_t *rstride, int64_t correction, float *out, double *work);
/* out[kept] = sum (mean when mean != 0) of x over the reduced coordinates; kept / reduced axes given as shapes and
 * x's strides (either may have rank 0). work: device scratch of nout * 256 doubles for sums of more than 256 terms
 * (NULL: one thread per output, however long). */
FST_API int fst_cuda_sum(const float *x, int krank, const int64_t *kshape, const int64_t *kstride, int rrank,
                         const int64_t *rshape, const int64_t *rstride, int mean, float *out, double *work);
/* Max pool of contiguous NCHW x: y [n, c, ho, wo] and idx (int32, ih*w + iw in the plane of the maximum). */
FST_API int fst_cuda_maxpool(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh,
                             int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo, float *y, int32_t *idx);
/* dx [planes, in_plane] (overwritten) = each dy [planes, out_plane] added at its argmax idx (as fst_cuda_maxpool wrote them). */
FST_API int fst_cuda_maxpool_bwd(const float *dy, const int32_t *idx, int64_t planes, int64_t in_plane, int64_t out_plane, float *dx);
/* The same with the forward's geometry (the indices fst_cuda_maxpool wrote): each dx element gathers, same bits */
FST_API int fst_cuda_maxpool_bwd_geom(const float *dy, const int32_t *idx, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh,
                                      int64_t kw, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo, float *dx);
FST_API int fst_cuda_adaptive_avg(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t oh, int64_t ow, float *y);
FST_API int fst_cuda_adaptive_avg_bwd(const float *dy, int64_t n, int64_t c, int64_t h, int64_t w, int64_t oh, int64_t ow, float *dx);
/* Partial sums per channel of the device batch norm's reductions for c channels of m = n * hw elements (a power of
 * two, 256 to 2048; fst4j_kargs.h says how it is chosen), and the doubles of device scratch that fst_cuda_bn_train
 * (backward 0) and fst_cuda_bn_backward (backward 1) need for such a batch. */
FST_API int64_t fst_cuda_bn_parts(int64_t c, int64_t m);
FST_API int64_t fst_cuda_bn_work(int64_t c, int64_t m, int backward);
/* fst_bn_train / fst_bn_backward (fst4j.h) on the device; work: device scratch of fst_cuda_bn_work(c, n * hw, 0 / 1)
 * doubles. relu (train): y = max(BN(x), 0) in the same pass; relu_out (backward, or NULL): that fused forward's
 * output, dy counting only where it is > 0 (both as fst_bn_train's and fst_bn_backward's fused ReLU). */
FST_API int fst_cuda_bn_train(const float *x, const float *gamma, const float *beta, float *rmean, float *rvar, int64_t n,
                              int64_t c, int64_t hw, double momentum, double eps, float *y, float *mean, float *invstd, double *work,
                              int relu);
/* y = (float)(x * work[2ch] + work[2ch + 1]) per channel (double scale and shift computed by the caller): the
 * eval-mode batch norm, and the second pass of fst_cuda_bn_train. */
FST_API int fst_cuda_bn_apply(const float *x, int64_t n, int64_t c, int64_t hw, const double *work, float *y);
FST_API int fst_cuda_bn_backward(const float *dy, const float *x, const float *gamma, const float *mean, const float *invstd,
                                 int64_t n, int64_t c, int64_t hw, float *dx, float *dgamma, float *dbeta, double *work,
                                 const float *relu_out);
/* Mean cross-entropy of logits [n, c] against int32 labels with label smoothing: loss [1] (optional) and
 * grad [n, c] = grad_scale * dloss/dlogits (optional); work: device scratch of fst_cuda_xent_work(n, c) doubles. */
FST_API int64_t fst_cuda_xent_work(int64_t n, int64_t c);
FST_API int fst_cuda_xent(const float *logits, const int32_t *labels, int64_t n, int64_t c, double smoothing, double grad_scale,
                          float *loss, float *grad, double *work);
/* Softmax (log != 0: log-softmax) along the middle axis of contiguous [outer, n, inner], and its backward from the
 * forward's output y and dy (fst4j.tensor.Loss). */
FST_API int fst_cuda_softmax(const float *x, int64_t outer, int64_t n, int64_t inner, int log, float *y);
FST_API int fst_cuda_softmax_bwd(const float *y, const float *dy, int64_t outer, int64_t n, int64_t inner, int log, float *dx);
/* fst4j's own row-major SGEMM with fst_cuda_sgemm's contract (one thread per element of C, float sum in k order):
 * the fallback where cuBLAS is missing, and what the host emulator runs for matmul and convolution. */
FST_API int fst_cuda_gemm(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                          const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* SGD step (fst4j.nn.SGD): buf NULL = no momentum; first != 0: buf = g at the first step. */
FST_API int fst_cuda_sgd(float *w, const float *g, float *buf, int64_t n, float lr, float wd, float mom, float damp, int first,
                         int nesterov);
/* fst_srste_decay on the device: g += lambda * w where magnitude 2:4 along each row of w [rows, k] prunes. */
FST_API int fst_cuda_srste_decay(const float *w, float *g, int64_t rows, int64_t k, float lambda);
/* Magnitude N:M (fst4j.sparse.Sparsifier.MagnitudeNM) along the middle axis of a contiguous x [outer, len, inner]: out gets x
 * where kept (the n largest |x| of each group of m, ties to the lower index, NaN largest), +0.0 elsewhere. 1 <= n < m <= 32. */
FST_API int fst_cuda_prune_nm(const float *x, float *out, int64_t outer, int64_t len, int64_t inner, int n, int m);
/* SR-STE's decay for N:M: g += lambda * w where magnitude n:m along each row of w [rows, k] prunes (fst_cuda_prune_nm's rule). */
FST_API int fst_cuda_srste_decay_nm(const float *w, float *g, int64_t rows, int64_t k, int n, int m, float lambda);
/* SGD with SR-STE's decay in one pass (fst_sgd_srste's contract, on the device): rows of k (k % 4 == 0, n % k == 0); each
 * gradient gets lambda w added where magnitude 2:4 prunes, in registers (g is not written), then the SGD step; buf NULL:
 * no momentum. The bits of fst_cuda_srste_decay then fst_cuda_sgd. */
FST_API int fst_cuda_sgd_srste(float *w, const float *g, float *buf, int64_t n, int64_t k, float lambda, float lr, float wd, float mom, float damp,
                               int first, int nesterov);
/* AdamW step (fst_adamw's contract and bits, on the device); vmax NULL: no amsgrad. */
FST_API int fst_cuda_adamw(float *w, const float *g, float *m, float *v, float *vmax, int64_t n, float decay, float beta1, float c1,
                           float beta2, float c2, float step, float bc2, float eps);
/* fst_sumsq_parts on the device: parts (device, FST_PARTS doubles) get the partial sums of squares of x [n]. */
FST_API int fst_cuda_sumsq_parts(const float *x, int64_t n, double *parts);
/* x *= s over n contiguous floats on the device. */
FST_API int fst_cuda_scale(float *x, int64_t n, float s);

/* ---- cuda-gaps: ops that ran only on the CPU before (float32 unless said; fst4j_kargs.h's cuda-gaps block says how each
 * kernel works) ---- */
/* Pool.avgPool2d of contiguous NCHW x into y [n, c, ho, wo] (count_pad 1: divisor kh*kw; 0: the window's part inside the
 * input), and its backward: dx [n, c, h, w] (overwritten) from dy [n, c, ho, wo]. The CPU's bits. */
FST_API int fst_cuda_avg_pool(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh,
                              int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo, int count_pad, float *y);
FST_API int fst_cuda_avg_pool_bwd(const float *dy, int64_t n, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh,
                                  int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo, int count_pad, float *dx);
/* Norm.batchNorm2dEvalBackward on contiguous NCHW dy, x: dx = dy gamma / sqrt(rvar + eps), dgamma = sum dy (x - rmean) /
 * sqrt(rvar + eps), dbeta = sum dy per channel (gamma NULL: 1); work: device scratch of fst_cuda_bn_work(c, n * hw, 1) doubles. */
FST_API int fst_cuda_bn_eval_backward(const float *dy, const float *x, const float *gamma, const float *rmean, const float *rvar,
                                      int64_t n, int64_t c, int64_t hw, double eps, float *dx, float *dgamma, float *dbeta, double *work);
/* flags[0] (device int32) = 1 if an element of x ([shape] under strides sx; float64 where f64) is NaN or infinite, else 0;
 * flags: device scratch of 1 + FST_NONFINITE_PARTS int32. */
FST_API int fst_cuda_nonfinite(int rank, const int64_t *shape, const void *x, const int64_t *sx, int f64, int32_t *flags);
/* y ([shape] under strides sy, float64 where yf64) = x ([shape] under sx, float64 where xf64) converted, or = s (fill != 0, x
 * unused). x must not overlap y; a y whose elements may share addresses is written serially in row-major order. */
FST_API int fst_cuda_strided_write(int rank, const int64_t *shape, const void *x, const int64_t *sx, int xf64, void *y,
                                   const int64_t *sy, int yf64, int fill, double s);

#ifdef __cplusplus
}
#endif
#endif
