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
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Upsample keeps its bilinear weights between forwards (an InterpolateCache): built once per axis over repeated
 * forwards, the same bits as the functional NN.interpolate, on the CPU and then on CUDA at the same geometry (the device
 * is part of the key: the CPU's weights are not used with a CUDA input), and freed when the module is closed, host and
 * device. The CUDA half runs where a back end is (the emulator execution). On CUDA the cache also keeps each axis's
 * index tables on the device (the gathers' indices, the backward's scatter CSR): a repeated forward + backward copies
 * nothing host -> device, in every mode, with the uncached path's bits, and a graph outlives the module's close.
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

    /** Host -> device copies of one uncached forward + backward from [., ., 4, 5] to 7 x 9 (both axes resized): per axis and tap, the indices, the weight, the CSR's two tables. */
    private static int uncachedCopies(InterpolateMode m) {
        return switch (m) {
            case NEAREST, NEAREST_EXACT -> 2 * 1 * 3;
            case BILINEAR -> 2 * 2 * 4;
            case BICUBIC -> 2 * 4 * 4;
            case AREA -> 0;   // adaptive average pooling: no tables
        };
    }

    /** value and gradient of one forward + backward of x through f, and the host -> device copies it made. */
    private record Step(float[] y, float[] dx, long copies) {}

    private static Step step(java.util.function.Function<Var, Var> f, Tensor x, Tensor g) {
        Var xp = Var.param(x.alias());
        long c0 = Cuda.hostToDeviceCopies();
        Var y = f.apply(xp);
        y.backward(g);
        long copies = Cuda.hostToDeviceCopies() - c0;
        return new Step(y.value().toFloatArray(), xp.grad().toFloatArray(), copies);
    }

    @Test
    void aRepeatedStepUploadsNoTablesInEveryModeWithTheUncachedBits() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
        Object[][] modes = {{InterpolateMode.NEAREST, false}, {InterpolateMode.NEAREST_EXACT, false}, {InterpolateMode.BILINEAR, false},
                {InterpolateMode.BILINEAR, true}, {InterpolateMode.BICUBIC, false}, {InterpolateMode.BICUBIC, true}, {InterpolateMode.AREA, false}};
        for (Object[] mo : modes) {
            InterpolateMode m = (InterpolateMode) mo[0];
            boolean align = (Boolean) mo[1];
            String what = m + (align ? " align_corners" : "");
            long host = Memory.bytesInUse(), dev = CudaMemory.stats().bytesInUse();
            Upsample up = Upsample.size(7, 9, m, align);
            try (Scope s = Scope.open()) {
                // two input heights through one module: the W axis (5 to 9) is shared, the H axes differ in their input
                // size only (4 or 6 to 7), so a table reused across them would gather the wrong rows
                for (int round = 0; round < 3; round++)
                    for (int h : new int[]{4, 6}) {
                        Tensor x = new Rng(h).normal(0, 1, 2, 3, h, 5).to(Device.CUDA), g = new Rng(10 + h).normal(0, 1, 2, 3, 7, 9).to(Device.CUDA);
                        Step want = step(v -> NN.interpolate(v, 7, 9, m, align), x, g);
                        if (h == 4) assertEquals(uncachedCopies(m), want.copies(), what + ": the uncached path's copies per step");
                        Step got = step(up::forward, x, g);
                        assertArrayEquals(want.y(), got.y(), what + " h " + h + " round " + round + ": values");
                        assertArrayEquals(want.dx(), got.dx(), what + " h " + h + " round " + round + ": gradients");
                        // the first step builds each table once (as many copies as an uncached step, the W axis's only for
                        // the second height); every later step copies nothing
                        long first = h == 4 ? uncachedCopies(m) : uncachedCopies(m) / 2;
                        assertEquals(round == 0 ? first : 0, got.copies(), what + " h " + h + " round " + round + ": host -> device copies");
                    }
                // a graph built through the module, which is closed before backward: it keeps its own tables and weights
                Tensor x = new Rng(4).normal(0, 1, 2, 3, 4, 5).to(Device.CUDA), g = new Rng(14).normal(0, 1, 2, 3, 7, 9).to(Device.CUDA);
                Step want = step(v -> NN.interpolate(v, 7, 9, m, align), x, g);
                Var xp = Var.param(x.alias());
                Var y = up.forward(xp);
                up.close();
                y.backward(g);
                assertArrayEquals(want.y(), y.value().toFloatArray(), what + ": values, cache closed before backward");
                assertArrayEquals(want.dx(), xp.grad().toFloatArray(), what + ": gradients, cache closed before backward");
            }
            assertEquals(dev, CudaMemory.stats().bytesInUse(), what + ": device memory back to the baseline (tables and weights freed)");
            assertEquals(host, Memory.bytesInUse(), what + ": host memory back to the baseline");
        }
    }
}
