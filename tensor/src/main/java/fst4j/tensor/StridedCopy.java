package fst4j.tensor;

import fst4j.shim.Native;

import java.lang.foreign.MemorySegment;

/**
 * Float32 copies between two layouts of one shape on the shim's threads ({@code fst_copy_f32}): the layout changes of
 * a training step (an NCHW permute after Eq. 1, a blocked convolution's image gathers and scatters) ran as
 * single-threaded Java copies while the shim's second thread waited. Callers keep their Java loop for what this
 * declines (small copies, other dtypes, the GPU, overlapping storage).
 */
final class StridedCopy {
    /** Below this many elements a downcall and the hand-off to the other thread cost more than the Java copy. */
    static final long MIN_NATIVE = 1 << 15;
    /** -Dfst4j.copy.native=false keeps every copy in Java (for A/B timing). */
    static final boolean ENABLED = Boolean.parseBoolean(System.getProperty("fst4j.copy.native", "true"));

    private StridedCopy() {}

    /**
     * Whether a copy of n elements between a and b goes to the shim: both float32 on the CPU, separate storage (the
     * native copy does not handle overlap), big enough, enabled and the library loaded.
     */
    static boolean applies(Tensor a, Tensor b, long n) {
        return a.dtype == DType.F32 && b.dtype == DType.F32 && a.storage.device == Device.CPU && b.storage.device == Device.CPU
                && a.storage != b.storage && n >= MIN_NATIVE && ENABLED && Native.isLoaded();
    }

    /** dst = src (the same shape), natively; false (nothing copied) where it does not apply. */
    static boolean tryCopy(Tensor dst, Tensor src) {
        if (dst.shape.length == 0 || dst.shape.length > 8 || !applies(dst, src, dst.numel())) return false;
        copy(dst.storage.segment(), dst.offset, dst.shape, dst.strides, src.storage.segment(), src.offset, src.strides);
        return true;
    }

    /**
     * dst[doff + sum i_d ds[d]] = src[soff + sum i_d ss[d]] over shape (float32 elements of the two segments, which must
     * not overlap), after checking that both views lie inside their segments.
     */
    static void copy(MemorySegment dseg, long doff, int[] shape, long[] ds, MemorySegment sseg, long soff, long[] ss) {
        long[] sh = new long[shape.length];
        for (int d = 0; d < shape.length; d++) sh[d] = shape[d];
        checkView("destination", dseg, doff, shape, ds);
        checkView("source", sseg, soff, shape, ss);
        Native.copyF32(dseg, doff, sseg, soff, sh, ds, ss, Blas.threads());
    }

    /** The lowest and highest element a view touches lie inside the segment (float32 elements). */
    private static void checkView(String what, MemorySegment seg, long off, int[] shape, long[] strides) {
        long lo = off, hi = off;
        boolean overflow = false;
        for (int d = 0; d < shape.length; d++) {
            if (shape[d] == 0) return;   // nothing is touched
            // exact: a wrapped span (strides near 2^62) would pass the test below and send the copy outside the segment
            try {
                long span = Math.multiplyExact(shape[d] - 1L, strides[d]);
                if (span < 0) lo = Math.addExact(lo, span); else hi = Math.addExact(hi, span);
            } catch (ArithmeticException e) { overflow = true; }
        }
        if (overflow || lo < 0 || hi >= seg.byteSize() / 4)
            throw new IndexOutOfBoundsException("strided copy: " + what + " elements " + lo + ".." + hi + " outside a storage of "
                    + seg.byteSize() / 4 + " floats");
    }
}
