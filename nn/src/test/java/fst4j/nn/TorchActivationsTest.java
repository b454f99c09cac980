package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.Var;
import fst4j.tensor.DType;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.UnaryOperator;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The activations (NN.gelu in both forms, silu, mish, leakyRelu, elu, softplus, hardtanh, relu6, Var.clamp, abs, maximum,
 * minimum) against torch 1.13, float32 and float64: values and the gradient of sum(y * w), on random values and on the
 * awkward ones (negative, zero of both signs, the bounds, softplus's threshold, large enough to overflow exp in float,
 * NaN, infinities). The awkward values go through torch one at a time: at an infinity torch's vectorised float kernels
 * do not always agree with their own scalar formula (silu's gradient at +inf is 1 in some positions of a vector and NaN
 * alone), and the formula is what this copies. Skipped, with the reason, where no Python imports torch (TorchPeer).
 */
class TorchActivationsTest {
    /** The awkward inputs, each also as a float32. */
    static final double[] SPECIAL = {Double.NEGATIVE_INFINITY, -1000, -104, -100, -89, -20, -6, -3, -2, -1, -0.5, -1e-3, -0.0, 0.0, 1e-3, 0.5, 1,
            1.5, 2, 3, 6, 7.5, 10, 15, 19.9, 20, 20.1, 25, 80, 100, 1000, Double.POSITIVE_INFINITY, Double.NaN};

    /** name -> {torch expression of x, ours}. */
    static Map<String, Object[]> ops() {
        Map<String, Object[]> m = new LinkedHashMap<>();
        m.put("gelu", new Object[]{"F.gelu(x)", (UnaryOperator<Var>) NN::gelu});
        m.put("gelu_tanh", new Object[]{"F.gelu(x, approximate='tanh')", (UnaryOperator<Var>) x -> NN.gelu(x, NN.GeluApproximate.TANH)});
        m.put("silu", new Object[]{"F.silu(x)", (UnaryOperator<Var>) NN::silu});
        m.put("mish", new Object[]{"F.mish(x)", (UnaryOperator<Var>) NN::mish});
        m.put("leaky", new Object[]{"F.leaky_relu(x)", (UnaryOperator<Var>) x -> NN.leakyRelu(x, 0.01)});
        m.put("leaky_neg", new Object[]{"F.leaky_relu(x, -0.3)", (UnaryOperator<Var>) x -> NN.leakyRelu(x, -0.3)});
        m.put("elu", new Object[]{"F.elu(x)", (UnaryOperator<Var>) x -> NN.elu(x, 1)});
        m.put("elu_a", new Object[]{"F.elu(x, 1.7)", (UnaryOperator<Var>) x -> NN.elu(x, 1.7)});
        m.put("softplus", new Object[]{"F.softplus(x)", (UnaryOperator<Var>) NN::softplus});
        m.put("softplus_b", new Object[]{"F.softplus(x, 2.0, 3.0)", (UnaryOperator<Var>) x -> NN.softplus(x, 2, 3)});
        m.put("softplus_nb", new Object[]{"F.softplus(x, -1.5, 10.0)", (UnaryOperator<Var>) x -> NN.softplus(x, -1.5, 10)});
        m.put("hardtanh", new Object[]{"F.hardtanh(x)", (UnaryOperator<Var>) x -> NN.hardtanh(x, -1, 1)});
        m.put("hardtanh_b", new Object[]{"F.hardtanh(x, -2.0, 3.0)", (UnaryOperator<Var>) x -> NN.hardtanh(x, -2, 3)});
        m.put("relu6", new Object[]{"F.relu6(x)", (UnaryOperator<Var>) NN::relu6});
        m.put("clamp", new Object[]{"torch.clamp(x, -2.0, 3.0)", (UnaryOperator<Var>) x -> x.clamp(-2, 3)});
        m.put("clamp_min", new Object[]{"torch.clamp(x, min=0.5)", (UnaryOperator<Var>) x -> x.clamp(0.5, Double.POSITIVE_INFINITY)});
        m.put("clamp_max", new Object[]{"torch.clamp(x, max=-1.0)", (UnaryOperator<Var>) x -> x.clamp(Double.NEGATIVE_INFINITY, -1)});
        m.put("clamp_crossed", new Object[]{"torch.clamp(x, 3.0, -2.0)", (UnaryOperator<Var>) x -> x.clamp(3, -2)});
        m.put("abs", new Object[]{"torch.abs(x)", (UnaryOperator<Var>) Var::abs});
        return m;
    }

