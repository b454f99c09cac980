package fst4j.autograd;

import fst4j.autograd.Profile.Part;
import fst4j.tensor.Conv;
import fst4j.tensor.DType;
import fst4j.tensor.CudaOps;
import fst4j.tensor.Device;
import fst4j.tensor.Lowering;
import fst4j.tensor.SharedOperand;
import fst4j.tensor.Tensor;

/**
 * The Eq. 1-3 node as differentiable functions: a linear layer and a 2-D convolution (im2col + the
 * node) whose three GEMMs go through one {@link Gemm3} with its sparsity configuration.
 */
public final class Layers {
    private Layers() {}

    /**
     * y = x W^T + b for x [*, in] (any leading axes, as torch.nn.Linear; x [in] gives [out]), W [out, in], b [out] or
     * null. A 2-D x [N, in] goes through the node as it is; any other rank is flattened to [rows, in] (its leading axes
     * become the batch: the sparse Eq. 1-3 node, FST3_IR's shift along the batch included, sees the rows as examples)
     * and the result reshaped to [*, out], the gradients following back through the reshapes (views or copies on either
     * device: CUDA tensors too).
     */
    public static Var linear(Gemm3 node, Var x, Var w, Var b) {
        if (x.value().dim() != 2 && w.value().dim() == 2) return overRows(x, w.shape()[1], x2 -> linear(node, x2, w, b));
        Var y = new Linear(node).apply(x, w);
        return b == null ? y : y.add(b);
    }

    /**
     * f, a function of [rows, in] giving [rows, out], applied to x [*, in]: a 2-D x as it is, any other rank (1 or more)
     * flattened to [rows, in] and f's result reshaped to [*, out]. What {@link #linear} does with leading axes, for a
     * layer that wraps the node in more (nn's Linear under ReSprop).
     */
    public static Var overRows(Var x, int in, java.util.function.UnaryOperator<Var> f) {
        int[] s = x.shape();
        if (s.length == 2) return f.apply(x);
        if (s.length == 0 || s[s.length - 1] != in)
            throw new IllegalArgumentException("shape mismatch: linear input " + fst4j.tensor.Shape.str(s) + " needs [*, " + in + "] (its last axis the "
                    + in + " input features)");
        int rows = 1;
        for (int i = 0; i < s.length - 1; i++) rows = Math.multiplyExact(rows, s[i]);
        Var y = f.apply(x.reshape(rows, in));
        int[] out = s.clone();
        out[s.length - 1] = y.shape()[1];
        return y.reshape(out);
    }

    /**
     * Whether dense depthwise layers on the CPU take {@link DepthwiseConv2d} (true, the default) or the general path's
     * per-group GEMMs: tests compare the two; -Dfst4j.conv.depthwise=false switches the direct loops off.
     */
    static volatile boolean depthwisePath = !"false".equals(System.getProperty("fst4j.conv.depthwise"));

    /** conv2d (NCHW, square kernel) whose GEMMs go through node; b [Cout] or null. */
    public static Var conv2d(Gemm3 node, Var x, Var w, Var b, int stride, int padding) {
        Var y = new Conv2d(node, stride, padding).apply(x, w);
        if (b == null) return y;
        return y.add(b.reshape(1, -1, 1, 1));
    }

    /**
     * conv2d of any geometry torch's F.conv2d takes (x [N, Cin, H, W], w [Cout, Cin / groups, kh, kw], b [Cout] or
     * null; per-axis stride, padding, dilation, and groups) whose GEMMs go through node. A square kernel with one
     * stride and one padding, no dilation and one group takes {@link #conv2d(Gemm3, Var, Var, Var, int, int)}, the
     * fast paths, unchanged; any other geometry the general path ({@link GeneralConv2d}: dilated im2col, each group its
     * own Eq. 1-3 product). Bad geometry is refused naming it (channels not divisible by groups, a dilated kernel
     * larger than the padded input, ...). Dense depthwise layers on the CPU take {@link DepthwiseConv2d}.
     */
    public static Var conv2d(Gemm3 node, Var x, Var w, Var b, ConvParams p) {
        int[] ws = w.shape();
        if (p.plain() && ws.length == 4 && ws[2] == ws[3]) return conv2d(node, x, w, b, p.sh(), p.ph());
        // a dense depthwise layer on the CPU: direct loops with the bias, not a GEMM of one output row per channel
        if (depthwisePath && DepthwiseConv2d.takes(node, x.value(), w.value(), p))
            return b == null ? new DepthwiseConv2d(p).apply(x, w) : new DepthwiseConv2d(p).apply(x, w, b);
        Var y = new GeneralConv2d(node, p).apply(x, w);
        if (b == null) return y;
        return y.add(b.reshape(1, -1, 1, 1));
    }

