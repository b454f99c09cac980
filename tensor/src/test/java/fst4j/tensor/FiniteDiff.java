package fst4j.tensor;

import java.util.function.ToDoubleFunction;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Central finite differences in float64 for gradient tests. */
final class FiniteDiff {
    private FiniteDiff() {}

    /** d f / d x by central differences; x is perturbed in place and restored. */
    static double[] gradient(Tensor x, ToDoubleFunction<Tensor> f, double h) {
        double[] g = new double[(int) x.numel()];
        for (int i = 0; i < g.length; i++) {
            double v = x.getFlat(i);
            x.setFlat(i, v + h);
            double fp;
            try (Scope s = Scope.open()) { fp = f.applyAsDouble(x); }
            x.setFlat(i, v - h);
            double fm;
            try (Scope s = Scope.open()) { fm = f.applyAsDouble(x); }
            x.setFlat(i, v);
            g[i] = (fp - fm) / (2 * h);
        }
        return g;
    }

    /** <a, b> over all elements. */
    static double dot(Tensor a, Tensor b) {
        double[] x = a.toDoubleArray(), y = b.toDoubleArray();
        assertEquals(x.length, y.length);
        double s = 0;
        for (int i = 0; i < x.length; i++) s += x[i] * y[i];
        return s;
    }

    static void assertClose(double[] expect, Tensor actual, double tol, String what) {
        double[] a = actual.toDoubleArray();
        assertEquals(expect.length, a.length, what + " length");
        for (int i = 0; i < a.length; i++)
            assertEquals(expect[i], a[i], tol * (1 + Math.abs(expect[i])), what + " at " + i);
    }
}
