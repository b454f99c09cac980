package fst4j.autograd;

import fst4j.autograd.NN.InterpolateMode;
import fst4j.tensor.DType;
import fst4j.tensor.Memory;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static fst4j.autograd.OpsGradTest.rand;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Interpolate's cached indices and weights (the host axes every call shares, and an InterpolateCache's device weights)
 * give the uncached path's bits, value and gradient, across geometries that differ in one key only (dtype, align_corners,
 * mode, a scale against the size it floors to, the axis's sizes), with a small cache evicting between them; each axis is
 * built once over repeated calls; the cache's memory is bounded and freed by close, and a graph outlives both.
 */
class InterpolateCacheTest {
    /** h, w, outH, outW or (scale) NaN, NaN with scaleH, scaleW, mode, align, dtype. */
    record Case(int h, int w, int oh, int ow, double sh, double sw, InterpolateMode mode, boolean align, DType dt) {
        Var run(Var x, InterpolateCache c) {
            if (Double.isNaN(sh)) return c == null ? NN.interpolate(x, oh, ow, mode, align) : c.interpolate(x, oh, ow, mode, align);
            return c == null ? NN.interpolateScale(x, sh, sw, mode, align) : c.interpolateScale(x, sh, sw, mode, align);
        }
    }

    static List<Case> cases() {
        List<Case> cs = new ArrayList<>();
        for (DType dt : new DType[]{DType.F32, DType.F64}) {
            for (boolean align : new boolean[]{false, true}) {
                cs.add(new Case(5, 4, 8, 7, Double.NaN, Double.NaN, InterpolateMode.BILINEAR, align, dt));
                cs.add(new Case(5, 4, 0, 0, 1.7, 1.9, InterpolateMode.BILINEAR, align, dt));   // 8 x 7 again, by scale
                cs.add(new Case(5, 4, 3, 7, Double.NaN, Double.NaN, InterpolateMode.BILINEAR, align, dt));
                cs.add(new Case(7, 5, 8, 7, Double.NaN, Double.NaN, InterpolateMode.BILINEAR, align, dt));
                // bicubic: the same geometries under another mode (four weights per axis, the key's mode apart)
                cs.add(new Case(5, 4, 8, 7, Double.NaN, Double.NaN, InterpolateMode.BICUBIC, align, dt));
                cs.add(new Case(5, 4, 0, 0, 1.7, 1.9, InterpolateMode.BICUBIC, align, dt));
                cs.add(new Case(5, 4, 5, 4, Double.NaN, Double.NaN, InterpolateMode.BICUBIC, align, dt));   // equal sizes: still weighed
            }
            cs.add(new Case(5, 4, 8, 7, Double.NaN, Double.NaN, InterpolateMode.NEAREST_EXACT, false, dt));
            cs.add(new Case(5, 4, 0, 0, 1.7, 1.9, InterpolateMode.NEAREST_EXACT, false, dt));
            cs.add(new Case(5, 4, 3, 2, Double.NaN, Double.NaN, InterpolateMode.AREA, false, dt));
            cs.add(new Case(5, 4, 8, 7, Double.NaN, Double.NaN, InterpolateMode.NEAREST, false, dt));
            cs.add(new Case(5, 4, 0, 0, 1.7, 1.9, InterpolateMode.NEAREST, false, dt));
        }
        return cs;
    }

    static double[][] valueAndGrad(Case c, InterpolateCache cache) {
        try (Scope s = Scope.open()) {
            Tensor xt = rand(c.h() * 31L + c.w(), 2, 3, c.h(), c.w());
            Var x = Var.param(c.dt() == DType.F64 ? xt : xt.to(DType.F32));
            Var y = c.run(x, cache);
            y.backward(rand(7, y.shape()).to(c.dt()));
            assertEquals(c.dt(), y.value().dtype());
            return new double[][]{y.value().toDoubleArray(), x.grad().toDoubleArray()};
        }
    }

    @Test
    void cachedGivesTheUncachedBits() {
        List<Case> cs = cases();
        List<double[][]> cached = new ArrayList<>();
        try (InterpolateCache cache = new InterpolateCache(3)) {
            for (int round = 0; round < 2; round++)   // the second round reads what the first left (axes and weights)
                for (Case c : cs) {
                    double[][] r = valueAndGrad(c, cache);
                    if (round == 0) cached.add(r);
                    else { assertArrayEquals(cached.get(cs.indexOf(c))[0], r[0], c.toString()); assertArrayEquals(cached.get(cs.indexOf(c))[1], r[1], c.toString()); }
                }
        }
        for (int i = 0; i < cs.size(); i++) {
            Interpolate.clearAxes();   // the reference builds every axis afresh and makes its weights for the call
            double[][] want = valueAndGrad(cs.get(i), null);
            assertArrayEquals(want[0], cached.get(i)[0], cs.get(i) + ": values");
            assertArrayEquals(want[1], cached.get(i)[1], cs.get(i) + ": gradients");
        }
    }