    static final class Linear extends Function {
        private final Gemm3 node;
        private Tensor x, w, sw;
        Linear(Gemm3 node) { this.node = node; }
        @Override protected boolean profilesItself() { return true; }
        @Override protected String profileLabel(Tensor... in) {
            return in.length < 2 || in[1].dim() != 2 ? super.profileLabel(in) : "Linear " + in[1].size(1) + "->" + in[1].size(0);
        }
        private void keep(Tensor s) { if (s != null) { sw = save(s); s.close(); } }

        protected Tensor forward(Tensor... in) {
            Tensor xin = in[0], win = in[1];
            if (xin.dim() != 2 || win.dim() != 2 || xin.size(1) != win.size(1))
                throw new IllegalArgumentException("shape mismatch: linear input " + fst4j.tensor.Shape.str(xin.shape()) + " with weight " + fst4j.tensor.Shape.str(win.shape()));
            x = save(xin); w = save(win);
            try (Tensor xt = xin.t()) {
                Gemm3.Forward f = node.forward(win, xt, !needsGrad(1));   // no gradient of W: its kept S(W) where W is unchanged
                keep(f.sw());
                try (Tensor y = f.y(); Tensor yt = y.t()) { return yt.contiguous(); }
            }
        }

        protected Tensor[] backward(Tensor g) {
            try (Tensor dy = g.t()) {
                Tensor dx = null, dw = null;
                if (needsGrad(0)) try (Tensor dxt = node.inputGrad(w, sw, dy)) { dx = dxt.t(); }
                if (needsGrad(1)) {
                    Gemm3.Columns cols = new Gemm3.Columns() {
                        public Tensor all() { return x.t(); }
                        public Tensor kept(int[] pos, int images) {
                            try (Tensor xt = x.t()) { return fst4j.sparse.HalfK.gatherKept(xt, x.size(0)); }
                        }
                    };
                    try {
                        dw = node.weightGrad(dy, cols, x.size(0), w.size(1));
                    } catch (RuntimeException | Error e) {
                        if (dx != null) dx.close();   // Eq. 2's result, which no one else will free
                        throw e;
                    }
                }
                return grads(dx, dw);
            } finally {
                node.dropSharedDy();   // Eq. 2's S(dY), where Eq. 3 did not take it
            }
        }
    }

    /**
     * Whether a convolution keeps its forward im2col matrix for Eq. 3 instead of lowering x again in backward
     * (whole-batch path only, and only when Eq. 3 reads all columns: the half-K path lowers just the kept half), up to
     * {@link #KEEP_COLUMNS_MAX_BYTES} per layer so that a large batch does not hold every layer's matrix until
     * backward. -Dfst4j.conv.keepColumns=false always lowers again.
     */
    public static volatile boolean keepColumns = !"false".equals(System.getProperty("fst4j.conv.keepColumns"));

    /**
     * Whether a blocked convolution's Eq. 3 (Eq. 7's half-K, or the dense one) reads dY's images in place
     * (Gemm3.weightGradIntoImages) instead of gathering each block into [Cout, nb*L] first (false: the gather, for A/B runs).
     */
    public static volatile boolean eq3FromImages = !"false".equals(System.getProperty("fst4j.conv.eq3FromImages"));
    /**
     * Whether a blocked convolution's Eq. 2 as W^T dY (not a convolution of dY) reads dY's NCHW images in place where W^T is
     * dense ({@link Gemm3.Left#readsImages}) instead of a gathered [Cout, nb*L] block (false: the gather, for A/B runs).
     */
    public static volatile boolean eq2FromImages = !"false".equals(System.getProperty("fst4j.conv.eq2FromImages"));
    static final long KEEP_COLUMNS_MAX_BYTES = 64L << 20;

    /**
     * Whether float32 CPU convolutions run block by block: a few images at a time are lowered into a buffer that
     * stays in cache, multiplied, and (forward) written straight into NCHW or (backward) folded back with col2im,
     * instead of materialising the whole batch's im2col matrix and permuting [Cout, N*L] to and from NCHW.
     * -Dfst4j.conv.blocked=false selects the whole-batch path (the two are tested equal).
     */
    public static volatile boolean blocked = !"false".equals(System.getProperty("fst4j.conv.blocked"));

    /**
     * Whether the blocked path hands the GEMMs x itself (implicit im2col: Eq. 1 and Eq. 3, dense, 2:4 and half-K, lower
     * the pieces they pack) instead of an im2col buffer. -Dfst4j.conv.implicit=false lowers into the buffer first.
     * Per layer the two measure within noise of each other; in JMH whole steps lowering everywhere was better on
     * resnet-small (its im2col+GEMM parts 84 vs 106 ms per step with the buffer for layers under 512 rows of K), and
     * it needs no buffer. See jmh/NOTES-step-cpu.md.
     */
    public static volatile boolean implicitLowering = !"false".equals(System.getProperty("fst4j.conv.implicit"));
    /**
     * Eq. 2 of a stride-1 "same" convolution (blocked CPU path, with implicit lowering) computed as the convolution of
     * dY with the transposed, tap-reversed weight; false ({@code -Dfst4j.conv.tconv=false}): W^T dY and col2im. Every
     * such layer takes it: v6 kept it to narrow layers and small planes (a C harness found W^T dY + col2im 5-15 % faster
     * elsewhere), but after the planned lowering two alternating A/Bs of the whole step measured it 1.04x and 1.06x
     * faster on ResNet-18 DENSE, about 3 % on FST3_IR, 1.01-1.04x on the small CNN (jmh/NOTES-step-cpu.md v11).
     */
    public static volatile boolean eq2Tconv = !"false".equals(System.getProperty("fst4j.conv.tconv"));
    /** False ({@code -Dfst4j.conv.tconvAll=false}): v6's rule, Eq. 2 as a convolution only where Cout <= 32 or H*W <= 64. */
    public static volatile boolean eq2TconvAll = !"false".equals(System.getProperty("fst4j.conv.tconvAll"));

