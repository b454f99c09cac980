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

    private final int rows, k;
    private CudaOps.Block values16, meta;

    private CudaConv24(int rows, int k, CudaOps.Block values16, CudaOps.Block meta) {
        this.rows = rows; this.k = k; this.values16 = values16; this.meta = meta;
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
            return new CudaConv24(rows, k, v16, m);
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
        CudaOps.require("CudaConv24.timesLoweredNchw", low.x(), out);
        long[] g = low.geometry();
        if (low.rows() != k || out.dim() != 4 || out.shape[0] != g[0] || out.shape[1] != rows || out.shape[2] != g[10] || out.shape[3] != g[11]
                || !out.isContiguous())
            throw new IllegalArgumentException("shape mismatch: 2:4 [" + rows + ", " + k + "] x im2col [" + low.rows() + ", " + low.cols() + "] -> "
                    + Shape.str(out.shape) + " (needs a contiguous [" + g[0] + ", " + rows + ", " + g[10] + ", " + g[11] + "])");
        if (out.numel() == 0) return;
        int gr = groups(k);
        Native.cudaConvIgemmSparse(CudaOps.ptr(low.x()), g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11],
                values16.ptr(), 2L * gr, meta.ptr(), (gr + 7) / 8, rows, CudaOps.ptr(out));
        USES.incrementAndGet();
    }

    @Override public void close() {
        if (values16 != null) { values16.close(); values16 = null; }
        if (meta != null) { meta.close(); meta = null; }
    }
}
