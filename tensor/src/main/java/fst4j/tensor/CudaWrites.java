package fst4j.tensor;

import fst4j.shim.Native;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * Writes into CUDA tensors of any layout, as {@link Tensor#copyFrom} and {@link Tensor#fill} write a host view: a copy
 * from a CUDA tensor of any layout, float32 or float64 on either side (converted as the host converts: float64 to
 * float32 rounds to nearest, the same type keeps its bits), and a fill, both through one kernel (fst_k_strided_write).
 * Tensor.copyFrom refuses an expanded destination before it comes here, as on the CPU. A destination whose elements may
 * still share memory (an asStrided view) is written by one device thread in row-major order, so the last write wins as
 * in the CPU's loop; every other layout takes one thread per element. A view of more dimensions than a kernel takes
 * (after merging) is written one index of its first dimension at a time.
 */
final class CudaWrites {
    private CudaWrites() {}

    /**
     * The iteration space with size-1 dimensions dropped and a dimension merged into the one before it where each of
     * the given stride arrays steps through both as through one (the kernel then divides less per element). Same
     * elements, same row-major order. Returns {shape, strides of operand 0, strides of operand 1, ...}.
     */
    static long[][] merge(int[] shape, long[]... strides) {
        int r = shape.length, k = strides.length, n = 0;
        long[][] out = new long[k + 1][r];
        for (int d = 0; d < r; d++) {
            if (shape[d] == 1) continue;
            boolean join = n > 0;
            for (int o = 0; o < k && join; o++) join = out[o + 1][n - 1] == strides[o][d] * shape[d];
            if (join) {
                out[0][n - 1] *= shape[d];
                for (int o = 0; o < k; o++) out[o + 1][n - 1] = strides[o][d];
            } else {
                out[0][n] = shape[d];
                for (int o = 0; o < k; o++) out[o + 1][n] = strides[o][d];
                n++;
            }
        }
        for (int o = 0; o <= k; o++) out[o] = Arrays.copyOf(out[o], n);
        return out;
    }

    /** The kernels take at most this many dimensions (FST_MAXRANK), counted after {@link #merge}; a view with more is split. */
    static final int MAX_RANK = 8;

    /**
     * The axis along which a view of more than {@link #MAX_RANK} merged dimensions is split: the first of size above 1
     * and stride not 0, so that each slice has one merged dimension fewer. (Axis 0 was taken before: where it had size 1
     * or stride 0, each slice was the view again, or had the same merged dimensions, and the split recursed without end.)
     */
    static int splitAxis(int[] shape, long[] strides) {
        for (int d = 0; d < shape.length; d++) if (shape[d] > 1 && strides[d] != 0) return d;
        throw new IllegalStateException("no axis to split in a view of shape " + Shape.str(shape));
    }

    private static void requireDtype(String op, Tensor t) {
        if (t.dtype != DType.F32 && t.dtype != DType.F64)
            throw new UnsupportedOperationException(op + " on CUDA supports float32 and float64, got " + t.dtype);
    }

    /** dst = src elementwise; both CUDA, of one shape (src already expanded), not sharing memory (the caller copies first). */
    static void copy(Tensor dst, Tensor src) {
        requireDtype("copy", dst);
        requireDtype("copy", src);
        if (dst.numel() == 0) return;
        long[][] m = merge(dst.shape, src.strides, dst.strides);
        if (m[0].length > MAX_RANK) {   // more dimensions than a kernel takes: one call per index of an axis that has several
            int a = splitAxis(dst.shape, dst.strides);
            for (int i = 0; i < dst.shape[a]; i++)
                try (Tensor d = dst.slice(a, i, i + 1); Tensor s = src.slice(a, i, i + 1)) { copy(d, s); }
            return;
        }
        Native.cudaStridedWrite(m[0], CudaOps.ptr(src), m[1], src.dtype == DType.F64, CudaOps.ptr(dst), m[2], dst.dtype == DType.F64, false, 0);
    }

    /**
     * Every element of t = v (rounded to float32 for a float32 t). A dimension of stride 0 (an expand) is written once:
     * its elements are one location, all of which the host's loop set to the same value.
     */
    static void fill(Tensor t, double v) {
        requireDtype("fill", t);
        if (t.numel() == 0) return;
        int[] shape = t.shape.clone();
        for (int d = 0; d < shape.length; d++) if (t.strides[d] == 0) shape[d] = 1;
        long[][] m = merge(shape, t.strides);
        if (m[0].length > MAX_RANK) {   // as in copy: one call per index of an axis of several locations
            int a = splitAxis(t.shape, t.strides);
            for (int i = 0; i < t.shape[a]; i++) try (Tensor d = t.slice(a, i, i + 1)) { fill(d, v); }
            return;
        }
        Native.cudaStridedWrite(m[0], MemorySegment.NULL, null, false, CudaOps.ptr(t), m[1], t.dtype == DType.F64, true, v);
    }
}