    /**
     * Whether a CPU convolution's Eq. 1 multiplies a magnitude 2:4 S(W) by the dense GEMM rather than the 2:4 product:
     * at stride 2 with a 1x1 kernel or at most 32 output channels, where the 2:4 product measured slower than the dense
     * one (Zen 5, in the step: resnet-small's 16 -> 32 3x3 at 0.70x, its 1x1 shortcuts at 0.79x and 0.89x, ResNet-18's at
     * 0.94-1.0x; NOTES v21). The values are S(W) X either way. Both kernels sum each output along K in order and the pruned zeros add
     * nothing, so the main job's FST3_IR run came out bit-identical with the rule on and off.
     * -Dfst4j.conv.denseStride2=false (or the switch {@link #denseStride2}) keeps the 2:4 product everywhere.
     */
    static boolean denseEq1(int cout, int k, int stride) {
        return (denseStride2 && stride > 1 && (k == 1 || cout <= 32)) || denseSmall(cout);
    }

    /**
     * On a CPU without AVX-512 (the AVX2 and baseline 2:4 kernels, no planned lowering), Eq. 1 of a layer with at most 64
     * output channels and Eq. 2 as a convolution of dY with at most 64 input channels (the product's rows) take the dense
     * GEMM of the pruned operand: there the 2:4 product measured slower than the dense one (session 42's Xeon forced to
     * AVX2, FST3_IR, ms a step, 2:4 against dense: ResNet-18's 64-channel layers Eq. 1 77.6 / 69.7, Eq. 2 60.9 / 57.7;
     * resnet-small's 16-channel ones 14.3 / 11.2 and 14.3 / 11.2, 32-channel 5.3 / 4.3 and 5.5 / 4.2), while from 128
     * channels it wins (1.07-1.28x). The same S(W) and S(W^T), summed in the dense kernel's order. AVX-512 CPUs are not
     * affected. -Dfst4j.conv.denseSmall=false (switch densesmall): the 2:4 product there too.
     */
    static boolean denseSmall(int rows) { return denseSmallWithoutAvx512 && rows <= 64 && !avx512Spmm(); }

    public static volatile boolean denseSmallWithoutAvx512 = !"false".equals(System.getProperty("fst4j.conv.denseSmall"));

    private static volatile int avx512Spmm = -1;   // the 2:4 kernel family, fixed at load (FST4J_ISA included)

    private static boolean avx512Spmm() {
        int a = avx512Spmm;
        if (a < 0) avx512Spmm = a = "avx512".equals(fst4j.shim.Native.spmm24Isa()) ? 1 : 0;
        return a == 1;
    }

    public static volatile boolean denseStride2 = !"false".equals(System.getProperty("fst4j.conv.denseStride2"));

    /**
     * Eq. 2 (W^T dY, then col2im) of a stride-2 convolution with at most 64 output channels (its sum runs over Cout) takes
     * S(W^T) as a pruned dense matrix on the dense GEMM, which also reads dY's images in place: there the 2:4 product, a
     * K of 32-64, ran slower than the dense GEMM of the same layer (resnet-small, 2 threads: 1.54 against 1.19 ms per step
     * at 16->32 3x3, 1.31 against 0.95 at 32->64) and needed dY gathered. -Dfst4j.conv.denseStride2Eq2=false: the 2:4
     * product everywhere (A/B runs: switch dense2eq2).
     */
    static boolean denseEq2(int cout, int stride) { return denseStride2Eq2 && stride > 1 && cout <= 64; }

    public static volatile boolean denseStride2Eq2 = !"false".equals(System.getProperty("fst4j.conv.denseStride2Eq2"));

    /**
     * On CUDA, a convolution whose Eq. 1 runs through cuSPARSELt gets its bf16 product read back straight into the NCHW
     * output by one kernel, instead of into [Cout, N*H*W] float32 and permuted (-Dfst4j.cuda.nchwProduct=false: the two
     * passes, for A/B timing on a device). The same values either way.
     */
    public static volatile boolean cudaNchwProduct = !"false".equals(System.getProperty("fst4j.cuda.nchwProduct"));

