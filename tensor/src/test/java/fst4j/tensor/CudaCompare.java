package fst4j.tensor;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/** Comparisons of a CUDA result with the CPU's, for the tests of the ops brought to CUDA on branch cuda-gaps. */
final class CudaCompare {
    private CudaCompare() {}

    /** Fresh normal values (never zeros) of shape, float32 on the host. */
    static Tensor randn(Random r, int... shape) {
        float[] v = new float[Math.toIntExact(Shape.numel(shape))];
        for (int i = 0; i < v.length; i++) v[i] = (float) r.nextGaussian();
        return Tensor.of(v, shape);
    }

    /**
     * Every element of the CUDA tensor has the CPU one's bits (float32 or float64, same shape and dtype); NaNs compare by
     * NaN-ness only (a device may return another NaN payload than x86 does).
     */
    static void assertSameBits(Tensor cpu, Tensor cuda, String what) {
        assertEquals(Device.CUDA, cuda.device(), what + ": result device");
        assertArrayEquals(cpu.shape(), cuda.shape(), what + ": shape");
        assertEquals(cpu.dtype(), cuda.dtype(), what + ": dtype");
        double[] want = cpu.toDoubleArray(), got = cuda.toDoubleArray();
        for (int i = 0; i < want.length; i++)
            if (Double.doubleToRawLongBits(want[i]) != Double.doubleToRawLongBits(got[i]) && !(Double.isNaN(want[i]) && Double.isNaN(got[i])))
                fail(what + ": element " + i + " is " + got[i] + " on CUDA, " + want[i] + " on the CPU");
    }

    /** |got - want| <= rel * max(floor, |want|) elementwise, NaN where the CPU has NaN. */
    static void assertClose(Tensor cpu, Tensor cuda, double rel, double floor, String what) {
        assertEquals(Device.CUDA, cuda.device(), what + ": result device");
        assertArrayEquals(cpu.shape(), cuda.shape(), what + ": shape");
        double[] want = cpu.toDoubleArray(), got = cuda.toDoubleArray();
        for (int i = 0; i < want.length; i++) {
            if (Double.isNaN(want[i])) { if (!Double.isNaN(got[i])) fail(what + ": element " + i + " is " + got[i] + " on CUDA, NaN on the CPU"); continue; }
            assertEquals(want[i], got[i], rel * Math.max(floor, Math.abs(want[i])), what + ": element " + i);
        }
    }
}
