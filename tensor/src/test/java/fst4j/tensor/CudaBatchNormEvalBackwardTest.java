package fst4j.tensor;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static fst4j.tensor.CudaCompare.assertClose;
import static fst4j.tensor.CudaCompare.assertSameBits;
import static fst4j.tensor.CudaCompare.randn;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Norm.batchNorm2dEvalBackward on CUDA (kernels bn_eval_bwd_part, bn_fold, bn_eval_bwd_stats, bn_eval_bwd_apply) against
 * the CPU loop: dx bit for bit at any size (one formula per element, 1 / sqrt(rv + eps) in double on both); dgamma and
 * dbeta bit for bit up to 256 values per channel (each partial sum one value, added in the CPU's order), within 1e-6
 * relative past that (the partial sums reorder the additions, as the training backward's do).
 */
class CudaBatchNormEvalBackwardTest extends CudaTensorTestBase {

    /** Positive running variances around 1, running means around 0 (fresh values, never the defaults 1 and 0). */
    private static Tensor variances(Random r, int c) {
        float[] v = new float[c];
        for (int i = 0; i < c; i++) v[i] = (float) (0.2 + 2 * r.nextDouble());
        return Tensor.of(v, c);
    }

    private void check(Random r, int n, int c, int h, int w, boolean affine, String what) {
        Tensor x = keep(randn(r, n, c, h, w)), dy = keep(randn(r, n, c, h, w));
        Tensor gamma = affine ? keep(randn(r, c)) : null, rm = keep(randn(r, c)), rv = keep(variances(r, c));
        double eps = 1e-5;
        Norm.BatchNormGrads cpu = Norm.batchNorm2dEvalBackward(dy, x, gamma, rm, rv, eps);
        Norm.BatchNormGrads dev = Norm.batchNorm2dEvalBackward(gpu(dy), gpu(x), gamma == null ? null : gpu(gamma), gpu(rm), gpu(rv), eps);
        try (cpu; dev) {
            assertSameBits(cpu.dx(), dev.dx(), what + " dx");
            if ((long) n * h * w <= 256) {
                assertSameBits(cpu.dgamma(), dev.dgamma(), what + " dgamma");
                assertSameBits(cpu.dbeta(), dev.dbeta(), what + " dbeta");
            } else {
                assertClose(cpu.dgamma(), dev.dgamma(), 1e-6, 1e-3, what + " dgamma");
                assertClose(cpu.dbeta(), dev.dbeta(), 1e-6, 1e-3, what + " dbeta");
            }
        }
    }

    @Test
    void matchesTheCpuAtAwkwardSizes() {
        Random r = new Random(71);
        check(r, 3, 5, 7, 11, true, "231 values per channel");
        check(r, 1, 1, 1, 1, true, "one value");
        check(r, 2, 3, 1, 1, false, "no gamma, 2 values per channel");
        check(r, 4, 3, 17, 19, true, "1292 values per channel");
        check(r, 2, 2, 64, 61, false, "7808 values per channel (folded partial sums), no gamma");
    }

    @Test
    void stridedInputsAndNonFiniteValuesAsOnTheCpu() {
        Random r = new Random(72);
        int n = 3, c = 4, h = 5, w = 6;
        // x and dy as permuted views of NHWC tensors, the per-channel vectors as strided slices
        Tensor xh = keep(randn(r, n, h, w, c)), dyh = keep(randn(r, n, h, w, c));
        float[] xv = xh.toFloatArray();
        xv[8] = Float.NaN; xv[50] = Float.POSITIVE_INFINITY;
        xh = keep(Tensor.of(xv, xh.shape()));
        Tensor stats = keep(randn(r, 3 * c)), vars = keep(variances(r, 2 * c));
        float[] vv = vars.toFloatArray();
        vv[2] = -1f;   // a negative running variance: 1 / sqrt(-1 + eps) is NaN on both
        vars = keep(Tensor.of(vv, 2 * c));
        Tensor x = keep(xh.permute(0, 3, 1, 2)), dy = keep(dyh.permute(0, 3, 1, 2));
        Tensor gamma = keep(stats.slice(0, 0, 3 * c, 3)), rm = keep(stats.slice(0, 1, 3 * c, 3)), rv = keep(vars.slice(0, 0, 2 * c, 2));
        Tensor sd = gpu(stats), vd = gpu(vars);
        Norm.BatchNormGrads cpu = Norm.batchNorm2dEvalBackward(dy, x, gamma, rm, rv, 1e-3);
        Norm.BatchNormGrads dev = Norm.batchNorm2dEvalBackward(keep(gpu(dyh).permute(0, 3, 1, 2)), keep(gpu(xh).permute(0, 3, 1, 2)),
                keep(sd.slice(0, 0, 3 * c, 3)), keep(sd.slice(0, 1, 3 * c, 3)), keep(vd.slice(0, 0, 2 * c, 2)), 1e-3);
        try (cpu; dev) {
            assertTrue(Double.isNaN(cpu.dgamma().toDoubleArray()[0]) && Double.isNaN(cpu.dx().toDoubleArray()[1 * h * w]),
                    "the test's NaN reached dgamma and the channel of the negative variance");
            assertSameBits(cpu.dx(), dev.dx(), "dx");
            assertSameBits(cpu.dgamma(), dev.dgamma(), "dgamma");
            assertSameBits(cpu.dbeta(), dev.dbeta(), "dbeta");
        }
    }

    @Test
    void emptyBatchesAndBadInputAsOnTheCpu() {
        Tensor x = keep(Tensor.zeros(0, 3, 4, 4)), rm = keep(Tensor.zeros(3)), rv = keep(Tensor.ones(3));
        Norm.BatchNormGrads cpu = Norm.batchNorm2dEvalBackward(x, x, null, rm, rv, 1e-5);
        Norm.BatchNormGrads dev = Norm.batchNorm2dEvalBackward(gpu(x), gpu(x), null, gpu(rm), gpu(rv), 1e-5);
        try (cpu; dev) {
            assertSameBits(cpu.dx(), dev.dx(), "dx of no images");
            assertSameBits(cpu.dgamma(), dev.dgamma(), "dgamma of no images");
            assertSameBits(cpu.dbeta(), dev.dbeta(), "dbeta of no images");
        }
        Random r = new Random(73);
        Tensor xd = gpu(keep(randn(r, 2, 3, 4, 4))), dyh = keep(randn(r, 2, 3, 4, 4));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Norm.batchNorm2dEvalBackward(dyh, xd, null, gpu(rm), gpu(rv), 1e-5));
        assertTrue(e.getMessage().contains("device mismatch") && e.getMessage().contains("batchNorm2dEvalBackward"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Norm.batchNorm2dEvalBackward(gpu(dyh), xd, null, gpu(keep(Tensor.zeros(4))), gpu(rv), 1e-5));
        assertTrue(e.getMessage().contains("channel mismatch"), e.getMessage());
    }
}