    /**
     * NaN where NaN, infinities exact, else |got - want| <= rtol |want| + atol. Zeros of either sign are equal, and
     * atol covers subnormal floats where torch's float exp overflowed to 0 (silu, mish and elu below about -88).
     */
    static void near(String what, double[] want, double[] got, double rtol, double atol) {
        assertNotNull(want, "torch printed no " + what);
        assertEquals(want.length, got.length, what + ": sizes");
        for (int i = 0; i < want.length; i++) {
            double w = want[i], g = got[i];
            String at = what + " at " + i + ": got " + g + ", torch " + w;
            if (Double.isNaN(w) || Double.isNaN(g)) { assertTrue(Double.isNaN(w) && Double.isNaN(g), at); continue; }
            if (Double.isInfinite(w) || Double.isInfinite(g)) { assertEquals(w, g, at); continue; }
            assertTrue(Math.abs(g - w) <= rtol * Math.abs(w) + atol, at);
        }
    }

    static double[] uniform(SplittableRandom r, int n, double lo, double hi) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = r.nextDouble(lo, hi);
        return v;
    }

    @Test
    void activationsAgreeWithTorch(@TempDir Path dir) throws Exception {
        SplittableRandom r = new SplittableRandom(2024);
        double[] x = uniform(r, 64, -7, 7), w = uniform(r, 64, 0.5, 1.5);
        Map<String, Object[]> ops = ops();
        StringBuilder cases = new StringBuilder();
        for (Map.Entry<String, Object[]> e : ops.entrySet())
            cases.append("    '").append(e.getKey()).append("': lambda x: ").append(e.getValue()[0]).append(",\n");
        String script = String.format(Locale.ROOT, """
                import torch
                import torch.nn.functional as F
                X, W, S = %s, %s, %s
                def out(key, t):
                    print(key, *[repr(float(v)) for v in t.detach().flatten().tolist()])
                cases = {
                %s}
                for dt, dn in ((torch.float64, 'F64'), (torch.float32, 'F32')):
                    for name, f in cases.items():
                        x = torch.tensor(X, dtype=dt).requires_grad_()
                        y = f(x)
                        (y * torch.tensor(W, dtype=dt)).sum().backward()
                        out(name + '.' + dn, y)
                        out(name + '.' + dn + '.dx', x.grad)
                        ys, gs = [], []
                        for v in S:   # one at a time: the scalar formula (see the class comment)
                            xs = torch.tensor([v], dtype=dt).requires_grad_()
                            yv = f(xs)
                            yv.sum().backward()
                            ys.append(yv.detach()); gs.append(xs.grad)
                        out(name + '.' + dn + '.s', torch.cat(ys))
                        out(name + '.' + dn + '.s.dx', torch.cat(gs))
                """, TorchPeer.list(x), TorchPeer.list(w), TorchPeer.list(SPECIAL).replace("Infinity", "float('inf')").replace("NaN", "float('nan')"), cases);
        Map<String, double[]> torch = TorchPeer.run(dir, script);
        int checked = 0;
        for (DType dt : new DType[]{DType.F64, DType.F32}) {
            // float32: torch computes in float, this in double rounded once
            double rtol = dt == DType.F64 ? 1e-12 : 4e-6;
            for (Map.Entry<String, Object[]> e : ops.entrySet()) {
                // GELU: 1 + erf(x / sqrt 2) (torch's exact form) and 1 + tanh(...) (both forms' gradients) cancel for negative
                // x, to 0 in float below about -5.9; erfc(-x / sqrt 2) here keeps the exact form's tail, and a last-bit
                // difference of tanh is magnified: the differences are torch's rounding error, about |x| eps. ELU: torch's
                // float exp(x) - 1 cancels near 0 (1e-5 relative at -1e-3), the expm1 here does not
                boolean cancels = e.getKey().startsWith("gelu") || e.getKey().startsWith("elu");
                double atol = cancels ? (dt == DType.F64 ? 1e-14 : 5e-7) : (dt == DType.F64 ? 1e-300 : 2e-37);
                @SuppressWarnings("unchecked") UnaryOperator<Var> f = (UnaryOperator<Var>) e.getValue()[1];
                String key = e.getKey() + "." + dt;
                try (Scope s = Scope.open()) {
                    Var xv = Var.param(Tensor.of(x, x.length).to(dt));
                    Var y = f.apply(xv);
                    assertEquals(dt, y.value().dtype(), key);
                    y.mul(Var.of(Tensor.of(w, w.length).to(dt))).sum().backward();
                    near(key, torch.get(key), y.value().toDoubleArray(), rtol, atol);
                    near(key + ".dx", torch.get(key + ".dx"), xv.grad().toDoubleArray(), rtol, atol);
                    Var sv = Var.param(Tensor.of(SPECIAL, SPECIAL.length).to(dt));
                    Var ys = f.apply(sv);
                    ys.sum().backward();
                    near(key + ".s", torch.get(key + ".s"), ys.value().toDoubleArray(), rtol, atol);
                    near(key + ".s.dx", torch.get(key + ".s.dx"), sv.grad().toDoubleArray(), rtol, atol);
                    checked++;
                }
            }
        }
        assertEquals(2 * ops.size(), checked);
    }

    /** torch.maximum / minimum with ties, NaN in either input and both, and broadcasting: values and both gradients. */
    @Test
    void maximumAndMinimumAgreeWithTorch(@TempDir Path dir) throws Exception {
        SplittableRandom r = new SplittableRandom(7);
        int n = 12;
        double[] a = uniform(r, 3 * n, -3, 3), b = uniform(r, n, -3, 3), w = uniform(r, 3 * n, 0.5, 1.5);
        a[0] = b[0]; a[n + 1] = b[1]; a[2] = Double.NaN; b[3] = Double.NaN; a[4] = Double.NaN; b[4] = Double.NaN;
        a[5] = Double.POSITIVE_INFINITY; b[6] = Double.NEGATIVE_INFINITY; a[7] = -0.0; b[7] = 0.0;
        String script = String.format(Locale.ROOT, """
                import torch
                A, B, W = %s, %s, %s
                def out(key, t):
                    print(key, *[repr(float(v)) for v in t.detach().flatten().tolist()])
                for dt, dn in ((torch.float64, 'F64'), (torch.float32, 'F32')):
                    for name, f in (('max', torch.maximum), ('min', torch.minimum)):
                        a = torch.tensor(A, dtype=dt).reshape(3, %d).requires_grad_()
                        b = torch.tensor(B, dtype=dt).requires_grad_()
                        y = f(a, b)
                        (y * torch.tensor(W, dtype=dt).reshape(3, %d)).sum().backward()
                        key = name + '.' + dn
                        out(key, y); out(key + '.da', a.grad); out(key + '.db', b.grad)
                """, TorchPeer.list(a).replace("Infinity", "float('inf')").replace("NaN", "float('nan')"),
                TorchPeer.list(b).replace("Infinity", "float('inf')").replace("NaN", "float('nan')"), TorchPeer.list(w), n, n);
        Map<String, double[]> torch = TorchPeer.run(dir, script);
        for (DType dt : new DType[]{DType.F64, DType.F32})
            for (String name : new String[]{"max", "min"})
                try (Scope s = Scope.open()) {
                    Var av = Var.param(Tensor.of(a, 3, n).to(dt)), bv = Var.param(Tensor.of(b, n).to(dt));
                    Var y = name.equals("max") ? av.maximum(bv) : av.minimum(bv);
                    y.mul(Var.of(Tensor.of(w, 3, n).to(dt))).sum().backward();
                    String key = name + "." + dt;
                    near(key, torch.get(key), y.value().toDoubleArray(), 0, 0);
                    near(key + ".da", torch.get(key + ".da"), av.grad().toDoubleArray(), 1e-15, 0);
                    near(key + ".db", torch.get(key + ".db"), bv.grad().toDoubleArray(), 1e-6, 0);
                }
    }

    /**
     * Where this differs from torch on purpose: computing in double, softplus with a threshold above float's exp range
     * gives the finite value where torch's float32 exp overflows to inf (and its gradient to NaN); torch's float64 agrees
     * with this.
     */
    @Test
    void softplusPastFloatExpRangeIsFinite() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.of(new float[]{89, 100}, 2));
            Var y = NN.softplus(x, 1, 1000);
            assertArrayEquals(new float[]{89, 100}, y.value().toFloatArray());
            y.sum().backward();
            assertArrayEquals(new float[]{1, 1}, x.grad().toFloatArray());
        }
    }
}
