package fst4j.autograd;

import fst4j.tensor.Elementwise;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.function.BinaryOperator;
import java.util.function.UnaryOperator;

/**
 * torch.Tensor's everyday math on Vars, with torch 1.13's gradients. sin, cos, log1p, expm1, prod and cumsum are
 * tensor ops of their own (Elementwise's sin ..., fst4j.tensor.Lanes: in double on the CPU and in the same double
 * arithmetic in CUDA kernels); the rest are composites of device-capable ops or Functions whose forward and backward use
 * only those (pow with a tensor exponent, norm). All run on CUDA float32.
 */
final class MathOps {
    private MathOps() {}

    /** Temporaries of a backward, closed together. */
    private static final class Temps implements AutoCloseable {
        private final List<Tensor> ts = new ArrayList<>();
        Tensor t(Tensor x) { ts.add(x); return x; }
        @Override public void close() { for (Tensor x : ts) x.close(); }
    }

    /** f(x) elementwise, in double, rounded once (Elementwise's sin ...: CPU or CUDA, the same bits); backward g * df(x). */
    static final class Unary extends Function {
        private final String name;
        private final UnaryOperator<Tensor> f;
        private final BinaryOperator<Tensor> df;
        private Tensor x;
        Unary(String name, UnaryOperator<Tensor> f, BinaryOperator<Tensor> df) { this.name = name; this.f = f; this.df = df; }
        @Override public String name() { return name; }
        protected Tensor forward(Tensor... in) {
            Tensor out = f.apply(in[0]);
            x = save(in[0]);
            return out;
        }
        protected Tensor[] backward(Tensor g) { return grads(df.apply(g, x)); }
    }

    static Var sin(Var x) { return new Unary("Sin", Elementwise::sin, Elementwise::sinBackward).apply(x); }
    static Var cos(Var x) { return new Unary("Cos", Elementwise::cos, Elementwise::cosBackward).apply(x); }
    static Var log1p(Var x) { return new Unary("Log1p", Elementwise::log1p, Elementwise::log1pBackward).apply(x); }
    /** torch's gradient is g (y + 1); exp(x) is that value before y's rounding. */
    static Var expm1(Var x) { return new Unary("Expm1", Elementwise::expm1, Elementwise::expm1Backward).apply(x); }

    /** A rank-0 constant of x's dtype and device (broadcasts to anything). */
    static Var constant(Var x, double value) {
        Tensor v = x.value();
        return Var.of(Tensor.empty(v.device(), v.dtype()).fill(value));
    }

    /** 1 / x as a division (exact, as torch's reciprocal), gradient -g / x^2. */
    static Var reciprocal(Var x) { return constant(x, 1).div(x); }

    /**
     * torch.pow(x, e) with a tensor exponent (broadcast). Gradients as torch 1.13's pow_backward_self / _exponent: to x,
     * g e x^(e-1), 0 where e == 0; to e, g x^e log(x), 0 where x == 0 and e >= 0 (NaN for a negative x, as torch's).
     */
    static final class PowTensor extends Function {
        private Tensor a, e, y;
        @Override public String name() { return "PowTensor"; }
        protected Tensor forward(Tensor... in) {
            Tensor out = Elementwise.pow(in[0], in[1]);
            a = save(in[0]); e = save(in[1]); y = save(out);
            return out;
        }
        protected Tensor[] backward(Tensor g) {
            Tensor ga = null, gb = null;
            try (Temps t = new Temps()) {
                Tensor zero = t.t(Tensor.empty(g.device(), g.dtype()).fill(0));
                if (needsGrad(0)) {
                    Tensor d = t.t(t.t(Elementwise.pow(a, t.t(e.add(-1)))).mul(e));
                    ga = Elementwise.where(t.t(Elementwise.eq(e, zero)), zero, t.t(g.mul(d)));
                }
                if (needsGrad(1)) {
                    Tensor d = t.t(g.mul(t.t(y.mul(t.t(a.log())))));
                    Tensor cond = t.t(t.t(Elementwise.eq(a, zero)).mul(t.t(Elementwise.ge(e, zero))));
                    gb = Elementwise.where(cond, zero, d);
                }
            } catch (RuntimeException | Error ex) {
                if (ga != null) ga.close();
                throw ex;
            }
            return grads(ga, gb);
        }
    }

    /** torch.std(axes, correction, keepdim): sqrt of the variance with the given correction (1: Bessel's, 0: population). */
    static Var std(Var x, boolean keepDim, int correction, int... axes) {
        if (correction < 0) throw new IllegalArgumentException("std: correction must be >= 0, got " + correction);
        return new Ops.Variance(keepDim, correction, axes).apply(x).sqrt();
    }

