package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.Device;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static fst4j.nn.CudaLayerNormTest.near;
import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The transformer's pieces on CUDA tensors against the CPU: embedding (fst_k_embed_gather / fst_k_embed_scatter) with
 * repeated indices and padding_idx, bit for bit, and its refusals, causal attention, and a TinyTransformer (DENSE and FST2 FFN) moved with to(Device.CUDA):
 * logits, loss and every parameter's gradient. Against the device or the host emulator (skipped with the reason otherwise).
 */
class CudaTransformerTest {
    @BeforeEach
    void needsCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    /**
     * Attention's and a whole transformer's gradients are sums with cancellation after exp (the device's, not Java's): their
     * small elements differ by thousands of ulps while the large ones agree to a few, so these compare, as the other
     * whole-model CUDA tests do, against a fraction of the largest value; the kernels inside have per-element tests of
     * their own (CudaActivationsTest, CudaVarMathTest, CudaLayerNormTest, CudaTensorOpsTest). Measured here: y within 1
     * ulp, dq / dk / dv within 18, the transformer's gradients within 2 ulps of the largest value.
     */
    static void nearLargest(float[] want, float[] got, double tol, String what) {
        assertEquals(want.length, got.length, what);
        double scale = 0;
        for (float w : want) if (Float.isFinite(w)) scale = Math.max(scale, Math.abs(w));
        for (int i = 0; i < want.length; i++) assertEquals(want[i], got[i], tol * Math.max(scale, 1e-30), what + " at " + i);
    }

    @Test
    void embeddingAsOnTheCpu() {
        try (Scope s = Scope.open()) {
            Rng rng = new Rng(3);
            Tensor w = rng.normal(0, 1, 7, 5), r = rng.normal(0, 1, 3, 4, 5);
            int[] idx = {6, 1, 1, 0, 3, 1, 6, 2, 2, 5, 1, 4};
            for (Integer pad : new Integer[]{null, 1}) {
                float[][] got = new float[2][];
                float[][] grad = new float[2][];
                for (Device d : new Device[]{Device.CPU, Device.CUDA}) {
                    Var wv = Var.param(w.to(d));
                    Var y = NN.embedding(wv, idx, new int[]{3, 4}, pad);
                    assertEquals(d, y.value().device());
                    y.backward(r.to(d));
                    got[d == Device.CPU ? 0 : 1] = y.value().toFloatArray();
                    grad[d == Device.CPU ? 0 : 1] = wv.grad().toFloatArray();
                }
                near(got[0], got[1], "embedding values, padding " + pad);
                near(grad[0], grad[1], "embedding weight gradient (sums in double in the same order), padding " + pad);
            }
        }
    }

    @Test
    void embeddingRefusalsOnTheDevice() {
        try (Scope s = Scope.open()) {
            Var w64 = Var.param(Tensor.zeros(fst4j.tensor.DType.F64, 3, 2).to(Device.CUDA));
            String m = assertThrows(UnsupportedOperationException.class, () -> NN.embedding(w64, new int[]{0}, 1)).getMessage();
            assertTrue(m.contains("float32 only"), m);
            Var w = Var.param(Tensor.zeros(3, 2).to(Device.CUDA));
            m = assertThrows(IllegalArgumentException.class, () -> NN.embedding(w, new int[]{3}, 1)).getMessage();
            assertTrue(m.contains("index 3 at position 0 out of range [0, 3)"), m);
            m = assertThrows(RuntimeException.class, () -> fst4j.shim.Native.cudaEmbedGather(
                    java.lang.foreign.MemorySegment.ofAddress(1), 0, 2,
                    java.lang.foreign.MemorySegment.ofAddress(1), 1, java.lang.foreign.MemorySegment.ofAddress(1))).getMessage();
            assertTrue(m.contains("fst_cuda_embed_gather") && m.contains("v <= 0"), m);
        }
    }

