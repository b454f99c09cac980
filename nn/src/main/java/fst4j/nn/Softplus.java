package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.Var;

/** torch.nn.Softplus(beta=1, threshold=20): {@link NN#softplus(Var, double, double)}. */
public final class Softplus extends Module {
    private final double beta, threshold;

    public Softplus() { this(1, 20); }

    public Softplus(double beta, double threshold) {
        if (!Double.isFinite(beta) || beta == 0) throw new IllegalArgumentException("Softplus: beta must be finite and non-zero, got " + beta);
        if (Double.isNaN(threshold)) throw new IllegalArgumentException("Softplus: threshold must not be NaN");
        this.beta = beta;
        this.threshold = threshold;
    }

    @Override public Var forward(Var x) { return NN.softplus(x, beta, threshold); }
}
