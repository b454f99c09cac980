package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.Var;
import fst4j.tensor.DType;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.BiFunction;

import static fst4j.nn.TorchActivationsTest.near;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Var's shape, indexing and math ops (VarShapeOpsTest, VarIndexOpsTest, VarMathOpsTest in autograd) against torch 1.13,
 * float64 and float32: the values and the gradients of sum(y * w) for x and, for pow, the exponent, per element, on
 * random inputs and on the awkward ones (ties for amin and the inf-norm, zeros for prod and the norms, -inf and large
 * values for logsumexp, a negative base for pow). Skipped, with the reason, where no Python imports torch (TorchPeer).
 */
class TorchVarOpsTest {
    /** One op: torch's expression of x and e, ours, and the inputs (values, shape) of x and e. */
    record Case(String name, String torch, BiFunction<Var, Var, Var> ours, double[] x, int[] xs, double[] e, int[] es) {}

    private static final List<Case> CASES = new ArrayList<>();
    private static final SplittableRandom R = new SplittableRandom(34);

    static double[] uniform(int n, double lo, double hi) { return TorchActivationsTest.uniform(R, n, lo, hi); }

    static int numel(int... s) { int n = 1; for (int d : s) n *= d; return n; }

    static void add(String name, String torch, BiFunction<Var, Var, Var> ours, double lo, double hi, int... shape) {
        CASES.add(new Case(name, torch, ours, uniform(numel(shape), lo, hi), shape, new double[]{1}, new int[]{1}));
    }

    static void add(String name, String torch, BiFunction<Var, Var, Var> ours, double[] x, int... shape) {
        CASES.add(new Case(name, torch, ours, x, shape, new double[]{1}, new int[]{1}));
    }

    /** The pieces flattened, each scaled by its position + 1, joined (the same helper in the script). */
    static Var join(Var[] ps) {
        List<Var> fl = new ArrayList<>();
        for (int i = 0; i < ps.length; i++) fl.add(ps[i].reshape(-1).mul(i + 1));
        return Var.cat(0, fl.toArray(Var[]::new));
    }

    static Tensor of(Var like, double... v) { return Tensor.of(v, v.length).to(like.value().dtype()); }

