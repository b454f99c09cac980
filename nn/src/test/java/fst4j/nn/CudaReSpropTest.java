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

/** ReSprop on a CUDA dY (the kernel fst_cuda_resprop; only the sampled image is copied down) against the CPU's shim. */
class CudaReSpropTest {
    @BeforeEach
    void needsCuda() {
        System.out.println("CUDA back end: " + Cuda.status());
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    /**
     * Steps 1-3 start from a threshold near the median of the differences (1e-2 of two N(0, 1e-2) values), so that both
     * rules are taken: a difference kept (p + d) and one reused (p); with the first step's 1e-7 every difference was kept,
     * and the device could have compared with another threshold, or none, and matched the CPU all the same.
     */
    @Test
    void theReusedGradientOnCudaIsTheCpusBitForBit() {
        try (Scope s = Scope.open()) {
            ReSprop cpu = new ReSprop(3), cuda = new ReSprop(3);
            Rng rng = new Rng(12);
            for (int step = 0; step < 4; step++) {
                if (step > 0) {
                    long[] st = cpu.exportState();
                    st[1] = Double.doubleToRawLongBits(1e-2);
                    cpu.importState(st);
                    cuda.importState(st.clone());
                }
                Tensor g = rng.normal(0, 1e-2, 4, 16, 8, 8);   // NATIVE_MIN elements: the CPU side takes the shim
                Tensor out = cuda.transform(g.to(Device.CUDA));
                assertEquals(Device.CUDA, out.device(), "step " + step);
                float[] want = cpu.transform(g).toFloatArray(), got = out.toFloatArray();
                for (int i = 0; i < want.length; i++)
                    assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[i]), "step " + step + ", element " + i);
                assertArrayEquals(cpu.exportState(), cuda.exportState(), "state after step " + step);
                assertEquals(cpu.lastPercent(), cuda.lastPercent(), "percentage kept, step " + step);
                if (step > 0) assertTrue(cpu.lastPercent() > 10 && cpu.lastPercent() < 90, "both rules taken at step " + step + ": " + cpu.lastPercent() + " % kept");
            }
        }
    }

    /** The kernel against the shim's loop: bits and count, NaN and -0.0, the float/double boundary, more elements than count threads. */
    @Test
    void theKernelIsTheShimsLoopBitForBit() {
        try (Scope s = Scope.open()) {
            Rng rng = new Rng(5);
            for (int[] shape : new int[][]{{3, 50_001}, {7, 13}, {1, 1}}) {
                int n = shape[0], per = shape[1];
                float[] g = rng.normal(0, 1, n, per).toFloatArray(), p = rng.normal(0, 1, per).toFloatArray();
                g[0] = Float.NaN;
                if (g.length > 2) { g[1] = -0.0f; p[1 % per] = 0.0f; }
                for (double t : new double[]{0.8, 1e-30, 1e30}) {
                    Tensor gh = Tensor.of(g, n, per), ph = Tensor.of(p, per), want = Tensor.zeros(n, per);
                    long kept = fst4j.shim.Native.resprop(gh.data(), ph.data(), want.data(), n, per, t, 1);
                    fst4j.tensor.CudaOps.Resprop r = fst4j.tensor.CudaOps.resprop(gh.to(Device.CUDA), ph.to(Device.CUDA), t);
                    assertEquals(kept, r.kept(), shape[0] + "x" + shape[1] + " threshold " + t);
                    float[] a = want.toFloatArray(), b = r.out().toFloatArray();
                    // NaN by NaN-ness: the H200 returns 0x7fffffff for g[0] - p[0], x86 the input's 0x7fc00000 (device run 32, 2026-11-27)
                    for (int i = 0; i < a.length; i++)
                        if (!(Float.isNaN(a[i]) && Float.isNaN(b[i])))
                            assertEquals(Float.floatToRawIntBits(a[i]), Float.floatToRawIntBits(b[i]), "element " + i + ", threshold " + t);
                    if (t == 0.8 && g.length > 2) assertTrue(kept > 0 && kept < (long) n * per, "both branches taken: " + kept);
                }
            }
            // (float) 0.1 differs from 0 by more than the double 0.1: kept, as the double comparison decides
            try (Tensor g = Tensor.of(new float[]{0.1f, 0.1f, -0.1f, 0.05f}, 1, 4).to(Device.CUDA); Tensor p = Tensor.zeros(4).to(Device.CUDA)) {
                assertEquals(3, fst4j.tensor.CudaOps.resprop(g, p, 0.1).kept());
            }
            Tensor g = Tensor.zeros(2, 4).to(Device.CUDA);
            assertThrows(IllegalArgumentException.class, () -> fst4j.tensor.CudaOps.resprop(g, Tensor.zeros(3).to(Device.CUDA), 0.1));
            assertThrows(IllegalArgumentException.class, () -> fst4j.tensor.CudaOps.resprop(g, Tensor.zeros(4), 0.1), "a host sample");
            RuntimeException e = assertThrows(RuntimeException.class, () -> fst4j.tensor.CudaOps.resprop(g, Tensor.zeros(4).to(Device.CUDA), 0));
            assertTrue(e.getMessage().contains("fst_cuda_resprop"), e.getMessage());
        }
    }
}
