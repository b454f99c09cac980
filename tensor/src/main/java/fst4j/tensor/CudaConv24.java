package fst4j.tensor;

import fst4j.shim.Native;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicLong;

/**
 * S(W) of a convolution, magnitude 2:4 along K = Cin*kh*kw, in the form the 2:4 implicit-GEMM kernel reads
 * (fst_cuda_conv_igemm_sp, mma.sp on the sparse tensor cores): the kept values in bf16 [Cout, 2 ceil(K/4)] and
 * fst_cuda_prune24's metadata words [Cout, ceil(K/32)]. No cuSPARSELt compression, no lowered matrix: Eq. 1 reads x
 * straight from NCHW and writes y straight into NCHW. Made once per step and layer ({@link #pruned}); close it.
 */
public final class CudaConv24 implements AutoCloseable {
    private static final AtomicLong USES = new AtomicLong();
    /** -Dfst4j.cuda.igemmSparse=true: Eq. 1 of a magnitude 2:4 convolution through this kernel (off until a device has timed it). */
    private static volatile boolean switchedOn = "true".equals(System.getProperty("fst4j.cuda.igemmSparse"));

    private static final AtomicLong EQ2_USES = new AtomicLong();

    private final int rows, k;
    private final boolean channelsFastest;   // K ordered (kh, kw, c): Eq. 2's tap-reversed S(W^T) ({@link #transposedConv})
    private CudaOps.Block values16, meta;

    private CudaConv24(int rows, int k, boolean channelsFastest, CudaOps.Block values16, CudaOps.Block meta) {
        this.rows = rows; this.k = k; this.channelsFastest = channelsFastest; this.values16 = values16; this.meta = meta;
    }

    /** How many Eq. 2 products {@link #timesConvTransposed} has run. */
    public static long eq2Uses() { return EQ2_USES.get(); }

    /** Whether {@link #transposedConv} takes a convolution of Cout output channels, kernel k, this stride and padding. */
    public static boolean transposedConvFits(int cout, int kernel, int stride, int padding) {
        return enabled() && cout % 32 == 0 && stride == 1 && padding <= kernel - 1;
    }

    /**
     * Eq. 2's S(W^T) of a stride-1 convolution (w [Cout, Cin, k, k] float32 CUDA; magnitude 2:4 along Cout, the selection of
     * fst_cuda_prune24_t; Cout a multiple of 32) as the operand of a 2:4 convolution of dY: row ci holds the tap-reversed
     * weights with K ordered (tap, co), so that the groups of 4 output channels stay consecutive.
     */
    public static CudaConv24 transposedConv(Tensor w) {
        CudaOps.require("CudaConv24.transposedConv", w);
        if (w.dim() != 4 || w.shape[2] != w.shape[3] || w.shape[0] % 32 != 0 || w.numel() == 0)
            throw new IllegalArgumentException("CudaConv24.transposedConv needs a non-empty [Cout, Cin, k, k] weight with Cout a positive multiple of 32, got "
                    + Shape.str(w.shape));
        int cout = w.shape[0], cin = w.shape[1], khw = w.shape[2] * w.shape[3], kk = cin * khw;
        long nv = (long) kk * cout / 2, nm = (long) kk * cout / 32;
        CudaOps.Block v16 = CudaOps.Block.of(2 * nv), m = null;
        try (Tensor wc = w.contiguous(); CudaOps.Block vt = CudaOps.Block.of(4 * nv); CudaOps.Block mt = CudaOps.Block.of(4 * nm)) {
            m = CudaOps.Block.of(4 * nm);
            Native.cudaPrune24Transposed(cout, kk, CudaOps.ptr(wc), kk, vt.ptr(), mt.ptr(), MemorySegment.NULL, 0, MemorySegment.NULL, 0);
            Native.cudaConv24T(vt.ptr(), mt.ptr(), cin, cout, khw, v16.ptr(), m.ptr());
            return new CudaConv24(cin, khw * cout, true, v16, m);
        } catch (RuntimeException | Error e) {
            v16.close();
            if (m != null) m.close();
            throw e;
        }
    }