    static {
        // shape
        add("squeeze", "x.squeeze()", (x, e) -> x.squeeze(), -2, 2, 1, 3, 1, 2);
        add("squeeze_ax", "x.squeeze(-2)", (x, e) -> x.squeeze(-2), -2, 2, 1, 3, 1, 2);
        add("unsqueeze", "x.unsqueeze(-1)", (x, e) -> x.unsqueeze(-1), -2, 2, 3, 2);
        add("flatten", "x.flatten(1, 2)", (x, e) -> x.flatten(1, 2), -2, 2, 2, 3, 1, 2);
        add("unflatten", "x.unflatten(1, (3, -1))", (x, e) -> x.unflatten(1, 3, -1), -2, 2, 2, 6);
        add("split", "join(x.split(2, 1))", (x, e) -> join(x.split(2, 1)), -2, 2, 2, 5, 3);
        add("split_sizes", "join(x.split([1, 3, 1], -2))", (x, e) -> join(x.split(new int[]{1, 3, 1}, -2)), -2, 2, 2, 5, 3);
        add("chunk", "join(x.chunk(3, 1))", (x, e) -> join(x.chunk(3, 1)), -2, 2, 2, 5, 3);
        add("unbind", "join(x.unbind(-1))", (x, e) -> join(x.unbind(-1)), -2, 2, 2, 5, 3);
        add("flip", "x.flip(0, -1)", (x, e) -> x.flip(0, -1), -2, 2, 2, 5, 3);
        add("roll", "x.roll(-7, 1)", (x, e) -> x.roll(-7, 1), -2, 2, 2, 5, 3);
        add("roll2", "torch.roll(x, (1, 2), (0, 2))", (x, e) -> x.roll(new int[]{1, 2}, new int[]{0, 2}), -2, 2, 2, 5, 3);
        add("roll_flat", "torch.roll(x, 4)", (x, e) -> x.roll(new int[]{4}, new int[]{}), -2, 2, 2, 5, 3);
        add("repeat", "x.repeat(2, 1, 3, 1)", (x, e) -> x.repeat(2, 1, 3, 1), -2, 2, 2, 1, 3);
        add("pad_const", "F.pad(x, (1, 2, 0, 1), value=0.5)", (x, e) -> NN.pad(x, new int[]{1, 2, 0, 1}, 0.5), -2, 2, 2, 3, 4);
        add("pad_crop", "F.pad(x, (-1, 2, 1, -1))", (x, e) -> NN.pad(x, new int[]{-1, 2, 1, -1}, 0), -2, 2, 2, 3, 4);
        add("pad_reflect", "F.pad(x, (2, 1, 1, 2), mode='reflect')", (x, e) -> NN.pad(x, new int[]{2, 1, 1, 2}, NN.PadMode.REFLECT, 0), -2, 2, 2, 3, 4);
        add("pad_reflect1", "F.pad(x, (3, 2), mode='reflect')", (x, e) -> NN.pad(x, new int[]{3, 2}, NN.PadMode.REFLECT, 0), -2, 2, 2, 4);
        add("pad_replicate", "F.pad(x, (2, 1, 1, 2), mode='replicate')", (x, e) -> NN.pad(x, new int[]{2, 1, 1, 2}, NN.PadMode.REPLICATE, 0), -2, 2, 2, 3, 4);
        add("pad_circular", "F.pad(x, (2, 1, 1, 3), mode='circular')", (x, e) -> NN.pad(x, new int[]{2, 1, 1, 3}, NN.PadMode.CIRCULAR, 0), -2, 2, 1, 2, 3, 4);
        // pads equal to the sizes (torch's bound) over three axes: each element read up to 3 x 3 x 2 times
        add("pad_circular3", "F.pad(x, (3, 3, 2, 0, 1, 1), mode='circular')", (x, e) -> NN.pad(x, new int[]{3, 3, 2, 0, 1, 1}, NN.PadMode.CIRCULAR, 0), -2, 2, 1, 1, 2, 2, 3);
        add("pad_circular1", "F.pad(x, (0, 2), mode='circular')", (x, e) -> NN.pad(x, new int[]{0, 2}, NN.PadMode.CIRCULAR, 0), -2, 2, 2, 2, 3);
        // indexing
        add("index_select", "x.index_select(1, torch.tensor([2, 0, 2, 4]))", (x, e) -> x.indexSelect(1, new int[]{2, 0, 2, 4}), -2, 2, 2, 5, 3);
        int[] idx = {0, 2, 2, 1, 1, 1, 0, 0, 2, 0, 1, 2, 0, 0, 2, 2};
        add("gather", "x.gather(-1, torch.tensor(" + java.util.Arrays.toString(idx) + ").reshape(2, 4, 2))",
                (x, e) -> x.gather(-1, idx, new int[]{2, 4, 2}), -2, 2, 2, 5, 3);
        add("masked_fill", "x.masked_fill(torch.tensor([1., 0., 1.]).bool(), -3.0)", (x, e) -> x.maskedFill(of(x, 1, 0, 1), -3), -2, 2, 2, 5, 3);
        double[] ties = new double[30];
        for (int i = 0; i < ties.length; i++) ties[i] = R.nextInt(3) - 1;
        add("amin", "x.amin((0, 2), keepdim=True)", (x, e) -> x.min(true, 0, 2), ties, 2, 5, 3);
        add("amin_all", "x.amin()", (x, e) -> x.min(false), ties, 2, 5, 3);
        // math
        add("sin", "x.sin()", (x, e) -> x.sin(), -4, 4, 3, 5);
        add("cos", "x.cos()", (x, e) -> x.cos(), -4, 4, 3, 5);
        add("log1p", "x.log1p()", (x, e) -> x.log1p(), -0.9, 3, 3, 5);
        add("expm1", "x.expm1()", (x, e) -> x.expm1(), -3, 3, 3, 5);
        add("reciprocal", "x.reciprocal()", (x, e) -> x.reciprocal(), new double[]{0.3, -2, 5, 1e-3, -0.0, 0.0}, 6);
        add("rsqrt", "x.rsqrt()", (x, e) -> x.rsqrt(), 0.2, 3, 3, 5);
        add("square", "x.square()", (x, e) -> x.square(), -3, 3, 3, 5);
        add("sub", "x - 1.5", (x, e) -> x.sub(1.5), -3, 3, 3, 5);
        add("rsub", "torch.rsub(x, 1.5)", (x, e) -> x.rsub(1.5), -3, 3, 3, 5);
        add("div", "x / -3.0", (x, e) -> x.div(-3), -3, 3, 3, 5);
        CASES.add(new Case("pow", "x.pow(e)", Var::pow, uniform(6, 0.2, 2), new int[]{2, 3}, uniform(3, -2, 2), new int[]{3}));
        CASES.add(new Case("pow_edges", "x.pow(e)", Var::pow, new double[]{0, 0, 0, 2, -1.5, -1.5, 0.5}, new int[]{7},
                new double[]{0, 2, -1, 0, 2, 0.5, -3}, new int[]{7}));
        add("std", "x.std(-1)", (x, e) -> x.std(1, false, -1), -2, 2, 3, 1, 5);
        add("std_c0", "torch.std(x, (0, 2), correction=0, keepdim=True)", (x, e) -> x.std(0, true, 0, 2), -2, 2, 3, 1, 5);
        add("prod", "x.prod(1)", (x, e) -> x.prod(1, false), new double[]{2, 0, 3, 0, 5, 0, 2, 4, 0.5, -1, 3, 0.25}, 4, 3);
        add("prod_all", "x.prod()", (x, e) -> x.prod(), 0.5, 1.5, 3, 4);
        double[] lse = uniform(12, -3, 3);
        lse[0] = 1000; lse[1] = 999; lse[4] = Double.NEGATIVE_INFINITY; lse[5] = Double.NEGATIVE_INFINITY; lse[6] = Double.NEGATIVE_INFINITY; lse[7] = Double.NEGATIVE_INFINITY;
        add("logsumexp", "torch.logsumexp(x, -1)", (x, e) -> x.logsumexp(false, -1), lse, 3, 4);
        add("logsumexp_k", "torch.logsumexp(x, (0, 1), keepdim=True)", (x, e) -> x.logsumexp(true, 0, 1), -3, 3, 2, 3, 2);
        double[] nz = uniform(12, -2, 2);
        for (int i = 4; i < 8; i++) nz[i] = 0;
        nz[8] = 1.5; nz[9] = -1.5;   // a tie of |x| for the inf-norm
        for (String p : new String[]{"1", "2", "3", "0.5", "1.5", "inf"}) {
            double pv = p.equals("inf") ? Double.POSITIVE_INFINITY : Double.parseDouble(p);
            add("norm_" + p, "torch.linalg.vector_norm(x, float('" + p + "'), -1)", (x, e) -> x.norm(pv, false, -1), nz, 3, 4);
            add("norm_all_" + p, "torch.linalg.vector_norm(x, float('" + p + "'), (0, 1), keepdim=True)", (x, e) -> x.norm(pv, true, 0, 1), -2, 2, 2, 1, 3);
        }
        add("cumsum", "x.cumsum(1)", (x, e) -> x.cumsum(1), -2, 2, 2, 5, 3);
        add("cumsum_neg", "x.cumsum(-3)", (x, e) -> x.cumsum(-3), -2, 2, 2, 5, 3);
    }

