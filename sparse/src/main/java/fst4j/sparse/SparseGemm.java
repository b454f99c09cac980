package fst4j.sparse;

import fst4j.shim.Native;
import fst4j.tensor.Blas;
import fst4j.tensor.DType;
import fst4j.tensor.Device;
import fst4j.tensor.Tensor;

import java.util.Arrays;

/**
 * 2:4 sparse x dense products on the CPU through the native {@code fst_spmm24} (AVX-512 / AVX2 /
 * generic kernels, OpenMP threads). All shapes and bounds are checked here before any pointer reaches C.
 */
public final class SparseGemm {
    private SparseGemm() {}

    /** S * B as a new [S.rows, N] float32 tensor; b is [S.k, N] float32. Uses {@link Blas#threads()} threads. */
    public static Tensor spmm(Compressed24 s, Tensor b) {
        b.check();
        if (b.dim() != 2) throw new IllegalArgumentException("wrong rank: spmm needs a matrix B, got shape " + Arrays.toString(b.shape()));
        Tensor c = Tensor.empty(s.rows(), b.size(1));
        try {
            spmm(1f, s, b, 0f, c, Blas.threads());
        } catch (RuntimeException e) {
            c.close();
            throw e;
        }
        return c;
    }

    /** C = alpha * S * B + beta * C with {@link Blas#threads()} threads. */
    public static void spmm(float alpha, Compressed24 s, Tensor b, float beta, Tensor c) {
        spmm(alpha, s, b, beta, c, Blas.threads());
    }

    /**
     * C = alpha * S * B + beta * C. B [K, N] and C [M, N] are float32 matrices; B may be any view (it is
     * copied unless its rows have unit stride, or where it shares memory with C: the kernel writes C while it still
     * reads B), C must have unit stride along its rows and must not overlap S. beta == 0 overwrites C (NaN in C does
     * not propagate).
     */
    public static void spmm(float alpha, Compressed24 s, Tensor b, float beta, Tensor c, int threads) {
        b.check(); c.check(); s.values().check(); s.metadata().check();   // c's version moves once the arguments are checked
        if (threads < 1) throw new IllegalArgumentException("thread count must be >= 1, got " + threads);
        if (b.dim() != 2 || c.dim() != 2)
            throw new IllegalArgumentException("wrong rank: spmm needs matrices, got B " + Arrays.toString(b.shape()) + ", C " + Arrays.toString(c.shape()));
        int m = s.rows(), k = s.k(), n = b.size(1);
        if (b.size(0) != k || c.size(0) != m || c.size(1) != n)
            throw new IllegalArgumentException("shape mismatch: spmm S " + m + "x" + k + " x B " + Arrays.toString(b.shape()) + " into C " + Arrays.toString(c.shape()));
        if (b.dtype() != DType.F32 || c.dtype() != DType.F32)
            throw new IllegalArgumentException("spmm needs float32 B and C, got " + b.dtype() + " and " + c.dtype());
        if (b.device() != Device.CPU || c.device() != Device.CPU)
            throw new IllegalArgumentException("device mismatch: spmm runs on CPU, got B on " + b.device() + ", C on " + c.device());
        long ldc = rowStride(c);
        if (ldc < 0) throw new IllegalArgumentException("spmm output must have unit stride along its rows, strides " + Arrays.toString(c.strides()));
        if (m == 0 || n == 0) return;
        checkS("spmm", s, c);
        Tensor v = s.values(), meta = s.metadata();
        Tensor bc = rowStride(b) < 0 || b.overlaps(c) ? b.copy() : null;
        try {
            Tensor bb = bc != null ? bc : b;
            long ldb = rowStride(bb);
            checkBounds("B", bb, k, n, ldb);
            checkBounds("C", c, m, n, ldc);
            c.markModified();
            Native.spmm24(m, n, k, alpha, v.segment().asSlice(v.byteOffset()), meta.segment().asSlice(meta.byteOffset()),
                    bb.segment().asSlice(bb.byteOffset()), ldb, beta, c.segment().asSlice(c.byteOffset()), ldc, threads);
        } finally {
            if (bc != null) bc.close();
        }
    }

    /**
     * C = S * im2col(low.x()) + beta * C without materialising im2col (the kernel lowers each piece of B as it stages
     * it). S is 2:4 along K = C*kh*kw; C [S.rows(), N*Ho*Wo] float32 with unit stride along its rows.
     */
    public static void spmmLowered(Compressed24 s, fst4j.tensor.Lowering low, float beta, Tensor c) {
        c.check(); s.values().check(); s.metadata().check();
        int m = s.rows(), k = s.k(), n = low.cols();
        if (k != low.rows() || c.dim() != 2 || c.size(0) != m || c.size(1) != n)
            throw new IllegalArgumentException("shape mismatch: spmmLowered S " + m + "x" + k + " x im2col [" + low.rows() + ", " + n + "] into " + Arrays.toString(c.shape()));
        if (c.dtype() != DType.F32 || c.device() != Device.CPU || low.x().device() != Device.CPU)
            throw new IllegalArgumentException("spmmLowered needs float32 CPU operands, got the output " + c.dtype() + " on " + c.device()
                    + " and x on " + low.x().device());
        long ldc = rowStride(c);
        if (ldc < 0) throw new IllegalArgumentException("spmm output must have unit stride along its rows, strides " + Arrays.toString(c.strides()));
        if (m == 0 || n == 0) return;
        checkBounds("C", c, m, n, ldc);
        checkS("spmmLowered", s, c);
        if (low.x().overlaps(c)) throw new IllegalArgumentException("spmmLowered: C shares memory with the input x it lowers");
        Tensor v = s.values(), meta = s.metadata();
        c.markModified();
        Native.spmm24Lowered(m, 1f, v.segment().asSlice(v.byteOffset()), meta.segment().asSlice(meta.byteOffset()), low.x().data(),
                low.geometry(), beta, c.segment().asSlice(c.byteOffset()), ldc, Blas.threads());
    }

