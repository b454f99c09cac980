package fst4j.nn;

import fst4j.autograd.Gemm3;
import fst4j.autograd.Layers;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.Var;
import fst4j.tensor.Rng;

/** y = x W^T + b, W [out, in], through the Eq. 1-3 node with the given sparsity configuration. */
public final class Linear extends Module implements Sparse {
    public final int in, out;
    private final Var weight, bias;
    private Gemm3 node;
    private ReSprop resprop;   // the ReSprop preset's per-layer state, else null

    public Linear(int in, int out, boolean bias, SparseConfig cfg, Rng rng) {
        if (in <= 0 || out <= 0) throw new IllegalArgumentException("Linear needs positive sizes, got " + in + " -> " + out);
        this.in = in;
        this.out = out;
        double bound = 1 / Math.sqrt(in);   // PyTorch's default init
        this.weight = parameter("weight", rng.uniform(-bound, bound, out, in));
        this.bias = bias ? parameter("bias", rng.uniform(-bound, bound, out)) : null;
        this.node = new Gemm3(cfg);
        this.resprop = ReSprop.forConfig(null, cfg, salt());
    }

    private long salt() { return ((long) in * 31 + out) * 31 + 1; }

    public Var weight() { return weight; }

    /** This layer's ReSprop state where its configuration is the ReSprop preset's, else null. */
    public ReSprop resprop() { return resprop; }

    @Override public SparseConfig sparsity() { return node.config(); }
    @Override public void setSparsity(SparseConfig cfg) { Sparse.release(node.config(), cfg); node = new Gemm3(cfg); resprop = ReSprop.forConfig(resprop, cfg, salt()); }

    @Override
    public Var forward(Var x) {
        if (resprop == null) return Layers.linear(node, x, weight, bias);
        return resprop.around(Layers.linear(node, x, weight, null), bias);   // dY' for both products, dY for the bias
    }

    @Override public void close() {
        Sparse.release(node.config(), null);
        super.close();
    }

    /** Moves the parameters; tensors a sparsifier cached on the old device (ASP's mask) are freed, rebuilt where used next. */
    @Override public Module to(fst4j.tensor.Device d) {
        Sparse.release(node.config(), null);
        return super.to(d);
    }
}
