package fst4j.autograd;

import fst4j.autograd.Profile.Part;
import fst4j.sparse.AuthorsFixed24;
import fst4j.sparse.Compressed24;
import fst4j.sparse.HalfK;
import fst4j.sparse.Restoration;
import fst4j.sparse.SparseGemm;
import fst4j.sparse.Sparsifier;
import fst4j.sparse.Transposable24;
import fst4j.tensor.Blas;
import fst4j.tensor.Conv;
import fst4j.tensor.CudaConv24;
import fst4j.tensor.CudaOps;
import fst4j.tensor.CudaSpmm;
import fst4j.tensor.SharedOperand;
import fst4j.tensor.Lowering;
import fst4j.tensor.DType;
import fst4j.tensor.Device;
import fst4j.tensor.Tensor;

import java.util.function.Supplier;

/**
 * The three GEMMs of one layer with a sparsifier in every operand slot (see {@link SparseConfig}), in the
 * paper's orientation: W [Cout, K], X [K, cols], Y [Cout, cols]. Linear and Conv2d layers both use it
 * ({@link Layers}). A 2:4 operand along the GEMM's K axis runs through the native 2:4 sparse GEMM
 * (compressed values + metadata); other pruned operands are applied as masks before a dense GEMM (the
 * simulated strategies of Table 1). One instance per layer: it keeps the layer's sparsifier state.
 * <p>
 * A forward that needs no gradient of W (eval under no-grad, a frozen W) takes Eq. 1's operand from the one this
 * layer keeps ({@link EvalCache}), pruned and compressed once per W and rebuilt when W changes, where the node's owner
 * asked for it (a layer, which lets it go on close) and the W rule is a pure function of W's values
 * ({@link #keepsPrunedW}); the same bits as pruning every time. A forward that needs W's gradient (training) keeps
 * nothing and lets go of what was kept. -Dfst4j.evalCache=false turns it off.
 * <p>
 * Threads: the forward products ({@link #forward}, {@link #prepareForward}, ...) may run on several threads at once:
 * the kept operand is built under its lock and handed to each call as a lease of its own, and the sparsifiers guard
 * their own state. The backward products keep per-layer state between Eq. 2
 * and Eq. 3 of one backward (the shared S(dY), the parity buffers, the authors' kept lists): a layer's backward runs
 * on one thread at a time, as training does.
 */
public final class Gemm3 {
    /** Supplies X [K, cols] (all columns) or only the kept columns of each image (Eq. 3 half-K). */
    public interface Columns {
        Tensor all();
        Tensor kept(int[] positionsPerImage, int images);
        /** X described as im2col of a batch (the GEMM lowers it while packing), or null to use {@link #all()}. */
        default Lowering lowering() { return null; }
        /** The kept columns described the same way (e.g. im2col with the horizontal stride doubled), or null. */
        default Lowering keptLowering(int[] positionsPerImage) { return null; }
        /**
         * im2col rows row0, row0 + rstep, ... (nrows of them) at one list of positions per image (the authors' random
         * patterns, {@link AuthorsFixed24#kept}) as an [nrows, kept] matrix with unit column stride, valid until the next
         * call on these columns; or null where these columns cannot give it.
         */
        default Tensor keptAt(AuthorsFixed24.Kept kept, int row0, int rstep, int nrows) { return null; }
    }

    private final SparseConfig cfg;

    /**
     * Whether forwards that need no gradient of W keep S(W) here ({@link EvalCache}): only for a node whose owner lets it
     * go when done with it ({@link #dropEvalCache}), as a layer does on its close, a new configuration and a move. The
     * node is not closeable: one made for a call ({@code Layers.linear(new Gemm3(cfg), x, w, b)} under no-grad or with W
     * frozen) would otherwise hold its kept off-heap S(W) after the call, with nothing left to free it.
     */
    private final boolean keepForOwner;

    /** A node that keeps nothing between calls (what a forward prepares, it frees). */
    public Gemm3(SparseConfig cfg) { this(cfg, false); }

    /**
     * A node whose forwards without W's gradient keep S(W) where keep is true and the W rule allows it
     * ({@link #keepsPrunedW}); its owner then calls {@link #dropEvalCache} when it is done with the node.
     */
    public Gemm3(SparseConfig cfg, boolean keep) { this.cfg = cfg; this.keepForOwner = keep; }

    public SparseConfig config() { return cfg; }

    /** Whether Eq. 3 reads every column of X ({@link Columns#all()}), not only the fixed mask's kept half. */
    public boolean needsAllColumns() { return !(cfg.xt() instanceof Sparsifier.Fixed24); }

    /** Eq. 1's output, and S(W) when Eq. 2 takes W^T from it (the caller keeps it for backward). */
    public record Forward(Tensor y, Tensor sw) {}

    private static boolean f32(Tensor... ts) {
        for (Tensor t : ts) if (t.dtype() != DType.F32) return false;
        return true;
    }

    /**
     * A left operand prepared once per step (S(W) for Eq. 1, S(W^T) for Eq. 2: pruned, and compressed when it runs
     * through the 2:4 kernel) and multiplied by as many right-hand blocks as the caller has, e.g. one per image.
     */
    public static final class Left implements AutoCloseable {
        private final Tensor dense;            // [rows, K], possibly a transposed view; null when sparse
        private final Compressed24 sparse;     // 2:4 along K (CPU kernel); null when dense
        private final CudaSpmm cuda;           // 2:4 along K through cuSPARSELt (bf16); null otherwise
        private final CudaConv24 conv24;       // a convolution's S(W) for the 2:4 implicit GEMM (mma.sp); null otherwise
        private final EvalCache.Shared lease;  // a kept operand's: close releases this reference, not the parts; else null
        private boolean released;              // a lease's close ran (a Left is one caller's: no lock)
        private Left(Tensor dense, Compressed24 sparse) { this(dense, sparse, null); }
        private Left(Tensor dense, Compressed24 sparse, CudaSpmm cuda) { this(dense, sparse, cuda, null); }
        private Left(Tensor dense, Compressed24 sparse, CudaSpmm cuda, CudaConv24 conv24) {
            this.dense = dense; this.sparse = sparse; this.cuda = cuda; this.conv24 = conv24; this.lease = null;
        }

        /** The kept operand of, for one caller: its parts are the cache's (read-only here), shared has been retained for it. */
        private Left(Left of, EvalCache.Shared shared) {
            this.dense = of.dense; this.sparse = of.sparse; this.cuda = of.cuda; this.conv24 = of.conv24; this.lease = shared;
        }

        /** Whether this operand runs through a 2:4 kernel (compressed on the CPU, cuSPARSELt, mma.sp) rather than a dense GEMM. */
        boolean twoFour() { return sparse != null || cuda != null || conv24 != null; }

        public int rows() { return conv24 != null ? conv24.rows() : cuda != null ? cuda.rows() : sparse != null ? sparse.rows() : dense.size(0); }

        /**
         * c = this * im2col(low.x()) (overwritten) with the lowered matrix never materialised; c [rows, cols] with unit
         * stride along its rows. False (nothing done) when this operand cannot take it (a strided dense view).
         */
        public boolean timesLowered(Lowering low, Tensor c) {
            if (conv24 != null) return false;   // it writes NCHW only (timesLoweredNchw)
            if (low.x().device() == Device.CUDA) {
                // on CUDA only the bf16 products lower the columns themselves (straight into their bf16 operand)
                if (cuda != null) { cuda.timesLowered(low, c); return true; }
                if (dense != null && dense.device() == Device.CUDA && f32(dense) && CudaOps.matmulPrecision() == CudaOps.MatmulPrecision.BF16) {
                    CudaOps.gemmLoweredBf16(dense, low, c);
                    return true;
                }
                return false;
            }
            if (cuda != null) return false;
            if (sparse != null) { SparseGemm.spmmLowered(sparse, low, 0f, c); return true; }
            if (dense.dtype() != DType.F32 || (dense.size(1) > 1 && dense.strides()[1] != 1)) return false;
            Conv.gemmLowered(1f, dense, low, false, 0f, c);
            return true;
        }

