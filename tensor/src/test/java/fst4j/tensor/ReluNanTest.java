package fst4j.tensor;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * ReLU keeps a NaN, as PyTorch's does (-0.0 becomes +0.0, negatives 0): alone, after a residual add and fused with batch
 * norm, on the Java loops (float64, small or strided tensors) and on the shim's (float32, from 4,096 elements). Until
 * session 31 every ReLU here mapped NaN to +0.0, so a NaN activation vanished before the loss. CudaTensorOpsTest
 * compares the device's kernels with these paths bit for bit.
 */
class ReluNanTest {
    private static void assertRelu(float in, double out, String what) {
        if (Float.isNaN(in)) assertTrue(Double.isNaN(out), what + ": NaN must stay NaN, got " + out);
        else if (in > 0) assertEquals(in, out, 0.0, what);
        else assertEquals(0L, Double.doubleToRawLongBits(out), what + ": " + in + " must become +0.0, got " + out);
    }

    @Test
    void reluAndAddReluKeepNaN() {
        try (Scope s = Scope.open()) {
            for (int n : new int[]{7, 8192}) {   // the Java loop, then the shim's
                float[] v = new float[n], zero = new float[n];
                for (int i = 0; i < n; i++) v[i] = (i % 5) - 2.5f;
                v[1] = Float.NaN; v[3] = -0.0f; v[n - 1] = Float.NaN;
                Tensor x = Tensor.of(v, n), z = Tensor.of(zero, n);
                float[] r = Elementwise.relu(x).toFloatArray(), ar = Elementwise.addRelu(x, z).toFloatArray();
                double[] r64 = Elementwise.relu(Tensor.of(toDoubles(v), n)).toDoubleArray();
                for (int i = 0; i < n; i++) {
                    assertRelu(v[i], r[i], "relu n=" + n + " at " + i);
                    assertRelu(v[i], r64[i], "relu float64 at " + i);
                    assertRelu(v[i] + 0f, ar[i], "addRelu n=" + n + " at " + i);   // -0 + 0 is +0
                }
            }
        }
    }

    @Test
    void batchNormFusedWithReluKeepsNaN() {
        try (Scope s = Scope.open()) {
            int n = 2, c = 3, hw = 4096;   // float32 takes the shim; float64 the Java loop
            for (DType dt : new DType[]{DType.F32, DType.F64}) {
                Tensor x = new Rng(4).normal(0, 1, n, c, 64, 64);
                if (dt == DType.F64) { Tensor d = Tensor.empty(DType.F64, n, c, 64, 64); d.copyFrom(x); x = d; }
                x.set(Double.NaN, 1, 1, 5, 7);   // channel 1 has a NaN: its mean is NaN, so all its outputs are
                Tensor g = Tensor.ones(c), b = Tensor.zeros(c), rm = Tensor.zeros(c), rv = Tensor.ones(c);
                double[] y;
                try (Norm.BatchNorm bn = Norm.batchNorm2dTrain(x, g, b, rm, rv, 0.1, 1e-5, true)) { y = bn.output().toDoubleArray(); }
                int nan = 0, zeros = 0;
                for (int i = 0; i < n; i++)
                    for (int ch = 0; ch < c; ch++)
                        for (int q = 0; q < hw; q++) {
                            double v = y[(i * c + ch) * hw + q];
                            if (ch == 1) { assertTrue(Double.isNaN(v), dt + ": channel 1 at " + q); nan++; }
                            else { assertTrue(v >= 0 && !Double.isNaN(v), dt + ": channel " + ch); if (v == 0) zeros++; }
                        }
                assertEquals(n * hw, nan);
                assertTrue(zeros > n * hw / 2, dt + ": the other channels' ReLU still zeroes their negatives");
            }
        }
    }

    private static double[] toDoubles(float[] v) {
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) d[i] = v[i];
        return d;
    }
}
