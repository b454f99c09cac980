package fst4j.tensor;

import fst4j.shim.Native;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * 2-D convolution (NCHW) as im2col + GEMM, and its backward kernels.
 * <p>
 * Orientation (fst-method.md): W is Cout x K with K = Cin*kh*kw; the im2col matrix X of one image is
 * K x L with L = Ho*Wo, row k = (c*kh + i)*kw + j, column l = oh*Wo + ow; Y = W X is Cout x L.
 * For a batch the columns of the images are concatenated: X is K x (N*L), image n at columns [n*L, (n+1)*L).
 * <p>
 * Backward: dX = col2im(W^T dY), dW = sum_n dY_n X_n^T, dBias = sum of dY over N, H, W.
 * Float32 and float64 are both supported (float64 GEMMs use Blas's Java loop, for gradcheck).
 * Several small images are batched into one GEMM so that late layers with few output pixels still
 * give the GEMM enough columns. Outputs narrower than 16 use a precomputed gather table; wider ones
 * copy whole input rows.
 * <p>
 * im2col/col2im run on the calling thread on purpose: splitting them over the fork-join pool made a
 * [32, 64, 32, 32] 3x3 forward 5-10x slower on 2 cores, because the native GEMM's OpenMP threads keep
 * spinning after each call and fight the Java workers.
 */
public final class Conv {
    private Conv() {}
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfDouble D = ValueLayout.JAVA_DOUBLE_UNALIGNED;

    /** GEMM column target when batching images, and a cap on the im2col buffer (elements). */
    private static final int TARGET_COLS = 1024;
    private static final long MAX_BUFFER = 1L << 23;

    /** Output size of a convolution or pooling window along one axis: floor((in + 2 pad - k) / stride) + 1. */
    public static int outSize(int in, int k, int stride, int pad) { return Math.floorDiv(in + 2 * pad - k, stride) + 1; }

    /** Output size of a dilated convolution along one axis, as torch's: floor((in + 2 pad - dil (k - 1) - 1) / stride) + 1. */
    public static int outSize(int in, int k, int stride, int pad, int dil) {
        return Math.toIntExact(Math.floorDiv(in + 2L * pad - (long) dil * (k - 1) - 1, stride) + 1);
    }

    /**
     * Validated geometry of one convolution. Dilation dh, dw (torch's): tap (i, j) of output (oh, ow) reads input
     * (oh*sh - ph + i*dh, ow*sw - pw + j*dw); 1 everywhere but in the general path's lowerings (only im2col / col2im
     * and their dilated native and CUDA kernels take another: the planned and blocked paths are built for dilation 1).
     */
    record Geom(int n, int c, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw, int ho, int wo, int dh, int dw) {
        /** Whether the kernel is dilated (the lowerings then take fst_im2col_dil / fst_col2im_dil). */
        boolean dilated() { return dh != 1 || dw != 1; }

        /*
         * im2col's rows K and columns L, N*L: int sizes of tensors and of the native kernels' loops, so a product past
         * 2^31 - 1 is an error; wrapped (kernel 65536x65537 on a padded 1x1 input: K = 65536) it sized a buffer the C
         * then wrote 2^32 rows past.
         */
        int k() { return fits("C*kh*kw", (long) c * kh * kw); }
        int l() { return fits("Ho*Wo", (long) ho * wo); }
        int nl() { return fits("N*Ho*Wo", (long) n * ho * wo); }
        /** N * positions: the columns of im2col at that many positions per image. */
        int columns(int positions) { return fits("N*positions", (long) n * positions); }
        long imageSize() { return (long) c * h * w; }

        private int fits(String what, long v) {
            if (v > Integer.MAX_VALUE)
                throw new IllegalArgumentException("convolution too large: " + what + " = " + v + " exceeds 2^31 - 1 (input [" + n + ", " + c + ", "
                        + h + ", " + w + "], kernel " + kh + "x" + kw + ", stride " + sh + "x" + sw + ", padding " + ph + "x" + pw + ")");
            return (int) v;
        }

        static Geom of(String op, int[] xShape, int kh, int kw, int sh, int sw, int ph, int pw) {
            return of(op, xShape, kh, kw, sh, sw, ph, pw, 1, 1);
        }

        static Geom of(String op, int[] xShape, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw) {
            if (xShape.length != 4)
                throw new IllegalArgumentException("wrong rank: " + op + " needs input [N, C, H, W], got " + Shape.str(xShape));
            if (kh <= 0 || kw <= 0)
                throw new IllegalArgumentException(op + ": kernel size must be positive, got " + kh + "x" + kw);
            if (sh <= 0 || sw <= 0)
                throw new IllegalArgumentException(op + ": stride must be positive, got " + sh + "x" + sw + " for input " + Shape.str(xShape));
            if (ph < 0 || pw < 0)
                throw new IllegalArgumentException(op + ": padding must be >= 0, got " + ph + "x" + pw + " for input " + Shape.str(xShape));
            if (dh <= 0 || dw <= 0)
                throw new IllegalArgumentException(op + ": dilation must be positive, got " + dh + "x" + dw + " for input " + Shape.str(xShape));
            int h = xShape[2], w = xShape[3];
            long hp = h + 2L * ph, wp = w + 2L * pw;   // long: padding near 2^30 wrapped the padded size
            long ekh = (long) dh * (kh - 1) + 1, ekw = (long) dw * (kw - 1) + 1;   // the dilated kernel's extent
            if (ekh > hp || ekw > wp)
                throw new IllegalArgumentException(op + ": kernel " + kh + "x" + kw + (dh == 1 && dw == 1 ? "" : " dilated " + dh + "x" + dw
                        + " (extent " + ekh + "x" + ekw + ")") + " larger than padded input "
                        + hp + "x" + wp + " (input " + Shape.str(xShape) + ", padding " + ph + "x" + pw + ")");
            long ho = (hp - ekh) / sh + 1, wo = (wp - ekw) / sw + 1;
            if (ho > Integer.MAX_VALUE || wo > Integer.MAX_VALUE)
                throw new IllegalArgumentException(op + ": output " + ho + "x" + wo + " exceeds 2^31 - 1 (input " + Shape.str(xShape)
                        + ", kernel " + kh + "x" + kw + ", stride " + sh + "x" + sw + ", padding " + ph + "x" + pw + ")");
            return new Geom(xShape[0], xShape[1], h, w, kh, kw, sh, sw, ph, pw, (int) ho, (int) wo, dh, dw);
        }
    }

    // ------------------------------------------------------------------ im2col / col2im

    /** im2col of a whole batch: [K, N*L] (images side by side). */
    public static Tensor im2col(Tensor x, int kh, int kw, int sh, int sw, int ph, int pw) {
        return im2col(x, kh, kw, sh, sw, ph, pw, 1, 1);
    }

    /**
     * im2col of a whole batch with dilation dh, dw (torch's F.conv2d / F.unfold dilation): [K, N*L], tap (i, j) of
     * output (oh, ow) reading input (oh*sh - ph + i*dh, ow*sw - pw + j*dw). Dilation 1 is the call above. On CUDA the
     * dilated kernels fst_k_im2col_dil / fst_k_col2im_dil (the CPU's values and sums).
     */
    public static Tensor im2col(Tensor x, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw) {
        x.check();
        Geom g = Geom.of("im2col", x.shape, kh, kw, sh, sw, ph, pw, dh, dw);
        if (x.storage.device != Device.CPU) return CudaOps.im2col(x, g);
        Tensor out = Tensor.empty(x.dtype, g.k(), g.nl());
        try {
            return im2colInto(x, g, out);
        } catch (RuntimeException | Error e) {
            out.close();
            throw e;
        }
    }

    /**
     * im2col of a whole batch x (any number of images, e.g. a one-image slice) into out, a [K, N*L] matrix with
     * unit column stride (reused across calls by per-image convolutions: it stays in cache). Returns out.
     */
    public static Tensor im2colInto(Tensor x, int kh, int kw, int sh, int sw, int ph, int pw, Tensor out) {
        x.check(); out.check();   // out's version moves once the arguments are checked: a refused call writes nothing
        return im2colInto(x, Geom.of("im2col", x.shape, kh, kw, sh, sw, ph, pw), out);
    }

    private static Tensor im2colInto(Tensor x, Geom g, Tensor out) {
        out.check();
        checkMatrix("im2col", out, g.k(), g.nl(), x.dtype);
        if (out.numel() == 0) return out;
        boolean nat = useNative(x.dtype) && out.dtype == x.dtype;
        if (nat) checkRows(out, g.k(), g.nl());
        out.markModified();
        try (Tensor xc = readable(x, out)) {
            if (nat && g.dilated()) {
                Native.im2colDilated(xc.data(), g.n, g.c, g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.ho, g.wo,
                        out.storage.segment().asSlice(out.byteOffset()), ld(out, g.nl()), Blas.threads());
            } else if (nat) {
                Native.im2col(xc.data(), g.n, g.c, g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.ho, g.wo,
                        out.storage.segment().asSlice(out.byteOffset()), ld(out, g.nl()), Blas.threads());
            } else {
                for (int n = 0; n < g.n; n++) im2colRaw(xc, n, g, out, (long) n * g.l());
            }
        }
        return out;
    }

    /**
     * col2im of cols [K, N*L] (unit column stride) into dx (contiguous [N, C, H, W], overwritten). Returns dx. cols may
     * share memory with dx: it is then read from a copy.
     */
    public static Tensor col2imInto(Tensor cols, Tensor dx, int kh, int kw, int sh, int sw, int ph, int pw) {
        cols.check(); dx.check();
        Geom g = Geom.of("col2im", dx.shape, kh, kw, sh, sw, ph, pw);
        checkMatrix("col2im", cols, g.k(), g.nl(), dx.dtype);
        if (!dx.isContiguous()) throw new IllegalArgumentException("col2imInto: dx must be contiguous");
        if (dx.numel() == 0) return dx;
        if (cols.overlaps(dx)) { try (Tensor cc = cols.copy()) { return col2imInto(cc, dx, kh, kw, sh, sw, ph, pw); } }   // see readable
        if (useNative(cols.dtype) && dx.dtype == cols.dtype) {
            checkRows(cols, g.k(), g.nl());
            dx.markModified();
            Native.col2im(cols.storage.segment().asSlice(cols.byteOffset()), ld(cols, g.nl()), g.n, g.c, g.h, g.w, g.kh, g.kw,
                    g.sh, g.sw, g.ph, g.pw, g.ho, g.wo, dx.data(), Blas.threads());
            return dx;
        }
        dx.fill(0);   // counts the write
        for (int n = 0; n < g.n; n++) col2imRaw(cols, (long) n * g.l(), dx, n, g);
        return dx;
    }

    /**
     * c = alpha * a * op(B) + beta * c with B = im2col(low.x()) never materialised (the GEMM lowers what it packs):
     * op(B) = B [C*kh*kw, N*Ho*Wo] (Eq. 1, a [M, C*kh*kw]) or, transposed, B^T (Eq. 3, a [M, N*Ho*Wo]). a and c are
     * float32 with unit stride along their rows; beta == 0 overwrites c.
     */
    /** The leading dimension of a [K, cols] matrix for the shim: its row stride, or cols where one row makes that moot (a
     * [1, cols] view made by unsqueeze or expand has row stride 0). */
    private static long ld(Tensor m, long cols) { return m.shape[0] > 1 ? m.strides[0] : Math.max(cols, 1); }

    public static void gemmLowered(float alpha, Tensor a, Lowering low, boolean transposed, float beta, Tensor c) {
        a.check(); c.check();
        int k = transposed ? low.cols() : low.rows(), n = transposed ? low.rows() : low.cols(), m = a.dim() == 2 ? a.shape[0] : -1;
        if (a.dim() != 2 || c.dim() != 2 || a.shape[1] != k || c.shape[0] != m || c.shape[1] != n)
            throw new IllegalArgumentException("shape mismatch: gemmLowered " + Shape.str(a.shape) + " x " + (transposed ? "im2col^T " : "im2col ")
                    + "[" + (transposed ? low.cols() + ", " + low.rows() : low.rows() + ", " + low.cols()) + "] into " + Shape.str(c.shape));
        requireCpuF32("gemmLowered", a, c, low, " (on CUDA: CudaOps.gemmLoweredBf16)");
        if (m == 0 || n == 0) return;
        if (k == 0) { Blas.scaleEmptySum(beta, c); return; }   // Eq. 3 of an empty batch: the sum over no columns (the shim refuses N = 0)
        if ((k > 1 && a.strides[1] != 1) || (n > 1 && c.strides[1] != 1))
            throw new IllegalArgumentException("gemmLowered: a and c need unit stride along their rows, strides " + java.util.Arrays.toString(a.strides)
                    + " and " + java.util.Arrays.toString(c.strides));
        if (a.overlaps(c) || low.x().overlaps(c)) {   // the kernel writes c while it still packs a and x, as in Blas.gemm
            try (Tensor ac = a.overlaps(c) ? a.copy() : a.alias(); Tensor xc = low.x().overlaps(c) ? low.x().copy() : low.x().alias()) {
                gemmLowered(alpha, ac, withInput(low, xc), transposed, beta, c);
            }
            return;
        }
        checkRows(a, m, k);
        checkRows(c, m, n);
        long lda = m > 1 ? a.strides[0] : Math.max(k, 1), ldc = m > 1 ? c.strides[0] : Math.max(n, 1);
        c.markModified();
        Native.sgemmLowered(transposed, m, alpha, a.storage.segment().asSlice(a.byteOffset()), lda, low.x().data(), low.geometry(),
                beta, c.storage.segment().asSlice(c.byteOffset()), ldc, Blas.threads());
    }

    /**
     * y [N, M, Ho, Wo] = alpha * a [M, K] * im2col(low.x()) + beta * y, written as NCHW (no [M, N*Ho*Wo] product to scatter):
     * {@link #gemmLowered}'s Eq. 1 with the same sums and bits, a contiguous float32 CPU output.
     */
    public static void gemmLoweredNchw(float alpha, Tensor a, Lowering low, float beta, Tensor y) {
        a.check(); y.check();
        long[] g = low.geometry();   // {n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, order}
        int k = low.rows(), m = a.dim() == 2 ? a.shape[0] : -1, n = low.x().size(0);
        if (a.dim() != 2 || a.shape[1] != k || y.dim() < 2 || y.size(0) != n || y.size(1) != m || y.numel() != (long) n * m * g[10] * g[11])
            throw new IllegalArgumentException("shape mismatch: gemmLoweredNchw " + Shape.str(a.shape) + " x im2col [" + low.rows() + ", "
                    + low.cols() + "] into " + Shape.str(y.shape) + " (want [" + n + ", " + m + ", " + g[10] + ", " + g[11] + "])");
        requireCpuF32("gemmLoweredNchw", a, y, low, "");
        if (!y.isContiguous()) throw new IllegalArgumentException("gemmLoweredNchw writes a contiguous NCHW output, got strides " + java.util.Arrays.toString(y.strides));
        if (y.numel() == 0) return;
        requireUnitRows("gemmLoweredNchw", "a", a, k);
        if (a.overlaps(y) || low.x().overlaps(y)) {   // the kernel writes y while it still packs a and x, as in gemmLowered
            try (Tensor ac = a.overlaps(y) ? a.copy() : a.alias(); Tensor xc = low.x().overlaps(y) ? low.x().copy() : low.x().alias()) {
                gemmLoweredNchw(alpha, ac, withInput(low, xc), beta, y);
            }
            return;
        }
        checkRows(a, m, k);
        if ((y.offset + y.numel()) * 4 > y.storage.bytes)
            throw new IndexOutOfBoundsException("gemmLoweredNchw: the output exceeds its storage");
        long lda = m > 1 ? a.strides[0] : Math.max(k, 1);
        y.markModified();
        Native.sgemmLoweredNchw(m, alpha, a.storage.segment().asSlice(a.byteOffset()), lda, low.x().data(), g, beta,
                y.storage.segment().asSlice(y.byteOffset()), Blas.threads());
    }

    /** fn's operands a and c and low's input: float32 on the CPU, else an exception naming each (suffix: where to go instead). */
    private static void requireCpuF32(String fn, Tensor a, Tensor c, Lowering low, String suffix) {
        if (a.dtype != DType.F32 || c.dtype != DType.F32 || a.device() != Device.CPU || c.device() != Device.CPU || low.x().device() != Device.CPU)
            throw new IllegalArgumentException(fn + " needs float32 CPU operands, got " + a.dtype + " on " + a.device() + ", " + c.dtype + " on "
                    + c.device() + " and x on " + low.x().device() + suffix);
    }

    /** fn reads the NCHW batch a in place: it must be contiguous. */
    private static void requireBatch(String fn, Tensor a) {
        if (!a.isContiguous()) throw new IllegalArgumentException(fn + " reads a contiguous NCHW batch, got strides " + java.util.Arrays.toString(a.strides));
    }

    /** fn's matrix t (called name) of k columns: unit stride along its rows. */
    private static void requireUnitRows(String fn, String name, Tensor t, int k) {
        if (k > 1 && t.strides[1] != 1) throw new IllegalArgumentException(fn + ": " + name + " needs unit stride along its rows, strides "
                + java.util.Arrays.toString(t.strides));
    }

    /**
     * c [M, K] = alpha * a * im2col(low.x())^T + beta * c with a the NCHW batch [N, M, Ho*Wo] (a convolution's output
     * gradient, read in place: no [M, N*Ho*Wo] gather): {@link #gemmLowered}'s Eq. 3 with the same sums and bits as on
     * the gathered matrix; a contiguous, c with unit stride along its rows, all float32 on the CPU.
     */
    public static void gemmLoweredImages(float alpha, Tensor a, Lowering low, float beta, Tensor c) {
        a.check(); c.check();
        long[] g = low.geometry();   // {n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, order}
        int k = low.rows(), n = low.x().size(0), m = a.dim() >= 2 ? a.size(1) : -1;
        if (a.dim() < 2 || a.size(0) != n || a.numel() != (long) n * m * g[10] * g[11] || c.dim() != 2 || c.shape[0] != m || c.shape[1] != k)
            throw new IllegalArgumentException("shape mismatch: gemmLoweredImages " + Shape.str(a.shape) + " (want [" + n + ", M, " + g[10] + ", "
                    + g[11] + "]) x im2col^T [" + low.cols() + ", " + low.rows() + "] into " + Shape.str(c.shape));
        requireCpuF32("gemmLoweredImages", a, c, low, "");
        requireBatch("gemmLoweredImages", a);
        if (m == 0 || k == 0) return;
        if (n == 0) { Blas.scaleEmptySum(beta, c); return; }   // no images: the sum over no columns
        requireUnitRows("gemmLoweredImages", "c", c, k);
        if (a.overlaps(c) || low.x().overlaps(c)) {   // as in gemmLowered
            try (Tensor ac = a.overlaps(c) ? a.copy() : a.alias(); Tensor xc = low.x().overlaps(c) ? low.x().copy() : low.x().alias()) {
                gemmLoweredImages(alpha, ac, withInput(low, xc), beta, c);
            }
            return;
        }
        if ((a.offset + a.numel()) * 4 > a.storage.bytes) throw new IndexOutOfBoundsException("gemmLoweredImages: a exceeds its storage");
        checkRows(c, m, k);
        long ldc = m > 1 ? c.strides[0] : Math.max(k, 1);
        c.markModified();
        Native.sgemmLoweredImages(m, alpha, a.storage.segment().asSlice(a.byteOffset()), low.x().data(), g, beta,
                c.storage.segment().asSlice(c.byteOffset()), ldc, Blas.threads());
    }

    /**
     * Eq. 7's half-K Eq. 3 from dY as the convolution's output gradient, read in place: c [M, K] = alpha * G * im2col_kept^T +
     * beta * c, where G is the IR shift (coeff, shift +-1, circular; coeff 0: none) of the NCHW batch dy [N, M, L] at each
     * image's kept positions (every other flat index: ceil(L/2) a plane), and low is x's lowering of those positions
     * (Ho*Wo of it == ceil(L/2), the stride-(1, 2) lowering of an even-width plane). G is computed while Eq. 3's kernel
     * without packing copies dY (up to its row limit), else gathered first in native code for the packing GEMM: the same
     * bits as HalfK.shiftGatherImages then {@link #gemmLowered} either way.
     */
    public static void gemmLoweredImagesShift(float alpha, Tensor dy, float coeff, int shift, boolean circular, Lowering low, float beta, Tensor c) {
        dy.check(); c.check();
        long[] g = low.geometry();   // {n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, order}
        int k = low.rows(), n = low.x().size(0), m = dy.dim() == 3 ? dy.size(1) : -1, l = dy.dim() == 3 ? dy.size(2) : -1;
        if (dy.dim() != 3 || dy.size(0) != n || l < 1 || (l + 1) / 2 != g[10] * g[11] || c.dim() != 2 || c.shape[0] != m || c.shape[1] != k)
            throw new IllegalArgumentException("shape mismatch: gemmLoweredImagesShift dY " + Shape.str(dy.shape) + " (want [" + n + ", M, L] with ceil(L/2) = "
                    + g[10] * g[11] + ") x kept im2col^T [" + low.cols() + ", " + low.rows() + "] into " + Shape.str(c.shape));
        if (shift != 1 && shift != -1) throw new IllegalArgumentException("shift must be +1 or -1, got " + shift);
        if (Float.isNaN(coeff)) throw new IllegalArgumentException("gemmLoweredImagesShift: the shift coefficient is NaN");
        requireCpuF32("gemmLoweredImagesShift", dy, c, low, "");
        requireBatch("gemmLoweredImagesShift", dy);
        if (m == 0 || k == 0) return;
        if (n == 0) { Blas.scaleEmptySum(beta, c); return; }   // no images: the sum over no columns
        requireUnitRows("gemmLoweredImagesShift", "c", c, k);
        if (dy.overlaps(c) || low.x().overlaps(c)) {   // as in gemmLowered
            try (Tensor dc = dy.overlaps(c) ? dy.copy() : dy.alias(); Tensor xc = low.x().overlaps(c) ? low.x().copy() : low.x().alias()) {
                gemmLoweredImagesShift(alpha, dc, coeff, shift, circular, withInput(low, xc), beta, c);
            }
            return;
        }
        if ((dy.offset + dy.numel()) * 4 > dy.storage.bytes) throw new IndexOutOfBoundsException("gemmLoweredImagesShift: dY exceeds its storage");
        checkRows(c, m, k);
        long ldc = m > 1 ? c.strides[0] : Math.max(k, 1);
        c.markModified();
        Native.sgemmLoweredImagesShift(m, alpha, dy.storage.segment().asSlice(dy.byteOffset()), l, shift, coeff, circular, low.x().data(), g,
                beta, c.storage.segment().asSlice(c.byteOffset()), ldc, Blas.threads());
    }

    /**
     * Eq. 3 over a selection of im2col, lowered while the GEMM packs: c = alpha * a B^T + beta * c with
     * B[r][q] = im2col(low.x())[row0 + r * rstep][cols[q]], a [M, cols.length] and c [M, nrows] (float32 CPU, unit stride
     * along their rows). The authors' random activation patterns keep columns that follow no stride (and the checkerboards
     * different ones in even and odd rows): this is {@link #gemmLowered} on their kept columns, with no im2col materialised.
     */
    public static void gemmLoweredAt(float alpha, Tensor a, Lowering low, int[] cols, int row0, int rstep, int nrows, float beta, Tensor c) {
        a.check(); c.check();
        if (low.tapMajor()) throw new IllegalArgumentException("gemmLoweredAt takes im2col's row order, not a tap-major lowering");
        int m = a.dim() == 2 ? a.shape[0] : -1, all = low.cols(), rows = low.rows();
        if (a.dim() != 2 || c.dim() != 2 || a.shape[1] != cols.length || c.shape[0] != m || c.shape[1] != nrows)
            throw new IllegalArgumentException("shape mismatch: gemmLoweredAt " + Shape.str(a.shape) + " x (" + cols.length + " columns of im2col)^T [" + cols.length
                    + ", " + nrows + "] into " + Shape.str(c.shape));
        checkRowSelection("gemmLoweredAt", row0, rstep, nrows, rows);
        for (int q : cols)
            if (q < 0 || q >= all) throw new IllegalArgumentException("gemmLoweredAt: column " + q + " out of range [0, " + all + ")");
        requireCpuF32("gemmLoweredAt", a, c, low, "");
        if (m == 0 || nrows == 0) return;
        if (low.x().size(0) == 0) { Blas.scaleEmptySum(beta, c); return; }   // no images, so no columns: the sum over none
        if ((cols.length > 1 && a.strides[1] != 1) || (nrows > 1 && c.strides[1] != 1))
            throw new IllegalArgumentException("gemmLoweredAt: a and c need unit stride along their rows, strides " + java.util.Arrays.toString(a.strides)
                    + " and " + java.util.Arrays.toString(c.strides));
        if (a.overlaps(c) || low.x().overlaps(c)) {   // as in gemmLowered
            try (Tensor ac = a.overlaps(c) ? a.copy() : a.alias(); Tensor xc = low.x().overlaps(c) ? low.x().copy() : low.x().alias()) {
                gemmLoweredAt(alpha, ac, withInput(low, xc), cols, row0, rstep, nrows, beta, c);
            }
            return;
        }
        if (cols.length > 0) checkRows(a, m, cols.length);   // no columns: a is never read (c = beta * c)
        checkRows(c, m, nrows);
        long lda = m > 1 && cols.length > 0 ? a.strides[0] : Math.max(cols.length, 1), ldc = m > 1 ? c.strides[0] : Math.max(nrows, 1);
        c.markModified();
        try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
            Native.sgemmLoweredAt(m, alpha, a.storage.segment().asSlice(a.byteOffset()), lda, low.x().data(), low.geometry(),
                    arena.allocateFrom(ValueLayout.JAVA_INT, cols), cols.length, row0, rstep, nrows, beta,
                    c.storage.segment().asSlice(c.byteOffset()), ldc, Blas.threads());
        }
    }

    /**
     * W [Cout, Cin*kk] (float32, CPU) as the weight of its transposed convolution, A' [Cin, kk*Cout] with
     * A'[ci][t*Cout + co] = W[co][ci*kk + kk-1-t]: the left operand of Eq. 2 of a stride-1 convolution computed as a
     * convolution of dY with a tap-major {@link Lowering}.
     */
    public static Tensor tconvWeight(Tensor w, int kk) {
        w.check();
        if (w.dim() != 2 || w.dtype != DType.F32 || w.device() != Device.CPU)
            throw new IllegalArgumentException("tconvWeight needs a float32 CPU matrix [Cout, Cin*kk], got " + w.dtype + " " + Shape.str(w.shape) + " on " + w.device());
        int cout = w.shape[0], k = w.shape[1];
        if (kk <= 0 || k % kk != 0) throw new IllegalArgumentException("tconvWeight: " + k + " columns are not Cin x " + kk + " taps");
        int cin = k / kk;
        Tensor out = Tensor.empty(cin, kk * cout);
        try (Tensor src = w.contiguous()) {
            if ((long) cin * cout > 0) Native.tconvWeight(cout, cin, kk, src.data(), k, out.data(), (long) kk * cout, Blas.threads());
            return out;
        } catch (RuntimeException | Error e) {
            out.close();
            throw e;
        }
    }

    /** Before a raw pointer goes to C: rows of length cols at stride strides[0] >= cols lie inside the storage. */
    private static void checkRows(Tensor m, long rows, long cols) {
        long ld = m.strides[0];
        if (rows > 1 && ld < cols) throw new IllegalArgumentException("matrix rows overlap: row stride " + ld + " < " + cols + " columns");
        if ((m.offset + (rows - 1) * ld + cols) * m.dtype.bytes > m.storage.bytes)
            throw new IndexOutOfBoundsException("matrix " + rows + "x" + cols + " (row stride " + ld + ") exceeds its storage of " + m.storage.bytes + " bytes");
    }

    /**
     * x as a contiguous tensor that out does not share memory with: the lowerings write out while they still read x, so
     * an out overlapping x (a buffer holding both) gave wrong values with no error; such an x is read from a copy.
     */
    private static Tensor readable(Tensor x, Tensor out) { return x.overlaps(out) ? x.copy() : x.contiguous(); }

    /** low with the same geometry over x (a copy of its input). */
    private static Lowering withInput(Lowering low, Tensor x) {
        return new Lowering(x, low.kh(), low.kw(), low.sh(), low.sw(), low.ph(), low.pw(), low.tapMajor());
    }

    /**
     * Float32 im2col/col2im run in the C shim (multi-threaded); -Dfst4j.conv.java=true keeps them in Java
     * (the reference the tests compare with).
     */
    static boolean nativeLowering = !Boolean.getBoolean("fst4j.conv.java");

    private static boolean useNative(DType t) { return nativeLowering && t == DType.F32 && Native.isLoaded(); }

    /**
     * im2col of every image at the same output positions: out [K, N*positions.length], column
     * n*positions.length + q holding image n's patch at position positions[q] (= oh*Wo + ow).
     */
    public static Tensor im2colAt(Tensor x, int[] positions, int kh, int kw, int sh, int sw, int ph, int pw) {
        x.check();
        Geom g = Geom.of("im2colAt", x.shape, kh, kw, sh, sw, ph, pw);
        for (int p : positions)
            if (p < 0 || p >= g.l())
                throw new IllegalArgumentException("im2colAt: position " + p + " out of range [0, " + g.l() + ") for input " + Shape.str(x.shape));
        if (x.storage.device != Device.CPU) return CudaOps.im2colAt(x, positions, g);
        int np = positions.length;
        Tensor out = Tensor.empty(x.dtype, g.k(), g.columns(np));
        if (out.numel() == 0) return out;
        if (useNative(x.dtype)) {
            try (Tensor xc = x.contiguous(); java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
                MemorySegment pos = arena.allocateFrom(ValueLayout.JAVA_INT, positions);
                Native.im2colAt(xc.data(), g.n, g.c, g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.ho, g.wo,
                        pos, np, out.data(), (long) g.n * np, Blas.threads());
            }
            return out;
        }
        for (int n = 0; n < g.n; n++)
            try (Tensor o = out.slice(1, n * np, (n + 1) * np)) { im2colAt(x, n, positions, kh, kw, sh, sw, ph, pw, o); }
        return out;
    }

    /**
     * im2col of x at one list of output positions per image, rows row0, row0 + rstep, ... (nrows of them): image n's
     * positions are pos[off[n] .. off[n + 1]) (off has N + 1 non-decreasing entries from 0; positions in [0, Ho*Wo)) and
     * fill those columns of out [nrows, off[N]] (unit column stride). The authors' random activation patterns keep
     * positions that differ from image to image where the plane is not a multiple of their period, and between even and
     * odd rows for the checkerboards (Gemm3). Returns out.
     */
    public static Tensor im2colAtInto(Tensor x, long[] off, int[] pos, int row0, int rstep, int nrows,
                                      int kh, int kw, int sh, int sw, int ph, int pw, Tensor out) {
        x.check(); out.check();
        Geom g = Geom.of("im2colAt", x.shape, kh, kw, sh, sw, ph, pw);
        if (off.length != g.n + 1 || off[0] != 0)
            throw new IllegalArgumentException("im2colAt: off needs " + (g.n + 1) + " entries starting at 0, got " + off.length
                    + (off.length > 0 ? " starting at " + off[0] : ""));
        for (int n = 0; n < g.n; n++)
            if (off[n + 1] < off[n]) throw new IllegalArgumentException("im2colAt: off decreases at image " + n + ": " + off[n] + " > " + off[n + 1]);
        if (off[g.n] != pos.length)
            throw new IllegalArgumentException("im2colAt: off ends at " + off[g.n] + " but there are " + pos.length + " positions");
        for (int p : pos)
            if (p < 0 || p >= g.l())
                throw new IllegalArgumentException("im2colAt: position " + p + " out of range [0, " + g.l() + ") for input " + Shape.str(x.shape));
        checkRowSelection("im2colAt", row0, rstep, nrows, g.k());
        checkMatrix("im2colAt", out, nrows, pos.length, x.dtype);
        if (out.numel() == 0) return out;
        if (x.storage.device != Device.CPU || out.storage.device != Device.CPU)
            throw new IllegalArgumentException("im2colAt with per-image positions is CPU only, got x on " + x.storage.device + " and out on " + out.storage.device);
        boolean nat = useNative(x.dtype);
        if (nat) checkRows(out, nrows, pos.length);
        out.markModified();
        try (Tensor xc = readable(x, out)) {
            if (nat) {
                try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
                    Native.im2colAtCsr(xc.data(), g.n, g.c, g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.ho, g.wo,
                            arena.allocateFrom(ValueLayout.JAVA_LONG, off), arena.allocateFrom(ValueLayout.JAVA_INT, pos),
                            row0, rstep, nrows, out.storage.segment().asSlice(out.byteOffset()), out.strides[0], Blas.threads());
                }
                return out;
            }
            for (int rr = 0; rr < nrows; rr++) {
                int r = row0 + rr * rstep, c = r / (g.kh * g.kw), i = (r / g.kw) % g.kh, j = r % g.kw;
                for (int n = 0; n < g.n; n++) {
                    long xBase = xc.offset + n * g.imageSize() + (long) c * g.h * g.w;
                    for (long q = off[n]; q < off[n + 1]; q++) {
                        int oh = pos[(int) q] / g.wo, ow = pos[(int) q] % g.wo;
                        int ih = oh * g.sh - g.ph + i, iw = ow * g.sw - g.pw + j;
                        double v = ih < 0 || ih >= g.h || iw < 0 || iw >= g.w ? 0 : xc.getAt(xBase + (long) ih * g.w + iw);
                        out.setAt(out.offset + rr * out.strides[0] + q * out.strides[1], v);
                    }
                }
            }
        }
        return out;
    }

    /** Rows row0, row0 + rstep, ... (nrows of them) must lie among im2col's rows. */
    private static void checkRowSelection(String op, int row0, int rstep, int nrows, int rows) {
        if (row0 < 0 || rstep < 1 || nrows < 0 || (nrows > 0 && row0 + (long) (nrows - 1) * rstep >= rows))
            throw new IllegalArgumentException(op + ": rows " + row0 + " + " + rstep + " * [0, " + nrows + ") outside the " + rows + " rows of im2col");
    }

    /** Square-kernel shorthand of {@link #im2col(Tensor, int, int, int, int, int, int)}. */
    public static Tensor im2col(Tensor x, int k, int stride, int padding) { return im2col(x, k, k, stride, stride, padding, padding); }

    /**
     * Writes the im2col matrix of image n of x into out, a [K, L] matrix with unit column stride (for
     * example a column slice of a bigger [K, N*L] buffer). Returns out.
     */
    public static Tensor im2col(Tensor x, int n, int kh, int kw, int sh, int sw, int ph, int pw, Tensor out) {
        x.check(); out.check();
        Geom g = Geom.of("im2col", x.shape, kh, kw, sh, sw, ph, pw);
        checkImage(n, g, x);
        checkMatrix("im2col", out, g.k(), g.l(), x.dtype);
        out.markModified();
        try (Tensor xc = readable(x, out)) {
            im2colRaw(xc, n, g, out, 0);
        }
        return out;
    }

    /**
     * im2col of image n at a subset of output positions only: column j of out ([K, positions.length],
     * unit column stride) receives the patch of output position positions[j] (= oh*Wo + ow).
     */
    public static Tensor im2colAt(Tensor x, int n, int[] positions, int kh, int kw, int sh, int sw, int ph, int pw, Tensor out) {
        x.check(); out.check();
        Geom g = Geom.of("im2colAt", x.shape, kh, kw, sh, sw, ph, pw);
        checkImage(n, g, x);
        checkMatrix("im2colAt", out, g.k(), positions.length, x.dtype);
        for (int p : positions)
            if (p < 0 || p >= g.l())
                throw new IllegalArgumentException("im2colAt: position " + p + " out of range [0, " + g.l() + ") for input " + Shape.str(x.shape));
        out.markModified();
        try (Tensor xc = readable(x, out)) {
            long xBase = xc.offset + n * g.imageSize();
            long ld = out.strides[0];
            for (int c = 0; c < g.c; c++)
                for (int i = 0; i < g.kh; i++)
                    for (int j = 0; j < g.kw; j++) {
                        long orow = out.offset + ((long) (c * g.kh + i) * g.kw + j) * ld;
                        for (int q = 0; q < positions.length; q++) {
                            int oh = positions[q] / g.wo, ow = positions[q] % g.wo;
                            int ih = oh * g.sh - g.ph + i, iw = ow * g.sw - g.pw + j;
                            double v = ih < 0 || ih >= g.h || iw < 0 || iw >= g.w ? 0 : xc.getAt(xBase + ((long) c * g.h + ih) * g.w + iw);
                            out.setAt(orow + q, v);
                        }
                    }
        }
        return out;
    }

    /** Adjoint of {@link #im2col(Tensor, int, int, int, int, int, int)}: cols [K, N*L] summed back into a new [N, C, H, W]. */
    public static Tensor col2im(Tensor cols, int[] inputShape, int kh, int kw, int sh, int sw, int ph, int pw) {
        return col2im(cols, inputShape, kh, kw, sh, sw, ph, pw, 1, 1);
    }

    /** Adjoint of {@link #im2col(Tensor, int, int, int, int, int, int, int, int)} (dilation dh, dw; on CUDA too). */
    public static Tensor col2im(Tensor cols, int[] inputShape, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw) {
        cols.check();
        Geom g = Geom.of("col2im", inputShape, kh, kw, sh, sw, ph, pw, dh, dw);
        checkMatrix("col2im", cols, g.k(), g.nl(), cols.dtype);
        if (cols.storage.device != Device.CPU) return CudaOps.col2im(cols, g);
        if (useNative(cols.dtype) && g.n > 0) {
            Tensor dx = Tensor.empty(cols.dtype, inputShape);
            try (Tensor cc = cols.contiguous()) {
                if (g.dilated())
                    Native.col2imDilated(cc.data(), (long) g.nl(), g.n, g.c, g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw,
                            g.ho, g.wo, dx.data(), Blas.threads());
                else
                    Native.col2im(cc.data(), (long) g.nl(), g.n, g.c, g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.ho, g.wo,
                            dx.data(), Blas.threads());
            } catch (RuntimeException | Error e) {
                dx.close();
                throw e;
            }
            return dx;
        }
        Tensor dx = Tensor.zeros(cols.dtype, inputShape);
        for (int n = 0; n < g.n; n++) col2imRaw(cols, (long) n * g.l(), dx, n, g);
        return dx;
    }

    public static Tensor col2im(Tensor cols, int[] inputShape, int k, int stride, int padding) {
        return col2im(cols, inputShape, k, k, stride, stride, padding, padding);
    }

    /** Adds col2im of cols ([K, L], unit column stride) into image n of dx (contiguous [N, C, H, W]). */
    public static void col2imAdd(Tensor cols, Tensor dx, int n, int kh, int kw, int sh, int sw, int ph, int pw) {
        cols.check(); dx.check();
        Geom g = Geom.of("col2im", dx.shape, kh, kw, sh, sw, ph, pw);
        checkImage(n, g, dx);
        if (!dx.isContiguous()) throw new IllegalArgumentException("col2imAdd: dx must be contiguous");
        checkMatrix("col2im", cols, g.k(), g.l(), dx.dtype);
        dx.markModified();
        if (cols.overlaps(dx)) { try (Tensor cc = cols.copy()) { col2imRaw(cc, 0, dx, n, g); } return; }   // see readable
        col2imRaw(cols, 0, dx, n, g);
    }

    private static void checkImage(int n, Geom g, Tensor x) {
        if (n < 0 || n >= g.n) throw new IllegalArgumentException("image " + n + " out of range for input " + Shape.str(x.shape));
    }

    private static void checkMatrix(String op, Tensor m, int rows, int cols, DType dtype) {
        if (m.dim() != 2 || m.shape[0] != rows || m.shape[1] != cols)
            throw new IllegalArgumentException("shape mismatch: " + op + " needs a [" + rows + ", " + cols + "] matrix, got " + Shape.str(m.shape));
        if (cols > 1 && m.strides[1] != 1)
            throw new IllegalArgumentException(op + ": matrix must have unit column stride, strides are " + java.util.Arrays.toString(m.strides));
        if (m.dtype != dtype) throw new IllegalArgumentException("dtype mismatch in " + op + ": " + m.dtype + " vs " + dtype);
    }

    /** First ow whose input column ow*s - p + j is >= 0, and one past the last one that is < w. */
    private static int owLo(int s, int p, int j) { return p - j <= 0 ? 0 : (p - j + s - 1) / s; }
    private static int owHi(int w, int wo, int s, int p, int j) {
        int num = w - 1 + p - j;
        return num < 0 ? 0 : Math.min(wo, num / s + 1);
    }

    /** Below this output width, im2col/col2im use a per-position gather table instead of row copies. */
    private static final int TABLE_BELOW = 16;

    /**
     * For each kernel offset (i, j) and output position l, the input offset ih*W + iw inside one channel
     * plane, or -1 where the window lies in the padding.
     */
    private static int[][] table(Geom g) {
        int[][] t = new int[g.kh * g.kw][g.l()];
        for (int i = 0; i < g.kh; i++)
            for (int j = 0; j < g.kw; j++) {
                int[] r = t[i * g.kw + j];
                for (int oh = 0, l = 0; oh < g.ho; oh++)
                    for (int ow = 0; ow < g.wo; ow++, l++) {
                        int ih = oh * g.sh - g.ph + i * g.dh, iw = ow * g.sw - g.pw + j * g.dw;
                        r[l] = ih < 0 || ih >= g.h || iw < 0 || iw >= g.w ? -1 : ih * g.w + iw;
                    }
            }
        return t;
    }

    /** Image n of contiguous xc into out[:, col0 : col0+L] (out has unit column stride). */
    static void im2colRaw(Tensor xc, int n, Geom g, Tensor out, long col0) {
        MemorySegment xs = xc.storage.segment(), os = out.storage.segment();
        boolean f32 = xc.dtype == DType.F32;
        long es = xc.dtype.bytes;
        long xBase = xc.offset + n * g.imageSize();
        long ld = out.strides[0];
        int ho = g.ho, wo = g.wo, h = g.h, w = g.w, sh = g.sh, sw = g.sw, ph = g.ph, pw = g.pw;
        if (wo < TABLE_BELOW) {
            int[][] tab = table(g);
            int l = g.l(), kk = g.kh * g.kw;
            for (int c = 0; c < g.c; c++) {
                long cBase = xBase + (long) c * h * w;
                for (int q = 0; q < kk; q++) {
                    int[] t = tab[q];
                    long dst = out.offset + ((long) c * kk + q) * ld + col0;
                    if (f32) for (int p = 0; p < l; p++) { int ix = t[p]; os.setAtIndex(F, dst + p, ix < 0 ? 0f : xs.getAtIndex(F, cBase + ix)); }
                    else for (int p = 0; p < l; p++) { int ix = t[p]; os.setAtIndex(D, dst + p, ix < 0 ? 0.0 : xs.getAtIndex(D, cBase + ix)); }
                }
            }
            return;
        }
        for (int c = 0; c < g.c; c++)
            for (int i = 0; i < g.kh; i++)
                for (int j = 0; j < g.kw; j++) {
                    long orow = out.offset + ((long) (c * g.kh + i) * g.kw + j) * ld + col0;
                    int jd = j * g.dw;   // the tap's column offset (dilated)
                    int lo = Math.min(owLo(sw, pw, jd), wo), hi = Math.max(owHi(w, wo, sw, pw, jd), lo);
                    for (int oh = 0; oh < ho; oh++) {
                        long dst = orow + (long) oh * wo;
                        int ih = oh * sh - ph + i * g.dh;
                        if (ih < 0 || ih >= h) {
                            zero(os, dst, wo, f32);
                            continue;
                        }
                        long src = xBase + ((long) c * h + ih) * w - pw + jd;
                        zero(os, dst, lo, f32);
                        if (hi == lo) {
                            // window entirely in the padding
                        } else if (sw == 1) {
                            MemorySegment.copy(xs, (src + lo) * es, os, (dst + lo) * es, (long) (hi - lo) * es);
                        } else if (f32) {
                            for (int ow = lo; ow < hi; ow++) os.setAtIndex(F, dst + ow, xs.getAtIndex(F, src + (long) ow * sw));
                        } else {
                            for (int ow = lo; ow < hi; ow++) os.setAtIndex(D, dst + ow, xs.getAtIndex(D, src + (long) ow * sw));
                        }
                        zero(os, dst + hi, wo - hi, f32);
                    }
                }
    }

    private static void zero(MemorySegment s, long at, int len, boolean f32) {
        if (f32) for (int q = 0; q < len; q++) s.setAtIndex(F, at + q, 0f);
        else for (int q = 0; q < len; q++) s.setAtIndex(D, at + q, 0.0);
    }

    /** dx image n (contiguous) += col2im(cols[:, col0 : col0+L]). */
    static void col2imRaw(Tensor cols, long col0, Tensor dx, int n, Geom g) {
        MemorySegment cs = cols.storage.segment(), xs = dx.storage.segment();
        boolean f32 = dx.dtype == DType.F32;
        long xBase = dx.offset + n * g.imageSize();
        long ld = cols.strides[0];
        int ho = g.ho, wo = g.wo, h = g.h, w = g.w, sh = g.sh, sw = g.sw, ph = g.ph, pw = g.pw;
        if (wo < TABLE_BELOW) {
            int[][] tab = table(g);
            int l = g.l(), kk = g.kh * g.kw;
            for (int c = 0; c < g.c; c++) {
                long cBase = xBase + (long) c * h * w;
                for (int q = 0; q < kk; q++) {
                    int[] t = tab[q];
                    long src = cols.offset + ((long) c * kk + q) * ld + col0;
                    if (f32) {
                        for (int p = 0; p < l; p++) {
                            int ix = t[p];
                            if (ix >= 0) xs.setAtIndex(F, cBase + ix, xs.getAtIndex(F, cBase + ix) + cs.getAtIndex(F, src + p));
                        }
                    } else {
                        for (int p = 0; p < l; p++) {
                            int ix = t[p];
                            if (ix >= 0) xs.setAtIndex(D, cBase + ix, xs.getAtIndex(D, cBase + ix) + cs.getAtIndex(D, src + p));
                        }
                    }
                }
            }
            return;
        }
        for (int c = 0; c < g.c; c++)
            for (int i = 0; i < g.kh; i++)
                for (int j = 0; j < g.kw; j++) {
                    long crow = cols.offset + ((long) (c * g.kh + i) * g.kw + j) * ld + col0;
                    int jd = j * g.dw;   // the tap's column offset (dilated)
                    int lo = Math.min(owLo(sw, pw, jd), wo), hi = Math.max(owHi(w, wo, sw, pw, jd), lo);
                    for (int oh = 0; oh < ho; oh++) {
                        int ih = oh * sh - ph + i * g.dh;
                        if (ih < 0 || ih >= h) continue;
                        long src = crow + (long) oh * wo;
                        long dst = xBase + ((long) c * h + ih) * w - pw + jd;
                        if (f32) {
                            for (int ow = lo; ow < hi; ow++) {
                                long d = dst + (long) ow * sw;
                                xs.setAtIndex(F, d, xs.getAtIndex(F, d) + cs.getAtIndex(F, src + ow));
                            }
                        } else {
                            for (int ow = lo; ow < hi; ow++) {
                                long d = dst + (long) ow * sw;
                                xs.setAtIndex(D, d, xs.getAtIndex(D, d) + cs.getAtIndex(D, src + ow));
                            }
                        }
                    }
                }
    }

    // ------------------------------------------------------------------ convolution

    private static Geom convGeom(String op, int[] xShape, int[] wShape, int sh, int sw, int ph, int pw) {
        if (wShape.length != 4)
            throw new IllegalArgumentException("wrong rank: " + op + " needs weight [Cout, Cin, kh, kw], got " + Shape.str(wShape));
        if (xShape.length == 4 && xShape[1] != wShape[1])
            throw new IllegalArgumentException("channel mismatch: " + op + " input " + Shape.str(xShape) + " has " + xShape[1]
                    + " channels but weight " + Shape.str(wShape) + " expects " + wShape[1]);
        return Geom.of(op, xShape, wShape[2], wShape[3], sh, sw, ph, pw);
    }

    private static void sameDtype(String op, Tensor a, Tensor b) {
        if (a.dtype != b.dtype) throw new IllegalArgumentException("dtype mismatch in " + op + ": " + a.dtype + " and " + b.dtype);
    }

    /** Images per GEMM: enough to reach TARGET_COLS columns, bounded by the buffer cap. */
    private static int chunk(Geom g) {
        int l = Math.max(g.l(), 1);
        int b = Math.max(1, Math.min(g.n, (TARGET_COLS + l - 1) / l));
        long perImage = (long) Math.max(g.k(), 1) * l;
        b = (int) Math.max(1, Math.min(b, MAX_BUFFER / perImage));
        return b;
    }

    public static Tensor conv2d(Tensor x, Tensor w, Tensor bias, int stride, int padding) {
        return conv2d(x, w, bias, stride, stride, padding, padding);
    }

    /** y[N, Cout, Ho, Wo] = conv(x[N, Cin, H, W], w[Cout, Cin, kh, kw]) + bias[Cout] (bias may be null). */
    public static Tensor conv2d(Tensor x, Tensor w, Tensor bias, int sh, int sw, int ph, int pw) {
        x.check(); w.check();
        Geom g = convGeom("conv2d", x.shape, w.shape, sh, sw, ph, pw);
        sameDtype("conv2d", x, w);
        int cout = w.shape[0], k = g.k(), l = g.l();
        if (bias != null) {
            bias.check();
            if (bias.dim() != 1 || bias.shape[0] != cout)
                throw new IllegalArgumentException("shape mismatch: conv2d bias " + Shape.str(bias.shape) + " for weight " + Shape.str(w.shape) + " needs [" + cout + "]");
        }
        if (x.storage.device != Device.CPU || w.storage.device != Device.CPU) return CudaOps.conv2d(x, w, bias, g);
        Tensor out = Tensor.empty(x.dtype, g.n, cout, g.ho, g.wo);
        if (out.numel() == 0) return out;
        int b = chunk(g);
        try (Tensor xc = x.contiguous(); Tensor wm = w.reshape(cout, k); Tensor cols = Tensor.empty(x.dtype, k, b * l);
             Tensor ybuf = b > 1 ? Tensor.empty(x.dtype, cout, b * l) : null; Tensor out3 = out.reshape(g.n, cout, l)) {
            for (int n0 = 0; n0 < g.n; n0 += b) {
                int nb = Math.min(b, g.n - n0);
                for (int i = 0; i < nb; i++) im2colRaw(xc, n0 + i, g, cols, (long) i * l);
                if (nb == 1 && b == 1) {
                    try (Tensor yi = image(out3, n0)) { Blas.gemm(1f, wm, cols, 0f, yi); }
                } else {
                    try (Tensor c = cols.slice(1, 0, nb * l); Tensor y = ybuf.slice(1, 0, nb * l)) {
                        Blas.gemm(1f, wm, c, 0f, y);
                    }
                    scatter(ybuf, out3, n0, nb, cout, l);
                }
            }
        }
        if (bias != null) addBias(out, bias, g.n, cout, l);
        return out;
    }

    /** dX of conv2d: col2im(W^T dY), shape inputShape. */
    public static Tensor conv2dBackwardInput(Tensor dy, Tensor w, int[] inputShape, int stride, int padding) {
        return conv2dBackwardInput(dy, w, inputShape, stride, stride, padding, padding);
    }

    public static Tensor conv2dBackwardInput(Tensor dy, Tensor w, int[] inputShape, int sh, int sw, int ph, int pw) {
        dy.check(); w.check();
        Geom g = convGeom("conv2dBackwardInput", inputShape, w.shape, sh, sw, ph, pw);
        sameDtype("conv2dBackwardInput", dy, w);
        int cout = w.shape[0], k = g.k(), l = g.l();
        checkDy("conv2dBackwardInput", dy, g, cout);
        if (dy.storage.device != Device.CPU || w.storage.device != Device.CPU) return CudaOps.conv2dBackwardInput(dy, w, g);
        Tensor dx = Tensor.zeros(dy.dtype, inputShape);
        if (dy.numel() == 0 || dx.numel() == 0) return dx;
        int b = chunk(g);
        try (Tensor dyc = dy.contiguous(); Tensor dy3 = dyc.reshape(g.n, cout, l); Tensor wm = w.reshape(cout, k); Tensor wt = wm.t();
             Tensor dcols = Tensor.empty(dy.dtype, k, b * l); Tensor dybuf = b > 1 ? Tensor.empty(dy.dtype, cout, b * l) : null) {
            for (int n0 = 0; n0 < g.n; n0 += b) {
                int nb = Math.min(b, g.n - n0);
                if (b == 1) {
                    try (Tensor dyi = image(dy3, n0)) { Blas.gemm(1f, wt, dyi, 0f, dcols); }
                } else {
                    gather(dy3, dybuf, n0, nb, cout, l);
                    try (Tensor d = dybuf.slice(1, 0, nb * l); Tensor c = dcols.slice(1, 0, nb * l)) { Blas.gemm(1f, wt, d, 0f, c); }
                }
                for (int i = 0; i < nb; i++) col2imRaw(dcols, (long) i * l, dx, n0 + i, g);
            }
        }
        return dx;
    }

    /** dW of conv2d: sum over images of dY_n X_n^T, shape weightShape [Cout, Cin, kh, kw]. */
    public static Tensor conv2dBackwardWeight(Tensor dy, Tensor x, int[] weightShape, int stride, int padding) {
        return conv2dBackwardWeight(dy, x, weightShape, stride, stride, padding, padding);
    }

    public static Tensor conv2dBackwardWeight(Tensor dy, Tensor x, int[] weightShape, int sh, int sw, int ph, int pw) {
        dy.check(); x.check();
        Geom g = convGeom("conv2dBackwardWeight", x.shape, weightShape, sh, sw, ph, pw);
        sameDtype("conv2dBackwardWeight", dy, x);
        int cout = weightShape[0], k = g.k(), l = g.l();
        checkDy("conv2dBackwardWeight", dy, g, cout);
        if (dy.storage.device != Device.CPU || x.storage.device != Device.CPU) return CudaOps.conv2dBackwardWeight(dy, x, weightShape, g);
        Tensor dw = Tensor.zeros(x.dtype, weightShape);
        if (dy.numel() == 0 || dw.numel() == 0) return dw;
        int b = chunk(g);
        try (Tensor xc = x.contiguous(); Tensor dyc = dy.contiguous(); Tensor dy3 = dyc.reshape(g.n, cout, l); Tensor dwm = dw.reshape(cout, k);
             Tensor cols = Tensor.empty(x.dtype, k, b * l); Tensor dybuf = b > 1 ? Tensor.empty(dy.dtype, cout, b * l) : null) {
            for (int n0 = 0; n0 < g.n; n0 += b) {
                int nb = Math.min(b, g.n - n0);
                for (int i = 0; i < nb; i++) im2colRaw(xc, n0 + i, g, cols, (long) i * l);
                if (b == 1) {
                    try (Tensor dyi = image(dy3, n0); Tensor ct = cols.t()) { Blas.gemm(1f, dyi, ct, 1f, dwm); }
                } else {
                    gather(dy3, dybuf, n0, nb, cout, l);
                    try (Tensor d = dybuf.slice(1, 0, nb * l); Tensor c = cols.slice(1, 0, nb * l); Tensor ct = c.t()) {
                        Blas.gemm(1f, d, ct, 1f, dwm);
                    }
                }
            }
        }
        return dw;
    }

    /** dBias of conv2d: dy summed over N, H, W -> [Cout]. */
    /**
     * A batch's output gradient dY [n, c, ...] (n * c * plane elements) as the GEMM operand of Eq. 2 and Eq. 3,
     * [c, n * plane] contiguous. On CUDA one kernel writes it and, where the GEMMs run at BF16, its bf16 rounding, which
     * the bf16 GEMMs reading this tensor borrow while the handle is open (one pass over dY instead of a permute and a
     * rounding per GEMM). Closing the handle closes the tensor.
     */
    public static SharedOperand byChannel(Tensor dy, int n, int c, int plane) {
        dy.check();
        if (dy.numel() != (long) n * c * plane || dy.dim() < 2 || dy.shape[0] != n || dy.shape[1] != c)
            throw new IllegalArgumentException("shape mismatch: byChannel of " + Shape.str(dy.shape) + " as " + n + " images x " + c + " channels x " + plane);
        // the operand's rows of n * plane columns: an int product wrapped there (the CUDA kernel then wrote past a 4 GiB
        // block; audit, session 44)
        if ((long) n * plane > Integer.MAX_VALUE)
            throw new IllegalArgumentException("byChannel: " + n + " images x " + plane + " positions = " + (long) n * plane
                    + " columns a row, past 2^31 - 1");
        if (dy.storage.device != Device.CPU) return CudaOps.byChannel(dy, n, c, plane);
        try (Tensor d3 = dy.reshape(n, c, plane); Tensor p = d3.permute(1, 0, 2); Tensor pc = p.contiguous()) {
            return SharedOperand.of(pc.reshape(c, n * plane));
        }
    }

    public static Tensor conv2dBackwardBias(Tensor dy) {
        dy.check();
        if (dy.dim() != 4) throw new IllegalArgumentException("wrong rank: conv2dBackwardBias needs dy [N, Cout, Ho, Wo], got " + Shape.str(dy.shape));
        if (dy.storage.device != Device.CPU) return CudaOps.conv2dBackwardBias(dy);
        int n = dy.shape[0], c = dy.shape[1], l = dy.shape[2] * dy.shape[3];
        double[] acc = new double[c];
        try (Tensor dyc = dy.contiguous()) {
            MemorySegment s = dyc.storage.segment();
            boolean f32 = dyc.dtype == DType.F32;
            for (int i = 0; i < n; i++)
                for (int co = 0; co < c; co++) {
                    long base = dyc.offset + ((long) i * c + co) * l;
                    double sum = 0;
                    if (f32) for (int q = 0; q < l; q++) sum += s.getAtIndex(F, base + q);
                    else for (int q = 0; q < l; q++) sum += s.getAtIndex(D, base + q);
                    acc[co] += sum;
                }
        }
        Tensor db = Tensor.empty(dy.dtype, c);
        for (int co = 0; co < c; co++) db.setAt(co, acc[co]);
        return db;
    }

    private static void checkDy(String op, Tensor dy, Geom g, int cout) {
        if (dy.dim() != 4 || dy.shape[0] != g.n || dy.shape[1] != cout || dy.shape[2] != g.ho || dy.shape[3] != g.wo)
            throw new IllegalArgumentException("shape mismatch: " + op + " dy " + Shape.str(dy.shape) + " should be ["
                    + g.n + ", " + cout + ", " + g.ho + ", " + g.wo + "]");
    }

    /** The [rows, cols] matrix of image n of a contiguous [N, rows, cols] tensor, as a view. */
    private static Tensor image(Tensor t3, int n) {
        try (Tensor s = t3.slice(0, n, n + 1)) { return s.reshape(t3.shape[1], t3.shape[2]); }
    }

    /** out3[n0+i, co, :] = buf[co, i*L : (i+1)*L] for i < nb (out3 contiguous [N, Cout, L]). */
    public static void scatterImages(Tensor buf, Tensor out3, int n0, int nb) {
        buf.check(); out3.check();
        if (out3.dim() != 3 || !out3.isContiguous() || buf.dim() != 2 || buf.strides[1] != 1 || buf.dtype != out3.dtype
                || buf.shape[0] != out3.shape[1] || buf.shape[1] < (long) nb * out3.shape[2] || n0 < 0 || n0 + nb > out3.shape[0])
            throw new IllegalArgumentException("scatterImages: block " + Shape.str(buf.shape) + " of " + nb + " images at " + n0 + " into " + Shape.str(out3.shape));
        out3.markModified();
        // a block sharing memory with out3 is read from a copy (the row copies read rows they had written)
        if (buf.overlaps(out3)) { try (Tensor bc = buf.copy()) { scatter(bc, out3, n0, nb, out3.shape[1], out3.shape[2]); } return; }
        scatter(buf, out3, n0, nb, out3.shape[1], out3.shape[2]);
    }

    /** buf[co, i*L : (i+1)*L] = dy3[n0+i, co, :] for i < nb (dy3 contiguous [N, Cout, L]). */
    public static void gatherImages(Tensor dy3, Tensor buf, int n0, int nb) {
        buf.check(); dy3.check();
        if (dy3.dim() != 3 || !dy3.isContiguous() || buf.dim() != 2 || buf.strides[1] != 1 || buf.dtype != dy3.dtype
                || buf.shape[0] != dy3.shape[1] || buf.shape[1] < (long) nb * dy3.shape[2] || n0 < 0 || n0 + nb > dy3.shape[0])
            throw new IllegalArgumentException("gatherImages: " + nb + " images at " + n0 + " of " + Shape.str(dy3.shape) + " into block " + Shape.str(buf.shape));
        buf.markModified();
        if (dy3.overlaps(buf)) { try (Tensor dc = dy3.copy()) { gather(dc, buf, n0, nb, dy3.shape[1], dy3.shape[2]); } return; }   // as in scatterImages
        gather(dy3, buf, n0, nb, dy3.shape[1], dy3.shape[2]);
    }

    /** out3[n0+i, co, :] = buf[co, i*L : (i+1)*L]. */
    private static void scatter(Tensor buf, Tensor out3, int n0, int nb, int cout, int l) {
        long es = buf.dtype.bytes, ld = buf.strides[0];
        MemorySegment bs = buf.storage.segment(), os = out3.storage.segment();
        if (StridedCopy.applies(buf, out3, (long) nb * cout * l)) {   // [nb, cout, l]: out3 contiguous from image n0, buf (i, co, q) at co*ld + i*l + q
            StridedCopy.copy(os, out3.offset + (long) n0 * cout * l, new int[]{nb, cout, l}, new long[]{(long) cout * l, l, 1},
                    bs, buf.offset, new long[]{l, ld, 1});
            return;
        }
        for (int i = 0; i < nb; i++)
            for (int co = 0; co < cout; co++)
                MemorySegment.copy(bs, (buf.offset + co * ld + (long) i * l) * es, os,
                        (out3.offset + ((long) (n0 + i) * cout + co) * l) * es, l * es);
    }

    /** buf[co, i*L : (i+1)*L] = dy3[n0+i, co, :] (dy3 contiguous). */
    private static void gather(Tensor dy3, Tensor buf, int n0, int nb, int cout, int l) {
        long es = buf.dtype.bytes, ld = buf.strides[0];
        MemorySegment bs = buf.storage.segment(), ds = dy3.storage.segment();
        if (StridedCopy.applies(dy3, buf, (long) nb * cout * l)) {
            StridedCopy.copy(bs, buf.offset, new int[]{nb, cout, l}, new long[]{l, ld, 1},
                    ds, dy3.offset + (long) n0 * cout * l, new long[]{(long) cout * l, l, 1});
            return;
        }
        for (int i = 0; i < nb; i++)
            for (int co = 0; co < cout; co++)
                MemorySegment.copy(ds, (dy3.offset + ((long) (n0 + i) * cout + co) * l) * es, bs,
                        (buf.offset + co * ld + (long) i * l) * es, l * es);
    }

    private static void addBias(Tensor out, Tensor bias, int n, int cout, int l) {
        MemorySegment os = out.storage.segment();
        boolean f32 = out.dtype == DType.F32;
        for (int co = 0; co < cout; co++) {
            double bv = bias.getAt(bias.offset + co * bias.strides[0]);
            for (int i = 0; i < n; i++) {
                long base = ((long) i * cout + co) * l;
                if (f32) { float fb = (float) bv; for (int q = 0; q < l; q++) os.setAtIndex(F, base + q, os.getAtIndex(F, base + q) + fb); }
                else for (int q = 0; q < l; q++) os.setAtIndex(D, base + q, os.getAtIndex(D, base + q) + bv);
            }
        }
    }
}
