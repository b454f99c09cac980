package fst4j.nn;

import fst4j.autograd.Gemm3;
import fst4j.autograd.SparseConfig;

/**
 * What {@link Conv2d} and {@link Linear} share around their Eq. 1-3 node: the node of the current configuration,
 * ReSprop's state where that configuration is the preset's (kept across a change to the same preset), and the freeing
 * of what their sparsifiers cache (ASP's mask tensor) when the configuration changes, the layer moves device or closes.
 */
abstract class NodeLayer extends Module implements Sparse {
    private final long salt;   // fixes ReSprop's image draws: the layer's geometry
    private Gemm3 node;
    private ReSprop resprop;   // the ReSprop preset's per-layer state, else null

    NodeLayer(SparseConfig cfg, long salt) {
        this.salt = salt;
        this.node = new Gemm3(cfg);
        this.resprop = ReSprop.forConfig(null, cfg, salt);
    }

    /** The Eq. 1-3 node of the current configuration. */
    final Gemm3 node() { return node; }

    @Override public final ReSprop resprop() { return resprop; }

    @Override public final SparseConfig sparsity() { return node.config(); }

    @Override public final void setSparsity(SparseConfig cfg) {
        Sparse.release(node.config(), cfg);
        node = new Gemm3(cfg);
        resprop = ReSprop.forConfig(resprop, cfg, salt);
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
