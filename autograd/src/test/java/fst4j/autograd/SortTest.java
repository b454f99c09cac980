package fst4j.autograd;

import fst4j.tensor.DType;
import fst4j.tensor.Memory;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/** Var.sort / topk / argsort / kthvalue / median: one two-output node (Sort), stable, NaN largest, CPU. */
class SortTest {
    private static final float NaN = Float.NaN;

    private static int[] ints(Var indices) {
        double[] d = indices.value().toDoubleArray();
        int[] r = new int[d.length];
        for (int i = 0; i < d.length; i++) r[i] = (int) d[i];
        return r;
    }

    @Test
    void valuesGradcheckOnEveryAxisInBothDirections() {
        try (Scope s = Scope.open()) {
            Tensor x = new Rng(7).normal(0, 1, 3, 4, 5).to(DType.F64);   // continuous values: distinct, no swap within eps
            for (int axis : new int[]{0, 1, 2, -1, -3})
                for (boolean desc : new boolean[]{false, true}) {
                    GradCheck.Result r = GradCheck.checkMulti(in -> in[0].sort(axis, desc), x);
                    assertTrue(r.passed(), "sort axis " + axis + " descending " + desc + ": " + r);
                    r = GradCheck.checkMulti(in -> in[0].topk(2, axis, desc, true), x);
                    assertTrue(r.passed(), "topk axis " + axis + " largest " + desc + ": " + r);
                }
            for (boolean keep : new boolean[]{false, true}) {
                GradCheck.Result r = GradCheck.checkMulti(in -> in[0].kthvalue(2, 1, keep), x);
                assertTrue(r.passed(), "kthvalue keep " + keep + ": " + r);
                r = GradCheck.checkMulti(in -> in[0].median(-1, keep), x);
                assertTrue(r.passed(), "median keep " + keep + ": " + r);
            }
            // a non-contiguous input (a transposed view) and a value used past the node
            GradCheck.Result r = GradCheck.checkMulti(in -> in[0].transpose(0, 2).sort(1, true), x);
            assertTrue(r.passed(), "transposed: " + r);
            r = GradCheck.check(in -> { Var[] o = in[0].topk(3, -1, true, true); return o[0].mul(o[0]).sum(); }, x);
            assertTrue(r.passed(), "topk squared: " + r);
        }
    }

