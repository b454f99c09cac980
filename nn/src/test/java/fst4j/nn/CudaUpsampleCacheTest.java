package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.NN.InterpolateMode;
import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.CudaMemory;
import fst4j.tensor.Device;
import fst4j.tensor.Memory;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Upsample keeps its bilinear weights between forwards (an InterpolateCache): built once per axis over repeated
 * forwards, the same bits as the functional NN.interpolate, on the CPU and then on CUDA at the same geometry (the device
 * is part of the key: the CPU's weights are not used with a CUDA input), and freed when the module is closed, host and
 * device. The CUDA half runs where a back end is (the emulator execution).
 */
class CudaUpsampleCacheTest {
    @Test
    void weightsAreKeptPerDeviceAndFreedOnClose() {
        boolean cuda = Cuda.isAvailable();
        long host = Memory.bytesInUse(), dev = cuda ? CudaMemory.stats().bytesInUse() : 0;
        Upsample up = Upsample.size(7, 9, InterpolateMode.BILINEAR, false);
        try (Scope s = Scope.open()) {
            Tensor x = new Rng(1).normal(0, 1, 2, 3, 4, 5);
            for (Device d : cuda ? new Device[]{Device.CPU, Device.CUDA} : new Device[]{Device.CPU}) {
                Var xd = Var.of(x.to(d));
                float[] want = NN.interpolate(xd, 7, 9, InterpolateMode.BILINEAR, false).value().toFloatArray();
                for (int i = 0; i < 3; i++) {
                    Var y = up.forward(xd);
                    assertEquals(d, y.value().device());
                    assertArrayEquals(want, y.value().toFloatArray(), d + " forward " + i);
                }
                assertEquals(d == Device.CPU ? 2 : 4, up.cache().builds(), "two axes per device, once");
            }
        }
        assertTrue(Memory.bytesInUse() > host, "the CPU weights stay with the module");
        up.close();
        assertEquals(host, Memory.bytesInUse(), "closed: host weights freed");
        if (cuda) assertEquals(dev, CudaMemory.stats().bytesInUse(), "closed: device weights freed");
    }
}
