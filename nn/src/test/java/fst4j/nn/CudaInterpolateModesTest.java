package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.NN.InterpolateMode;
import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.CudaMemory;
import fst4j.tensor.Device;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Every interpolation mode on CUDA float32 gives the CPU's bits, output and input gradient: the separable modes are row
 * gathers (whose scatter-add backward sums in double in position order on either device), elementwise products and
 * sums, the same on both; 'area' is adaptive average pooling, whose CUDA kernels match the CPU's bit for bit. Up, down,
 * non-integer factors, by size and by scale factor, a 1-pixel input, through nn.Upsample (its cached device weights)
 * and the functional form. Against the device or the host emulator (skipped with the reason otherwise).
 */
class CudaInterpolateModesTest {
    @BeforeEach
    void needsCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    /** n, c, h, w, then outH, outW (by size) */
    static final int[][] SIZED = {{2, 3, 5, 4, 11, 7}, {1, 2, 9, 8, 4, 3}, {1, 1, 1, 1, 3, 5}, {2, 1, 6, 6, 6, 6}};
    /** n, c, h, w with the scale factors of SCALES at the same index */
    static final int[][] SCALED = {{1, 2, 5, 7}, {2, 1, 8, 3}};
    static final double[][] SCALES = {{1.7, 0.45}, {0.6, 2.5}};

    @Test
    void everyModeOnCudaGivesTheCpusBits() {
        long dev = CudaMemory.stats().bytesInUse();
        for (InterpolateMode m : InterpolateMode.values())
            for (boolean align : m.takesAlignCorners() ? new boolean[]{false, true} : new boolean[]{false}) {
                for (int[] c : SIZED) {
                    try (Upsample up = Upsample.size(c[4], c[5], m, align)) {
                        same(up, m, align, c, x -> NN.interpolate(x, c[4], c[5], m, align), m + (align ? " align_corners " : " ") + java.util.Arrays.toString(c));
                    }
                }
                for (int i = 0; i < SCALED.length; i++) {
                    int[] c = SCALED[i];
                    double[] sc = SCALES[i];
                    try (Upsample up = Upsample.scale(sc[0], sc[1], m, align)) {
                        same(up, m, align, c, x -> NN.interpolateScale(x, sc[0], sc[1], m, align),
                                m + (align ? " align_corners " : " ") + java.util.Arrays.toString(c) + " by " + sc[0] + "x" + sc[1]);
                    }
                }
            }
        assertEquals(dev, CudaMemory.stats().bytesInUse(), "modules closed, scopes closed: no device memory left behind");
    }

    /** The module and the functional form, each on the CPU and on CUDA: all four outputs and gradients with the same bits. */
    private static void same(Upsample up, InterpolateMode m, boolean align, int[] c, java.util.function.UnaryOperator<Var> f, String what) {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(11);
            Tensor x = r.normal(0, 1, c[0], c[1], c[2], c[3]);
            Var xc = Var.of(x).requiresGrad(true), xg = Var.of(x.to(Device.CUDA)).requiresGrad(true);
            Var xf = Var.of(x.to(Device.CUDA)).requiresGrad(true);
            Var yc = up.forward(xc), yg = up.forward(xg), yf = f.apply(xf);
            assertEquals(Device.CUDA, yg.value().device(), what);
            Tensor gy = r.normal(0, 1, yc.shape());
            yc.backward(gy);
            yg.backward(gy.to(Device.CUDA));
            yf.backward(gy.to(Device.CUDA));
            assertArrayEquals(yc.shape(), yg.shape(), what + " shape");
            assertBits(yc.value(), yg.value(), what + " y (Upsample)");
            assertBits(yc.value(), yf.value(), what + " y (functional)");
            assertBits(xc.grad(), xg.grad(), what + " dx (Upsample)");
            assertBits(xc.grad(), xf.grad(), what + " dx (functional)");
        }
    }

    private static void assertBits(Tensor want, Tensor got, String what) {
        float[] a = want.toFloatArray(), b = got.toFloatArray();
        assertEquals(a.length, b.length, what + ": sizes");
        for (int i = 0; i < a.length; i++)
            if (Float.floatToRawIntBits(a[i]) != Float.floatToRawIntBits(b[i])) fail(what + " at " + i + ": CPU " + a[i] + ", CUDA " + b[i]);
    }
}
