package fst4j.autograd;

import fst4j.tensor.DType;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

import static fst4j.autograd.OpsGradTest.ok;
import static fst4j.autograd.OpsGradTest.rand;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Var's shape ops (squeeze ... repeat, NN.pad): float64 gradient checks at awkward shapes (size-1 axes, negative axes),
 * the exact values of small cases, refusals by name, and the identities cat(split(x)) == x, flip twice and roll there
 * and back. TorchVarOpsTest (nn) compares values and gradients with torch 1.13.
 */
class VarShapeOpsTest {
    /** A weighted sum, so that a permutation of the output changes the gradient (sum() alone would not see it). */
    static Var wsum(Var y) {
        Tensor w = rand(99, y.shape());
        return y.mul(Var.of(w)).sum();
    }

    static double[] vals(Var v) { return v.value().toDoubleArray(); }

    @Test
    void squeezeUnsqueezeFlattenUnflatten() {
        try (Scope s = Scope.open()) {
            Tensor a = rand(1, 1, 3, 1, 2);
            Var x = Var.of(a);
            assertArrayEquals(new int[]{3, 2}, x.squeeze().shape());
            assertArrayEquals(new int[]{1, 3, 2}, x.squeeze(-2).shape());
            assertArrayEquals(new int[]{3, 2}, x.squeeze(0, 2).shape());
            assertArrayEquals(new int[]{1, 3, 1, 2}, x.squeeze(1).shape(), "an axis of size 3 stays, as torch's");
            assertArrayEquals(new int[]{1, 3, 1, 2, 1}, x.unsqueeze(-1).shape());
            assertArrayEquals(new int[]{1, 1, 3, 1, 2}, x.unsqueeze(0).shape());
            assertArrayEquals(new int[]{1, 6}, x.flatten(1, -1).shape());
            assertArrayEquals(new int[]{6}, x.flatten().shape());
            assertArrayEquals(new int[]{1}, Var.of(Tensor.scalar(2, DType.F64)).flatten().shape());
            assertArrayEquals(new int[]{1, 3, 1, 1, 2}, x.unflatten(-1, 1, -1).shape());
            ok(v -> wsum(v[0].squeeze().unsqueeze(1).flatten(0, 1).unflatten(0, 3, 1)), a);
            assertThrows(IllegalArgumentException.class, () -> x.unsqueeze(6));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> x.unflatten(1, 2, 2));
            assertTrue(e.getMessage().contains("multiply to 4"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> x.squeeze(5));
            assertThrows(IllegalArgumentException.class, () -> x.flatten(3, 1));
        }
    }

    @Test
    void splitChunkUnbind() {
        try (Scope s = Scope.open()) {
            Tensor a = rand(2, 3, 7, 1);
            Var x = Var.of(a);
            Var[] p = x.split(3, 1);
            assertEquals(3, p.length);
            assertArrayEquals(new int[]{3, 1, 1}, p[2].shape());
            assertArrayEquals(new int[]{3, 5, 1}, x.split(new int[]{2, 0, 5}, -2)[2].shape());
            assertEquals(4, x.chunk(4, 1).length);
            assertEquals(3, Var.of(rand(5, 5)).chunk(4, 0).length, "ceil(5 / 4) = 2: pieces of 2, 2, 1 (fewer than 4, as torch's)");
            assertEquals(3, Var.of(rand(5, 0, 2)).chunk(3, 0).length, "an empty axis gives n empty pieces, as torch's");
            assertEquals(7, x.unbind(1).length);
            assertArrayEquals(new int[]{3, 1}, x.unbind(1)[0].shape());
            ok(v -> wsum(Var.cat(1, v[0].split(3, 1)[2], v[0].split(new int[]{4, 3}, 1)[0])), a);
            ok(v -> wsum(Var.stack(0, v[0].chunk(3, -2)[1].unbind(2))), a);
            ok(v -> wsum(v[0].unbind(0)[2].mul(v[0].unbind(0)[0])), a);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> x.split(new int[]{3, 3}, 1));
            assertTrue(e.getMessage().contains("add up to 6") && e.getMessage().contains("size 7"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> x.split(0, 1));
            assertThrows(IllegalArgumentException.class, () -> x.chunk(0, 1));
            assertThrows(IllegalArgumentException.class, () -> x.unbind(3));
        }
    }

    @Test
    void flipRollRepeatValues() {
        try (Scope s = Scope.open()) {
            Var x = Var.of(Tensor.of(new double[]{0, 1, 2, 3, 4, 5}, 2, 3));
            assertArrayEquals(new double[]{5, 4, 3, 2, 1, 0}, vals(x.flip(0, 1)));
            assertArrayEquals(new double[]{2, 1, 0, 5, 4, 3}, vals(x.flip(-1)));
            assertArrayEquals(new double[]{2, 0, 1, 5, 3, 4}, vals(x.roll(1, 1)));
            assertArrayEquals(new double[]{1, 2, 0, 4, 5, 3}, vals(x.roll(-4, -1)));
            assertArrayEquals(new double[]{5, 0, 1, 2, 3, 4}, vals(x.roll(new int[]{1}, new int[]{})));
            assertArrayEquals(new double[]{0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5}, vals(x.repeat(1, 2)));
            assertArrayEquals(new int[]{2, 4, 3}, x.repeat(2, 2, 1).shape());
            assertArrayEquals(new int[]{0, 3}, x.repeat(0, 1).shape());
            assertThrows(IllegalArgumentException.class, () -> x.flip(1, -1), "a repeated axis");
            assertThrows(IllegalArgumentException.class, () -> x.repeat(2));
            assertThrows(IllegalArgumentException.class, () -> x.roll(new int[]{1, 2}, new int[]{0}));
        }
    }