    /**
     * torch.logsumexp(axes, keepdim): m + log(sum(exp(x - m))) with m the max over axes (taken as 0 where it is
     * infinite, as torch's, so that all -inf gives -inf rather than NaN); m is a constant to the graph, the gradient
     * being softmax(x) g either way. No axes reduces all of them.
     */
    static Var logsumexp(Var x, boolean keepDim, int... axes) {
        Tensor v = x.value();
        if (v.numel() == 0) throw new IllegalArgumentException("logsumexp of an empty tensor " + Shape.str(v.shape()));
        Tensor m;
        try (Tensor mk = v.max(true, axes); Tensor am = mk.abs(); Tensor inf = Tensor.empty(v.device(), v.dtype()).fill(Double.POSITIVE_INFINITY);
             Tensor isInf = Elementwise.eq(am, inf); Tensor zero = Tensor.empty(v.device(), v.dtype()).fill(0)) {
            m = Elementwise.where(isInf, zero, mk);
        }
        Var c = Var.of(m);
        Var out = x.sub(c).exp().sum(true, axes).log().add(c);
        if (keepDim) return out;
        int[] s = v.shape();
        boolean[] drop = new boolean[s.length];
        if (axes.length == 0) java.util.Arrays.fill(drop, true);
        for (int ax : axes) drop[Shape.axis(ax, s.length)] = true;
        int[] r = new int[s.length];
        int n = 0;
        for (int i = 0; i < s.length; i++) if (!drop[i]) r[n++] = s[i];
        return out.reshape(java.util.Arrays.copyOf(r, n));
    }

    /** sgn(x) with torch's conventions: 0 at 0, NaN at NaN, +-1 at infinities. */
    private static Tensor sgn(Tensor x, Temps t) {
        Tensor zero = t.t(Tensor.empty(x.device(), x.dtype()).fill(0));
        Tensor s = t.t(t.t(Elementwise.gt(x, zero)).sub(t.t(Elementwise.lt(x, zero))));
        return t.t(Elementwise.where(t.t(Elementwise.eq(x, x)), s, x));
    }

    static int[] keptShape(int[] s, int[] axes) {
        int[] k = s.clone();
        if (axes.length == 0) java.util.Arrays.fill(k, 1);
        for (int ax : axes) k[Shape.axis(ax, s.length)] = 1;
        return k;
    }

    /**
     * torch.linalg.vector_norm(x, p, axes, keepdim) for p > 0 (infinity included). Gradients as torch 1.13's
     * norm_backward: p = 2 gives g x / norm, 0 where the norm is 0 (the subgradient); p = 1 g sgn(x); p = inf shares g
     * equally among the elements whose |x| is the norm (and NaNs); other p use its masked formulas.
     */
    static final class Norm extends Function {
        private final double p;
        private final boolean keepDim;
        private final int[] axes;
        private Tensor x, nk;
        Norm(double p, boolean keepDim, int... axes) {
            if (!(p > 0)) throw new IllegalArgumentException("norm: p must be > 0 (or infinity), got " + p);
            this.p = p; this.keepDim = keepDim; this.axes = axes;
        }
        @Override public String name() { return "Norm"; }
        protected Tensor forward(Tensor... in) {
            Tensor v = in[0];
            Tensor k;
            try (Temps t = new Temps()) {
                if (p == 1) k = t.t(v.abs()).sum(true, axes);
                else if (p == 2) k = t.t(t.t(v.mul(v)).sum(true, axes)).sqrt();
                else if (p == Double.POSITIVE_INFINITY) {
                    if (v.numel() == 0) throw new IllegalArgumentException("norm: the infinity norm of an empty tensor " + Shape.str(v.shape()));
                    k = t.t(v.abs()).max(true, axes);
                } else k = t.t(t.t(t.t(v.abs()).pow(p)).sum(true, axes)).pow(1 / p);
            }
            try (k) {
                x = save(v);
                nk = save(k);
                int[] s = v.shape();
                if (keepDim) return k.alias();
                boolean[] drop = new boolean[s.length];
                if (axes.length == 0) java.util.Arrays.fill(drop, true);
                for (int ax : axes) drop[Shape.axis(ax, s.length)] = true;
                int[] r = new int[s.length];
                int n = 0;
                for (int i = 0; i < s.length; i++) if (!drop[i]) r[n++] = s[i];
                return k.reshape(java.util.Arrays.copyOf(r, n));
            }
        }
        protected Tensor[] backward(Tensor g) {
            try (Temps t = new Temps()) {
                Tensor gk = t.t(g.reshape(nk.shape()));
                Tensor zero = t.t(Tensor.empty(g.device(), g.dtype()).fill(0));
                Tensor normZero = t.t(Elementwise.eq(nk, zero));
                if (p == 1) return grads(sgn(x, t).mul(gk));
                if (p == 2) return grads(Elementwise.where(normZero, zero, t.t(x.div(nk))).mul(gk));
                Tensor a = t.t(x.abs());
                if (p == Double.POSITIVE_INFINITY) {
                    Tensor mask = t.t(t.t(Elementwise.eq(a, nk)).add(t.t(t.t(Elementwise.eq(a, a)).neg()).add(1)));
                    Tensor cnt = t.t(mask.sum(true, axes));
                    Tensor share = t.t(t.t(gk.div(cnt)).mul(mask));
                    return grads(sgn(x, t).mul(share));
                }
                if (p < 1) {
                    Tensor xs = t.t(Elementwise.where(t.t(Elementwise.eq(x, zero)), zero, t.t(a.pow(p - 1))));
                    Tensor scaled = t.t(sgn(x, t).mul(xs));
                    return grads(t.t(scaled.mul(gk)).mul(t.t(nk.pow(1 - p))));
                }
                Tensor scale = Elementwise.where(normZero, zero, t.t(gk.div(t.t(nk.pow(p - 1)))));
                t.t(scale);
                Tensor scaled = p < 2 ? t.t(sgn(x, t).mul(t.t(a.pow(p - 1)))) : t.t(x.mul(t.t(a.pow(p - 2))));
                return grads(scaled.mul(scale));
            }
        }
    }

