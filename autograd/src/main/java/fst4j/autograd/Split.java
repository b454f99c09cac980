package fst4j.autograd;

import fst4j.tensor.DType;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;

/**
 * torch.split(x, [s0, s1, ...], dim): views of consecutive parts of one axis, from one node (torch's SplitBackward)
 * instead of one slice node per part. Its backward writes each part's gradient into its place in one zeroed input-sized
 * gradient; a part no gradient reached stays zero there, so it asks for no materialized zeros.
 */
final class Split extends MultiFunction {
    private final int axis;
    private final int[] sizes;
    private int ax;
    private int[] inShape;
    private DType dtype;

    Split(int axis, int[] sizes) { this.axis = axis; this.sizes = sizes.clone(); }

    @Override
    protected Tensor[] forwardMulti(Tensor... x) {
        inShape = x[0].shape();
        dtype = x[0].dtype();
        if (inShape.length == 0) throw new IllegalArgumentException("split of a scalar: it has no axis");
        ax = Shape.axis(axis, inShape.length);
        if (sizes.length == 0) throw new IllegalArgumentException("split needs at least one size");
        long total = 0;
        for (int s : sizes) {
            if (s < 0) throw new IllegalArgumentException("split sizes must be >= 0, got " + java.util.Arrays.toString(sizes));
            total += s;
        }
        if (total != inShape[ax])
            throw new IllegalArgumentException("split sizes " + java.util.Arrays.toString(sizes) + " sum to " + total + ", but axis " + ax
                    + " of " + Shape.str(inShape) + " has " + inShape[ax]);
        Tensor[] parts = new Tensor[sizes.length];
        for (int k = 0, at = 0; k < sizes.length; at += sizes[k++]) parts[k] = x[0].slice(ax, at, at + sizes[k]);
        return parts;
    }

    @Override
    protected boolean materializeGrads() { return false; }

    @Override
    protected Tensor[] backwardMulti(Tensor[] g) {
        Tensor gx = null;
        for (int k = 0; k < g.length; k++) if (g[k] != null) { gx = Tensor.zeros(g[k].device(), dtype, inShape); break; }
        try {
            for (int k = 0, at = 0; k < g.length; at += sizes[k++])
                if (g[k] != null) try (Tensor v = gx.slice(ax, at, at + sizes[k])) { v.copyFrom(g[k]); }
        } catch (RuntimeException | Error e) {
            gx.close();
            throw e;
        }
        return grads(gx);
    }
}
