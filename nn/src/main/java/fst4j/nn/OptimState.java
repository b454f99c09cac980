package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.tensor.DType;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;

import java.util.Arrays;
import java.util.List;

/** The checks every optimizer's loadStateDict makes on an {@link Optimizer.State}'s "KIND.INDEX" tensors. */
final class OptimState {
    private OptimState() {}

    /** The parameter index of key "KIND.INDEX", refusing a kind who does not keep and an index with no parameter. */
    static int index(String key, String who, List<String> kinds, int params) {
        int dot = key.lastIndexOf('.');
        String kind = dot < 0 ? key : key.substring(0, dot);
        if (!kinds.contains(kind))
            throw new IllegalArgumentException(who + " state has '" + key + "', a kind of state " + who + " does not keep (its kinds: "
                    + String.join(", ", kinds) + ", each as KIND.INDEX)");
        int i;
        try {
            i = Integer.parseInt(key.substring(dot + 1));
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(who + " state has '" + key + "', whose index is not a number");
        }
        if (i < 0 || i >= params)
            throw new IllegalArgumentException(who + " state " + key + " has no parameter: this " + who + " has " + params);
        return i;
    }

    /** The kind of a key that {@link #index} accepted. */
    static String kind(String key) { return key.substring(0, key.lastIndexOf('.')); }

    /**
     * g can update w (a parameter flatten accepted: contiguous float32): open, contiguous float32, as many elements and on
     * w's device. Both optimizers check every gradient so before they step any parameter.
     */
    /**
     * Every parameter still open: a closed one (its module closed) has no gradient, so a step silently skipped it and did
     * nothing at all when the whole model was closed.
     */
    static void checkOpen(List<Var> params, String who) {
        for (int i = 0; i < params.size(); i++)
            if (params.get(i).isClosed())
                throw new IllegalStateException(who + ": parameter " + i + " is closed (was its module closed?); an optimizer steps open parameters only");
    }

    /** x >= 0 and finite (false for NaN): a learning rate, momentum, weight decay or eps an optimizer can step with. */
    static boolean finiteNonNegative(double x) { return x >= 0 && x != Double.POSITIVE_INFINITY; }

    static void checkGradient(Tensor w, Tensor g, String who) {
        g.check();
        if (!g.isContiguous() || g.dtype() != DType.F32 || g.numel() != w.numel() || g.device() != w.device())
            throw new IllegalStateException(who + ": gradient of a " + w.dtype() + " " + Shape.str(w.shape()) + " parameter on " + w.device()
                    + " is " + g.dtype() + " " + Shape.str(g.shape()) + " on " + g.device() + (g.isContiguous() ? "" : ", not contiguous"));
    }

    /** t can be p's state: open, float32 and of p's shape. */
    static void checkLike(String key, Tensor t, Var p, String who) {
        if (t.isClosed()) throw new IllegalArgumentException(who + " state " + key + " is closed");
        int[] want = p.shape(), got = t.shape();
        if (!Arrays.equals(want, got))
            throw new IllegalArgumentException(who + " state " + key + " has shape " + Shape.str(got) + ", its parameter " + Shape.str(want));
        if (t.dtype() != DType.F32)
            throw new IllegalArgumentException(who + " state " + key + " is " + t.dtype() + ", expected float32 as its parameter");
    }
}
