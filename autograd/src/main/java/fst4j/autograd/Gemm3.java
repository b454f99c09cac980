package fst4j.autograd;

import fst4j.autograd.Profile.Part;
import fst4j.sparse.Compressed24;
import fst4j.sparse.HalfK;
import fst4j.sparse.Restoration;
import fst4j.sparse.SparseGemm;
import fst4j.sparse.Sparsifier;
import fst4j.sparse.Transposable24;
import fst4j.tensor.Blas;
import fst4j.tensor.DType;
import fst4j.tensor.Device;
import fst4j.tensor.Tensor;

/**
 * The three GEMMs of one layer with a sparsifier in every operand slot (see {@link SparseConfig}), in the
 * paper's orientation: W [Cout, K], X [K, cols], Y [Cout, cols]. Linear and Conv2d layers both use it
 * ({@link Layers}). A 2:4 operand along the GEMM's K axis runs through the native 2:4 sparse GEMM
 * (compressed values + metadata); other pruned operands are applied as masks before a dense GEMM (the
 * simulated strategies of Table 1). One instance per layer: it keeps the layer's sparsifier state.
 */
public final class Gemm3 {
    /** Supplies X [K, cols] (all columns) or only the kept columns of each image (Eq. 3 half-K). */
    public interface Columns {
        Tensor all();
        Tensor kept(int[] positionsPerImage, int images);
    }

    private final SparseConfig cfg;

    public Gemm3(SparseConfig cfg) { this.cfg = cfg; }

    public SparseConfig config() { return cfg; }

    /** Eq. 1's output, and S(W) when Eq. 2 takes W^T from it (the caller keeps it for backward). */
    public record Forward(Tensor y, Tensor sw) {}

    private static boolean f32(Tensor... ts) {
        for (Tensor t : ts) if (t.dtype() != DType.F32) return false;
        return true;
    }

    /** Eq. 1: Y = S(W) X; also returns S(W) (owned by the caller) when Eq. 2 takes W^T from it. */
    public Forward forward(Tensor w, Tensor x) {
        if (cfg.w() instanceof Sparsifier.Magnitude24 && axis(cfg.w(), 2) == 1 && f32(w, x) && cpu(w, x)) return forwardFused(w, x);
        long t0 = Profile.start();
        Tensor sw = cfg.w() instanceof Sparsifier.Dense ? w.alias() : cfg.w().apply(w);
        Compressed24 c = null;
        // the compressed 2:4 GEMM is a CPU kernel: on CUDA the pruned operand goes through the dense GEMM
        boolean sparse = cfg.w().accelerable() && f32(w, x) && cpu(w, x) && (cfg.w() instanceof Transposable24 || axis(cfg.w(), 2) == 1);
        if (sparse) c = Compressed24.compress(sw);
        Profile.stop(Part.SPARSIFY, t0);
        try {
            long t1 = Profile.start();
            Tensor y;
            if (sparse) {
                y = SparseGemm.spmm(c, x);
            } else {
                y = Tensor.empty(x.device(), dtype(w, x), w.size(0), x.size(1));
                Blas.gemm(1f, sw, x, 0f, y);
            }
            Profile.stop(Part.EQ1, t1);
            return new Forward(y, cfg.wtFromSparse() ? sw.alias() : null);
        } finally {
            sw.close();
            if (c != null) c.close();
        }
    }

    /** Eq. 1 with magnitude 2:4 along K: native fused prune + compress (S(W) materialised only when Eq. 2 needs it). */
    private Forward forwardFused(Tensor w, Tensor x) {
        long t0 = Profile.start();
        Tensor sw = cfg.wtFromSparse() ? Tensor.empty(w.shape()) : null;
        Tensor y = null;
        try (Compressed24 c = Compressed24.pruneCompress(w, sw, Blas.threads())) {
            Profile.stop(Part.SPARSIFY, t0);
            long t1 = Profile.start();
            y = SparseGemm.spmm(c, x);
            Profile.stop(Part.EQ1, t1);
            return new Forward(y, sw);
        } catch (RuntimeException | Error e) {
            if (sw != null) sw.close();
            throw e;
        }
    }

    private static boolean cpu(Tensor... ts) {
        for (Tensor t : ts) if (t.device() != Device.CPU) return false;
        return true;
    }

    private static DType dtype(Tensor a, Tensor b) { return a.dtype() == DType.F64 || b.dtype() == DType.F64 ? DType.F64 : DType.F32; }

    private static int axis(Sparsifier s, int rank) { int a = s.axis(); return a < 0 ? a + rank : a; }

