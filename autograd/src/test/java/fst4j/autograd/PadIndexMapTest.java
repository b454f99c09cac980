package fst4j.autograd;

import fst4j.tensor.DType;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * NN.pad's reflect, replicate and circular modes as one index map (one gather forward, one scatter-add backward) against the
 * per-axis composition of slices and cat they replaced, kept here as the reference: the same values bit for bit in
 * float32 and float64 at random shapes and pads over up to three axes, and the same input gradient (upstream weights
 * are small integers, so every order of summation is exact and a wrong source index shows). The output is one node.
 */
class PadIndexMapTest {
    /**
     * The composition NN.pad used before: per axis, one slice per reflected element (or an expanded edge, or circular's
     * two wrapped ends) and a cat.
     */
    static Var slicePad(Var x, int[] pad, NN.PadMode mode) {
        int[] s0 = x.shape();
        Var y = x;
        for (int i = 0; i < pad.length / 2; i++) {
            int a = s0.length - 1 - i, l = pad[2 * i], r = pad[2 * i + 1];
            int n = y.shape()[a];
            if (l == 0 && r == 0) continue;
            List<Var> parts = new ArrayList<>();
            if (mode == NN.PadMode.CIRCULAR) {
                if (l > 0) parts.add(y.slice(a, n - l, n));
                parts.add(y);
                if (r > 0) parts.add(y.slice(a, 0, r));
            } else if (mode == NN.PadMode.REFLECT) {
                for (int j = l; j >= 1; j--) parts.add(y.slice(a, j, j + 1));
                parts.add(y);
                for (int j = n - 2; j >= n - 1 - r; j--) parts.add(y.slice(a, j, j + 1));
            } else {
                int[] ls = y.shape(), rs = y.shape();
                ls[a] = l; rs[a] = r;
                if (l > 0) parts.add(y.slice(a, 0, 1).expand(ls));
                parts.add(y);
                if (r > 0) parts.add(y.slice(a, n - 1, n).expand(rs));
            }
            y = Var.cat(a, parts.toArray(Var[]::new));
        }
        return y == x ? x.reshape(s0) : y;
    }

    /** Small integers, so sums in any order are exact in float32 and float64. */
    static Tensor ints(long seed, DType dt, int... shape) {
        java.util.Random r = new java.util.Random(seed);
        int n = Math.toIntExact(fst4j.tensor.Shape.numel(shape));
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = r.nextInt(17) - 8;
        try (Tensor t = Tensor.of(v, shape)) { return t.to(dt); }
    }

    @Property(tries = 60)
    void oneGatherEqualsTheSliceComposition(@ForAll @IntRange(min = 1, max = 3) int rank, @ForAll @IntRange(min = 1, max = 5) int a,
                                            @ForAll @IntRange(min = 1, max = 5) int b, @ForAll @IntRange(min = 2, max = 6) int c,
                                            @ForAll @IntRange(min = 0, max = 999) int seed, @ForAll @IntRange(min = 0, max = 2) int m, @ForAll boolean f64) {
        NN.PadMode mode = new NN.PadMode[]{NN.PadMode.REFLECT, NN.PadMode.REPLICATE, NN.PadMode.CIRCULAR}[m];
        DType dt = f64 ? DType.F64 : DType.F32;
        int[] shape = rank == 1 ? new int[]{c} : rank == 2 ? new int[]{b, c} : new int[]{a, b, c};
        java.util.Random r = new java.util.Random(seed);
        int axes = 1 + r.nextInt(rank);
        int[] pad = new int[2 * axes];
        for (int i = 0; i < pad.length; i++) {
            int n = shape[rank - 1 - i / 2];
            pad[i] = switch (mode) {
                case REFLECT -> r.nextInt(n);        // reflect needs a pad below the axis's size
                case CIRCULAR -> r.nextInt(n + 1);   // circular one at most the size
                default -> r.nextInt(5);
            };
        }
        try (Scope s = Scope.open()) {
            Tensor xt = ints(seed, dt, shape);
            Var x1 = Var.param(xt.copy()), x2 = Var.param(xt.copy());
            Var y1 = NN.pad(x1, pad, mode, 0), y2 = slicePad(x2, pad, mode);
            String what = mode + " " + java.util.Arrays.toString(pad) + " of " + java.util.Arrays.toString(shape) + " " + dt;
            assertArrayEquals(y2.shape(), y1.shape(), what);
            assertTrue(y1.value().equal(y2.value()), what + ": values");
            assertEquals(dt, y1.value().dtype());
            boolean padded = false;
            for (int p : pad) padded |= p != 0;
            if (padded) {
                assertEquals(switch (mode) { case REFLECT -> "ReflectPad"; case CIRCULAR -> "CircularPad"; default -> "ReplicatePad"; },
                        y1.gradFn().name(), "one node, the index map");
                assertSame(x1, y1.gradFn().inputs[0], "the index map reads x itself: no slice or cat in between");
            }
            Tensor w = ints(seed + 7, dt, y1.shape());
            y1.mul(Var.of(w.copy())).sum().backward();
            y2.mul(Var.of(w)).sum().backward();
            assertTrue(x1.grad().equal(x2.grad()), what + ": gradients");
        }
    }

