package fst4j.nn;

import fst4j.autograd.ConvParams;
import fst4j.autograd.NN;
import fst4j.autograd.NN.InterpolateMode;
import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.DType;
import fst4j.tensor.Device;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import static fst4j.nn.CudaConvGeometryTest.assertWithin;   // element i within 2 (k + 2) u mag[i]
import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * ConvTranspose2d and Upsample on CUDA: composed of ops that run there (CUDA SGEMM, im2col / col2im with dilation,
 * permutes and copies; the row gathers and scatters of embedding), they give the CPU's output and gradients on the
 * device. Against the device or the host emulator (skipped with the reason otherwise). Float64 on CUDA is refused by name.
 */
class CudaConvTransposeUpsampleTest {
    @BeforeEach
    void needsCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    /** cin, cout, kh, kw, sh, sw, ph, pw, oph, opw, dh, dw, groups */
    static final int[][] CASES = {{4, 6, 3, 2, 2, 3, 1, 0, 1, 2, 1, 1, 2}, {5, 3, 2, 3, 1, 1, 0, 1, 1, 0, 2, 2, 1}, {8, 4, 4, 4, 2, 2, 1, 1, 0, 0, 1, 1, 1}};

    @Test
    void convTransposeOnCudaMatchesTheCpu() {
        for (int[] c : CASES) {
            String what = java.util.Arrays.toString(c);
            ConvParams p = new ConvParams(c[4], c[5], c[6], c[7], c[10], c[11], c[12]);
            int[] k = {c[2], c[3]}, op = {c[8], c[9]};
            try (Scope s = Scope.open(); ConvTranspose2d cpu = new ConvTranspose2d(c[0], c[1], k, p, op, true, new Rng(1));
                 ConvTranspose2d gpu = new ConvTranspose2d(c[0], c[1], k, p, op, true, new Rng(1));
                 ConvTranspose2d abs = new ConvTranspose2d(c[0], c[1], k, p, op, true, new Rng(1))) {
                gpu.to(Device.CUDA);
                Rng r = new Rng(2);
                Tensor x = r.normal(0, 1, 3, c[0], 5, 4);
                Var xc = Var.of(x).requiresGrad(true), xg = Var.of(x.to(Device.CUDA)).requiresGrad(true);
                Var yc = cpu.forward(xc), yg = gpu.forward(xg);
                Tensor gy = r.normal(0, 1, yc.shape());
                abs.weight().value().copyFrom(cpu.weight().value().abs());
                abs.namedParameters().get("bias").value().copyFrom(cpu.namedParameters().get("bias").value().abs());
                Var xa = Var.of(x.abs()).requiresGrad(true), ya = abs.forward(xa);
                ya.backward(gy.abs());
                int[] ys = yc.shape();
                long kY = (long) c[0] / c[12] * c[2] * c[3] + 1, kX = (long) c[1] / c[12] * c[2] * c[3], kW = 3L * 5 * 4, kB = (long) ys[0] * ys[2] * ys[3];
                assertWithin(yc.value(), yg.value(), ya.value().toFloatArray(), kY, what + " y");
                yc.backward(gy);
                yg.backward(gy.to(Device.CUDA));
                assertWithin(xc.grad(), xg.grad(), xa.grad().toFloatArray(), kX, what + " dx");
                assertWithin(cpu.weight().grad(), gpu.weight().grad(), abs.weight().grad().toFloatArray(), kW, what + " dw");
                assertWithin(cpu.namedParameters().get("bias").grad(), gpu.namedParameters().get("bias").grad(),
                        abs.namedParameters().get("bias").grad().toFloatArray(), kB, what + " db");
            }
        }
    }

    @Test
    void upsampleOnCudaMatchesTheCpu() {
        // bicubic's negative weights make the output on |x| no bound (CudaInterpolateModesTest compares every mode's bits)
        for (InterpolateMode m : java.util.EnumSet.complementOf(java.util.EnumSet.of(InterpolateMode.BICUBIC)))
            for (boolean align : m.takesAlignCorners() ? new boolean[]{false, true} : new boolean[]{false})
                for (Upsample up : new Upsample[]{Upsample.size(7, 10, m, align), Upsample.scale(2, 0.6, m, align)}) {
                    try (Scope s = Scope.open()) {
                        Rng r = new Rng(3);
                        Tensor x = r.normal(0, 1, 2, 3, 4, 5);
                        Var xc = Var.of(x).requiresGrad(true), xg = Var.of(x.to(Device.CUDA)).requiresGrad(true);
                        Var yc = up.forward(xc), yg = up.forward(xg);
                        Tensor gy = r.normal(0, 1, yc.shape());
                        Var xa = Var.of(x.abs()).requiresGrad(true), ya = up.forward(xa);
                        ya.backward(gy.abs());
                        yc.backward(gy);
                        yg.backward(gy.to(Device.CUDA));
                        String what = m + (align ? " align_corners " : " ") + java.util.Arrays.toString(yc.shape());
                        assertWithin(yc.value(), yg.value(), ya.value().toFloatArray(), 6, what + " y");
                        assertWithin(xc.grad(), xg.grad(), xa.grad().toFloatArray(), 4L * 7 * 10, what + " dx");
                    }
                }
    }

    @Test
    void float64OnCudaIsRefusedByName() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.zeros(Device.CUDA, DType.F64, 1, 2, 3, 3), w = Tensor.zeros(Device.CUDA, DType.F64, 2, 2, 3, 3);
            UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, () -> NN.convTranspose2d(Var.of(x), Var.of(w), null, 1, 0, 0, 1, 1));
            assertTrue(e.getMessage().contains("convTranspose2d on CUDA supports float32 only"), e.getMessage());
            // interpolate (and Upsample) refuse it by their own name, resized or not (NEAREST at the same size gathers nothing)
            for (int[] size : new int[][]{{5, 4}, {3, 3}})
                for (NN.InterpolateMode mode : NN.InterpolateMode.values()) {
                    e = assertThrows(UnsupportedOperationException.class, () -> NN.interpolate(Var.of(x), size[0], size[1], mode, false));
                    assertTrue(e.getMessage().contains("interpolate on CUDA supports float32 only"), mode + " to " + size[0] + "x" + size[1] + ": " + e.getMessage());
                }
            e = assertThrows(UnsupportedOperationException.class, () -> Upsample.scale(2, 2, NN.InterpolateMode.BILINEAR, true).forward(Var.of(x)));
            assertTrue(e.getMessage().contains("interpolate on CUDA supports float32 only"), e.getMessage());
        }
    }
}