    @Test
    void flipRollRepeatGradients() {
        try (Scope s = Scope.open()) {
            Tensor a = rand(3, 2, 1, 5);
            ok(v -> wsum(v[0].flip(0, -1)), a);
            ok(v -> wsum(v[0].flip(1)), a);
            ok(v -> wsum(v[0].roll(3, -1)), a);
            ok(v -> wsum(v[0].roll(new int[]{-1, 7}, new int[]{0, 2})), a);
            ok(v -> wsum(v[0].repeat(2, 1, 3, 2)), a);
            ok(v -> wsum(v[0].repeat(3, 1, 1)), a);
        }
    }

    @Test
    void padValuesAndModes() {
        try (Scope s = Scope.open()) {
            Var x = Var.of(Tensor.of(new double[]{1, 2, 3, 4, 5, 6}, 2, 3));
            assertArrayEquals(new double[]{9, 1, 2, 3, 9, 9, 9, 4, 5, 6, 9, 9}, vals(NN.pad(x, new int[]{1, 2}, 9)));
            assertArrayEquals(new double[]{2, 5}, vals(NN.pad(x, new int[]{-1, -1}, 0)), "negative pads crop");
            assertArrayEquals(new double[]{0, 0, 2, 3, 5, 6}, vals(NN.pad(x, new int[]{-1, 0, 1, 0}, 0)));
            assertArrayEquals(new double[]{3, 2, 1, 2, 3, 2, 6, 5, 4, 5, 6, 5}, vals(NN.pad(x, new int[]{2, 1}, NN.PadMode.REFLECT, 0)));
            assertArrayEquals(new double[]{1, 1, 2, 3, 3, 3, 4, 4, 5, 6, 6, 6}, vals(NN.pad(x, new int[]{1, 2}, NN.PadMode.REPLICATE, 0)));
            assertArrayEquals(new double[]{2, 3, 1, 2, 3, 1, 5, 6, 4, 5, 6, 4}, vals(NN.pad(x, new int[]{2, 1}, NN.PadMode.CIRCULAR, 0)));
            assertArrayEquals(new int[]{4, 6}, NN.pad(x, new int[]{1, 2, 1, 1}, NN.PadMode.REFLECT, 0).shape());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NN.pad(x, new int[]{3, 0}, NN.PadMode.REFLECT, 0));
            assertTrue(e.getMessage().contains("less than axis 1's size 3"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> NN.pad(x, new int[]{4, 0}, NN.PadMode.CIRCULAR, 0));
            assertThrows(IllegalArgumentException.class, () -> NN.pad(x, new int[]{1}, 0), "odd length");
            assertThrows(IllegalArgumentException.class, () -> NN.pad(x, new int[]{1, 1, 1, 1, 1, 1}, 0), "more axes than the rank");
            assertThrows(IllegalArgumentException.class, () -> NN.pad(x, new int[]{-2, -2}, 0), "negative size");
            assertThrows(IllegalArgumentException.class, () -> NN.pad(x, new int[]{-1, 0}, NN.PadMode.REPLICATE, 0));
        }
    }

    @Test
    void padGradients() {
        try (Scope s = Scope.open()) {
            Tensor a = rand(4, 2, 1, 4);
            for (NN.PadMode m : NN.PadMode.values()) {
                ok(v -> wsum(NN.pad(v[0], new int[]{2, 3}, m, 0)), a);
                ok(v -> wsum(NN.pad(v[0], new int[]{1, 0, 0, 0, 1, 1}, m, 0)), a);
            }
            ok(v -> wsum(NN.pad(v[0], new int[]{-1, 2, 1, -1}, 0.5)), a);
        }
    }

    @Property(tries = 30)
    void catOfSplitIsIdentity(@ForAll @IntRange(min = 1, max = 6) int a, @ForAll @IntRange(min = 0, max = 9) int b,
                              @ForAll @IntRange(min = 1, max = 5) int size, @ForAll @IntRange(min = -2, max = 1) int axis) {
        try (Scope s = Scope.open()) {
            Var x = Var.of(rand(a * 31L + b, a, b));
            Var[] parts = x.split(size, axis);
            Var y = parts.length == 1 ? parts[0] : Var.cat(axis, parts);
            assertTrue(y.value().equal(x.value()));
        }
    }

    @Property(tries = 30)
    void flipTwiceAndRollBackAreIdentity(@ForAll @IntRange(min = 1, max = 5) int a, @ForAll @IntRange(min = 1, max = 7) int b,
                                         @ForAll @IntRange(min = -20, max = 20) int shift, @ForAll @IntRange(min = -2, max = 1) int axis) {
        try (Scope s = Scope.open()) {
            Var x = Var.of(rand(a * 13L + b, a, b));
            assertTrue(x.flip(axis).flip(axis).value().equal(x.value()));
            assertTrue(x.roll(shift, axis).roll(-shift, axis).value().equal(x.value()));
        }
    }
}