        /**
         * out [N, rows, Ho, Wo] (contiguous, a CPU float32 block of images) = this * im2col(low.x()) written as NCHW by a
         * dense float32 CPU operand, or by a 2:4 one where the CPU's compiled 2:4 convolution runs or Ho*Wo is a multiple of
         * 16 (the register kernel): true; false, with nothing written, for every other operand and shape (the caller then
         * multiplies into [rows, N*Ho*Wo] and scatters).
         */
        public boolean timesLoweredIntoNchw(Lowering low, Tensor out) {
            if (!cpuNchw || low.x().device() != Device.CPU || out.device() != Device.CPU) return false;
            if (sparse == null) {
                // the dense GEMM's tiles stored image by image (one through a buffer where it crosses into the next)
                if (dense == null || cuda != null || dense.device() != Device.CPU || !f32(dense) || !out.isContiguous()
                        || (dense.size(1) > 1 && dense.strides()[1] != 1)) return false;
                Conv.gemmLoweredNchw(1f, dense, low, 0f, out);
                nchwProducts.incrementAndGet();
                return true;
            }
            boolean done = SparseGemm.spmmLoweredNchw(sparse, low, out);
            if (done) nchwProducts.incrementAndGet();
            return done;
        }

        /**
         * Whether {@link #timesLoweredNchw} can write a CUDA convolution's output straight as NCHW: the cuSPARSELt
         * product, a dense float32 operand through the implicit-GEMM kernel where that is switched on, or one whose BF16
         * product cuBLAS writes image by image (CudaOps.loweredNchwBf16: planes of a multiple of 8 positions).
         */
        public boolean lowersIntoNchw(Lowering low) { return conv24 != null || cuda != null || implicitGemm() || batchedNchw(low); }

        /** A dense float32 CUDA operand whose product cuBLAS writes image by image into NCHW (CudaOps.loweredNchwBf16). */
        private boolean batchedNchw(Lowering low) {
            return dense != null && dense.device() == Device.CUDA && f32(dense) && CudaOps.loweredNchwBf16(low);
        }

        private boolean implicitGemm() {
            return dense != null && dense.device() == Device.CUDA && f32(dense) && CudaOps.implicitGemmOn();
        }

        /**
         * out [N, rows, Ho, Wo] = this * im2col(low.x()) written as NCHW, for a prepared operand that
         * {@link #lowersIntoNchw}: the cuSPARSELt product read back into NCHW by one kernel, one implicit-GEMM kernel, or
         * a dense BF16 operand's product written image by image by one batched cuBLAS call (CudaOps.gemmLoweredBf16Nchw).
         */
        public void timesLoweredNchw(Lowering low, Tensor out) {
            if (conv24 != null) conv24.timesLoweredNchw(low, out);
            else if (cuda != null) cuda.timesLoweredNchw(low, out);
            else if (implicitGemm()) CudaOps.convImplicitGemmBf16(dense, low, out);
            else if (batchedNchw(low)) CudaOps.gemmLoweredBf16Nchw(dense, low, out);
            else throw new IllegalStateException("timesLoweredNchw needs the cuSPARSELt operand, the implicit GEMM (-Dfst4j.cuda.igemm=true) "
                    + "or a dense BF16 operand with Ho*Wo a multiple of 8 (CudaOps.loweredNchwBf16)");
        }

        /**
         * A convolution's Eq. 2 folded back: col2im(this * dy) into a new dx of inputShape, on CUDA at BF16 precision,
         * where the product is written in bf16 and read back by col2im without a float32 copy (the 2:4 path where
         * cuSPARSELt writes bf16; the dense one through cuBLAS, rounding alike). Null elsewhere: then {@link #times}
         * and col2im.
         */
        public Tensor timesCol2im(Tensor dy, int[] inputShape, int kernel, int stride, int padding) {
            if (conv24 != null) throw new IllegalStateException("a convolution's Eq. 1 operand is not Eq. 2's");
            if (dy.device() != Device.CUDA || CudaOps.matmulPrecision() != CudaOps.MatmulPrecision.BF16) return null;
            if (cuda != null) return cuda.timesCol2im(dy, inputShape, kernel, stride, padding);
            if (dense != null && f32(dense) && f32(dy) && CudaOps.bf16Col2im())
                return CudaOps.gemmCol2imBf16(dense, dy, inputShape, kernel, stride, padding);
            return null;
        }

        /** Whether {@link #timesImages} reads an NCHW batch in place: a dense float32 CPU operand. */
        public boolean readsImages() {
            return sparse == null && cuda == null && conv24 == null && dense != null && dense.device() == Device.CPU && f32(dense);
        }

        /**
         * c [rows, N*L] = this * B with B [K, N*L] the NCHW batch bImages [N, K, L] read in place (Eq. 2's W^T dY from the
         * convolution's output gradient, no gathered dY): {@link #times} on the gathered B, the same bits. Only where
         * {@link #readsImages}.
         */
        public void timesImages(Tensor bImages, Tensor c) {
            if (!readsImages()) throw new IllegalStateException("timesImages needs a dense float32 CPU operand (see readsImages)");
            Blas.gemmImagesB(1f, dense, bImages, 0f, c);
            eq2ImageBlocks.incrementAndGet();
        }

        /** c = this * b (overwritten); b [K, cols] any view, c [rows, cols] with unit stride along its rows. */
        public void times(Tensor b, Tensor c) {
            if (conv24 != null) throw new IllegalStateException("the 2:4 implicit-GEMM operand multiplies a convolution's input only (timesLoweredNchw)");
            if (cuda != null) cuda.times(b, c);
            else if (sparse != null) SparseGemm.spmm(1f, sparse, b, 0f, c);
            else Blas.gemm(1f, dense, b, 0f, c);
        }

        @Override public void close() {
            if (lease != null) {
                if (!released) { released = true; lease.release(); }
                return;
            }
            if (dense != null) dense.close();
            if (sparse != null) sparse.close();
            if (cuda != null) cuda.close();
            if (conv24 != null) conv24.close();
        }
    }

    /** Eq. 1's prepared operand, and S(W) (owned by the caller) when Eq. 2 takes W^T from it. */
    public record Prepared(Left left, Tensor sw) implements AutoCloseable {
        /** Closes both (for failure paths; the forward pass hands sw on to its caller). */
        @Override public void close() {
            try { if (left != null) left.close(); } finally { if (sw != null) sw.close(); }
        }
    }

    /** Eq. 1: Y = S(W) X; also returns S(W) (owned by the caller) when Eq. 2 takes W^T from it. */
    public Forward forward(Tensor w, Tensor x) { return forward(w, x, false); }

    /** {@link #forward(Tensor, Tensor)}; reuse as in {@link #prepareForward(Tensor, DType, boolean, boolean)}. */
    public Forward forward(Tensor w, Tensor x, boolean reuse) {
        Prepared p = prepareForward(w, x.dtype(), false, reuse);
        try (Left l = p.left()) {
            long t1 = Profile.start();
            Tensor y = Tensor.empty(x.device(), dtype(w, x), l.rows(), x.size(1));
            try { l.times(x, y); } catch (RuntimeException | Error e) { y.close(); throw e; }
            Profile.stop(Part.EQ1, t1, y);
            return new Forward(y, p.sw());
        } catch (RuntimeException | Error e) {
            if (p.sw() != null) p.sw().close();
            throw e;
        }
    }

    /**
     * {@link #prepareForward} for a convolution's Eq. 1 on CUDA whose output can be written straight as NCHW
     * (nchw): where S(W) is magnitude 2:4 along K and {@link CudaConv24#enabled()}, pruned into the 2:4 implicit-GEMM
     * kernel's form, which only {@link Left#timesLoweredNchw} takes.
     */
    public Prepared prepareForwardConv(Tensor w, boolean nchw) { return prepareForwardConv(w, nchw, false); }

    /** {@link #prepareForwardConv(Tensor, boolean)}; reuse as in {@link #prepareForward(Tensor, DType, boolean, boolean)}. */
    public Prepared prepareForwardConv(Tensor w, boolean nchw, boolean reuse) {
        boolean magnitudeK = wMagnitudeAlongK() && f32(w);
        if (nchw && magnitudeK && !cfg.wtFromSparse() && w.device() == Device.CUDA && CudaConv24.enabled()) {
            long t0 = Profile.start();
            Supplier<Prepared> prune = () -> {
                preparations.incrementAndGet();
                return new Prepared(new Left(null, null, null, CudaConv24.pruned(w)), null);
            };
            Prepared p = keeps(reuse) ? kept.get(w, new Recipe(Recipe.CONV24, DType.F32, false, 1, cudaSwitches(w)), prune, Gemm3::lease) : prune.get();
            return Profile.stop(Part.SPARSIFY, t0, p);
        }
        return prepareForward(w, DType.F32, false, reuse);
    }