    @Test
    void tiesKeepTheirInputOrderAndNaNIsLargest() {
        try (Scope s = Scope.open()) {
            // torch.sort(stable=True) of this line (checked in nn's SortTorchTest): -0 and 0 tie
            Var x = Var.param(Tensor.of(new float[]{3, NaN, 1, 3, NaN, -1, 1, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, -0f, 0f}, 11));
            Var[] up = x.sort(0, false);
            assertArrayEquals(new int[]{8, 5, 9, 10, 2, 6, 0, 3, 7, 1, 4}, ints(up[1]));
            Var[] down = x.sort(-1, true);
            assertArrayEquals(new int[]{1, 4, 7, 0, 3, 2, 6, 9, 10, 5, 8}, ints(down[1]), "descending is stable too, not ascending reversed");
            assertTrue(Float.isNaN(down[0].value().toFloatArray()[0]));
            assertArrayEquals(new int[]{1, 4, 7, 0, 3, 2, 6, 9, 10, 5, 8}, x.argsort(0, true));
            assertArrayEquals(new int[]{8, 5, 9, 10, 2}, ints(x.topk(5, 0, false, true)[1]));
            assertArrayEquals(new int[]{1, 4, 7, 0}, ints(x.topk(4, 0, true, false)[1]));
            assertArrayEquals(new int[]{2}, ints(x.kthvalue(5, 0, true)[1]), "the 5th of the stable ascending sort");
            assertArrayEquals(new int[]{1}, ints(x.median(0, true)[1]), "a line with NaN: its first NaN");
            assertArrayEquals(new int[]{2}, ints(Var.of(Tensor.of(new float[]{2, 1, 1, 2}, 4)).median(0, false)[1]), "the lower median, the later of a tie");

            up[0].backward(Tensor.of(new float[]{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 11));
            assertArrayEquals(new float[]{6, 9, 4, 7, 10, 1, 5, 8, 0, 2, 3}, x.grad().toFloatArray(), "each value's gradient at its source");
            assertFalse(up[1].requiresGrad());
            assertTrue(up[1].isLeaf());
            assertEquals(DType.F32, up[1].value().dtype());
        }
    }

    /**
     * An empty tensor whose other axes multiply past an int (nothing is allocated: one of them is 0) sorts to empty
     * outputs of the right shapes, as torch's, instead of overflowing the line count ("integer overflow") or looping
     * over billions of empty lines; its gradient is empty too.
     */
    @Test
    void emptyTensorsWithHugeAxesGiveEmptyOutputs() {
        try (Scope s = Scope.open()) {
            Var a = Var.param(Tensor.zeros(0, 70000, 70000)), b = Var.param(Tensor.zeros(70000, 70000, 0));
            Var[] y = a.sort(0, true);
            assertArrayEquals(new int[]{0, 70000, 70000}, y[0].shape());
            assertArrayEquals(new int[]{0, 70000, 70000}, y[1].shape());
            y[0].sum().backward();
            assertArrayEquals(new int[]{0, 70000, 70000}, a.grad().shape());
            assertArrayEquals(new int[]{70000, 70000, 0}, b.topk(0, -1, true, true)[0].shape());
            assertArrayEquals(new int[]{70000, 70000, 0}, b.sort(2, false)[1].shape());
            assertArrayEquals(new int[]{0, 70000}, a.kthvalue(1, 2, false)[0].shape());
            assertArrayEquals(new int[]{0, 1, 70000}, a.median(1, true)[1].shape());
            assertEquals(0, b.argsort(-1, false).length);
        }
    }

    @Test
    void kFromZeroToTheSizeAndNoFurther() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(new Rng(1).normal(0, 1, 2, 3));
            Var[] none = x.topk(0, 1, true, true);
            assertArrayEquals(new int[]{2, 0}, none[0].shape());
            assertArrayEquals(new int[]{2, 0}, none[1].shape());
            none[0].sum().backward();
            assertArrayEquals(new float[6], x.grad().toFloatArray(), "k = 0: a zero gradient");
            Var[] all = x.topk(3, -1, false, true);
            Var[] sorted = x.sort(-1, false);
            assertTrue(all[0].value().equal(sorted[0].value()));
            assertTrue(all[1].value().equal(sorted[1].value()));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> x.topk(4, 1, true, true));
            assertTrue(e.getMessage().contains("k = 4 is out of range for axis 1 of size 3"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> x.topk(-1, 1, true, true));
            assertTrue(e.getMessage().contains("k = -1"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> x.kthvalue(0, 1, false));
            assertTrue(e.getMessage().contains("1 <= k <= 3"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> x.kthvalue(4, 1, false));
            assertTrue(e.getMessage().contains("kthvalue: k = 4"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> x.sort(2, false));
            assertTrue(e.getMessage().contains("axis 2 out of range for rank 2"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Var.of(Tensor.zeros(2, 0)).median(1, false));
            assertTrue(e.getMessage().contains("median: axis 1 of [2, 0] is empty"), e.getMessage());
        }
    }

    @Test
    void sizeOneAxesEmptyAxesAndScalars() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.of(new float[]{4, 2, 9}, 3, 1));
            Var[] o = x.sort(-1, true);
            assertArrayEquals(new int[]{3, 1}, o[0].shape());
            assertArrayEquals(new float[]{4, 2, 9}, o[0].value().toFloatArray());
            assertArrayEquals(new int[]{0, 0, 0}, ints(o[1]));
            Var[] m = x.median(1, false);
            assertArrayEquals(new int[]{3}, m[0].shape());
            assertArrayEquals(new int[]{1, 1}, x.kthvalue(2, 0, true)[0].shape());
            assertArrayEquals(new float[]{4}, x.kthvalue(2, 0, true)[0].value().toFloatArray());

            Var[] e = Var.of(Tensor.zeros(0, 3)).sort(0, false);
            assertArrayEquals(new int[]{0, 3}, e[0].shape());

            Var sc = Var.param(Tensor.of(new float[]{5}));   // rank 0
            Var[] ss = sc.sort(-1, false);
            assertArrayEquals(new int[0], ss[0].shape());
            assertEquals(0, ss[1].item());
            ss[0].backward();
            assertEquals(1, sc.grad().item());
            assertArrayEquals(new int[0], sc.topk(1, 0, true, true)[0].shape());
            assertThrows(IllegalArgumentException.class, () -> sc.topk(0, 0, true, true));
            assertThrows(IllegalArgumentException.class, () -> sc.sort(1, false));
        }
    }

    @Test
    void aNonContiguousInputSortsAsItsContiguousCopy() {
        try (Scope s = Scope.open()) {
            Tensor base = new Rng(3).normal(0, 1, 4, 6);
            Var view = Var.param(base.transpose(0, 1).slice(0, 1, 6, 2));   // [3, 4], strided
            assertFalse(view.value().isContiguous());
            Var copy = Var.param(view.value().copy());
            for (int axis : new int[]{0, 1}) {
                Var[] a = view.sort(axis, true), b = copy.sort(axis, true);
                assertTrue(a[0].value().equal(b[0].value()), "axis " + axis);
                assertTrue(a[1].value().equal(b[1].value()), "axis " + axis);
                Var[] ta = view.topk(2, axis, false, true), tb = copy.topk(2, axis, false, true);
                assertTrue(ta[0].value().equal(tb[0].value()), "axis " + axis);
                a[0].add(ta[0].sum()).sum().backward();
                b[0].add(tb[0].sum()).sum().backward();
                assertTrue(view.grad().equal(copy.grad()), "axis " + axis);
            }
        }
    }

