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

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The three GEMMs of one 3x3 stride-1 "same" convolution block as the training step runs them on the CPU
 * (Layers.Conv2d's blocked path), with im2col lowered inside the kernels. layer = images x Cin x plane x Cout, the
 * blocks the step hands the GEMMs for resnet-small (16-64 channels) and ResNet-18 (256 channels at 8x8).
 * <ul>
 * <li>{@code eq1_dense} / {@code eq1_sparse}: Y = W im2col(x), dense and 2:4 (S(W) precompressed);</li>
 * <li>{@code eq2_col2im_dense} / {@code eq2_col2im_sparse}: dX by W^T dY (S(W^T) precompressed) into gradient columns,
 *     folded back by col2im;</li>
 * <li>{@code eq2_tconv_dense} / {@code eq2_tconv_sparse}: dX as the convolution of dY with the transposed, tap-reversed
 *     weight (tap-major lowering of dY), then the block's images scattered into NCHW as the step does;</li>
 * <li>{@code eq3_dense}: dW = dY im2col(x)^T (without packing for Cout up to Native.wgradDirectMax: 128 on AMD, 48 elsewhere; wgrad_avx512.c); {@code eq3_halfK}: the
 *     same over the fixed mask's kept half of the positions (every other column: a lowering with the horizontal
 *     stride doubled; on odd planes, where the step gathers the kept columns with im2colAt, that gather and a GEMM).</li>
 * </ul>
 * plan = false turns the planned lowering (and the direct Eq. 3, which needs it) off: the row-by-row lowering and the
 * packing GEMM, i.e. the previous version. Weights are prepared outside the timing (their prune cost is in
 * Eq123Bench's overhead rows); outputs are preallocated; random data.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 1, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
@State(Scope.Benchmark)
public class LoweredBench {
    @Param({"5x16x28x16", "21x32x14x32", "84x64x7x64", "11x256x8x256"})
    public String layer;

    @Param({"true", "false"})
    public boolean plan;

    @Param({"2"})
    public int threads;

    private int n, cin, h, cout, l;
    private final List<AutoCloseable> owned = new ArrayList<>();
    private Tensor x, w, wt, wTconv, y, dy4, dy2, dyHalf, dcols, dx, dxbuf, dx3, dw;
    private Compressed24 cw, cwt, cwTconv;
    private Lowering low, lowHalf, lowTap;
    private boolean planBefore;
    private int[] kept;
    private int threadsBefore;

    private <T extends AutoCloseable> T own(T t) { owned.add(t); return t; }

    @Setup(Level.Trial)
    public void setup() {
        String[] p = layer.split("x");
        n = Integer.parseInt(p[0]); cin = Integer.parseInt(p[1]); h = Integer.parseInt(p[2]); cout = Integer.parseInt(p[3]);
        l = h * h;
        threadsBefore = Blas.threads();
        Blas.setThreads(threads);
        planBefore = Native.loweringPlan(-1);
        Native.loweringPlan(plan ? 1 : 0);
        Rng r = new Rng(42);
        int k = cin * 9;
        x = own(r.normal(0, 1, n, cin, h, h));
        w = own(r.normal(0, 0.1, cout, k));
        wt = own(w.t());
        y = own(Tensor.empty(cout, n * l));
        dy4 = own(r.normal(0, 1, n, cout, h, h));
        dy2 = own(r.normal(0, 1, cout, n * l));
        dyHalf = own(r.normal(0, 1, cout, n * ((l + 1) / 2)));
        kept = new int[(l + 1) / 2];
        for (int i = 0; i < kept.length; i++) kept[i] = 2 * i;
        dcols = own(Tensor.empty(k, n * l));
        dx = own(Tensor.empty(n, cin, h, h));
        dx3 = own(dx.reshape(n, cin, l));
        dxbuf = own(Tensor.empty(cin, n * l));
        dw = own(Tensor.empty(cout, k));
        cw = own(Compressed24.pruneCompress(w, null, threads));
        cwt = own(Compressed24.pruneCompressTransposed(w, threads));
        wTconv = own(Conv.tconvWeight(w, 9));
        cwTconv = own(Compressed24.pruneCompressTconv(w, 9, threads));
        low = new Lowering(x, 3, 3, 1, 1, 1, 1);
        lowHalf = h % 2 == 0 ? new Lowering(x, 3, 3, 1, 2, 1, 1) : null;
        lowTap = new Lowering(dy4, 3, 3, 1, 1, 1, 1, true);
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        for (int i = owned.size() - 1; i >= 0; i--) owned.get(i).close();
        Native.loweringPlan(planBefore ? 1 : 0);
        Blas.setThreads(threadsBefore);
    }

    @Benchmark public Tensor eq1_dense() { Conv.gemmLowered(1f, w, low, false, 0f, y); return y; }

    @Benchmark public Tensor eq1_sparse() { SparseGemm.spmmLowered(cw, low, 0f, y); return y; }

    @Benchmark public Tensor eq2_col2im_dense() {
        Blas.gemm(1f, wt, dy2, 0f, dcols);
        return Conv.col2imInto(dcols, dx, 3, 3, 1, 1, 1, 1);
    }

    @Benchmark public Tensor eq2_col2im_sparse() {
        SparseGemm.spmm(1f, cwt, dy2, 0f, dcols, threads);
        return Conv.col2imInto(dcols, dx, 3, 3, 1, 1, 1, 1);
    }

    @Benchmark public Tensor eq2_tconv_dense() {
        Conv.gemmLowered(1f, wTconv, lowTap, false, 0f, dxbuf);
        Conv.scatterImages(dxbuf, dx3, 0, n);
        return dx;
    }

    @Benchmark public Tensor eq2_tconv_sparse() {
        SparseGemm.spmmLowered(cwTconv, lowTap, 0f, dxbuf);
        Conv.scatterImages(dxbuf, dx3, 0, n);
        return dx;
    }

    @Benchmark public Tensor eq3_dense() { Conv.gemmLowered(1f, dy2, low, true, 0f, dw); return dw; }

    @Benchmark public Tensor eq3_halfK() {
        if (lowHalf != null) {
            Conv.gemmLowered(1f, dyHalf, lowHalf, true, 0f, dw);
        } else {   // odd planes: the kept columns gathered, then the GEMM (Layers.Conv2d's kept())
            try (Tensor cols = Conv.im2colAt(x, kept, 3, 3, 1, 1, 1, 1); Tensor ct = cols.t()) { Blas.gemm(1f, dyHalf, ct, 0f, dw); }
        }
        return dw;
    }
}