    /** How often {@link #prepareForward(Tensor, DType, boolean)} kept S(W) for the dense GEMM (tests see the rule act). */
    static final java.util.concurrent.atomic.AtomicLong DENSE_PRODUCTS_OF_SW = new java.util.concurrent.atomic.AtomicLong();

    /** Prunes (and compresses) W for Eq. 1 once; xType is the right-hand side's dtype (the 2:4 kernel needs float32). */
    public Prepared prepareForward(Tensor w, DType xType) { return prepareForward(w, xType, false); }

    /**
     * {@link #prepareForward(Tensor, DType)}; with denseProduct, a magnitude 2:4 S(W) on the CPU is kept as the pruned
     * dense matrix for the dense GEMM (the same S(W), summed in the dense kernel's order), for the layers where the
     * 2:4 product is the slower of the two (Layers' rule).
     */
    public Prepared prepareForward(Tensor w, DType xType, boolean denseProduct) { return prepareForward(w, xType, denseProduct, false); }

    /**
     * {@link #prepareForward(Tensor, DType, boolean)}; reuse says that this forward needs no gradient of W (no-grad,
     * or W not requiring one: the layer's {@code !needsGrad}), so that where the W slot's rule is a pure function of W's
     * values ({@link #keepsPrunedW}) the operand is taken from, or built into, this layer's kept one ({@link EvalCache}),
     * rebuilt only when W changes. The caller owns what it gets either way (a kept operand's are leases: closing them
     * releases a reference). A forward that needs W's gradient keeps nothing and lets go of what an earlier one kept.
     */
    public Prepared prepareForward(Tensor w, DType xType, boolean denseProduct, boolean reuse) {
        long t0 = Profile.start();
        Prepared p = keeps(reuse)
                ? kept.get(w, new Recipe(Recipe.PLAIN, xType, denseProduct, 1, cudaSwitches(w)), () -> pruneForward(w, xType, denseProduct), Gemm3::lease)
                : reuse ? Transposable24.withoutCounting(() -> pruneForward(w, xType, denseProduct))   // a forward that does not train W moves no TSM state
                : pruneForward(w, xType, denseProduct);
        return Profile.stop(Part.SPARSIFY, t0, p);
    }

    // ---------------------------------------------------------------- the kept S(W) of forwards without W's gradient

    /**
     * Whether forwards that need no gradient of W keep their pruned, compressed S(W) for the next call (on by default;
     * -Dfst4j.evalCache=false or {@link #setEvalCache} turns it off, for A/B timing: the same bits either way).
     */
    private static volatile boolean evalCache = !"false".equals(System.getProperty("fst4j.evalCache"));

    /** Whether the kept S(W) is switched on (see {@link #prepareForward(Tensor, DType, boolean, boolean)}). */
    public static boolean evalCache() { return evalCache; }

    /** Switches the kept S(W) on or off for this JVM; returns the previous setting. Off, the next forward of each layer lets its kept one go. */
    public static boolean setEvalCache(boolean on) { boolean was = evalCache; evalCache = on; return was; }

    /** This layer's kept Eq. 1 operand. */
    private final EvalCache kept = new EvalCache();

    /** Eq. 1 operands this node prepared from W (pruned, compressed), kept or not. */
    private final java.util.concurrent.atomic.AtomicLong preparations = new java.util.concurrent.atomic.AtomicLong();

    /**
     * Whether this node keeps S(W) for the forwards that need no gradient of W: its owner asked for it
     * ({@link #Gemm3(SparseConfig, boolean)}) and the W rule is a pure function of W's values, so that S(W) can be kept
     * for a W that has not changed: magnitude 2:4 and N:M (also the sort-based twin), top-k, and the fixed Eq. 7
     * positions. Not a dense W (nothing is pruned: the operand is W itself), not TSM (its mask is refreshed by a call
     * count, not by W's values), not the authors' random patterns, ASP's frozen mask (replaced by a checkpoint load that
     * leaves W unchanged) or a rule of one's own (whose state, if any, this node cannot see).
     */
    public boolean keepsPrunedW() {
        Sparsifier s = cfg.w();
        return keepForOwner && (s instanceof Sparsifier.Magnitude24 || s instanceof Sparsifier.MagnitudeNM || s instanceof Sparsifier.SortMagnitude24
                || s instanceof Sparsifier.Fixed24 || s instanceof Sparsifier.TopK);
    }

    /** Whether this call takes the kept operand; where it does not, whatever was kept is let go (one volatile read if none). */
    private boolean keeps(boolean reuse) {
        if (reuse && evalCache && keepsPrunedW()) return true;
        kept.drop();
        return false;
    }

    /** Lets the kept S(W) go (freed once no forward holds it): the layer's close, its move to another device, a new configuration. */
    public void dropEvalCache() { kept.clear(); }

    /** Eq. 1 operands this node prepared from W (pruned, compressed): once per forward, or once per W where one is kept. */
    public long weightPreparations() { return preparations.get(); }

    /** Forwards that took the kept operand instead of preparing one. */
    public long evalCacheHits() { return kept.hits(); }

    /** Whether an operand is kept now. */
    public boolean evalCacheHolds() { return kept.holds(); }

    /** References to the kept operand now: the cache's and the forwards' still holding it (0: none kept). For tests. */
    int evalCacheRefs() { return kept.refs(); }

    /**
     * What a kept operand was made for besides W: the product (the plain or dense-product operand, the convolution's
     * 2:4 implicit GEMM, a grouped convolution's per-group operands), the right-hand side's dtype, the dense-product
     * rule, the groups and, for a CUDA W, the switches that choose the operand's form.
     */
    private record Recipe(int product, DType xType, boolean denseProduct, int groups, int cudaSwitches) {
        static final int PLAIN = 0, CONV24 = 1, GROUPS = 2;
    }

    /** The CUDA switches the operand's form depends on (0 for a CPU W: none of them is read there). */
    private static int cudaSwitches(Tensor w) {
        if (w.device() != Device.CUDA) return 0;
        return (CudaSpmm.enabled() ? 1 : 0) | (CudaSpmm.fusedPrune() ? 2 : 0) | (CudaConv24.enabled() ? 4 : 0)
                | CudaOps.matmulPrecision().ordinal() << 3;
    }

    /** A caller's own reference to a kept operand: the Left as a lease, S(W) as an alias. */
    private static Prepared lease(Prepared kept, EvalCache.Shared shared) {
        Tensor sw = kept.sw() == null ? null : kept.sw().alias();
        shared.retain();
        return new Prepared(new Left(kept.left(), shared), sw);
    }

    private Prepared pruneForward(Tensor w, DType xType, boolean denseProduct) {
        preparations.incrementAndGet();
        {
            // magnitude 2:4 along K: pruned by one kernel into the form the product takes (CPU: compressed; CUDA: bf16)
            boolean magnitudeK = wMagnitudeAlongK() && f32(w) && xType == DType.F32;
            if (magnitudeK && cpu(w) && denseProduct) {
                DENSE_PRODUCTS_OF_SW.incrementAndGet();
                Tensor sw = cfg.w().apply(w);
                return new Prepared(new Left(sw, null), cfg.wtFromSparse() ? sw.alias() : null);
            }
            if (magnitudeK && cpu(w)) {
                // native fused prune + compress (S(W) materialised only when Eq. 2 needs it)
                Tensor sw = cfg.wtFromSparse() ? Tensor.empty(w.shape()) : null;
                try {
                    return new Prepared(new Left(null, Compressed24.pruneCompress(w, sw, Blas.threads())), sw);
                } catch (RuntimeException | Error e) {
                    if (sw != null) sw.close();
                    throw e;
                }
            }
            if (magnitudeK && !cfg.wtFromSparse() && w.device() == Device.CUDA && CudaSpmm.enabled() && CudaSpmm.fusedPrune())
                return new Prepared(new Left(null, null, CudaSpmm.pruned(w)), null);   // pruned straight into the bf16 operand
            Tensor sw = cfg.w() instanceof Sparsifier.Dense ? w.alias() : cfg.w().apply(w);
            // S(W) is 2:4 along the GEMM's K: a sparse product can take it
            boolean w24 = cfg.w().accelerable() && f32(w) && xType == DType.F32 && (cfg.w() instanceof Transposable24 || axis(cfg.w(), 2) == 1);
            if (w24 && w.device() == Device.CUDA && CudaSpmm.enabled()) {
                // on CUDA: S(W) (pruned on the device) in bf16, compressed and multiplied by cuSPARSELt
                try (Tensor s = sw) {
                    return new Prepared(new Left(null, null, CudaSpmm.of(s)), cfg.wtFromSparse() ? s.alias() : null);
                }
            }
            // otherwise a pruned operand on CUDA goes through the dense GEMM (masked)
            boolean sparse = w24 && cpu(w);
            if (!sparse) return new Prepared(new Left(sw, null), cfg.wtFromSparse() ? sw.alias() : null);
            try {
                return new Prepared(new Left(null, compressClaimed(sw, cfg.w(), "S(W) (Eq. 1)")), cfg.wtFromSparse() ? sw.alias() : null);
            } finally {
                sw.close();
            }
        }
    }

