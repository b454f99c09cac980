package fst4j.autograd;

import fst4j.tensor.Elementwise;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;

/**
 * The differentiable tensor ops: each forward beside its backward, micrograd style. Gradients may come
 * back in the broadcast shape; the engine (Var.backward) reduces them to the input's shape.
 * Temporaries are closed with try-with-resources so that backward allocates only what it returns.
 */
final class Ops {
    private Ops() {}

    static final class Add extends Function {
        protected Tensor forward(Tensor... x) { return x[0].add(x[1]); }
        protected Tensor[] backward(Tensor g) { return grads(g.alias(), g.alias()); }
    }

    static final class Sub extends Function {
        protected Tensor forward(Tensor... x) { return x[0].sub(x[1]); }
        protected Tensor[] backward(Tensor g) { return grads(g.alias(), needsGrad(1) ? g.neg() : null); }
    }

    static final class Mul extends Function {
        private Tensor a, b;
        protected Tensor forward(Tensor... x) { a = save(x[0]); b = save(x[1]); return x[0].mul(x[1]); }
        protected Tensor[] backward(Tensor g) {
            return grads(needsGrad(0) ? g.mul(b) : null, needsGrad(1) ? g.mul(a) : null);
        }
    }

    static final class Div extends Function {
        private Tensor a, b;
        protected Tensor forward(Tensor... x) { a = save(x[0]); b = save(x[1]); return x[0].div(x[1]); }
        protected Tensor[] backward(Tensor g) {
            Tensor ga = needsGrad(0) ? g.div(b) : null;
            Tensor gb = null;
            if (needsGrad(1)) {
                try (Tensor ab = a.div(b); Tensor abb = ab.div(b); Tensor t = g.mul(abb)) { gb = t.neg(); }
            }
            return grads(ga, gb);
        }
    }

    static final class AddScalar extends Function {
        private final double s;
        AddScalar(double s) { this.s = s; }
        protected Tensor forward(Tensor... x) { return x[0].add(s); }
        protected Tensor[] backward(Tensor g) { return grads(g.alias()); }
    }

    static final class MulScalar extends Function {
        private final double s;
        MulScalar(double s) { this.s = s; }
        protected Tensor forward(Tensor... x) { return x[0].mul(s); }
        protected Tensor[] backward(Tensor g) { return grads(g.mul(s)); }
    }

    static final class Exp extends Function {
        private Tensor y;
        protected Tensor forward(Tensor... x) { Tensor out = x[0].exp(); y = save(out); return out; }
        protected Tensor[] backward(Tensor g) { return grads(g.mul(y)); }
    }

    static final class Log extends Function {
        private Tensor a;
        protected Tensor forward(Tensor... x) { a = save(x[0]); return x[0].log(); }
        protected Tensor[] backward(Tensor g) { return grads(g.div(a)); }
    }

    static final class Sqrt extends Function {
        private Tensor y;
        protected Tensor forward(Tensor... x) { Tensor out = x[0].sqrt(); y = save(out); return out; }
        protected Tensor[] backward(Tensor g) { try (Tensor t = g.div(y)) { return grads(t.mul(0.5)); } }
    }

    static final class Pow extends Function {
        private final double p;
        private Tensor a;
        Pow(double p) { this.p = p; }
        protected Tensor forward(Tensor... x) { a = save(x[0]); return x[0].pow(p); }
        protected Tensor[] backward(Tensor g) {
            try (Tensor d = a.pow(p - 1); Tensor t = d.mul(p)) { return grads(g.mul(t)); }
        }
    }

    static final class Relu extends Function {
        private Tensor a;
        protected Tensor forward(Tensor... x) { a = save(x[0]); return x[0].relu(); }
        protected Tensor[] backward(Tensor g) { return grads(Elementwise.reluBackward(g, a)); }
    }

    static final class Sigmoid extends Function {
        private Tensor y;
        protected Tensor forward(Tensor... x) { Tensor out = x[0].sigmoid(); y = save(out); return out; }
        protected Tensor[] backward(Tensor g) { return grads(Elementwise.sigmoidBackward(g, y)); }
    }

    static final class Tanh extends Function {
        private Tensor y;
        protected Tensor forward(Tensor... x) { Tensor out = x[0].tanh(); y = save(out); return out; }
        protected Tensor[] backward(Tensor g) { return grads(Elementwise.tanhBackward(g, y)); }
    }

