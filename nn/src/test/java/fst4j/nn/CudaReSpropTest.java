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

/** ReSprop on a CUDA dY (copied down, selected in Java on the host, copied up) against the CPU's shim, step by step. */
class CudaReSpropTest {
    @BeforeEach
    void needsCuda() {
        System.out.println("CUDA back end: " + Cuda.status());
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    @Test
    void theReusedGradientOnCudaIsTheCpusBitForBit() {
        try (Scope s = Scope.open()) {
            ReSprop cpu = new ReSprop(3), cuda = new ReSprop(3);
            Rng rng = new Rng(12);
            for (int step = 0; step < 4; step++) {
                Tensor g = rng.normal(0, 1e-2, 4, 16, 8, 8);   // NATIVE_MIN elements: the CPU side takes the shim
                Tensor out = cuda.transform(g.to(Device.CUDA));
                assertEquals(Device.CUDA, out.device(), "step " + step);
                float[] want = cpu.transform(g).toFloatArray(), got = out.toFloatArray();
                for (int i = 0; i < want.length; i++)
                    assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[i]), "step " + step + ", element " + i);
                assertArrayEquals(cpu.exportState(), cuda.exportState(), "state after step " + step);
            }
            assertTrue(cpu.lastPercent() >= 0, "the later steps used a sample");
        }
    }
}
