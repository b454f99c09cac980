package fst4j.autograd;

import fst4j.tensor.DType;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Every preset runs a layer in float64, forward and backward, with the float32 run's gradients on the same values (the
 * float32 values widened: the same kept sets): FST3_IR, FST_CODE and FST3_IR_PATTERNS failed at backward ("shiftAdd needs
 * float32"), so their layers could not be gradient-checked or run in float64 (found by a usability trial).
 */
class Float64PresetsTest {
    @ParameterizedTest
    @EnumSource(SparseConfig.Method.class)
    void aLinearAndAConvolutionRunInFloat64WithTheFloat32Gradients(SparseConfig.Method m) {
        for (boolean conv : new boolean[]{false, true}) {
            double[][] f32 = run(m, conv, DType.F32), f64 = run(m, conv, DType.F64);
            for (int i = 0; i < f32.length; i++) {
                double scale = 0;
                for (double v : f32[i]) scale = Math.max(scale, Math.abs(v));
                assertEquals(f32[i].length, f64[i].length);
                for (int j = 0; j < f32[i].length; j++)
                    assertEquals(f32[i][j], f64[i][j], 1e-5 * Math.max(scale, 1e-30), m + (conv ? " conv" : " linear") + " output " + i + " at " + j);
            }
        }
    }

    /** y, dX and dW of one layer (fresh config: stateful rules start alike) on float32 values, in dtype. */
    private static double[][] run(SparseConfig.Method m, boolean conv, DType dtype) {
        try (Scope s = Scope.open()) {
            Tensor w0 = conv ? new Rng(0).normal(0, 1, 8, 4, 3, 3) : new Rng(0).normal(0, 1, 8, 16);
            Tensor x0 = conv ? new Rng(1).normal(0, 1, 2, 4, 6, 6) : new Rng(1).normal(0, 1, 6, 16);
            Var w = Var.param(w0.to(dtype)), x = Var.param(x0.to(dtype));
            Gemm3 node = new Gemm3(m.config());
            Var y = conv ? Layers.conv2d(node, x, w, null, 1, 1) : Layers.linear(node, x, w, null);
            assertEquals(dtype, y.value().dtype(), m + ": the output's dtype");
            Tensor g = new Rng(2).normal(0, 1, y.shape()).to(dtype);
            y.backward(g);
            assertEquals(dtype, w.grad().dtype());
            return new double[][]{y.value().toDoubleArray(), x.grad().toDoubleArray(), w.grad().toDoubleArray()};
        }
    }
}
