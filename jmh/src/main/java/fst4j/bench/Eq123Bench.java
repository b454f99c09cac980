package fst4j.bench;

import fst4j.shim.Native;
import fst4j.sparse.Compressed24;
import fst4j.sparse.HalfK;
import fst4j.sparse.SparseGemm;
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
import org.openjdk.jmh.infra.BenchmarkParams;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * The three GEMMs of one conv layer (fst-method.md, "A layer as three GEMMs") at ResNet-18 conv-as-GEMM
 * shapes for a CPU-sized batch of 8 images, dense against 2:4, plus the sparsification overhead kernels.
 * shape = Cout x cols x K with cols = 8 * H*W (one segment of H*W columns per image) and K = Cin*9:
 * <ul>
 * <li>Eq. 1, Y [Cout, cols] = W [Cout, K] X [K, cols]: {@code eq1_openblas}, {@code eq1_dense} (fst_sgemm),
 *     {@code eq1_sparse} (fst_spmm24 on a precompressed S(W)), {@code eq1_sparsePrune} (fused prune + compress
 *     of W inside the timing, then fst_spmm24);</li>
 * <li>Eq. 2, dX [K, cols] = W^T [K, Cout] dY [Cout, cols] (GEMM M = K, N = cols, K = Cout; the dense ones read
 *     W transposed, as Gemm3 does): {@code eq2_*} likewise, the sparse ones with S(W^T);</li>
 * <li>Eq. 3, dW [Cout, K] = dY [Cout, cols] X^T (M = Cout, N = K, reduction over cols): {@code eq3_openblas},
 *     {@code eq3_dense}, {@code eq3_halfK} (Eq. 7 half-K: IR shift + gather of dY and gather of X inside the
 *     timing, then a dense GEMM over cols/2), {@code eq3_halfKGemm} (the half-K GEMM alone);</li>
 * <li>overhead: {@code ovh_pruneW} (S(W) fused prune + compress), {@code ovh_pruneWt} (S(W^T)),
 *     {@code ovh_shiftGather} (IR shift + half-K gather of dY).</li>
 * </ul>
 * Every sparse variant allocates its outputs (compressed operands, gathered matrices) inside the timing, as a
 * training step does; fst_spmm24 copies its B blocks internally. Random data, beta = 0.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
@State(Scope.Benchmark)
public class Eq123Bench {
    @Param({"64x25088x576", "128x6272x1152", "256x1568x2304", "512x392x4608"})
    public String shape;

    @Param({"1", "2"})
    public int threads;

    /** Images per batch: cols = IMAGES * H*W. */
    static final int IMAGES = 8;

    private int cout, cols, k, seg;
    private final List<AutoCloseable> owned = new ArrayList<>();
    private Tensor w, x, y, dy, dx, dw, gk, xk;
    private Compressed24 cw, cwt;
    private Arena arena;
    private MethodHandle cblasSgemm;
    private Eq123Products p;

    @Setup(Level.Trial)
    public void setUp(BenchmarkParams params) throws Throwable {
        String[] d = shape.split("x");
        cout = Integer.parseInt(d[0]); cols = Integer.parseInt(d[1]); k = Integer.parseInt(d[2]);
        seg = cols / IMAGES;
        String b = params.getBenchmark();
        String name = b.substring(b.lastIndexOf('.') + 1);
        SplittableRandom r = new SplittableRandom(42);
        w = random(r, cout, k);
        if (name.startsWith("eq1")) { x = random(r, k, cols); y = own(Tensor.empty(cout, cols)); }
        if (name.startsWith("eq2")) { dy = random(r, cout, cols); dx = own(Tensor.empty(k, cols)); }
        if (name.startsWith("eq3")) { dy = random(r, cout, cols); x = random(r, k, cols); dw = own(Tensor.empty(cout, k)); }
        if (name.equals("ovh_shiftGather")) dy = random(r, cout, cols);
        if (name.equals("eq1_sparse")) cw = own(Compressed24.pruneCompress(w, null, threads));
        if (name.equals("eq2_sparse")) cwt = own(Compressed24.pruneCompressTransposed(w, threads));
        if (name.equals("eq3_halfKGemm")) {
            gk = own(HalfK.shiftGather(dy, seg, 1f, 1, false, threads));
            xk = own(HalfK.shiftGather(x, seg, 0f, 1, false, threads));
        }
        p = new Eq123Products(cout, cols, k, seg, threads, w, x, dy, y, dx, dw);
        if (name.endsWith("_openblas")) {
            arena = Arena.ofShared();
            cblasSgemm = OpenBlas.sgemm(arena, threads);
        } else {
            // describe() names the GEMM's kernel family; the 2:4 product's is named only where it differs
            String spmm = SparseGemm.isa().equals(Native.isa()) ? "" : "; 2:4 product kernels " + SparseGemm.isa();
            System.out.println("# host: " + fst4j.shim.Host.current().describe() + spmm);
        }
    }

    private <T extends AutoCloseable> T own(T t) { owned.add(t); return t; }

    private Tensor random(SplittableRandom r, int rows, int columns) { return own(randomMatrix(r, rows, columns)); }

    /** A [rows, columns] float32 matrix of uniform values in [-1, 1) (also Eq123Interleaved's operands). */
    static Tensor randomMatrix(SplittableRandom r, int rows, int columns) {
        float[] v = new float[Math.multiplyExact(rows, columns)];
        for (int i = 0; i < v.length; i++) v[i] = (float) (r.nextDouble() * 2 - 1);
        return Tensor.of(v, rows, columns);
    }

    @TearDown(Level.Trial)
    public void tearDown() throws Exception {
        for (AutoCloseable c : owned.reversed()) c.close();
        owned.clear();
        if (arena != null) arena.close();
    }

    // ---- Eq. 1: Y = S(W) X (the bodies are Eq123Products', shared with Eq123Interleaved) ----

    @Benchmark
    public void eq1_openblas() throws Throwable { p.eq1OpenBlas(cblasSgemm); }

    @Benchmark
    public void eq1_dense() { p.eq1Dense(); }

    @Benchmark
    public void eq1_sparse() { p.eq1Sparse(cw); }

    @Benchmark
    public void eq1_sparsePrune() { p.eq1SparsePrune(); }

    // ---- Eq. 2: dX = S(W^T) dY ----

    @Benchmark
    public void eq2_openblas() throws Throwable { p.eq2OpenBlas(cblasSgemm); }

    @Benchmark
    public void eq2_dense() { p.eq2Dense(); }

    @Benchmark
    public void eq2_sparse() { p.eq2Sparse(cwt); }

    @Benchmark
    public void eq2_sparsePrune() { p.eq2SparsePrune(); }

    // ---- Eq. 3: dW = dY X^T ----

    @Benchmark
    public void eq3_openblas() throws Throwable { p.eq3OpenBlas(cblasSgemm); }

    @Benchmark
    public void eq3_dense() { p.eq3Dense(); }

    @Benchmark
    public void eq3_halfK() { p.eq3HalfK(); }

    @Benchmark
    public void eq3_halfKGemm() { p.eq3HalfKGemm(gk, xk); }

    // ---- sparsification overhead ----

    @Benchmark
    public void ovh_pruneW() {
        Compressed24.pruneCompress(w, null, threads).close();
    }

    @Benchmark
    public void ovh_pruneWt() {
        Compressed24.pruneCompressTransposed(w, threads).close();
    }

    @Benchmark
    public void ovh_shiftGather() {
        HalfK.shiftGather(dy, seg, 1f, 1, false, threads).close();
    }
}
