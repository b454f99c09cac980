package fst4j.sparse;

import fst4j.shim.Cuda;
import fst4j.tensor.Device;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The FST pieces on CUDA tensors against the CPU, bit for bit: Information Restoration (shift_add kernel), the IR
 * shift fused with the half-K gather and the plain gather (shift_gather kernel), and every sparsifier applied to a
 * CUDA tensor (magnitude 2:4 of a float32 matrix by the device's prune kernels, the others selected on the host with
 * the result copied back to the device). Against the device or the
 * host emulator, skipped with the reason otherwise.
 */
class CudaSparseTest {
    private final List<Tensor> open = new ArrayList<>();

    @BeforeEach
    void needsCuda() {
        System.out.println("CUDA back end: " + Cuda.status());
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    @AfterEach
    void closeAll() { open.forEach(Tensor::close); open.clear(); }

    private Tensor keep(Tensor t) { open.add(t); return t; }

    private Tensor randn(Random r, int... shape) {
        int n = 1;
        for (int s : shape) n *= s;
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = r.nextInt(6) == 0 ? (float) (r.nextInt(5) - 2) : (float) r.nextGaussian();   // some ties
        return keep(Tensor.of(v, shape));
    }

    private static void assertBits(Tensor cpu, Tensor cuda, String what) {
        assertEquals(Device.CUDA, cuda.device(), what + ": device");
        assertArrayEquals(cpu.shape(), cuda.shape(), what + ": shape");
        float[] a = cpu.toFloatArray(), b = cuda.toFloatArray();
        for (int i = 0; i < a.length; i++)
            assertEquals(Float.floatToRawIntBits(a[i]), Float.floatToRawIntBits(b[i]), what + ": element " + i + " " + b[i] + " vs " + a[i]);
    }

    @Test
    void informationRestorationAndTheHalfKGatherMatchTheCpu() {
        Random r = new Random(41);
        for (int seg : new int[] { 1, 2, 7, 25 })
            for (int shift : new int[] { 1, -1 })
                for (boolean circular : new boolean[] { false, true }) {
                    String s = "segment " + seg + " shift " + shift + " circular " + circular;
                    Tensor dy = randn(r, 6, seg * 3);
                    Tensor d = keep(dy.to(Device.CUDA));
                    assertBits(keep(Restoration.shiftAdd(dy, seg, 0.03f, shift, circular)), keep(Restoration.shiftAdd(d, seg, 0.03f, shift, circular)),
                            "shiftAdd " + s);
                    assertBits(keep(HalfK.shiftGather(dy, seg, 0.5f, shift, circular)), keep(HalfK.shiftGather(d, seg, 0.5f, shift, circular)),
                            "shiftGather " + s);
                    assertBits(keep(HalfK.gatherKept(dy, seg)), keep(HalfK.gatherKept(d, seg)), "gatherKept " + s);
                }
        Tensor nchw = randn(r, 2, 3, 5, 4);
        assertBits(keep(Restoration.authors(nchw)), keep(Restoration.authors(keep(nchw.to(Device.CUDA)))), "authors' restoration");
    }

    @Test
    void sparsifiersApplyToCudaTensorsAndKeepThemThere() {
        Random r = new Random(42);
        Sparsifier[] rules = { new Sparsifier.Magnitude24(1), new Sparsifier.Magnitude24(0), new Sparsifier.Magnitude24(-2),
                new Sparsifier.SortMagnitude24(1), new Sparsifier.SortMagnitude24(-1), new Sparsifier.SortMagnitude24(0),
                new Sparsifier.Fixed24(1), new Sparsifier.TopK(1, 0.5), new Sparsifier.Dense(),
                TestData.positional(new java.util.concurrent.atomic.AtomicInteger()) };   // a rule that reads no values: none copied down
        // rows and columns both a multiple of 4 and not (the padded last group, along either axis)
        for (int[] shape : new int[][] { { 12, 18 }, { 13, 16 }, { 7, 9 } }) {
            Tensor w = randn(r, shape);
            w.data().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, 5, Float.NaN);   // NaN counts as the largest
            Tensor d = keep(w.to(Device.CUDA));
            for (Sparsifier s : rules) {
                String what = s + " on " + java.util.Arrays.toString(shape);
                assertBits(keep(s.apply(w)), keep(s.apply(d)), "apply " + what);
                assertBits(keep(s.mask(w)), keep(s.mask(d)), "mask " + what);
            }
        }
        // an axis a matrix does not have: the same clear error on both devices
        Tensor m = randn(r, 8, 8), md = keep(m.to(Device.CUDA));
        for (Sparsifier s : new Sparsifier[] { new Sparsifier.Magnitude24(2), new Sparsifier.SortMagnitude24(-3) }) {
            IllegalArgumentException onCpu = assertThrows(IllegalArgumentException.class, () -> s.apply(m));
            IllegalArgumentException onCuda = assertThrows(IllegalArgumentException.class, () -> s.apply(md));
            assertEquals(onCpu.getMessage(), onCuda.getMessage());
        }
        // stateful rules: two instances stepped alike, values changing every step. The transposable mask is recomputed
        // every 3rd step (off the CPU only then are the values copied down) and reused in between; the authors' patterns
        // are drawn per call
        Transposable24 tc = new Transposable24(3), tg = new Transposable24(3);
        AuthorsFixed24 ac = new AuthorsFixed24(1, 7), ag = new AuthorsFixed24(1, 7);
        for (int step = 0; step < 7; step++) {
            Tensor sq = randn(r, 16, 18);
            Tensor sqd = keep(sq.to(Device.CUDA));
            assertBits(keep(tc.apply(sq)), keep(tg.apply(sqd)), "transposable 2:4, step " + step);
            assertBits(keep(ac.apply(sq)), keep(ag.apply(sqd)), "authors' fixed 2:4, step " + step);
            assertEquals(ac.lastPattern(), ag.lastPattern(), "authors' pattern, step " + step);
        }
        assertEquals(tc.steps(), tg.steps());
    }
}
