package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.Var;

/** torch.nn.GELU(approximate='none' | 'tanh'): {@link NN#gelu(Var, NN.GeluApproximate)}. */
public final class GELU extends Module {
    private final NN.GeluApproximate approximate;

    public GELU() { this(NN.GeluApproximate.NONE); }

    public GELU(NN.GeluApproximate approximate) {
        if (approximate == null) throw new IllegalArgumentException("GELU: approximate must be NONE or TANH, got null");
        this.approximate = approximate;
    }

    public NN.GeluApproximate approximate() { return approximate; }

    @Override public Var forward(Var x) { return NN.gelu(x, approximate); }
}
