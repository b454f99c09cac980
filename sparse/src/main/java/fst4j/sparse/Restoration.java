package fst4j.sparse;

import fst4j.shim.Native;
import fst4j.tensor.Blas;
import fst4j.tensor.DType;
import fst4j.tensor.Tensor;

import java.util.Arrays;

/**
 * Information Restoration (fst-method.md, Eq. 8-10): before the Eq. 3 GEMM with the fixed mask, add to
 * each gradient position the scaled gradient of its neighbour along the flattened H*W axis of each image:
 * {@code out[j] = dY[j] + coeff * dY[j + shift]} inside every segment of H*W elements; past a segment's
 * end the neighbour wraps around the segment when {@code circular}, and nothing is added otherwise.
 * Runs the native {@code fst_shift_add} (float32; float64 by its definition in Java).
 */
public final class Restoration {
    private Restoration() {}

    /** The paper (Eq. 10): G = dY + dY T, i.e. coeff 1, neighbour j + 1 (the pruned one for Eq. 7), not circular. */
    public static final float PAPER_COEFF = 1f;
    public static final int PAPER_SHIFT = 1;
    /** The authors' code: dY + 0.03 * roll(dY, 1) along H*W, i.e. coeff 0.03, neighbour j - 1, circular. */
    public static final float AUTHORS_COEFF = 0.03f;
    public static final int AUTHORS_SHIFT = -1;

    /**
     * For a float32 tensor whose row-major layout is a sequence of segments of {@code segment} elements
     * (dY [N, C, H, W] or [C, N*H*W] with segment = H*W), a new tensor of the same shape with every
     * segment shifted-and-added. shift is +1 or -1.
     */
    public static Tensor shiftAdd(Tensor dY, int segment, float coeff, int shift, boolean circular) {
        dY.check();
        if (shift != 1 && shift != -1) throw new IllegalArgumentException("shift must be +1 or -1, got " + shift);
        if (segment <= 0 || dY.numel() % segment != 0)
            throw new IllegalArgumentException("segment " + segment + " does not divide the " + dY.numel() + " elements of " + Arrays.toString(dY.shape()));
        // float64 (a layer run in float64, as a gradcheck does): the definition in double, on the CPU
        if (dY.dtype() == DType.F64 && dY.device() == fst4j.tensor.Device.CPU) return shiftAddF64(dY, segment, coeff, shift, circular);
        if (dY.dtype() != DType.F32)
            throw new IllegalArgumentException("shiftAdd (the Information Restoration of FST3_IR and FST_CODE) takes float32, or float64 on the CPU;"
                    + " got " + dY.dtype() + " on " + dY.device());
        if (dY.device() != fst4j.tensor.Device.CPU) return fst4j.tensor.CudaOps.shiftAdd(dY, segment, coeff, shift, circular);
        Tensor src = dY.contiguous();
        Tensor out = Tensor.empty(dY.shape());
        try {
            long n = dY.numel();
            if (n > 0) Native.shiftAdd(src.data(), out.data(), 1, n, segment, shift, coeff, circular, Blas.threads());
        } catch (RuntimeException e) {
            out.close();
            throw e;
        } finally {
            src.close();
        }
        return out;
    }

    /** {@link #shiftAdd(Tensor, int, float, int, boolean)} for dY [N, C, H, W], segment = H*W. */
    public static Tensor shiftAddNCHW(Tensor dY, float coeff, int shift, boolean circular) {
        if (dY.dim() != 4) throw new IllegalArgumentException("wrong rank: shiftAddNCHW needs [N, C, H, W], got " + Arrays.toString(dY.shape()));
        if (dY.numel() == 0) {   // nothing to shift (an empty batch, or H*W = 0, which no segment length divides)
            if (shift != 1 && shift != -1) throw new IllegalArgumentException("shift must be +1 or -1, got " + shift);
            return Tensor.empty(dY.device(), dY.dtype(), dY.shape());
        }
        return shiftAdd(dY, Math.multiplyExact(dY.size(2), dY.size(3)), coeff, shift, circular);
    }

    /** {@link #shiftAdd} of a float64 CPU tensor: out[j] = dY[j] + coeff * dY[j + shift] in double, by the definition. */
    private static Tensor shiftAddF64(Tensor dY, int segment, float coeff, int shift, boolean circular) {
        java.lang.foreign.ValueLayout.OfDouble d = java.lang.foreign.ValueLayout.JAVA_DOUBLE_UNALIGNED;
        try (Tensor src = dY.contiguous()) {
            Tensor out = Tensor.empty(DType.F64, dY.shape());
            java.lang.foreign.MemorySegment in = src.data(), o = out.data();
            long n = dY.numel();
            double c = coeff;
            for (long s0 = 0; s0 < n; s0 += segment)
                for (int j = 0; j < segment; j++) {
                    int k = j + shift;
                    boolean inside = k >= 0 && k < segment;
                    if (!inside && circular) k = Math.floorMod(k, segment);
                    double v = in.getAtIndex(d, s0 + j);
                    o.setAtIndex(d, s0 + j, inside || circular ? v + c * in.getAtIndex(d, s0 + k) : v);
                }
            return out;
        }
    }

    /** The paper's restoration of dY [N, C, H, W]: dY + shift(dY, +1), not circular. */
    public static Tensor paper(Tensor dY) { return shiftAddNCHW(dY, PAPER_COEFF, PAPER_SHIFT, false); }

    /** The authors' code's restoration of dY [N, C, H, W]: dY + 0.03 * roll(dY, 1), circular per image. */
    public static Tensor authors(Tensor dY) { return shiftAddNCHW(dY, AUTHORS_COEFF, AUTHORS_SHIFT, true); }
}