    /**
     * The scatter launcher takes pos as int32[n] (n the output gradient's rows) while the CSR lists only the positions
     * that are not the padding row: a batch mostly or wholly of padding must still get its gradient (zero for the padding
     * row), not a refusal of pos as lying outside its allocation.
     */
    @Test
    void embeddingOfPaddingOnlyBatchesOnTheDevice() {
        try (Scope s = Scope.open()) {
            int n = 1000;
            int[] pad = new int[n], most = new int[n];
            java.util.Arrays.fill(pad, 2);
            java.util.Arrays.fill(most, 2);
            most[7] = 0;
            for (int[] idx : new int[][]{pad, most}) {
                float[][] grad = new float[2][];
                for (Device d : new Device[]{Device.CPU, Device.CUDA}) {
                    Var w = Var.param(new Rng(1).normal(0, 1, 3, 4).to(d));
                    NN.embedding(w, idx, new int[]{n}, 2).sum().backward();
                    grad[d == Device.CPU ? 0 : 1] = w.grad().toFloatArray();
                }
                near(grad[0], grad[1], "padding-only weight gradient");
            }
        }
    }

    /**
     * The launchers' own range checks (OWN: every operand inside one device allocation) take byte sizes v * d * 4: a v
     * whose product wraps int64 must be refused as an invalid argument, not wrap to a size that passes the check and let
     * the kernel read rows past the table (here row 3 of a 3 x 2 allocation, said to hold 2^61 rows).
     */
    @Test
    void embedLaunchersRefuseSizesWhoseBytesWrap() {
        java.lang.foreign.MemorySegment w = Cuda.malloc(6 * 4), idx = Cuda.malloc(4), out = Cuda.malloc(2 * 4), off = Cuda.malloc(2 * 4),
                pos = Cuda.malloc(4), g = Cuda.malloc(2 * 4), dw = Cuda.malloc(2 * 4);
        try (java.lang.foreign.Arena a = java.lang.foreign.Arena.ofConfined()) {
            Cuda.copyToDevice(idx, a.allocateFrom(java.lang.foreign.ValueLayout.JAVA_INT, 3), 4);
            Cuda.copyToDevice(off, a.allocateFrom(java.lang.foreign.ValueLayout.JAVA_INT, 0, 1), 8);
            Cuda.copyToDevice(pos, a.allocateFrom(java.lang.foreign.ValueLayout.JAVA_INT, 0), 4);
            long v = 1L << 61;   // v * 2 * 4 = 2^64: 0 in int64
            String m = assertThrows(RuntimeException.class, () -> fst4j.shim.Native.cudaEmbedGather(w, v, 2, idx, 1, out)).getMessage();
            assertTrue(m.contains("fst_cuda_embed_gather") && m.contains("invalid argument"), m);
            m = assertThrows(RuntimeException.class, () -> fst4j.shim.Native.cudaEmbedScatter(g, 1, 2, off, pos, v, dw)).getMessage();
            assertTrue(m.contains("fst_cuda_embed_scatter") && m.contains("invalid argument"), m);
        } finally {
            for (java.lang.foreign.MemorySegment p : new java.lang.foreign.MemorySegment[]{w, idx, out, off, pos, g, dw}) Cuda.free(p);
        }
    }

    @Test
    void causalAttentionAsOnTheCpu() {
        try (Scope s = Scope.open()) {
            Rng rng = new Rng(4);
            Tensor q = rng.normal(0, 1, 2, 2, 5, 4), k = rng.normal(0, 1, 2, 2, 5, 4), v = rng.normal(0, 1, 2, 2, 5, 3), r = rng.normal(0, 1, 2, 2, 5, 3);
            float[][] out = new float[8][];
            int at = 0;
            for (Device d : new Device[]{Device.CPU, Device.CUDA}) {
                Var qv = Var.param(q.to(d)), kv = Var.param(k.to(d)), vv = Var.param(v.to(d));
                Var y = NN.scaledDotProductAttention(qv, kv, vv, null, true);
                y.backward(r.to(d));
                out[at++] = y.value().toFloatArray(); out[at++] = qv.grad().toFloatArray();
                out[at++] = kv.grad().toFloatArray(); out[at++] = vv.grad().toFloatArray();
            }
            String[] names = {"y", "dq", "dk", "dv"};
            for (int i = 0; i < 4; i++) nearLargest(out[i], out[i + 4], 1e-6, names[i]);
        }
    }

