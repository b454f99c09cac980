package fst4j.tensor;

import fst4j.shim.Cuda;
import fst4j.shim.CudaUnavailableException;
import fst4j.shim.Native;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The CUDA paths of the tensor ops: each public op of Elementwise, Reduce, Pool, Norm and Loss that a ResNet training
 * step uses checks its inputs' device first and, for CUDA tensors, comes here after its own argument checks. Every
 * op here is float32, runs one kernel of fst4j_kernels.cu (through {@link Native}) on the one stream, and has the
 * CPU op's contract (the kernels' contracts are in native-cuda/CUDA.md). Outputs are new contiguous CUDA tensors.
 * Inputs on different devices throw "device mismatch: ..."; other dtypes throw UnsupportedOperationException.
 * The optimizer updates ({@link #sgdStep}, {@link #srsteDecay}) are public for fst4j.nn.
 */
public final class CudaOps {
    private CudaOps() {}

    // op codes of fst_cuda_binary / fst_cuda_unary (enums in native-cuda/src/main/cuda/fst4j_kargs.h)
    static final int ADD = 0, SUB = 1, MUL = 2, DIV = 3, RELU_BWD = 4, ADD_RELU = 5, POW = 6, MAXIMUM = 7, MINIMUM = 8, GT = 9, GE = 10,
            LT = 11, LE = 12, EQ = 13, SIGMOID_BWD = 14, TANH_BWD = 15, MASK = 16, MASK_NOT = 17, BCE_LIN = 18, SMOOTH_L1_BWD = 19,
            SIN_BWD = 20, COS_BWD = 21, LOG1P_BWD = 22, EXPM1_BWD = 23;
    static final int COPY = 0, RELU = 1, NEG = 2, ABS = 3, ADD_SCALAR = 4, MUL_SCALAR = 5, FILL = 6, EXP = 7, LOG = 8, SQRT = 9,
            POW_SCALAR = 10, SIGMOID = 11, TANH = 12, RSUB_SCALAR = 13, SOFTPLUS_NEG = 14, SIGMOID_NEG = 15, SMOOTH_L1 = 16,
            SIN = 17, COS = 18, LOG1P = 19, EXPM1 = 20;
    // op codes of fst_cuda_lanes (FST_LANE_* in fst4j_kargs.h)
    static final int LANE_CUMSUM = 0, LANE_CUMSUM_REV = 1, LANE_PROD = 2, LANE_PROD_BWD = 3;

    /** Device address of t's first element. */
    static MemorySegment ptr(Tensor t) { return MemorySegment.ofAddress(t.storage.devicePointer().address() + t.byteOffset()); }

    private static MemorySegment ptrOrNull(Tensor t) { return t == null ? MemorySegment.NULL : ptr(t); }

    private static long[] longs(int[] v) {
        long[] out = new long[v.length];
        for (int i = 0; i < v.length; i++) out[i] = v[i];
        return out;
    }

    /** Every given (non-null) tensor is open, on CUDA and float32. */
    static void require(String op, Tensor... ts) {
        for (Tensor t : ts) {
            if (t == null) continue;
            t.check();
            if (t.storage.device != Device.CUDA) throw mismatch(op, ts);
        }
        for (Tensor t : ts)
            if (t != null && t.dtype != DType.F32)
                throw new UnsupportedOperationException(op + " on CUDA supports float32 only, got " + t.dtype.name().toLowerCase());
    }

    static IllegalArgumentException mismatch(String op, Tensor... ts) {
        List<String> devices = new ArrayList<>();
        for (Tensor t : ts) if (t != null) devices.add(t.storage.device.name());
        return new IllegalArgumentException("device mismatch: " + op + " got tensors on " + String.join(", ", devices)
                + "; move them to one device with to(Device)");
    }

    /** Thrown by the ops that take a Java lambda (map, zip): a lambda cannot run on the device. */
    static UnsupportedOperationException noLambda(String op) {
        return new UnsupportedOperationException(op + " with a Java function cannot run on CUDA tensors; use the named ops "
                + "(add, mul, relu, ...) or copy to the host with to(Device.CPU)");
    }

    /**
     * A raw device scratch block from the caching allocator (int32 indices and labels, double work arrays, bf16 GEMM
     * operands); a borrowed one (owned false: another holder's block, see {@link #byChannel}) is not released by close.
     */
    record Block(MemorySegment ptr, long bytes, boolean owned) implements AutoCloseable {
        static Block of(long bytes) { return new Block(CudaMemory.allocate(bytes), bytes, true); }
        @Override public void close() { if (owned) CudaMemory.release(ptr, bytes); }
    }

    // ---------------------------------------------------------------- memory

    /** Zeroes every element of a CUDA tensor: its bytes where it is contiguous, else through the strided fill (+0.0). */
    static void zero(Tensor t) {
        if (!t.isContiguous()) { CudaWrites.fill(t, 0); return; }
        Cuda.memset(ptr(t), 0, t.numel() * t.dtype.bytes);
    }

    /** Tensor.fill on CUDA: float32 or float64, any layout (a strided view through {@link CudaWrites#fill}). */
    static void fill(Tensor t, double v) {
        t.check();
        if (t.storage.device != Device.CUDA) throw mismatch("fill", t);
        if (t.dtype == DType.F32 && t.isContiguous()) Native.cudaUnary(FILL, v, longs(t.shape), MemorySegment.NULL, null, ptr(t));
        else CudaWrites.fill(t, v);
    }

    /** dst.copyFrom(src) when either is on CUDA: host -> device, device -> host, device -> device (src broadcast). */
    static void copyInto(Tensor dst, Tensor src) {
        try (Tensor s = src.expand(dst.shape)) {
            long bytes = dst.numel() * dst.dtype.bytes;
            if (dst.storage.device == Device.CUDA && s.storage.device == Device.CUDA) {
                deviceCopy(dst, s);
            } else if (dst.storage.device == Device.CUDA) {            // host -> device
                if (!dst.isContiguous()) {   // up into a contiguous block, then the strided write on the device
                    try (Tensor up = Tensor.empty(Device.CUDA, dst.dtype, dst.shape)) {
                        copyInto(up, s);
                        CudaWrites.copy(dst, up);
                    }
                } else if (s.dtype == dst.dtype && s.isContiguous()) {
                    Cuda.copyToDevice(ptr(dst), s.data(), bytes);
                } else {
                    try (Tensor h = Tensor.empty(dst.dtype, dst.shape)) {
                        h.copyFrom(s);
                        Cuda.copyToDevice(ptr(dst), h.data(), bytes);
                    }
                }
            } else {                                                    // device -> host
                try (Tensor d = s.contiguous()) {
                    if (dst.dtype == d.dtype && dst.isContiguous()) {
                        Cuda.copyToHost(dst.data(), ptr(d), bytes);
                    } else {
                        try (Tensor h = Tensor.empty(d.dtype, d.shape)) {
                            Cuda.copyToHost(h.data(), ptr(d), h.numel() * h.dtype.bytes);
                            dst.copyFrom(h);
                        }
                    }
                }
            }
        }
    }

    /** dst = s on the device (s of dst's shape, not sharing its memory): a memcpy, the 4-wide gathering copy, or a strided write. */
    private static void deviceCopy(Tensor dst, Tensor s) {
        if (dst.isContiguous() && s.dtype == dst.dtype && s.isContiguous()) {
            Cuda.copyOnDevice(ptr(dst), ptr(s), dst.numel() * dst.dtype.bytes);
        } else if (dst.isContiguous() && s.dtype == DType.F32 && dst.dtype == DType.F32
                && Layout.of(dst.shape, s.strides).shape().length <= CudaWrites.MAX_RANK) {
            Layout l = Layout.of(dst.shape, s.strides);
            Native.cudaUnary(COPY, 0, l.shape(), ptr(s), l.strides()[0], ptr(dst));
        } else {   // into a strided view, between float32 and float64, or of more dimensions than the copy kernel takes
            CudaWrites.copy(dst, s);
        }
    }

    // ---------------------------------------------------------------- elementwise

    /**
     * The iteration space of an elementwise kernel with the fewest dimensions: size-1 dimensions dropped, and a
     * dimension merged into the next one where every operand (and the contiguous output) steps through both as one
     * (stride[d] == stride[d+1] * size[d+1]). A contiguous same-shape op becomes one flat dimension and a per-channel
     * bias add on NCHW three, so the kernels do fewer 64-bit divisions per element. Same elements, same order.
     */
    record Layout(long[] shape, long[][] strides) {
        static Layout of(int[] shape, long[]... operandStrides) {
            int r = shape.length, k = operandStrides.length;
            long[] outStride = new long[r];
            long acc = 1;
            for (int d = r - 1; d >= 0; d--) { outStride[d] = acc; acc *= shape[d]; }
            long[] sh = new long[r];
            long[][] st = new long[k + 1][r];
            int n = 0;
            for (int d = 0; d < r; d++) {
                if (shape[d] == 1) continue;
                boolean merge = n > 0;
                for (int o = 0; o <= k && merge; o++) {
                    long[] src = o < k ? operandStrides[o] : outStride;
                    merge = st[o][n - 1] == src[d] * shape[d];
                }
                if (merge) {
                    sh[n - 1] *= shape[d];
                    for (int o = 0; o <= k; o++) st[o][n - 1] = (o < k ? operandStrides[o] : outStride)[d];
                } else {
                    sh[n] = shape[d];
                    for (int o = 0; o <= k; o++) st[o][n] = (o < k ? operandStrides[o] : outStride)[d];
                    n++;
                }
            }
            long[][] out = new long[k][];
            for (int o = 0; o < k; o++) out[o] = java.util.Arrays.copyOf(st[o], n);
            return new Layout(java.util.Arrays.copyOf(sh, n), out);
        }
    }

    static Tensor binary(String op, int code, Tensor a, Tensor b) { return binary(op, code, 0, a, b); }

    /** op(a, b) broadcast, s the op's scalar (smooth-L1's beta; 0 for the others). */
    static Tensor binary(String op, int code, double s, Tensor a, Tensor b) {
        require(op, a, b);
        int[] shape = Shape.broadcast(a.shape, b.shape);
        Tensor out = Tensor.empty(Device.CUDA, DType.F32, shape);
        try {
            binaryInto(code, s, shape, a, b, out);
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        return out;
    }

    /** out (contiguous, of the broadcast shape) = op(a, b), a and b broadcast to shape. */
    private static void binaryInto(int code, double s, int[] shape, Tensor a, Tensor b, Tensor out) {
        try (Tensor ea = a.expand(shape); Tensor eb = b.expand(shape)) {
            Layout l = Layout.of(shape, ea.strides, eb.strides);
            if (code < POW) Native.cudaBinary(code, l.shape(), ptr(ea), l.strides()[0], ptr(eb), l.strides()[1], ptr(out));
            else Native.cudaBinary(code, s, l.shape(), ptr(ea), l.strides()[0], ptr(eb), l.strides()[1], ptr(out));
        }
    }

    /** Elementwise.where on CUDA: cond != 0 ? a : b, the three broadcast (Elementwise checked the shapes). */
    static Tensor where(Tensor cond, Tensor a, Tensor b, int[] shape) {
        require("where", cond, a, b);
        Tensor out = Tensor.empty(Device.CUDA, DType.F32, shape);
        try (Tensor ec = cond.expand(shape); Tensor ea = a.expand(shape); Tensor eb = b.expand(shape)) {
            Layout l = Layout.of(shape, ec.strides, ea.strides, eb.strides);
            Native.cudaWhere(l.shape(), ptr(ec), l.strides()[0], ptr(ea), l.strides()[1], ptr(eb), l.strides()[2], ptr(out));
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        return out;
    }

    /**
     * a += b by the add kernel writing into a itself (each element read and written by one thread), where a is a
     * contiguous float32 CUDA tensor of the broadcast shape and b is on the device in other storage; false (nothing
     * done) otherwise, and the caller adds out of place. Saves the sum's allocation and a device-to-device copy.
     */
    static boolean addInto(Tensor a, Tensor b) {
        require("addInPlace", a, b);
        if (!a.isContiguous() || a.storage == b.storage || !Arrays.equals(Shape.broadcast(a.shape, b.shape), a.shape)) return false;
        a.markModified();
        binaryInto(ADD, 0, a.shape, a, b, a);
        return true;
    }

    static Tensor unary(String op, int code, double s, Tensor a) {
        require(op, a);
        Tensor out = Tensor.empty(Device.CUDA, DType.F32, a.shape);
        try {
            Layout l = Layout.of(a.shape, a.strides);
            Native.cudaUnary(code, s, l.shape(), ptr(a), l.strides()[0], ptr(out));
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        return out;
    }

    // ---------------------------------------------------------------- GEMM

    /**
     * Set once cuBLAS SGEMM (resp. GemmEx) turned out to be missing (the emulator has no SGEMM): then fst4j's own float32
     * GEMM kernel runs in its place.
     */
    private static volatile boolean noSgemm, noGemmEx;

    /** Whether CUDA GEMMs at the current {@link #matmulPrecision()} go to cuBLAS (true until a call found it missing). */
    public static boolean usesCublas() { return precision == MatmulPrecision.FP32 ? !noSgemm : !noGemmEx; }

    /**
     * The precision of dense CUDA GEMMs (matmul, convolution, Eq. 1-3 when dense), PyTorch's allow_tf32 / autocast in
     * one switch: FP32 (cuBLAS SGEMM, the default, the CPU's precision), TF32 (float32 operands, TF32 tensor cores) or
     * BF16 (operands rounded to bfloat16 on the device, float32 accumulation and result; what 2:4 products through
     * cuSPARSELt use, so dense and sparse steps compare at the same precision). Set with -Dfst4j.cuda.matmul=fp32|tf32|bf16
     * or {@link #setMatmulPrecision}. Without cuBLAS (and on the host emulator without its GEMM) fst4j's float32 kernel runs.
     */
    public enum MatmulPrecision {
        FP32, TF32, BF16;

        static MatmulPrecision parse(String s) {
            for (MatmulPrecision p : values()) if (p.name().equalsIgnoreCase(s.trim())) return p;
            throw new IllegalArgumentException("fst4j.cuda.matmul must be fp32, tf32 or bf16, got '" + s + "'");
        }
    }

    private static volatile MatmulPrecision precision = MatmulPrecision.parse(System.getProperty("fst4j.cuda.matmul", "fp32"));

    public static MatmulPrecision matmulPrecision() { return precision; }

    private static volatile boolean bf16Outputs;
    private static volatile boolean bf16Col2im = !"false".equalsIgnoreCase(System.getProperty("fst4j.cuda.bf16Col2im", "true"));

    /**
     * Whether a convolution's dense Eq. 2 at BF16 precision writes its product in bf16 and folds it back from there
     * ({@link #gemmCol2imBf16}); on by default, {@code -Dfst4j.cuda.bf16Col2im=false} keeps the float32 product.
     */
    public static boolean bf16Col2im() { return bf16Col2im; }

    /** Sets {@link #bf16Col2im()}; returns the previous setting. */
    public static boolean setBf16Col2im(boolean on) { boolean was = bf16Col2im; bf16Col2im = on; return was; }

    /**
     * At BF16 precision: whether every dense GEMM's float32 result is rounded to bf16 (to nearest even), as a library
     * that writes a bf16 product does (cuSPARSELt 0.8.0 on Hopper) and as autocast's bf16 matmul outputs are. Off by
     * default; on, the dense and the cuSPARSELt 2:4 paths carry the same roundings (a like-for-like comparison).
     * Returns the previous setting.
     */
    public static boolean setBf16Outputs(boolean on) { boolean was = bf16Outputs; bf16Outputs = on; return was; }

    /** c [m, n] (row stride ldc, unit column stride) rounded to bf16 in place, where {@link #setBf16Outputs} is on. */
    private static void roundOutput(Tensor c, long m, long n, long ldc) {
        if (!bf16Outputs || m == 0 || n == 0) return;
        try (Block t = Block.of(2 * m * n)) {
            Native.cudaBf16Pad(ptr(c), m, n, ldc, 1, t.ptr(), m, n);
            if (ldc == n) { Native.cudaBf16Unpad(t.ptr(), n, ptr(c), m, n); return; }
            if (c.dim() != 2 || c.shape[0] != m || c.shape[1] != n)
                throw new IllegalStateException("bf16 outputs: a GEMM result [" + m + ", " + n + "] with row stride " + ldc + " in " + Shape.str(c.shape));
            try (Tensor r = Tensor.empty(Device.CUDA, DType.F32, (int) m, (int) n)) {
                Native.cudaBf16Unpad(t.ptr(), n, ptr(r), m, n);
                c.copyFrom(r);
            }
        }
    }

    /** Sets the precision of dense CUDA GEMMs for this JVM; returns the previous one. */
    public static MatmulPrecision setMatmulPrecision(MatmulPrecision p) {
        MatmulPrecision was = precision;
        precision = java.util.Objects.requireNonNull(p, "precision");
        return was;
    }

    /** Row-major C = alpha op(A) op(B) + beta C on CUDA operands (Blas checked shapes and bounds): cuBLAS, else fst_k_gemm. */
    static void gemm(boolean ta, boolean tb, long m, long n, long k, float alpha, Tensor a, long lda, Tensor b, long ldb, float beta, Tensor c, long ldc) {
        MatmulPrecision p = precision;
        if (p == MatmulPrecision.FP32 ? !noSgemm : !noGemmEx) {
            try {
                switch (p) {
                    case FP32 -> Native.cudaSgemm(ta, tb, m, n, k, alpha, ptr(a), lda, ptr(b), ldb, beta, ptr(c), ldc);
                    case TF32 -> Native.cudaGemmEx(ta, tb, m, n, k, alpha, ptr(a), Cuda.R_32F, lda, ptr(b), Cuda.R_32F, ldb, beta,
                            ptr(c), Cuda.R_32F, ldc, true);
                    case BF16 -> gemmBf16(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
                }
                return;
            } catch (CudaUnavailableException e) {
                if (!Cuda.isAvailable()) throw e;
                if (p == MatmulPrecision.FP32) noSgemm = true; else noGemmEx = true;   // not there (or not emulated): the kernel from now on
            }
        }
        Native.cudaGemm(ta, tb, m, n, k, alpha, ptr(a), lda, ptr(b), ldb, beta, ptr(c), ldc);
    }

    /** The BF16 precision: both operands rounded into packed bf16 copies (one kernel each), then cuBLAS GemmEx. */
    private static void gemmBf16(boolean ta, boolean tb, long m, long n, long k, float alpha, Tensor a, long lda, Tensor b, long ldb,
                                 float beta, Tensor c, long ldc) {
        long ra = ta ? k : m, ca = ta ? m : k, rb = tb ? n : k, cb = tb ? k : n;
        if (m == 0 || n == 0) return;
        try (Block a16 = Block.of(Math.max(2, 2 * ra * ca)); Block b16 = Block.of(Math.max(2, 2 * rb * cb))) {
            if (k > 0) {
                Native.cudaBf16Pad(ptr(a), ra, ca, lda, 1, a16.ptr(), ra, ca);
                Native.cudaBf16Pad(ptr(b), rb, cb, ldb, 1, b16.ptr(), rb, cb);
            }
            Native.cudaGemmEx(ta, tb, m, n, k, alpha, a16.ptr(), Cuda.R_16BF, Math.max(1, ca), b16.ptr(), Cuda.R_16BF, Math.max(1, cb), beta,
                    ptr(c), Cuda.R_32F, ldc, false);
        }
        roundOutput(c, m, n, ldc);
    }

    /** bf16 [rowsP, colsP] of the float32 CUDA matrix m (any strides), zero-padded, in a fresh device block. */
    static Block bf16Padded(Tensor m, long rowsP, long colsP) {
        Block shared = sharedBf16(m, rowsP, colsP);
        if (shared != null) return shared;
        Block b = Block.of(Math.max(2, 2 * rowsP * colsP));
        try {
            Native.cudaBf16Pad(ptr(m), m.shape[0], m.shape[1], m.strides[0], m.strides[1], b.ptr(), rowsP, colsP);
            return b;
        } catch (RuntimeException | Error e) {
            b.close();
            throw e;
        }
    }

    /** im2col of low.x() (a contiguous float32 CUDA batch) rounded into a fresh zero-padded bf16 [rowsP, colsP] block. */
    static Block im2colBf16(Lowering low, long rowsP, long colsP) {
        long[] g = low.geometry();
        Block b = Block.of(Math.max(2, 2 * rowsP * colsP));
        try {
            Native.cudaIm2colBf16(ptr(low.x()), g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], b.ptr(), rowsP, colsP);
            return b;
        } catch (RuntimeException | Error e) {
            b.close();
            throw e;
        }
    }

    /**
     * At BF16 precision on CUDA, with B = im2col(low.x()) lowered straight into bf16 by one kernel (no float32 im2col
     * matrix): c = a B (overwritten; Eq. 1: a [M, C*kh*kw], c [M, N*Ho*Wo]) or, transposed, c = a B^T + beta c (Eq. 3:
     * a [M, N*Ho*Wo], c [M, C*kh*kw]). a (any strides) is rounded into a packed bf16 copy; cuBLAS GemmEx accumulates and
     * writes float32; c has unit stride along its rows. The same values as BF16 {@link #setMatmulPrecision} on the
     * materialised columns.
     */
    public static void gemmLoweredBf16(Tensor a, Lowering low, boolean transposed, float beta, Tensor c) {
        require("gemmLoweredBf16", a, low.x(), c);
        int rows = low.rows(), cols = low.cols();
        int m = a.dim() == 2 ? a.shape[0] : -1, k = transposed ? cols : rows, n = transposed ? rows : cols;
        if (a.dim() != 2 || a.shape[1] != k || c.dim() != 2 || c.shape[0] != m || c.shape[1] != n || (n > 1 && c.strides[1] != 1))
            throw new IllegalArgumentException("shape mismatch: gemmLoweredBf16 " + Shape.str(a.shape) + " x im2col" + (transposed ? "^T" : "") + " ["
                    + rows + ", " + cols + "] into " + Shape.str(c.shape) + " (c needs unit stride along its rows)");
        c.markModified();   // once the arguments are checked: a refused call writes nothing
        if (m == 0 || n == 0) return;
        long ldc = m > 1 ? c.strides[0] : Math.max(1, n);
        if (k == 0) {   // an empty sum (no images): c = beta c
            if (beta == 1f) return;
            try (Tensor sc = unary("gemmLoweredBf16", MUL_SCALAR, beta, c)) { c.copyFrom(sc); }
            return;
        }
        // With alignLowered, operands whose rows do not start on 16 bytes are avoided; cuBLAS otherwise runs unaligned
        // kernels (run 30, H200: the stem's Eq. 1 0.99 ms and Eq. 3 2.0 ms, K = 147):
        // - Eq. 1's K is zero-padded to a multiple of 8 in W and the lowered rows (the added terms are products of zeros);
        // - Eq. 3 into a dW whose rows are not a multiple of 4 floats goes through a scratch with such rows, copied into c
        //   (with beta != 0, beta c is added after the product: one more rounding than cuBLAS's epilogue).
        final long kp = alignLowered && !transposed ? (k + 7) / 8 * 8 : k;
        final boolean scratch = alignLowered && transposed && (ldc % 4 != 0 || n % 4 != 0) && c.isContiguous();
        final long ldo = scratch ? (n + 3) / 4 * 4 : ldc;
        try (Tensor t = scratch ? Tensor.empty(Device.CUDA, DType.F32, m, (int) ldo) : null;
             Block a16 = bf16Padded(a, m, kp); Block b16 = im2colBf16(low, transposed ? rows : kp, cols)) {
            Native.cudaGemmEx(false, transposed, m, n, kp, 1f, a16.ptr(), Cuda.R_16BF, kp, b16.ptr(), Cuda.R_16BF, cols, scratch ? 0f : beta,
                    scratch ? ptr(t) : ptr(c), Cuda.R_32F, ldo, false);
            if (scratch) {
                try (Tensor tv = t.slice(1, 0, n)) {
                    if (beta == 0f) c.copyFrom(tv);
                    else try (Tensor bc = c.mul(beta); Tensor sum = bc.add(tv)) { c.copyFrom(sum); }
                }
            }
        }
        roundOutput(c, m, n, ldc);
    }

    /**
     * -Dfst4j.cuda.alignLowered=false: {@link #gemmLoweredBf16} hands cuBLAS its operands as they come even where a K
     * (Eq. 1) or a dW row (Eq. 3) is not a multiple of 16 bytes (an A/B switch; on by default).
     */
    static volatile boolean alignLowered = !"false".equals(System.getProperty("fst4j.cuda.alignLowered"));

    /** {@link #gemmLoweredBf16(Tensor, Lowering, boolean, float, Tensor)} for Eq. 1: c = a im2col(low.x()). */
    public static void gemmLoweredBf16(Tensor a, Lowering low, Tensor c) { gemmLoweredBf16(a, low, false, 0f, c); }

    /**
     * -Dfst4j.cuda.batchedNchw=false: a dense CUDA Eq. 1 at BF16 writes [Cout, N*Ho*Wo] and permutes it into NCHW, as
     * before session 41 (an A/B switch; on by default: {@link #gemmLoweredBf16Nchw} where {@link #loweredNchwBf16} allows).
     */
    static volatile boolean batchedNchw = !"false".equals(System.getProperty("fst4j.cuda.batchedNchw"));

    /** Sets the switch above; returns the previous setting. */
    public static boolean setBatchedNchw(boolean on) { boolean was = batchedNchw; batchedNchw = on; return was; }

    private static final java.util.concurrent.atomic.AtomicLong batchedNchwProducts = new java.util.concurrent.atomic.AtomicLong();

    /** How many products {@link #gemmLoweredBf16Nchw} has written (tests check the path is taken). */
    public static long batchedNchwProducts() { return batchedNchwProducts.get(); }

    /**
     * Whether {@link #gemmLoweredBf16Nchw} takes this lowering: switched on, BF16 GEMMs with float32 outputs, and an
     * image's Ho*Wo a multiple of 8, so that every image's bf16 columns and float32 output rows start on 16 bytes
     * (cuBLAS falls back to its slow unaligned kernels otherwise; a ResNet's 56x56 and 28x28 planes qualify, 14x14 and
     * 7x7 do not and keep the permute).
     */
    public static boolean loweredNchwBf16(Lowering low) {
        long[] g = low.geometry();
        return batchedNchw && precision == MatmulPrecision.BF16 && !bf16Outputs && (g[10] * g[11]) % 8 == 0;
    }

    /**
     * Eq. 1 written as NCHW: out [N, M, Ho, Wo] = a [M, C*kh*kw] x im2col(low.x()), one cuBLAS call of N products (one
     * per image: a times that image's Ho*Wo columns of the bf16 lowered matrix, into out's image), so no [M, N*Ho*Wo]
     * product and no permute after it. The values of {@link #gemmLoweredBf16(Tensor, Lowering, Tensor)} followed by the
     * permute, up to the order of cuBLAS's sums (the same bits on the emulator). Where {@link #loweredNchwBf16}.
     */
    public static void gemmLoweredBf16Nchw(Tensor a, Lowering low, Tensor out) {
        require("gemmLoweredBf16Nchw", a, low.x(), out);
        long[] g = low.geometry();
        int rows = low.rows(), cols = low.cols(), m = a.dim() == 2 ? a.shape[0] : -1;
        long n = g[0], l = g[10] * g[11];
        if (!loweredNchwBf16(low))
            throw new IllegalStateException("gemmLoweredBf16Nchw: not for this lowering or precision (see loweredNchwBf16)");
        if (a.dim() != 2 || a.shape[1] != rows || out.dim() != 4 || out.shape[0] != n || out.shape[1] != m || out.shape[2] != g[10]
                || out.shape[3] != g[11] || !out.isContiguous())
            throw new IllegalArgumentException("shape mismatch: gemmLoweredBf16Nchw " + Shape.str(a.shape) + " x im2col [" + rows + ", " + cols
                    + "] into " + Shape.str(out.shape) + " (out: contiguous [N, M, Ho, Wo])");
        out.markModified();
        if (m == 0 || n == 0 || l == 0) return;
        if (rows == 0) { out.fill(0); return; }   // an empty sum (no input channels)
        final long kp = (rows + 7) / 8 * 8;   // K zero-padded to 16 bytes of bf16, as gemmLoweredBf16 aligns it
        try (Block a16 = bf16Padded(a, m, kp); Block b16 = im2colBf16(low, kp, cols)) {
            Native.cudaGemmExBatched(false, false, m, l, kp, 1f, a16.ptr(), Cuda.R_16BF, kp, 0, b16.ptr(), Cuda.R_16BF, cols, l, 0f,
                    ptr(out), Cuda.R_32F, l, m * l, n, false);
        }
        batchedNchwProducts.incrementAndGet();
    }

    /**
     * -Dfst4j.cuda.igemm=true: a dense convolution's Eq. 1 at BF16 runs as one implicit-GEMM kernel (fst_cuda_conv_igemm:
     * no lowered matrix, the product written straight into NCHW) instead of im2col_bf16, cuBLAS and a permute. Off by
     * default until a device has timed it (gpu/step.sh's DENSE-igemm row).
     */
    static volatile boolean implicitGemm = "true".equals(System.getProperty("fst4j.cuda.igemm"));
    private static final java.util.concurrent.atomic.AtomicLong IGEMM_USES = new java.util.concurrent.atomic.AtomicLong();

    /**
     * -Dfst4j.cuda.igemmEq2=true: a dense stride-1 convolution's Eq. 2 at BF16 runs as the implicit-GEMM convolution of dY
     * with the transposed, tap-reversed weight ({@link #convBackwardInputImplicitGemmBf16}) instead of cuBLAS into bf16 and
     * col2im. Off by default until a device has timed it (gpu/step.sh's DENSE-igemm2 row).
     */
    static volatile boolean implicitGemmEq2 = "true".equals(System.getProperty("fst4j.cuda.igemmEq2"));
    private static final java.util.concurrent.atomic.AtomicLong IGEMM_EQ2_USES = new java.util.concurrent.atomic.AtomicLong();

    /** Switches {@link #convBackwardInputImplicitGemmBf16} for dense stride-1 convolutions; returns the previous setting. */
    public static boolean setImplicitGemmEq2(boolean on) { boolean was = implicitGemmEq2; implicitGemmEq2 = on; return was; }

    /** How many Eq. 2 products {@link #convBackwardInputImplicitGemmBf16} has run. */
    public static long implicitGemmEq2Uses() { return IGEMM_EQ2_USES.get(); }

    /** Whether a dense CUDA Eq. 2 of a stride-1 convolution with padding <= k - 1 takes {@link #convBackwardInputImplicitGemmBf16}. */
    public static boolean implicitGemmEq2On(int stride, int kernel, int padding) {
        return implicitGemmEq2 && precision == MatmulPrecision.BF16 && stride == 1 && padding <= kernel - 1;
    }

    /**
     * Eq. 2 of a stride-1 convolution as one implicit-GEMM kernel: dx [inputShape] = the convolution of dy [N, Cout, Ho, Wo]
     * (float32, rounded to bf16 as it is staged) with w^T tap-reversed (w [Cout, Cin, k, k] float32, rounded once by
     * fst_cuda_wflip16) at padding k - 1 - padding; fp32 accumulation, no [Cin*k*k, N*Ho*Wo] product and no col2im. The
     * values of W^T dY folded by col2im, up to the order of the sums and without rounding the product to bf16.
     */
    public static Tensor convBackwardInputImplicitGemmBf16(Tensor dy, Tensor w, int[] inputShape, int padding) {
        require("convBackwardInputImplicitGemmBf16", dy, w);
        int k = w.dim() == 4 ? w.shape[2] : -1, cout = w.dim() == 4 ? w.shape[0] : -1, cin = w.dim() == 4 ? w.shape[1] : -1;
        if (w.dim() != 4 || w.shape[3] != k || inputShape.length != 4 || inputShape[1] != cin || dy.dim() != 4 || dy.shape[0] != inputShape[0]
                || dy.shape[1] != cout || padding < 0 || padding > k - 1 || dy.shape[2] != inputShape[2] + 2 * padding - k + 1
                || dy.shape[3] != inputShape[3] + 2 * padding - k + 1)
            throw new IllegalArgumentException("shape mismatch: convBackwardInputImplicitGemmBf16 dy " + Shape.str(dy.shape) + ", w " + Shape.str(w.shape)
                    + ", input " + Shape.str(inputShape) + ", padding " + padding + " (stride 1, padding <= k - 1)");
        Tensor dx = Tensor.empty(Device.CUDA, DType.F32, inputShape);
        if (dx.numel() == 0) return dx;
        long kk = (long) cout * k * k;
        int q = k - 1 - padding;
        boolean cfast = cout % 16 == 0;   // K as (tap, co): one tap per 16 values of the gather
        try (Tensor wc = w.contiguous(); Tensor dyc = dy.contiguous(); Block w16 = Block.of(2L * cin * kk)) {
            Native.cudaWflip16(ptr(wc), cout, cin, k, k, w16.ptr(), kk, cfast);
            long[] g = { dy.shape[0], cout, dy.shape[2], dy.shape[3], k, k, 1, 1, q, q, inputShape[2], inputShape[3] };
            int rows = cfast ? warpgroupRows(cout, cin) : 0;
            if (rows == 0 || !warpgroupConv(dyc, g, w16.ptr(), kk, cin, null, 0, dx, rows))
                Native.cudaConvIgemm(ptr(dyc), g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], w16.ptr(), kk, cin, ptr(dx), cfast);
        } catch (RuntimeException | Error e) {
            dx.close();
            throw e;
        }
        IGEMM_EQ2_USES.incrementAndGet();
        return dx;
    }

    /**
     * -Dfst4j.cuda.igemmEq3=true: a convolution's Eq. 3 at BF16 (every lowered weight gradient: DENSE's, and the fixed mask's
     * kept half with its lowering at the kept positions) as one implicit-GEMM kernel over split ranges of positions
     * ({@link #weightGradImplicitBf16}) instead of im2col_bf16 and cuBLAS. Off until a device has timed it.
     */
    static volatile boolean implicitGemmEq3 = "true".equals(System.getProperty("fst4j.cuda.igemmEq3"));
    private static final java.util.concurrent.atomic.AtomicLong IGEMM_EQ3_USES = new java.util.concurrent.atomic.AtomicLong();

    /** Switches {@link #weightGradImplicitBf16}; returns the previous setting. */
    public static boolean setImplicitGemmEq3(boolean on) { boolean was = implicitGemmEq3; implicitGemmEq3 = on; return was; }

    /** How many weight gradients {@link #weightGradImplicitBf16} has computed. */
    public static long implicitGemmEq3Uses() { return IGEMM_EQ3_USES.get(); }

    /** Whether a lowered CUDA Eq. 3 takes {@link #weightGradImplicitBf16}: switched on, BF16 GEMMs, float32 outputs. */
    public static boolean implicitGemmEq3On() { return implicitGemmEq3 && precision == MatmulPrecision.BF16 && !bf16Outputs; }

    /**
     * Eq. 3 as one implicit-GEMM kernel: dw [M, C*kh*kw] (unit stride along its rows) = g im2col(low.x())^T + beta dw, g [M,
     * N*Ho*Wo] (any strides; rounded into a bf16 copy, or the shared one byChannel / the half-K gather made), x rounded to
     * bf16 as the kernel stages it, the positions split over blocks and their partial products added in order. The values
     * of {@link #gemmLoweredBf16} transposed, up to the order of the sums.
     */
    public static void weightGradImplicitBf16(Tensor g, Lowering low, float beta, Tensor dw) {
        require("weightGradImplicitBf16", g, low.x(), dw);
        long[] geo = low.geometry();
        int m = g.dim() == 2 ? g.shape[0] : -1, npix = low.cols(), k = low.rows();
        if (g.dim() != 2 || g.shape[1] != npix || dw.dim() != 2 || dw.shape[0] != m || dw.shape[1] != k || (k > 1 && dw.strides[1] != 1) || geo[12] != 0)
            throw new IllegalArgumentException("shape mismatch: weightGradImplicitBf16 " + Shape.str(g.shape) + " x im2col^T [" + npix + ", " + k
                    + "] into " + Shape.str(dw.shape) + " (dw needs unit stride along its rows; the lowering (c, kh, kw) order)");
        dw.markModified();
        if (m == 0 || k == 0) return;
        long ldd = m > 1 ? dw.strides[0] : k, splits = Native.cudaConvWgradSplits(m, k, npix, 0);
        try (Block g16 = bf16Padded(g, m, Math.max(1, npix)); Block ws = Block.of(Math.max(4, 4L * splits * m * k))) {
            // channels a multiple of 8: the kernel runs K channels fastest (one tap per thread's 8 values); dw comes back in order
            Native.cudaConvWgrad(ptr(low.x()), geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], geo[6], geo[7], geo[8], geo[9], geo[10], geo[11],
                    g16.ptr(), Math.max(1, npix), m, ws.ptr(), splits, ptr(dw), ldd, beta, geo[1] % 8 == 0);
        }
        IGEMM_EQ3_USES.incrementAndGet();
    }

    private static final java.util.concurrent.atomic.AtomicLong IGEMM_EQ3_FUSED = new java.util.concurrent.atomic.AtomicLong();

    /**
     * Eq. 3 as one implicit-GEMM kernel reading dY straight from NCHW (no by-channel copy): dw = g im2col(x)^T + beta dw with
     * dy [N, M, Ho, Wo] (float32; any layout, made contiguous) and, with kept, FST3's half K: g = dY's even positions per
     * plane after the IR shift (coeff 0: none), the lowering then the kept positions'; without, g = dY and the lowering all
     * positions. The values of the by-channel path ({@link #weightGradImplicitBf16} on byChannel's or the half-K gather's
     * bf16 copy), bit for bit.
     */
    public static void weightGradImplicitFromNchw(Tensor dy, Lowering low, boolean kept, float coeff, int shift, boolean circular, float beta, Tensor dw) {
        require("weightGradImplicitFromNchw", dy, low.x(), dw);
        long[] geo = low.geometry();
        int m = dy.dim() == 4 ? dy.shape[1] : -1, k = low.rows(), npix = low.cols();
        long plane = dy.dim() == 4 ? (long) dy.shape[2] * dy.shape[3] : 0, half = kept ? (plane + 1) / 2 : plane;
        if (dy.dim() != 4 || (long) dy.shape[0] * half != npix || dw.dim() != 2 || dw.shape[0] != m || dw.shape[1] != k
                || (k > 1 && dw.strides[1] != 1) || geo[12] != 0)
            throw new IllegalArgumentException("shape mismatch: weightGradImplicitFromNchw dy " + Shape.str(dy.shape) + (kept ? " (kept half)" : "")
                    + " x the lowering [" + k + ", " + npix + "] into " + Shape.str(dw.shape));
        dw.markModified();
        if (m == 0 || k == 0) return;
        long ldd = m > 1 ? dw.strides[0] : k, splits = Native.cudaConvWgradSplits(m, k, npix, 0);
        try (Tensor dyc = dy.contiguous(); Block ws = Block.of(Math.max(4, 4L * splits * m * k))) {
            Native.cudaConvWgradFrom(ptr(low.x()), geo[0], geo[1], geo[2], geo[3], geo[4], geo[5], geo[6], geo[7], geo[8], geo[9], geo[10], geo[11],
                    ptr(dyc), plane, plane, (long) m * plane, kept, coeff, shift, circular, m, ws.ptr(), splits, ptr(dw), ldd, beta, geo[1] % 8 == 0);
        }
        IGEMM_EQ3_USES.incrementAndGet();
        IGEMM_EQ3_NCHW.incrementAndGet();
        if (kept) IGEMM_EQ3_FUSED.incrementAndGet();
    }
    private static final java.util.concurrent.atomic.AtomicLong IGEMM_EQ3_NCHW = new java.util.concurrent.atomic.AtomicLong();

    /** How many weight gradients {@link #weightGradImplicitFromNchw} has computed (no by-channel copy of dY). */
    public static long implicitGemmEq3NchwUses() { return IGEMM_EQ3_NCHW.get(); }

    /** How many half-K weight gradients {@link #weightGradImplicitFromNchw} has computed (the shift-gather fused in). */
    public static long implicitGemmEq3FusedUses() { return IGEMM_EQ3_FUSED.get(); }

    /** Switches {@link #convImplicitGemmBf16} for dense convolutions; returns the previous setting. */
    public static boolean setImplicitGemm(boolean on) { boolean was = implicitGemm; implicitGemm = on; return was; }

    /** How many convolutions {@link #convImplicitGemmBf16} has run (for tests that check the path). */
    public static long implicitGemmUses() { return IGEMM_USES.get(); }

    /** Whether a dense CUDA Eq. 1 takes {@link #convImplicitGemmBf16}: switched on, BF16 GEMMs, float32 outputs. */
    public static boolean implicitGemmOn() { return implicitGemm && precision == MatmulPrecision.BF16 && !bf16Outputs; }

    /**
     * -Dfst4j.cuda.wgmma=true: the implicit-GEMM convolutions switched on above (Eq. 1 of a dense convolution, the dense and
     * the 2:4 Eq. 2 of a stride-1 one as a convolution of dY) run on Hopper's warpgroup tensor cores ({@link #warpgroupConv}:
     * the input, x or dY, converted once to bf16 NHWC, then fst_cuda_wgconv, wgmma / wgmma.sp) wherever the channels fit its
     * tiles; elsewhere, and on a device build without sm_90a code, the mma kernels as before. Off until a device has timed it
     * (gpu/step.sh's -wg rows). The weight operands are the same bf16 words in the same (tap, channel) K order.
     */
    static volatile boolean warpgroup = "true".equals(System.getProperty("fst4j.cuda.wgmma"));
    /** 0: not yet known whether this device build runs the warpgroup kernels; 1: it does; -1: it does not (then never tried again). */
    private static volatile int warpgroupState;
    private static final java.util.concurrent.atomic.AtomicLong WG_USES = new java.util.concurrent.atomic.AtomicLong();

    /** Switches the warpgroup kernels for the implicit-GEMM convolutions; returns the previous setting. */
    public static boolean setWarpgroup(boolean on) { boolean was = warpgroup; warpgroup = on; return was; }

    /** How many convolutions {@link #warpgroupConv} has run on the warpgroup tensor cores. */
    public static long warpgroupUses() { return WG_USES.get(); }

    /** Whether a first call found that this device build has no sm_90a code (the warpgroup kernels then stay off). */
    public static boolean warpgroupUnavailable() { return warpgroupState < 0; }

    /**
     * The warpgroup tile for a convolution of c input and m output channels: 128 output channels (two warpgroups, K slices
     * of 32 channels at one tap), 64 (one warpgroup, slices of 64), or 0 where neither fits or the kernels are off.
     */
    static int warpgroupRows(long c, long m) {
        if (!warpgroup || warpgroupState < 0) return 0;
        if (m % 128 == 0 && c % 32 == 0) return 128;
        if (m % 64 == 0 && c % 64 == 0) return 64;
        return 0;
    }

    /**
     * out [n, m, ho, wo] float32 NCHW (contiguous, overwritten) = the convolution of x [n, c, h, w] (float32, contiguous)
     * with w16 (bf16 [m, ldw], K in (kh, kw, c) order; with meta, fst_cuda_prune24's words along that K, its kept values) at
     * geometry g = {n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo}, on the warpgroup tile of rows output channels
     * ({@link #warpgroupRows}). x is rounded into a bf16 NHWC copy first. False (nothing written) where this device build
     * has no sm_90a code: the first call finds out (one 4-byte read back), switches the kernels off for the process and
     * the caller takes the mma kernel.
     */
    static boolean warpgroupConv(Tensor x, long[] g, MemorySegment w16, long ldw, long m, MemorySegment meta, long ldm, Tensor out, int rows) {
        try (Block xh = Block.of(2L * g[0] * g[1] * g[2] * g[3]); Block ok = Block.of(4)) {
            Native.cudaNhwc16(ptr(x), g[0], g[1], g[2], g[3], xh.ptr());
            Native.cudaWgconv(xh.ptr(), g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], w16, ldw, m, ptr(out), 0f,
                    meta == null ? MemorySegment.NULL : meta, ldm, ok.ptr(), rows);
            if (warpgroupState == 0) {
                boolean ran = intsToHost(ok.ptr(), 1)[0] == 1;
                warpgroupState = ran ? 1 : -1;
                if (!ran) {
                    System.err.println("fst4j: -Dfst4j.cuda.wgmma=true, but this device build has no sm_90a code (the warpgroup kernels need a "
                            + "Hopper GPU and nvcc's sm_90a target): the implicit-GEMM convolutions stay on the mma kernels");
                    return false;
                }
            }
        }
        WG_USES.incrementAndGet();
        return true;
    }

    /**
     * Eq. 1 as one implicit-GEMM kernel: out [N, M, Ho, Wo] (contiguous, overwritten) = a im2col(low.x()) with a [M,
     * C*kh*kw] (any strides) rounded into a bf16 copy (with K reordered channels fastest where C is a multiple of 16) and x
     * rounded to bf16 as the kernel stages it; fp32 accumulation. The values of {@link #gemmLoweredBf16} followed by the
     * permute into NCHW, up to the order of the sums.
     */
    public static void convImplicitGemmBf16(Tensor a, Lowering low, Tensor out) {
        require("convImplicitGemmBf16", a, low.x(), out);
        long[] g = low.geometry();
        int k = low.rows(), m = a.dim() == 2 ? a.shape[0] : -1;
        if (a.dim() != 2 || a.shape[1] != k || out.dim() != 4 || out.shape[0] != g[0] || out.shape[1] != m || out.shape[2] != g[10]
                || out.shape[3] != g[11] || !out.isContiguous() || g[12] != 0)
            throw new IllegalArgumentException("shape mismatch: convImplicitGemmBf16 " + Shape.str(a.shape) + " x im2col [" + k + ", "
                    + low.cols() + "] into " + Shape.str(out.shape) + " (needs a contiguous [" + g[0] + ", " + m + ", " + g[10] + ", " + g[11] + "])");
        out.markModified();
        if (out.numel() == 0) return;
        if (g[1] % 16 == 0) {
            // channels a multiple of 16: W's K reordered (kh, kw, c) so that the kernel's gather takes one tap per 16 values
            try (Tensor ac = a.contiguous(); Block a16 = Block.of(2L * m * k)) {
                Native.cudaWtap16(ptr(ac), m, g[1], g[4] * g[5], a16.ptr(), k);
                int rows = warpgroupRows(g[1], m);
                if (rows == 0 || !warpgroupConv(low.x(), g, a16.ptr(), k, m, null, 0, out, rows))
                    Native.cudaConvIgemm(ptr(low.x()), g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], a16.ptr(), k, m, ptr(out), true);
            }
        } else {
            try (Block a16 = bf16Padded(a, m, k)) {
                Native.cudaConvIgemm(ptr(low.x()), g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], a16.ptr(), k, m, ptr(out));
            }
        }
        IGEMM_USES.incrementAndGet();
    }

    // ---------------------------------------------------------------- convolution (whole batch: one im2col, one GEMM)

    /** cols [K, N*L] of contiguous x (fst_k_im2col; fst_k_im2col_dil where the geometry is dilated). */
    static Tensor im2col(Tensor x, Conv.Geom g) {
        require("im2col", x);
        long nl = g.nl();
        // an image without values (C, H or W 0; the kernels refuse such a geometry): every column is padding, as on the CPU
        boolean blank = g.imageSize() == 0;
        Tensor cols = blank ? Tensor.zeros(Device.CUDA, DType.F32, g.k(), Math.toIntExact(nl)) : Tensor.empty(Device.CUDA, DType.F32, g.k(), Math.toIntExact(nl));
        try (Tensor xc = x.contiguous()) {
            if (nl > 0 && !blank && g.dilated())
                Native.cudaIm2colDilated(ptr(xc), g.n(), g.c(), g.h(), g.w(), g.kh(), g.kw(), g.sh(), g.sw(), g.ph(), g.pw(), g.dh(), g.dw(), g.ho(), g.wo(), ptr(cols), nl);
            else if (nl > 0 && !blank)
                Native.cudaIm2col(ptr(xc), g.n(), g.c(), g.h(), g.w(), g.kh(), g.kw(), g.sh(), g.sw(), g.ph(), g.pw(), g.ho(), g.wo(), ptr(cols), nl);
        } catch (RuntimeException e) {
            cols.close();
            throw e;
        }
        return cols;
    }

    /** im2col at output positions (validated by Conv) of every image: [K, N*positions.length]. */
    static Tensor im2colAt(Tensor x, int[] positions, Conv.Geom g) {
        require("im2colAt", x);
        long np = g.columns(positions.length);
        Tensor out = Tensor.empty(Device.CUDA, DType.F32, g.k(), Math.toIntExact(np));
        if (np == 0) return out;
        try (Tensor xc = x.contiguous(); Block pos = Block.of(4L * positions.length); Arena arena = Arena.ofConfined()) {
            Cuda.copyToDevice(pos.ptr(), arena.allocateFrom(JAVA_INT, positions), 4L * positions.length);
            Native.cudaIm2colAt(ptr(xc), g.n(), g.c(), g.h(), g.w(), g.kh(), g.kw(), g.sh(), g.sw(), g.ph(), g.pw(), g.ho(), g.wo(),
                    pos.ptr(), positions.length, ptr(out), np);
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        return out;
    }

    /** Rows.gather on the device: [n, d] = w's rows at idx (fst_k_embed_gather). */
    static Tensor embedGather(Tensor w, int[] idx) {
        require("embedding", w);
        if (idx.length == 0 || w.shape[1] == 0) return embedGather(w, MemorySegment.NULL, idx.length);   // reads no index
        try (Block dev = Block.of(4L * idx.length); Arena arena = Arena.ofConfined()) {
            Cuda.copyToDevice(dev.ptr(), arena.allocateFrom(JAVA_INT, idx), 4L * idx.length);
            return embedGather(w, dev.ptr(), idx.length);
        }
    }

    /** {@link #embedGather} with the n indices already on the device and checked (a {@link RowIndex}'s, or the ones the int[] form uploads). */
    static Tensor embedGather(Tensor w, MemorySegment idx, int n) {
        require("embedding", w);
        int v = w.shape[0], d = w.shape[1];
        Tensor out = Tensor.empty(Device.CUDA, DType.F32, n, d);
        if (n == 0 || d == 0) return out;
        try (Tensor wc = w.contiguous()) {
            Native.cudaEmbedGather(ptr(wc), v, d, idx, n, ptr(out));
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        return out;
    }

    /** {@link #embedScatter} with the CSR already on the device (a {@link RowIndex}'s, or the int[] form's: off [rows + 1], pos [max(1, n)]). */
    static Tensor embedScatter(Tensor g, MemorySegment off, MemorySegment pos, int rows) {
        require("embedding backward", g);
        int n = g.shape[0], d = g.shape[1];
        Tensor out = Tensor.empty(Device.CUDA, DType.F32, rows, d);
        if (d == 0) return out;
        try (Tensor gc = g.contiguous()) {
            Native.cudaEmbedScatter(ptr(gc), n, d, off, pos, rows, ptr(out));
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        return out;
    }

    /** Rows.scatterAdd on the device: [rows, d] from g [n, d] by the CSR off [rows + 1], pos [n] (fst_k_embed_scatter). */
    static Tensor embedScatter(Tensor g, int[] off, int[] pos, int rows) {
        require("embedding backward", g);
        int n = g.shape[0];
        if (g.shape[1] == 0) return embedScatter(g, MemorySegment.NULL, MemorySegment.NULL, rows);   // reads no table
        // pos as the launcher takes it, int32[n]: the CSR fills its first pos.length (the padding row's positions are not
        // listed), the kernel reads no further, but the launcher checks all n lie in one allocation
        try (Block offs = Block.of(4L * off.length); Block ps = Block.of(4L * Math.max(1, Math.max(n, pos.length)));
             Arena arena = Arena.ofConfined()) {
            Cuda.copyToDevice(offs.ptr(), arena.allocateFrom(JAVA_INT, off), 4L * off.length);
            if (pos.length > 0) Cuda.copyToDevice(ps.ptr(), arena.allocateFrom(JAVA_INT, pos), 4L * pos.length);
            return embedScatter(g, offs.ptr(), ps.ptr(), rows);
        }
    }

    /** dx [N, C, H, W] = col2im of cols [K, N*L] (fst_k_col2im, or fst_k_col2im_dil where dilated: a gather in the CPU's order). */
    static Tensor col2im(Tensor cols, Conv.Geom g) {
        require("col2im", cols);
        Tensor dx = Tensor.empty(Device.CUDA, DType.F32, g.n(), g.c(), g.h(), g.w());
        try (Tensor cc = cols.contiguous()) {
            if (dx.numel() > 0 && g.dilated())
                Native.cudaCol2imDilated(ptr(cc), (long) g.n() * g.l(), g.n(), g.c(), g.h(), g.w(), g.kh(), g.kw(), g.sh(), g.sw(), g.ph(), g.pw(),
                        g.dh(), g.dw(), g.ho(), g.wo(), ptr(dx));
            else if (dx.numel() > 0) Native.cudaCol2im(ptr(cc), (long) g.n() * g.l(), g.n(), g.c(), g.h(), g.w(), g.kh(), g.kw(), g.sh(), g.sw(), g.ph(), g.pw(),
                    g.ho(), g.wo(), ptr(dx));
        } catch (RuntimeException e) {
            dx.close();
            throw e;
        }
        return dx;
    }

    /** dx [inputShape] = col2im of the bf16 columns cols16 ([K, N*L] with row stride ld) (fst_cuda_col2im_bf16). */
    static Tensor col2imBf16(Block cols16, long ld, Conv.Geom g) {
        Tensor dx = Tensor.empty(Device.CUDA, DType.F32, g.n(), g.c(), g.h(), g.w());
        try {
            if (dx.numel() > 0) Native.cudaCol2imBf16(cols16.ptr(), ld, g.n(), g.c(), g.h(), g.w(), g.kh(), g.kw(), g.sh(), g.sw(), g.ph(), g.pw(),
                    g.ho(), g.wo(), ptr(dx));
            return dx;
        } catch (RuntimeException | Error e) {
            dx.close();
            throw e;
        }
    }

    /**
     * At BF16 precision: dx = col2im(a b) for a convolution's Eq. 2 (a = W^T [C*kh*kw, Cout], any strides; b = dY
     * [Cout, N*Ho*Wo]) with the product written in bf16 by cuBLAS and folded back from bf16 (fst_cuda_col2im_bf16):
     * the [C*kh*kw, N*Ho*Wo] product, the largest matrix of a convolution's step, is written and read at half the bytes
     * and never widened. Its values carry one bf16 rounding, as autocast's bf16 input gradients do and as the 2:4 path's
     * ({@link CudaSpmm#timesCol2im}) do where cuSPARSELt writes bf16, so that the dense and 2:4 steps round alike.
     */
    public static Tensor gemmCol2imBf16(Tensor a, Tensor b, int[] inputShape, int k, int stride, int padding) {
        require("gemmCol2imBf16", a, b);
        Conv.Geom g = Conv.Geom.of("col2im", inputShape, k, k, stride, stride, padding, padding);
        long m = a.shape[0], kk = a.shape[1], n = b.shape[1];
        if (a.dim() != 2 || b.dim() != 2 || b.shape[0] != kk || m != g.k() || n != (long) g.n() * g.l())
            throw new IllegalArgumentException("shape mismatch: gemmCol2imBf16 " + Shape.str(a.shape) + " x " + Shape.str(b.shape) + " for input " + Shape.str(inputShape));
        try (Block a16 = bf16Padded(a, m, kk); Block b16 = bf16Padded(b, kk, n); Block c16 = Block.of(Math.max(2, 2 * m * n))) {
            if (m > 0 && n > 0)
                Native.cudaGemmEx(false, false, m, n, kk, 1f, a16.ptr(), Cuda.R_16BF, Math.max(1, kk), b16.ptr(), Cuda.R_16BF, Math.max(1, n), 0f,
                        c16.ptr(), Cuda.R_16BF, Math.max(1, n), false);
            return col2imBf16(c16, Math.max(1, n), g);
        }
    }

    /**
     * The bf16 rounding of the matrix last made by {@link #byChannel} on this thread, while it is open: Eq. 2's and
     * Eq. 3's bf16 GEMMs (DENSE: both; 2:4: Eq. 2, where its padding adds nothing) read it instead of rounding dY again.
     */
    private record SharedBf16(Tensor t, Block b16) {}
    private static final ThreadLocal<List<SharedBf16>> SHARED = ThreadLocal.withInitial(ArrayList::new);
    /** -Dfst4j.cuda.shareBf16=false: byChannel and the half-K gather write float32 only and every GEMM rounds its own operand (an A/B switch). */
    static volatile boolean shareBf16 = !"false".equals(System.getProperty("fst4j.cuda.shareBf16"));
    /** Switches {@link #byChannel}'s shared bf16 copy (on by default; -Dfst4j.cuda.shareBf16=false); returns the previous setting. */
    public static boolean setShareBf16(boolean on) { boolean was = shareBf16; shareBf16 = on; return was; }

    /** The shared bf16 copy of exactly m (same storage, offset, shape and strides) unpadded, borrowed; else null. */
    private static Block sharedBf16(Tensor m, long rowsP, long colsP) {
        if (m.dim() != 2 || rowsP != m.shape[0] || colsP != m.shape[1]) return null;
        for (SharedBf16 s : SHARED.get()) {
            Tensor t = s.t();
            if (t.storage != m.storage || t.offset != m.offset || !Arrays.equals(t.shape, m.shape) || !Arrays.equals(t.strides, m.strides)) continue;
            SHARED_USES.incrementAndGet();
            return new Block(s.b16().ptr(), s.b16().bytes(), false);
        }
        return null;
    }

    /** t (open) with its bf16 rounding b16 (owned from now on) as a {@link SharedOperand} registered on this thread. */
    private static SharedOperand share(Tensor t, Block b16) {
        SharedBf16 s = new SharedBf16(t, b16);
        List<SharedBf16> list = SHARED.get();
        list.add(s);
        return new SharedOperand(t, () -> {
            list.remove(s);
            s.b16().close();
        });
    }
    private static final java.util.concurrent.atomic.AtomicLong SHARED_USES = new java.util.concurrent.atomic.AtomicLong();
    /** How many GEMM operands borrowed a shared bf16 copy so far (tests check the path is taken). */
    public static long sharedBf16Uses() { return SHARED_USES.get(); }

    /**
     * dy [n, c, plane...] (a contiguous CUDA batch) as the GEMM operand [c, n * plane], float32, in one kernel that also
     * writes its bf16 rounding where the GEMMs run at BF16 (and {@link #shareBf16}): while the returned handle is open,
     * {@link #bf16Padded} of that tensor borrows the copy. Closing the handle closes the tensor and frees the copy.
     */
    static SharedOperand byChannel(Tensor dy, int n, int c, int plane) {
        require("byChannel", dy);
        if ((long) n * plane > Integer.MAX_VALUE)   // Conv.byChannel checks it too; the kernel trusts this tensor's size
            throw new IllegalArgumentException("byChannel: " + n + " x " + plane + " columns a row, past 2^31 - 1");
        Tensor out = Tensor.empty(Device.CUDA, DType.F32, c, n * plane);
        return writeShared(dy, out, true, (src, b16) -> Native.cudaByChannel(src, n, c, plane, ptr(out), b16));
    }

    /**
     * out (fresh) written from src (dy made contiguous) by one kernel call, which also writes out's bf16 rounding into
     * b16 where shareable, the GEMMs run at BF16 and {@link #shareBf16} (else b16 is NULL): the pair as a
     * {@link SharedOperand}. On failure both are freed.
     */
    private static SharedOperand writeShared(Tensor dy, Tensor out, boolean shareable, java.util.function.BiConsumer<MemorySegment, MemorySegment> kernel) {
        Block b16 = null;
        try (Tensor src = dy.contiguous()) {
            if (shareable && shareBf16 && precision == MatmulPrecision.BF16 && out.numel() > 0) b16 = Block.of(2 * out.numel());
            kernel.accept(ptr(src), b16 == null ? MemorySegment.NULL : b16.ptr());
        } catch (RuntimeException | Error e) {
            out.close();
            if (b16 != null) b16.close();
            throw e;
        }
        return b16 == null ? SharedOperand.of(out) : share(out, b16);
    }

    /** y = conv(x, w) + bias (Conv checked the shapes): im2col, W [Cout, K] x cols, [Cout, N, L] -> [N, Cout, L], + bias. */
    static Tensor conv2d(Tensor x, Tensor w, Tensor bias, Conv.Geom g) {
        require("conv2d", x, w, bias);
        int cout = w.shape[0], k = g.k(), l = g.l();
        Tensor out = Tensor.empty(Device.CUDA, DType.F32, g.n(), cout, g.ho(), g.wo());
        if (out.numel() == 0) return out;
        try (Tensor cols = im2col(x, g); Tensor wc = w.contiguous(); Tensor wm = wc.reshape(cout, k);
             Tensor y2 = Tensor.empty(Device.CUDA, DType.F32, cout, g.nl());
             Tensor y3 = y2.reshape(cout, g.n(), l); Tensor yp = y3.permute(1, 0, 2); Tensor o3 = out.reshape(g.n(), cout, l)) {
            Blas.gemm(1f, wm, cols, 0f, y2);
            o3.copyFrom(yp);
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        if (bias == null) return out;
        try (Tensor o = out; Tensor b4 = bias.reshape(1, cout, 1, 1)) { return o.add(b4); }
    }

    /** dx = col2im(W^T dY) (Conv checked the shapes). */
    static Tensor conv2dBackwardInput(Tensor dy, Tensor w, Conv.Geom g) {
        require("conv2dBackwardInput", dy, w);
        int cout = w.shape[0], k = g.k(), l = g.l();
        g.nl();   // refuses a row of N * L past 2^31 - 1 before any kernel runs
        if (dy.numel() == 0) return Tensor.zeros(Device.CUDA, DType.F32, g.n(), g.c(), g.h(), g.w());
        try (SharedOperand d2 = byChannel(dy, g.n(), cout, l); Tensor wc = w.contiguous(); Tensor wm = wc.reshape(cout, k);
             Tensor wt = wm.t(); Tensor dcols = Tensor.empty(Device.CUDA, DType.F32, k, g.nl())) {
            Blas.gemm(1f, wt, d2.tensor(), 0f, dcols);
            return col2im(dcols, g);
        }
    }

    /** dW = dY [Cout, N*L] x cols^T (Conv checked the shapes). */
    static Tensor conv2dBackwardWeight(Tensor dy, Tensor x, int[] weightShape, Conv.Geom g) {
        require("conv2dBackwardWeight", dy, x);
        int cout = weightShape[0], k = g.k(), l = g.l();
        g.nl();   // refuses a row of N * L past 2^31 - 1 before any kernel runs
        Tensor dw = Tensor.zeros(Device.CUDA, DType.F32, weightShape);
        if (dy.numel() == 0) return dw;
        try (SharedOperand d2 = byChannel(dy, g.n(), cout, l); Tensor cols = im2col(x, g); Tensor ct = cols.t();
             Tensor dwm = dw.reshape(cout, k)) {
            Blas.gemm(1f, d2.tensor(), ct, 0f, dwm);
        } catch (RuntimeException e) {
            dw.close();
            throw e;
        }
        return dw;
    }

    static Tensor conv2dBackwardBias(Tensor dy) {
        require("conv2dBackwardBias", dy);
        return sum(dy, false, new int[] { 0, 2, 3 }, false);
    }

    // ---------------------------------------------------------------- reductions

    /** A reduction's kept axes (shape, a's strides) and reduced axes (shape, strides), in a's order. */
    private record Axes(long[] ks, long[] kst, long[] rs, long[] rst) {
        static Axes of(Tensor a, boolean[] m) {
            int kept = 0;
            for (boolean r : m) if (!r) kept++;
            long[] ks = new long[kept], kst = new long[kept], rs = new long[a.dim() - kept], rst = new long[a.dim() - kept];
            for (int d = 0, i = 0, j = 0; d < a.dim(); d++) {
                if (m[d]) { rs[j] = a.shape[d]; rst[j++] = a.strides[d]; }
                else { ks[i] = a.shape[d]; kst[i++] = a.strides[d]; }
            }
            return new Axes(ks, kst, rs, rst);
        }
    }

    static Tensor sum(Tensor a, boolean keepDim, int[] axes, boolean mean) {
        require(mean ? "mean" : "sum", a);
        boolean[] m = Reduce.mask(axes, a.dim());
        Axes x = Axes.of(a, m);
        Tensor out = Tensor.empty(Device.CUDA, DType.F32, keepDim ? Reduce.keptShape(a.shape, m) : Reduce.dropShape(a.shape, m));
        long nred = out.numel() == 0 ? 0 : a.numel() / out.numel();
        // long sums: CUDA_PARTS strided partial sums per output, then their ordered sum (deterministic)
        try (Block work = nred > Native.CUDA_PARTS ? Block.of(8L * out.numel() * Native.CUDA_PARTS) : null) {
            Native.cudaSum(ptr(a), x.ks(), x.kst(), x.rs(), x.rst(), mean, ptr(out), work == null ? MemorySegment.NULL : work.ptr());
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        return out;
    }

    /**
     * Reduce.max (argmax false: the values over the axes of mask m) or Reduce.argmax (argmax true: m one axis, the index
     * along it as float32), the CPU's scan and choice (fst_cuda_argmax), into outShape. Reduce checked the arguments
     * (no empty reduction).
     */
    static Tensor max(Tensor a, boolean[] m, int[] outShape, boolean argmax) {
        String op = argmax ? "argmax" : "max";
        require(op, a);
        Axes x = Axes.of(a, m);
        Tensor out = Tensor.empty(Device.CUDA, DType.F32, outShape);
        long nout = out.numel(), nred = nout == 0 ? 0 : a.numel() / nout;
        boolean parts = nred > Native.CUDA_PARTS;
        try (Block work = parts ? Block.of(8L * nout * Native.CUDA_PARTS) : null; Block iwork = parts ? Block.of(8L * nout * Native.CUDA_PARTS) : null) {
            Native.cudaArgmax(ptr(a), x.ks(), x.kst(), x.rs(), x.rst(), !argmax, argmax ? MemorySegment.NULL : ptr(out), argmax ? ptr(out) : MemorySegment.NULL,
                    parts ? work.ptr() : MemorySegment.NULL, parts ? iwork.ptr() : MemorySegment.NULL);
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        return out;
    }

    /** Reduce.var on CUDA: the CPU's two passes (fst_cuda_var), sum (x - mean)^2 / max(0, n - correction). */
    static Tensor var(Tensor a, boolean keepDim, int correction, boolean[] m) {
        require("var", a);
        Axes x = Axes.of(a, m);
        Tensor out = Tensor.empty(Device.CUDA, DType.F32, keepDim ? Reduce.keptShape(a.shape, m) : Reduce.dropShape(a.shape, m));
        long nout = out.numel(), nred = nout == 0 ? 0 : a.numel() / nout;
        try (Block work = nred > Native.CUDA_PARTS ? Block.of(8L * nout * (Native.CUDA_PARTS + 1)) : null) {
            Native.cudaVar(ptr(a), x.ks(), x.kst(), x.rs(), x.rst(), correction, ptr(out), work == null ? MemorySegment.NULL : work.ptr());
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        return out;
    }

    // ---------------------------------------------------------------- pooling

    /** Max pool (geometry checked by Pool); the indices come back to the host for Pool.MaxPool2d's int[]. */
    static Pool.MaxPool2d maxPool2d(Tensor x, Conv.Geom g) {
        require("maxPool2d", x);
        long outN = (long) g.n() * g.c() * g.ho() * g.wo();
        Tensor out = Tensor.empty(Device.CUDA, DType.F32, g.n(), g.c(), g.ho(), g.wo());
        Block idx = Block.of(Math.max(4, 4 * outN));
        try (Tensor xc = x.contiguous()) {
            if (outN > 0) Native.cudaMaxPool(ptr(xc), g.n(), g.c(), g.h(), g.w(), g.kh(), g.kw(), g.sh(), g.sw(), g.ph(), g.pw(), g.ho(), g.wo(), ptr(out), idx.ptr());
            return new Pool.MaxPool2d(out, new Pool.DeviceIndices(idx, outN, g));   // the indices stay on the device
        } catch (RuntimeException e) {
            out.close();
            idx.close();
            throw e;
        }
    }

    /** count int32 values from device memory to a host array. */
    static int[] intsToHost(MemorySegment device, long count) {
        if (count == 0) return new int[0];
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(JAVA_INT, count);
            Cuda.copyToHost(host, device, 4 * count);
            return host.toArray(JAVA_INT);
        }
    }

    /** Max pool backward from the indices the CUDA forward left on the device (shapes checked by Pool). */
    static Tensor maxPool2dBackward(Tensor dy, Pool.DeviceIndices indices, int[] inputShape) {
        require("maxPool2dBackward", dy);
        long plane = (long) inputShape[2] * inputShape[3], outPlane = (long) dy.shape[2] * dy.shape[3];
        Conv.Geom g = indices.geom();
        // The forward's indices lie in its own plane of h*w; into a smaller plane some may not fit, which the scatter kernel
        // would skip silently where the CPU refuses them: read them back and take the host indices' validated path
        if ((long) g.h() * g.w() > plane) return maxPool2dBackward(dy, indices.toArray(), inputShape);
        Tensor dx = Tensor.empty(Device.CUDA, DType.F32, inputShape);
        if (dx.numel() == 0) return dx;   // no channels: the kernels refuse C = 0
        try (Tensor dyc = dy.contiguous()) {
            if (g.n() == inputShape[0] && g.c() == inputShape[1] && g.h() == inputShape[2] && g.w() == inputShape[3] && g.ho() * g.wo() == outPlane)
                Native.cudaMaxPoolBackward(ptr(dyc), indices.ptr(), g.n(), g.c(), g.h(), g.w(), g.kh(), g.kw(), g.sh(), g.sw(), g.ph(), g.pw(), g.ho(), g.wo(), ptr(dx));
            else   // not the forward's shapes (Pool checked them against the indices' count): the geometry-free scatter
                Native.cudaMaxPoolBackward(ptr(dyc), indices.ptr(), (long) inputShape[0] * inputShape[1], plane, outPlane, ptr(dx));
        } catch (RuntimeException e) {
            dx.close();
            throw e;
        }
        return dx;
    }

    /** Max pool backward (shapes checked by Pool); indices are validated here, then uploaded. */
    static Tensor maxPool2dBackward(Tensor dy, int[] indices, int[] inputShape) {
        require("maxPool2dBackward", dy);
        long plane = (long) inputShape[2] * inputShape[3], outPlane = (long) dy.shape[2] * dy.shape[3];
        for (int ix : indices)
            if (ix < 0 || ix >= plane) throw new IllegalArgumentException("maxPool2dBackward: index " + ix + " out of range for input " + Shape.str(inputShape));
        Tensor dx = Tensor.empty(Device.CUDA, DType.F32, inputShape);
        try (Tensor dyc = dy.contiguous(); Block idx = Block.of(4L * indices.length); Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(JAVA_INT, Math.max(1, indices.length));
            MemorySegment.copy(indices, 0, host, JAVA_INT, 0, indices.length);
            Cuda.copyToDevice(idx.ptr(), host, 4L * indices.length);
            Native.cudaMaxPoolBackward(ptr(dyc), idx.ptr(), (long) inputShape[0] * inputShape[1], plane, outPlane, ptr(dx));
        } catch (RuntimeException e) {
            dx.close();
            throw e;
        }
        return dx;
    }

    static Tensor adaptiveAvgPool2d(Tensor x, int outH, int outW) {
        require("adaptiveAvgPool2d", x);
        int n = x.shape[0], c = x.shape[1];
        Tensor out = Tensor.empty(Device.CUDA, DType.F32, n, c, outH, outW);
        try (Tensor xc = x.contiguous()) {
            Native.cudaAdaptiveAvgPool(ptr(xc), n, c, x.shape[2], x.shape[3], outH, outW, ptr(out));
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        return out;
    }

    static Tensor adaptiveAvgPool2dBackward(Tensor dy, int[] inputShape) {
        require("adaptiveAvgPool2dBackward", dy);
        Tensor dx = Tensor.empty(Device.CUDA, DType.F32, inputShape);
        try (Tensor dyc = dy.contiguous()) {
            Native.cudaAdaptiveAvgPoolBackward(ptr(dyc), inputShape[0], inputShape[1], inputShape[2], inputShape[3], dy.shape[2], dy.shape[3], ptr(dx));
        } catch (RuntimeException e) {
            dx.close();
            throw e;
        }
        return dx;
    }

    // ---------------------------------------------------------------- batch norm

    /** A per-channel vector as the kernels read it: contiguous (a copy when it is a strided view), or null. */
    private static Tensor vec(Tensor v) { return v == null ? null : v.contiguous(); }

    private static void closeAll(Tensor... ts) { for (Tensor t : ts) if (t != null) t.close(); }

    static Norm.BatchNorm batchNorm2dTrain(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar, double momentum, double eps,
                                           boolean relu) {
        String op = "batchNorm2dTrain";
        require(op, x, gamma, beta, runningMean, runningVar);
        if (runningMean != null) runningMean.markModified();   // updated by the kernel
        if (runningVar != null) runningVar.markModified();
        int n = x.shape[0], c = x.shape[1], hw = x.shape[2] * x.shape[3];
        Tensor out = Tensor.empty(Device.CUDA, DType.F32, x.shape);
        Tensor mean = Tensor.empty(Device.CUDA, DType.F32, c), invStd = Tensor.empty(Device.CUDA, DType.F32, c);
        if (c == 0) return new Norm.BatchNorm(out, mean, invStd);   // no channels (the kernels refuse C = 0): empty, as on the CPU
        Tensor xc = null, g = null, b = null, rm = null, rv = null;
        try (Block work = Block.of(8L * Native.cudaBnWork(c, (long) n * hw, false))) {
            xc = x.contiguous(); g = vec(gamma); b = vec(beta);
            // the running statistics are updated in place: a strided view is updated in a contiguous copy, written back below
            rm = vec(runningMean); rv = vec(runningVar);
            Native.cudaBnTrain(ptr(xc), ptrOrNull(g), ptrOrNull(b), ptrOrNull(rm), ptrOrNull(rv), n, c, hw, momentum, eps,
                    ptr(out), ptr(mean), ptr(invStd), work.ptr(), relu);
            if (rm != null && rm.storage != runningMean.storage) CudaWrites.copy(runningMean, rm);
            if (rv != null && rv.storage != runningVar.storage) CudaWrites.copy(runningVar, rv);
        } catch (RuntimeException e) {
            closeAll(out, mean, invStd);
            throw e;
        } finally {
            closeAll(xc, g, b, rm, rv);
        }
        return new Norm.BatchNorm(out, mean, invStd);
    }

    /**
     * Eval-mode batch norm: the per-channel scale and shift are computed on the host in double exactly as the CPU op
     * does (from the C-element vectors, copied down), then one kernel applies them (bn_apply), so the result is the
     * CPU's bit for bit.
     */
    static Tensor batchNorm2dEval(Tensor x, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar, double eps) {
        require("batchNorm2dEval", x, gamma, beta, runningMean, runningVar);
        int n = x.shape[0], c = x.shape[1], hw = x.shape[2] * x.shape[3];
        float[] g = gamma == null ? null : gamma.toFloatArray(), b = beta == null ? null : beta.toFloatArray();
        float[] rm = runningMean.toFloatArray(), rv = runningVar.toFloatArray();
        double[] work = new double[2 * c];
        for (int ch = 0; ch < c; ch++) {
            double scale = (g == null ? 1 : g[ch]) / Math.sqrt(rv[ch] + eps);
            work[2 * ch] = scale;
            work[2 * ch + 1] = (b == null ? 0 : b[ch]) - rm[ch] * scale;
        }
        Tensor out = Tensor.empty(Device.CUDA, DType.F32, x.shape);
        if (out.numel() == 0) return out;
        try (Tensor xc = x.contiguous(); Block w = Block.of(8L * 2 * c); Arena arena = Arena.ofConfined()) {
            Cuda.copyToDevice(w.ptr(), arena.allocateFrom(java.lang.foreign.ValueLayout.JAVA_DOUBLE, work), 8L * 2 * c);
            Native.cudaBnApply(ptr(xc), n, c, hw, w.ptr(), ptr(out));
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        return out;
    }

    /** reluOut: the fused batch norm + ReLU forward's output (dy counts only where it is > 0), or null. */
    static Norm.BatchNormGrads batchNorm2dBackward(Tensor dy, Tensor x, Tensor gamma, Tensor mean, Tensor invStd, Tensor reluOut) {
        require("batchNorm2dBackward", dy, x, gamma, mean, invStd, reluOut);
        int n = x.shape[0], c = x.shape[1], hw = x.shape[2] * x.shape[3];
        Tensor dx = Tensor.empty(Device.CUDA, DType.F32, x.shape);
        Tensor dgamma = Tensor.empty(Device.CUDA, DType.F32, c), dbeta = Tensor.empty(Device.CUDA, DType.F32, c);
        Tensor xc = null, dyc = null, g = null, mu = null, is = null, rc = null;
        try (Block work = Block.of(8L * Native.cudaBnWork(c, (long) n * hw, true))) {
            xc = x.contiguous(); dyc = dy.contiguous(); g = vec(gamma); mu = vec(mean); is = vec(invStd); rc = reluOut == null ? null : reluOut.contiguous();
            Native.cudaBnBackward(ptr(dyc), ptr(xc), ptrOrNull(g), ptr(mu), ptr(is), n, c, hw, ptr(dx), ptr(dgamma), ptr(dbeta), work.ptr(), ptrOrNull(rc));
        } catch (RuntimeException e) {
            closeAll(dx, dgamma, dbeta);
            throw e;
        } finally {
            closeAll(xc, dyc, g, mu, is, rc);
        }
        return new Norm.BatchNormGrads(dx, dgamma, dbeta);
    }

    // ---------------------------------------------------------------- cuda-gaps: average pool, eval-mode batch norm
    // backward, the non-finite check (the strided writes are CudaWrites); ops that ran only on the CPU before

    /** Pool.avgPool2d on CUDA (Pool checked the geometry): the CPU's sums and divisors, bit for bit. */
    static Tensor avgPool2d(Tensor x, Conv.Geom g, boolean countIncludePad) {
        require("avgPool2d", x);
        Tensor out = Tensor.empty(Device.CUDA, DType.F32, g.n(), g.c(), g.ho(), g.wo());
        try {
            // no input values: every window sums nothing (0 / divisor, +0.0 as on the CPU); the kernels refuse C, H or W = 0
            if (x.numel() == 0) zero(out);
            else try (Tensor xc = x.contiguous()) {
                Native.cudaAvgPool(ptr(xc), g.n(), g.c(), g.h(), g.w(), g.kh(), g.kw(), g.sh(), g.sw(), g.ph(), g.pw(), g.ho(), g.wo(),
                        countIncludePad, ptr(out));
            }
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        return out;
    }

    /** Pool.avgPool2dBackward on CUDA (Pool checked dy against the geometry): each dx element gathers its windows in the CPU's order. */
    static Tensor avgPool2dBackward(Tensor dy, Conv.Geom g, boolean countIncludePad) {
        require("avgPool2dBackward", dy);
        Tensor dx = Tensor.empty(Device.CUDA, DType.F32, g.n(), g.c(), g.h(), g.w());
        if (dx.numel() == 0) return dx;
        try (Tensor dyc = dy.contiguous()) {
            Native.cudaAvgPoolBackward(ptr(dyc), g.n(), g.c(), g.h(), g.w(), g.kh(), g.kw(), g.sh(), g.sw(), g.ph(), g.pw(), g.ho(), g.wo(),
                    countIncludePad, ptr(dx));
        } catch (RuntimeException e) {
            dx.close();
            throw e;
        }
        return dx;
    }

    /**
     * Norm.batchNorm2dEvalBackward on CUDA (Norm checked the shapes): 1 / sqrt(runningVar + eps) per channel in double on
     * the device, the sums per channel as the training backward's (bit for bit up to 256 values per channel, else 1e-6),
     * dx = dy gamma / sqrt(runningVar + eps) per element bit for bit.
     */
    static Norm.BatchNormGrads batchNorm2dEvalBackward(Tensor dy, Tensor x, Tensor gamma, Tensor runningMean, Tensor runningVar, double eps) {
        require("batchNorm2dEvalBackward", dy, x, gamma, runningMean, runningVar);
        int n = x.shape[0], c = x.shape[1], hw = x.shape[2] * x.shape[3];
        Tensor dx = Tensor.empty(Device.CUDA, DType.F32, x.shape);
        Tensor dgamma = Tensor.empty(Device.CUDA, DType.F32, c), dbeta = Tensor.empty(Device.CUDA, DType.F32, c);
        Tensor xc = null, dyc = null, g = null, rm = null, rv = null;
        try {
            if (dx.numel() == 0) {   // no values per channel (the kernels refuse it): empty sums, 0 as on the CPU
                zero(dgamma);
                zero(dbeta);
            } else try (Block work = Block.of(8L * Native.cudaBnWork(c, (long) n * hw, true))) {
                xc = x.contiguous(); dyc = dy.contiguous(); g = vec(gamma); rm = vec(runningMean); rv = vec(runningVar);
                Native.cudaBnEvalBackward(ptr(dyc), ptr(xc), ptrOrNull(g), ptr(rm), ptr(rv), n, c, hw, eps, ptr(dx), ptr(dgamma), ptr(dbeta), work.ptr());
            }
        } catch (RuntimeException e) {
            closeAll(dx, dgamma, dbeta);
            throw e;
        } finally {
            closeAll(xc, dyc, g, rm, rv);
        }
        return new Norm.BatchNormGrads(dx, dgamma, dbeta);
    }

    /**
     * Elementwise.hasNonFinite on CUDA: one pass over the device data (any layout, float32 or float64) and a 4-byte answer
     * copied back, instead of the whole tensor.
     */
    static boolean hasNonFinite(Tensor a) {
        a.check();
        if (a.storage.device != Device.CUDA) throw mismatch("hasNonFinite", a);
        if (a.dtype != DType.F32 && a.dtype != DType.F64)
            throw new UnsupportedOperationException("hasNonFinite on CUDA supports float32 and float64, got " + a.dtype);
        if (a.numel() == 0) return false;
        int[] shape = a.shape.clone();   // an axis of stride 0 (an expand) holds one location: looked at once
        for (int d = 0; d < shape.length; d++) if (a.strides[d] == 0) shape[d] = 1;
        long[][] m = CudaWrites.merge(shape, a.strides);
        if (m[0].length > CudaWrites.MAX_RANK) {   // more dimensions than the kernel takes: one look per index of an axis of several
            int ax = CudaWrites.splitAxis(a.shape, a.strides);
            for (int i = 0; i < a.shape[ax]; i++) try (Tensor s = a.slice(ax, i, i + 1)) { if (hasNonFinite(s)) return true; }
            return false;
        }
        try (Block flags = Block.of(4L * Native.CUDA_NONFINITE_FLAGS)) {
            Native.cudaNonFinite(m[0], ptr(a), m[1], a.dtype == DType.F64, flags.ptr());
            return intsToHost(flags.ptr(), 1)[0] != 0;
        }
    }

    // ---------------------------------------------------------------- loss

    /**
     * Mean cross-entropy with label smoothing of logits [N, C] (labels checked by Loss): the loss as a CUDA scalar
     * (when wantLoss) and gradScale * the gradient [N, C] (when wantGrad); either may come back null.
     */
    static Loss.CrossEntropy crossEntropy(Tensor logits, int[] labels, double smoothing, double gradScale, boolean wantLoss, boolean wantGrad) {
        require("crossEntropy", logits);
        int n = logits.shape[0], c = logits.shape[1];
        Tensor loss = wantLoss ? Tensor.empty(Device.CUDA, DType.F32) : null;
        Tensor grad = wantGrad ? Tensor.empty(Device.CUDA, DType.F32, n, c) : null;
        try (Tensor xc = logits.contiguous(); Block lab = Block.of(4L * n); Block work = Block.of(8L * Native.cudaCrossEntropyWork(n, c)); Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocateFrom(JAVA_INT, labels);
            Cuda.copyToDevice(lab.ptr(), host, 4L * n);
            Native.cudaCrossEntropy(ptr(xc), lab.ptr(), n, c, smoothing, gradScale, ptrOrNull(loss), ptrOrNull(grad), work.ptr());
        } catch (RuntimeException e) {
            closeAll(loss, grad);
            throw e;
        }
        return new Loss.CrossEntropy(loss, grad);
    }

    /** Softmax / log-softmax along the middle axis of x seen as [outer, n, inner] (Loss checked the axis). */
    static Tensor softmax(Tensor x, int outer, int n, int inner, boolean log) {
        require(log ? "logSoftmax" : "softmax", x);
        Tensor out = Tensor.empty(Device.CUDA, DType.F32, x.shape);
        try (Tensor xc = x.contiguous()) {
            Native.cudaSoftmax(ptr(xc), outer, n, inner, log, ptr(out));
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        return out;
    }

    static Tensor softmaxBackward(Tensor y, Tensor dy, int outer, int n, int inner, boolean log) {
        require(log ? "logSoftmaxBackward" : "softmaxBackward", y, dy);
        Tensor dx = Tensor.empty(Device.CUDA, DType.F32, y.shape);
        try (Tensor yc = y.contiguous(); Tensor gc = dy.contiguous()) {
            Native.cudaSoftmaxBackward(ptr(yc), ptr(gc), outer, n, inner, log, ptr(dx));
        } catch (RuntimeException e) {
            dx.close();
            throw e;
        }
        return dx;
    }

    // ---------------------------------------------------------------- FST: magnitude 2:4 of a weight on the device

    /** S(W) along K of a float32 CUDA matrix w [rows, K] as a masked copy (fst_k_prune24's dense output). */
    public static Tensor prune24Masked(Tensor w) {
        require("prune24Masked", w);
        if (w.dim() != 2) throw new IllegalArgumentException("wrong rank: prune24Masked needs a matrix, got " + Shape.str(w.shape));
        int rows = w.shape[0], k = w.shape[1];
        long g = (k + 3) / 4;
        Tensor out = Tensor.empty(Device.CUDA, DType.F32, rows, k);
        if (out.numel() == 0) return out;
        try (Tensor wc = w.contiguous(); Block values = Block.of(4L * rows * 2 * g); Block meta = Block.of(4L * rows * ((g + 7) / 8))) {
            Native.cudaPrune24(rows, k, ptr(wc), k, values.ptr(), meta.ptr(), ptr(out), k, MemorySegment.NULL, 0);
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        return out;
    }

    /**
     * The metadata words of S(W) along K of a float32 CUDA matrix w [rows, K] (fst_k_prune24's, Compressed24's layout:
     * rows x ceil(ceil(K / 4) / 8) words, group g of a row in the nibble at bits 4 (g % 8) of word g / 8), copied to the
     * host: which two of every four weights the rule keeps, read back at one bit per weight instead of W's 32 (the flip
     * rate of fst4j.nn.FlipRate). The kept values go to a scratch block that is freed here.
     */
    public static int[] prune24Meta(Tensor w) {
        require("prune24Meta", w);
        if (w.dim() != 2) throw new IllegalArgumentException("wrong rank: prune24Meta needs a matrix, got " + Shape.str(w.shape));
        int rows = w.shape[0], k = w.shape[1];
        long g = (k + 3) / 4, words = (long) rows * ((g + 7) / 8);
        if ((long) rows * k == 0) return new int[0];
        if (words > Integer.MAX_VALUE) throw new IllegalArgumentException("prune24Meta: " + words + " metadata words of " + Shape.str(w.shape) + " do not fit an int[]");
        try (Tensor wc = w.contiguous(); Block values = Block.of(4L * rows * 2 * g); Block meta = Block.of(4L * words)) {
            Native.cudaPrune24(rows, k, ptr(wc), k, values.ptr(), meta.ptr(), MemorySegment.NULL, 0, MemorySegment.NULL, 0);
            return intsToHost(meta.ptr(), words);
        }
    }

    /** S(W) along axis 0 (2:4 in every group of 4 rows of a column) of a float32 CUDA matrix, same shape (fst_k_prune24_t). */
    public static Tensor prune24TransposedMasked(Tensor w) {
        require("prune24TransposedMasked", w);
        if (w.dim() != 2) throw new IllegalArgumentException("wrong rank: prune24TransposedMasked needs a matrix, got " + Shape.str(w.shape));
        int cout = w.shape[0], k = w.shape[1];
        long g = (cout + 3) / 4;
        if ((long) cout * k == 0) return Tensor.empty(Device.CUDA, DType.F32, cout, k);
        try (Tensor wc = w.contiguous(); Tensor masked = Tensor.empty(Device.CUDA, DType.F32, k, cout);
             Block values = Block.of(4L * k * 2 * g); Block meta = Block.of(4L * k * ((g + 7) / 8))) {
            Native.cudaPrune24Transposed(cout, k, ptr(wc), k, values.ptr(), meta.ptr(), ptr(masked), cout, MemorySegment.NULL, 0);
            try (Tensor back = masked.t()) { return back.contiguous(); }
        }
    }

    // ---------------------------------------------------------------- FST: Information Restoration and the half-K gather (fst4j.sparse)

    /** Restoration.shiftAdd on CUDA: every segment of a float32 tensor shifted and added (shift.c's rule). */
    public static Tensor shiftAdd(Tensor dy, int segment, float coeff, int shift, boolean circular) {
        require("shiftAdd", dy);
        Tensor out = Tensor.empty(Device.CUDA, DType.F32, dy.shape);
        try (Tensor src = dy.contiguous()) {
            if (out.numel() > 0) Native.cudaShiftAdd(ptr(src), ptr(out), 1, out.numel(), segment, shift, coeff, circular);
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        return out;
    }

    /** dY' of ReSprop on CUDA (fst_resprop's rule, fst4j.nn.ReSprop): the new gradient and how many differences were kept. */
    public record Resprop(Tensor out, long kept) {}

    /** g [n, per...] and the sample p [per] on CUDA, float32: {@link Resprop} with out on CUDA (the caller closes it). */
    public static Resprop resprop(Tensor g, Tensor p, double threshold) {
        require("resprop", g, p);
        if (g.dim() < 1 || g.shape[0] < 1) throw new IllegalArgumentException("resprop needs a batch [N, ...], got " + Shape.str(g.shape));
        long n = g.shape[0], per = g.numel() / n;
        if (p.numel() != per) throw new IllegalArgumentException("resprop: a sample of " + p.numel() + " values for images of " + per);
        Tensor out = Tensor.empty(Device.CUDA, DType.F32, g.shape);
        long parts = Native.CUDA_PARTS;
        try (Tensor gc = g.contiguous(); Tensor pc = p.contiguous(); Block work = Block.of(8L * (parts + 1) * parts); Arena arena = Arena.ofConfined()) {
            Native.cudaResprop(ptr(gc), ptr(pc), ptr(out), n, per, threshold, work.ptr());
            MemorySegment host = arena.allocate(JAVA_LONG, parts);
            Cuda.copyToHost(host, work.ptr(), 8 * parts);
            long kept = 0;
            for (long c : host.toArray(JAVA_LONG)) kept += c;
            return new Resprop(out, kept);
        } catch (RuntimeException | Error e) {
            out.close();
            throw e;
        }
    }

    /** HalfK.shiftGather on CUDA: dy [R, K] -> [R, (K/segment) * ceil(segment/2)]; coeff 0 is the plain gather. */
    public static Tensor shiftGather(Tensor dy, int segment, float coeff, int shift, boolean circular) {
        return shiftGather(dy, segment, coeff, shift, circular, false).tensor();
    }

    /**
     * shiftGather as a {@link SharedOperand}: where the GEMMs run at BF16 (and {@link #shareBf16}), the kernel also writes
     * the output's bf16 rounding, which Eq. 3's half-K GEMM borrows while the handle is open.
     */
    public static SharedOperand shiftGatherShared(Tensor dy, int segment, float coeff, int shift, boolean circular) {
        return shiftGather(dy, segment, coeff, shift, circular, true);
    }

    private static SharedOperand shiftGather(Tensor dy, int segment, float coeff, int shift, boolean circular, boolean shareable) {
        require("shiftGather", dy);
        int r = dy.shape[0], k = dy.shape[1];
        Tensor out = Tensor.empty(Device.CUDA, DType.F32, r, Math.multiplyExact(k / segment, (segment + 1) / 2));
        return writeShared(dy, out, shareable, (src, b16) -> {
            if ((long) r * k > 0) Native.cudaShiftGather16(src, ptr(out), b16, r, k, segment, shift, coeff, circular);
        });
    }

    // ---------------------------------------------------------------- optimizer (fst4j.nn)

    /**
     * Counts the write of an in-place kernel in each tensor's version, once its arguments are checked (a refused call
     * writes nothing): a graph that saved the tensor refuses its backward, and a layer's kept S(W) (Gemm3) is rebuilt
     * from a weight these kernels stepped or scaled, whoever called them (fst4j.nn's optimizers mark W too).
     */
    private static void written(Tensor... ts) { for (Tensor t : ts) if (t != null) t.markModified(); }

    private static void sameSize(String op, Tensor w, Tensor o, String name) {
        if (o.numel() != w.numel() || !o.isContiguous())
            throw new IllegalArgumentException("shape mismatch: " + op + " " + name + " " + Shape.str(o.shape) + " must be contiguous with the "
                    + w.numel() + " elements of the weight " + Shape.str(w.shape));
    }

    /**
     * One SGD step on a contiguous float32 CUDA weight, exactly fst4j.nn.SGD's float arithmetic:
     * g' = g + wd*w; buf = first ? g' : momentum*buf + damp*g'; d = nesterov ? g' + momentum*buf : buf; w -= lr*d.
     * buf null means no momentum (w -= lr * g').
     */
    public static void sgdStep(Tensor w, Tensor g, Tensor buf, float lr, float weightDecay, float momentum, float damp, boolean first, boolean nesterov) {
        String op = "sgdStep";
        require(op, w, g, buf);
        if (!w.isContiguous()) throw new IllegalArgumentException(op + ": the weight must be contiguous");
        sameSize(op, w, g, "gradient");
        if (buf != null) sameSize(op, w, buf, "momentum buffer");
        written(w, buf);
        Native.cudaSgd(ptr(w), ptr(g), ptrOrNull(buf), w.numel(), lr, weightDecay, momentum, damp, first, nesterov);
    }

    /**
     * SGD with SR-STE's decay in one kernel on CUDA: w (contiguous, viewed as rows of k, k % 4 == 0) steps with g + lambda w
     * where magnitude 2:4 prunes (g is not written), the momentum buffer buf (null: none) updated; the bits of
     * {@link #srsteDecay} then {@link #sgdStep}, and of the CPU's fused loop.
     */
    public static void sgdSrsteStep(Tensor w, Tensor g, Tensor buf, int k, float lambda, float lr, float weightDecay, float momentum, float damp,
                                    boolean first, boolean nesterov) {
        String op = "sgdSrsteStep";
        require(op, w, g, buf);
        if (!w.isContiguous() || !g.isContiguous() || k <= 0 || k % 4 != 0 || w.numel() % k != 0)
            throw new IllegalArgumentException(op + ": weight " + Shape.str(w.shape) + " (contiguous, with its gradient) in rows of " + k + " (a multiple of 4)");
        sameSize(op, w, g, "gradient");
        if (buf != null) sameSize(op, w, buf, "momentum buffer");
        written(w, buf);
        Native.cudaSgdSrste(ptr(w), ptr(g), ptrOrNull(buf), w.numel(), k, lambda, lr, weightDecay, momentum, damp, first, nesterov);
    }

    /**
     * One AdamW step on a contiguous float32 CUDA weight with its moments m, v (and vmax for amsgrad, else null), the
     * scalars of fst4j.nn.AdamW.Scalars: the bits of its Java loop and of the CPU's fst_adamw.
     */
    public static void adamwStep(Tensor w, Tensor g, Tensor m, Tensor v, Tensor vmax, float decay, float beta1, float c1, float beta2, float c2,
                                 float step, float bc2, float eps) {
        String op = "adamwStep";
        require(op, w, g, m, v, vmax);
        if (!w.isContiguous()) throw new IllegalArgumentException(op + ": the weight must be contiguous");
        sameSize(op, w, g, "gradient");
        sameSize(op, w, m, "first moment");
        sameSize(op, w, v, "second moment");
        if (vmax != null) sameSize(op, w, vmax, "max of the second moments");
        written(w, m, v, vmax);
        Native.cudaAdamw(ptr(w), ptr(g), ptr(m), ptr(v), ptrOrNull(vmax), w.numel(), decay, beta1, c1, beta2, c2, step, bc2, eps);
    }

    /**
     * The squared L2 norm of each contiguous float32 CUDA tensor, in Native.NORM_PARTS partial sums of squares in double
     * (the CPU's Native.sumsqParts split and order): parts[t][p] for tensor t, read back in one copy.
     */
    public static double[][] sumsqParts(List<Tensor> xs) {
        String op = "sumsqParts";
        for (Tensor x : xs) {
            require(op, x);
            if (!x.isContiguous()) throw new IllegalArgumentException(op + ": tensor " + Shape.str(x.shape) + " must be contiguous");
        }
        int parts = Native.NORM_PARTS;
        double[][] out = new double[xs.size()][parts];
        if (xs.isEmpty()) return out;
        long bytes = 8L * parts * xs.size();
        try (Block work = Block.of(bytes); Arena arena = Arena.ofConfined()) {
            for (int t = 0; t < xs.size(); t++)
                Native.cudaSumsqParts(ptr(xs.get(t)), xs.get(t).numel(), MemorySegment.ofAddress(work.ptr().address() + 8L * parts * t));
            MemorySegment host = arena.allocate(bytes, 8);
            Cuda.copyToHost(host, work.ptr(), bytes);
            for (int t = 0; t < xs.size(); t++)
                for (int p = 0; p < parts; p++) out[t][p] = host.getAtIndex(java.lang.foreign.ValueLayout.JAVA_DOUBLE, (long) t * parts + p);
        }
        return out;
    }

    /** x *= s in place on a contiguous float32 CUDA tensor (a clipped gradient). */
    public static void scaleInPlace(Tensor x, float s) {
        String op = "scaleInPlace";
        require(op, x);
        if (!x.isContiguous()) throw new IllegalArgumentException(op + ": tensor " + Shape.str(x.shape) + " must be contiguous");
        written(x);
        Native.cudaScale(ptr(x), x.numel(), s);
    }

    /**
     * Magnitude n:m along axis of a float32 CUDA tensor, same shape (fst_k_nm): in each group of m the n largest |x| are
     * kept (ties to the lower index, NaN largest, a short last group among its real elements), +0.0 elsewhere; the host
     * rule's selection bit for bit (fst4j.sparse.Sparsifier.MagnitudeNM). The pattern is checked by the caller's record.
     */
    public static Tensor pruneNM(Tensor x, int axis, int n, int m) {
        String op = "pruneNM";
        require(op, x);
        checkNM(op, n, m);
        if (x.dim() == 0) throw new IllegalArgumentException("a sparsifier needs rank >= 1, got a scalar");
        int a = axis < 0 ? axis + x.dim() : axis;
        if (a < 0 || a >= x.dim()) throw new IllegalArgumentException("axis " + axis + " out of range for rank " + x.dim());
        long outer = 1, inner = 1;
        for (int d = 0; d < a; d++) outer *= x.shape[d];
        for (int d = a + 1; d < x.dim(); d++) inner *= x.shape[d];
        Tensor out = Tensor.empty(Device.CUDA, DType.F32, x.shape);
        if (out.numel() == 0) return out;
        try (Tensor xc = x.contiguous()) {
            Native.cudaPruneNM(ptr(xc), ptr(out), outer, x.shape[a], inner, n, m);
        } catch (RuntimeException e) {
            out.close();
            throw e;
        }
        return out;
    }

    /** The kernels' range of N:M patterns (fst4j.sparse.NM's), checked here so that Java names it before any launch. */
    private static void checkNM(String op, int n, int m) {
        if (m < 2 || m > 32 || n < 1 || n >= m)
            throw new IllegalArgumentException(op + ": N:M pattern " + n + ":" + m + " is outside 1 <= N < M <= 32");
    }

    /** {@link #srsteDecay} for magnitude n:m along each row: g += lambda * w where that rule prunes. */
    public static void srsteDecayNM(Tensor w, Tensor g, int rows, int k, int n, int m, float lambda) {
        String op = "srsteDecayNM";
        require(op, w, g);
        checkNM(op, n, m);
        if (rows < 0 || k < 0 || (long) rows * k != w.numel() || !w.isContiguous())
            throw new IllegalArgumentException(op + ": weight " + Shape.str(w.shape) + " is not a contiguous [" + rows + ", " + k + "] matrix");
        sameSize(op, w, g, "gradient");
        written(g);
        Native.cudaSrsteDecayNM(ptr(w), ptr(g), rows, k, n, m, lambda);
    }

    /** SR-STE decay on CUDA: g += lambda * w where magnitude 2:4 along each row of w viewed as [rows, k] prunes. */
    public static void srsteDecay(Tensor w, Tensor g, int rows, int k, float lambda) {
        String op = "srsteDecay";
        require(op, w, g);
        if (rows < 0 || k < 0 || (long) rows * k != w.numel() || !w.isContiguous())
            throw new IllegalArgumentException(op + ": weight " + Shape.str(w.shape) + " is not a contiguous [" + rows + ", " + k + "] matrix");
        sameSize(op, w, g, "gradient");
        written(g);
        Native.cudaSrsteDecay(ptr(w), ptr(g), rows, k, lambda);
    }
}