    /**
     * Eq. 1's operands of a grouped convolution ({@link GeneralConv2d}): one prepared S(W)_g per group, each the left
     * operand of its group's own product, and S(W) (owned by the caller) when Eq. 2 takes W^T from it. W is the layer's
     * whole weight [Cout, K] (K = Cin/groups * kh * kw, torch's layout), pruned by the W slot's rule once, as a
     * one-group layer's W is: a rule with state (TSM's mask, ASP's frozen mask) keeps one state per layer, and a rule
     * along K (magnitude 2:4) gives each group's rows exactly the S(W_g) it would give that group's W_g alone. Each
     * group's rows then take the 2:4 product where the rule says S(W) is 2:4 along K (the rows of a 2:4 matrix are 2:4),
     * else the dense one; K not a multiple of 4 is zero-padded as everywhere ({@link Compressed24}).
     */
    public record PreparedGroups(Left[] lefts, Tensor sw) implements AutoCloseable {
        /** Closes the group operands (not sw, which the caller owns). */
        @Override public void close() { for (Left l : lefts) if (l != null) l.close(); }
    }

    public PreparedGroups prepareForwardGroups(Tensor w, DType xType, int groups) { return prepareForwardGroups(w, xType, groups, false); }

    /** {@link #prepareForwardGroups(Tensor, DType, int)}; reuse as in {@link #prepareForward(Tensor, DType, boolean, boolean)}. */
    public PreparedGroups prepareForwardGroups(Tensor w, DType xType, int groups, boolean reuse) {
        if (w.dim() != 2 || groups <= 0 || w.size(0) % groups != 0)
            throw new IllegalArgumentException("prepareForwardGroups: W " + java.util.Arrays.toString(w.shape()) + " is not [Cout, K] with Cout divisible by "
                    + groups + " groups");
        if (!keeps(reuse)) return reuse ? Transposable24.withoutCounting(() -> pruneGroups(w, xType, groups)) : pruneGroups(w, xType, groups);
        // the build books its own pruning time (pruneGroups); a reuse only takes references
        return kept.get(w, new Recipe(Recipe.GROUPS, xType, false, groups, cudaSwitches(w)), () -> new KeptGroups(pruneGroups(w, xType, groups)),
                (k, shared) -> {
                    Tensor sw = k.pg().sw() == null ? null : k.pg().sw().alias();
                    Left[] lefts = new Left[groups];
                    for (int g = 0; g < groups; g++) {
                        shared.retain();   // one reference per group operand: each closes its own
                        lefts[g] = new Left(k.pg().lefts()[g], shared);
                    }
                    return new PreparedGroups(lefts, sw);
                });
    }

    /** A grouped convolution's operands as the cache keeps them: closing frees the group operands and S(W). */
    private record KeptGroups(PreparedGroups pg) implements AutoCloseable {
        @Override public void close() { try { pg.close(); } finally { if (pg.sw() != null) pg.sw().close(); } }
    }

    private PreparedGroups pruneGroups(Tensor w, DType xType, int groups) {
        preparations.incrementAndGet();
        long t0 = Profile.start();
        Left[] lefts = new Left[groups];
        Tensor sw = cfg.w() instanceof Sparsifier.Dense ? w.alias() : cfg.w().apply(w);
        try {
            boolean w24 = cfg.w().accelerable() && f32(w) && xType == DType.F32 && (cfg.w() instanceof Transposable24 || axis(cfg.w(), 2) == 1);
            int rows = w.size(0) / groups;
            for (int g = 0; g < groups; g++) {
                try (Tensor s = sw.slice(0, g * rows, (g + 1) * rows)) {
                    if (w24 && s.device() == Device.CUDA && CudaSpmm.enabled()) {
                        try (Tensor c = s.contiguous()) { lefts[g] = new Left(null, null, CudaSpmm.of(c)); }
                    } else if (w24 && cpu(s)) {
                        try (Tensor c = s.contiguous()) { lefts[g] = new Left(null, compressClaimed(c, cfg.w(), "S(W) (Eq. 1) of group " + g)); }
                    } else {
                        lefts[g] = new Left(s.alias(), null);
                    }
                }
            }
            PreparedGroups made = new PreparedGroups(lefts, cfg.wtFromSparse() ? sw.alias() : null);
            Profile.stop(Part.SPARSIFY, t0, () -> { try { made.close(); } finally { if (made.sw() != null) made.sw().close(); } });
            return made;
        } catch (RuntimeException | Error e) {
            for (Left l : lefts) if (l != null) l.close();
            throw e;
        } finally {
            sw.close();
        }
    }

    /**
     * The 2:4 compression of what rule made for slot, a rule that says it is 2:4 ({@link Sparsifier#accelerable}): the
     * compression names the first group that breaks the claim, and this the rule and slot (with several rules of one's
     * own in a model, "not 2:4 along K" alone did not say whose).
     */
    private static Compressed24 compressClaimed(Tensor m, Sparsifier rule, String slot) {
        try {
            return Compressed24.compress(m);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(slot + " by the rule " + rule + ", which says it is 2:4 (accelerable): " + e.getMessage(), e);
        }
    }

    private static boolean cpu(Tensor... ts) {
        for (Tensor t : ts) if (t.device() != Device.CPU) return false;
        return true;
    }

    private static DType dtype(Tensor a, Tensor b) { return a.dtype() == DType.F64 || b.dtype() == DType.F64 ? DType.F64 : DType.F32; }

    private static int axis(Sparsifier s, int rank) { int a = s.axis(); return a < 0 ? a + rank : a; }

    /** Whether Eq. 2's dY slot is dense, so that dX can be computed block by block (per image) with one prepared S(W^T). */
    public boolean eq2Local() { return cfg.dyEq2() instanceof Sparsifier.Dense; }

    /** Whether Eq. 2 multiplies S(W^T), pruned by magnitude 2:4 along Cout from W itself, by dense dY (FST2, FST3, FST3_IR). */
    public boolean eq2Magnitude24Cout() {
        return wtMagnitudeAlongCout() && !cfg.wtFromSparse() && cfg.dyEq2() instanceof Sparsifier.Dense;
    }

    /** S(W) is magnitude 2:4 along K (each row of W [Cout, K]). */
    private boolean wMagnitudeAlongK() { return cfg.w() instanceof Sparsifier.Magnitude24 && axis(cfg.w(), 2) == 1; }

    /** S(W^T) is magnitude 2:4 along Cout (each column of W [Cout, K]). */
    private boolean wtMagnitudeAlongCout() { return cfg.wt() instanceof Sparsifier.Magnitude24 && axis(cfg.wt(), 2) == 0; }

    /** Whether Eq. 2 multiplies dense W^T by dense dY (W^T not pruned, not taken from a pruned S(W), dY not sparsified). */
    public boolean eq2Dense() {
        return cfg.dyEq2() instanceof Sparsifier.Dense && cfg.wt() instanceof Sparsifier.Dense
                && (!cfg.wtFromSparse() || cfg.w() instanceof Sparsifier.Dense);
    }

    /**
     * Whether Eq. 3 can be accumulated block by block (per image) with {@link #weightGradInto}: dY dense and X^T dense or
     * under the fixed whole-position mask (a global sparsifier such as top-k would see only one block).
     */
    public boolean eq3Local() {
        return cfg.dyEq3() instanceof Sparsifier.Dense && (cfg.xt() instanceof Sparsifier.Dense || cfg.xt() instanceof Sparsifier.Fixed24
                || cfg.xt() instanceof AuthorsFixed24);
    }