    /**
     * Eq. 2 of the stride-1 convolution this operand came from ({@link #transposedConv}): dx [inputShape] = S(W^T) dY folded
     * back, computed as the 2:4 convolution of dy [N, Cout, Ho, Wo] at padding k - 1 - padding; fp32 accumulation.
     */
    public Tensor timesConvTransposed(Tensor dy, int[] inputShape, int kernel, int padding) {
        if (values16 == null) throw new IllegalStateException("CudaConv24 is closed");
        CudaOps.require("CudaConv24.timesConvTransposed", dy);
        int cout = dy.dim() == 4 ? dy.shape[1] : -1;
        if (!channelsFastest || dy.dim() != 4 || inputShape.length != 4 || inputShape[1] != rows || (long) cout * kernel * kernel != k
                || inputShape[0] != dy.shape[0] || padding < 0 || padding > kernel - 1 || dy.shape[2] != inputShape[2] + 2 * padding - kernel + 1
                || dy.shape[3] != inputShape[3] + 2 * padding - kernel + 1)
            throw new IllegalArgumentException("shape mismatch: CudaConv24.timesConvTransposed dy " + Shape.str(dy.shape) + " into " + Shape.str(inputShape)
                    + " (kernel " + kernel + ", padding " + padding + ", operand [" + rows + ", " + k + "]" + (channelsFastest ? "" : ", not Eq. 2's") + ")");
        Tensor dx = Tensor.empty(Device.CUDA, DType.F32, inputShape);
        if (dx.numel() == 0) return dx;
        int q = kernel - 1 - padding;
        try (Tensor dyc = dy.contiguous()) {
            long[] g = { dy.shape[0], cout, dy.shape[2], dy.shape[3], kernel, kernel, 1, 1, q, q, inputShape[2], inputShape[3] };
            int tile = CudaOps.warpgroupRows(cout, rows);   // the same kept values and words, on wgmma.sp where the channels fit
            if (tile == 0 || !CudaOps.warpgroupConv(dyc, g, values16.ptr(), k / 2, rows, meta.ptr(), k / 32, dx, tile))
                Native.cudaConvIgemmSparse(CudaOps.ptr(dyc), g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11],
                        values16.ptr(), k / 2, meta.ptr(), k / 32, rows, CudaOps.ptr(dx), true);
        } catch (RuntimeException | Error e) {
            dx.close();
            throw e;
        }
        EQ2_USES.incrementAndGet();
        return dx;
    }

    /** Whether Gemm3 takes this path for a convolution's Eq. 1: switched on and GEMMs at BF16. */
    public static boolean enabled() { return switchedOn && CudaOps.matmulPrecision() == CudaOps.MatmulPrecision.BF16; }

    /** Switches the path; returns the previous setting. */
    public static boolean setEnabled(boolean on) { boolean was = switchedOn; switchedOn = on; return was; }

    /** How many products {@link #timesLoweredNchw} has run (tests check the path is taken). */
    public static long uses() { return USES.get(); }

    private static int groups(int k) { return (k + 3) / 4; }

    /** S(W) of the float32 CUDA matrix w [Cout, K] (any strides), the selection of fst_cuda_prune24, in this form. */
    public static CudaConv24 pruned(Tensor w) {
        CudaOps.require("CudaConv24.pruned", w);
        if (w.dim() != 2) throw new IllegalArgumentException("wrong rank: CudaConv24.pruned needs a matrix, got " + Shape.str(w.shape));
        int rows = w.shape[0], k = w.shape[1], g = groups(k), words = (g + 7) / 8;
        long nv = (long) rows * 2 * g;
        CudaOps.Block v16 = CudaOps.Block.of(Math.max(2, 2 * nv)), m = null;
        try (Tensor wc = w.contiguous(); CudaOps.Block v32 = CudaOps.Block.of(Math.max(4, 4 * nv))) {
            m = CudaOps.Block.of(Math.max(4, 4L * rows * words));
            if ((long) rows * k > 0) {
                Native.cudaPrune24(rows, k, CudaOps.ptr(wc), k, v32.ptr(), m.ptr(), MemorySegment.NULL, 0, MemorySegment.NULL, 0);
                Native.cudaF32ToBf16(v32.ptr(), v16.ptr(), nv);
            }
            return new CudaConv24(rows, k, false, v16, m);
        } catch (RuntimeException | Error e) {
            v16.close();
            if (m != null) m.close();
            throw e;
        }
    }

    public int rows() { return rows; }

    /** out [N, rows, Ho, Wo] (contiguous, overwritten) = S(W) im2col(low.x()), x rounded to bf16 as it is staged, fp32 accumulation. */
    public void timesLoweredNchw(Lowering low, Tensor out) {
        if (values16 == null) throw new IllegalStateException("CudaConv24 is closed");
        if (channelsFastest) throw new IllegalStateException("CudaConv24: Eq. 2's operand (timesConvTransposed), not Eq. 1's");
        CudaOps.require("CudaConv24.timesLoweredNchw", low.x(), out);
        long[] g = low.geometry();
        if (low.rows() != k || out.dim() != 4 || out.shape[0] != g[0] || out.shape[1] != rows || out.shape[2] != g[10] || out.shape[3] != g[11]
                || !out.isContiguous() || g[12] != 0)
            throw new IllegalArgumentException("shape mismatch: 2:4 [" + rows + ", " + k + "] x im2col [" + low.rows() + ", " + low.cols() + "] -> "
                    + Shape.str(out.shape) + " (needs a contiguous [" + g[0] + ", " + rows + ", " + g[10] + ", " + g[11] + "])");
        out.markModified();   // once the arguments are checked: a refused call writes nothing
        if (out.numel() == 0) return;
        int gr = groups(k);
        Native.cudaConvIgemmSparse(CudaOps.ptr(low.x()), g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11],
                values16.ptr(), 2L * gr, meta.ptr(), (gr + 7) / 8, rows, CudaOps.ptr(out), false);
        USES.incrementAndGet();
    }

    @Override public void close() {
        if (values16 != null) { values16.close(); values16 = null; }
        if (meta != null) { meta.close(); meta = null; }
    }
}
