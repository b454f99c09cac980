package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.sparse.Sparsifier;
import fst4j.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * SR-STE's sparse-refined decay (Zhou et al. 2021; fst-method.md step 1): before the optimizer step, add
 * lambda * (W - S(W)) to the gradient of every weight whose forward is magnitude-2:4 pruned, so that pruned
 * weights decay. Works with any optimizer (it only edits gradients). The straight-through part is the
 * Eq. 1-3 node's: W's gradient is the gradient with respect to S(W).
 */
public final class SrSte {
    private SrSte() {}
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;
    public static final double DEFAULT_LAMBDA = 2e-4;

    /** Applies the decay to every eligible layer of model; returns how many weights it touched. */
    public static int addDecay(Module model, double lambda) {
        int touched = 0;
        for (Sparse layer : Models.sparseLayers(model).values()) {
            Sparsifier s = layer.sparsity().w();
            if (!(s instanceof Sparsifier.Magnitude24)) continue;   // TSM's stateful mask is not re-evaluated here
            Var w = layer.weight();
            if (w.grad() == null) continue;
            Tensor wv = w.value();
            int rows = wv.size(0);
            try (Tensor wm = wv.reshape(rows, -1); Tensor sw = s.apply(wm)) {
                MemorySegment ws = wv.data(), ss = sw.data(), gs = w.grad().data();
                long n = wv.numel();
                float l = (float) lambda;
                for (long i = 0; i < n; i++) {
                    float wi = ws.getAtIndex(F, i);
                    gs.setAtIndex(F, i, gs.getAtIndex(F, i) + l * (wi - ss.getAtIndex(F, i)));
                }
            }
            touched++;
        }
        return touched;
    }
}