    /**
     * The authors' random X^T pattern for one backward pass, drawn once for the whole batch as their mask's apply would
     * draw it (so a batch split into blocks takes the same draws as one whole-batch call); -1 for every other X^T rule.
     */
    int drawEq3Pattern() { return cfg.xt() instanceof AuthorsFixed24 a ? a.draw() : -1; }

    /**
     * A checkerboard's dW columns of one parity, accumulated over the blocks of a pass ([even, odd], null outside one): a
     * strided copy in and out of dW per block cost 1.2 % of a ResNet-18 step; {@link #finishEq3} writes them once.
     */
    private Tensor[] parityDw;

    /** Ends a blocked pass of the 7-argument weightGradInto: writes the checkerboard's accumulated columns into dw. */
    void finishEq3(Tensor dw) {
        if (parityDw == null) return;
        Tensor[] acc = parityDw;
        parityDw = null;
        try {
            for (int parity = 0; parity < 2; parity++) {
                if (acc[parity] == null) continue;
                try (Tensor dv = parityColumns(dw, parity, acc[parity].size(1))) { dv.copyFrom(acc[parity]); }
            }
        } finally {
            for (Tensor t : acc) if (t != null) t.close();
        }
    }

    /**
     * The authors' kept lists of this layer's blocks, by pattern, row parity, first image (mod 8) and size: a step of a
     * batch in blocks asks for the same few every time (6 pattern-parities x at most 8 first images x the block sizes), and
     * building one walks every position of the block.
     */
    private record KeptKey(int pattern, int parity, int firstImage, int images, int plane) {}
    private record KeptLists(AuthorsFixed24.Kept kept, int[] flat) {}
    private final java.util.Map<KeptKey, KeptLists> keptCache = new java.util.HashMap<>();

    /** How many Eq. 3 blocks have run over the kept columns of the authors' patterns (for tests). */
    static final java.util.concurrent.atomic.AtomicLong authorsKeptBlocks = new java.util.concurrent.atomic.AtomicLong();
    /** How many half-K Eq. 3 products have taken Eq. 7's kept columns as a column list (for tests). */
    static final java.util.concurrent.atomic.AtomicLong keptColumnLists = new java.util.concurrent.atomic.AtomicLong();

    /** Eq. 2: dX = S(W^T) S(dY), [K, cols]; sw is forward's S(W) (used when the config takes W^T from it). */
    public Tensor inputGrad(Tensor w, Tensor sw, Tensor dy) {
        try (Tensor g = eq2Dy(dy); Left l = prepareInputGrad(w, sw, g.dtype())) {
            long t1 = Profile.start();
            Tensor dx = eq2Product(l, g, w, dy);
            return Profile.stop(Part.EQ2, t1, dx);
        }
    }

    /** Eq. 2's S(dY) (booked as sparsification). */
    private Tensor eq2Dy(Tensor dy) {
        long t0 = Profile.start();
        Tensor g = cfg.dyEq2() instanceof Sparsifier.Dense ? dy.alias() : cfg.dyEq2().apply(dy);
        dropSharedDy();
        if (sharesDySelection()) { sharedDy = dy; sharedG = g.alias(); }   // freed by Eq. 3 or by the layer's dropSharedDy
        return Profile.stop(Part.SPARSIFY, t0, g);
    }

    /**
     * Eq. 2's S(dY), kept for Eq. 3 of the same dY where both slots hold the same rule without state (meProp's top-k in
     * both): one selection instead of two, the same values. Backward runs Eq. 2 before Eq. 3 on one thread.
     */
    private Tensor sharedDy, sharedG;

    /** How many Eq. 3 products took Eq. 2's S(dY) instead of selecting again (for tests). */
    static final java.util.concurrent.atomic.AtomicLong sharedDySelections = new java.util.concurrent.atomic.AtomicLong();

    private boolean sharesDySelection() {
        Sparsifier a = cfg.dyEq2();
        return a.equals(cfg.dyEq3()) && (a instanceof Sparsifier.TopK || a instanceof Sparsifier.Magnitude24
                || a instanceof Sparsifier.SortMagnitude24 || a instanceof Sparsifier.Fixed24);
    }

    /** Frees Eq. 2's kept S(dY) if Eq. 3 did not take it (the layers call it when their backward ends, however it ends). */
    public void dropSharedDy() {
        if (sharedG != null) sharedG.close();
        sharedG = null;
        sharedDy = null;
    }

    /** Eq. 3's S(dY): Eq. 2's where it was kept for this very dY, else selected now. */
    private Tensor eq3Dy(Tensor dy) {
        if (sharedG != null && sharedDy == dy && !sharedG.isClosed()) {
            Tensor g = sharedG;
            sharedG = null;
            sharedDy = null;
            sharedDySelections.incrementAndGet();
            return g;
        }
        return cfg.dyEq3() instanceof Sparsifier.Dense ? dy.alias() : cfg.dyEq3().apply(dy);
    }

    /** l g into a new [K, cols] matrix (K = w.size(1), cols = dy.size(1)). */
    private static Tensor eq2Product(Left l, Tensor g, Tensor w, Tensor dy) {
        Tensor dx = Tensor.empty(dy.device(), dtype(w, dy), w.size(1), dy.size(1));
        try { l.times(g, dx); } catch (RuntimeException | Error e) { dx.close(); throw e; }
        return dx;
    }

    /**
     * Eq. 2 of a convolution, folded back by col2im into a new dx of inputShape, on CUDA at BF16 precision: in one go
     * where the product can stay bf16 ({@link Left#timesCol2im}; the GEMM is then booked as EQ2 together with its
     * col2im), else as {@link #inputGrad}'s product and col2im with the same prepared operand. Null (nothing done)
     * elsewhere: the caller takes {@link #inputGrad} and col2im.
     */
    public Tensor inputGradCol2im(Tensor w, Tensor sw, Tensor dy, int[] inputShape, int kernel, int stride, int padding) {
        if (dy.device() != Device.CUDA || CudaOps.matmulPrecision() != CudaOps.MatmulPrecision.BF16) return null;
        try (Tensor g = eq2Dy(dy); Left l = prepareInputGrad(w, sw, g.dtype())) {
            long t1 = Profile.start();
            Tensor dx = l.timesCol2im(g, inputShape, kernel, stride, padding);
            if (dx != null) return Profile.stop(Part.EQ2, t1, dx);
            try (Tensor cols = eq2Product(l, g, w, dy)) {
                Profile.stop(Part.EQ2, t1);
                long t2 = Profile.start();
                dx = Conv.col2im(cols, inputShape, kernel, stride, padding);
                return Profile.stop(Part.IM2COL, t2, dx);
            }
        }
    }

    /** What Eq. 2's W^T is taken from: W, or forward's S(W) when the configuration says so. */
    private Tensor eq2Source(Tensor w, Tensor sw) {
        if (cfg.wtFromSparse() && sw == null) throw new IllegalArgumentException(cfg.name() + ": Eq. 2 needs the forward's S(W)");
        return cfg.wtFromSparse() ? sw : w;
    }

    /** S(W^T) [K, Cout] for Eq. 2, prepared once; sw is forward's S(W) (used when the config takes W^T from it). */
    public Left prepareInputGrad(Tensor w, Tensor sw, DType dyType) { return prepareInputGrad(w, sw, dyType, false); }

    /** How often {@link #prepareInputGrad(Tensor, Tensor, DType, boolean)} kept S(W^T) for the dense GEMM (for tests). */
    static final java.util.concurrent.atomic.AtomicLong DENSE_PRODUCTS_OF_SWT = new java.util.concurrent.atomic.AtomicLong();

    /**
     * {@link #prepareInputGrad(Tensor, Tensor, DType)}; with denseProduct, a 2:4 S(W^T) on the CPU is kept as the pruned
     * dense matrix for the dense GEMM (the same S(W^T), summed in the dense kernel's order, and read from dY's images in
     * place), for the layers where the 2:4 product is the slower of the two (Layers' rule).
     */
    public Left prepareInputGrad(Tensor w, Tensor sw, DType dyType, boolean denseProduct) {
        long t0 = Profile.start();
        return Profile.stop(Part.SPARSIFY, t0, pruneInputGrad(w, sw, dyType, denseProduct));
    }

