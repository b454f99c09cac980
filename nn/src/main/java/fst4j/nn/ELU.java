package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.Var;

/** torch.nn.ELU(alpha=1.0): {@link NN#elu}. */
public final class ELU extends Module {
    private final double alpha;

    public ELU() { this(1.0); }

    public ELU(double alpha) {
        if (!Double.isFinite(alpha)) throw new IllegalArgumentException("ELU: alpha must be finite, got " + alpha);
        this.alpha = alpha;
    }

    public double alpha() { return alpha; }

    @Override public Var forward(Var x) { return NN.elu(x, alpha); }
}
