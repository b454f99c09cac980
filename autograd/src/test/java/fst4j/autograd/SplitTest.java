package fst4j.autograd;

import fst4j.tensor.DType;
import fst4j.tensor.Memory;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Var.split (torch.split with sizes): views from one node, each part's gradient in its place of the input's. */
class SplitTest {

    @Test
    void gradcheckEachPartAloneAndAllTogether() {
        try (Scope s = Scope.open()) {
            Tensor x = new Rng(2).normal(0, 1, 3, 7, 2).to(DType.F64);
            GradCheck.Result r = GradCheck.checkMulti(in -> in[0].split(new int[]{2, 4, 1}, 1), x);
            assertTrue(r.passed(), r.toString());
            // parts feeding each other's consumers
            r = GradCheck.check(in -> {
                Var[] p = in[0].split(new int[]{1, 1}, -1);
                return p[0].mul(p[1]).add(p[1].exp()).add(p[0]);
            }, x);
            assertTrue(r.passed(), r.toString());
        }
    }

    @Test
    void oneNodeOfViewsWithTheSlicesGradientsBitForBit() {
        try (Scope s = Scope.open()) {
            Rng rng = new Rng(4);
            Tensor x0 = rng.normal(0, 1, 4, 6);
            Tensor r0 = rng.normal(0, 1, 4, 2), r2 = rng.normal(0, 1, 4, 3);
            Var x = Var.param(x0.copy());
            Var[] p = x.split(new int[]{2, 1, 3}, 1);
            assertSame(p[0].gradFn(), p[2].gradFn(), "one node");
            assertArrayEquals(new int[]{4, 1}, p[1].shape());
            p[0].mul(Var.of(r0)).sum().add(p[2].mul(Var.of(r2)).sum()).backward();   // p[1] unused: zeros in its place
            Var y = Var.param(x0.copy());
            y.slice(1, 0, 2).mul(Var.of(r0)).sum().add(y.slice(1, 3, 6).mul(Var.of(r2)).sum()).backward();
            assertArrayEquals(y.grad().toFloatArray(), x.grad().toFloatArray());
            x.value().set(42, 0, 3);   // views: the write shows in the part
            assertEquals(42, p[2].value().get(0, 0));
        }
    }

    @Test
    void badSizesAreRefusedByName() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.zeros(2, 5));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> x.split(new int[]{2, 2}, 1));
            assertTrue(e.getMessage().contains("add up to 4, not axis 1's size 5 (shape [2, 5])"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> x.split(new int[]{6, -1}, 1));
            assertTrue(e.getMessage().contains("negative size in [6, -1]"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> x.split(new int[]{5}, 2));
        }
    }

    @Test
    void noOffHeapLeakWithAnUnusedPart() {
        long before = Memory.bytesInUse();
        try (Var x = Var.param(Tensor.of(new float[]{1, 2, 3, 4, 5, 6}, 6))) {
            Var[] p = x.split(new int[]{2, 4}, 0);
            try (Var l = p[1].sum()) { l.backward(); }
            assertArrayEquals(new float[]{0, 0, 1, 1, 1, 1}, x.grad().toFloatArray());
            for (Var v : p) v.close();
        }
        assertEquals(before, Memory.bytesInUse());
    }
}