    private Left pruneInputGrad(Tensor w, Tensor sw, DType dyType, boolean denseProduct) {
        {
            Tensor src = eq2Source(w, sw);
            boolean f32 = f32(src) && dyType == DType.F32;
            boolean dense = denseProduct && f32 && cpu(src);
            // magnitude 2:4 along Cout: native fused prune + compress of W^T, no pruned copy, no transpose; on CUDA S(W^T)
            // pruned straight into cuSPARSELt's bf16 operand [K, Cout]
            boolean magnitudeCout = wtMagnitudeAlongCout() && f32;
            if (magnitudeCout && cpu(src) && !dense)
                return new Left(null, Compressed24.pruneCompressTransposed(src, Blas.threads()));
            if (magnitudeCout && f32(w) && src.device() == Device.CUDA && CudaSpmm.enabled() && CudaSpmm.fusedPrune())
                return new Left(null, null, CudaSpmm.prunedTransposed(src));
            Tensor swt = cfg.wt() instanceof Sparsifier.Dense ? src.alias() : cfg.wt().apply(src);   // [Cout, K], 2:4 along Cout
            // S(W^T) is 2:4 along Cout (pruned so, or the transpose of a transposable S(W)): a sparse product can take it
            boolean wt24 = f32(w) && dyType == DType.F32 && ((cfg.wt().accelerable() && axis(cfg.wt(), 2) == 0)
                    || (cfg.wt() instanceof Sparsifier.Dense && cfg.wtFromSparse() && cfg.w() instanceof Transposable24));
            boolean sparseWt = wt24 && cpu(w);
            boolean cudaWt = wt24 && w.device() == Device.CUDA && CudaSpmm.enabled();
            try (swt) {
                if (cudaWt) { try (Tensor t = swt.t()) { return new Left(null, null, CudaSpmm.of(t)); } }
                if (sparseWt && dense) DENSE_PRODUCTS_OF_SWT.incrementAndGet();
                if (!sparseWt || dense) return new Left(swt.t(), null);
                try (Tensor t = swt.t(); Tensor tc = t.contiguous()) {
                    return new Left(null, compressClaimed(tc, cfg.wt() instanceof Sparsifier.Dense ? cfg.w() : cfg.wt(), "S(W^T) (Eq. 2)"));
                }
            }
        }
    }

    /**
     * Eq. 2's operand for a stride-1 convolution computed as a convolution of dY (Layers.Conv2d): W^T or S(W^T) laid
     * out as the transposed convolution's weight A' [Cin, kk*Cout] (taps reversed, tap-major), for a tap-major
     * {@link Lowering} of dY; null when this configuration's W^T is neither dense nor magnitude 2:4 along Cout (a
     * transposable mask, say), when Cout % 4 != 0 for a pruned one, or off the float32 CPU path: then the caller takes
     * {@link #prepareInputGrad} and col2im.
     */
    public Left prepareInputGradTconv(Tensor w, Tensor sw, int kk) { return prepareInputGradTconv(w, sw, kk, false); }

    /**
     * {@link #prepareInputGradTconv(Tensor, Tensor, int)}; with denseProduct a magnitude 2:4 S(W^T) is kept as the pruned dense
     * tap-major matrix for the dense GEMM (the same S(W^T), summed in the dense kernel's order; Layers' rule).
     */
    public Left prepareInputGradTconv(Tensor w, Tensor sw, int kk, boolean denseProduct) {
        if (!cpu(w) || !f32(w)) return null;
        Tensor src = eq2Source(w, sw);
        boolean pruned = wtMagnitudeAlongCout();
        if (!(pruned || cfg.wt() instanceof Sparsifier.Dense) || (pruned && w.size(0) % 4 != 0)) return null;
        // the transpose of a transposable S(W) is 2:4 along Cout too: prepareInputGrad runs it through the 2:4 kernel
        if (!pruned && cfg.wtFromSparse() && cfg.w() instanceof Transposable24) return null;
        long t0 = Profile.start();
        Left l;
        if (pruned && denseProduct) {
            try (Compressed24 c = Compressed24.pruneCompressTconv(src, kk, Blas.threads())) { l = new Left(c.decompress(), null); }
            DENSE_PRODUCTS_OF_SWT.incrementAndGet();
        } else l = pruned ? new Left(null, Compressed24.pruneCompressTconv(src, kk, Blas.threads())) : new Left(Conv.tconvWeight(src, kk), null);
        return Profile.stop(pruned ? Part.SPARSIFY : Part.ELEMENTWISE, t0, l);   // a dense operand is only a layout copy
    }

    /**
     * Eq. 3: dW = G S(X)^T with G = IR(S(dY)), [Cout, K]. segment is the number of columns per image
     * (H*W; cols for a linear layer), the unit of the fixed mask and of the shift.
     */
    public Tensor weightGrad(Tensor dy, Columns x, int segment, int kRows) {
        Tensor dw = Tensor.empty(dy.device(), dtype(dy, dy), dy.size(0), kRows);
        try {
            weightGradInto(dy, x, segment, dw, 0f);
            return dw;
        } catch (RuntimeException | Error e) {
            dw.close();
            throw e;
        }
    }

    /**
     * Eq. 3 of a convolution straight from NCHW dY on CUDA (the implicit GEMM with its left operand made as it is staged: no
     * by-channel copy of dY; FST3 / FST3_IR's IR shift and half-K gather inside too): a new dW [Cout, kRows], or null (nothing
     * done) where this configuration or geometry cannot take it (then the caller takes {@link #weightGrad}).
     */
    public Tensor weightGradNchw(Tensor dy, Columns x, int kRows) {
        if (dy.device() != Device.CUDA || dy.dim() != 4 || !f32(dy) || !CudaOps.implicitGemmEq3On() || !(cfg.dyEq3() instanceof Sparsifier.Dense))
            return null;
        SparseConfig.Shift ir = cfg.ir();
        int plane = dy.size(2) * dy.size(3);
        Lowering low;
        boolean kept;
        if (cfg.xt() instanceof Sparsifier.Dense && ir == null) {
            low = x.lowering();
            kept = false;
        } else if (cfg.xt() instanceof Sparsifier.Fixed24) {
            low = x.keptLowering(HalfK.keptPositions(plane, plane));
            kept = true;
        } else return null;
        if (low == null || low.tapMajor()) return null;
        long t0 = Profile.start();
        Tensor dw = Tensor.empty(Device.CUDA, DType.F32, dy.size(1), kRows);
        try {
            SparseConfig.Shift sh = gatherShift();
            CudaOps.weightGradImplicitFromNchw(dy, low, kept, sh.coeff(), sh.direction(), sh.circular(), 0f, dw);
        } catch (RuntimeException | Error e) {
            dw.close();
            throw e;
        }
        return Profile.stop(Part.EQ3, t0, dw);
    }

    /**
     * Whether {@link #weightGradIntoImages} takes dY straight from an NCHW block here, on float32 CPU tensors: Eq. 7's
     * half-K with the IR shift fused into the gather, or, where the caller's columns are lowered while packing (lowering),
     * the dense Eq. 3 (no IR shift) whose GEMM packs dY from the images.
     */
    public boolean eq3FromImages(Tensor dy, boolean lowering) {
        SparseConfig.Shift ir = cfg.ir();
        if (!(cfg.dyEq3() instanceof Sparsifier.Dense) || !f32(dy) || dy.device() != Device.CPU) return false;
        if (cfg.xt() instanceof Sparsifier.Fixed24) return ir == null || ir.coeff() != 0f;
        return lowering && cfg.xt() instanceof Sparsifier.Dense && ir == null;
    }

    /** No IR shift: coefficient 0, which the gathers take as a plain gather (neighbours never read). */
    private static final SparseConfig.Shift NO_SHIFT = new SparseConfig.Shift(0f, 1, false);

    /** The IR shift Eq. 3's gathers fuse in: this configuration's, or none. */
    private SparseConfig.Shift gatherShift() { return cfg.ir() != null ? cfg.ir() : NO_SHIFT; }

    /**
     * Whether half-K Eq. 3 from dY's images computes the IR shift while Eq. 3's kernel without packing copies dY (where the
     * kept positions are x's strided lowering, even-width planes, and the output rows within that kernel's limit) instead
     * of gathering the shifted kept columns into a matrix first (false: the gather, for A/B runs: switch eq3shift).
     */
    public static volatile boolean eq3FusedShift = !"false".equals(System.getProperty("fst4j.eq3.fusedShift"));
    /** How many half-K Eq. 3 products computed the IR shift while packing (for tests). */
    static final java.util.concurrent.atomic.AtomicLong eq3FusedShifts = new java.util.concurrent.atomic.AtomicLong();

