package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.Var;
import fst4j.tensor.DType;
import fst4j.tensor.Device;
import fst4j.tensor.Elementwise;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;

/**
 * torch.nn.MultiheadAttention(embed, heads, dropout, bias, kdim, vdim, batch_first=True) as torch 1.13's. Where kdim ==
 * vdim == embed the q, k, v projections are one packed child "in_proj" ({@link Linear} E -> 3E, torch's in_proj_weight /
 * in_proj_bias as its weight / bias); otherwise three children "q_proj" (E -> E), "k_proj" (kdim -> E), "v_proj" (vdim ->
 * E), torch's q_proj_weight, k_proj_weight, v_proj_weight, whose biases are torch's in_proj_bias in three. Then
 * "out_proj" (E -> E). Every projection is an Eq. 1-3 node under the configuration given (2:4 where a method prunes W);
 * the attention's own products, scores q k^T and weights x v, are activation x activation and stay dense ({@link
 * NN#scaledDotProductAttention}). Init as torch's: the q, k, v weights xavier-uniform, in-projection biases zero,
 * out_proj's bias zero and its weight Linear's default. Dropout on the attention weights in training only.
 */
public final class MultiheadAttention extends Module {
    public final int embed, heads, kdim, vdim;
    private final double dropout;
    private final Rng rng;
    private final Linear inProj, qProj, kProj, vProj, outProj;   // inProj where packed, else the three
    private Tensor causal;   // the last causal mask used, unowned: kept across forwards, freed on close or replacement
    private int causalBuilds;

    public MultiheadAttention(int embed, int heads, double dropout, boolean bias, SparseConfig inCfg, SparseConfig outCfg, Rng rng) {
        this(embed, heads, dropout, bias, embed, embed, inCfg, null, null, outCfg, rng);
    }

    /**
     * With torch's kdim and vdim. Where both equal embed the projections are packed (torch's _qkv_same_embed_dim) and
     * take qCfg, and kCfg, vCfg must be null; otherwise q_proj, k_proj and v_proj take one configuration each (a stateful
     * sparsifier cannot be shared).
     */
    public MultiheadAttention(int embed, int heads, double dropout, boolean bias, int kdim, int vdim,
                              SparseConfig qCfg, SparseConfig kCfg, SparseConfig vCfg, SparseConfig outCfg, Rng rng) {
        if (embed <= 0 || heads <= 0 || embed % heads != 0)
            throw new IllegalArgumentException("MultiheadAttention needs embed divisible by heads (both positive), got embed " + embed + ", heads " + heads);
        if (kdim <= 0 || vdim <= 0) throw new IllegalArgumentException("MultiheadAttention needs positive kdim and vdim, got " + kdim + ", " + vdim);
        if (!(dropout >= 0 && dropout < 1)) throw new IllegalArgumentException("dropout probability must be in [0, 1), got " + dropout);
        boolean packed = kdim == embed && vdim == embed;
        if (packed && (kCfg != null || vCfg != null))
            throw new IllegalArgumentException("MultiheadAttention: with kdim == vdim == embed the projections are one packed in_proj (qCfg's); kCfg and vCfg must be null");
        this.embed = embed;
        this.heads = heads;
        this.kdim = kdim;
        this.vdim = vdim;
        this.dropout = dropout;
        this.rng = rng;
        if (packed) {
            this.inProj = child("in_proj", new Linear(embed, 3 * embed, bias, qCfg, rng));
            this.qProj = this.kProj = this.vProj = null;
        } else {
            this.inProj = null;
            this.qProj = child("q_proj", new Linear(embed, embed, bias, qCfg, rng));
            this.kProj = child("k_proj", new Linear(kdim, embed, bias, kCfg, rng));
            this.vProj = child("v_proj", new Linear(vdim, embed, bias, vCfg, rng));
        }
        this.outProj = child("out_proj", new Linear(embed, embed, bias, outCfg, rng));
        for (Linear p : packed ? new Linear[]{inProj} : new Linear[]{qProj, kProj, vProj}) {
            double xavier = Math.sqrt(6.0 / (p.in + p.out));
            try (Tensor w = rng.uniform(-xavier, xavier, p.out, p.in)) { p.weight().value().copyFrom(w); }
            if (bias) p.namedParameters().get("bias").value().fill(0);
        }
        if (bias) outProj.namedParameters().get("bias").value().fill(0);
    }

