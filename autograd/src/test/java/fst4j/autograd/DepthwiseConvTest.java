package fst4j.autograd;

import fst4j.shim.Native;
import fst4j.tensor.DType;
import fst4j.tensor.DepthwiseConv;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.lang.foreign.MemorySegment;

import static fst4j.autograd.OpsGradTest.rand;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The depthwise path (DepthwiseConv2d: the C loops in float32, Java's in float64) of dense layers with groups == Cin:
 * float32 output, dX, dW and dBias equal the general path's (per-group GEMMs) and the float64 general path's within
 * 1e-5 of each tensor's largest magnitude (the sums run in another order: taps then bias per output, float lanes then a
 * double per image for dW), float64 values equal the direct summation of torch's definition, float64 gradcheck, the
 * path taken only by dense layers, and bad input refused by name.
 */
class DepthwiseConvTest {
    /** n, c, mult, h, w, kh, kw, sh, sw, ph, pw, dh, dw: odd sizes, rows shorter and longer than the C's 8 lanes, 49 taps (two passes of 32) */
    static final String GEOMETRIES = """
            3,5,1,13,11,3,3,1,1,1,1,1,1
            2,7,1,10,9,3,3,2,2,1,1,1,1
            2,3,1,9,17,5,3,2,1,2,1,1,2
            2,4,2,8,7,3,3,1,1,0,0,1,1
            1,3,3,12,21,3,3,3,2,4,4,2,1
            1,3,1,15,14,7,7,1,1,3,3,1,1
            2,6,1,20,37,3,3,1,1,1,1,2,2
            1,2,2,6,33,1,5,1,3,0,2,1,1
            1,1,4,5,5,3,3,1,1,1,0,1,1
            """;

    private static ConvParams params(int c, int sh, int sw, int ph, int pw, int dh, int dw) { return new ConvParams(sh, sw, ph, pw, dh, dw, c); }

    /** y, dX, dW, dBias of sum(y * G) through NN.conv2d on the given path; asserts which node ran. */
    private static double[][] run(boolean depthwise, Tensor x, Tensor w, Tensor b, Tensor gy, ConvParams p) {
        boolean was = Layers.depthwisePath;
        Layers.depthwisePath = depthwise;
        try (Scope s = Scope.open()) {
            Var xv = Var.param(x), wv = Var.param(w), bv = Var.param(b);
            Var y = NN.conv2d(xv, wv, bv, p);
            assertEquals(depthwise, y.gradFn() instanceof DepthwiseConv2d, "node " + y.gradFn());
            y.backward(gy);
            return new double[][]{y.value().toDoubleArray(), xv.grad().toDoubleArray(), wv.grad().toDoubleArray(), bv.grad().toDoubleArray()};
        } finally {
            Layers.depthwisePath = was;
        }
    }

    private static void close(double[] want, double[] got, double rel, String what) {
        assertEquals(want.length, got.length, what);
        double max = 0;
        for (double v : want) max = Math.max(max, Math.abs(v));
        for (int i = 0; i < want.length; i++) assertEquals(want[i], got[i], rel * Math.max(max, 1e-30), what + " at " + i);
    }

    @ParameterizedTest
    @CsvSource(textBlock = GEOMETRIES)
    void float32EqualsTheGeneralPath(int n, int c, int mult, int h, int wd, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw) {
        ConvParams p = params(c, sh, sw, ph, pw, dh, dw);
        try (Scope s = Scope.open()) {
            Tensor x = rand(11, n, c, h, wd), w = rand(12, c * mult, 1, kh, kw), b = rand(13, c * mult);
            int ho = fst4j.tensor.Conv.outSize(h, kh, sh, ph, dh), wo = fst4j.tensor.Conv.outSize(wd, kw, sw, pw, dw);
            Tensor gy = rand(14, n, c * mult, ho, wo);
            double[][] ref = run(false, x, w, b, gy, p);   // float64, the general path's GEMMs in Java
            double[][] dw32 = run(true, x.to(DType.F32), w.to(DType.F32), b.to(DType.F32), gy.to(DType.F32), p);
            double[][] gen32 = run(false, x.to(DType.F32), w.to(DType.F32), b.to(DType.F32), gy.to(DType.F32), p);
            String[] what = {"y", "dX", "dW", "dBias"};
            for (int k = 0; k < 4; k++) {
                close(ref[k], dw32[k], 1e-5, what[k] + " against float64");
                close(gen32[k], dw32[k], 1e-5, what[k] + " against the float32 general path");
            }
            double[] direct = GeneralConvTest.direct(x.toDoubleArray(), x.shape(), w.toDoubleArray(), w.shape(), b.toDoubleArray(), p);
            close(direct, run(true, x, w, b, gy, p)[0], 1e-13, "float64 y against the definition");
        }
    }

    @ParameterizedTest
    @CsvSource(textBlock = GEOMETRIES)
    void gradcheckFloat64(int n, int c, int mult, int h, int wd, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw) {
        ConvParams p = params(c, sh, sw, ph, pw, dh, dw);
        if ((long) n * c * h * wd > 600) return;   // gradcheck is O(elements^2): the small geometries
        try (Scope s = Scope.open()) {
            NNGradTest.ok(v -> {
                Var y = NN.conv2d(v[0], v[1], v[2], p);
                if (y.gradFn() != null) assertInstanceOf(DepthwiseConv2d.class, y.gradFn());   // null: gradcheck's evaluations without a graph
                return y;
            }, rand(21, n, c, h, wd), rand(22, c * mult, 1, kh, kw), rand(23, c * mult));
            NNGradTest.ok(v -> NN.conv2d(v[0], v[1], null, p), rand(24, n, c, h, wd), rand(25, c * mult, 1, kh, kw));
        }
    }

