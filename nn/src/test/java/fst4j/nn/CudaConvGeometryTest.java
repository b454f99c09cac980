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

    private static void assertNear(Tensor want, Tensor got, double tol, String what) {
        assertEquals(Device.CUDA, got.device(), what + ": device");
        float[] a = want.toFloatArray(), b = got.toFloatArray();
        assertEquals(a.length, b.length, what + ": sizes");
        double scale = 0, err = 0;
        for (int i = 0; i < a.length; i++) { scale = Math.max(scale, Math.abs(a[i])); err = Math.max(err, Math.abs(a[i] - b[i])); }
        assertTrue(err <= tol * Math.max(scale, 1e-6), what + ": max error " + err + " against max " + scale);
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
                    assertNear(yc.value(), yg.value(), 1e-5, what + " y");
                    Tensor gy = r.normal(0, 1, yc.shape());
                    yc.backward(gy);
                    yg.backward(gy.to(Device.CUDA));
                    assertNear(xc.grad(), xg.grad(), 1e-4, what + " dx");
                    assertNear(cpu.weight().grad(), gpu.weight().grad(), 1e-4, what + " dw");
                    assertNear(cpu.namedParameters().get("bias").grad(), gpu.namedParameters().get("bias").grad(), 1e-4, what + " db");
                }
            }
        }
    }
}