    /**
     * Target output columns per block: -Dfst4j.conv.blockCols=N fixes it; the default (0) is 4,096 for every layer
     * (still at most 8 MB of lowered columns per block: blockMb, -Dfst4j.conv.blockMb=N; 64 MB measured no faster,
     * NOTES v11). Until v9 wide layers got fewer (2^19 / (Cin*k*k), at least 1,024) to keep a materialised block in
     * cache; with the lowering done inside the GEMMs there is no such block, and an interleaved A/B of whole training
     * steps (jmh/NOTES-step-cpu.md v9) measured 4,096 everywhere faster: DENSE 1.05x / 1.02x / 1.03x on the small
     * CNN / resnet-small / ResNet-18, FST3_IR 1.02x / 1.05x / 1.07x.
     */
    static volatile int blockCols = Integer.getInteger("fst4j.conv.blockCols", 0);
    private static final int DEFAULT_BLOCK_COLS = 4096;

    /** Sets the target output columns per block (0: the default rule above); returns the previous setting. For A/B runs. */
    public static int blockColumns(int cols) {
        if (cols < 0) throw new IllegalArgumentException("block columns must be >= 0 (0: default), got " + cols);
        int prev = blockCols;
        blockCols = cols;
        return prev;
    }
    private static final int MIN_BLOCK_COLS = 256;
    static volatile int blockMb = Integer.getInteger("fst4j.conv.blockMb", 8);   // MB of lowered columns per block at most

    /** Sets the most MB of lowered columns per block; returns the previous setting. For A/B runs. */
    public static int blockMegabytes(int mb) {
        if (mb < 1) throw new IllegalArgumentException("block megabytes must be >= 1, got " + mb);
        int prev = blockMb;
        blockMb = mb;
        return prev;
    }

    /** Images per block for a conv with kRows = Cin*k*k and l = Ho*Wo, or 0 when blocks would be too narrow. */
    static int imagesPerBlock(int n, int kRows, int l) {
        if (!blocked || n == 0 || l == 0 || kRows == 0) return 0;
        int target = blockCols > 0 ? blockCols : DEFAULT_BLOCK_COLS;
        int b = Math.max(1, Math.min(n, (target + l - 1) / l));
        b = (int) Math.max(1, Math.min(b, ((long) blockMb << 18) / ((long) kRows * l)));
        int blocks = (n + b - 1) / b;
        b = (n + blocks - 1) / blocks;   // equal blocks: 32 images as 16 + 16, not 28 + a 4-image GEMM that is mostly overhead
        return (long) b * l >= MIN_BLOCK_COLS || b == n ? b : 0;
    }

    static final class Conv2d extends Function {
        private final Gemm3 node;
        private final int stride, padding;
        private Tensor x, w, sw, colsKept;
        private int ho, wo, block;
        Conv2d(Gemm3 node, int stride, int padding) { this.node = node; this.stride = stride; this.padding = padding; }
        @Override protected boolean profilesItself() { return true; }
        @Override protected String profileLabel(Tensor... in) {
            return in.length < 2 || in[0].dim() != 4 || in[1].dim() != 4 ? super.profileLabel(in)
                    : "Conv2d " + in[1].size(1) + "->" + in[1].size(0) + " k" + in[1].size(2) + " s" + stride + " @" + in[0].size(2) + "x" + in[0].size(3);
        }
        private void keep(Tensor s) { if (s != null) { sw = save(s); s.close(); } }

        protected Tensor forward(Tensor... in) {
            Tensor xin = in[0], win = in[1];
            if (xin.dim() != 4 || win.dim() != 4)
                throw new IllegalArgumentException("wrong rank: conv2d needs x [N, C, H, W] and w [Cout, Cin, k, k], got " + fst4j.tensor.Shape.str(xin.shape()) + " and " + fst4j.tensor.Shape.str(win.shape()));
            if (xin.size(1) != win.size(1))
                throw new IllegalArgumentException("channel mismatch: input has " + xin.size(1) + " channels, weight expects " + win.size(1));
            if (win.size(2) != win.size(3)) throw new IllegalArgumentException("conv2d: only square kernels, got " + fst4j.tensor.Shape.str(win.shape()));
            x = save(xin); w = save(win);
            int n = xin.size(0), cout = win.size(0), k = win.size(2);
            ho = Conv.outSize(xin.size(2), k, stride, padding);
            wo = Conv.outSize(xin.size(3), k, stride, padding);
            boolean f32cpu = xin.dtype() == DType.F32 && win.dtype() == DType.F32 && xin.device() == Device.CPU && win.device() == Device.CPU;
            block = f32cpu && ho > 0 && wo > 0 ? imagesPerBlock(n, win.size(1) * k * k, ho * wo) : 0;
            if (block > 0) return forwardBlocked(xin, win);
            if (xin.device() == Device.CUDA && xin.dtype() == DType.F32 && win.dtype() == DType.F32
                    && CudaOps.matmulPrecision() == CudaOps.MatmulPrecision.BF16 && ho > 0 && wo > 0
                    && !keepsColumns((long) win.size(1) * k * k * n * ho * wo * 4)) {
                Tensor out = forwardCudaLowered(xin, win);
                if (out != null) return out;
            }
            long t0 = Profile.start();
            Tensor cols = Profile.stop(Part.IM2COL, t0, Conv.im2col(xin, k, stride, padding));
            if (keepsColumns(cols.numel() * cols.dtype().bytes)) colsKept = save(cols);
            Gemm3.Forward f;
            try (cols; Tensor wm = win.reshape(cout, -1)) { f = node.forward(wm, cols, !needsGrad(1)); }
            keep(f.sw());
            return nchw(f.y(), n, cout);
        }

