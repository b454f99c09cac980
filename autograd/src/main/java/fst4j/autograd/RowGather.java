package fst4j.autograd;

import fst4j.tensor.RowIndex;
import fst4j.tensor.Rows;
import fst4j.tensor.Tensor;

/**
 * F.embedding's gather without padding, by a prepared {@link RowIndex} (an InterpolateCache's tables): rows [V, D] to
 * [n, D], backward the scatter-add by the index's own CSR. The same bits as {@link Embedding}, with nothing built or
 * copied to the device per call. The node keeps a reference of its own to the index, so the cache may evict or close
 * it before backward.
 */
final class RowGather extends Function {
    private final RowIndex index;   // the caller's reference: read in forward only
    private RowIndex kept;          // the graph's, for backward

    RowGather(RowIndex index) { this.index = index; }

    protected Tensor forward(Tensor... in) {
        Tensor y = Rows.gather(in[0], index);
        if (needsGrad(0)) kept = retain(index.alias());   // freed with the graph
        return y;
    }

    protected Tensor[] backward(Tensor g) {
        try (Tensor g2 = g.reshape(kept.size(), g.size(-1))) { return grads(Rows.scatterAdd(g2, kept)); }
    }
}
