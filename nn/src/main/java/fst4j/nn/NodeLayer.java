package fst4j.nn;

import fst4j.autograd.Gemm3;
import fst4j.autograd.SparseConfig;
import fst4j.sparse.StatefulSparsifier;

/**
 * What {@link Conv2d} and {@link Linear} share around their Eq. 1-3 node: the node of the current configuration,
 * ReSprop's state where that configuration is the preset's (kept across a change to the same preset), and the freeing
 * of what their sparsifiers cache (ASP's mask tensor) and of the S(W) the node keeps for forwards without W's gradient
 * ({@link Gemm3#prepareForward(fst4j.tensor.Tensor, fst4j.tensor.DType, boolean, boolean)}) when the configuration
 * changes, the layer moves device or closes.
 */
abstract class NodeLayer extends Module implements Sparse {
    private final long salt;   // fixes ReSprop's image draws: the layer's geometry
    private Gemm3 node;
    private ReSprop resprop;   // the ReSprop preset's per-layer state, else null

    NodeLayer(SparseConfig cfg, long salt) {
        this.salt = salt;
        claim(cfg);
        this.node = new Gemm3(cfg, true);   // kept S(W): let go on close, configure and to()
        this.resprop = ReSprop.forConfig(null, cfg, salt);
    }

    /** The Eq. 1-3 node of the current configuration; a closed layer is refused by name (its forward reads freed W). */
    final Gemm3 node() {
        if (isClosed()) throw new IllegalStateException(this + " is closed: its parameters were freed by close()");
        return node;
    }

    @Override public final ReSprop resprop() { return resprop; }

    @Override public final SparseConfig sparsity() { return node.config(); }

    @Override public final void setSparsity(SparseConfig cfg) {
        claim(cfg);
        disown(node.config(), cfg);
        Sparse.release(node.config(), cfg);
        node.dropEvalCache();
        node = new Gemm3(cfg, true);
        resprop = ReSprop.forConfig(resprop, cfg, salt);
    }

    @Override public void close() {
        disown(node.config(), null);
        Sparse.release(node.config(), null);
        node.dropEvalCache();   // the S(W) its eval-mode forwards kept
        super.close();
    }

    /**
     * The layer each stateful sparsifier is installed in. Its state (TSM's cached mask, the authors' pattern draws, a
     * rule of one's own with a counter) is one layer's: one configuration object given to two layers shared it, and a
     * TSM layer then pruned its W with the other layer's mask of the same shape for 39 steps of 40, silently. Weak
     * both ways: a layer dropped without close() frees its claims with itself.
     */
    private static final java.util.Map<StatefulSparsifier, java.lang.ref.WeakReference<NodeLayer>> CLAIMS =
            java.util.Collections.synchronizedMap(new java.util.WeakHashMap<>());

    /** Claims cfg's stateful sparsifiers for this layer, or refuses (changing nothing) one that another open layer holds. */
    private void claim(SparseConfig cfg) {
        java.util.List<StatefulSparsifier> mine = stateful(cfg);
        synchronized (CLAIMS) {
            for (StatefulSparsifier st : mine) {
                java.lang.ref.WeakReference<NodeLayer> r = CLAIMS.get(st);
                NodeLayer other = r == null ? null : r.get();
                if (other != null && other != this)
                    throw new IllegalArgumentException("the sparsifier " + st + " of configuration " + cfg.name() + " is already in another layer: its state"
                            + " is one layer's, so give each layer a configuration of its own (SparseConfig.Method.X.config() per layer)");
            }
            for (StatefulSparsifier st : mine) CLAIMS.put(st, new java.lang.ref.WeakReference<>(this));
        }
    }

    /** Frees this layer's claims on the stateful sparsifiers of old that next (null: none) does not keep. */
    private void disown(SparseConfig old, SparseConfig next) {
        java.util.List<StatefulSparsifier> kept = next == null ? java.util.List.of() : stateful(next);
        synchronized (CLAIMS) {
            for (StatefulSparsifier st : stateful(old)) {
                java.lang.ref.WeakReference<NodeLayer> r = CLAIMS.get(st);
                if (r != null && r.get() == this && kept.stream().noneMatch(k -> k == st)) CLAIMS.remove(st);
            }
        }
    }

    private static java.util.List<StatefulSparsifier> stateful(SparseConfig c) {
        java.util.List<StatefulSparsifier> out = new java.util.ArrayList<>();
        for (fst4j.sparse.Sparsifier s : new fst4j.sparse.Sparsifier[]{c.w(), c.wt(), c.dyEq2(), c.dyEq3(), c.xt()})
            if (s instanceof StatefulSparsifier st) out.add(st);
        return out;
    }

    /** Moves the parameters; tensors a sparsifier cached on the old device (ASP's mask) are freed, rebuilt where used next. */
    @Override public Module to(fst4j.tensor.Device d) {
        Sparse.release(node.config(), null);
        node.dropEvalCache();   // made on the old device: the next forward builds one on the new
        return super.to(d);
    }
}
