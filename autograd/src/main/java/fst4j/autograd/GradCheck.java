package fst4j.autograd;

import fst4j.tensor.DType;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * Compares the analytic gradients of f with central finite differences, all in float64 (f gets float64 copies of the
 * inputs, which are left as they are). f may return any shape: the scalar checked is sum(f(x) * r) for a fixed random r, so every
 * output element's gradient path is exercised.
 */
public final class GradCheck {
    private GradCheck() {}

    /**
     * maxAbsError: the largest |analytic - numeric| over every input element; maxRelError: the largest |analytic - numeric|
     * / |numeric| where |numeric| > atol. The worst element (input, flat index, both values) is the one furthest past
     * |analytic - numeric| <= atol + rtol * |numeric|, which every element must meet to pass.
     */
    public record Result(double maxAbsError, double maxRelError, int worstInput, long worstIndex,
                         double analytic, double numeric, boolean passed) {
        @Override
        public String toString() {
            return String.format("gradcheck %s: max abs err %.3e, max rel err %.3e (input %d, element %d: analytic %.8g vs numeric %.8g)",
                    passed ? "passed" : "FAILED", maxAbsError, maxRelError, worstInput, worstIndex, analytic, numeric);
        }
    }

    public interface Fn { Var apply(Var... in); }

    public static Result check(Fn f, Tensor... inputs) { return check(f, 1e-6, 1e-5, 1e-4, inputs); }

    /** Passes when every element satisfies |a - n| <= atol + rtol * |n|. */
    public static Result check(Fn f, double eps, double atol, double rtol, Tensor... inputs) {
        try (Scope scope = Scope.open()) {
            Var[] vars = new Var[inputs.length];
            // copies, also of float64 inputs (to(F64) aliased them): the differences perturb each element in place, which
            // moved the caller's tensor's version and left it perturbed where f threw half way
            for (int i = 0; i < inputs.length; i++)
                vars[i] = Var.param(Tensor.empty(inputs[i].device(), DType.F64, inputs[i].shape()).copyFrom(inputs[i]));
            Var out = f.apply(vars);
            Tensor r = projection(out.value().shape());
            if (!out.requiresGrad()) throw new IllegalArgumentException("gradcheck: output does not depend on any input");
            out.backward(r);
            double maxAbs = 0, maxRel = 0, worstScore = -1, wa = 0, wn = 0;
            int worstIn = -1;
            long worstIdx = -1;
            for (int i = 0; i < vars.length; i++) {
                Tensor x = vars[i].value();
                Tensor g = vars[i].grad();
                long n = x.numel();
                for (long j = 0; j < n; j++) {
                    double orig = x.getFlat(j);
                    x.setFlat(j, orig + eps);
                    double fp = evaluate(f, vars, r);
                    x.setFlat(j, orig - eps);
                    double fm = evaluate(f, vars, r);
                    x.setFlat(j, orig);
                    double num = (fp - fm) / (2 * eps);
                    double ana = g == null ? 0 : g.getFlat(j);
                    double abs = Math.abs(ana - num);
                    double score = abs / (atol + rtol * Math.abs(num));   // <= 1 passes
                    if (Double.isNaN(score)) score = Double.POSITIVE_INFINITY;   // a NaN on either side fails (NaN > x is false)
                    maxAbs = Math.max(maxAbs, abs);
                    if (Math.abs(num) > atol) maxRel = Math.max(maxRel, abs / Math.abs(num));
                    if (score > worstScore) { worstScore = score; worstIn = i; worstIdx = j; wa = ana; wn = num; }
                }
            }
            boolean ok = worstScore <= 1;
            return new Result(maxAbs, maxRel, worstIn, worstIdx, wa, wn, ok);
        }
    }

    /** A function of several outputs ({@link MultiFunction#applyMulti}, or any composition returning several Vars). */
    public interface MultiFn { Var[] apply(Var... in); }

