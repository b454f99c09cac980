package fst4j.tensor;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.junit.jupiter.api.Assertions.*;

/** The C im2col / col2im / im2colAt equal the Java reference exactly, at awkward geometries. */
class ConvNativeTest {
    @ParameterizedTest
    @CsvSource({"1,1,1,1,1,1,0", "2,3,7,5,3,1,1", "3,2,6,9,3,2,1", "2,4,5,5,5,2,2", "1,3,8,7,1,2,0", "2,5,17,13,3,1,0", "64,3,4,4,3,1,1", "2,3,1,1,3,1,1", "2,2,3,2,5,1,2", "3,4,2,3,5,1,2", "2,3,9,1,3,1,1", "2,3,1,9,3,1,1", "1,2,6,6,7,1,3", "200,3,4,4,3,1,1", "90,5,6,7,3,2,1", "33,7,9,9,3,1,1", "4,7,1,13,5,1,2", "3,2,2,1,5,1,2", "2,3,1,1,5,1,2"})
    void nativeEqualsJava(int n, int c, int h, int w, int k, int stride, int pad) {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(n * 1000L + c * 100 + h);
            Tensor x = r.normal(0, 1, n, c, h, w);
            Conv.nativeLowering = false;
            Tensor colsJ = Conv.im2col(x, k, k, stride, stride, pad, pad);
            int ho = Conv.outSize(h, k, stride, pad), wo = Conv.outSize(w, k, stride, pad);
            int[] pos = java.util.stream.IntStream.range(0, ho * wo).filter(p -> p % 2 == 0).toArray();
            Tensor atJ = Conv.im2colAt(x, pos, k, k, stride, stride, pad, pad);
            Tensor g = r.normal(0, 1, colsJ.shape());
            Tensor dxJ = Conv.col2im(g, x.shape(), k, k, stride, stride, pad, pad);
            Conv.nativeLowering = true;
            assertArrayEquals(colsJ.toFloatArray(), Conv.im2col(x, k, k, stride, stride, pad, pad).toFloatArray());
            assertArrayEquals(atJ.toFloatArray(), Conv.im2colAt(x, pos, k, k, stride, stride, pad, pad).toFloatArray());
            float[] a = dxJ.toFloatArray(), b = Conv.col2im(g, x.shape(), k, k, stride, stride, pad, pad).toFloatArray();
            for (int i = 0; i < a.length; i++) assertEquals(a[i], b[i], 1e-5f * Math.max(1, Math.abs(a[i])));
        } finally {
            Conv.nativeLowering = true;
        }
    }

    /** Vertical stride 1 with horizontal stride 2 (the half-K lowering's geometry): native im2col equals Java exactly. */
    @ParameterizedTest
    @CsvSource({"2,3,8,8,3,1", "3,2,7,6,3,1", "2,4,1,4,3,1", "2,2,5,10,5,2", "4,3,6,2,3,1", "2,2,3,12,1,0", "2,3,9,18,3,1", "1,2,4,32,3,1"})
    void halfWidthStrideEqualsJava(int n, int c, int h, int w, int k, int pad) {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(n * 31L + w);
            Tensor x = r.normal(0, 1, n, c, h, w);
            Conv.nativeLowering = false;
            Tensor colsJ = Conv.im2col(x, k, k, 1, 2, pad, pad);
            Conv.nativeLowering = true;
            assertArrayEquals(colsJ.toFloatArray(), Conv.im2col(x, k, k, 1, 2, pad, pad).toFloatArray());
        } finally {
            Conv.nativeLowering = true;
        }
    }
}
