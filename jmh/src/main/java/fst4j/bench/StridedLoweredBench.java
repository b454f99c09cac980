package fst4j.bench;

import fst4j.shim.Native;
import fst4j.sparse.Compressed24;
import fst4j.sparse.SparseGemm;
import fst4j.tensor.Blas;
import fst4j.tensor.Conv;
import fst4j.tensor.Lowering;
import fst4j.tensor.Rng;
import fst4j.tensor.Tensor;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;

/**
 * The lowered GEMMs of one stride-2 convolution block (the downsampling convolutions of resnet-small and ResNet-18):
 * layer = images x Cin x plane x Cout x kernel, padding k / 2, stride 2, as Layers.Conv2d hands them to the kernels.
 * {@code plan = true} lowers with the gather plan (lowering.h), {@code false} row by row (the path before it), so one
 * run gives the ratio. Eq. 2 of a strided convolution is W^T dY + col2im, which no lowering touches: not here.
 * <ul>
 * <li>{@code eq1_dense} / {@code eq1_sparse}: Y = W im2col(x), dense and 2:4 (S(W) precompressed);</li>
 * <li>{@code eq3_dense}: dW = dY im2col(x)^T (without packing for Cout up to Native.wgradDirectMax: 128 on AMD, 48 elsewhere; wgrad_avx512.c).</li>
 * </ul>
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 1, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
@State(Scope.Benchmark)
public class StridedLoweredBench {
    @Param({"21x16x28x32x3", "21x16x28x32x1", "84x32x14x64x3", "16x64x32x128x3"})
    public String layer;

    @Param({"true", "false"})
    public boolean plan;

    @Param({"2"})
    public int threads;

    private Tensor x, w, y, dy, dw;
    private Compressed24 cw;
    private Lowering low;
    private boolean planBefore;
    private int threadsBefore;

    @Setup(Level.Trial)
    public void setup() {
        String[] p = layer.split("x");
        int n = Integer.parseInt(p[0]), cin = Integer.parseInt(p[1]), h = Integer.parseInt(p[2]);
        int cout = Integer.parseInt(p[3]), k = Integer.parseInt(p[4]), pad = k / 2, ho = (h + 2 * pad - k) / 2 + 1;
        threadsBefore = Blas.threads();
        Blas.setThreads(threads);
        planBefore = Native.loweringPlan(-1);
        Native.loweringPlan(plan ? 1 : 0);
        Rng r = new Rng(42);
        x = r.normal(0, 1, n, cin, h, h);
        w = r.normal(0, 0.1, cout, cin * k * k);
        y = Tensor.empty(cout, n * ho * ho);
        dy = r.normal(0, 1, cout, n * ho * ho);
        dw = Tensor.empty(cout, cin * k * k);
        cw = Compressed24.pruneCompress(w, null, threads);
        low = new Lowering(x, k, k, 2, 2, pad, pad);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        cw.close();
        for (Tensor t : new Tensor[]{x, w, y, dy, dw}) t.close();
        Native.loweringPlan(planBefore ? 1 : 0);
        Blas.setThreads(threadsBefore);
    }

    @Benchmark public Tensor eq1_dense() { Conv.gemmLowered(1f, w, low, false, 0f, y); return y; }

    @Benchmark public Tensor eq1_sparse() { SparseGemm.spmmLowered(cw, low, 0f, y); return y; }

    @Benchmark public Tensor eq3_dense() { Conv.gemmLowered(1f, dy, low, true, 0f, dw); return dw; }
}