    /**
     * y = S im2col(low.x()) written as NCHW, y contiguous [n, rows, Ho, Wo] (or [n, rows, Ho*Wo]): no [rows, n*Ho*Wo]
     * matrix to scatter. The compiled 2:4 convolution writes it where it runs (an AVX-512 CPU, its shapes and limits:
     * sparse.c), else the register kernel where Ho*Wo is a multiple of 16; true then. False, with nothing written, for
     * other planes (7x7, 14x14) without the compiled convolution and for an empty sum, and the caller takes
     * {@link #spmmLowered}. The same bits as spmmLowered then scattered.
     */
    public static boolean spmmLoweredNchw(Compressed24 s, fst4j.tensor.Lowering low, Tensor y) {
        y.check(); s.values().check(); s.metadata().check();
        int m = s.rows(), k = s.k(), n = low.x().size(0);
        long[] g = low.geometry();   // {n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, order}
        long plane = g[10] * g[11];
        if (k != low.rows() || y.dim() < 3 || y.size(0) != n || y.size(1) != m || y.numel() != (long) n * m * plane)
            throw new IllegalArgumentException("shape mismatch: spmmLoweredNchw S " + m + "x" + k + " x im2col [" + low.rows() + ", "
                    + low.cols() + "] into " + Arrays.toString(y.shape()) + " (want [" + n + ", " + m + ", " + g[10] + ", " + g[11] + "])");
        if (y.dtype() != DType.F32 || y.device() != Device.CPU || low.x().device() != Device.CPU)
            throw new IllegalArgumentException("spmmLoweredNchw needs float32 CPU operands, got the output " + y.dtype() + " on " + y.device()
                    + " and x on " + low.x().device());
        if (!y.isContiguous()) throw new IllegalArgumentException("spmmLoweredNchw writes a contiguous NCHW output, got strides " + Arrays.toString(y.strides()));
        if (y.numel() == 0) return true;
        checkS("spmmLoweredNchw", s, y);
        if (low.x().overlaps(y)) throw new IllegalArgumentException("spmmLoweredNchw: the output shares memory with the input x it lowers");
        Tensor v = s.values(), meta = s.metadata();
        if ((y.offset() + y.numel()) * 4 > y.segment().byteSize()) throw new IndexOutOfBoundsException("spmmLoweredNchw: the output exceeds its storage");
        boolean done;
        try {
            done = Native.spmm24LoweredNchw(m, v.segment().asSlice(v.byteOffset()), meta.segment().asSlice(meta.byteOffset()),
                    low.x().data(), g, y.segment().asSlice(y.byteOffset()), Blas.threads());
        } catch (RuntimeException | Error e) {
            y.markModified();   // threads may have written part of it
            throw e;
        }
        if (done) y.markModified();
        return done;
    }

    /** The compressed S of op's product: apart from its output c, and its values and metadata within their storage. */
    private static void checkS(String op, Compressed24 s, Tensor c) {
        Tensor v = s.values(), meta = s.metadata();
        if (v.overlaps(c) || meta.overlaps(c)) throw new IllegalArgumentException(op + ": C shares memory with the compressed S it is computed from");
        int m = s.rows();
        checkBounds("values", v, m, s.paddedK() / 2, s.paddedK() / 2);
        checkBounds("metadata", meta, m, s.metaWordsPerRow(), s.metaWordsPerRow());
    }

    /** Kernel family the native spmm uses on this CPU (avx512, avx2 or generic). */
    public static String isa() { return Native.spmm24Isa(); }

    /** Leading dimension of a matrix whose rows have unit stride, or -1 if it has none. */
    private static long rowStride(Tensor t) {
        int r = t.size(0), cols = t.size(1);
        long[] st = t.strides();
        if (cols > 1 && st[1] != 1) return -1;
        if (r <= 1) return Math.max(cols, 1);
        return st[0] >= Math.max(cols, 1) ? st[0] : -1;
    }

    private static void checkBounds(String what, Tensor t, long rows, long cols, long ld) {
        if (rows == 0 || cols == 0) return;
        long last = (rows - 1) * ld + cols;   // one past the last element touched
        if (t.byteOffset() + last * 4 > t.segment().byteSize())
            throw new IndexOutOfBoundsException("spmm operand " + what + " " + rows + "x" + cols + " (ld " + ld + ") exceeds its storage of " + t.segment().byteSize() + " bytes");
    }
}
