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

    private static Tensor projection(int[] shape) {
        SplittableRandom rnd = new SplittableRandom(0x5eed);
        Tensor r = Tensor.empty(DType.F64, shape);
        for (long j = 0; j < r.numel(); j++) r.setFlat(j, rnd.nextDouble(0.5, 1.5) * (rnd.nextBoolean() ? 1 : -1));
        return r;
    }
}
