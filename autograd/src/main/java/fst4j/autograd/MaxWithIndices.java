package fst4j.autograd;

import fst4j.tensor.Elementwise;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;

/**
 * torch.max(x, dim, keepdim): the largest values along one axis and their indices, from one node with two outputs. The
 * indices are float32 values (there is no integer dtype; {@link Tensor#argmax}'s convention, exact up to 2^24 along the
 * axis) and a non-differentiable output. The values' gradient goes to the selected element only (the first on ties and
 * the first NaN, as the indices say), as torch's max with a dim; {@link Var#max} shares it among ties instead, as
 * torch's max over all elements.
 */
final class MaxWithIndices extends MultiFunction {
    private final int axis;
    private final boolean keepDim;
    private Tensor idx;   // the indices with the axis kept (size 1)
    private int[] inShape;

    MaxWithIndices(int axis, boolean keepDim) { this.axis = axis; this.keepDim = keepDim; }

    @Override
    protected Tensor[] forwardMulti(Tensor... x) {
        int ax = Shape.axis(axis, x[0].dim());
        inShape = x[0].shape();
        if (inShape[ax] > 1 << 24)
            throw new IllegalArgumentException("maxWithIndices: axis " + ax + " of " + Shape.str(inShape) + " has " + inShape[ax]
                    + " elements, more than float32 indices count exactly (2^24)");
        Tensor values = x[0].max(keepDim, ax);
        Tensor kept = fst4j.tensor.Reduce.argmax(x[0], ax, true);
        if (needsGrad(0)) idx = save(kept);
        Tensor indices = kept;
        if (!keepDim) {
            // the output is a view of kept; kept itself would be left open (a leak outside a Scope once both outputs close)
            try (kept) { indices = kept.reshape(values.shape()); }
        }
        return outputs(values, markNonDifferentiable(indices));
    }

    @Override
    protected boolean materializeGrads() { return false; }   // one differentiable output: it always has a gradient

    @Override
    protected Tensor[] backwardMulti(Tensor[] g) {
        int ax = Shape.axis(axis, inShape.length);
        int[] at = new int[inShape.length];
        java.util.Arrays.fill(at, 1);
        at[ax] = inShape[ax];
        int[] kept = inShape.clone();
        kept[ax] = 1;
        try (Tensor r = Tensor.arange(inShape[ax]); Tensor positions = r.reshape(at); Tensor onDevice = positions.to(idx.device());
             Tensor hit = Elementwise.eq(onDevice, idx); Tensor gk = g[0].reshape(kept)) {
            return grads(gk.mul(hit));
        }
    }
}
