package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.Var;
import fst4j.tensor.Rng;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;

/**
 * torch.nn.MultiheadAttention(embed, heads, dropout, bias, batch_first=True) on [B, T, E]: children "in_proj" (one
 * {@link Linear} E -> 3E, torch's in_proj_weight / in_proj_bias as its weight / bias, so q, k, v come from one product)
 * and "out_proj" (E -> E). Both are Eq. 1-3 nodes under the configurations given (2:4 where a method prunes W); the
 * attention's own products, scores q k^T and weights x v, are activation x activation and stay dense
 * ({@link NN#scaledDotProductAttention}). Init as torch's: in_proj xavier-uniform, both biases zero, out_proj's weight
 * Linear's default. Dropout on the attention weights in training only; no averaged weights are returned.
 */
public final class MultiheadAttention extends Module {
    public final int embed, heads;
    private final double dropout;
    private final Rng rng;
    private final Linear inProj, outProj;

    public MultiheadAttention(int embed, int heads, double dropout, boolean bias, SparseConfig inCfg, SparseConfig outCfg, Rng rng) {
        if (embed <= 0 || heads <= 0 || embed % heads != 0)
            throw new IllegalArgumentException("MultiheadAttention needs embed divisible by heads (both positive), got embed " + embed + ", heads " + heads);
        if (!(dropout >= 0 && dropout < 1)) throw new IllegalArgumentException("dropout probability must be in [0, 1), got " + dropout);
        this.embed = embed;
        this.heads = heads;
        this.dropout = dropout;
        this.rng = rng;
        this.inProj = child("in_proj", new Linear(embed, 3 * embed, bias, inCfg, rng));
        this.outProj = child("out_proj", new Linear(embed, embed, bias, outCfg, rng));
        double xavier = Math.sqrt(6.0 / (embed + 3 * embed));
        try (Tensor w = rng.uniform(-xavier, xavier, 3 * embed, embed)) { inProj.weight().value().copyFrom(w); }
        if (bias) {
            inProj.namedParameters().get("bias").value().fill(0);
            outProj.namedParameters().get("bias").value().fill(0);
        }
    }

    public Linear inProj() { return inProj; }
    public Linear outProj() { return outProj; }

    /** Self-attention of x [B, T, E] without a mask. */
    @Override public Var forward(Var x) { return forward(x, null, false); }

    /** Self-attention of x [B, T, E]; attnMask additive (broadcast to [B, heads, T, T]) or causal (not both). */
    public Var forward(Var x, Tensor attnMask, boolean causal) {
        int[] s = x.shape();
        if (s.length != 3 || s[2] != embed)
            throw new IllegalArgumentException("shape mismatch: MultiheadAttention(" + embed + ") needs x [B, T, " + embed + "], got " + Shape.str(s));
        Var qkv = inProj.forward(x);   // [B, T, 3E]
        Var q = heads(qkv.slice(2, 0, embed)), k = heads(qkv.slice(2, embed, 2 * embed)), v = heads(qkv.slice(2, 2 * embed, 3 * embed));
        double p = isTraining() ? dropout : 0;
        Var o = NN.scaledDotProductAttention(q, k, v, attnMask, causal, p, rng);   // [B, H, T, Dh]
        return outProj.forward(o.permute(0, 2, 1, 3).reshape(s[0], s[1], embed));
    }

    /** [B, T, E] -> [B, heads, T, E / heads]. */
    private Var heads(Var t) {
        int[] s = t.shape();
        return t.reshape(s[0], s[1], heads, embed / heads).permute(0, 2, 1, 3);
    }

    // this type, not Module, for chained calls (Module.train's note)
    @Override public MultiheadAttention train(boolean on) { super.train(on); return this; }
    @Override public MultiheadAttention train() { return train(true); }
    @Override public MultiheadAttention eval() { return train(false); }
    @Override public MultiheadAttention to(fst4j.tensor.Device d) { super.to(d); return this; }
}
