package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.Var;

/** torch.nn.LeakyReLU(negative_slope=0.01): {@link NN#leakyRelu}. */
public final class LeakyReLU extends Module {
    private final double negativeSlope;

    public LeakyReLU() { this(0.01); }

    public LeakyReLU(double negativeSlope) {
        if (!Double.isFinite(negativeSlope)) throw new IllegalArgumentException("LeakyReLU: negative slope must be finite, got " + negativeSlope);
        this.negativeSlope = negativeSlope;
    }

    public double negativeSlope() { return negativeSlope; }

    @Override public Var forward(Var x) { return NN.leakyRelu(x, negativeSlope); }
}
