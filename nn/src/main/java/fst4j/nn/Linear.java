package fst4j.nn;

import fst4j.autograd.Layers;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.Var;
import fst4j.tensor.Rng;

/**
 * y = x W^T + b, W [out, in], through the Eq. 1-3 node with the given sparsity configuration. x is [*, in] as in
 * torch.nn.Linear: leading axes are flattened into the node's batch and restored ([B, T, in] gives [B, T, out]; a 2-D
 * x goes through unchanged), see {@link Layers#linear}. A 2:4 rule along K = in where in is not a multiple of 4 counts the
 * last group as zero-padded, so it keeps up to 2 of its in % 4 real weights: with in = 6, 4 of each row's 6 weights
 * (the first group 2 of 4, the last 2 of 2), a density above 50 % (as the convolutions' K, README "Sparsity configurations").
 */
public final class Linear extends NodeLayer {
    public final int in, out;
    private final Var weight, bias;

    public Linear(int in, int out, boolean bias, SparseConfig cfg, Rng rng) {
        if (in <= 0 || out <= 0) throw new IllegalArgumentException("Linear needs positive sizes, got " + in + " -> " + out);
        super(cfg, ((long) in * 31 + out) * 31 + 1);
        this.in = in;
        this.out = out;
        double bound = 1 / Math.sqrt(in);   // PyTorch's default init
        this.weight = parameter("weight", rng.uniform(-bound, bound, out, in));
        this.bias = bias ? parameter("bias", rng.uniform(-bound, bound, out)) : null;
    }

    public Var weight() { return weight; }

    @Override protected String extraRepr() {
        return "in_features=" + in + ", out_features=" + out + ", bias=" + (bias != null) + ", sparsity=" + sparsity().name();
    }

    @Override
    public Var forward(Var x) {
        ReSprop resprop = resprop();
        if (resprop == null) return Layers.linear(node(), x, weight, bias);
        // dY' for both products, dY for the bias; leading axes flattened around both, as Layers.linear does
        return Layers.overRows(x, in, x2 -> resprop.around(Layers.linear(node(), x2, weight, null), bias));
    }

    // this type, not Module, for chained calls (Module.train's note)
    @Override public Linear train(boolean on) { super.train(on); return this; }
    @Override public Linear train() { return train(true); }
    @Override public Linear eval() { return train(false); }
    @Override public Linear to(fst4j.tensor.Device d) { super.to(d); return this; }
}