        /** Whether the whole-batch forward keeps its im2col columns (of the given size) for Eq. 3. */
        private boolean keepsColumns(long bytes) {
            return keepColumns && needsGrad(1) && node.needsAllColumns() && bytes <= KEEP_COLUMNS_MAX_BYTES;
        }

        /** The whole-batch Eq. 1 output y [Cout, N*Ho*Wo] (closed here) as a new NCHW tensor. */
        private Tensor nchw(Tensor y, int n, int cout) {
            try (y; Tensor y3 = y.reshape(cout, n, ho * wo); Tensor p = y3.permute(1, 0, 2)) {
                long t1 = Profile.start();
                try (Tensor out = Profile.stop(Part.ELEMENTWISE, t1, p.contiguous())) { return out.reshape(n, cout, ho, wo); }
            }
        }

        /**
         * Eq. 1 on CUDA at BF16 precision with the columns lowered straight into the bf16 operand (no float32 im2col
         * matrix); null (nothing kept) when the prepared operand cannot take it.
         */
        private Tensor forwardCudaLowered(Tensor xin, Tensor win) {
            int n = xin.size(0), cout = win.size(0), k = win.size(2);
            Gemm3.Prepared pr;
            try (Tensor wm = win.reshape(cout, -1)) { pr = node.prepareForwardConv(wm, cudaNchwProduct, !needsGrad(1)); }
            Tensor y = null;
            boolean nchw = false;
            try (Gemm3.Left left = pr.left(); Tensor xc = xin.contiguous()) {
                Lowering low = new Lowering(xc, k, k, stride, stride, padding, padding);
                long t1 = Profile.start();
                boolean done;
                if (left.lowersIntoNchw(low) && cudaNchwProduct) {   // the product written (or read back) as NCHW: no permute after
                    nchw = true;
                    y = Tensor.empty(Device.CUDA, DType.F32, n, cout, ho, wo);
                    left.timesLoweredNchw(low, y);
                    done = true;
                } else {
                    y = Tensor.empty(Device.CUDA, DType.F32, cout, n * ho * wo);
                    done = left.timesLowered(low, y);
                }
                Profile.stop(Part.EQ1, t1);
                if (!done) {
                    y.close();
                    if (pr.sw() != null) pr.sw().close();
                    return null;
                }
            } catch (RuntimeException | Error e) {
                if (y != null) y.close();
                if (pr.sw() != null) pr.sw().close();
                throw e;
            }
            keep(pr.sw());
            return nchw ? y : nchw(y, n, cout);
        }

        /**
         * Eq. 1 block by block: S(W) prepared once; each block lowered inside the GEMM, or (when the operand cannot take
         * that) into one reused im2col buffer, allocated only then.
         */
        private Tensor forwardBlocked(Tensor xin, Tensor win) {
            int n = xin.size(0), cout = win.size(0), k = win.size(2), kRows = win.size(1) * k * k, l = ho * wo, b = block;
            Tensor out = Tensor.empty(n, cout, ho, wo);
            Gemm3.Prepared pr = null;
            Tensor cols = null, ybuf = null;   // allocated only when a block needs them
            try (Tensor wm = win.reshape(cout, kRows)) {
                pr = node.prepareForward(wm, DType.F32, denseEq1(cout, k, stride), !needsGrad(1));
                try (Gemm3.Left left = pr.left(); Tensor xc = xin.contiguous(); Tensor out3 = out.reshape(n, cout, l)) {
                    for (int n0 = 0; n0 < n; n0 += b) {
                        int nb = Math.min(b, n - n0);
                        // one image: Eq. 1 writes straight into its [Cout, L] plane of the NCHW output
                        try (Tensor xs = xc.slice(0, n0, n0 + nb); Tensor yi = b == 1 ? out3.slice(0, n0, n0 + 1) : null) {
                            long t1 = Profile.start();
                            Lowering low = new Lowering(xs, k, k, stride, stride, padding, padding);
                            // several images: the product writes their NCHW planes itself where it can (Gemm3.Left.timesLoweredIntoNchw);
                            // otherwise it goes into a [Cout, nb*L] block, scattered below
                            boolean nchw = false;
                            if (b > 1 && implicitLowering) try (Tensor o = out3.slice(0, n0, n0 + nb)) { nchw = left.timesLoweredIntoNchw(low, o); }
                            if (nchw) { Profile.stop(Part.EQ1, t1); continue; }
                            if (b > 1 && ybuf == null) ybuf = Tensor.empty(cout, b * l);
                            try (Tensor y = b == 1 ? yi.reshape(cout, l) : ybuf.slice(1, 0, nb * l)) {
                                boolean done = implicitLowering && left.timesLowered(low, y);
                                Profile.stop(Part.EQ1, t1);
                                if (!done) {
                                    if (cols == null) cols = Tensor.empty(kRows, b * l);
                                    try (Tensor c = cols.slice(1, 0, nb * l)) {
                                        long t0 = Profile.start();
                                        Conv.im2colInto(xs, k, k, stride, stride, padding, padding, c);
                                        Profile.stop(Part.IM2COL, t0);
                                        long t2 = Profile.start();
                                        left.times(c, y);
                                        Profile.stop(Part.EQ1, t2);
                                    }
                                }
                                if (b > 1) {
                                    long t2 = Profile.start();
                                    Conv.scatterImages(ybuf, out3, n0, nb);
                                    Profile.stop(Part.ELEMENTWISE, t2);
                                }
                            }
                        }
                    }
                }
                keep(pr.sw());
                return out;
            } catch (RuntimeException | Error e) {
                out.close();
                if (pr != null && pr.sw() != null) pr.sw().close();
                throw e;
            } finally {
                if (cols != null) cols.close();
                if (ybuf != null) ybuf.close();
            }
        }