    @Test
    void tinyTransformerStepAsOnTheCpu() {
        for (Method m : new Method[]{Method.DENSE, Method.FST2}) {
            try (Scope s = Scope.open(); TinyTransformer cpu = Models.tinyTransformer(6, 5, 8, 2, 16, 1, true, m, 1);
                 TinyTransformer gpu = Models.tinyTransformer(6, 5, 8, 2, 16, 1, true, m, 1).to(Device.CUDA)) {
                int[] x = {0, 1, 2, 3, 4, 5, 5, 4, 3, 2}, y = {1, 2, 3, 4, 5, 4, 3, 2, 1, 0};
                Var lc = NN.crossEntropy(cpu.forward(x, 2, 5).reshape(10, 6), y, 0), lg = NN.crossEntropy(gpu.forward(x, 2, 5).reshape(10, 6), y, 0);
                assertEquals(Device.CUDA, lg.value().device());
                assertEquals(lc.item(), lg.item(), 1e-5, m + " loss");
                lc.backward();
                lg.backward();
                Map<String, Var> pc = cpu.namedParameters(), pg = gpu.namedParameters();
                for (String name : pc.keySet())
                    nearLargest(pc.get(name).grad().toFloatArray(), pg.get(name).grad().toFloatArray(), 1e-6, m + " grad " + name);
            }
        }
    }

    /**
     * Cross-attention with kdim / vdim, a key padding mask and a boolean attn_mask, weights per head: composed of ops that
     * run on CUDA (where for the masks, the mask checks' reductions on the device), as on the CPU; the masks given on the
     * CPU to a CUDA module are refused by device.
     */
    @Test
    void crossAttentionWithMasksAsOnTheCpu() {
        try (Scope s = Scope.open()) {
            Rng rng = new Rng(5);
            Tensor q = rng.normal(0, 1, 2, 3, 4), k = rng.normal(0, 1, 2, 5, 6), v = rng.normal(0, 1, 2, 5, 2), r = rng.normal(0, 1, 2, 3, 4);
            Tensor kpm = Tensor.of(new float[]{0, 0, 0, 0, 1, 0, 1, 0, 0, 1}, 2, 5), am = Tensor.zeros(3, 5);
            am.set(1, 0, 2); am.set(1, 2, 0);
            float[][] out = new float[6][];
            int at = 0;
            for (Device d : new Device[]{Device.CPU, Device.CUDA}) {
                try (MultiheadAttention m = new MultiheadAttention(4, 2, 0, true, 6, 2, Method.DENSE.config(), Method.DENSE.config(),
                        Method.DENSE.config(), Method.DENSE.config(), new Rng(6)).to(d)) {
                    Var qv = Var.param(q.to(d)), kv = Var.param(k.to(d)), vv = Var.param(v.to(d));
                    NN.Attended a = m.forward(qv, kv, vv, kpm.to(d), true, AttnMask.bool(am.to(d)), false);
                    assertEquals(d, a.weights().value().device());
                    a.output().backward(r.to(d));
                    out[at++] = a.output().value().toFloatArray(); out[at++] = a.weights().value().toFloatArray(); out[at++] = kv.grad().toFloatArray();
                    if (d == Device.CUDA) {
                        String msg = assertThrows(IllegalArgumentException.class, () -> m.forward(qv, kv, vv, kpm, false, null, true)).getMessage();
                        assertTrue(msg.contains("device mismatch: key_padding_mask is on CPU"), msg);
                    }
                }
            }
            String[] names = {"y", "weights", "dkey"};
            for (int i = 0; i < 3; i++) nearLargest(out[i], out[i + 3], 1e-6, names[i]);
        }
    }
}
