package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.shim.Native;
import fst4j.sparse.Sparsifier;
import fst4j.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.IdentityHashMap;
import java.util.Map;

/**
 * SR-STE's sparse-refined decay (Zhou et al. 2021; fst-method.md step 1): before the optimizer step, add
 * lambda * (W - S(W)) to the gradient of every weight whose forward is magnitude-2:4 pruned (or magnitude N:M,
 * {@link Sparsifier.MagnitudeNM}, with S that rule: a separate pass before the step, on the CPU by the shim's
 * fst_srste_decay_nm (Java's decayPrunedNM without it) and on CUDA by one kernel), so that pruned weights decay. Works with any optimizer (it only edits gradients). The straight-through part is the
 * Eq. 1-3 node's: W's gradient is the gradient with respect to S(W).
 */
public final class SrSte {
    private SrSte() {}
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;
    public static final double DEFAULT_LAMBDA = 2e-4;

    /**
     * grad += lambda * w at the weights magnitude 2:4 (along each row of the [rows, k] matrix) prunes, i.e.
     * lambda * (W - S(W)), in place and without allocating. Same rule as {@link Sparsifier.Magnitude24}: the
     * 2 largest |w| of each group of 4 are kept, ties to the lower index, NaN largest; a last partial group
     * counts as zero-padded (padding is never kept over a real weight of equal magnitude, being later).
     */
    static void decayPruned(MemorySegment w, MemorySegment g, int rows, int k, float lambda) {
        decayPrunedNM(w, g, rows, k, 2, 4, lambda);   // the N:M loop at 2:4: a short group's zero padding never beats a weight
    }

    /**
     * {@link #decayPruned} for magnitude N:M ({@link Sparsifier.MagnitudeNM}, its rule: the n largest |w| of each group
     * of m along a row kept, ties to the lower index, NaN largest, a short last group among its real weights): grad +=
     * lambda * w at every other weight, in place.
     */
    static void decayPrunedNM(MemorySegment w, MemorySegment g, int rows, int k, int n, int m, float lambda) {
        float[] a = new float[m];
        for (int r = 0; r < rows; r++) {
            long base = (long) r * k;
            for (int g0 = 0; g0 < k; g0 += m) {
                int cnt = Math.min(m, k - g0);
                for (int i = 0; i < cnt; i++) a[i] = Math.abs(w.getAtIndex(F, base + g0 + i));
                for (int i = 0; i < cnt; i++) {
                    int beaten = 0;
                    for (int j = 0; j < cnt; j++) {
                        if (j == i) continue;
                        int c = Float.compare(a[j], a[i]);
                        if (c > 0 || (c == 0 && j < i)) beaten++;
                    }
                    if (beaten >= n) {
                        long at = base + g0 + i;
                        g.setAtIndex(F, at, g.getAtIndex(F, at) + lambda * w.getAtIndex(F, at));
                    }
                }
            }
        }
    }

    /**
     * Applies the decay to every eligible layer of model; returns how many weights it touched. Eligible: a layer whose W
     * rule is magnitude 2:4 or N:M along K ({@link Sparsifier.Magnitude24}, {@link Sparsifier.SortMagnitude24},
     * {@link Sparsifier.MagnitudeNM}) and whose weight has a gradient (so 0 before the first backward). Other rules
     * (TSM's stateful transposable mask, fixed patterns, {@link Sparsifier.Custom}) are skipped, as S(W) would have to be
     * recomputed by a rule that may keep state: for such a layer add lambda * (W - S(W)) to its gradient yourself.
     */
    public static int addDecay(Module model, double lambda) {
        Map<Var, Integer> rows = decayed(model);
        Map<Var, Sparsifier.MagnitudeNM> nm = decayedNM(model);
        rows.forEach((w, k) -> decay(w, k, (float) lambda));
        nm.forEach((w, rule) -> decayNM(w, rule, (float) lambda));
        return rows.size() + nm.size();
    }

    /**
     * {@link #addDecay} and then {@code opt.step()}. With SGD the decay is fused into the update where it can (float32 on
     * the CPU, native library loaded, rows a multiple of 4 long): one pass over each weight instead of two, the same bits,
     * and those gradients are left without the decay (the trainer zeroes them next). Any other optimizer (AdamW, one of
     * your own) gets the decayed gradients, as SR-STE's decay is part of the gradient. Returns how many weights it decayed.
     */
    public static int stepWithDecay(Module model, Optimizer opt, double lambda) {
        Map<Var, Integer> rows = decayed(model);
        // N:M weights get their decay into the gradient first (no fused pass), then the optimizer's plain step
        Map<Var, Sparsifier.MagnitudeNM> nm = decayedNM(model);
        nm.forEach((w, rule) -> decayNM(w, rule, (float) lambda));
        if (opt instanceof SGD sgd) {
            sgd.step(rows, (float) lambda);
        } else {
            rows.forEach((w, k) -> decay(w, k, (float) lambda));
            opt.step();
        }
        return rows.size() + nm.size();
    }

