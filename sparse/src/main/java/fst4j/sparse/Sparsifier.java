package fst4j.sparse;

import fst4j.tensor.Tensor;

/**
 * A pruning rule: {@link #mask(Tensor)} gives a 0/1 tensor (same shape and dtype as x) marking the kept
 * elements, {@link #apply(Tensor)} a copy of x with the others set to exactly 0 (so NaN/Inf in pruned
 * positions do not leak through a multiply). Groups of 4 are formed along {@link #axis()} (negative
 * axes count from the end); an axis whose length is not a multiple of 4 is treated as zero-padded to the
 * next multiple, and the output keeps the input shape. {@link #accelerable()} tells whether the result
 * is a 2:4 pattern along the GEMM's K axis that a sparse tensor core (or {@link SparseGemm}) could use.
 *
 * <p>Stateful rules ({@link Transposable24}, {@link AuthorsFixed24}) count each {@code mask} or
 * {@code apply} call as one step. Instances of the stateful classes are not thread-safe.
 *
 * <p>Ties in magnitude are broken deterministically: the lower index wins. Magnitudes are compared with
 * {@link Double#compare}, so NaN counts as the largest.
 */
public sealed interface Sparsifier
        permits Sparsifier.Dense, Sparsifier.Magnitude24, Sparsifier.SortMagnitude24, Sparsifier.Fixed24,
                Sparsifier.TopK, Transposable24, AuthorsFixed24 {

    /** The axis along which groups (or lines, for top-k) are formed. */
    int axis();

    /** True when every output is 2:4 along {@link #axis()}: at most 2 non-zeros in every group of 4. */
    boolean accelerable();

    /** 0/1 mask of the kept elements, same shape and dtype as x (a new tensor). */
    default Tensor mask(Tensor x) { return Masks.materialize(Masks.keep(this, x, Masks.values(this, x)), x, null); }

    /**
     * A new tensor: x where kept, 0 elsewhere. Off the CPU (float32) the 0/1 mask is selected on the host, from x's values
     * only where the rule needs them, and applied on the device by one select (kept: x, else +0.0).
     */
    default Tensor apply(Tensor x) {
        if (x.device() != fst4j.tensor.Device.CPU && x.dtype() == fst4j.tensor.DType.F32) return Masks.applyOnDevice(this, x);
        Tensor fixed = Masks.fixedPatternNative(this, x);   // the fixed patterns on float32: one native pass
        if (fixed != null) return fixed;
        double[] v = x.toDoubleArray();
        return Masks.materialize(Masks.keep(this, x, v), x, v);
    }

    /** No pruning: the mask is all ones, apply copies. Not a 2:4 pattern. */
    record Dense() implements Sparsifier {
        @Override public int axis() { return -1; }
        @Override public boolean accelerable() { return false; }
    }

    /**
     * Magnitude 2:4 (fst-method.md, FST step 1 and 2; Table 1): in every group of 4 consecutive elements
     * along the axis keep the 2 largest |x| (lower index wins ties). Among the 6 two-element choices of
     * a group this keeps one with the largest |x| sum; applying it twice changes nothing.
     */
    record Magnitude24(int axis) implements Sparsifier {
        @Override public boolean accelerable() { return true; }

        /** A float32 matrix is pruned by the 2:4 kernels ({@link #fast24}); anything else as the interface does. */
        @Override public Tensor apply(Tensor x) {
            Tensor t = fast24(x, axis);
            return t != null ? t : Sparsifier.super.apply(x);
        }
    }

    /**
     * The same rule as {@link Magnitude24}, marked as the per-step sort-based pruning of activations or
     * activation gradients whose cost and accuracy Tables 1 and 2 of the paper report (S(dY), S(X^T)).
     */
    record SortMagnitude24(int axis) implements Sparsifier {
        @Override public boolean accelerable() { return true; }

        /** A float32 matrix (dY, or X's lowering: GG, GX, WG, WX) is pruned by the 2:4 kernels, as {@link Magnitude24}. */
        @Override public Tensor apply(Tensor x) {
            Tensor t = fast24(x, axis);
            return t != null ? t : Sparsifier.super.apply(x);
        }
    }

    /**
     * Magnitude 2:4 of a float32 matrix by the 2:4 kernels, which make the same selection bit for bit as the host path
     * (NativePruneTest, CudaSparseTest): on CUDA fst_k_prune24 along rows (axis 1) or fst_k_prune24_t along columns
     * (axis 0); on the CPU the shim's fused prune (prune.c) with its masked dense output, along rows, or on the
     * transpose for axis 0. Null where neither applies and the interface's host path must run (another rank or dtype,
     * no shim, or an axis a matrix does not have, which that path then reports).
     */
    private static Tensor fast24(Tensor x, int axis) {
        if (x.dim() != 2 || x.dtype() != fst4j.tensor.DType.F32) return null;
        boolean rows = axis == 1 || axis == -1;
        if (!rows && axis != 0 && axis != -2) return null;
        if (x.device() == fst4j.tensor.Device.CUDA)
            return rows ? fst4j.tensor.CudaOps.prune24Masked(x) : fst4j.tensor.CudaOps.prune24TransposedMasked(x);
        if (x.device() != fst4j.tensor.Device.CPU || !fst4j.shim.Native.isLoaded()) return null;
        int threads = fst4j.tensor.Blas.threads();
        if (rows) {
            Tensor out = Tensor.empty(x.shape());
            try (Compressed24 c = Compressed24.pruneCompress(x, out, threads)) {
                return out;
            } catch (RuntimeException | Error e) {
                out.close();
                throw e;
            }
        }
        try (Tensor xt = x.t(); Tensor out = Tensor.empty(x.size(1), x.size(0))) {
            try (Compressed24 c = Compressed24.pruneCompress(xt, out, threads); Tensor back = out.t()) { return back.contiguous(); }
        }
    }

    /**
     * Fixed-position 2:4 (Eq. 7): keep 0-based positions 0, 2, 4, ... along the axis (1, 3, 5, ...
     * 1-based), independent of the values. Every group of 4 keeps exactly its positions 0 and 2.
     */
    record Fixed24(int axis) implements Sparsifier {
        @Override public boolean accelerable() { return true; }
    }

    /**
     * Unstructured top-k (meProp-style): along every line of the axis keep the ceil(ratio * length)
     * largest |x| (lower index wins ties). Not a 2:4 pattern.
     */
    record TopK(int axis, double ratio) implements Sparsifier {
        public TopK {
            if (!(ratio >= 0 && ratio <= 1)) throw new IllegalArgumentException("top-k ratio must be in [0, 1], got " + ratio);
        }
        @Override public boolean accelerable() { return false; }
    }
}
