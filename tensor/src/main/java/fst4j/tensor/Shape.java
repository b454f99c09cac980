package fst4j.tensor;

import java.util.Arrays;

/** Shape arithmetic and validation shared by every op. */
public final class Shape {
    private Shape() {}

    public static long numel(int[] shape) {
        long n = 1;
        for (int d : shape) n = Math.multiplyExact(n, d);
        return n;
    }

    public static int[] check(int[] shape) {
        for (int d : shape)
            if (d < 0) throw new IllegalArgumentException("negative dimension " + d + " in shape " + Arrays.toString(shape));
        return shape.clone();
    }

    public static long[] contiguousStrides(int[] shape) {
        long[] s = new long[shape.length];
        long acc = 1;
        for (int i = shape.length - 1; i >= 0; i--) { s[i] = acc; acc *= Math.max(shape[i], 1); }
        return s;
    }

    /** Numpy broadcasting of two shapes, or IllegalArgumentException naming both. */
    public static int[] broadcast(int[] a, int[] b) {
        int n = Math.max(a.length, b.length);
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            int da = i < n - a.length ? 1 : a[i - (n - a.length)];
            int db = i < n - b.length ? 1 : b[i - (n - b.length)];
            if (da != db && da != 1 && db != 1)
                throw new IllegalArgumentException("shape mismatch: cannot broadcast " + Arrays.toString(a) + " with " + Arrays.toString(b));
            out[i] = da == 1 ? db : da;
        }
        return out;
    }

    public static int axis(int axis, int rank) {
        int a = axis < 0 ? axis + rank : axis;
        if (a < 0 || a >= rank) throw new IllegalArgumentException("axis " + axis + " out of range for rank " + rank);
        return a;
    }

    public static String str(int[] shape) { return Arrays.toString(shape); }
}
