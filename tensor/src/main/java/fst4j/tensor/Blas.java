package fst4j.tensor;

import fst4j.shim.Native;

import java.util.Arrays;

/**
 * Matrix products. Float32 goes to the native SGEMM (transposed views are passed as transposes, not
 * copied); float64 uses a plain Java loop (it is the reference type for gradcheck, not a fast path).
 */
public final class Blas {
    private Blas() {}

    private static volatile int threads = Integer.getInteger("fst4j.threads", Runtime.getRuntime().availableProcessors());

    /** Threads used by native kernels (default: available processors, or -Dfst4j.threads). */
    public static int threads() { return threads; }
    public static void setThreads(int n) {
        if (n < 1) throw new IllegalArgumentException("thread count must be >= 1, got " + n);
        threads = n;
    }

    /** A 2-D operand as (transposed?, leading dimension), or null if it needs a copy. */
    private record Op(boolean trans, long ld) {}

    private static Op asOp(Tensor m) {
        long s0 = m.strides[0], s1 = m.strides[1];
        int r = m.shape[0], c = m.shape[1];
        if ((s1 == 1 || c <= 1) && s0 >= Math.max(c, 1) ) return new Op(false, Math.max(s0, Math.max(c, 1)));
        if ((s0 == 1 || r <= 1) && s1 >= Math.max(r, 1)) return new Op(true, Math.max(s1, Math.max(r, 1)));
        return null;
    }

    /**
     * c = beta * c, a product whose sum is empty (K = 0, or no images to lower): beta 0 writes zeros, NaN and infinities
     * included, as the GEMMs do; beta 1 leaves c as it is.
     */
    public static void scaleEmptySum(float beta, Tensor c) {
        if (beta == 0f) c.fill(0);
        else if (beta != 1f) try (Tensor t = c.mul(beta)) { c.copyFrom(t); }
    }