    /**
     * A replicate pad may be any size (reflect's is below the axis's), so its per-axis map could be near 2^31 entries
     * while the output, a multiple of it, is past an int's elements: that is refused by name before any map is built,
     * not after allocating an 8 GB int array (an OutOfMemoryError under the tests' 2 GB heap).
     */
    @org.junit.jupiter.api.Test
    void aHugePadIsRefusedByNameBeforeItsMapIsBuilt() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(ints(1, DType.F32, 2, 3));
            NN.PadMode m = NN.PadMode.REPLICATE;
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NN.pad(x, new int[]{0, Integer.MAX_VALUE - 10}, m, 0));
            assertEquals("pad: replicate padding's output [2, 2147483640] would hold 4294967280 elements, more than 2147483647", e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> NN.pad(x, new int[]{1, Integer.MAX_VALUE - 1}, m, 0));
            assertTrue(e.getMessage().startsWith("pad: axis 1 of size 3 padded by (1, 2147483646) would have 2147483650 elements"), e.getMessage());
        }
    }

    /** Circular's refusals as the per-axis composition gave them: negative pads first, then a pad past the size. */
    @org.junit.jupiter.api.Test
    void circularRefusesWhatItRefusedBefore() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(ints(2, DType.F64, 2, 3));
            NN.PadMode m = NN.PadMode.CIRCULAR;
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NN.pad(x, new int[]{0, 4}, m, 0));
            assertEquals("pad: circular padding (0, 4) wraps more than once round axis 1 of size 3", e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> NN.pad(x, new int[]{3, 3, 3, 0}, m, 0));
            assertEquals("pad: circular padding (3, 0) wraps more than once round axis 0 of size 2", e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> NN.pad(x, new int[]{4, 0, -1, 0}, m, 0));   // the last axis is checked first
            assertEquals("pad: circular padding (4, 0) wraps more than once round axis 1 of size 3", e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> NN.pad(x, new int[]{1, 1, -1, 0}, m, 0));
            assertEquals("pad: negative padding (-1, 0) on axis 0 is only for constant mode, not CIRCULAR", e.getMessage());
            Var y = NN.pad(x, new int[]{3, 3, 2, 2}, m, 0);   // pads equal to the sizes: the whole axis once more each side
            assertArrayEquals(new int[]{6, 9}, y.shape());
            for (int i = 0; i < 6; i++)
                for (int j = 0; j < 9; j++)
                    assertEquals(x.value().getDouble(i % 2, j % 3), y.value().getDouble(i, j), 0.0, i + ", " + j);
        }
    }
}