        /** Eq. 3's X for the images of xs (the whole batch or a block): all columns, or only the fixed mask's kept ones. */
        private Gemm3.Columns columns(Tensor xs, Tensor allBuffer) {
            int k = w.size(2);
            return new Gemm3.Columns() {
                public Tensor all() {
                    if (allBuffer == null && colsKept != null) return colsKept.alias();
                    long t = Profile.start();
                    Tensor r;
                    if (allBuffer == null) r = Conv.im2col(xs, k, stride, padding);
                    else try (Tensor c = allBuffer.slice(1, 0, xs.size(0) * ho * wo)) {
                        Conv.im2colInto(xs, k, k, stride, stride, padding, padding, c);
                        r = c.alias();
                    }
                    return Profile.stop(Part.IM2COL, t, r);
                }
                public Tensor kept(int[] pos, int images) {
                    long t = Profile.start();
                    Tensor out = rowAligned(pos) ? Conv.im2col(xs, k, k, stride, 2 * stride, padding, padding)
                            : Conv.im2colAt(xs, pos, k, k, stride, stride, padding, padding);
                    return Profile.stop(Part.IM2COL, t, out);
                }
                public Lowering lowering() {
                    return lowers() ? new Lowering(xs, k, k, stride, stride, padding, padding) : null;
                }
                public Tensor keptAt(fst4j.sparse.AuthorsFixed24.Kept kept, int row0, int rstep, int nrows) {
                    if (allBuffer == null || xs.device() != Device.CPU || xs.dtype() != DType.F32) return null;
                    long t = Profile.start();
                    Tensor r;
                    try (Tensor c = allBuffer.slice(1, 0, kept.pos().length)) {
                        Tensor out = c.slice(0, 0, nrows);
                        try {
                            r = Conv.im2colAtInto(xs, kept.off(), kept.pos(), row0, rstep, nrows, k, k, stride, stride, padding, padding, out);
                        } catch (RuntimeException | Error e) {
                            out.close();
                            throw e;
                        }
                    }
                    return Profile.stop(Part.IM2COL, t, r);
                }
                public Lowering keptLowering(int[] pos) {
                    return lowers() && rowAligned(pos) ? new Lowering(xs, k, k, stride, 2 * stride, padding, padding) : null;
                }
                /** CPU blocks are lowered while packing; a CUDA batch at BF16 straight into the bf16 operand (unless kept). */
                private boolean lowers() {
                    if (xs.device() == Device.CUDA)
                        return colsKept == null && xs.isContiguous() && xs.dtype() == DType.F32
                                && CudaOps.matmulPrecision() == CudaOps.MatmulPrecision.BF16;
                    return allBuffer != null && implicitLowering;
                }
            };
        }

        /**
         * Even positions of each image's Ho*Wo with Wo even are every other column of every row: exactly im2col with
         * the horizontal stride doubled (a streaming copy or a lowering, not a gather).
         */
        private boolean rowAligned(int[] pos) {
            return wo % 2 == 0 && pos.length * 2 == ho * wo && pos.length > 0 && pos[pos.length - 1] == ho * wo - 2;
        }

