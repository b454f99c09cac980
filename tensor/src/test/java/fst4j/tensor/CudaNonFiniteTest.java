package fst4j.tensor;

import fst4j.shim.Cuda;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static fst4j.tensor.CudaCompare.randn;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Elementwise.hasNonFinite on CUDA (kernels nonfinite_part, nonfinite_any): the CPU's answer for NaN, +Inf and -Inf at the
 * first, a middle and the last element, for views that leave a non-finite element of their storage out, float32 and
 * float64, sizes from 1 to past the kernel's cap of parts (4096 x 256 elements); and the tensor itself never crosses to
 * the host (the kernel profile books one 4-byte copy).
 */
class CudaNonFiniteTest extends CudaTensorTestBase {

    private static final float[] BAD = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY};

    @Test
    void findsEachNonFiniteValueWhereverItIs() {
        Random r = new Random(81);
        for (int n : new int[]{1, 17, 1031, 1_100_003}) {
            float[] v = randn(r, n).toFloatArray();
            Tensor clean = keep(Tensor.of(v, n));
            assertFalse(Elementwise.hasNonFinite(gpu(clean)), n + " finite values");
            for (int at : new int[]{0, n / 2, n - 1})
                for (float bad : BAD) {
                    float keepV = v[at];
                    v[at] = bad;
                    Tensor t = keep(Tensor.of(v, n));
                    assertTrue(Elementwise.hasNonFinite(t), "the CPU's answer");
                    assertTrue(Elementwise.hasNonFinite(gpu(t)), bad + " at " + at + " of " + n);
                    v[at] = keepV;
                }
        }
        // the largest finite values are finite
        Tensor big = keep(Tensor.of(new float[]{Float.MAX_VALUE, -Float.MAX_VALUE, Float.MIN_VALUE, -0f}, 4));
        assertFalse(Elementwise.hasNonFinite(gpu(big)));
    }

    @Test
    void looksOnlyAtTheViewsElements() {
        Random r = new Random(82);
        float[] v = randn(r, 7 * 9 * 5).toFloatArray();
        v[(3 * 9 + 4) * 5 + 2] = Float.NaN;   // element [3, 4, 2]
        Tensor host = keep(Tensor.of(v, 7, 9, 5)), dev = gpu(host);
        Tensor[][] views = {
                {keep(host.slice(2, 0, 2)), keep(dev.slice(2, 0, 2))},                 // columns 0, 1: without it
                {keep(host.slice(1, 0, 9, 2)), keep(dev.slice(1, 0, 9, 2))},           // rows 0, 2, ...: with row 4
                {keep(host.permute(2, 0, 1)), keep(dev.permute(2, 0, 1))},
                {keep(keep(host.slice(0, 4, 7)).permute(1, 2, 0)), keep(keep(dev.slice(0, 4, 7)).permute(1, 2, 0))},
                {keep(host.slice(1, 1, 9, 3)), keep(dev.slice(1, 1, 9, 3))},           // rows 1, 4, 7
                {keep(host.slice(1, 5, 5)), keep(dev.slice(1, 5, 5))},                 // empty
        };
        for (Tensor[] p : views)
            assertEquals(Elementwise.hasNonFinite(p[0]), Elementwise.hasNonFinite(p[1]), "view " + Shape.str(p[0].shape()) + " "
                    + java.util.Arrays.toString(p[0].strides()));
        assertTrue(Elementwise.hasNonFinite(views[1][1]));
        assertFalse(Elementwise.hasNonFinite(views[0][1]));
        // more dimensions than the kernel takes (nine of size 2, permuted so that none merge)
        Tensor nine = keep(randn(r, 2, 2, 2, 2, 2, 2, 2, 2, 2)), nineD = gpu(nine);
        Tensor rev = keep(nineD.permute(8, 7, 6, 5, 4, 3, 2, 1, 0));
        assertFalse(Elementwise.hasNonFinite(rev));
        float[] w = nine.toFloatArray();
        w[511] = Float.POSITIVE_INFINITY;
        Tensor nineBad = gpu(keep(Tensor.of(w, nine.shape())));
        assertTrue(Elementwise.hasNonFinite(keep(nineBad.permute(8, 7, 6, 5, 4, 3, 2, 1, 0))));
    }

    @Test
    void float64TensorsToo() {
        double[] v = new double[513];
        Random r = new Random(83);
        for (int i = 0; i < v.length; i++) v[i] = r.nextGaussian() * 1e300;   // finite in double, infinite in float
        Tensor t = keep(Tensor.of(v, 513));
        assertFalse(Elementwise.hasNonFinite(gpu(t)), "values beyond float's range are finite in float64");
        for (double bad : new double[]{Double.NaN, Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY}) {
            v[300] = bad;
            assertTrue(Elementwise.hasNonFinite(gpu(keep(Tensor.of(v, 513)))), bad + " in float64");
        }
    }

    @Test
    void copiesOnlyTheAnswerToTheHost() {
        Tensor t = gpu(keep(randn(new Random(84), 301, 1001)));
        boolean was = Cuda.setKernelProfile(true);
        try {
            Cuda.kernelProfile(true);
            assertFalse(Elementwise.hasNonFinite(t));
            String table = Cuda.kernelProfile(true);
            assertTrue(table.lines().anyMatch(l -> l.startsWith("fst_k_nonfinite_part ")), table);
            String[] copy = table.lines().filter(l -> l.startsWith("cudaMemcpy:d2h")).findFirst()
                    .orElseThrow(() -> new AssertionError("no device-to-host copy in\n" + table)).trim().split("\\s+");
            assertEquals("1", copy[1], "one copy to the host\n" + table);
            assertEquals("4", copy[4], "of 4 bytes\n" + table);
        } finally {
            Cuda.setKernelProfile(was);
        }
    }
}
