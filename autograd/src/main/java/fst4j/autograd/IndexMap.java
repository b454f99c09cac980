package fst4j.autograd;

import fst4j.tensor.Device;
import fst4j.tensor.DType;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;

/**
 * out[i] = x[src[i]] over row-major flat indices, out of the given shape: flip, index_select and gather are this map
 * with different src. backward scatters the gradient back, adding where an input element was read more than once (a
 * repeated index), as torch's index_add does. A CPU loop (in double): on a CUDA tensor it is refused by name.
 */
final class IndexMap extends Function {
    private final String name;
    private final int[] src, outShape;
    private int[] inShape;
    private DType dtype;

    IndexMap(String name, int[] src, int[] outShape) {
        if (src.length != Shape.numel(outShape)) throw new IllegalArgumentException(name + ": " + src.length + " indices for output " + Shape.str(outShape));
        this.name = name; this.src = src; this.outShape = outShape;
    }

    @Override public String name() { return name; }

    /** The refusal of the CPU-loop ops on CUDA tensors, naming the op (they are not composites of device kernels). */
    static void cpuOnly(String op, Tensor t) {
        if (t.device() != Device.CPU)
            throw new UnsupportedOperationException(op + " is not implemented for CUDA tensors (a CPU loop, not a device kernel); "
                    + "copy the value to the host with to(Device.CPU)");
    }

    protected Tensor forward(Tensor... x) {
        cpuOnly(name, x[0]);
        inShape = x[0].shape();
        dtype = x[0].dtype();
        double[] v = x[0].toDoubleArray();
        Tensor out = Tensor.empty(dtype, outShape);
        for (int i = 0; i < src.length; i++) out.setFlat(i, v[src[i]]);
        return out;
    }

    protected Tensor[] backward(Tensor g) {
        double[] gv = g.toDoubleArray();
        double[] acc = new double[Math.toIntExact(Shape.numel(inShape))];
        for (int i = 0; i < src.length; i++) acc[src[i]] += gv[i];
        return grads(fromDoubles(acc, dtype, inShape));
    }

    static Tensor fromDoubles(double[] v, DType dtype, int[] shape) {
        Tensor t = Tensor.empty(dtype, shape);
        for (int i = 0; i < v.length; i++) t.setFlat(i, v[i]);
        return t;
    }
}
