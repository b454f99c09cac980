package fst4j.nn;

import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** ReSprop's output gradient against its definition (written out here in float32), and a convolution that uses it. */
class ReSpropTest {

    /** dY' of g from the previous gradient's image `pick` and threshold t, as the class comment defines it. */
    private static float[] expected(float[] g, float[] prev, int pick, int per, double t) {
        float[] out = new float[g.length];
        for (int i = 0; i < g.length; i++) {
            float p = prev[pick * per + i % per], d = g[i] - p;
            out[i] = !(Math.abs(d) <= t) ? p + d : p;
        }
        return out;
    }

    private static void assertSame(float[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what);
        for (int i = 0; i < want.length; i++) {
            if (Float.isNaN(want[i])) assertTrue(Float.isNaN(got[i]), what + ": element " + i + " should be NaN");
            else assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[i]), what + ": element " + i + " " + got[i] + " vs " + want[i]);
        }
    }

    @Test
    void theGradientIsThePreviousSamplePlusTheDifferencesAboveTheThreshold() {
        try (Scope s = Scope.open()) {
            Rng rng = new Rng(3);
            int n = 5, per = 3 * 4 * 3;
            ReSprop r = new ReSprop(11);
            Tensor g1 = rng.normal(0, 1, n, 3, 4, 3);
            int pick1 = r.pickedImage(n);
            float[] v1 = g1.toFloatArray();
            assertSame(v1, r.transform(g1).toFloatArray(), "the first step passes dY through");
            assertEquals(ReSprop.FIRST_THRESHOLD, r.threshold(), "no threshold update without a sample");

            // second step: differences above 1e-7 are kept; a NaN is kept; an equal value is not (p itself)
            float[] v2 = rng.normal(0, 1, n, 3, 4, 3).toFloatArray();
            v2[7] = Float.NaN;
            v2[per + 2] = v1[pick1 * per + 2];   // no difference
            v2[2 * per + 5] = v1[pick1 * per + 5] + 1e-8f;   // below the threshold, or the same float
            Tensor g2 = Tensor.of(v2, n, 3, 4, 3);
            int pick2 = r.pickedImage(n);
            float[] out2 = r.transform(g2).toFloatArray();
            assertSame(expected(v2, v1, pick1, per, ReSprop.FIRST_THRESHOLD), out2, "step 2");
            assertEquals(v1[pick1 * per + 2], out2[per + 2], "no difference: the sample");
            assertTrue(r.lastPercent() > ReSprop.TARGET_PERCENT);
            assertEquals(2 * ReSprop.FIRST_THRESHOLD, r.threshold(), "more than the target kept: the threshold doubles");

            // a large threshold keeps nothing: every image's gradient is the sample of the previous step
            r.importState(withThreshold(r.exportState(), 1e9));
            float[] v3 = rng.normal(0, 1, n, 3, 4, 3).toFloatArray();
            float[] out3 = r.transform(Tensor.of(v3, n, 3, 4, 3)).toFloatArray();
            for (int i = 0; i < out3.length; i++) assertEquals(v2[pick2 * per + i % per], out3[i], 0f, "element " + i);
            assertEquals(0.0, r.lastPercent());
            assertEquals(5e8, r.threshold(), "fewer than the target kept: the threshold halves");
            assertEquals(3, r.steps());
        }
    }

    private static long[] withThreshold(long[] state, double t) {
        long[] w = state.clone();
        w[1] = Double.doubleToRawLongBits(t);
        return w;
    }

    /** The authors' warm-up, their 90 epochs mapped onto a run of 900 steps: 10 steps an epoch. */
    @Test
    void theWarmUpKeepsEverythingFirstThenStepsDownToTheTarget() {
        try (Scope s = Scope.open()) {
            ReSprop r = new ReSprop(1);
            assertEquals(ReSprop.TARGET_PERCENT, r.targetPercent(), "no warm-up unless a run is given");
            r.warmUpOver(900);
            double[] want = new double[100];
            for (int step = 0; step < 100; step++) want[step] = step < 20 ? 100 : Math.max(15, 100 - 10 * (step / 10));
            Rng rng = new Rng(5);
            for (int step = 0; step < 100; step++) {
                assertEquals(want[step], r.targetPercent(), "step " + step);
                try (Tensor g = rng.normal(0, 1, 2, 2, 2, 2); Tensor o = r.transform(g)) {}
                if (step > 0 && step < 20) assertTrue(r.threshold() <= ReSprop.FIRST_THRESHOLD, "target 100 %: the threshold only falls");
            }
            assertEquals(15, want[90]);
            r.importState(withThreshold(r.exportState(), ReSprop.MIN_THRESHOLD));
            for (int i = 0; i < 3; i++) try (Tensor g = Tensor.zeros(2, 2, 2, 2); Tensor o = r.transform(g)) {}
            assertEquals(ReSprop.MIN_THRESHOLD, r.threshold(), "never below its floor, so that doubling can bring it back");
            // every difference NaN: all kept, step after step; the threshold stops at its ceiling instead of reaching +Inf
            r.importState(withThreshold(r.exportState(), ReSprop.MAX_THRESHOLD / 4));
            for (int i = 0; i < 4; i++) {
                float[] nan = new float[16];
                java.util.Arrays.fill(nan, Float.NaN);
                try (Tensor g = Tensor.of(nan, 2, 2, 2, 2); Tensor o = r.transform(g)) {}
            }
            assertEquals(ReSprop.MAX_THRESHOLD, r.threshold(), "never above its ceiling");
            r.importState(r.exportState());   // and a state at the ceiling still loads
        }
    }

    @Test
    void layersOfOneGeometryDrawTheirSamplesApartOnceNamed() {
        ReSprop a = new ReSprop(7), b = new ReSprop(7);
        a.saltWith("3.conv1");
        b.saltWith("3.conv2");
        int same = 0;
        for (int step = 0; step < 64; step++) {
            try (Scope s = Scope.open()) {
                if (a.pickedImage(128) == b.pickedImage(128)) same++;
                Tensor g = Tensor.zeros(2, 1, 1, 1);
                a.transform(g);
                b.transform(g);
            }
        }
        assertTrue(same < 8, "independent draws from 128 images agree rarely, got " + same + " of 64");
        ReSprop c = new ReSprop(7);
        c.saltWith("3.conv1");
        c.saltWith("3.conv1");
        ReSprop d = new ReSprop(7);
        d.saltWith("3.conv1");
        assertEquals(d.pickedImage(1000), c.pickedImage(1000), "salting again with the same name changes nothing");
    }

    @Test
    void aCheckpointsSampleOfAnotherShapeIsRefused() {
        try (Scope s = Scope.open()) {
            ReSprop a = new ReSprop(1), b = new ReSprop(1);
            a.transform(new Rng(1).normal(0, 1, 2, 3, 2, 2));
            b.importState(a.exportState());
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> b.transform(Tensor.zeros(2, 4, 2, 2)));
            assertTrue(e.getMessage().contains("holds 12 values per image, this layer's output gradient 16"), e.getMessage());
        }
    }

    /** The shim's loop (fst_resprop, from 4096 elements) against the Java loop, step by step, NaN and -0.0 included. */
    @Test
    void theShimsLoopIsTheJavaLoopBitForBit() {
        org.junit.jupiter.api.Assumptions.assumeTrue(fst4j.shim.Native.isLoaded(), "needs the C shim");
        try (Scope s = Scope.open()) {
            ReSprop java = new ReSprop(4), shim = new ReSprop(4);
            Rng rng = new Rng(21);
            for (int step = 0; step < 6; step++) {
                float[] v = rng.normal(0, 1e-3, 16, 8, 7, 7).toFloatArray();
                v[step] = Float.NaN;
                v[v.length - 1 - step] = -0.0f;
                Tensor g = Tensor.of(v, 16, 8, 7, 7);
                assertTrue(g.numel() >= ReSprop.NATIVE_MIN);
                assertSame(java.transform(g, false).toFloatArray(), shim.transform(g, true).toFloatArray(), "step " + step);
                assertArrayEquals(java.exportState(), shim.exportState(), "state after step " + step);
                assertEquals(java.lastPercent(), shim.lastPercent(), "percentage kept, step " + step);
            }
            assertTrue(shim.threshold() != ReSprop.FIRST_THRESHOLD, "the threshold moved");
            // thresholds near the differences' median (both branches taken), then the exact boundary below: (float) 0.1
            // differs from a zero sample by more than the double 0.1 (so it is kept), which a float32 comparison would miss
            for (int step = 0; step < 2; step++) {
                long[] st = java.exportState();
                st[1] = Double.doubleToRawLongBits(1e-3);
                java.importState(st);
                shim.importState(st.clone());
                float[] v = rng.normal(0, 1e-3, 16, 8, 7, 7).toFloatArray();
                Tensor g = Tensor.of(v, 16, 8, 7, 7);
                float[] a = java.transform(g, false).toFloatArray(), b = shim.transform(g, true).toFloatArray();
                assertSame(a, b, "threshold step " + step);
                assertEquals(java.lastPercent(), shim.lastPercent(), "threshold step " + step);
                assertTrue(java.lastPercent() > 5 && java.lastPercent() < 95, "both branches: " + java.lastPercent());
            }
            try (Tensor g = Tensor.of(new float[]{0.1f, 0.1f, -0.1f, 0.05f}, 1, 4); Tensor p = Tensor.zeros(4); Tensor o = Tensor.zeros(1, 4)) {
                assertEquals(3, fst4j.shim.Native.resprop(g.data(), p.data(), o.data(), 1, 4, 0.1, 1), "(float) 0.1 > 0.1 as doubles");
            }
            // the parallel split (from 65536 elements): the same bits and count on 1 and 16 threads
            try (Tensor g = rng.normal(0, 1, 64, 4096); Tensor p = rng.normal(0, 1, 4096); Tensor o1 = Tensor.zeros(64, 4096);
                 Tensor o16 = Tensor.zeros(64, 4096)) {
                long k1 = fst4j.shim.Native.resprop(g.data(), p.data(), o1.data(), 64, 4096, 0.8, 1);
                long k16 = fst4j.shim.Native.resprop(g.data(), p.data(), o16.data(), 64, 4096, 0.8, 16);
                assertEquals(k1, k16);
                assertTrue(k1 > 0 && k1 < 64 * 4096);
                assertSame(o1.toFloatArray(), o16.toFloatArray(), "1 against 16 threads");
            }
            try (Tensor g = Tensor.zeros(4, 8); Tensor p = Tensor.zeros(8); Tensor o = Tensor.zeros(4, 8)) {
                RuntimeException e = assertThrows(RuntimeException.class, () -> fst4j.shim.Native.resprop(g.data(), p.data(), o.data(), 4, 8, -1, 1));
                assertTrue(e.getMessage().contains("fst_resprop"), e.getMessage());
                assertThrows(RuntimeException.class, () -> fst4j.shim.Native.resprop(g.data(), p.data(), g.data(), 4, 8, 1, 1));   // out over g
                assertThrows(IllegalArgumentException.class, () -> fst4j.shim.Native.resprop(g.data(), p.data(), o.data(), 5, 8, 1, 1));
            }
        }
    }

    @Test
    void aStateRoundTripsAndBadStatesAreRefused() {
        try (Scope s = Scope.open()) {
            ReSprop a = new ReSprop(2), b = new ReSprop(2);
            Rng rng = new Rng(4);
            for (int i = 0; i < 3; i++) a.transform(rng.normal(0, 1, 4, 2, 3, 3));
            b.importState(a.exportState());
            Tensor g = rng.normal(0, 1, 4, 2, 3, 3);
            assertSame(a.transform(g).toFloatArray(), b.transform(g).toFloatArray(), "after import");
            assertArrayEquals(a.exportState(), b.exportState());
            assertThrows(IllegalArgumentException.class, () -> b.importState(new long[]{1, 2}));
            assertThrows(IllegalArgumentException.class, () -> b.importState(new long[]{1, Double.doubleToRawLongBits(-1), -1}));
            assertThrows(IllegalArgumentException.class, () -> b.importState(new long[]{1, Double.doubleToRawLongBits(1), 5, 0}));
            assertThrows(IllegalArgumentException.class, () -> a.transform(Tensor.zeros(3)));
        }
    }

    /**
     * A convolution of the preset: its input and weight gradients are a dense convolution's for dY' (the first step:
     * for dY itself), with the same weights and input; its bias gradient is dY's own (as in the authors' code).
     */
    @Test
    void aConvolutionOfThePresetBackpropagatesTheReusedGradient() {
        try (Scope s = Scope.open()) {
            Rng rng = new Rng(9);
            Conv2d re = new Conv2d(3, 8, 3, 1, 1, true, Method.RESPROP.config(), new Rng(1));
            Conv2d dense = new Conv2d(3, 8, 3, 1, 1, true, Method.DENSE.config(), new Rng(1));
            assertNotNull(re.resprop());
            assertNull(dense.resprop());
            Tensor x = rng.normal(0, 1, 4, 3, 6, 6);
            float[] prev = null;
            int pick = -1;
            for (int step = 0; step < 3; step++) {
                Tensor g = rng.normal(0, 1, 4, 8, 6, 6);
                float[] gv = g.toFloatArray();
                double t = re.resprop().threshold();
                float[] want = prev == null ? gv : expected(gv, prev, pick, 8 * 36, t);
                int nextPick = re.resprop().pickedImage(4);
                Var xr = Var.param(x), xd = Var.param(x);
                Var yr = re.forward(xr), yd = dense.forward(xd);
                assertArrayEquals(yd.value().toFloatArray(), yr.value().toFloatArray(), 0f, "forward, step " + step);
                yr.backward(g);
                try (Tensor gd = Tensor.of(want, 4, 8, 6, 6)) { yd.backward(gd); }
                assertArrayEquals(dense.weight().grad().toFloatArray(), re.weight().grad().toFloatArray(), 1e-6f, "dW, step " + step);
                assertArrayEquals(xd.grad().toFloatArray(), xr.grad().toFloatArray(), 1e-6f, "dX, step " + step);
                float[] db = new float[8];
                for (int i = 0; i < gv.length; i++) db[(i / 36) % 8] += gv[i];
                assertArrayEquals(db, re.parameters().get(1).grad().toFloatArray(), 1e-4f, "the bias takes dY itself, step " + step);
                for (Var v : re.parameters()) v.zeroGrad();
                for (Var v : dense.parameters()) v.zeroGrad();
                prev = gv;
                pick = nextPick;
            }
            assertEquals(3, re.resprop().steps());
            re.setSparsity(Method.RESPROP.config());
            assertEquals(3, re.resprop().steps(), "the same preset keeps its state");
            re.setSparsity(Method.DENSE.config());
            assertNull(re.resprop());
        }
    }

    /** A linear layer of the preset: a row of dY is one sample's gradient; the same contract as the convolution's. */
    @Test
    void aLinearLayerOfThePresetBackpropagatesTheReusedGradient() {
        try (Scope s = Scope.open()) {
            Rng rng = new Rng(10);
            Linear re = new Linear(6, 5, true, Method.RESPROP.config(), new Rng(2));
            Linear dense = new Linear(6, 5, true, Method.DENSE.config(), new Rng(2));
            Tensor x = rng.normal(0, 1, 4, 6);
            float[] prev = null;
            int pick = -1;
            for (int step = 0; step < 3; step++) {
                Tensor g = rng.normal(0, 1, 4, 5);
                float[] gv = g.toFloatArray();
                float[] want = prev == null ? gv : expected(gv, prev, pick, 5, re.resprop().threshold());
                int nextPick = re.resprop().pickedImage(4);
                Var xr = Var.param(x), xd = Var.param(x);
                Var yr = re.forward(xr), yd = dense.forward(xd);
                assertArrayEquals(yd.value().toFloatArray(), yr.value().toFloatArray(), 0f, "forward, step " + step);
                yr.backward(g);
                try (Tensor gd = Tensor.of(want, 4, 5)) { yd.backward(gd); }
                assertArrayEquals(dense.weight().grad().toFloatArray(), re.weight().grad().toFloatArray(), 1e-6f, "dW, step " + step);
                assertArrayEquals(xd.grad().toFloatArray(), xr.grad().toFloatArray(), 1e-6f, "dX, step " + step);
                float[] db = new float[5];
                for (int i = 0; i < gv.length; i++) db[i % 5] += gv[i];
                assertArrayEquals(db, re.parameters().get(1).grad().toFloatArray(), 1e-5f, "the bias takes dY itself, step " + step);
                for (Var v : re.parameters()) v.zeroGrad();
                for (Var v : dense.parameters()) v.zeroGrad();
                prev = gv;
                pick = nextPick;
            }
        }
    }

    /**
     * restorer() puts back what importState resets besides the words: the last step's percentage, and that the sample
     * is this layer's own (a step of another image shape then passes dY unchanged; one loaded from a checkpoint refuses
     * it as another model's).
     */
    @Test
    void theRestorerPutsBackWhatImportingResets() {
        try (Scope s = Scope.open()) {
            Rng rng = new Rng(5);
            ReSprop r = new ReSprop(3);
            r.transform(rng.normal(0, 1, 4, 2, 3, 3));
            r.transform(rng.normal(0, 1, 4, 2, 3, 3));
            double percent = r.lastPercent();
            assertFalse(Double.isNaN(percent));
            long[] words = r.exportState();
            Runnable back = r.restorer();
            ReSprop other = new ReSprop(3);
            other.transform(rng.normal(0, 1, 4, 2, 3, 3));
            r.importState(other.exportState());
            assertTrue(Double.isNaN(r.lastPercent()));
            back.run();
            assertArrayEquals(words, r.exportState());
            assertEquals(percent, r.lastPercent());
            Tensor g = rng.normal(0, 1, 4, 5);
            assertArrayEquals(g.toFloatArray(), r.transform(g).toFloatArray(), "another shape: dY unchanged, not refused");
            r.importState(words);
            assertThrows(IllegalStateException.class, () -> r.transform(rng.normal(0, 1, 4, 5)), "a loaded sample of another shape is refused");
        }
    }
}