    /**
     * C = alpha * A B + beta * C for 2-D tensors (A: M x K, B: K x N, C: M x N contiguous rows).
     * Views with unit stride along either axis are used in place.
     */
    public static void gemm(float alpha, Tensor a, Tensor b, float beta, Tensor c) {
        a.check(); b.check(); c.check();   // c's version moves once the arguments are checked: a refused call writes nothing
        if (a.dim() != 2 || b.dim() != 2 || c.dim() != 2)
            throw new IllegalArgumentException("wrong rank: gemm needs matrices, got " + Shape.str(a.shape) + ", " + Shape.str(b.shape) + ", " + Shape.str(c.shape));
        int m = a.shape[0], k = a.shape[1], n = b.shape[1];
        if (b.shape[0] != k || c.shape[0] != m || c.shape[1] != n)
            throw new IllegalArgumentException("shape mismatch: gemm " + Shape.str(a.shape) + " x " + Shape.str(b.shape) + " into " + Shape.str(c.shape));
        if (a.device() != b.device() || a.device() != c.device())
            throw new IllegalArgumentException("device mismatch in gemm: " + a.device() + ", " + b.device() + ", " + c.device());
        // CUDA GEMMs are float32 only; a float64 operand fell through to the host loop below and failed on its first
        // element read with "tensor data is on the CUDA device"
        if (c.storage.device == Device.CUDA) CudaOps.require("gemm", a, b, c);
        // an empty C has nothing to write: a batch's empty slices (attention over T = 0) sit at offsets past their 0-byte
        // storage, where the native path's asSlice threw IndexOutOfBoundsException
        if (m == 0 || n == 0) return;
        if (a.dtype == DType.F32 && b.dtype == DType.F32 && c.dtype == DType.F32) {
            Op oc = asOp(c);
            if (oc == null || oc.trans) throw new IllegalArgumentException("gemm output must have unit stride along its rows");
            Tensor ac = null, bc = null;
            try {
                Op oa = asOp(a), ob = asOp(b);
                // an operand sharing memory with C is read from a copy: the kernels write C while they still pack A and B
                // (c = a * b into a itself gave garbage), as NumPy's matmul copies an input that overlaps its out
                if (oa == null || a.overlaps(c)) { ac = a.copy(); oa = asOp(ac); }
                if (ob == null || b.overlaps(c)) { bc = b.copy(); ob = asOp(bc); }
                Tensor A = ac != null ? ac : a, B = bc != null ? bc : b;
                checkBounds(A, oa, m, k); checkBounds(B, ob, k, n); checkBounds(c, oc, m, n);
                c.markModified();
                if (c.storage.device == Device.CUDA) CudaOps.gemm(oa.trans, ob.trans, m, n, k, alpha, A, oa.ld, B, ob.ld, beta, c, oc.ld);
                else Native.sgemm(oa.trans, ob.trans, m, n, k, alpha,
                        A.storage.segment().asSlice(A.byteOffset()), oa.ld,
                        B.storage.segment().asSlice(B.byteOffset()), ob.ld, beta,
                        c.storage.segment().asSlice(c.byteOffset()), oc.ld, threads);
            } finally {
                if (ac != null) ac.close();
                if (bc != null) bc.close();
            }
            return;
        }
        c.markModified();
        // the loop writes c[i, j] before it reads later elements of a and b: an operand in c's memory is read from a copy
        try (Tensor A = a.overlaps(c) ? a.copy() : a.alias(); Tensor B = b.overlaps(c) ? b.copy() : b.alias()) {
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double s = 0;
                    for (int p = 0; p < k; p++) s += A.getAt(A.offset + i * A.strides[0] + p * A.strides[1]) * B.getAt(B.offset + p * B.strides[0] + j * B.strides[1]);
                    long ci = c.offset + i * c.strides[0] + j * c.strides[1];
                    c.setAt(ci, alpha * s + (beta == 0 ? 0 : beta * c.getAt(ci)));
                }
        }
    }

    /**
     * c [M, N*L] = alpha * a [M, K] * B + beta * c where B [K, N*L] is the NCHW batch b [N, K, L] read in place (B[p][i*L + q]
     * = b[i][p][q]; Eq. 2's W^T dY from a convolution's output gradient, no gathered matrix): {@link #gemm} on the gathered
     * B with the same sums and bits. Float32 CPU tensors; a a matrix (either layout), b contiguous, c with unit stride along
     * its rows.
     */
    public static void gemmImagesB(float alpha, Tensor a, Tensor b, float beta, Tensor c) {
        a.check(); b.check(); c.check();
        if (a.dim() != 2 || b.dim() != 3 || c.dim() != 2 || b.shape[1] != a.shape[1] || c.shape[0] != a.shape[0]
                || (long) c.shape[1] != (long) b.shape[0] * b.shape[2])
            throw new IllegalArgumentException("shape mismatch: gemmImagesB " + Shape.str(a.shape) + " x images " + Shape.str(b.shape) + " into " + Shape.str(c.shape));
        if (a.dtype != DType.F32 || b.dtype != DType.F32 || c.dtype != DType.F32 || a.device() != Device.CPU || b.device() != Device.CPU
                || c.device() != Device.CPU)
            throw new IllegalArgumentException("gemmImagesB needs float32 CPU operands, got " + a.dtype + " on " + a.device() + ", " + b.dtype
                    + " on " + b.device() + ", " + c.dtype + " on " + c.device());
        if (!b.isContiguous()) throw new IllegalArgumentException("gemmImagesB reads a contiguous NCHW batch, got strides " + java.util.Arrays.toString(b.strides));
        int m = a.shape[0], k = a.shape[1], n = c.shape[1];
        if (m == 0 || n == 0) return;
        Op oc = asOp(c);
        if (oc == null || oc.trans) throw new IllegalArgumentException("gemmImagesB output must have unit stride along its rows");
        Tensor ac = null, bc = null;
        try {
            Op oa = asOp(a);
            if (oa == null || a.overlaps(c)) { ac = a.copy(); oa = asOp(ac); }
            if (b.overlaps(c)) bc = b.copy();
            Tensor A = ac != null ? ac : a, B = bc != null ? bc : b;
            checkBounds(A, oa, m, k); checkBounds(c, oc, m, n);
            if ((B.offset + B.numel()) * 4 > B.storage.bytes) throw new IndexOutOfBoundsException("gemmImagesB: b exceeds its storage");
            c.markModified();
            Native.sgemmImagesB(oa.trans, m, n, k, alpha, A.storage.segment().asSlice(A.byteOffset()), oa.ld,
                    B.storage.segment().asSlice(B.byteOffset()), Math.max(b.shape[2], 1), beta, c.storage.segment().asSlice(c.byteOffset()), oc.ld, threads);
        } finally {
            if (ac != null) ac.close();
            if (bc != null) bc.close();
        }
    }

    /** Java-side bounds check before handing raw pointers to C: the last element touched lies in storage. */
    private static void checkBounds(Tensor t, Op op, long rows, long cols) {
        if (rows == 0 || cols == 0) return;
        long last = op.trans ? (cols - 1) * op.ld + rows - 1 : (rows - 1) * op.ld + cols - 1;
        if ((t.offset + last + 1) * t.dtype.bytes > t.storage.bytes)
            throw new IndexOutOfBoundsException("gemm operand " + rows + "x" + cols + " (ld " + op.ld + ") exceeds its storage of " + t.storage.bytes + " bytes");
    }

    /**
     * Matrix product with NumPy semantics: 1-D x 1-D is a dot product, 2-D x 2-D a matrix product, and
     * higher ranks batch over broadcast leading dimensions.
     */
    public static Tensor matmul(Tensor a, Tensor b) {
        a.check(); b.check();
        if (a.dim() == 0 || b.dim() == 0) throw new IllegalArgumentException("wrong rank: matmul of a scalar");
        if (a.dim() == 1 && b.dim() == 1) {
            try (Tensor a2 = a.unsqueeze(0); Tensor b2 = b.unsqueeze(1); Tensor r = matmul(a2, b2)) { return r.reshape(); }
        }
        if (a.dim() == 1) { try (Tensor a2 = a.unsqueeze(0); Tensor r = matmul(a2, b)) { return r.squeeze(-2); } }
        if (b.dim() == 1) { try (Tensor b2 = b.unsqueeze(1); Tensor r = matmul(a, b2)) { return r.squeeze(-1); } }
        int m = a.shape[a.dim() - 2], k = a.shape[a.dim() - 1], k2 = b.shape[b.dim() - 2], n = b.shape[b.dim() - 1];
        if (k != k2) throw new IllegalArgumentException("shape mismatch: matmul " + Shape.str(a.shape) + " x " + Shape.str(b.shape));
        int[] ba = Arrays.copyOf(a.shape, a.dim() - 2), bb = Arrays.copyOf(b.shape, b.dim() - 2);
        int[] batch = Shape.broadcast(ba, bb);
        int[] outShape = Arrays.copyOf(batch, batch.length + 2);
        outShape[batch.length] = m;
        outShape[batch.length + 1] = n;
        Tensor out = Tensor.empty(a.storage.device, Elementwise.promote(a, b), outShape);
        int[] ea = Arrays.copyOf(batch, batch.length + 2); ea[batch.length] = m; ea[batch.length + 1] = k;
        int[] eb = Arrays.copyOf(batch, batch.length + 2); eb[batch.length] = k; eb[batch.length + 1] = n;
        long nb = Shape.numel(batch);
        try (Tensor A = a.expand(ea); Tensor B = b.expand(eb); Tensor O3 = out.reshape((int) nb, m, n)) {
            int[] idx = new int[batch.length];
            for (long i = 0; i < nb; i++) {
                try (Tensor ai = pick(A, idx); Tensor bi = pick(B, idx); Tensor oi = pick(O3, new int[]{(int) i})) {
                    gemm(1f, ai, bi, 0f, oi);
                }
                Elementwise.advance(idx, batch, batch.length - 1);
            }
        }
        return out;
    }

    private static Tensor pick(Tensor t, int[] idx) {
        long off = t.offset;
        for (int d = 0; d < idx.length; d++) off += idx[d] * t.strides[d];
        int r = t.dim();
        t.storage.retain();
        return new Tensor(t.storage, new int[]{t.shape[r - 2], t.shape[r - 1]}, new long[]{t.strides[r - 2], t.strides[r - 1]}, off, t.dtype);
    }
}