    /** Reductions along one axis of a contiguous double array seen as [outer, n, inner]. */
    private record Lanes(int outer, int n, int inner) {
        static Lanes of(int[] s, Integer axis) {
            if (axis == null) return new Lanes(1, Math.toIntExact(Shape.numel(s)), 1);
            int a = Shape.axis(axis, s.length);
            long o = 1, i = 1;
            for (int d = 0; d < a; d++) o *= s[d];
            for (int d = a + 1; d < s.length; d++) i *= s[d];
            return new Lanes(Math.toIntExact(o), s[a], Math.toIntExact(i));
        }
        int at(int o, int k, int j) { return (o * n + k) * inner + j; }
    }

    /** Shape after reducing axis (null: all of them). */
    private static int[] reduced(int[] s, Integer axis, boolean keepDim) {
        if (axis == null) { int[] k = new int[keepDim ? s.length : 0]; java.util.Arrays.fill(k, 1); return k; }
        int a = Shape.axis(axis, s.length);
        if (keepDim) { int[] k = s.clone(); k[a] = 1; return k; }
        int[] r = new int[s.length - 1];
        for (int d = 0, j = 0; d < s.length; d++) if (d != a) r[j++] = s[d];
        return r;
    }

    /**
     * torch.prod (all elements, or along one axis). Gradient as torch 1.13's: g prod / x where no element of the lane
     * is 0; with one zero, that element gets g times the product of the others and the rest 0; with more, all 0; a
     * rank-0 x gets g itself (torch's prod_backward returns grad for a 0-dim input, so an infinite or NaN scalar gets g,
     * not g x / x = NaN). {@link fst4j.tensor.Lanes}' loops in double (CPU or CUDA, the same bits).
     */
    static final class Prod extends Function {
        private final Integer axis;
        private final boolean keepDim;
        private Tensor x;
        Prod(Integer axis, boolean keepDim) { this.axis = axis; this.keepDim = keepDim; }
        @Override public String name() { return "Prod"; }
        protected Tensor forward(Tensor... in) {
            int[] s = in[0].shape();
            if (axis != null && s.length == 0) throw new IllegalArgumentException("prod: axis " + axis + " of a scalar");
            Lanes l = Lanes.of(s, axis);
            Tensor out = fst4j.tensor.Lanes.prod(in[0], l.outer, l.n, l.inner, reduced(s, axis, keepDim));
            x = save(in[0]);
            return out;
        }
        protected Tensor[] backward(Tensor g) {
            if (x.shape().length == 0) return grads(g.alias());   // torch 1.13: input.dim() == 0 -> grad
            Lanes l = Lanes.of(x.shape(), axis);
            return grads(fst4j.tensor.Lanes.prodBackward(x, g, l.outer, l.n, l.inner));
        }
    }

    /** torch.cumsum(axis): running sums along axis (in double); the gradient is the reversed running sum of g. */
    static final class Cumsum extends Function {
        private final int axis;
        private int[] shape;
        Cumsum(int axis) { this.axis = axis; }
        @Override public String name() { return "Cumsum"; }
        private Integer ax(int[] s) {
            if (s.length == 0) {
                if (axis != 0 && axis != -1) throw new IllegalArgumentException("cumsum: axis " + axis + " out of range for rank 0 (0 or -1)");
                return null;
            }
            return axis;
        }
        protected Tensor forward(Tensor... in) {
            shape = in[0].shape();
            Lanes l = Lanes.of(shape, ax(shape));
            return fst4j.tensor.Lanes.cumsum(in[0], l.outer, l.n, l.inner, false);
        }
        protected Tensor[] backward(Tensor g) {
            Lanes l = Lanes.of(shape, ax(shape));
            return grads(fst4j.tensor.Lanes.cumsum(g, l.outer, l.n, l.inner, true));
        }
    }
}