    static String py(double[] v) { return TorchPeer.list(v).replace("-Infinity", "-float('inf')").replace("Infinity", "float('inf')").replace("NaN", "float('nan')"); }

    /** The weights of sum(y * w), a pattern both sides compute. */
    static Tensor weights(Var y) {
        int[] s = y.shape();
        Tensor w = Tensor.empty(y.value().dtype(), s);
        for (long i = 0; i < w.numel(); i++) w.setFlat(i, 1 + (i % 7) * 0.25);
        return w;
    }

    @Test
    void valuesAndGradientsAgreeWithTorch(@TempDir Path dir) throws Exception {
        StringBuilder cases = new StringBuilder();
        for (Case c : CASES)
            cases.append(String.format(Locale.ROOT, "    ('%s', lambda x, e: %s, %s, %s, %s, %s),%n", c.name, c.torch, py(c.x), java.util.Arrays.toString(c.xs).replace('[', '(').replace("]", ",)"),
                    py(c.e), java.util.Arrays.toString(c.es).replace('[', '(').replace("]", ",)")));
        String script = String.format(Locale.ROOT, """
                import torch
                import torch.nn.functional as F
                def out(key, t):
                    print(key, *[repr(float(v)) for v in t.detach().flatten().tolist()])
                def join(ps):
                    return torch.cat([p.flatten() * (i + 1) for i, p in enumerate(ps)])
                cases = [
                %s]
                for dt, dn in ((torch.float64, 'F64'), (torch.float32, 'F32')):
                    for name, f, X, XS, E, ES in cases:
                        x = torch.tensor(X, dtype=torch.float64).reshape(XS).to(dt).requires_grad_()
                        e = torch.tensor(E, dtype=torch.float64).reshape(ES).to(dt).requires_grad_()
                        y = f(x, e)
                        w = (1 + (torch.arange(y.numel()) %% 7) * 0.25).reshape(y.shape).to(dt)
                        (y * w).sum().backward()
                        key = name + '.' + dn
                        out(key, y)
                        out(key + '.dx', x.grad if x.grad is not None else torch.zeros_like(x))
                        out(key + '.de', e.grad if e.grad is not None else torch.zeros_like(e))
                """, cases);
        Map<String, double[]> torch = TorchPeer.run(dir, script);
        int checked = 0;
        for (DType dt : new DType[]{DType.F64, DType.F32}) {
            // float32: torch computes in float (products, sums and norms accumulate there), this in double rounded once
            double rtol = dt == DType.F64 ? 1e-12 : 2e-5, atol = dt == DType.F64 ? 1e-13 : 2e-6;
            for (Case c : CASES) {
                String key = c.name + "." + dt;
                // torch's float logsumexp gradient is exp(x - y) with y rounded to float: at y = 1000.3 that rounding
                // (an ulp of 6e-5) shows as 3e-5 relative in the gradient; this one is the softmax in double
                double r = dt == DType.F32 && c.name.equals("logsumexp") ? 1e-4 : rtol;
                try (Scope s = Scope.open()) {
                    Var x = Var.param(Tensor.of(c.x, c.xs).to(dt)), e = Var.param(Tensor.of(c.e, c.es).to(dt));
                    Var y = c.ours.apply(x, e);
                    assertEquals(dt, y.value().dtype(), key);
                    assertArrayEquals(shapeOf(torch, key, y), y.shape(), key + ": shape");
                    y.mul(Var.of(weights(y))).sum().backward();
                    near(key, torch.get(key), y.value().toDoubleArray(), r, atol);
                    near(key + ".dx", torch.get(key + ".dx"), x.grad() == null ? new double[c.x.length] : x.grad().toDoubleArray(), r, atol);
                    near(key + ".de", torch.get(key + ".de"), e.grad() == null ? new double[c.e.length] : e.grad().toDoubleArray(), r, atol);
                    checked++;
                }
            }
        }
        assertEquals(2 * CASES.size(), checked);
    }

