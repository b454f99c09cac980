package fst4j.tensor;

import fst4j.shim.Cuda;
import fst4j.shim.Native;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Activation's CUDA kernels (fst_cuda_act, fst_cuda_act_bwd) against the CPU formulas on broadcast and strided operands
 * (nn's CudaActivationsTest runs them through autograd), and their launchers' refusals: op codes, parameters, overlapping
 * outputs, blocks overrun. On the device or the host emulator (skipped otherwise).
 */
class CudaActivationOpsTest extends CudaTensorTestBase {
    private static void assertNear(Tensor want, Tensor got, String what) {
        float[] w = want.toFloatArray(), g = got.toFloatArray();
        assertArrayEquals(want.shape(), got.shape(), what);
        for (int i = 0; i < w.length; i++) {
            if (Float.isNaN(w[i]) || Float.isNaN(g[i])) { assertTrue(Float.isNaN(w[i]) && Float.isNaN(g[i]), what + " at " + i); continue; }
            assertEquals(w[i], g[i], 2 * Math.ulp(w[i]), what + " at " + i);
        }
    }

    @Test
    void backwardFormulasBroadcastAndStrided() {
        Tensor g = keep(new Rng(1).normal(0, 1, 4, 1, 6)), x = keep(new Rng(2).normal(0, 3, 5, 6));
        Tensor xt = keep(keep(new Rng(3).normal(0, 3, 6, 5)).transpose(0, 1));   // a strided [5, 6]
        Tensor dg = gpu(g), dx = gpu(x), dxt = keep(gpu(keep(new Rng(3).normal(0, 3, 6, 5))).transpose(0, 1));
        assertNear(keep(Activation.geluBackward(g, x)), keep(Activation.geluBackward(dg, dx)), "gelu backward, g broadcast");
        assertNear(keep(Activation.softplusBackward(g, xt, 2, 3)), keep(Activation.softplusBackward(dg, dxt, 2, 3)), "softplus backward, x strided");
        assertNear(keep(Activation.hardtanhBackward(x, g, -0.5, 0.5)), keep(Activation.hardtanhBackward(dx, dg, -0.5, 0.5)), "hardtanh backward");
        assertNear(keep(Activation.maximumBackward(g, x, xt)), keep(Activation.maximumBackward(dg, dx, dxt)), "maximum's share");
        assertNear(keep(Activation.elu(xt, 0.7)), keep(Activation.elu(dxt, 0.7)), "elu of a strided x");
    }

    /** clamp's kernel keeps x at a tie as the CPU (and torch) do: a zero keeps its sign at a bound of zero; the bits compared. */
    @Test
    void clampKeepsTheSignOfAZeroAtABoundOfZero() {
        Tensor z = keep(Tensor.of(new float[]{-0.0f, 0.0f, -0.0f, 0.0f, Float.NaN, -3, 9}, 7)), dz = gpu(z);
        double[][] bounds = {{0, 1}, {-0.0, 1}, {-1, -0.0}, {-1, 0}, {0, 6}, {0, Double.POSITIVE_INFINITY}, {2, -1}};
        for (double[] b : bounds) {
            float[] want = keep(Activation.clamp(z, b[0], b[1])).toFloatArray(), got = keep(Activation.clamp(dz, b[0], b[1])).toFloatArray();
            for (int i = 0; i < want.length; i++)
                assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[i]),
                        "clamp [" + b[0] + ", " + b[1] + "] at " + i + ": CPU " + want[i] + ", CUDA " + got[i]);
            if (b[0] <= 0 && 0 <= b[1])
                assertEquals(Float.floatToRawIntBits(-0.0f), Float.floatToRawIntBits(got[0]), "clamp [" + b[0] + ", " + b[1] + "] of -0.0 keeps -0.0");
        }
    }

    @Test
    void theLaunchersRefuseBadArgumentsNamingTheCall() {
        Tensor d = gpu(keep(new Rng(6).normal(0, 1, 64)));
        MemorySegment p = CudaOps.ptr(d), p4 = MemorySegment.ofAddress(p.address() + 16);
        long[] n = {32}, one = {1};
        try (Tensor out = Tensor.empty(Device.CUDA, DType.F32, 32)) {
            MemorySegment o = CudaOps.ptr(out);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Native.cudaAct(99, 0, 0, n, p, one, o));
            assertTrue(e.getMessage().startsWith("fst_cuda_act") && e.getMessage().contains("op >= FST_ACT_N"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.cudaActBackward(-1, 0, 0, n, p, one, p, one, o));
            assertTrue(e.getMessage().startsWith("fst_cuda_act_bwd") && e.getMessage().contains("op < 0"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.cudaAct(CudaActivations.LEAKY_RELU, Double.NaN, 0, n, p, one, o));
            assertTrue(e.getMessage().contains("invalid argument") && e.getMessage().contains("isfinite(s0)"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.cudaAct(CudaActivations.SOFTPLUS, 0, 20, n, p, one, o));
            assertTrue(e.getMessage().contains("s0 == 0"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.cudaAct(CudaActivations.CLAMP, 0, Double.NaN, n, p, one, o));
            assertTrue(e.getMessage().contains("isnan(s1)"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.cudaActBackward(CudaActivations.HARDTANH_BWD, 1, -1, n, p, one, p, one, o));
            assertTrue(e.getMessage().contains("s0 > s1"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.cudaAct(CudaActivations.GELU, 0, 0, n, p, one, p4));
            assertTrue(e.getMessage().startsWith("fst_cuda_act") && e.getMessage().contains("overlap"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.cudaActBackward(CudaActivations.GELU_BWD, 0, 0, n, p, one, p4, one, p4));
            assertTrue(e.getMessage().startsWith("fst_cuda_act_bwd") && e.getMessage().contains("overlap"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.cudaAct(CudaActivations.GELU, 0, 0, n, MemorySegment.NULL, one, o));
            assertTrue(e.getMessage().contains("null pointer"), e.getMessage());
            if (Cuda.isEmulated()) {   // the emulator keeps a registry of blocks, a device does not
                e = assertThrows(IllegalArgumentException.class, () -> Native.cudaAct(CudaActivations.SILU, 0, 0, n, p, new long[]{9}, o));
                assertTrue(e.getMessage().contains("not inside one device allocation"), e.getMessage());
            }
        }
    }
}
