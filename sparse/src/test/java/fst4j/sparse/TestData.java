package fst4j.sparse;

import java.util.Random;

/** Shared helpers for the sparse tests: random values with ties and zeros, and group counting. */
final class TestData {
    private TestData() {}

    /** Random values: half the time Gaussian, half small integers (ties and zeros). */
    static float[] values(int n, long seed) {
        Random r = new Random(seed);
        boolean ties = r.nextBoolean();
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = ties ? r.nextInt(7) - 3 : (float) r.nextGaussian();
        return v;
    }

    /**
     * A 2:4 kept set along the last axis chosen from the positions alone (row and group pick one of the 6 pairs), the
     * same for any values: what a mask fixed once looks like.
     */
    static boolean[] positionalKeep(int[] shape) {
        int n = numel(shape), len = shape[shape.length - 1];
        boolean[] keep = new boolean[n];
        for (int i = 0; i < n; i++) {
            int c = i % len, row = i / len, pair = (row * 5 + (c / 4) * 3) % 6;
            int lo = pair < 3 ? 0 : pair < 5 ? 1 : 2, hi = pair < 3 ? pair + 1 : pair < 5 ? pair - 1 : 3;   // (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
            keep[i] = c % 4 == lo || c % 4 == hi;
        }
        return keep;
    }

    /** {@link #positionalKeep} as a rule that says it reads no values, failing if it is given any. */
    static Sparsifier.Custom positional(java.util.concurrent.atomic.AtomicInteger calls) {
        return new Sparsifier.Custom() {
            @Override public boolean[] keep(double[] values, int[] shape) {
                if (values != null) throw new AssertionError("a rule that reads no values was given " + values.length);
                calls.incrementAndGet();
                return positionalKeep(shape);
            }
            @Override public boolean readsValues() { return false; }
            @Override public int axis() { return -1; }
            @Override public boolean accelerable() { return true; }
            @Override public String toString() { return "positional 2:4"; }
        };
    }

    static int numel(int[] shape) {
        int n = 1;
        for (int s : shape) n *= s;
        return n;
    }

    /** Flat row-major index of (o, i, r) around axis a. */
    static int[] lines(int[] shape, int axis) {
        int a = axis < 0 ? axis + shape.length : axis;
        int outer = 1, inner = 1;
        for (int d = 0; d < a; d++) outer *= shape[d];
        for (int d = a + 1; d < shape.length; d++) inner *= shape[d];
        return new int[]{outer, shape[a], inner};
    }

    /** The largest count of non-zeros in any group of 4 along axis. */
    static int maxNonZerosPerGroup(float[] v, int[] shape, int axis) {
        int[] l = lines(shape, axis);
        int worst = 0;
        for (int o = 0; o < l[0]; o++)
            for (int r = 0; r < l[2]; r++)
                for (int g = 0; g < l[1]; g += 4) {
                    int nz = 0;
                    for (int i = g; i < Math.min(g + 4, l[1]); i++) if (v[(o * l[1] + i) * l[2] + r] != 0) nz++;
                    worst = Math.max(worst, nz);
                }
        return worst;
    }

    /** ||a - b||_F / ||b||_F (0 when both are 0). */
    /** Frobenius norm of a - b. */
    static double diffNorm(float[] a, float[] b) {
        double d = 0;
        for (int i = 0; i < a.length; i++) d += (a[i] - (double) b[i]) * (a[i] - (double) b[i]);
        return Math.sqrt(d);
    }

    static double norm(float[] a) {
        double n = 0;
        for (float v : a) n += (double) v * v;
        return Math.sqrt(n);
    }

    static double relErr(float[] a, float[] b) {
        double d = 0, n = 0;
        for (int i = 0; i < a.length; i++) { d += (a[i] - (double) b[i]) * (a[i] - (double) b[i]); n += (double) b[i] * b[i]; }
        return n == 0 ? Math.sqrt(d) : Math.sqrt(d / n);
    }
}