    @Test
    void underNoGradNothingIsRecorded() {
        try (Scope s = Scope.open(); Grad.Restore ng = Grad.noGrad()) {
            Var[] o = Var.param(Tensor.of(new float[]{1, 3, 2}, 3)).sort(0, true);
            assertFalse(o[0].requiresGrad());
            assertArrayEquals(new float[]{1, 2, 0}, o[1].value().toFloatArray());
        }
    }

    @Test
    void anAxisPastFloatIndicesIsRefused() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.zeros(1)).expand((1 << 24) + 1);   // a view: nothing allocated
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> x.sort(0, false));
            assertTrue(e.getMessage().contains("16777217 elements"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> x.argsort(0, false));
        }
    }

    /** Outside a Scope, closing both outputs (and the input) frees everything, for each kind of selection. */
    @Test
    void closingTheOutputsFreesEverythingWithoutAScope() {
        for (int kind = 0; kind < 4; kind++)
            for (boolean grad : new boolean[]{false, true}) {
                long before = Memory.bytesInUse();
                Tensor t = Tensor.of(new double[]{1, 5, 3, 2, 0, 7}, 2, 3);
                try (Var x = grad ? Var.param(t) : Var.of(t)) {
                    Var[] o = switch (kind) {
                        case 0 -> x.sort(-1, false);
                        case 1 -> x.topk(2, 1, true, true);
                        case 2 -> x.kthvalue(2, -1, false);
                        default -> x.median(0, true);
                    };
                    assertTrue(o[1].value().numel() > 0);
                    if (grad) try (Var sum = o[0].sum()) { sum.backward(); }
                    o[0].close();
                    o[1].close();
                }
                assertEquals(before, Memory.bytesInUse(), "kind " + kind + ", requiring a gradient " + grad);
            }
    }

    /** Small integers with NaNs: many ties. */
    private static Tensor tied(long seed, int a, int b) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[a * b];
        for (int i = 0; i < v.length; i++) v[i] = r.nextInt(8) == 0 ? NaN : r.nextInt(5) - 2;
        return Tensor.of(v, a, b);
    }

    @Property(tries = 40)
    void sortedValuesAreOrderedAndAPermutationOfTheInput(@ForAll @IntRange(min = 1, max = 6) int a, @ForAll @IntRange(min = 0, max = 9) int b,
                                                         @ForAll @IntRange(min = -2, max = 1) int axis, @ForAll boolean desc, @ForAll long seed) {
        try (Scope s = Scope.open()) {
            Tensor x = tied(seed, a, b);
            Var[] o = Var.of(x).sort(axis, desc);
            int ax = axis < 0 ? axis + 2 : axis;
            int n = x.shape()[ax];
            int lines = ax == 0 ? b : a;
            for (int l = 0; l < lines; l++) {
                boolean[] seen = new boolean[n];
                for (int p = 0; p < n; p++) {
                    int[] at = ax == 0 ? new int[]{p, l} : new int[]{l, p};
                    double v = o[0].value().get(at);
                    int i = (int) o[1].value().get(at);
                    assertFalse(seen[i], "index " + i + " twice");
                    seen[i] = true;
                    int[] src = ax == 0 ? new int[]{i, l} : new int[]{l, i};
                    assertEquals(Double.doubleToLongBits(x.get(src)), Double.doubleToLongBits(v), "value at its index");
                    if (p > 0) {
                        int[] prev = ax == 0 ? new int[]{p - 1, l} : new int[]{l, p - 1};
                        int c = Sort.compare(o[0].value().get(prev), v);
                        assertTrue(desc ? c >= 0 : c <= 0, "ordered at " + p);
                        if (c == 0) assertTrue(o[1].value().get(prev) < i, "a tie keeps the input order");
                    }
                }
            }
        }
    }

    @Property(tries = 40)
    void topkIsTheFirstKOfSort(@ForAll @IntRange(min = 1, max = 5) int a, @ForAll @IntRange(min = 0, max = 9) int b,
                               @ForAll @IntRange(min = 0, max = 9) int k, @ForAll @IntRange(min = -2, max = 1) int axis,
                               @ForAll boolean largest, @ForAll long seed) {
        try (Scope s = Scope.open()) {
            Tensor x = tied(seed, a, b);
            int ax = axis < 0 ? axis + 2 : axis;
            int n = x.shape()[ax];
            if (k > n) {
                assertThrows(IllegalArgumentException.class, () -> Var.of(x).topk(k, axis, largest, true));
                return;
            }
            Var[] t = Var.of(x).topk(k, axis, largest, true);
            Var[] sorted = Var.of(x).sort(axis, largest);
            Tensor v = sorted[0].value().slice(ax, 0, k), i = sorted[1].value().slice(ax, 0, k);
            assertArrayEquals(v.shape(), t[0].shape());
            assertArrayEquals(Arrays.stream(v.toDoubleArray()).mapToLong(Double::doubleToLongBits).toArray(),
                    Arrays.stream(t[0].value().toDoubleArray()).mapToLong(Double::doubleToLongBits).toArray());
            assertArrayEquals(i.toDoubleArray(), t[1].value().toDoubleArray());
        }
    }
}
