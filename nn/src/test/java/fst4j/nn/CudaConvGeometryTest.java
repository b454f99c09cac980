package fst4j.nn;

import fst4j.autograd.ConvParams;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.Device;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The general convolution on CUDA (grouped, depthwise, non-square kernel, stride and padding): the same decomposition as
 * on the CPU (CUDA im2col / col2im per group, the node's GEMMs on the device), against the CPU layer: output and the
 * gradients of input, weight and bias, dense and FST3_IR; dilated layers (the CUDA im2col / col2im with dilation) among
 * them, grouped, depthwise and non-square. Against the device or the host emulator (skipped with the reason otherwise).
 */
class CudaConvGeometryTest {
    @BeforeEach
    void needsCuda() {
        System.out.println("CUDA back end: " + Cuda.status());
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    /**
     * Element i within 2 (k + 2) u mag[i]: each side sums at most k products (and the bias) in its own order, within
     * Higham's (k + 2) u of the sum of the terms' magnitudes mag[i] from the exact value. mag is the same layer run on
     * the CPU with |x|, |w|, |b| and |dy| (magnitude 2:4 keeps the same positions of |w| as of w, so FST3_IR's products
     * are the same terms' magnitudes). (It was a fraction of the tensor's largest value: 1e-4 of it for the gradients.)
     */
    static void assertWithin(Tensor want, Tensor got, float[] mag, long k, String what) {
        assertEquals(Device.CUDA, got.device(), what + ": device");
        float[] a = want.toFloatArray(), b = got.toFloatArray();
        assertEquals(a.length, b.length, what + ": sizes");
        for (int i = 0; i < a.length; i++) {
            double bound = 2 * (k + 2) * 0x1p-24 * mag[i];
            if (!(Math.abs((double) b[i] - a[i]) <= bound)) fail(what + " at " + i + ": " + b[i] + " on CUDA, " + a[i] + " on the CPU (allowed " + bound + ")");
        }
    }

    /** cin, cout, kh, kw, sh, sw, ph, pw, groups, dh, dw */
    static final int[][] CASES = {{8, 16, 3, 3, 1, 1, 1, 1, 2, 1, 1}, {8, 8, 3, 3, 2, 2, 1, 1, 8, 1, 1}, {4, 8, 3, 2, 2, 1, 0, 1, 1, 1, 1},
            {12, 8, 1, 1, 1, 1, 0, 0, 4, 1, 1}, {4, 8, 3, 3, 1, 1, 2, 2, 1, 2, 2}, {8, 8, 3, 3, 2, 1, 2, 1, 8, 2, 1}, {4, 8, 2, 3, 1, 2, 1, 2, 2, 3, 2}};

    @Test
    void groupedDilatedAndNonSquareConvolutionsOnCudaMatchTheCpu() {
        for (SparseConfig.Method m : new SparseConfig.Method[]{SparseConfig.Method.DENSE, SparseConfig.Method.FST3_IR}) {
            for (int[] c : CASES) {
                String what = m + " " + java.util.Arrays.toString(c);
                ConvParams p = new ConvParams(c[4], c[5], c[6], c[7], c[9], c[10], c[8]);
                try (Scope s = Scope.open(); Conv2d cpu = new Conv2d(c[0], c[1], new int[]{c[2], c[3]}, p, true, m.config(), new Rng(1));
                     Conv2d gpu = new Conv2d(c[0], c[1], new int[]{c[2], c[3]}, p, true, m.config(), new Rng(1))) {
                    gpu.to(Device.CUDA);
                    Rng r = new Rng(2);
                    Tensor x = r.normal(0, 1, 3, c[0], 9, 8);
                    Var xc = Var.of(x).requiresGrad(true), xg = Var.of(x.to(Device.CUDA)).requiresGrad(true);
                    Var yc = cpu.forward(xc), yg = gpu.forward(xg);
                    Tensor gy = r.normal(0, 1, yc.shape());
                    float[][] mag;
                    try (Conv2d abs = new Conv2d(c[0], c[1], new int[]{c[2], c[3]}, p, true, m.config(), new Rng(1))) {
                        abs.weight().value().copyFrom(cpu.weight().value().abs());
                        abs.namedParameters().get("bias").value().copyFrom(cpu.namedParameters().get("bias").value().abs());
                        Var xa = Var.of(x.abs()).requiresGrad(true), ya = abs.forward(xa);
                        ya.backward(gy.abs());
                        mag = new float[][]{ya.value().toFloatArray(), xa.grad().toFloatArray(), abs.weight().grad().toFloatArray(),
                                abs.namedParameters().get("bias").grad().toFloatArray()};
                    }
                    int[] ys = yc.shape();
                    long kY = (long) c[0] / c[8] * c[2] * c[3] + 1, kX = (long) c[1] / c[8] * c[2] * c[3], kW = (long) ys[0] * ys[2] * ys[3];
                    assertWithin(yc.value(), yg.value(), mag[0], kY, what + " y");
                    yc.backward(gy);
                    yg.backward(gy.to(Device.CUDA));
                    assertWithin(xc.grad(), xg.grad(), mag[1], kX, what + " dx");
                    assertWithin(cpu.weight().grad(), gpu.weight().grad(), mag[2], kW, what + " dw");
                    assertWithin(cpu.namedParameters().get("bias").grad(), gpu.namedParameters().get("bias").grad(), mag[3], kW, what + " db");
                }
            }
        }
    }
}
