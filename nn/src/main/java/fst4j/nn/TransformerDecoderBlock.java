package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.tensor.Rng;
import fst4j.tensor.Tensor;

/**
 * A pre-LN transformer decoder layer on tgt [B, T, d] over a memory [B, S, d], torch.nn.TransformerDecoderLayer(d,
 * heads, ff, dropout, activation="gelu", batch_first=True, norm_first=True) with tgt_mask the causal mask:
 * x + drop1(self_attn(norm1(x), causal)), then x + drop2(multihead_attn(norm2(x), memory, memory)), then
 * x + drop3(linear2(drop(gelu(linear1(norm3(x)))))). Children "self_attn", "multihead_attn", "linear1", "linear2",
 * "norm1", "norm2", "norm3" as torch's names (each attention's "in_proj" / "out_proj" as in {@link TransformerBlock}).
 * The attentions' projections take attnMethod's configuration, the feed-forward layers ffnMethod's, one call per layer.
 */
public final class TransformerDecoderBlock extends Module {
    private final MultiheadAttention selfAttn, crossAttn;
    private final Linear linear1, linear2;
    private final LayerNorm norm1, norm2, norm3;
    private final double dropout;
    private final Rng rng;

    public TransformerDecoderBlock(int d, int heads, int ff, double dropout, Method attnMethod, Method ffnMethod, long seed, Rng rng) {
        this(d, heads, ff, dropout, attnMethod.config(seed), attnMethod.config(seed + 1), attnMethod.config(seed + 2), attnMethod.config(seed + 3),
                ffnMethod.config(seed + 4), ffnMethod.config(seed + 5), rng);
    }

    /** Each configuration for one layer: self_attn's in_proj and out_proj, multihead_attn's, linear1, linear2. */
    public TransformerDecoderBlock(int d, int heads, int ff, double dropout, SparseConfig selfIn, SparseConfig selfOut,
                                   SparseConfig crossIn, SparseConfig crossOut, SparseConfig ffn1, SparseConfig ffn2, Rng rng) {
        if (ff <= 0) throw new IllegalArgumentException("TransformerDecoderBlock needs a positive feed-forward size, got " + ff);
        if (!(dropout >= 0 && dropout < 1)) throw new IllegalArgumentException("dropout probability must be in [0, 1), got " + dropout);
        this.selfAttn = child("self_attn", new MultiheadAttention(d, heads, dropout, true, selfIn, selfOut, rng));
        this.crossAttn = child("multihead_attn", new MultiheadAttention(d, heads, dropout, true, crossIn, crossOut, rng));
        this.linear1 = child("linear1", new Linear(d, ff, true, ffn1, rng));
        this.linear2 = child("linear2", new Linear(ff, d, true, ffn2, rng));
        this.norm1 = child("norm1", new LayerNorm(d));
        this.norm2 = child("norm2", new LayerNorm(d));
        this.norm3 = child("norm3", new LayerNorm(d));
        this.dropout = dropout;
        this.rng = rng;
    }

    public MultiheadAttention selfAttn() { return selfAttn; }
    public MultiheadAttention crossAttn() { return crossAttn; }
    public Linear linear1() { return linear1; }
    public Linear linear2() { return linear2; }

    /** A decoder layer needs a memory: refused (use {@link #forward(Var, Var)}). */
    @Override public Var forward(Var x) {
        throw new UnsupportedOperationException("TransformerDecoderBlock needs a memory to attend over: forward(tgt, memory)");
    }

    /** tgt [B, T, d] attending causally to itself and fully to memory [B, S, d]. */
    public Var forward(Var tgt, Var memory) { return forward(tgt, memory, null, null, null); }

    /**
     * With torch's tgt_key_padding_mask [B, T], memory_mask (torch's [T, S] or [B * heads, T, S], boolean or additive)
     * and memory_key_padding_mask [B, S], any null; the padding masks are 0/1 tensors (1 = padding), see
     * {@link MultiheadAttention#forward(Var, Var, Var, Tensor, boolean, AttnMask, boolean)}.
     */
    public Var forward(Var tgt, Var memory, Tensor tgtKeyPaddingMask, AttnMask memoryMask, Tensor memoryKeyPaddingMask) {
        Var x = tgt;
        Var h = norm1.forward(x);
        x = x.add(drop(selfAttn.forward(h, h, h, tgtKeyPaddingMask, false, null, true, true).output()));
        x = x.add(drop(crossAttn.forward(norm2.forward(x), memory, memory, memoryKeyPaddingMask, false, memoryMask, true).output()));
        return x.add(drop(linear2.forward(drop(NN.gelu(linear1.forward(norm3.forward(x)))))));
    }

    private Var drop(Var v) { return NN.dropout(v, dropout, isTraining(), rng); }

    // this type, not Module, for chained calls (Module.train's note)
    @Override public TransformerDecoderBlock train(boolean on) { super.train(on); return this; }
    @Override public TransformerDecoderBlock train() { return train(true); }
    @Override public TransformerDecoderBlock eval() { return train(false); }
    @Override public TransformerDecoderBlock to(fst4j.tensor.Device d) { super.to(d); return this; }
}