    /**
     * The weights the decay applies to (magnitude-2:4 forward, with a gradient), each with the length of the rows its
     * groups of 4 run along (the weight as a matrix [size(0), numel / size(0)]).
     */
    static Map<Var, Integer> decayed(Module model) {
        Map<Var, Integer> rows = new IdentityHashMap<>();
        Models.sparseLayers(model).forEach((name, layer) -> {
            Sparsifier s = layer.sparsity().w();
            // magnitude 2:4 (the sort-based rule keeps the same set); TSM's stateful mask is not re-evaluated here
            int axis = s instanceof Sparsifier.Magnitude24 m ? m.axis() : s instanceof Sparsifier.SortMagnitude24 m ? m.axis() : Integer.MIN_VALUE;
            if (axis == Integer.MIN_VALUE) return;
            // the decay walks W [Cout, K] by rows of K: a rule along Cout decayed the weights its S(W) keeps, silently
            if (axis != 1 && axis != -1)
                throw new IllegalStateException("SR-STE decays 2:4 weights along K (axis 1 of W [Cout, K]); layer " + name + " prunes W by " + s);
            Var w = layer.weight();
            if (w.grad() == null) return;
            Tensor wv = w.value(), g = w.grad();
            if (!g.isContiguous() || g.numel() != wv.numel() || !wv.isContiguous())
                throw new IllegalStateException("SR-STE needs a contiguous weight and gradient of the same size (layer " + name + ")");
            rows.put(w, (int) (wv.numel() / wv.size(0)));
        });
        return rows;
    }

    /**
     * The weights whose forward is magnitude N:M ({@link Sparsifier.MagnitudeNM}) with a gradient, each with its rule; the
     * groups must run along K (axis 1 of W [Cout, K], the rows the decay walks), as the presets' do.
     */
    static Map<Var, Sparsifier.MagnitudeNM> decayedNM(Module model) {
        Map<Var, Sparsifier.MagnitudeNM> out = new IdentityHashMap<>();
        Models.sparseLayers(model).forEach((name, layer) -> {
            if (!(layer.sparsity().w() instanceof Sparsifier.MagnitudeNM s)) return;
            if (s.axis() != 1 && s.axis() != -1)
                throw new IllegalStateException("SR-STE decays N:M weights along K (axis 1 of W [Cout, K]); layer " + name + " prunes W by " + s);
            Var w = layer.weight();
            if (w.grad() == null) return;
            Tensor wv = w.value(), g = w.grad();
            if (!g.isContiguous() || g.numel() != wv.numel() || !wv.isContiguous())
                throw new IllegalStateException("SR-STE needs a contiguous weight and gradient of the same size (layer " + name + ")");
            out.put(w, s);
        });
        return out;
    }

    /** Whether float32 CPU weights take the shim's fst_srste_decay_nm (the same bits as decayPrunedNM; tests switch it off). */
    static boolean nativeNM = !Boolean.getBoolean("fst4j.nm.java");

    /** grad(w) += lambda * (w - S(w)) for w's N:M rule along rows of numel / size(0): the shim's pass, or Java's without it. */
    static void decayNM(Var w, Sparsifier.MagnitudeNM rule, float lambda) {
        Tensor wv = w.value(), g = w.grad();
        int k = (int) (wv.numel() / wv.size(0)), rows = wv.size(0);
        if (wv.device() == fst4j.tensor.Device.CUDA) fst4j.tensor.CudaOps.srsteDecayNM(wv, g, rows, k, rule.n(), rule.m(), lambda);
        else if (nativeNM && Native.isLoaded() && wv.dtype() == fst4j.tensor.DType.F32 && g.dtype() == fst4j.tensor.DType.F32) Native.srsteDecayNM(wv.data(), g.data(), rows, k, rule.n(), rule.m(), lambda, fst4j.tensor.Blas.threads());
        else decayPrunedNM(wv.data(), g.data(), rows, k, rule.n(), rule.m(), lambda);
    }

    /** grad(w) += lambda * (w - S(w)) along rows of k. */
    static void decay(Var w, int k, float lambda) {
        Tensor wv = w.value(), g = w.grad();
        int rows = (int) (wv.numel() / k);
        if (wv.device() == fst4j.tensor.Device.CUDA) fst4j.tensor.CudaOps.srsteDecay(wv, g, rows, k, lambda);
        else if (Native.isLoaded()) Native.srsteDecay(wv.data(), g.data(), rows, k, lambda, fst4j.tensor.Blas.threads());
        else decayPruned(wv.data(), g.data(), rows, k, lambda);
    }
}