    /** The packed projection, or null where kdim or vdim differs from embed. */
    public Linear inProj() { return inProj; }
    /** The separate projections (torch's q_proj_weight, ...), or null where packed. */
    public Linear qProj() { return qProj; }
    public Linear kProj() { return kProj; }
    public Linear vProj() { return vProj; }
    public Linear outProj() { return outProj; }

    /** Self-attention of x [B, T, E] without a mask. */
    @Override public Var forward(Var x) { return forward(x, null, false); }

    /** Self-attention of x [B, T, E]; attnMask additive (broadcast to [B, heads, T, T]) or causal (not both). */
    public Var forward(Var x, Tensor attnMask, boolean causal) {
        int[] s = x.shape();
        if (s.length != 3 || s[2] != embed || kdim != embed || vdim != embed)
            throw new IllegalArgumentException("shape mismatch: MultiheadAttention(" + embed + ", kdim " + kdim + ", vdim " + vdim
                    + ") self-attention needs x [B, T, " + embed + "] and kdim == vdim == embed, got " + Shape.str(s));
        if (causal && attnMask != null)
            throw new IllegalArgumentException("MultiheadAttention: give either attnMask or causal, not both");
        if (!causal) return attend(x, x, x, attnMask, false, true).output();
        // this call's own reference: another thread's forward at another length may replace the kept mask meanwhile
        try (Tensor mask = causalMask(s[1], s[1], x.value().dtype(), x.value().device())) {
            return attend(x, x, x, mask, false, true).output();
        }
    }

    /**
     * torch's forward(query, key, value, key_padding_mask, need_weights, attn_mask, average_attn_weights) with
     * batch_first: query [B, L, E], key [B, S, kdim], value [B, S, vdim]. keyPaddingMask [B, S] is boolean as a 0/1
     * tensor (1 = that key is padding, torch's True), attnMask [L, S] or [B * heads, L, S] boolean or additive, either
     * null. Both masks on the query's device; an additive one in its dtype. The output is [B, L, E]; the weights (null
     * unless needWeights) are [B, L, S] averaged over the heads or [B, heads, L, S], after dropout as torch's. A query
     * whose every key is masked gets NaN in its output row and weights, as torch 1.13's (softmax of a row of -inf).
     */
    public NN.Attended forward(Var query, Var key, Var value, Tensor keyPaddingMask, boolean needWeights, AttnMask attnMask, boolean averageAttnWeights) {
        return forward(query, key, value, keyPaddingMask, needWeights, attnMask, averageAttnWeights, false);
    }

    /**
     * As above with causal: query i attends to keys j <= i (torch's top-left aligned mask, torch 2.x's is_causal), with
     * the key padding mask but not attnMask. The causal mask is built once per (L, S, dtype, device) and kept.
     */
    public NN.Attended forward(Var query, Var key, Var value, Tensor keyPaddingMask, boolean needWeights, AttnMask attnMask,
                               boolean averageAttnWeights, boolean causal) {
        int[] qs = query.shape(), ks = key.shape(), vs = value.shape();
        if (qs.length != 3 || ks.length != 3 || vs.length != 3 || qs[2] != embed || ks[2] != kdim || vs[2] != vdim
                || ks[0] != qs[0] || vs[0] != qs[0] || ks[1] != vs[1])
            throw new IllegalArgumentException("shape mismatch: MultiheadAttention(" + embed + ", kdim " + kdim + ", vdim " + vdim + ") needs query [B, L, "
                    + embed + "], key [B, S, " + kdim + "], value [B, S, " + vdim + "], got " + Shape.str(qs) + ", " + Shape.str(ks) + ", " + Shape.str(vs));
        if (causal && attnMask != null) throw new IllegalArgumentException("MultiheadAttention: give either attnMask or causal, not both");
        // closing the mask here drops only this reference: the graph holds its own alias (sdpa's add)
        try (Tensor mask = AttnMasks.combine(this, qs[0], qs[1], ks[1], keyPaddingMask, attnMask, causal, query.value())) {
            return attend(query, key, value, mask, needWeights, averageAttnWeights);
        }
    }

