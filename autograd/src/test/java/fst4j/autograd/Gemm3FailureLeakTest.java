package fst4j.autograd;

import fst4j.tensor.Memory;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A failure at any profiled section boundary of a layer's pass (Gemm3's, Layers', the engine's) (injected through Profile's barrier, which runs at every
 * section start and stop: on CUDA it is the device synchronisation that reports a failed kernel) leaves no off-heap
 * tensor behind, in the forward and the backward pass of a linear and a convolution layer, under each preset. A stop that
 * fails after its section made a tensor (S(W), the compressed operand) is the case the {@code finally} blocks missed.
 */
class Gemm3FailureLeakTest {
    static final class Injected extends RuntimeException {
        Injected() { super("injected failure"); }
    }

    /** One forward and backward pass; the output and the graph closed whatever happens. */
    private static void pass(SparseConfig cfg, Var x, Var w, int kind, Tensor gy) {
        Var y = Scope.within(null, () -> switch (kind) {
            case 0 -> Layers.linear(new Gemm3(cfg), x, w, null);
            case 1 -> Layers.conv2d(new Gemm3(cfg), x, w, null, 1, 1);
            default -> Layers.conv2d(new Gemm3(cfg), x, w, null, ConvParams.of(1, 1, 1, 8));   // depthwise (DENSE: direct loops)
        });
        try {
            y.backward(gy);
        } finally {
            y.freeGraph();
            y.close();
        }
    }

    @ParameterizedTest
    @EnumSource(value = SparseConfig.Method.class, names = {"DENSE", "SR_STE", "FST2", "FST3_IR", "FST_CODE", "TSM", "GG"})
    void aFailureAtAnyBoundaryLeavesNoTensorBehind(SparseConfig.Method m) {
        for (SparseConfig cfg : new SparseConfig[]{m.config(), m.config().withWtFromSparse(true)}) {
            for (int kind = 0; kind < 3; kind++) {
                boolean conv = kind > 0;
                if (kind == 2 && m == SparseConfig.Method.TSM) continue;   // refused: groups of 1 channel cut its 4x4 blocks
                try (Scope s = Scope.open()) {
                    Rng r = new Rng(11);
                    Tensor xt = conv ? r.normal(0, 1, 2, 8, 6, 6) : r.normal(0, 1, 12, 16), wt = kind == 2 ? r.normal(0, 1, 8, 1, 3, 3) : conv ? r.normal(0, 1, 8, 8, 3, 3) : r.normal(0, 1, 8, 16);
                    Var x = Var.of(xt).requiresGrad(true), w = Var.of(wt).requiresGrad(true);
                    Tensor gy = conv ? r.normal(0, 1, 2, 8, 6, 6) : r.normal(0, 1, 12, 8);
                    int[] count = {0};
                    Profile.setBarrier(() -> { count[0]++; });
                    try { pass(cfg, x, w, kind, gy); } finally { Profile.setBarrier(null); }
                    x.zeroGrad(); w.zeroGrad();
                    int boundaries = count[0];
                    assertTrue(boundaries >= 4, "the pass crossed only " + boundaries + " boundaries");
                    for (int k = 1; k <= boundaries; k++) {
                        final int at = k;
                        int[] calls = {0};
                        long before = Memory.bytesInUse();
                        Profile.setBarrier(() -> { if (++calls[0] == at) throw new Injected(); });
                        try {
                            pass(cfg, x, w, kind, gy);
                            fail("no failure at boundary " + k + " of " + boundaries);
                        } catch (Injected e) {
                            // expected
                        } finally {
                            Profile.setBarrier(null);
                        }
                        x.zeroGrad(); w.zeroGrad();
                        assertEquals(before, Memory.bytesInUse(), m + (cfg.wtFromSparse() ? " (W^T from S(W))" : "") + (kind == 2 ? " depthwise" : conv ? " conv" : " linear")
                                + ": bytes left in use after a failure at the pass's profiled boundary " + k + " of " + boundaries);
                    }
                }
            }
        }
    }
}
