package fst4j.nn;

import fst4j.shim.Cuda;
import fst4j.tensor.Device;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** ASP's frozen mask on a CUDA weight: its tensor lives on the device, and the pruned W is the CPU's bit for bit. */
class CudaAspMaskTest {
    @BeforeEach
    void needsCuda() {
        System.out.println("CUDA back end: " + Cuda.status());
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    @Test
    void theMaskTensorMovesWithTheWeightAndPrunesAsOnTheCpu() {
        try (Scope s = Scope.open()) {
            boolean[] keep = AspMaskTest.twoOfFour(24 * 40, 11);
            Asp.FrozenMask m = new Asp.FrozenMask(keep, new int[]{24, 40});
            Tensor w = new Rng(12).normal(0, 1, 24, 40), wd = w.to(Device.CUDA);
            float[] wv = w.toFloatArray();
            Tensor onDevice = m.apply(wd);
            assertEquals(Device.CUDA, onDevice.device());
            AspMaskTest.assertAppliedBits(keep, wv, onDevice.toFloatArray());
            Tensor cached = m.keptMask(wd);
            assertEquals(Device.CUDA, cached.device());
            assertSame(cached, m.keptMask(wd));
            AspMaskTest.assertAppliedBits(keep, wv, m.apply(w).toFloatArray());   // back on the CPU: rebuilt there
            assertTrue(cached.isClosed(), "the device copy is freed when the weight's device changes");
            assertEquals(Device.CPU, m.keptMask(w).device());
            m.close();
        }
    }
}
