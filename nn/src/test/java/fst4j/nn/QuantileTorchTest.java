package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.tensor.DType;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;

import static fst4j.nn.TorchActivationsTest.near;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Var.quantile / nanquantile / nanmedian against torch 1.13 in float64 and float32: values and the input gradient of
 * sum(y * w), for every interpolation, q a scalar and an array, along an axis and over all elements, keepdim both ways,
 * on lines with ties, NaN (quantile's NaN, nanquantile's skipping), all-NaN lines and lines of one element. The
 * gradients must match torch's positions exactly (a tie sends it to the stable sort's element, as torch's sort of
 * lines up to 16 elements, its insertion sort; on a longer line of ties torch's introsort may pick another of the tied
 * elements, so the one long line here, over all 60 elements, has distinct values). float64 within 1e-12; float32 within an ulp or two (torch's CPU lerp fuses its multiply-add, ours
 * rounds twice). Skipped, with the reason, where no Python imports torch (TorchPeer).
 */
class QuantileTorchTest {
    private static final String[] MODES = {"linear", "lower", "higher", "midpoint", "nearest"};

    /** One call: torch's expression of x, ours, and the input. */
    record Case(String name, String torch, java.util.function.Function<Var, Var> ours, double[] x, int[] xs) {}

    private static final List<Case> CASES = new ArrayList<>();

    static {
        SplittableRandom r = new SplittableRandom(35);
        double nan = Double.NaN;
        double[] ties = new double[60];   // [3, 4, 5]: values from a small set, so ties in most lines
        for (int i = 0; i < ties.length; i++) ties[i] = (r.nextInt(5) - 2) * 0.75;
        double[] spread = new double[60];
        for (int i = 0; i < spread.length; i++) spread[i] = r.nextDouble(-3, 3);
        double[] withNan = spread.clone();   // [4, 15]: line 0 one NaN, line 1 three, line 2 all NaN, line 3 none
        withNan[3] = nan;
        withNan[15] = nan; withNan[20] = nan; withNan[29] = nan;
        for (int i = 30; i < 45; i++) withNan[i] = nan;
        // nanmedian of an all-NaN line: torch's index (and gradient) is wherever its nth_element left a NaN (0 of 2 or 3,
        // 9 of 15, 28 of 40); ours is the first NaN, as median's (QuantileTest), so torch is asked only of lines with numbers
        double[] someNan = withNan.clone();
        for (int i = 30; i < 45; i += 4) someNan[i] = spread[i];
        double[] one = {2.5, -1, nan, 0.25};   // [4, 1]: lines of one element
        // ranks that land on .5 for nearest's half-to-even: n - 1 = 4, q = 0.125, 0.375, 0.625, 0.875
        double[] qs = {0, 0.125, 0.3, 0.375, 0.5, 0.625, 0.875, 1};
        String qsPy = Arrays.toString(qs);
        for (String m : MODES) {
            String mq = ", interpolation='" + m + "'";
            add("q_ties_ax1_" + m, "torch.quantile(x, 0.3, dim=1" + mq + ")", x -> x.quantile(0.3, 1, false, m), ties, 3, 4, 5);
            add("q_ties_ax-1_keep_" + m, "torch.quantile(x, torch.tensor(" + qsPy + ", dtype=x.dtype), dim=-1, keepdim=True" + mq + ")",
                    x -> x.quantile(qs, -1, true, m), ties, 3, 4, 5);
            add("q_ties_ax0_arr_" + m, "torch.quantile(x, torch.tensor(" + qsPy + ", dtype=x.dtype), dim=0" + mq + ")",
                    x -> x.quantile(qs, 0, false, m), ties, 3, 4, 5);
            add("q_all_" + m, "torch.quantile(x, 0.71" + mq + ")", x -> x.quantile(0.71, null, false, m), spread, 3, 4, 5);
            add("q_all_keep_arr_" + m, "torch.quantile(x, torch.tensor(" + qsPy + ", dtype=x.dtype), keepdim=True" + mq + ")",
                    x -> x.quantile(qs, null, true, m), spread, 3, 4, 5);   // one line of 60: torch's sort is not stable there
            add("q_nan_" + m, "torch.quantile(x, torch.tensor(" + qsPy + ", dtype=x.dtype), dim=1" + mq + ")",
                    x -> x.quantile(qs, 1, false, m), withNan, 4, 15);
            add("nq_nan_" + m, "torch.nanquantile(x, torch.tensor(" + qsPy + ", dtype=x.dtype), dim=1" + mq + ")",
                    x -> x.nanquantile(qs, 1, false, m), withNan, 4, 15);
            add("nq_nan_scalar_keep_" + m, "torch.nanquantile(x, 0.4, dim=-1, keepdim=True" + mq + ")",
                    x -> x.nanquantile(0.4, -1, true, m), withNan, 4, 15);
            add("nq_all_" + m, "torch.nanquantile(x, 0.2" + mq + ")", x -> x.nanquantile(0.2, null, false, m), withNan, 4, 15);
            add("nq_ties_" + m, "torch.nanquantile(x, torch.tensor([0.1, 0.9], dtype=x.dtype), dim=2" + mq + ")",
                    x -> x.nanquantile(new double[]{0.1, 0.9}, 2, false, m), ties, 3, 4, 5);
            add("q_one_" + m, "torch.quantile(x, torch.tensor([0.2, 1.0], dtype=x.dtype), dim=1" + mq + ")",
                    x -> x.quantile(new double[]{0.2, 1}, 1, false, m), one, 4, 1);
            add("nq_one_" + m, "torch.nanquantile(x, 0.6, dim=1, keepdim=True" + mq + ")", x -> x.nanquantile(0.6, 1, true, m), one, 4, 1);
        }
        add("nanmedian_nan", "torch.nanmedian(x, 1)[0]", x -> x.nanmedian(1, false)[0], someNan, 4, 15);
        add("nanmedian_ties_keep", "torch.nanmedian(x, 0, keepdim=True)[0]", x -> x.nanmedian(0, true)[0], ties, 3, 4, 5);
        add("nanmedian_one", "torch.nanmedian(x, 1)[0]", x -> x.nanmedian(1, false)[0], one, 4, 1);
        add("nanmedian_all", "torch.nanmedian(x)", Var::nanmedian, withNan, 4, 15);
    }

