package fst4j.tensor;

import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.*;

class RngTest {
    @Test
    void sameSeedSameValuesAndStateRestores() {
        try (Scope s = Scope.open()) {
            Rng a = new Rng(123), b = new Rng(123), c = new Rng(124);
            assertArrayEquals(a.normal(0, 1, 50).toFloatArray(), b.normal(0, 1, 50).toFloatArray());
            assertFalse(Arrays.equals(new Rng(123).uniform(0, 1, 20).toFloatArray(), c.uniform(0, 1, 20).toFloatArray()));
            long[] saved = a.state();
            float[] next = a.uniform(-1, 1, 30).toFloatArray();
            int[] perm = a.permutation(10);
            Rng r = Rng.fromState(saved);
            assertArrayEquals(next, r.uniform(-1, 1, 30).toFloatArray());
            assertArrayEquals(perm, r.permutation(10));
            b.setState(saved);
            assertEquals(Rng.fromState(saved).nextLong(), b.nextLong());
            assertThrows(IllegalArgumentException.class, () -> b.setState(new long[3]));
        }
    }

    private static double[] meanStd(Tensor t) {
        double[] v = t.toDoubleArray();
        double m = 0, q = 0;
        for (double x : v) m += x;
        m /= v.length;
        for (double x : v) q += (x - m) * (x - m);
        return new double[]{m, Math.sqrt(q / v.length)};
    }

    @Test
    void distributionsHaveTheRightMoments() {
        long before = Memory.bytesInUse();
        try (Scope s = Scope.open()) {
            Rng r = new Rng(7);
            int n = 40000;
            double[] u = meanStd(r.uniform(-2, 4, n));
            assertEquals(1.0, u[0], 0.05);
            assertEquals(6 / Math.sqrt(12), u[1], 0.03);
            double[] g = meanStd(r.normal(DType.F64, 3, 2, n));
            assertEquals(3.0, g[0], 0.05);
            assertEquals(2.0, g[1], 0.03);
            Tensor bern = r.bernoulli(0.3, n);
            assertEquals(0.3, bern.mean().item(), 0.01);
            for (float v : bern.toFloatArray()) assertTrue(v == 0 || v == 1);

            double[] k = meanStd(r.kaimingNormal(64, 32, 3, 3));
            assertEquals(0, k[0], 0.005);
            assertEquals(Math.sqrt(2.0 / (32 * 9)), k[1], 0.003);
            Tensor ku = r.kaimingUniform(128, 100);
            double bound = Math.sqrt(6.0 / 100);
            assertEquals(bound / Math.sqrt(3), meanStd(ku)[1], 0.005);
            for (float v : ku.toFloatArray()) assertTrue(Math.abs(v) <= bound);
            Tensor xu = r.xavierUniform(60, 40);
            double xb = Math.sqrt(6.0 / 100);
            for (float v : xu.toFloatArray()) assertTrue(Math.abs(v) <= xb);
            assertEquals(xb / Math.sqrt(3), meanStd(xu)[1], 0.01);

            int[] p = r.permutation(1000);
            int[] sorted = p.clone();
            Arrays.sort(sorted);
            for (int i = 0; i < 1000; i++) assertEquals(i, sorted[i]);
            assertFalse(Arrays.equals(sorted, p));
            int[] counts = new int[5];
            for (int i = 0; i < 50000; i++) counts[r.nextInt(5)]++;
            for (int cnt : counts) assertEquals(10000, cnt, 400);
        }
        assertEquals(before, Memory.bytesInUse());
    }
}