        protected Tensor[] backward(Tensor g) {
            int n = x.size(0), cout = w.size(0), k = w.size(2), kRows = w.size(1) * k * k, p = ho * wo;
            Tensor dx = null, dw = null;
            boolean eq2Blocked = block > 0 && needsGrad(0) && node.eq2Local();
            boolean eq3Blocked = block > 0 && needsGrad(1) && node.eq3Local();
            try {
                if (eq2Blocked || eq3Blocked) {
                    if (eq2Blocked) dx = Tensor.empty(x.shape());
                    if (eq3Blocked) dw = Tensor.empty(cout, kRows);
                    backwardBlocked(g, dx, dw);
                }
                if (needsGrad(0) && !eq2Blocked && g.device() == Device.CUDA && g.dtype() == DType.F32 && w.dtype() == DType.F32
                        && node.eq2Dense() && CudaOps.implicitGemmEq2On(stride, k, padding)) {
                    // Eq. 2 as the convolution of dY with the tap-reversed W^T: no product matrix, no col2im
                    long t0 = Profile.start();
                    dx = CudaOps.convBackwardInputImplicitGemmBf16(g, w, x.shape(), padding);
                    Profile.stop(Part.EQ2, t0);
                }
                if (needsGrad(0) && !eq2Blocked && dx == null && g.device() == Device.CUDA && g.dtype() == DType.F32 && w.dtype() == DType.F32
                        && node.eq2Magnitude24Cout() && fst4j.tensor.CudaConv24.transposedConvFits(cout, k, stride, padding)) {
                    // Eq. 2 with S(W^T) as a 2:4 convolution of dY on the sparse tensor cores: no product matrix, no col2im
                    long t0 = Profile.start();
                    try (fst4j.tensor.CudaConv24 swt = fst4j.tensor.CudaConv24.transposedConv(w)) {
                        Profile.stop(Part.SPARSIFY, t0);
                        long t1 = Profile.start();
                        dx = swt.timesConvTransposed(g, x.shape(), k, padding);
                        Profile.stop(Part.EQ2, t1);
                    }
                }
                if (needsGrad(1) && !eq3Blocked && g.device() == Device.CUDA && CudaOps.implicitGemmEq3On())
                    dw = node.weightGradNchw(g, columns(x, null), kRows);   // straight from NCHW dY (else null)
                if ((needsGrad(0) && !eq2Blocked && dx == null) || (needsGrad(1) && !eq3Blocked && dw == null)) {
                    long t0 = Profile.start();
                    SharedOperand byChannel = Profile.stop(Part.ELEMENTWISE, t0, Conv.byChannel(g, n, cout, p));   // on CUDA with its bf16 copy for both GEMMs
                    try (byChannel; Tensor wm = w.reshape(cout, kRows)) {
                        Tensor dyc = byChannel.tensor();
                        if (needsGrad(0) && !eq2Blocked && dx == null) {
                            dx = node.inputGradCol2im(wm, sw, dyc, x.shape(), k, stride, padding);   // CUDA at BF16 (else null)
                            if (dx == null) {
                                try (Tensor dcols = node.inputGrad(wm, sw, dyc)) {
                                    long t1 = Profile.start();
                                    dx = Conv.col2im(dcols, x.shape(), k, stride, padding);
                                    Profile.stop(Part.IM2COL, t1);
                                }
                            }
                        }
                        if (needsGrad(1) && !eq3Blocked && dw == null) dw = node.weightGrad(dyc, columns(x, null), p, kRows);
                    } finally {
                        node.dropSharedDy();   // Eq. 2's S(dY), where Eq. 3 did not take it
                    }
                }
                Tensor dw4 = null;
                if (dw != null) try (Tensor dwm = dw) { dw4 = dwm.reshape(w.shape()); }
                return grads(dx, dw4);
            } catch (RuntimeException | Error e) {
                if (dx != null) dx.close();
                if (dw != null) dw.close();
                throw e;
            }
        }

