package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.Var;
import fst4j.tensor.Rng;

/**
 * Inverted dropout; identity in eval mode. Draws its masks from the Rng it is given, which {@link #stateDict()} does not
 * hold: to resume training exactly, save {@code rng().state()} with the checkpoint and {@code setState} it back.
 */
public final class Dropout extends Module {
    private final double p;
    private final Rng rng;
    public Dropout(double p, Rng rng) {
        if (!(p >= 0 && p <= 1)) throw new IllegalArgumentException("dropout probability must be in [0, 1], got " + p);
        if (rng == null && p > 0) throw new IllegalArgumentException("Dropout(" + p + ") needs an Rng for its masks, got null");
        this.p = p;
        this.rng = rng;
    }
    /** The generator of the masks (its state is what a checkpoint must add to resume exactly). */
    public Rng rng() { return rng; }

    @Override public Var forward(Var x) { return NN.dropout(x, p, isTraining(), rng); }

    // this type, not Module, for chained calls (Module.train's note)
    @Override public Dropout train(boolean on) { super.train(on); return this; }
    @Override public Dropout train() { return train(true); }
    @Override public Dropout eval() { return train(false); }
    @Override public Dropout to(fst4j.tensor.Device d) { super.to(d); return this; }
}