    /** Eq. 2: dX = S(W^T) S(dY), [K, cols]; sw is forward's S(W) (used when the config takes W^T from it). */
    public Tensor inputGrad(Tensor w, Tensor sw, Tensor dy) {
        long t0 = Profile.start();
        if (cfg.wtFromSparse() && sw == null) throw new IllegalArgumentException(cfg.name() + ": Eq. 2 needs the forward's S(W)");
        Tensor src = cfg.wtFromSparse() ? sw : w;
        // magnitude 2:4 along Cout: native fused prune + compress of W^T, no pruned copy, no transpose
        boolean fused = cfg.wt() instanceof Sparsifier.Magnitude24 && axis(cfg.wt(), 2) == 0 && f32(src, dy) && cpu(src, dy);
        Tensor swt = fused || cfg.wt() instanceof Sparsifier.Dense ? src.alias() : cfg.wt().apply(src);   // [Cout, K], 2:4 along Cout
        Tensor g = cfg.dyEq2() instanceof Sparsifier.Dense ? dy.alias() : cfg.dyEq2().apply(dy);
        boolean sparseWt = fused || (f32(w, dy) && cpu(w, dy) && ((cfg.wt().accelerable() && axis(cfg.wt(), 2) == 0)
                || (cfg.wt() instanceof Sparsifier.Dense && cfg.wtFromSparse() && cfg.w() instanceof Transposable24)));
        Compressed24 c = null;
        try {
            if (fused) c = Compressed24.pruneCompressTransposed(src, Blas.threads());
            else if (sparseWt) {
                try (Tensor t = swt.t(); Tensor tc = t.contiguous()) { c = Compressed24.compress(tc); }
            }
            Profile.stop(Part.SPARSIFY, t0);
            long t1 = Profile.start();
            Tensor dx;
            if (sparseWt) {
                dx = SparseGemm.spmm(c, g);
            } else {
                dx = Tensor.empty(dy.device(), dtype(w, dy), w.size(1), dy.size(1));
                try (Tensor t = swt.t()) { Blas.gemm(1f, t, g, 0f, dx); }
            }
            Profile.stop(Part.EQ2, t1);
            return dx;
        } finally {
            swt.close();
            g.close();
            if (c != null) c.close();
        }
    }

    /**
     * Eq. 3: dW = G S(X)^T with G = IR(S(dY)), [Cout, K]. segment is the number of columns per image
     * (H*W; cols for a linear layer), the unit of the fixed mask and of the shift.
     */
    public Tensor weightGrad(Tensor dy, Columns x, int segment, int kRows) {
        long t0 = Profile.start();
        SparseConfig.Shift ir = cfg.ir();
        if (cfg.xt() instanceof Sparsifier.Fixed24 && cfg.dyEq3() instanceof Sparsifier.Dense && f32(dy) && cpu(dy)
                && (ir == null || ir.coeff() != 0f)) {
            // Eq. 7 half-K with the IR shift fused into the gather (one native pass over dY)
            Tensor gk = ir == null ? HalfK.shiftGather(dy, segment, 0f, 1, false, Blas.threads())
                    : HalfK.shiftGather(dy, segment, ir.coeff(), ir.direction(), ir.circular(), Blas.threads());
            Profile.stop(Part.SPARSIFY, t0);
            return halfK(gk, dy, x, segment, kRows);
        }
        Tensor g = cfg.dyEq3() instanceof Sparsifier.Dense ? dy.alias() : cfg.dyEq3().apply(dy);
        if (cfg.ir() != null) {
            try (Tensor gc = g) {
                SparseConfig.Shift s = cfg.ir();
                g = Restoration.shiftAdd(gc, segment, s.coeff(), s.direction(), s.circular());
            }
        }
        boolean halfK = cfg.xt() instanceof Sparsifier.Fixed24;
        Profile.stop(Part.SPARSIFY, t0);
        try {
            if (halfK) {
                long t1 = Profile.start();
                Tensor gk = HalfK.gatherKept(g, segment);
                Profile.stop(Part.SPARSIFY, t1);
                return halfK(gk, dy, x, segment, kRows);
            }
            Tensor xa = x.all();
            Tensor xs;
            if (cfg.xt() instanceof Sparsifier.Dense) xs = xa;
            else {
                long t1 = Profile.start();
                xs = cfg.xt().apply(xa);
                xa.close();
                Profile.stop(Part.SPARSIFY, t1);
            }
            try (xs; Tensor xst = xs.t()) {
                long t2 = Profile.start();
                Tensor dw = Tensor.empty(dy.device(), dtype(g, xs), dy.size(0), kRows);
                Blas.gemm(1f, g, xst, 0f, dw);
                Profile.stop(Part.EQ3, t2);
                return dw;
            }
        } finally {
            g.close();
        }
    }

    /** dW = Gk X[:, kept]^T for the gathered gradient gk (closed here). */
    private static Tensor halfK(Tensor gk, Tensor dy, Columns x, int segment, int kRows) {
        int images = dy.size(1) / segment;
        int[] kept = HalfK.keptPositions(segment, segment);
        try (gk; Tensor xk = x.kept(kept, images); Tensor xkt = xk.t()) {
            long t2 = Profile.start();
            Tensor dw = Tensor.empty(dy.device(), fst4j.tensor.DType.F32, dy.size(0), kRows);
            Blas.gemm(1f, gk, xkt, 0f, dw);
            Profile.stop(Part.EQ3, t2);
            return dw;
        }
    }
}
