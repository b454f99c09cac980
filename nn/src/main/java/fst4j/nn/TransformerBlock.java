package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.tensor.Rng;
import fst4j.tensor.Tensor;

/**
 * A pre-LN transformer encoder layer on [B, T, d], torch.nn.TransformerEncoderLayer(d, heads, ff, dropout,
 * activation="gelu", batch_first=True, norm_first=True):
 * x + drop(attn(norm1(x))), then x + drop(linear2(drop(gelu(linear1(norm2(x)))))). Children "self_attn",
 * "linear1", "linear2", "norm1", "norm2" as torch's names (self_attn's "in_proj" and "out_proj" hold torch's
 * in_proj_weight / in_proj_bias and out_proj). The feed-forward Linear layers take ffnMethod's configuration (2:4 where
 * it prunes: ff and d multiples of 4), the attention's projections attnMethod's; each layer gets its own config call.
 * causal masks attention to earlier positions (torch's src_mask of -inf above the diagonal).
 */
public final class TransformerBlock extends Module {
    private final MultiheadAttention attn;
    private final Linear linear1, linear2;
    private final LayerNorm norm1, norm2;
    private final double dropout;
    private final boolean causal;
    private final Rng rng;

    public TransformerBlock(int d, int heads, int ff, double dropout, boolean causal, Method attnMethod, Method ffnMethod, long seed, Rng rng) {
        this(d, heads, ff, dropout, causal, attnMethod.config(seed), attnMethod.config(seed + 1), ffnMethod.config(seed + 2), ffnMethod.config(seed + 3), rng);
    }

    /** Each configuration for one layer: in_proj, out_proj, linear1, linear2 (a stateful sparsifier cannot be shared). */
    public TransformerBlock(int d, int heads, int ff, double dropout, boolean causal,
                            SparseConfig inProj, SparseConfig outProj, SparseConfig ffn1, SparseConfig ffn2, Rng rng) {
        if (ff <= 0) throw new IllegalArgumentException("TransformerBlock needs a positive feed-forward size, got " + ff);
        if (!(dropout >= 0 && dropout < 1)) throw new IllegalArgumentException("dropout probability must be in [0, 1), got " + dropout);
        this.attn = child("self_attn", new MultiheadAttention(d, heads, dropout, true, inProj, outProj, rng));
        this.linear1 = child("linear1", new Linear(d, ff, true, ffn1, rng));
        this.linear2 = child("linear2", new Linear(ff, d, true, ffn2, rng));
        this.norm1 = child("norm1", new LayerNorm(d));
        this.norm2 = child("norm2", new LayerNorm(d));
        this.dropout = dropout;
        this.causal = causal;
        this.rng = rng;
    }

    public MultiheadAttention selfAttn() { return attn; }
    public Linear linear1() { return linear1; }
    public Linear linear2() { return linear2; }

    @Override public Var forward(Var x) { return forward(x, null); }

    /** With an additive attention mask (broadcast to [B, heads, T, T]); not with causal. */
    public Var forward(Var x, Tensor attnMask) {
        x = x.add(drop(attn.forward(norm1.forward(x), attnMask, causal)));
        return x.add(drop(linear2.forward(drop(NN.gelu(linear1.forward(norm2.forward(x)))))));
    }

    private Var drop(Var v) { return NN.dropout(v, dropout, isTraining(), rng); }

    // this type, not Module, for chained calls (Module.train's note)
    @Override public TransformerBlock train(boolean on) { super.train(on); return this; }
    @Override public TransformerBlock train() { return train(true); }
    @Override public TransformerBlock eval() { return train(false); }
    @Override public TransformerBlock to(fst4j.tensor.Device d) { super.to(d); return this; }
}