    /** Projections, attention of every head under the additive mask (or null), the heads merged, out_proj. */
    private NN.Attended attend(Var query, Var key, Var value, Tensor mask, boolean needWeights, boolean average) {
        int b = query.shape()[0], l = query.shape()[1], s = key.shape()[1];
        Var q, k, v;
        if (inProj == null) {
            q = qProj.forward(query); k = kProj.forward(key); v = vProj.forward(value);
        } else if (key == query && value == query) {
            Var qkv = inProj.forward(query);   // [B, T, 3E]
            q = qkv.slice(2, 0, embed); k = qkv.slice(2, embed, 2 * embed); v = qkv.slice(2, 2 * embed, 3 * embed);
        } else {
            // torch's _in_projection_packed uses chunks of the weight; here the rows of the distinct inputs go through the
            // node once, stacked (one Eq. 1-3 call per forward, as in self-attention: a stateful sparsifier steps once),
            // at the price of the unused two thirds of each row's 3E outputs
            boolean kv = key == value;
            int bl = b * l, bs = b * s;
            Var rows = kv ? Var.cat(0, query.reshape(bl, embed), key.reshape(bs, embed))
                    : Var.cat(0, query.reshape(bl, embed), key.reshape(bs, embed), value.reshape(bs, embed));
            Var p = inProj.forward(rows);   // [rows, 3E]
            q = p.slice(0, 0, bl).slice(1, 0, embed).reshape(b, l, embed);
            k = p.slice(0, bl, bl + bs).slice(1, embed, 2 * embed).reshape(b, s, embed);
            v = (kv ? p.slice(0, bl, bl + bs) : p.slice(0, bl + bs, bl + 2 * bs)).slice(1, 2 * embed, 3 * embed).reshape(b, s, embed);
        }
        NN.Attended a = core(q, k, v, heads, mask, isTraining() ? dropout : 0, rng, needWeights, average);
        return new NN.Attended(outProj.forward(a.output()), a.weights());
    }

    /**
     * Between the projections and out_proj: projected q [B, L, E], k and v [B, S, E] split into heads, attended under
     * the additive mask, merged back to [B, L, E]; the weights averaged over heads ([B, L, S], torch's sum / heads) or
     * not ([B, heads, L, S]), null unless needWeights. Static for the float64 gradcheck, which projects with its own weights.
     */
    static NN.Attended core(Var q, Var k, Var v, int heads, Tensor mask, double p, Rng rng, boolean needWeights, boolean average) {
        int b = q.shape()[0], l = q.shape()[1], e = q.shape()[2];
        NN.Attended a = NN.scaledDotProductAttentionWithWeights(heads(q, heads), heads(k, heads), heads(v, heads), mask, false, p, rng);   // [B, H, L, Dh]
        Var out = a.output().permute(0, 2, 1, 3).reshape(b, l, e);
        Var w = !needWeights ? null : average ? a.weights().mean(false, 1) : a.weights();
        return new NN.Attended(out, w);
    }

    /** [B, T, E] -> [B, heads, T, E / heads]. */
    private static Var heads(Var t, int heads) {
        int[] s = t.shape();
        return t.reshape(s[0], s[1], heads, s[2] / heads).permute(0, 2, 1, 3);
    }

    /**
     * The causal mask [L, S] in dtype on device, built on first use and kept until L, S, dtype or device change, as a
     * new reference the caller closes (in the caller's scope). Under the module's lock, so that forwards on several
     * threads build it once, and a thread replacing it (another length) only drops the module's reference: a mask
     * another thread is using stays valid through its own.
     */
    synchronized Tensor causalMask(int l, int s, DType dtype, Device device) {
        Tensor c = causal;
        if (c == null || c.isClosed() || c.size(0) != l || c.size(1) != s || c.dtype() != dtype || c.device() != device) {
            if (c != null) c.close();
            causalBuilds++;
            causal = c = Scope.within(null, () -> {
                try (Tensor host = NN.causalMask(l, s); Tensor on = host.to(device)) { return on.to(dtype); }
            });
        }
        return c.alias();
    }

    /** How many times a causal mask has been built (tests: once per geometry, not per forward). */
    synchronized int causalBuilds() { return causalBuilds; }

    @Override public void close() {
        synchronized (this) {
            if (causal != null) { causal.close(); causal = null; }
        }
        super.close();
    }

    /** The -inf of a masked score, or 0, as a one-element tensor of dtype on device (where()'s operands). */
    static Tensor constant(double v, DType dtype, Device device) {
        try (Tensor t = Tensor.scalar(v, dtype)) { return t.to(device); }
    }

    /** where(cond != 0, a, b) (cond a 0/1 mask checked before). */
    static Tensor where(Tensor cond, Tensor a, Tensor b) { return Elementwise.where(cond, a, b); }

    // this type, not Module, for chained calls (Module.train's note)
    @Override public MultiheadAttention train(boolean on) { super.train(on); return this; }
    @Override public MultiheadAttention train() { return train(true); }
    @Override public MultiheadAttention eval() { return train(false); }
    @Override public MultiheadAttention to(fst4j.tensor.Device d) { super.to(d); return this; }
}