    public static Result checkMulti(MultiFn f, Tensor... inputs) { return checkMulti(f, 1e-6, 1e-5, 1e-4, inputs); }

    /**
     * {@link #check} for several outputs: the scalar checked is sum_k sum(f(x)[k] * r_k), with its own fixed random r_k
     * per output, once for each differentiable output alone (the others unused, so their zero gradients are checked
     * too) and once for all of them together (every output's gradient arriving at one node). Outputs that require no
     * gradient (non-differentiable, such as indices) are left out. Returns the first failed check, else the one with
     * the largest absolute error.
     */
    public static Result checkMulti(MultiFn f, double eps, double atol, double rtol, Tensor... inputs) {
        int n;
        try (Grad.Restore ng = Grad.noGrad(); Scope s = Scope.open()) {
            Var[] consts = Arrays.stream(inputs).map(t -> Var.of(t.alias())).toArray(Var[]::new);
            n = f.apply(consts).length;
        }
        Result worst = null;
        for (int only = 0; only <= n; only++) {   // only == n: all outputs
            Projected p = new Projected(f, only == n ? -1 : only);
            try {
                Result r = check(p, eps, atol, rtol, inputs);
                if (!r.passed()) return r;
                if (worst == null || r.maxAbsError() > worst.maxAbsError()) worst = r;
            } catch (SkipOutput e) {
                // not differentiable: nothing to check alone
            } finally {
                p.close();
            }
        }
        if (worst == null) throw new IllegalArgumentException("gradcheck: no output depends on any input");
        return worst;
    }

    private static final class SkipOutput extends RuntimeException {
        SkipOutput() { super(null, null, false, false); }
    }

    /** The scalar sum_k sum(out[k] * r_k) over the chosen outputs; which are differentiable is decided on the first (recording) call. */
    private static final class Projected implements Fn, AutoCloseable {
        private final MultiFn f;
        private final int only;
        private boolean[] differentiable;
        private Tensor[] r;

        Projected(MultiFn f, int only) { this.f = f; this.only = only; }

        @Override
        public Var apply(Var... in) {
            Var[] outs = f.apply(in);
            if (differentiable == null) {
                differentiable = new boolean[outs.length];
                r = new Tensor[outs.length];
                for (int k = 0; k < outs.length; k++) {
                    differentiable[k] = outs[k].requiresGrad();
                    int seed = k;
                    r[k] = Scope.within(null, () -> projection(outs[seed].value().shape(), 0x5eed + 7919L * seed));
                }
                if (only >= 0 && !differentiable[only]) throw new SkipOutput();
            }
            Var s = null;
            for (int k = 0; k < outs.length; k++) {
                if (!differentiable[k] || (only >= 0 && k != only)) continue;
                Var t = outs[k].mul(Var.of(r[k].alias())).sum();
                s = s == null ? t : s.add(t);
            }
            if (s == null) throw new IllegalArgumentException("gradcheck: no output requires a gradient (all non-differentiable, or none depends on an input)");
            return s;
        }

        @Override
        public void close() {
            if (r != null) for (Tensor t : r) t.close();
        }
    }

    private static double evaluate(Fn f, Var[] vars, Tensor r) {
        try (Grad.Restore ng = Grad.noGrad(); Scope s = Scope.open()) {
            Var[] consts = Arrays.stream(vars).map(v -> Var.of(v.value().alias())).toArray(Var[]::new);
            Var out = f.apply(consts);
            double acc = 0;
            Tensor o = out.value();
            long n = o.numel();
            for (long j = 0; j < n; j++) acc += o.getFlat(j) * r.getFlat(j);
            return acc;
        }
    }

    private static Tensor projection(int[] shape) { return projection(shape, 0x5eed); }

    private static Tensor projection(int[] shape, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        Tensor r = Tensor.empty(DType.F64, shape);
        for (long j = 0; j < r.numel(); j++) r.setFlat(j, rnd.nextDouble(0.5, 1.5) * (rnd.nextBoolean() ? 1 : -1));
        return r;
    }
}
