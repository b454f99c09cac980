package fst4j.autograd;

import fst4j.tensor.DType;
import fst4j.tensor.Memory;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Var.quantile / nanquantile / nanmedian on the CPU: float64 GradCheck of every interpolation (distinct values, q away
 * from the points where a rank crosses an integer), the shapes torch 1.13 gives, rows worked by hand, and the refusals
 * (the values against torch are in nn's QuantileTorchTest).
 */
class QuantileTest {
    private static final String[] MODES = {"linear", "lower", "higher", "midpoint", "nearest"};

    @Test
    void everyInterpolationGradchecksInFloat64() {
        try (Scope s = Scope.open()) {
            Tensor x = new Rng(11).normal(0, 1, 3, 4, 5).to(DType.F64);   // continuous: distinct values, no swap within eps
            for (String m : MODES) {
                for (Integer axis : new Integer[]{0, 1, -1, null})
                    for (boolean keep : new boolean[]{false, true}) {
                        GradCheck.Result r = GradCheck.check(in -> in[0].quantile(0.3, axis, keep, m), x);
                        assertTrue(r.passed(), m + " axis " + axis + " keep " + keep + ": " + r);
                        r = GradCheck.check(in -> in[0].nanquantile(new double[]{0.1, 0.55, 1}, axis, keep, m), x);
                        assertTrue(r.passed(), "nan " + m + " axis " + axis + " keep " + keep + ": " + r);
                    }
                // a transposed view, q used twice
                GradCheck.Result r = GradCheck.check(in -> in[0].transpose(0, 2).quantile(new double[]{0.8, 0.8, 0}, 1, false, m), x);
                assertTrue(r.passed(), "transposed " + m + ": " + r);
            }
            for (boolean keep : new boolean[]{false, true}) {
                GradCheck.Result r = GradCheck.checkMulti(in -> in[0].nanmedian(1, keep), x);
                assertTrue(r.passed(), "nanmedian keep " + keep + ": " + r);
            }
            assertTrue(GradCheck.check(in -> in[0].nanmedian(), x).passed());
        }
    }

    @Test
    void shapesFollowTorch() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(new Rng(1).normal(0, 1, 2, 3, 4));
            assertArrayEquals(new int[]{2, 4}, x.quantile(0.5, 1, false, "linear").shape());
            assertArrayEquals(new int[]{2, 1, 4}, x.quantile(0.5, -2, true, "linear").shape());
            assertArrayEquals(new int[]{5, 2, 4}, x.quantile(new double[]{0, .2, .4, .6, 1}, 1, false, "lower").shape());
            assertArrayEquals(new int[]{2, 2, 1, 4}, x.nanquantile(new double[]{.1, .2}, 1, true, "linear").shape());
            assertArrayEquals(new int[]{}, x.quantile(0.5, null, false, "linear").shape());
            assertArrayEquals(new int[]{1, 1, 1}, x.quantile(0.5, null, true, "linear").shape());
            assertArrayEquals(new int[]{2, 1, 1, 1}, x.quantile(new double[]{.1, .2}, null, true, "linear").shape());
            assertArrayEquals(new int[]{2}, x.quantile(new double[]{.1, .2}, null, false, "linear").shape());
            Var[] m = x.nanmedian(2, true);
            assertArrayEquals(new int[]{2, 3, 1}, m[0].shape());
            assertArrayEquals(new int[]{2, 3, 1}, m[1].shape());
            assertArrayEquals(new int[]{}, x.nanmedian().shape());
            Var sc = Var.param(Tensor.scalar(3.0));
            assertEquals(3.0, sc.quantile(0.25, 0, false, "linear").item());
            assertArrayEquals(new int[]{}, sc.quantile(0.25, -1, true, "linear").shape());
        }
    }

    @Test
    void rowsWorkedByHand() {
        try (Scope s = Scope.open()) {
            double nan = Double.NaN;
            // sorted 1 2 2 2 5, n - 1 = 4: q 0.875 -> rank 3.5 (between the last 2 and the 5), q 0.625 -> 2.5 (nearest: 2, even)
            Var x = Var.param(Tensor.of(new double[]{5, 2, 1, 2, 2}, 5));
            assertArrayEquals(new double[]{3.5, 2, 2, 5, 3.5, 2}, new double[]{
                    x.quantile(0.875, 0, false, "linear").item(), x.quantile(0.875, 0, false, "lower").item(),
                    x.quantile(0.625, 0, false, "nearest").item(), x.quantile(0.875, 0, false, "higher").item(),
                    x.quantile(0.875, 0, false, "midpoint").item(), x.quantile(0.375, 0, false, "nearest").item()});
            assertEquals(5, x.quantile(0.5 + 0.25 * 1.5, 0, false, "nearest").item());   // rank 3.5 -> 4 (even)
            // linear at rank 3.5: half to the 2 at input position 4 (the last tie, stable), half to the 5
            Var y = x.quantile(0.875, 0, false, "linear");
            y.backward();
            assertArrayEquals(new double[]{0.5, 0, 0, 0, 0.5}, x.grad().toDoubleArray());
            // NaN: quantile NaN, the gradient to the last NaN; nanquantile over the three numbers
            Var z = Var.param(Tensor.of(new double[]{nan, 4, nan, 0, 2}, 5));
            Var qz = z.quantile(0.25, 0, false, "linear");
            assertTrue(Double.isNaN(qz.item()));
            qz.backward();
            assertArrayEquals(new double[]{0, 0, 1, 0, 0}, z.grad().toDoubleArray());
            assertEquals(1.0, z.nanquantile(0.25, 0, false, "linear").item());   // rank 0.5 of 0 2 4
            Var[] med = z.nanmedian(0, false);
            assertEquals(2.0, med[0].item());
            assertEquals(4.0, med[1].item());
            Var all = Var.param(Tensor.of(new double[]{nan, nan}, 2));
            assertTrue(Double.isNaN(all.nanquantile(0.9, 0, false, "linear").item()));
            Var[] am = all.nanmedian(0, false);
            assertTrue(Double.isNaN(am[0].item()));
            assertEquals(0.0, am[1].item());
        }
    }

    @Test
    void badInputIsRefusedByName() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(new Rng(2).normal(0, 1, 2, 3));
            assertEquals("quantile: q must be in [0, 1], got 1.5",
                    assertThrows(IllegalArgumentException.class, () -> x.quantile(1.5, 1, false, "linear")).getMessage());
            assertEquals("nanquantile: q must be in [0, 1], got NaN",
                    assertThrows(IllegalArgumentException.class, () -> x.nanquantile(new double[]{0.5, Double.NaN}, 1, false, "linear")).getMessage());
            assertEquals("quantile: q must be in [0, 1], got -0.1",
                    assertThrows(IllegalArgumentException.class, () -> x.quantile(new double[]{0.5, -0.1}, 1, false, "linear")).getMessage());
            assertEquals("quantile: interpolation must be one of linear, lower, higher, midpoint or nearest, got 'Linear'",
                    assertThrows(IllegalArgumentException.class, () -> x.quantile(0.5, 1, false, "Linear")).getMessage());
            assertEquals("quantile: the input [2, 0] is empty (torch refuses an empty input)",
                    assertThrows(IllegalArgumentException.class, () -> Var.of(Tensor.zeros(2, 0)).quantile(0.5, 0, false, "linear")).getMessage());
            assertEquals("quantile: axis 2 out of range for shape [2, 3]",
                    assertThrows(IllegalArgumentException.class, () -> x.quantile(0.5, 2, false, "linear")).getMessage());
            assertEquals("nanmedian: axis 1 of [2, 0] is empty",
                    assertThrows(IllegalArgumentException.class, () -> Var.of(Tensor.zeros(2, 0)).nanmedian(1, false)).getMessage());
            assertArrayEquals(new int[]{0}, Var.of(Tensor.zeros(0, 3)).nanmedian(1, false)[0].shape());   // no lines: empty, as median
            // over all elements (no axis given): the input's own shape, not the flattened line's axis 0 (torch 1.13 gives NaN)
            long before = Memory.bytesInUse();
            assertEquals("nanmedian: the input [2, 0] is empty (no element to take the median of)",
                    assertThrows(IllegalArgumentException.class, () -> Var.of(Tensor.zeros(2, 0)).nanmedian()).getMessage());
            assertEquals("nanmedian: the input [3, 0] is empty (no element to take the median of)",
                    assertThrows(IllegalArgumentException.class, () -> Var.of(Tensor.zeros(0, 3)).transpose(0, 1).nanmedian()).getMessage());
            assertEquals(before, Memory.bytesInUse());
        }
    }

    /**
     * A q array whose output passes 2^31 - 1 elements (the ranks and gathers are int arrays) is refused by name, with
     * the output's shape and count, before the sort allocates anything; it was an ArithmeticException ("integer
     * overflow") thrown after the sort, whose values stayed in use until the scope closed.
     */
    @Test
    void anOutputPastIntIsRefusedByNameBeforeTheSort() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.zeros(DType.F32, 1 << 16, 2));
            double[] q = new double[40000];
            long before = Memory.bytesInUse();
            assertEquals("quantile: the output [40000, 65536] would hold 2621440000 elements (40000 q by 65536 lines), more than 2147483647",
                    assertThrows(IllegalArgumentException.class, () -> x.quantile(q, 1, false, "linear")).getMessage());
            assertEquals("nanquantile: the output [40000, 1, 65536] would hold 2621440000 elements (40000 q by 65536 lines), more than 2147483647",
                    assertThrows(IllegalArgumentException.class, () -> x.transpose(0, 1).nanquantile(q, 0, true, "lower")).getMessage());
            assertEquals(before, Memory.bytesInUse());
        }
    }
}