    @Test
    void onlyDenseLayersTakeIt() {
        ConvParams p = new ConvParams(1, 1, 1, 1, 1, 1, 8);
        try (Scope s = Scope.open()) {
            Tensor x = rand(31, 2, 8, 6, 6).to(DType.F32), w = rand(32, 8, 1, 3, 3).to(DType.F32);
            assertInstanceOf(DepthwiseConv2d.class, Layers.conv2d(new Gemm3(SparseConfig.Method.DENSE.config()), Var.param(x), Var.param(w), null, p).gradFn());
            // a sparse preset's Eq. 1-3 products (S(W): 2 + 2 + 1 of 9 kept per channel, the shifted dY, ...) are the node's
            for (SparseConfig.Method m : new SparseConfig.Method[]{SparseConfig.Method.FST3_IR, SparseConfig.Method.SR_STE, SparseConfig.Method.FST2})
                assertInstanceOf(GeneralConv2d.class, Layers.conv2d(new Gemm3(m.config()), Var.param(x), Var.param(w), null, p).gradFn(), m.name());
            // grouped but not depthwise: the general path
            assertInstanceOf(GeneralConv2d.class, NN.conv2d(Var.param(x), Var.param(rand(33, 8, 2, 3, 3).to(DType.F32)), null,
                    new ConvParams(1, 1, 1, 1, 1, 1, 4)).gradFn());
        }
    }

    @Test
    void emptyBatch() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.zeros(0, 4, 6, 6)), w = Var.param(Tensor.ones(8, 1, 3, 2)), b = Var.param(Tensor.ones(8));
            Var y = NN.conv2d(x, w, b, new ConvParams(1, 2, 1, 0, 2, 1, 4));
            assertInstanceOf(DepthwiseConv2d.class, y.gradFn());
            assertArrayEquals(new int[]{0, 8, 4, 3}, y.shape());
            y.sum().backward();
            assertArrayEquals(new int[]{0, 4, 6, 6}, x.grad().shape());
            for (float v : w.grad().toFloatArray()) assertEquals(0f, v);
            for (float v : b.grad().toFloatArray()) assertEquals(0f, v);
        }
    }

    @Test
    void badInputIsRefusedByName() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.zeros(2, 4, 6, 6), w = Tensor.zeros(4, 1, 3, 3);
            var e = assertThrows(IllegalArgumentException.class, () -> DepthwiseConv.forward(x, Tensor.zeros(4, 2, 3, 3), null, 1, 1, 1, 1, 1, 1));
            assertTrue(e.getMessage().contains("[C * mult, 1, kh, kw]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> DepthwiseConv.forward(x, Tensor.zeros(6, 1, 3, 3), null, 1, 1, 1, 1, 1, 1));
            assertTrue(e.getMessage().contains("shape mismatch"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> DepthwiseConv.forward(x, w.to(DType.F64), null, 1, 1, 1, 1, 1, 1));
            assertTrue(e.getMessage().contains("dtype mismatch"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> DepthwiseConv.forward(x, w, Tensor.zeros(5), 1, 1, 1, 1, 1, 1));
            assertTrue(e.getMessage().contains("bias"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> DepthwiseConv.forward(x, Tensor.zeros(4, 1, 5, 5), null, 1, 1, 0, 0, 2, 2));
            assertTrue(e.getMessage().contains("larger than padded input"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> DepthwiseConv.inputGrad(Tensor.zeros(2, 4, 5, 6), w, x.shape(), 1, 1, 1, 1, 1, 1));
            assertTrue(e.getMessage().contains("dy [2, 4, 5, 6], expected [2, 4, 6, 6]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> DepthwiseConv.weightGrad(x, Tensor.zeros(2, 4, 6, 5), 3, 3, 1, 1, 1, 1, 1, 1, true, true));
            assertTrue(e.getMessage().contains("shape mismatch"), e.getMessage());
            // the shim checks its own arguments: an output size the geometry does not give, a null pointer, no threads
            long[] good = {2, 4, 1, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 6, 6}, bad = good.clone();
            bad[13] = 7;
            try (Tensor y = Tensor.zeros(2, 4, 7, 6)) {
                e = assertThrows(IllegalArgumentException.class, () -> Native.dwconvForward(bad, x.data(), w.data(), MemorySegment.NULL, y.data(), 1));
                assertTrue(e.getMessage().contains("fst_dwconv_fwd rejected"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class, () -> Native.dwconvForward(good, MemorySegment.NULL, w.data(), MemorySegment.NULL, y.data(), 1));
                assertTrue(e.getMessage().contains("null pointer"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class, () -> Native.dwconvInputGrad(good, y.data(), w.data(), x.data(), 0));
                assertTrue(e.getMessage().contains("fst_dwconv_dx"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class, () -> Native.dwconvWeightGrad(good, x.data(), y.data(), MemorySegment.NULL, MemorySegment.NULL, 1));
                assertTrue(e.getMessage().contains("fst_dwconv_dw"), e.getMessage());
            }
        }
    }
}