    @Test
    void eachAxisIsBuiltOnce() {
        try (Scope s = Scope.open(); InterpolateCache cache = new InterpolateCache(4)) {
            Var x = Var.of(rand(3, 1, 2, 6, 5));
            Interpolate.clearAxes();
            int axes = Interpolate.axisBuilds();
            for (int i = 0; i < 3; i++) cache.interpolate(x, 9, 4, InterpolateMode.BILINEAR, false);
            assertEquals(2, cache.builds(), "the weights of two axes, once");
            assertEquals(2, Interpolate.axisBuilds() - axes, "two axes' indices, once");
            for (int i = 0; i < 3; i++) NN.interpolate(x, 9, 4, InterpolateMode.BILINEAR, false);
            assertEquals(2, Interpolate.axisBuilds() - axes, "the functional path reads the same host axes");
        }
    }

    @Test
    void memoryIsBoundedAndFreedByClose() {
        long before = Memory.bytesInUse();
        InterpolateCache cache = new InterpolateCache(2);
        try (Scope s = Scope.open()) {
            Var x = Var.of(rand(4, 1, 1, 5, 6));
            for (int o = 2; o < 8; o++) {
                cache.interpolate(x, o + 10, 6, InterpolateMode.BILINEAR, true);   // one resized axis per call (W stays)
                assertTrue(cache.size() <= 2, "bounded: " + cache.size());
            }
        }
        assertEquals(2, cache.size());
        assertEquals(2L * (16 + 17) * 8, Memory.bytesInUse() - before, "the two latest axes' weights, [out, 1] float64 twice each");
        cache.close();
        assertEquals(before, Memory.bytesInUse(), "close frees what the cache held; evictions freed the rest");
        try (InterpolateCache cubic = new InterpolateCache(1)) {
            try (Scope s = Scope.open()) {
                cubic.interpolate(Var.of(rand(4, 1, 1, 5, 6)), 9, 6, InterpolateMode.BICUBIC, false);
            }
            assertEquals(2, cubic.builds(), "bicubic weighs W (6 to 6: no shortcut, as torch's) and then H");
            assertEquals(4L * 9 * 8, Memory.bytesInUse() - before, "bicubic: the latest axis's four weights [9, 1] float64");
        }
        assertEquals(before, Memory.bytesInUse());
        try (Scope s = Scope.open()) {
            Var x = Var.of(rand(4, 1, 1, 5, 6));
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> cache.interpolate(x, 7, 6, InterpolateMode.BILINEAR, false));
            assertTrue(e.getMessage().startsWith("InterpolateCache is closed"), e.getMessage());
        }
    }

    @Test
    void closeFreesTheWeightsAForwardReadWhileItsScopeIsStillOpen() {
        // the forward's references to the cached weights are its own and closed with it: once no graph holds them, the
        // cache's close (or an eviction) frees the weights at once, not when the caller's scope ends (a long-lived scope
        // would otherwise keep every geometry's weights, and a caller without a scope would never free them)
        for (InterpolateMode m : new InterpolateMode[]{InterpolateMode.BILINEAR, InterpolateMode.BICUBIC}) {
            int taps = m == InterpolateMode.BILINEAR ? 2 : 4;
            try (Scope s = Scope.open()) {
                InterpolateCache cache = new InterpolateCache(2);
                Var x = Var.of(rand(3, 2, 3, 5, 4));   // no graph: nothing but the cache holds the weights after forward
                cache.interpolate(x, 8, 7, m, false);
                long held = Memory.bytesInUse();
                cache.close();
                assertEquals((long) taps * (8 + 7) * 8, held - Memory.bytesInUse(), m + ": close frees both axes' weights, [out, 1] float64 per tap");
            }
        }
    }

    @Test
    void aGraphOutlivesTheCache() {
        // the graph keeps its own references to the index tables (every mode) and weights (bilinear, bicubic)
        for (InterpolateMode m : new InterpolateMode[]{InterpolateMode.BILINEAR, InterpolateMode.NEAREST, InterpolateMode.NEAREST_EXACT, InterpolateMode.BICUBIC}) {
            Case c = new Case(4, 6, 7, 3, Double.NaN, Double.NaN, m, false, DType.F32);
            double[][] want = valueAndGrad(c, null);
            long before = Memory.bytesInUse();
            try (Scope s = Scope.open()) {
                InterpolateCache cache = new InterpolateCache(1);
                Var x = Var.param(rand(4 * 31L + 6, 2, 3, 4, 6).to(DType.F32));
                Var y = c.run(x, cache);
                cache.close();   // before backward: the graph's own references keep the tables and weights
                y.backward(rand(7, y.shape()).to(DType.F32));
                assertArrayEquals(want[0], y.value().toDoubleArray(), m.toString());
                assertArrayEquals(want[1], x.grad().toDoubleArray(), m.toString());
            }
            assertEquals(before, Memory.bytesInUse(), m + ": freed with the step's scope");
        }
    }
}