    static final class Where extends Function {
        private final Tensor cond;
        Where(Tensor cond) { this.cond = save(cond); }
        protected Tensor forward(Tensor... x) { return Elementwise.where(cond, x[0], x[1]); }
        protected Tensor[] backward(Tensor g) {
            Tensor ga = null, gb = null;
            if (needsGrad(0)) ga = Elementwise.maskNonZero(g, cond);
            if (needsGrad(1)) gb = Elementwise.maskZero(g, cond);
            return grads(ga, gb);
        }
    }

    /** NumPy matmul; batch axes broadcast (their gradients are summed back by the engine). */
    static final class MatMul extends Function {
        private Tensor a, b;
        protected Tensor forward(Tensor... x) {
            if (x[0].dim() < 2 || x[1].dim() < 2)
                throw new IllegalArgumentException("wrong rank: differentiable matmul needs rank >= 2, got " + Shape.str(x[0].shape()) + " x " + Shape.str(x[1].shape()));
            a = save(x[0]); b = save(x[1]);
            return x[0].matmul(x[1]);
        }
        protected Tensor[] backward(Tensor g) {
            Tensor ga = null, gb = null;
            if (needsGrad(0)) try (Tensor bt = b.transpose(-1, -2)) { ga = g.matmul(bt); }
            if (needsGrad(1)) try (Tensor at = a.transpose(-1, -2)) { gb = at.matmul(g); }
            return grads(ga, gb);
        }
    }

    /** Shared by reductions: the gradient reshaped to keep-dims and broadcast back to the input shape. */
    private static Tensor unreduce(Tensor g, int[] inShape, int[] axes, boolean keepDim) {
        int[] kept = inShape.clone();
        if (axes.length == 0) java.util.Arrays.fill(kept, 1);
        for (int ax : axes) kept[Shape.axis(ax, inShape.length)] = 1;
        try (Tensor r = g.reshape(kept); Tensor e = r.expand(inShape)) { return e.copy(); }
    }

    static final class Sum extends Function {
        private final boolean keepDim;
        private final int[] axes;
        private int[] inShape;
        Sum(boolean keepDim, int... axes) { this.keepDim = keepDim; this.axes = axes; }
        protected Tensor forward(Tensor... x) { inShape = x[0].shape(); return x[0].sum(keepDim, axes); }
        protected Tensor[] backward(Tensor g) { return grads(unreduce(g, inShape, axes, keepDim)); }
    }

    static final class Mean extends Function {
        private final boolean keepDim;
        private final int[] axes;
        private int[] inShape;
        private double count;
        Mean(boolean keepDim, int... axes) { this.keepDim = keepDim; this.axes = axes; }
        protected Tensor forward(Tensor... x) {
            inShape = x[0].shape();
            Tensor out = x[0].mean(keepDim, axes);
            count = (double) x[0].numel() / Math.max(1, out.numel());
            return out;
        }
        protected Tensor[] backward(Tensor g) { try (Tensor u = unreduce(g, inShape, axes, keepDim)) { return grads(u.mul(1.0 / count)); } }
    }

    /** Max over axes; the gradient is shared equally among tied maxima. */
    static final class Max extends Function {
        private final boolean keepDim;
        private final int[] axes;
        private Tensor a, m;
        Max(boolean keepDim, int... axes) { this.keepDim = keepDim; this.axes = axes; }
        protected Tensor forward(Tensor... x) {
            a = save(x[0]);
            try (Tensor mk = x[0].max(true, axes)) { m = save(mk); }
            return x[0].max(keepDim, axes);
        }
        protected Tensor[] backward(Tensor g) {
            int[] s = a.shape();
            try (Tensor hit = Elementwise.eq(a, m); Tensor cnt = hit.sum(true, axes);
                 Tensor share = hit.div(cnt); Tensor gu = unreduce(g, s, axes, keepDim)) {
                return grads(gu.mul(share));
            }
        }
    }

    static final class Variance extends Function {
        private final boolean keepDim;
        private final int correction;
        private final int[] axes;
        private Tensor centered;
        private double denom;
        Variance(boolean keepDim, int correction, int... axes) { this.keepDim = keepDim; this.correction = correction; this.axes = axes; }
        protected Tensor forward(Tensor... x) {
            Tensor out = fst4j.tensor.Reduce.var(x[0], keepDim, correction, axes);
            try (Tensor mu = x[0].mean(true, axes); Tensor c = x[0].sub(mu)) { centered = save(c); }
            denom = Math.max(0, (double) x[0].numel() / Math.max(1, out.numel()) - correction);
            return out;
        }
        protected Tensor[] backward(Tensor g) {
            try (Tensor gu = unreduce(g, centered.shape(), axes, keepDim); Tensor t = gu.mul(centered)) {
                return grads(t.mul(2.0 / denom));
            }
        }
    }