    /** How many Eq. 2 products (W^T dY) have read dY from NCHW images in place (for tests). */
    static final java.util.concurrent.atomic.AtomicLong eq2ImageBlocks = new java.util.concurrent.atomic.AtomicLong();

    /** How many Eq. 3 products have read dY from NCHW images in place (for tests). */
    static final java.util.concurrent.atomic.AtomicLong eq3ImageBlocks = new java.util.concurrent.atomic.AtomicLong();

    /**
     * {@link #weightGradInto(Tensor, Columns, int, Tensor, float)} for dY given as an NCHW block [N, Cout, L] (segment =
     * L) rather than gathered into [Cout, N*L]: the IR shift and the half-K gather read the images in place, so a blocked
     * convolution whose Eq. 2 needs no gathered dY (a convolution of dY) copies nothing. Only where
     * {@link #eq3FromImages(Tensor, boolean)} says so.
     */
    public void weightGradIntoImages(Tensor dyImages, Columns x, Tensor dw, float beta) {
        if (!eq3FromImages(dyImages, true) || dyImages.dim() != 3)
            throw new IllegalStateException("weightGradIntoImages needs Eq. 7's half-K or the dense Eq. 3 on a float32 CPU [N, C, L] dY"
                    + " (see eq3FromImages)");
        int images = dyImages.size(0), segment = dyImages.size(2);
        if (!(cfg.xt() instanceof Sparsifier.Fixed24)) {   // the dense Eq. 3
            Lowering low = f32(dw) && unitRows(dw) && dyImages.isContiguous() ? x.lowering() : null;
            if (low != null && low.x().device() == Device.CPU) {
                long t2 = Profile.start();
                Conv.gemmLoweredImages(1f, dyImages, low, beta, dw);   // dY packed image by image, im2col^T never materialised
                Profile.stop(Part.EQ3, t2);
                eq3ImageBlocks.incrementAndGet();
                return;
            }
            // no lowering to pack from: dY gathered into [C, N*L] for the usual path
            try (Tensor p = dyImages.permute(1, 0, 2); Tensor pc = p.contiguous(); Tensor g = pc.reshape(dyImages.size(1), images * segment)) {
                weightGradInto(g, x, segment, dw, beta);
            }
            return;
        }
        SparseConfig.Shift sh = gatherShift();
        if (eq3FusedShift) {
            // kept positions that x's strided lowering reads (even-width planes): Eq. 3 without packing copies dY's images
            // with the IR shift applied, no gathered [C, N*L/2] matrix (the packing GEMM gathers in native code); the shift's
            // time is then Eq. 3's
            Lowering low = f32(dw) && unitRows(dw) && dyImages.isContiguous() ? x.keptLowering(HalfK.keptPositions(segment, segment)) : null;
            if (low != null && low.x().device() == Device.CPU && !low.tapMajor()) {
                long t2 = Profile.start();
                Conv.gemmLoweredImagesShift(1f, dyImages, sh.coeff(), sh.direction(), sh.circular(), low, beta, dw);
                Profile.stop(Part.EQ3, t2);
                eq3ImageBlocks.incrementAndGet();
                eq3FusedShifts.incrementAndGet();
                return;
            }
        }
        long t0 = Profile.start();
        Tensor gk = Profile.stop(Part.SPARSIFY, t0, HalfK.shiftGatherImages(dyImages, sh.coeff(), sh.direction(), sh.circular(),
                Blas.threads()));   // a failed stop frees gk
        eq3ImageBlocks.incrementAndGet();
        halfK(gk, images, x, segment, dw, beta);
    }

    /**
     * dw = Eq. 3's dW + beta * dw, dw [Cout, K] with unit stride along its rows: accumulates Eq. 3 over blocks of
     * whole images (see {@link #eq3Local()}). beta == 0 overwrites dw.
     */
    public void weightGradInto(Tensor dy, Columns x, int segment, Tensor dw, float beta) {
        if (dy.size(1) == 0) {
            // no columns (a linear layer given an empty batch, whose segment is then 0): the sum is empty. The fixed mask's
            // gather refused it ("segment 0 does not divide K = 0") where the dense products return zeros
            Blas.scaleEmptySum(beta, dw);
            return;
        }
        long t0 = Profile.start();
        SparseConfig.Shift ir = cfg.ir();
        if (cfg.xt() instanceof Sparsifier.Fixed24 && cfg.dyEq3() instanceof Sparsifier.Dense && f32(dy)
                && (ir == null || ir.coeff() != 0f)) {
            // Eq. 7 half-K with the IR shift fused into the gather (one native pass over dY; one kernel on CUDA, which
            // also writes the bf16 operand the half-K GEMM borrows while the handle is open)
            SparseConfig.Shift sh = gatherShift();
            try (SharedOperand gk = HalfK.shiftGatherShared(dy, segment, sh.coeff(), sh.direction(), sh.circular(), Blas.threads())) {
                Profile.stop(Part.SPARSIFY, t0);
                halfK(gk.tensor().alias(), dy.size(1) / segment, x, segment, dw, beta);
            }
            return;
        }
        Tensor g = eq3Dy(dy);
        if (cfg.ir() != null) {
            try (Tensor gc = g) {
                SparseConfig.Shift s = cfg.ir();
                g = Restoration.shiftAdd(gc, segment, s.coeff(), s.direction(), s.circular());
            }
        }
        boolean halfK = cfg.xt() instanceof Sparsifier.Fixed24;
        Profile.stop(Part.SPARSIFY, t0, g);
        try {
            if (halfK) {
                long t1 = Profile.start();
                Tensor gk = Profile.stop(Part.SPARSIFY, t1, HalfK.gatherKept(g, segment));
                halfK(gk, dy.size(1) / segment, x, segment, dw, beta);
                return;
            }
            Lowering low = cfg.xt() instanceof Sparsifier.Dense && f32(g, dw) ? x.lowering() : null;
            if (low != null && unitRows(g)) {
                long t2 = Profile.start();
                lowered(g, low, beta, dw);   // im2col^T never materialised
                Profile.stop(Part.EQ3, t2);
                return;
            }
            Tensor xa = x.all();
            Tensor xs;
            if (cfg.xt() instanceof Sparsifier.Dense) xs = xa;
            else {
                long t1;
                try {
                    t1 = Profile.start();
                    xs = cfg.xt().apply(xa);
                } finally {
                    xa.close();
                }
                Profile.stop(Part.SPARSIFY, t1, xs);
            }
            try (xs; Tensor xst = xs.t()) {
                long t2 = Profile.start();
                Blas.gemm(1f, g, xst, beta, dw);
                Profile.stop(Part.EQ3, t2);
            }
        } finally {
            g.close();
        }
    }

