package fst4j.autograd;

import fst4j.tensor.Memory;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A grouped, dilated convolution under a preset whose Eq. 2 takes W^T from S(W) (wtFromSparse) leaks nothing off-heap
 * when a group's Eq. 1 work fails: a failure injected through Profile's barrier (run at every section start and stop)
 * at each of GeneralConv2d's section boundaries (each group's im2col and Eq. 1 product, and the output's permute; start
 * and stop, a stop failing after its section made a tensor) leaves Memory.bytesInUse() where it was; S(W)'s alias from
 * prepareForwardGroups (which PreparedGroups.close() leaves to the caller) included.
 */
class GeneralConvFailureLeakTest {
    static final class Injected extends RuntimeException {
        Injected() { super("injected failure"); }
    }

    /** Whether the barrier's caller (Profile.start / stop's caller) is GeneralConv2d. */
    private static boolean fromGeneralConv() {
        return StackWalker.getInstance().walk(f -> f.skip(1).dropWhile(s -> !s.getClassName().equals(Profile.class.getName()))
                .dropWhile(s -> s.getClassName().equals(Profile.class.getName())).findFirst()
                .map(s -> s.getClassName().equals(GeneralConv2d.class.getName())).orElse(false));
    }

    @Test
    void aGroupThatFailsLeavesNoTensorBehind() {
        SparseConfig cfg = SparseConfig.Method.FST3_IR.config().withWtFromSparse(true);
        ConvParams p = new ConvParams(1, 1, 2, 1, 2, 1, 2);
        // 2 groups x (im2col start, stop, Eq. 1 start, stop), then the output permute's start and stop
        int boundaries = 2 * 4 + 2;
        try (Scope s = Scope.open()) {
            Rng r = new Rng(7);
            Tensor x = r.normal(0, 1, 2, 8, 7, 6), w = r.normal(0, 1, 16, 4, 3, 3);
            Var xv = Var.of(x), wv = Var.of(w).requiresGrad(true);
            for (int k = 1; k <= boundaries; k++) {
                final int at = k;
                int[] calls = {0};
                long before = Memory.bytesInUse();
                Profile.setBarrier(() -> { if (fromGeneralConv() && ++calls[0] == at) throw new Injected(); });
                try {
                    // unowned (no scope closes what a failure leaves behind)
                    Var y = Scope.within(null, () -> Layers.conv2d(new Gemm3(cfg), xv, wv, null, p));
                    y.close();
                    fail("no failure at boundary " + k + " of GeneralConv2d's " + calls[0]);
                } catch (Injected e) {
                    // expected
                } finally {
                    Profile.setBarrier(null);
                }
                assertEquals(before, Memory.bytesInUse(), "bytes left in use after a failure at GeneralConv2d's section boundary " + k);
            }
        }
    }
}
