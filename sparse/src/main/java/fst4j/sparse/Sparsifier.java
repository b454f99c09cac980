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
 * {@code apply} call as one step. Every rule may be called from several threads at once (a layer's forward on each
 * thread that runs the model in eval mode): the built-in ones are stateless records or keep their state under their
 * own lock; a {@link Custom} rule with state must guard it itself.
 *
 * <p>Ties in magnitude are broken deterministically: the lower index wins. Magnitudes are compared with
 * {@link Double#compare}, so NaN counts as the largest.
 */
public sealed interface Sparsifier
        permits Sparsifier.Dense, Sparsifier.Magnitude24, Sparsifier.MagnitudeNM, Sparsifier.SortMagnitude24, Sparsifier.Fixed24,
                Sparsifier.TopK, Transposable24, AuthorsFixed24, Sparsifier.Custom {

    /** The axis along which groups (or lines, for top-k) are formed. */
    int axis();

    /** True when every output is 2:4 along {@link #axis()}: at most 2 non-zeros in every group of 4. */
    boolean accelerable();

    /** 0/1 mask of the kept elements, same shape and dtype as x (a new tensor). */
    default Tensor mask(Tensor x) { return Masks.materialize(Masks.keep(this, x, Masks.values(this, x)), x, null); }

    /**
     * A new tensor: x where kept, 0 elsewhere. On float32 the magnitude rules of a matrix and the fixed patterns run as
     * native or device kernels, and off the CPU the other rules' host selection is applied on the device by one select
     * (kept: x, else +0.0); the same values as the host selection ({@link Masks#apply}).
     */
    default Tensor apply(Tensor x) { return Masks.apply(this, x); }

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
    }

    /**
     * Magnitude N:M: in every group of {@code m} consecutive elements along the axis keep the {@code n} largest |x|, with
     * {@link Magnitude24}'s ties and NaN (compared by {@link Double#compare}: NaN largest, all NaNs equal, -0.0 equal to
     * +0.0; the lower index wins a tie) and its padding (a group cut short by the axis end counts as zero-padded, and
     * padding never wins over a real element, being later: such a group keeps min(n, its length)). Among the C(m, n)
     * choices of a group this keeps one with the largest |x| sum; applying it twice changes nothing. With n = 2, m = 4 it
     * keeps what Magnitude24 keeps, bit for bit, but it is never {@link #accelerable}: the Eq. 1-3 node multiplies the
     * masked dense operand and does not hand it to the 2:4 kernels. {@link #magnitude} makes Magnitude24 for 2:4 and
     * this for any other pattern. On a float32 CUDA tensor apply runs as one kernel (CudaOps.pruneNM), on a float32 CPU
     * tensor as one pass of the shim (fst_prune_nm, nm.c); float64 tensors take the selection on the host.
     */
    record MagnitudeNM(int n, int m, int axis) implements Sparsifier {
        public MagnitudeNM { new NM(n, m); }   // refuses N >= M, M < 2, N < 1 and M above NM.MAX_M with their message
        public MagnitudeNM(NM nm, int axis) { this(nm.n(), nm.m(), axis); }
        /** The pattern. */
        public NM nm() { return new NM(n, m); }
        @Override public boolean accelerable() { return false; }
        @Override public String toString() { return "MagnitudeNM[" + n + ":" + m + ", axis=" + axis + "]"; }
    }

    /**
     * Magnitude pruning at pattern nm along axis: {@link Magnitude24} (with its kernels and its 2:4 products) for 2:4, else
     * {@link MagnitudeNM}.
     */
    static Sparsifier magnitude(NM nm, int axis) {
        return nm.isTwoFour() ? new Magnitude24(axis) : new MagnitudeNM(nm, axis);
    }

    /**
     * The same rule as {@link Magnitude24}, marked as the per-step sort-based pruning of activations or
     * activation gradients whose cost and accuracy Tables 1 and 2 of the paper report (S(dY), S(X^T)).
     */
    record SortMagnitude24(int axis) implements Sparsifier {
        @Override public boolean accelerable() { return true; }
    }

    /**
     * Fixed-position 2:4 (Eq. 7): keep 0-based positions 0, 2, 4, ... along the axis (1, 3, 5, ...
     * 1-based), independent of the values. Every group of 4 keeps exactly its positions 0 and 2.
     */
    record Fixed24(int axis) implements Sparsifier {
        @Override public boolean accelerable() { return true; }
    }

    /**
     * A rule of your own, for any slot. {@link #keep} gets x's values (logical row-major order, as float64) and its shape,
     * and returns which elements to keep; {@code apply} zeroes the others exactly as for the built-in rules, on any
     * device (the selection runs on the host, the values are copied there unless the rule says it reads none:
     * {@link Custom#readsValues}). Say {@link #accelerable()} only if every
     * output is 2:4 along {@link #axis()}: a pruned W is then compressed for the 2:4 product, and the compression names
     * the first group of 4 that keeps more than 2. A rule with state (a step counter, a seed) that also implements
     * {@link StatefulSparsifier} has it written into the trainer's checkpoints; checkpoints record the method, not custom
     * rules, so to resume, install the same rules on the new trainer's model before its {@code load} (which refuses a
     * checkpoint holding sparsifier state that no layer of the model takes). Threads running the layer's forward at once
     * call {@link #keep} (and {@link #keptMask}) at once: a rule with state guards it (ASP's frozen mask synchronizes).
     * {@link #of} makes one from a lambda (its record compares the rule by identity):
     * <pre>{@code
     * Sparsifier smallest24 = Sparsifier.Custom.of("smallest 2:4", 1, true, (v, shape) -> {
     *     boolean[] keep = new boolean[v.length];            // keep the 2 smallest |x| of every 4 along the last axis
     *     ...
     *     return keep;
     * });
     * SparseConfig cfg = SparseConfig.Method.FST2.config().withW(smallest24);
     * }</pre>
     */
    non-sealed interface Custom extends Sparsifier {
        /** Which of x's elements to keep: one flag per value, in the values' order (values is null if not {@link #readsValues}). */
        boolean[] keep(double[] values, int[] shape);

        /**
         * False for a rule whose kept set does not depend on the values (a mask fixed once, as ASP's, or one loaded from
         * elsewhere): {@link #keep} then gets null, nothing is copied off a device to select, and a float32 CPU tensor is
         * pruned by a select (x where kept, +0.0 elsewhere, the same bits; the shim's from 1024 contiguous elements, with
         * the library loaded) instead of copying its values through Java arrays.
         */
        default boolean readsValues() { return true; }

        /**
         * For a rule that reads no values: its kept set as a ready 0/1 tensor of x's shape, dtype and device, owned and
         * reused by the rule (the caller must not close it), so that apply selects with it and builds nothing; null (the
         * default) to have the mask built from {@link #keep} on every call. A rule that returns one should also be
         * {@link AutoCloseable}, so that the layer holding it can free the tensor.
         */
        default Tensor keptMask(Tensor x) { return null; }

        /** The selection of {@link #keep}, as a lambda. */
        @FunctionalInterface
        interface Rule { boolean[] keep(double[] values, int[] shape); }

        /** A stateless rule named name (its toString), grouping along axis; twoFour: every output is 2:4 along it. */
        static Custom of(String name, int axis, boolean twoFour, Rule rule) { return new Lambda(name, axis, twoFour, rule); }

        /** {@link #of}'s rule. */
        record Lambda(String name, int axis, boolean accelerable, Rule rule) implements Custom {
            public Lambda {
                if (name == null || rule == null) throw new IllegalArgumentException("a custom sparsifier needs a name and a rule");
            }
            @Override public boolean[] keep(double[] values, int[] shape) { return rule.keep(values, shape); }
            @Override public String toString() { return name; }
        }
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