    /**
     * {@link #weightGradInto(Tensor, Columns, int, Tensor, float)} for the images [firstImage, firstImage + dy.size(1) /
     * segment) of a batch whose authors' pattern the caller drew once ({@link #drawEq3Pattern}; -1 for other X^T rules,
     * which need neither). Under a pattern, Eq. 3 runs over the kept columns only: dW[:, rows] = G[:, kept] X[rows, kept]^T,
     * half the FLOPs and half the lowering, once for all rows (patterns 0 and 1 keep whole positions) or once per row
     * parity (the checkerboards keep (i + r) of one parity), where G is dY with the IR shift applied. A checkerboard's
     * columns accumulate in buffers until {@link #finishEq3}, which the caller runs after the pass's last block.
     */
    void weightGradInto(Tensor dy, Columns x, int segment, Tensor dw, float beta, int firstImage, int pattern) {
        if (pattern < 0) {
            weightGradInto(dy, x, segment, dw, beta);
            return;
        }
        if (!(cfg.xt() instanceof AuthorsFixed24) || !(cfg.dyEq3() instanceof Sparsifier.Dense))
            throw new IllegalArgumentException("a drawn pattern needs the authors' X^T mask and a dense dY in Eq. 3, the config has X^T "
                    + cfg.xt() + " and dY " + cfg.dyEq3());
        if (pattern > 3) throw new IllegalArgumentException("pattern must be 0..3, got " + pattern);
        if (dy.dim() != 2 || dw.dim() != 2 || dy.size(0) != dw.size(0) || segment <= 0 || dy.size(1) % segment != 0)
            throw new IllegalArgumentException("shape mismatch: Eq. 3 of dY " + java.util.Arrays.toString(dy.shape()) + " in segments of "
                    + segment + " into dW " + java.util.Arrays.toString(dw.shape()));
        if (!f32(dy, dw) || dy.device() != Device.CPU || dw.device() != Device.CPU || !unitRows(dw))
            throw new IllegalArgumentException("Eq. 3 over the authors' kept columns needs float32 CPU dY and dW (dW with unit stride along"
                    + " its rows), got " + dy.dtype() + " on " + dy.device() + " and " + dw.dtype() + " on " + dw.device());
        int cout = dy.size(0), images = dy.size(1) / segment, kRows = dw.size(1);
        boolean byRow = AuthorsFixed24.rowDependent(pattern);
        Lowering low = x.lowering();
        if (low != null && (low.x().device() != Device.CPU || low.tapMajor())) low = null;
        for (int parity = 0; parity < (byRow ? 2 : 1); parity++) {
            int row0 = byRow ? parity : 0, rstep = byRow ? 2 : 1, nrows = byRow ? (kRows - parity + 1) / 2 : kRows;
            if (nrows == 0) continue;
            long t1 = Profile.start();
            // the patterns depend on the global position mod 8 only, so image firstImage % 8 stands for firstImage
            KeptKey key = new KeptKey(pattern, parity, firstImage % 8, images, segment);
            KeptLists kl = keptCache.get(key);
            if (kl == null) {
                AuthorsFixed24.Kept k = AuthorsFixed24.kept(pattern, parity, firstImage % 8, images, segment);
                if (keptCache.size() >= 64) keptCache.clear();
                keptCache.put(key, kl = new KeptLists(k, k.flat(segment)));
            }
            AuthorsFixed24.Kept kept = kl.kept();
            int[] flat = kl.flat();
            // G's kept columns, the IR shift read only there (dY read in place)
            SparseConfig.Shift sh = gatherShift();
            try (Tensor gk = HalfK.shiftGatherAt(dy, segment, flat, sh.coeff(), sh.direction(), sh.circular())) {
                Profile.stop(Part.SPARSIFY, t1);
                // X's kept columns lowered while the GEMM packs (no im2col), or materialised where the columns cannot be lowered
                Tensor xk = low == null ? x.keptAt(kept, row0, rstep, nrows) : null;
                if (low == null && xk == null) throw new IllegalStateException("these columns give neither a lowering nor the authors' kept columns");
                try (xk) {
                    long t2 = Profile.start();
                    // a checkerboard's rows are every other column of dW: into the pass's buffer for that parity (finishEq3)
                    Tensor target = byRow ? parityTarget(parity, dw, cout, nrows, beta) : dw;
                    if (low != null) Conv.gemmLoweredAt(1f, gk, low, flat, row0, rstep, nrows, beta, target);
                    else try (Tensor xkt = xk.t()) { Blas.gemm(1f, gk, xkt, beta, target); }
                    Profile.stop(Part.EQ3, t2);
                }
            }
        }
        authorsKeptBlocks.incrementAndGet();
    }

    /** The pass's buffer for parity's columns of dw; the first block's starts as dw's columns (beta != 0) or unread (beta 0). */
    private Tensor parityTarget(int parity, Tensor dw, int cout, int nrows, float beta) {
        if (parityDw == null) parityDw = new Tensor[2];
        Tensor t = parityDw[parity];
        if (t == null) {
            t = parityDw[parity] = Tensor.empty(cout, nrows);
            if (beta != 0f) {
                try (Tensor dv = parityColumns(dw, parity, nrows)) { t.copyFrom(dv); }
            }
        }
        return t;
    }

    /** dw's columns parity, parity + 2, ... (n of them) as a view. */
    private static Tensor parityColumns(Tensor dw, int parity, int n) {
        return dw.asStrided(new int[]{dw.size(0), n}, new long[]{dw.strides()[0], 2}, dw.offset() + parity);
    }

    /**
     * dw = g im2col(low.x())^T + beta dw: on the CPU lowered while the GEMM packs; on CUDA (where {@link Columns} gives a
     * lowering only at BF16) lowered straight into the bf16 operand.
     */
    private static void lowered(Tensor g, Lowering low, float beta, Tensor dw) {
        if (low.x().device() == Device.CUDA && CudaOps.implicitGemmEq3On() && !low.tapMajor()) CudaOps.weightGradImplicitBf16(g, low, beta, dw);
        else if (low.x().device() == Device.CUDA) CudaOps.gemmLoweredBf16(g, low, true, beta, dw);
        else Conv.gemmLowered(1f, g, low, true, beta, dw);
    }

    /**
     * Whether a CPU convolution's output is written as NCHW by its product (the dense GEMM, or the compiled 2:4 product where
     * it runs: {@link Left#timesLoweredIntoNchw}) instead of multiplied into [Cout, N*L] and scattered (false: that, for A/B runs).
     */
    public static volatile boolean cpuNchw = !"false".equals(System.getProperty("fst4j.conv.cpuNchw"));
    /** How many CPU products have written NCHW themselves (for tests). */
    static final java.util.concurrent.atomic.AtomicLong nchwProducts = new java.util.concurrent.atomic.AtomicLong();

    /**
     * Whether half-K Eq. 3 lowers Eq. 7's kept columns as a column list where they are not a strided lowering (odd-width
     * planes, 7x7 say) instead of gathering them from im2col (false: the gather, for A/B runs and for the test that
     * compares the two).
     */
    public static volatile boolean oddPlaneColumnList = !"false".equals(System.getProperty("fst4j.eq3.columnList"));

    /**
     * Whether the column list is taken on a CPU without the planned lowering too (AVX-512 only: its window, segment and
     * gather plans lower 16 kept columns at a time). Without them each kept column is lowered one at a time, and the gather
     * from im2col was faster: resnet-small FST3_IR forced to AVX2, Eq. 3 of the 64-channel 7x7 layers 7.75 -> 2.21 ms a step
     * (+1.85 ms of im2col), of the 32 -> 64 stride-2 layer 3.90 -> 0.94 (+0.7), the step 123.7 -> 114.9 ms (NOTES v32).
     * False by default: there the gather; tests set it to compare the two on such a CPU as well.
     */
    public static volatile boolean columnListWithoutPlans = false;

    private static boolean unitRows(Tensor t) { return t.dim() == 2 && (t.size(1) <= 1 || t.strides()[1] == 1); }

    /** dw = Gk X[:, kept]^T + beta * dw for the gathered gradient gk (closed here). */
    private static void halfK(Tensor gk, int images, Columns x, int segment, Tensor dw, float beta) {
        try (gk) {   // closed whatever happens below, a lowering refused included
            int[] kept = HalfK.keptPositions(segment, segment);
            Lowering low = f32(gk, dw) ? x.keptLowering(kept) : null;
            if (low != null && unitRows(gk)) {
                long t2 = Profile.start();
                lowered(gk, low, beta, dw);   // kept columns never materialised
                Profile.stop(Part.EQ3, t2);
                return;
            }
            // Where they are not (odd-width planes, where they form a checkerboard, or strided ones), the kept positions
            // of every image as a column list of im2col, lowered while packing in one product: each vector of 16 kept
            // columns reads one 32-float window of an image at stride 1 (a segment or gather plan where strided).
            // 1.09-1.35x the two strided halves of the checkerboard it replaced, 1.14-1.53x the gather at 3x3 stride 2
            // (NOTES v30); 1x1 kernels keep the gather (0.91-1.08x).
            Lowering all = low == null && oddPlaneColumnList && f32(gk, dw) && unitRows(gk) ? x.lowering() : null;
            if (all != null && all.x().device() == Device.CPU && !all.tapMajor() && all.geometry()[4] * all.geometry()[5] > 1
                    && (columnListWithoutPlans || fst4j.shim.Native.loweringPlan(-1))) {
                long t2 = Profile.start();
                Conv.gemmLoweredAt(1f, gk, all, HalfK.keptPositions(images * segment, segment), 0, 1, dw.size(1), beta, dw);
                Profile.stop(Part.EQ3, t2);
                keptColumnLists.incrementAndGet();
                return;
            }
            try (Tensor xk = x.kept(kept, images); Tensor xkt = xk.t()) {
                long t2 = Profile.start();
                Blas.gemm(1f, gk, xkt, beta, dw);
                Profile.stop(Part.EQ3, t2);
            }
        }
    }
}