    static void add(String name, String torch, java.util.function.Function<Var, Var> ours, double[] x, int... shape) {
        CASES.add(new Case(name, torch, ours, x, shape));
    }

    @Test
    void valuesAndGradientsAgreeWithTorch(@TempDir Path dir) throws Exception {
        StringBuilder cases = new StringBuilder();
        for (Case c : CASES)
            cases.append(String.format(Locale.ROOT, "    ('%s', lambda x: %s, %s, %s),%n", c.name, c.torch, TorchVarOpsTest.py(c.x),
                    Arrays.toString(c.xs).replace('[', '(').replace("]", ",)")));
        String script = String.format(Locale.ROOT, """
                import torch
                def out(key, t):
                    print(key, *[repr(float(v)) for v in t.detach().flatten().tolist()])
                cases = [
                %s]
                for dt, dn in ((torch.float64, 'F64'), (torch.float32, 'F32')):
                    for name, f, X, XS in cases:
                        x = torch.tensor(X, dtype=torch.float64).reshape(XS).to(dt).requires_grad_()
                        y = f(x)
                        w = (1 + (torch.arange(y.numel()) %% 7) * 0.25).reshape(y.shape).to(dt)
                        (y * w).sum().backward()
                        key = name + '.' + dn
                        out(key, y)
                        print(key + '.shape', *y.shape)
                        out(key + '.dx', x.grad if x.grad is not None else torch.zeros_like(x))
                """, cases);
        Map<String, double[]> torch = TorchPeer.run(dir, script);
        int checked = 0;
        for (DType dt : new DType[]{DType.F64, DType.F32}) {
            double rtol = dt == DType.F64 ? 1e-12 : 3e-7, atol = dt == DType.F64 ? 1e-13 : 1e-6;
            for (Case c : CASES) {
                String key = c.name + "." + dt;
                try (Scope s = Scope.open()) {
                    Var x = Var.param(Tensor.of(c.x, c.xs).to(dt));
                    Var y = c.ours.apply(x);
                    assertEquals(dt, y.value().dtype(), key);
                    double[] shape = torch.get(key + ".shape");
                    assertNotNull(shape, "torch printed no " + key);
                    assertArrayEquals(Arrays.stream(shape).mapToInt(d -> (int) d).toArray(), y.shape(), key + ": shape");
                    y.mul(Var.of(TorchVarOpsTest.weights(y))).sum().backward();   // the torch side's w, as there
                    near(key, torch.get(key), y.value().toDoubleArray(), rtol, atol);
                    near(key + ".dx", torch.get(key + ".dx"), x.grad() == null ? new double[c.x.length] : x.grad().toDoubleArray(), rtol, atol);
                    checked++;
                }
            }
        }
        assertEquals(2 * CASES.size(), checked);
    }

    /** torch's nanmedian indices (ties: the stable sort's, as torch's on these short lines) and the all-NaN line's first NaN. */
    @Test
    void nanmedianIndicesAgreeWithTorch(@TempDir Path dir) throws Exception {
        double nan = Double.NaN;
        double[] x = {nan, 1, 1, nan, 2, 0, nan, nan, nan, nan, 3, 3, -0.0, 0.0, 3, 1, nan, 1, 1, 1};
        String script = String.format(Locale.ROOT, """
                import torch
                for dt, dn in ((torch.float64, 'F64'), (torch.float32, 'F32')):
                    x = torch.tensor(%s, dtype=torch.float64).reshape(4, 5).to(dt)
                    v, i = torch.nanmedian(x, 1)
                    print('v.' + dn, *[repr(float(a)) for a in v.tolist()])
                    print('i.' + dn, *[repr(float(a)) for a in i.tolist()])
                """, TorchVarOpsTest.py(x));
        Map<String, double[]> torch = TorchPeer.run(dir, script);
        for (DType dt : new DType[]{DType.F64, DType.F32})
            try (Scope s = Scope.open()) {
                Var[] m = Var.of(Tensor.of(x, 4, 5).to(dt)).nanmedian(1, false);
                near("v." + dt, torch.get("v." + dt), m[0].value().toDoubleArray(), 0, 0);
                near("i." + dt, torch.get("i." + dt), m[1].value().toDoubleArray(), 0, 0);
            }
    }
}
