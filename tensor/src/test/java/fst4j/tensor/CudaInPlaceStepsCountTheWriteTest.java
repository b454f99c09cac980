package fst4j.tensor;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The public in-place kernels of the optimizers and of gradient clipping on CUDA (CudaOps.sgdStep, sgdSrsteStep,
 * adamwStep, scaleInPlace, srsteDecay, srsteDecayNM) count their write in the version of every tensor they write, as
 * the other CudaOps writers do: a weight stepped or scaled by a loop of one's own then makes a graph that saved it
 * refuse its backward, and makes a layer's kept S(W) (Gemm3's, for forwards without W's gradient) be rebuilt, not served
 * for the old W. What a kernel only reads keeps its version, and a call refused for its arguments moves nothing.
 */
class CudaInPlaceStepsCountTheWriteTest extends CudaTensorTestBase {

    /** call moves the version of each of written and of none of read. */
    private static void counts(Executable call, List<Tensor> written, List<Tensor> read, String name) throws Throwable {
        int[] w = written.stream().mapToInt(Tensor::version).toArray(), r = read.stream().mapToInt(Tensor::version).toArray();
        call.execute();
        for (int i = 0; i < w.length; i++) assertNotEquals(w[i], written.get(i).version(), name + ": written tensor " + i + "'s version did not move");
        for (int i = 0; i < r.length; i++) assertEquals(r[i], read.get(i).version(), name + ": read-only tensor " + i + "'s version moved");
    }

    private static void refused(Executable call, List<Tensor> ts, String name) {
        int[] v = ts.stream().mapToInt(Tensor::version).toArray();
        assertThrows(IllegalArgumentException.class, call, name);
        for (int i = 0; i < v.length; i++) assertEquals(v[i], ts.get(i).version(), name + ": a refused call moved tensor " + i + "'s version");
    }

    @Test
    void eachKernelCountsWhatItWritesAndNotWhatItReads() throws Throwable {
        Rng r = new Rng(11);
        Tensor w = gpu(keep(r.normal(0, 1, 4, 8))), g = gpu(keep(r.normal(0, 1, 4, 8))), buf = gpu(keep(Tensor.zeros(4, 8)));
        Tensor m = gpu(keep(Tensor.zeros(4, 8))), v = gpu(keep(Tensor.zeros(4, 8))), vmax = gpu(keep(Tensor.zeros(4, 8)));
        Tensor short7 = gpu(keep(r.normal(0, 1, 7)));
        counts(() -> CudaOps.sgdStep(w, g, buf, 0.1f, 1e-4f, 0.9f, 1f, true, false), List.of(w, buf), List.of(g), "sgdStep");
        counts(() -> CudaOps.sgdStep(w, g, null, 0.1f, 0f, 0f, 1f, true, false), List.of(w), List.of(g), "sgdStep without momentum");
        counts(() -> CudaOps.sgdSrsteStep(w, g, buf, 8, 2e-4f, 0.1f, 0f, 0.9f, 1f, false, false), List.of(w, buf), List.of(g), "sgdSrsteStep");
        counts(() -> CudaOps.adamwStep(w, g, m, v, vmax, 0.999f, 0.9f, 0.1f, 0.999f, 0.001f, 1e-3f, 0.03f, 1e-8f), List.of(w, m, v, vmax), List.of(g),
                "adamwStep");
        counts(() -> CudaOps.scaleInPlace(w, 0.5f), List.of(w), List.of(), "scaleInPlace");
        counts(() -> CudaOps.srsteDecay(w, g, 4, 8, 2e-4f), List.of(g), List.of(w), "srsteDecay");
        counts(() -> CudaOps.srsteDecayNM(w, g, 4, 8, 2, 8, 2e-4f), List.of(g), List.of(w), "srsteDecayNM");

        refused(() -> CudaOps.sgdStep(w, short7, buf, 0.1f, 0f, 0.9f, 1f, true, false), List.of(w, buf), "sgdStep with a gradient of 7");
        refused(() -> CudaOps.sgdSrsteStep(w, g, buf, 6, 2e-4f, 0.1f, 0f, 0.9f, 1f, false, false), List.of(w, buf), "sgdSrsteStep in rows of 6");
        refused(() -> CudaOps.adamwStep(w, g, m, short7, null, 0.999f, 0.9f, 0.1f, 0.999f, 0.001f, 1e-3f, 0.03f, 1e-8f), List.of(w, m, short7),
                "adamwStep with a second moment of 7");
        try (Tensor t = w.t()) { refused(() -> CudaOps.scaleInPlace(t, 2f), List.of(t), "scaleInPlace of a transposed view"); }
        refused(() -> CudaOps.srsteDecay(w, short7, 4, 8, 2e-4f), List.of(short7), "srsteDecay with a gradient of 7");
        refused(() -> CudaOps.srsteDecayNM(w, g, 4, 7, 2, 8, 2e-4f), List.of(g), "srsteDecayNM of a [4, 7] weight of 32");
    }
}
