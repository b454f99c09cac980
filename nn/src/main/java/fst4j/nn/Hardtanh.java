package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.Var;

/** torch.nn.Hardtanh(min_val=-1, max_val=1): {@link NN#hardtanh}; torch's module, too, wants min below max. */
public final class Hardtanh extends Module {
    private final double min, max;

    public Hardtanh() { this(-1, 1); }

    public Hardtanh(double min, double max) {
        if (!(min < max)) throw new IllegalArgumentException("Hardtanh: min must be below max (neither NaN), got min " + min + ", max " + max);
        this.min = min;
        this.max = max;
    }

    @Override public Var forward(Var x) { return NN.hardtanh(x, min, max); }
}
