package fst4j.nn;

import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.tensor.Rng;
import fst4j.tensor.Shape;

/**
 * A small GPT-style encoder for token sequences: token embedding + learned positional embedding, N pre-LN
 * {@link TransformerBlock}s, a final LayerNorm and a Linear head to vocabulary logits [B, T, vocab]. Children "tok",
 * "pos", "block0".., "norm", "head". The head stays dense (as the models' classifiers); see {@link Models#tinyTransformer}.
 */
public final class TinyTransformer extends Module {
    public final int vocab, maxLen;
    private final Embedding tok, pos;
    private final TransformerBlock[] blocks;
    private final LayerNorm norm;
    private final Linear head;

    public TinyTransformer(int vocab, int maxLen, int d, int heads, int ff, int layers, double dropout, boolean causal,
                           Method attnMethod, Method ffnMethod, long seed) {
        if (vocab <= 0 || maxLen <= 0 || layers < 0)
            throw new IllegalArgumentException("TinyTransformer needs vocab > 0, maxLen > 0, layers >= 0, got " + vocab + ", " + maxLen + ", " + layers);
        Rng rng = new Rng(seed);
        this.vocab = vocab;
        this.maxLen = maxLen;
        this.tok = child("tok", new Embedding(vocab, d, rng));
        this.pos = child("pos", new Embedding(maxLen, d, rng));
        this.blocks = new TransformerBlock[layers];
        for (int i = 0; i < layers; i++)
            blocks[i] = child("block" + i, new TransformerBlock(d, heads, ff, dropout, causal, attnMethod, ffnMethod, seed + 10L * (i + 1), rng));
        this.norm = child("norm", new LayerNorm(d));
        this.head = child("head", new Linear(d, vocab, true, Method.DENSE.config(), rng));
    }

    /** Logits [B, T, vocab] of tokens [B, T] (row-major), each in [0, vocab), T at most maxLen. */
    public Var forward(int[] tokens, int batch, int len) {
        if (batch < 0 || len < 0) throw new IllegalArgumentException("TinyTransformer needs tokens [B, T] with B, T >= 0, got batch " + batch + ", length " + len);
        if (len > maxLen) throw new IllegalArgumentException("sequence length " + len + " exceeds the model's maxLen " + maxLen);
        int[] positions = new int[len];
        for (int t = 0; t < len; t++) positions[t] = t;
        Var x = tok.forward(tokens, batch, len).add(pos.forward(positions, len));   // [B, T, d] + [T, d]
        for (TransformerBlock b : blocks) x = b.forward(x);
        return head.forward(norm.forward(x));
    }

    /** tokens [B, T] as integral values. */
    @Override public Var forward(Var tokens) {
        int[] s = tokens.shape();
        if (s.length != 2) throw new IllegalArgumentException("wrong rank: TinyTransformer needs tokens [B, T], got " + Shape.str(s));
        return forward(Embedding.indices(tokens.value()), s[0], s[1]);
    }

    // this type, not Module, for chained calls (Module.train's note)
    @Override public TinyTransformer train(boolean on) { super.train(on); return this; }
    @Override public TinyTransformer train() { return train(true); }
    @Override public TinyTransformer eval() { return train(false); }
    @Override public TinyTransformer to(fst4j.tensor.Device d) { super.to(d); return this; }
}