    /** torch prints values only: the shape is checked through their count (the exact shapes are in the autograd tests). */
    private static int[] shapeOf(Map<String, double[]> torch, String key, Var y) {
        double[] v = torch.get(key);
        assertNotNull(v, "torch printed no " + key);
        assertEquals(v.length, y.value().numel(), key + ": element count");
        return y.shape();
    }

    /** argmax / argmin (not differentiable) with ties and NaN, against torch's. */
    @Test
    void argmaxAndArgminAgreeWithTorch(@TempDir Path dir) throws Exception {
        double[] x = new double[24];
        for (int i = 0; i < x.length; i++) x[i] = R.nextInt(3);
        x[5] = Double.NaN;
        x[13] = Double.NaN;
        String script = String.format(Locale.ROOT, """
                import torch
                def out(key, t):
                    print(key, *[repr(float(v)) for v in t.flatten().tolist()])
                for dt, dn in ((torch.float64, 'F64'), (torch.float32, 'F32')):
                    x = torch.tensor(%s, dtype=torch.float64).reshape(2, 3, 4).to(dt)
                    for ax in (0, 1, -1):
                        out('argmax.%%d.%%s' %% (ax, dn), x.argmax(ax))
                        out('argmin.%%d.%%s' %% (ax, dn), x.argmin(ax))
                """, py(x));
        Map<String, double[]> torch = TorchPeer.run(dir, script);
        for (DType dt : new DType[]{DType.F64, DType.F32})
            try (Scope s = Scope.open()) {
                Var v = Var.of(Tensor.of(x, 2, 3, 4).to(dt));
                for (int ax : new int[]{0, 1, -1}) {
                    near("argmax." + ax, torch.get("argmax." + ax + "." + dt), java.util.Arrays.stream(v.argmax(ax, false)).asDoubleStream().toArray(), 0, 0);
                    near("argmin." + ax, torch.get("argmin." + ax + "." + dt), java.util.Arrays.stream(v.argmin(ax, false)).asDoubleStream().toArray(), 0, 0);
                }
            }
    }
}