    /** The identity as a node of its own: a new Var over the same memory (closing it leaves the input open). */
    static final class Alias extends Function {
        protected Tensor forward(Tensor... x) { return x[0].alias(); }
        protected Tensor[] backward(Tensor g) { return grads(g.alias()); }
    }

    static final class Reshape extends Function {
        private final int[] shape;
        private int[] inShape;
        Reshape(int... shape) { this.shape = shape; }
        protected Tensor forward(Tensor... x) { inShape = x[0].shape(); return x[0].reshape(shape); }
        protected Tensor[] backward(Tensor g) { return grads(g.reshape(inShape)); }
    }

    static final class Permute extends Function {
        private final int[] axes;
        Permute(int... axes) { this.axes = axes; }
        protected Tensor forward(Tensor... x) { return x[0].permute(axes); }
        protected Tensor[] backward(Tensor g) {
            int[] inv = new int[axes.length];
            for (int i = 0; i < axes.length; i++) inv[Shape.axis(axes[i], axes.length)] = i;
            return grads(g.permute(inv));
        }
    }

    static final class Transpose extends Function {
        private final int a, b;
        Transpose(int a, int b) { this.a = a; this.b = b; }
        protected Tensor forward(Tensor... x) { return x[0].transpose(a, b); }
        protected Tensor[] backward(Tensor g) { return grads(g.transpose(a, b)); }
    }

    static final class Slice extends Function {
        private final int axis, start, end, step;
        private int[] inShape;
        private fst4j.tensor.DType dtype;
        Slice(int axis, int start, int end, int step) { this.axis = axis; this.start = start; this.end = end; this.step = step; }
        protected Tensor forward(Tensor... x) { inShape = x[0].shape(); dtype = x[0].dtype(); return x[0].slice(axis, start, end, step); }
        protected Tensor[] backward(Tensor g) {
            // on g's device (a CUDA gradient is written into its strided slice there, not built on the host and moved)
            Tensor out = Tensor.zeros(g.device(), dtype, inShape);
            try (Tensor v = out.slice(axis, start, end, step)) { v.copyFrom(g); }
            catch (RuntimeException | Error e) { out.close(); throw e; }
            return grads(out);
        }
    }

    /** Tensor.cat; each input's gradient is its slice of the output's. */
    static final class Cat extends Function {
        private final int axis;
        private int[] sizes;
        private int a;
        Cat(int axis) { this.axis = axis; }
        protected Tensor forward(Tensor... x) {
            Tensor out = Tensor.cat(axis, x);
            a = Shape.axis(axis, out.dim());
            sizes = new int[x.length];
            for (int i = 0; i < x.length; i++) sizes[i] = x[i].size(a);
            return out;
        }
        protected Tensor[] backward(Tensor g) {
            Tensor[] out = new Tensor[sizes.length];
            for (int i = 0, at = 0; i < sizes.length; at += sizes[i++])
                if (needsGrad(i)) try (Tensor v = g.slice(a, at, at + sizes[i])) { out[i] = v.contiguous(); }
            return out;
        }
    }

    /** Tensor.stack; each input's gradient is its slice of the output's at its index along the new axis. */
    static final class Stack extends Function {
        private final int axis;
        private int a;
        Stack(int axis) { this.axis = axis; }
        protected Tensor forward(Tensor... x) { Tensor out = Tensor.stack(axis, x); a = Shape.axis(axis, out.dim()); return out; }
        protected Tensor[] backward(Tensor g) {
            Tensor[] out = new Tensor[inputs.length];
            for (int i = 0; i < out.length; i++)
                if (needsGrad(i)) try (Tensor v = g.slice(a, i, i + 1); Tensor sq = v.squeeze(a)) { out[i] = sq.contiguous(); }
            return out;
        }
    }

    static final class Expand extends Function {
        private final int[] shape;
        Expand(int... shape) { this.shape = shape; }
        protected Tensor forward(Tensor... x) { return x[0].expand(shape); }
        protected Tensor[] backward(Tensor g) { return grads(g.alias()); }
    }
}