        /**
         * Eq. 2 (into dx, when non-null) and Eq. 3 (into dw, when non-null) block by block, reading dY in NCHW. Eq. 2 of
         * a stride-1 "same" convolution is the convolution of dY with the transposed, tap-reversed weight: a lowered
         * GEMM over dY's images with K = kk*Cout (no [Cin*kk, cols] gradient matrix, no col2im); otherwise W^T dY per
         * block, folded back by col2im.
         */
        private void backwardBlocked(Tensor g, Tensor dx, Tensor dw) {
            int n = x.size(0), cin = w.size(1), cout = w.size(0), k = w.size(2), kRows = cin * k * k, l = ho * wo, b = block;
            Gemm3.Left wt = null;
            boolean same = stride == 1 && 2 * padding == k - 1 && implicitLowering && eq2Tconv
                    && (eq2TconvAll || cout <= 32 || l <= 64);
            try (Tensor wm = w.reshape(cout, kRows); Tensor gc = g.contiguous(); Tensor dy3 = gc.reshape(n, cout, l);
                 Tensor xc = x.contiguous()) {
                Gemm3.Left tconv = dx != null && same ? node.prepareInputGradTconv(wm, sw, k * k, denseSmall(cin)) : null;
                wt = tconv != null ? tconv : dx != null ? node.prepareInputGrad(wm, sw, DType.F32, denseEq2(cout, stride)) : null;
                // Eq. 3 of Eq. 7's half-K reads the block's images in place (IR shift and gather in one pass), so where
                // Eq. 2 is a convolution of dY (or not asked for) no [Cout, nb*L] copy of dY is made
                boolean eq3Images = dw != null && b > 1 && eq3FromImages && node.eq3FromImages(gc, implicitLowering);
                // a dense W^T reads the block's images in place too (its GEMM packs dY image by image)
                boolean eq2Images = dx != null && tconv == null && b > 1 && eq2FromImages && wt.readsImages();
                // dY as a [Cout, nb*L] block: Eq. 3, or Eq. 2 as W^T dY
                boolean gather = (dw != null && !eq3Images) || (dx != null && tconv == null && !eq2Images);
                int pattern = dw != null ? node.drawEq3Pattern() : -1;   // the authors' random X^T pattern: one draw per batch
                try (Tensor cols = tconv == null || dw != null ? Tensor.empty(kRows, b * l) : null;
                     Tensor dybuf = b > 1 && gather ? Tensor.empty(cout, b * l) : null;
                     Tensor dxbuf = b > 1 && tconv != null ? Tensor.empty(cin, b * l) : null;
                     Tensor dy4 = tconv != null ? gc.reshape(n, cout, ho, wo) : null;
                     Tensor dx3 = tconv != null ? dx.reshape(n, cin, l) : null) {
                    for (int n0 = 0; n0 < n; n0 += b) {
                        int nb = Math.min(b, n - n0);
                        Tensor dyB = null;
                        if (gather && b == 1) {
                            try (Tensor s = dy3.slice(0, n0, n0 + 1)) { dyB = s.reshape(cout, l); }
                        } else if (gather) {
                            long t = Profile.start();
                            Conv.gatherImages(dy3, dybuf, n0, nb);
                            Profile.stop(Part.ELEMENTWISE, t);
                            dyB = dybuf.slice(1, 0, nb * l);
                        }
                        try (Tensor dyBlock = dyB; Tensor xs = xc.slice(0, n0, n0 + nb)) {
                            if (tconv != null) eq2Tconv(tconv, dy4, dx3, dxbuf, n0, nb);
                            else if (dx != null) {
                                try (Tensor c = cols.slice(1, 0, nb * l); Tensor dxs = dx.slice(0, n0, n0 + nb)) {
                                    long t1 = Profile.start();
                                    if (eq2Images) try (Tensor dys = dy3.slice(0, n0, n0 + nb)) { wt.timesImages(dys, c); }
                                    else wt.times(dyBlock, c);
                                    Profile.stop(Part.EQ2, t1);
                                    long t2 = Profile.start();
                                    Conv.col2imInto(c, dxs, k, k, stride, stride, padding, padding);
                                    Profile.stop(Part.IM2COL, t2);
                                }
                            }
                            if (dw != null && eq3Images) {
                                try (Tensor dyImages = dy3.slice(0, n0, n0 + nb)) { node.weightGradIntoImages(dyImages, columns(xs, cols), dw, n0 == 0 ? 0f : 1f); }
                            } else if (dw != null) node.weightGradInto(dyBlock, columns(xs, cols), l, dw, n0 == 0 ? 0f : 1f, n0, pattern);
                        }
                    }
                }
            } finally {
                if (wt != null) wt.close();
                if (dw != null) node.finishEq3(dw);   // the checkerboards' columns, accumulated over the blocks
            }
        }

        /** Eq. 2 of images [n0, n0 + nb) as a convolution of their dY (tap-major lowering) into dx3 [N, Cin, L]. */
        private void eq2Tconv(Gemm3.Left tconv, Tensor dy4, Tensor dx3, Tensor dxbuf, int n0, int nb) {
            int cin = w.size(1), k = w.size(2), l = ho * wo, p = k - 1 - padding;
            try (Tensor dys = dy4.slice(0, n0, n0 + nb); Tensor plane = dxbuf == null ? dx3.slice(0, n0, n0 + 1) : null;
                 Tensor out = dxbuf == null ? plane.reshape(cin, l) : dxbuf.slice(1, 0, nb * l)) {
                long t1 = Profile.start();
                Lowering low = new Lowering(dys, k, k, 1, 1, p, p, true);
                boolean nchw = false;   // several images: written as NCHW by the product where it can (timesLoweredIntoNchw)
                if (dxbuf != null) try (Tensor o = dx3.slice(0, n0, n0 + nb)) { nchw = tconv.timesLoweredIntoNchw(low, o); }
                if (!nchw && !tconv.timesLowered(low, out))
                    throw new IllegalStateException("Eq. 2's transposed-convolution operand cannot take a lowering");
                Profile.stop(Part.EQ2, t1);
                if (dxbuf != null && !nchw) {
                    long t2 = Profile.start();
                    Conv.scatterImages(dxbuf, dx3, n0, nb);
                    Profile.stop(Part.ELEMENTWISE, t2);
                }
            }
        }
    }
}
