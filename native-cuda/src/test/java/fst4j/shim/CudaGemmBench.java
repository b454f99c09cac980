package fst4j.shim;

import java.io.IOException;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

/**
 * GEMM benchmark of the three FST equations on the device, at the conv layer shapes of ResNet-18 on ImageNet
 * (batch 256): for each layer,
 * <ul>
 *   <li>Eq. 1: Y [Cout, N*HW] = W [Cout, Cin*k*k] X [Cin*k*k, N*HW] (sparse operand S(W), 2:4 along Cin*k*k);</li>
 *   <li>Eq. 2: dX [Cin*k*k, N*HW] = W^T [Cin*k*k, Cout] dY [Cout, N*HW] (sparse operand S(W^T), 2:4 along Cout);</li>
 *   <li>Eq. 3: dW [Cout, Cin*k*k] = dY [Cout, N*HW] X^T (K = N*HW), and its half-K form on the gathered kept columns
 *       (K = N*HW / 2).</li>
 * </ul>
 * Variants, timed in the same run on the same device: cuBLAS fp32 SGEMM, TF32 (cublasGemmEx, CUBLAS_COMPUTE_32F_FAST_TF32),
 * bf16 (cublasGemmEx, fp32 out), cuSPARSELt 2:4 bf16 (fp32 out when the library accepts it, else bf16 out; the output
 * says which) for Eq. 1 and 2; half-K bf16 and half-K fp32 for Eq. 3. Every variant's result is checked once, before
 * timing, on sampled output elements against a float64 reference of the same operands (bf16-rounded, masked where
 * the variant prunes), and the 2:4 product against cuBLAS bf16 on the same masked operand; the relative Frobenius
 * error over the sample must stay below a bound for the precision (fp32 accumulation 2e-3, TF32 1e-2, bf16 output
 * 2e-2). Times are CUDA events around each repetition (after warm-up): median, p10 / p90, min / max; TFLOP/s count
 * 2 M N K (dense-equivalent for 2:4). The overhead kernels of a sparse step (prune24 to the bf16 S(W), prune24_t to
 * S(W^T), the two cuSPARSELt compressions, the IR shift-gather of dY and the gather of X for half-K, the fp32 -> bf16
 * conversions) are timed the same way and printed as a share of the layer's three dense bf16 GEMMs.
 *
 * <p>Operands are random normal: the weights fully, the activations as a repeated random tile (uploaded in chunks, so
 * that setting up gigabytes takes no host time; the references know the tiling). Buffers are allocated per layer and
 * freed after it (the stem at batch 256 needs about 10 GB). N*HW is padded to a multiple of 16 and Cin*k*k to a
 * multiple of 16 (147 -> 160 for the stem, zero rows / columns), cuSPARSELt's size rule.
 *
 * <p>Usage: {@code CudaGemmBench [--smoke] [--reps R] [--warmup W] [--layers a,b] [OUTFILE]}; the full results go to
 * OUTFILE (default gemm.txt), the compact table (lines starting with "GEMM") is printed last. Exit code 1 when a check
 * fails. {@code --smoke}: tiny layers at batch 1 with 1 warm-up and 3 repetitions (CudaGemmBenchTest runs it on the
 * host emulator so that the harness cannot rot).
 */
public final class CudaGemmBench {

    private static final int F32 = Cuda.R_32F, BF16 = Cuda.R_16BF;

    /** A conv layer: Cin -> Cout, k x k kernel, output hw x hw per image. */
    public record Layer(String name, int cin, int cout, int k, int hw) {
        int kReal() { return cin * k * k; }
        int kPad() { return (kReal() + 15) / 16 * 16; }
    }

    public static final List<Layer> RESNET18 = List.of(new Layer("stem", 3, 64, 7, 112), new Layer("layer1", 64, 64, 3, 56),
            new Layer("layer2", 128, 128, 3, 28), new Layer("layer3", 256, 256, 3, 14), new Layer("layer4", 512, 512, 3, 7));
    public static final List<Layer> SMOKE = List.of(new Layer("stem-s", 3, 16, 3, 4), new Layer("conv-s", 16, 32, 3, 5));

    /** minChunks > 1 runs the 2:4 products in at least that many column chunks (what happens when the library refuses N; for tests). */
    public record Config(List<Layer> layers, int batch, int warmup, int reps, int samples, int samplesEq3, int tile, int minChunks) {
        public static Config full() { return new Config(RESNET18, 256, 3, 25, 96, 24, (1 << 22) + 3, 1); }
        public static Config smoke() { return new Config(SMOKE, 1, 1, 3, 32, 16, 4099, 1); }
        public Config withMinChunks(int c) { return new Config(layers, batch, warmup, reps, samples, samplesEq3, tile, c); }
    }

    /** Times in ms over the repetitions. */
    public record Stat(double median, double p10, double p90, double min, double max, int reps) {
        static Stat failed() { return new Stat(Double.NaN, Double.NaN, Double.NaN, Double.NaN, Double.NaN, 0); }

        static Stat of(double[] ms) {
            double[] s = ms.clone();
            Arrays.sort(s);
            int n = s.length;
            double med = n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
            return new Stat(med, s[(int) Math.floor(0.1 * (n - 1))], s[(int) Math.ceil(0.9 * (n - 1))], s[0], s[n - 1], n);
        }
    }

    /** One timed GEMM variant; relErr is its check (relative Frobenius error on the sample), bound the limit. */
    public record Row(String layer, String eq, String variant, long m, long n, long k, Stat stat, double relErr, double bound, String note) {
        public boolean ok() { return relErr <= bound; }
        public double tflops() { return 2.0 * m * n * k / (stat.median() * 1e-3) / 1e12; }
    }

    public record Overhead(String layer, String kernel, Stat stat) {}

    public record Report(List<Row> rows, List<Overhead> overheads, List<String> table, String sparseOutput) {
        /** Every variant ran and passed its check (a missing variant is a failure too). */
        public boolean ok() { return rows.stream().allMatch(Row::ok) && table.stream().noneMatch(t -> t.endsWith("FAIL")); }
    }

    // ---------------------------------------------------------------- helpers

    /** Device memory of one layer, freed together (CudaConvBench uses it too). */
    static final class Mem implements AutoCloseable {
        final List<MemorySegment> blocks = new ArrayList<>();

        MemorySegment alloc(long bytes) {
            MemorySegment d = Cuda.malloc(Math.max(256, bytes));
            blocks.add(d);
            return d;
        }

        @Override public void close() {
            for (MemorySegment d : blocks) Cuda.free(d);
            blocks.clear();
        }
    }

    static MemorySegment at(MemorySegment base, long byteOffset) { return MemorySegment.ofAddress(base.address() + byteOffset); }

    /** The repeated random tile, and the device copy of a flat range [0, count) of it. */
    record Tile(float[] v, MemorySegment host) {
        float get(long e) { return v[(int) (e % v.length)]; }

        void upload(MemorySegment dev, long count) {
            for (long off = 0; off < count; off += v.length) {
                long n = Math.min(v.length, count - off);
                Cuda.copyToDevice(at(dev, 4 * off), host, 4 * n);
            }
        }
    }

    static Tile tile(Arena arena, Random r, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) r.nextGaussian();
        MemorySegment h = arena.allocate(4L * n, 64);
        MemorySegment.copy(v, 0, h, JAVA_FLOAT, 0, n);
        return new Tile(v, h);
    }

    private final MemorySegment scratch = Arena.global().allocate(64, 16);

    private float readF32(MemorySegment base, long idx) {
        Cuda.copyToHost(scratch, at(base, 4 * idx), 4);
        return scratch.get(JAVA_FLOAT, 0);
    }

    private float read(MemorySegment base, int type, long idx) {
        if (type == F32) return readF32(base, idx);
        Cuda.copyToHost(scratch, at(base, 2 * idx), 2);
        return Bf16.value(scratch.get(JAVA_SHORT, 0));
    }

    private static short[] downloadShorts(Arena arena, MemorySegment d, int n) {
        MemorySegment h = arena.allocate(2L * n, 64);
        Cuda.copyToHost(h, d, 2L * n);
        return h.toArray(JAVA_SHORT);
    }

    /** Relative Frobenius error of got against ref. */
    static double relErr(double[] ref, double[] got) {
        double d = 0, n = 0;
        for (int i = 0; i < ref.length; i++) {
            d += (got[i] - ref[i]) * (got[i] - ref[i]);
            n += ref[i] * ref[i];
        }
        if (n == 0) return Double.POSITIVE_INFINITY;   // an all-zero reference checks nothing: fail
        return Math.sqrt(d / n);
    }

    private final Config cfg;
    private final PrintStream log;
    /** The results file while the run goes on (every line flushed), so that a run cut short by a timeout leaves its partial results. */
    private PrintStream partial;
    private final StringBuilder full = new StringBuilder();
    private boolean sgemmAvailable;
    private String sgemmNote = "";
    private int sparseOut = F32;
    private String sparseNote = "fp32 output";

    private CudaGemmBench(Config cfg, PrintStream log) {
        this.cfg = cfg;
        this.log = log;
    }

    private void out(String line) {
        log.println(line);
        full.append(line).append('\n');
        if (partial != null) partial.println(line);
    }

    private Stat time(Runnable op) { return time(cfg.warmup(), cfg.reps(), op); }

    /** op after warm-up runs, timed by CUDA events around each of reps repetitions. */
    static Stat time(int warmup, int reps, Runnable op) {
        for (int i = 0; i < warmup; i++) op.run();
        Cuda.sync();
        double[] ms = new double[reps];
        try (Cuda.Timer t = new Cuda.Timer()) {
            for (int i = 0; i < ms.length; i++) {
                t.start();
                op.run();
                ms[i] = t.stopMs();
            }
        }
        return Stat.of(ms);
    }

    /** fp32 SGEMM through cuBLAS SGEMM, or cublasGemmEx fp32 where SGEMM is missing (the host emulator). */
    private void sgemm(boolean ta, boolean tb, long m, long n, long k, MemorySegment a, long lda, MemorySegment b, long ldb, MemorySegment c, long ldc) {
        if (sgemmAvailable) Native.cudaSgemm(ta, tb, m, n, k, 1f, a, lda, b, ldb, 0f, c, ldc);
        else Cuda.gemmEx(ta, tb, m, n, k, 1f, a, F32, lda, b, F32, ldb, 0f, c, F32, ldc, false);
    }

    /** Sampled output elements (i, j) of an [rows, cols] output. */
    private static long[][] samples(Random r, int count, long rows, long cols) {
        long[][] s = new long[count][];
        for (int q = 0; q < count; q++) s[q] = new long[] { (long) (r.nextDouble() * rows), (long) (r.nextDouble() * cols) };
        return s;
    }

    private double[] got(long[][] s, MemorySegment c, int type, long ldc) { return got(s, c, type, (i, j) -> i * ldc + j); }

    /** Where output element (i, j) lies (elements from the start of c). */
    private interface Idx { long at(long i, long j); }

    private double[] got(long[][] s, MemorySegment c, int type, Idx idx) {
        Cuda.sync();
        double[] g = new double[s.length];
        for (int q = 0; q < s.length; q++) g[q] = read(c, type, idx.at(s[q][0], s[q][1]));
        return g;
    }

    /**
     * A cuSPARSELt plan for [m, k] x [k, n], or, where the library refuses n columns (it has a maximum size for C / D),
     * for n / chunks columns: the product then runs as that many matmuls over consecutive [k, n / chunks] blocks of B
     * (the same data volume and FLOPs, in a chunked layout), and the output says so.
     */
    private record SPlan(Cuda.SparseLtPlan plan, int chunks) {}

    private SPlan splan(String what, long m, long n, long k) {
        RuntimeException first = null;
        int c0 = cfg.minChunks() > 1 && n % (16L * cfg.minChunks()) == 0 ? cfg.minChunks() : 1;
        for (int c = c0; c <= 256 && n % (16L * c) == 0; c *= 2) {
            try {
                Cuda.SparseLtPlan p = plan(m, n / c, k);
                if (c > 1) out("2:4 " + what + ": N = " + n + (first == null ? " split on request" : " refused (" + first.getMessage() + ")") + "; running "
                        + c + " matmuls of N = " + n / c);
                return new SPlan(p, c);
            } catch (CudaException | IllegalArgumentException e) {
                if (first == null) first = e;
                if (e instanceof IllegalArgumentException) break;   // our own up-front checks: splitting N does not help
            }
        }
        throw first;
    }

    private interface Ref { double at(long i, long j); }

    private static double[] ref(long[][] s, Ref f) {
        double[] v = new double[s.length];
        for (int q = 0; q < s.length; q++) v[q] = f.at(s[q][0], s[q][1]);
        return v;
    }

    // ---------------------------------------------------------------- the run

    public static Report run(Config cfg, PrintStream log) {
        Cuda.requireDevice();
        return new CudaGemmBench(cfg, log).runAll();
    }

    private Report runAll() {
        try {
            Native.cudaSgemm(false, false, 0, 0, 0, 1f, MemorySegment.NULL, 1, MemorySegment.NULL, 1, 0f, MemorySegment.NULL, 1);
            sgemmAvailable = true;
        } catch (CudaUnavailableException e) {
            sgemmNote = " (cuBLAS SGEMM unavailable: " + e.getMessage() + "; the fp32 rows run cublasGemmEx fp32)";
        }
        out("== fst4j CUDA GEMM benchmark (Eq. 1-3 at ResNet-18 ImageNet conv shapes) ==");
        out("device:     " + Cuda.status());
        out("cuBLAS:     " + Cuda.blasStatus() + sgemmNote);
        out("cuSPARSELt: " + Cuda.sparseLtStatus());
        out(String.format(Locale.ROOT, "config:     batch %d, %d warm-up + %d timed repetitions (CUDA events), %d / %d sampled elements per check (Eq. 1-2 / Eq. 3)",
                cfg.batch(), cfg.warmup(), cfg.reps(), cfg.samples(), cfg.samplesEq3()));
        List<Row> rows = new ArrayList<>();
        List<Overhead> overheads = new ArrayList<>();
        Random rnd = new Random(2024);
        try (Arena arena = Arena.ofConfined()) {
            Tile tx = tile(arena, rnd, cfg.tile()), td = tile(arena, rnd, cfg.tile() + 10);
            for (Layer l : cfg.layers()) {
                try {
                    layer(l, tx, td, rnd, arena, rows, overheads);
                } catch (RuntimeException e) {   // one layer's failure (out of memory, a library refusing a shape) is reported, the others still run
                    out("LAYER " + l.name() + " FAILED: " + e);
                    rows.add(new Row(l.name(), "-", "layer", 0, 0, 0, Stat.failed(), Double.POSITIVE_INFINITY, 0, "failed: " + e));
                }
            }
        }
        List<String> table = table(rows, overheads);
        return new Report(rows, overheads, table, sparseNote);
    }

    private void layer(Layer l, Tile tx, Tile td, Random rnd, Arena arena, List<Row> rows, List<Overhead> overheads) {
        final long cout = l.cout(), kr = l.kReal(), kp = l.kPad();
        final long nhw = (long) cfg.batch() * l.hw() * l.hw(), np = (nhw + 15) / 16 * 16, kh = np / 2;
        out("");
        out(String.format(Locale.ROOT, "---- %s: %d -> %d, %dx%d kernel, output %dx%d, batch %d: Cin*k*k = %d (padded %d), N*HW = %d (padded %d)",
                l.name(), l.cin(), l.cout(), l.k(), l.k(), l.hw(), l.hw(), cfg.batch(), kr, kp, nhw, np));
        float[] w = new float[(int) (cout * kp)];
        for (int i = 0; i < cout; i++) for (int j = 0; j < kr; j++) w[(int) (i * kp + j)] = (float) rnd.nextGaussian();
        try (Mem mem = new Mem()) {
            // ---- operands ----
            MemorySegment w32 = mem.alloc(4 * cout * kp), w16 = mem.alloc(2 * cout * kp);
            MemorySegment hw = arena.allocate(4L * w.length, 64);
            MemorySegment.copy(w, 0, hw, JAVA_FLOAT, 0, w.length);
            Cuda.copyToDevice(w32, hw, 4L * w.length);
            Native.cudaF32ToBf16(w32, w16, cout * kp);
            MemorySegment x32 = mem.alloc(4 * kp * np), x16 = mem.alloc(2 * kp * np);
            tx.upload(x32, kr * np);
            if (kp > kr) Cuda.memset(at(x32, 4 * kr * np), 0, 4 * (kp - kr) * np);   // the zero rows of the padded im2col
            MemorySegment dy32 = mem.alloc(4 * cout * np), dy16 = mem.alloc(2 * cout * np);
            td.upload(dy32, cout * np);
            // host views of the operands (the references): X(r, c), dY(r, c), W[i, k]
            final float[] wv = w;
            Ref xv = (r, c) -> r >= kr ? 0f : tx.get(r * np + c);
            Ref dyv = (r, c) -> td.get(r * np + c);
            // ---- overhead kernels (timed; they also produce the operands of the bf16 / sparse / half-K variants) ----
            overheads.add(new Overhead(l.name(), "f32->bf16 X", time(() -> Native.cudaF32ToBf16(x32, x16, kp * np))));
            overheads.add(new Overhead(l.name(), "f32->bf16 dY", time(() -> Native.cudaF32ToBf16(dy32, dy16, cout * np))));
            long g1 = kp / 4, g2 = (cout + 3) / 4;
            MemorySegment v1 = mem.alloc(4 * cout * 2 * g1), m1 = mem.alloc(4 * cout * ((g1 + 7) / 8)), a1 = mem.alloc(2 * cout * kp);
            MemorySegment v2 = mem.alloc(4 * kp * 2 * g2), m2 = mem.alloc(4 * kp * ((g2 + 7) / 8)), a2 = mem.alloc(2 * kp * cout);
            overheads.add(new Overhead(l.name(), "prune24 S(W)->bf16", time(() -> Native.cudaPrune24(cout, kp, w32, kp, v1, m1, MemorySegment.NULL, 0, a1, kp))));
            overheads.add(new Overhead(l.name(), "prune24_t S(W^T)->bf16", time(() -> Native.cudaPrune24Transposed(cout, kp, w32, kp, v2, m2, MemorySegment.NULL, 0, a2, cout))));
            MemorySegment gk32 = mem.alloc(4 * cout * kh), xk32 = mem.alloc(4 * kp * kh), gk16 = mem.alloc(2 * cout * kh), xk16 = mem.alloc(2 * kp * kh);
            overheads.add(new Overhead(l.name(), "shift_gather dY (IR)", time(() -> Native.cudaShiftGather(dy32, gk32, cout, np, np, 1, 0.5f, false))));
            overheads.add(new Overhead(l.name(), "gather X (half-K)", time(() -> Native.cudaShiftGather(x32, xk32, kp, np, np, 1, 0f, false))));
            overheads.add(new Overhead(l.name(), "f32->bf16 Gk", time(() -> Native.cudaF32ToBf16(gk32, gk16, cout * kh))));
            overheads.add(new Overhead(l.name(), "f32->bf16 Xk", time(() -> Native.cudaF32ToBf16(xk32, xk16, kp * kh))));
            Cuda.sync();
            short[] a1h = downloadShorts(arena, a1, (int) (cout * kp)), a2h = downloadShorts(arena, a2, (int) (kp * cout));
            // ---- cuSPARSELt plans (fp32 output when the library takes it) ----
            Cuda.SparseLtPlan p1 = null, p2 = null;
            int ch1 = 1, ch2 = 1;
            try {
                try {
                    SPlan sp1 = splan(l.name() + " Eq1", cout, np, kp);
                    p1 = sp1.plan();
                    ch1 = sp1.chunks();
                    SPlan sp2 = splan(l.name() + " Eq2", kp, np, cout);
                    p2 = sp2.plan();
                    ch2 = sp2.chunks();
                } catch (RuntimeException e) {   // no cuSPARSELt, or it refuses the shape: the dense variants still run
                    out("2:4 " + l.name() + ": no cuSPARSELt plan: " + e.getMessage());
                }
                final boolean sparse = p2 != null;
                final int fch1 = ch1, fch2 = ch2;
                final long nc1 = np / ch1, nc2 = np / ch2;
                Cuda.SparseLtPlan fp1 = p1, fp2 = p2;
                MemorySegment c1 = sparse ? mem.alloc(p1.compressedBytes()) : null, b1 = sparse ? mem.alloc(p1.bufferBytes()) : null;
                MemorySegment ws1 = sparse ? mem.alloc(p1.workspaceBytes()) : null;
                MemorySegment c2 = sparse ? mem.alloc(p2.compressedBytes()) : null, b2 = sparse ? mem.alloc(p2.bufferBytes()) : null;
                MemorySegment ws2 = sparse ? mem.alloc(p2.workspaceBytes()) : null;
                if (sparse) {
                    overheads.add(new Overhead(l.name(), "compress S(W)", time(() -> fp1.compress(a1, c1, b1))));
                    overheads.add(new Overhead(l.name(), "compress S(W^T)", time(() -> fp2.compress(a2, c2, b2))));
                }
                int so = sparseOut, sb = so == F32 ? 4 : 2;
                double spBound = so == F32 ? 2e-3 : 2e-2;
                // ---- outputs ----
                MemorySegment y32 = mem.alloc(4 * cout * np), dx32 = mem.alloc(4 * kp * np), dw32 = mem.alloc(4 * cout * kp);
                MemorySegment ys = so == F32 ? y32 : mem.alloc(sb * cout * np), dxs = so == F32 ? dx32 : mem.alloc(sb * kp * np);
                // dense bf16 with a bf16 product: the like-for-like baseline of a 2:4 product the library writes in bf16
                MemorySegment y16 = so == F32 ? mem.alloc(2 * cout * np) : ys, dx16 = so == F32 ? mem.alloc(2 * kp * np) : dxs;

                // ======== Eq. 1: Y [cout, np] = W [cout, kp] X [kp, np] ========
                long[][] s1 = samples(rnd, cfg.samples(), cout, np);
                double[] r1 = ref(s1, (i, j) -> { double s = 0; for (long q = 0; q < kp; q++) s += (double) wv[(int) (i * kp + q)] * xv.at(q, j); return s; });
                double[] r1b = ref(s1, (i, j) -> { double s = 0; for (long q = 0; q < kp; q++) s += (double) Bf16.round(wv[(int) (i * kp + q)]) * Bf16.round((float) xv.at(q, j)); return s; });
                // the 2:4 product runs on fch1 consecutive blocks [kp, nc1] of X (one block, X itself, unless the library refused N)
                Ref xc = (q, j) -> { long e = (j / nc1) * kp * nc1 + q * nc1 + j % nc1; return e >= kr * np ? 0f : tx.get(e); };
                Idx y1 = (i, j) -> (j / nc1) * cout * nc1 + i * nc1 + j % nc1;
                double[] r1m = ref(s1, (i, j) -> { double s = 0; for (long q = 0; q < kp; q++) s += (double) Bf16.value(a1h[(int) (i * kp + q)]) * Bf16.round((float) xc.at(q, j)); return s; });
                Runnable e1f = () -> sgemm(false, false, cout, np, kp, w32, kp, x32, np, y32, np);
                Runnable e1t = () -> Cuda.gemmEx(false, false, cout, np, kp, 1f, w32, F32, kp, x32, F32, np, 0f, y32, F32, np, true);
                Runnable e1b = () -> Cuda.gemmEx(false, false, cout, np, kp, 1f, w16, BF16, kp, x16, BF16, np, 0f, y32, F32, np, false);
                Runnable e1s = () -> { for (int c = 0; c < fch1; c++) fp1.matmul(1f, c1, at(x16, 2 * c * kp * nc1), 0f, at(ys, sb * c * cout * nc1), ws1); };
                rows.add(check(l, "Eq1", "fp32", cout, np, kp, e1f, s1, r1, y32, F32, np, 2e-3, sgemmAvailable ? "cuBLAS SGEMM" : "gemmEx fp32"));
                rows.add(check(l, "Eq1", "tf32", cout, np, kp, e1t, s1, r1, y32, F32, np, 1e-2, "gemmEx TF32"));
                rows.add(check(l, "Eq1", "bf16", cout, np, kp, e1b, s1, r1b, y32, F32, np, 2e-3, "gemmEx bf16 -> fp32"));
                Runnable e1bb = () -> Cuda.gemmEx(false, false, cout, np, kp, 1f, w16, BF16, kp, x16, BF16, np, 0f, y16, BF16, np, false);
                rows.add(check(l, "Eq1", "bf16-bf16", cout, np, kp, e1bb, s1, r1b, y16, BF16, np, 2e-2, "gemmEx bf16 -> bf16"));
                // the 2:4 product: against cuBLAS bf16 on the same masked operand, and against float64
                if (sparse) {
                    for (int c = 0; c < fch1; c++)
                        Cuda.gemmEx(false, false, cout, nc1, kp, 1f, a1, BF16, kp, at(x16, 2 * c * kp * nc1), BF16, nc1, 0f, at(y32, 4 * c * cout * nc1), F32, nc1, false);
                    double[] dense1 = got(s1, y32, F32, y1);
                    fp1.compress(a1, c1, b1);
                    rows.add(checkSparse(l, "Eq1", cout, np, kp, e1s, s1, r1m, dense1, ys, so, y1, spBound, fch1));
                }
                // ======== Eq. 2: dX [kp, np] = W^T [kp, cout] dY [cout, np] ========
                long[][] s2 = samples(rnd, cfg.samples(), kp, np);
                double[] r2 = ref(s2, (i, j) -> { double s = 0; for (long c = 0; c < cout; c++) s += (double) wv[(int) (c * kp + i)] * dyv.at(c, j); return s; });
                double[] r2b = ref(s2, (i, j) -> { double s = 0; for (long c = 0; c < cout; c++) s += (double) Bf16.round(wv[(int) (c * kp + i)]) * Bf16.round((float) dyv.at(c, j)); return s; });
                Ref dyc = (c, j) -> td.get((j / nc2) * cout * nc2 + c * nc2 + j % nc2);
                Idx y2 = (i, j) -> (j / nc2) * kp * nc2 + i * nc2 + j % nc2;
                double[] r2m = ref(s2, (i, j) -> { double s = 0; for (long c = 0; c < cout; c++) s += (double) Bf16.value(a2h[(int) (i * cout + c)]) * Bf16.round((float) dyc.at(c, j)); return s; });
                Runnable e2f = () -> sgemm(true, false, kp, np, cout, w32, kp, dy32, np, dx32, np);
                Runnable e2t = () -> Cuda.gemmEx(true, false, kp, np, cout, 1f, w32, F32, kp, dy32, F32, np, 0f, dx32, F32, np, true);
                Runnable e2b = () -> Cuda.gemmEx(true, false, kp, np, cout, 1f, w16, BF16, kp, dy16, BF16, np, 0f, dx32, F32, np, false);
                Runnable e2s = () -> { for (int c = 0; c < fch2; c++) fp2.matmul(1f, c2, at(dy16, 2 * c * cout * nc2), 0f, at(dxs, sb * c * kp * nc2), ws2); };
                rows.add(check(l, "Eq2", "fp32", kp, np, cout, e2f, s2, r2, dx32, F32, np, 2e-3, sgemmAvailable ? "cuBLAS SGEMM, W^T by transA" : "gemmEx fp32"));
                rows.add(check(l, "Eq2", "tf32", kp, np, cout, e2t, s2, r2, dx32, F32, np, 1e-2, "gemmEx TF32"));
                rows.add(check(l, "Eq2", "bf16", kp, np, cout, e2b, s2, r2b, dx32, F32, np, 2e-3, "gemmEx bf16 -> fp32, W^T by transA"));
                Runnable e2bb = () -> Cuda.gemmEx(true, false, kp, np, cout, 1f, w16, BF16, kp, dy16, BF16, np, 0f, dx16, BF16, np, false);
                rows.add(check(l, "Eq2", "bf16-bf16", kp, np, cout, e2bb, s2, r2b, dx16, BF16, np, 2e-2, "gemmEx bf16 -> bf16, W^T by transA"));
                if (sparse) {
                    for (int c = 0; c < fch2; c++)
                        Cuda.gemmEx(false, false, kp, nc2, cout, 1f, a2, BF16, cout, at(dy16, 2 * c * cout * nc2), BF16, nc2, 0f, at(dx32, 4 * c * kp * nc2), F32, nc2, false);
                    double[] dense2 = got(s2, dx32, F32, y2);
                    fp2.compress(a2, c2, b2);
                    rows.add(checkSparse(l, "Eq2", kp, np, cout, e2s, s2, r2m, dense2, dxs, so, y2, spBound, fch2));
                }
                // ======== Eq. 3: dW [cout, kp] = dY [cout, np] X^T; half-K on the kept (gathered) columns ========
                long[][] s3 = samples(rnd, cfg.samplesEq3(), cout, kp);
                // one pass over K per sample for the four references: full K in fp32 and bf16, and half K on the kept (gathered)
                // columns q: Gk = dY[2q] + 0.5 dY[2q + 1] (the IR shift, float arithmetic as the kernel), Xk = X[2q]
                double[] r3 = new double[s3.length], r3b = new double[s3.length], r3h = new double[s3.length], r3hb = new double[s3.length];
                for (int t = 0; t < s3.length; t++) {
                    long i = s3[t][0], j = s3[t][1];
                    double f = 0, b = 0, h = 0, hb = 0;
                    for (long q = 0; q < kh; q++) {
                        float d0 = (float) dyv.at(i, 2 * q), d1 = (float) dyv.at(i, 2 * q + 1), x0 = (float) xv.at(j, 2 * q), x1 = (float) xv.at(j, 2 * q + 1);
                        f += (double) d0 * x0 + (double) d1 * x1;
                        b += (double) Bf16.round(d0) * Bf16.round(x0) + (double) Bf16.round(d1) * Bf16.round(x1);
                        float g = d0 + 0.5f * d1;
                        h += (double) g * x0;
                        hb += (double) Bf16.round(g) * Bf16.round(x0);
                    }
                    r3[t] = f; r3b[t] = b; r3h[t] = h; r3hb[t] = hb;
                }
                Runnable e3f = () -> sgemm(false, true, cout, kp, np, dy32, np, x32, np, dw32, kp);
                Runnable e3t = () -> Cuda.gemmEx(false, true, cout, kp, np, 1f, dy32, F32, np, x32, F32, np, 0f, dw32, F32, kp, true);
                Runnable e3b = () -> Cuda.gemmEx(false, true, cout, kp, np, 1f, dy16, BF16, np, x16, BF16, np, 0f, dw32, F32, kp, false);
                Runnable e3hb = () -> Cuda.gemmEx(false, true, cout, kp, kh, 1f, gk16, BF16, kh, xk16, BF16, kh, 0f, dw32, F32, kp, false);
                Runnable e3hf = () -> sgemm(false, true, cout, kp, kh, gk32, kh, xk32, kh, dw32, kp);
                rows.add(check(l, "Eq3", "fp32", cout, kp, np, e3f, s3, r3, dw32, F32, kp, 2e-3, sgemmAvailable ? "cuBLAS SGEMM, X^T by transB" : "gemmEx fp32"));
                rows.add(check(l, "Eq3", "tf32", cout, kp, np, e3t, s3, r3, dw32, F32, kp, 1e-2, "gemmEx TF32"));
                rows.add(check(l, "Eq3", "bf16", cout, kp, np, e3b, s3, r3b, dw32, F32, kp, 2e-3, "gemmEx bf16 -> fp32"));
                rows.add(check(l, "Eq3", "halfK-bf16", cout, kp, kh, e3hb, s3, r3hb, dw32, F32, kp, 2e-3, "gemmEx bf16 on the gathered kept columns"));
                rows.add(check(l, "Eq3", "halfK-fp32", cout, kp, kh, e3hf, s3, r3h, dw32, F32, kp, 2e-3, sgemmAvailable ? "cuBLAS SGEMM on the gathered kept columns" : "gemmEx fp32"));
            } finally {
                if (p1 != null) p1.close();
                if (p2 != null) p2.close();
            }
        }
        for (Overhead o : overheads) if (o.layer().equals(l.name())) out(overheadLine(o, bf16Sum(rows, l.name())));
    }

    /**
     * A plan with fp32 output, or bf16 output where the library refuses fp32 but takes bf16 for the same shape (decided
     * once); when it refuses both, the shape is the problem and the first refusal is thrown.
     */
    private Cuda.SparseLtPlan plan(long m, long n, long k) {
        if (sparseOut == F32) {
            try {
                return Cuda.sparseLtPlan(m, n, k, BF16, F32);
            } catch (CudaException e) {
                Cuda.SparseLtPlan p;
                try {
                    p = Cuda.sparseLtPlan(m, n, k, BF16, BF16);
                } catch (CudaException e2) {
                    throw e;
                }
                sparseOut = BF16;
                sparseNote = "bf16 output (the library refused fp32 output: " + e.getMessage() + ")";
                out("2:4: " + sparseNote);
                return p;
            }
        }
        return Cuda.sparseLtPlan(m, n, k, BF16, sparseOut);
    }

    private Row check(Layer l, String eq, String variant, long m, long n, long k, Runnable op, long[][] s, double[] ref, MemorySegment c,
                      int ctype, long ldc, double bound, String note) {
        Cuda.memset(c, 0xff, (ctype == F32 ? 4 : 2) * ((m - 1) * ldc + n));   // NaN: an unwritten output fails the check
        double err;
        try {
            op.run();
            err = relErr(ref, got(s, c, ctype, ldc));
        } catch (RuntimeException e) {
            return failed(l, eq, variant, m, n, k, e);
        }
        String res = String.format(Locale.ROOT, "check %-6s %-4s %-10s rel. Frobenius error %.2e on %d samples (bound %.0e): %s", l.name(), eq, variant, err,
                s.length, bound, err <= bound ? "ok" : "FAIL");
        out(res);
        Stat st = time(op);
        Row r = new Row(l.name(), eq, variant, m, n, k, st, err, bound, note);
        out(rowLine(r));
        return r;
    }

    private Row checkSparse(Layer l, String eq, long m, long n, long k, Runnable op, long[][] s, double[] refMasked, double[] denseMasked,
                            MemorySegment c, int ctype, Idx idx, double bound, int chunks) {
        Cuda.memset(c, 0xff, (ctype == F32 ? 4 : 2) * m * n);
        double[] g;
        try {
            op.run();
            g = got(s, c, ctype, idx);
        } catch (RuntimeException e) {
            return failed(l, eq, "2:4-bf16", m, n, k, e);
        }
        double err = relErr(refMasked, g), vsDense = relErr(denseMasked, g), denseErr = relErr(refMasked, denseMasked);
        boolean ok = err <= bound && vsDense <= bound && denseErr <= 2e-3;
        out(String.format(Locale.ROOT, "check %-6s %-4s %-10s rel. Frobenius error %.2e vs float64, %.2e vs cuBLAS bf16 on the same masked operand "
                + "(which is %.2e off float64) on %d samples (bound %.0e): %s", l.name(), eq, "2:4-bf16", err, vsDense, denseErr, s.length, bound, ok ? "ok" : "FAIL"));
        Stat st = time(op);
        Row r = new Row(l.name(), eq, "2:4-bf16", m, n, k, st, ok ? Math.max(err, vsDense) : Double.POSITIVE_INFINITY, bound,
                "cuSPARSELt, " + (ctype == F32 ? "fp32" : "bf16") + " output" + (chunks > 1 ? ", N in " + chunks + " chunks (library size limit)" : ""));
        out(rowLine(r));
        return r;
    }

    private Row failed(Layer l, String eq, String variant, long m, long n, long k, RuntimeException e) {
        out(String.format(Locale.ROOT, "check %-6s %-4s %-10s FAILED: %s", l.name(), eq, variant, e));
        return new Row(l.name(), eq, variant, m, n, k, Stat.failed(), Double.POSITIVE_INFINITY, 0, "failed: " + e.getMessage());
    }

    private static String rowLine(Row r) {
        Stat s = r.stat();
        return String.format(Locale.ROOT, "time  %-6s %-4s %-10s M=%-6d N=%-8d K=%-8d median %9.4f ms (p10 %9.4f, p90 %9.4f, min %9.4f, max %9.4f; %d reps) "
                + "%8.2f TFLOP/s  [%s]", r.layer(), r.eq(), r.variant(), r.m(), r.n(), r.k(), s.median(), s.p10(), s.p90(), s.min(), s.max(), s.reps(),
                r.tflops(), r.note());
    }

    private static double bf16Sum(List<Row> rows, String layer) {
        return rows.stream().filter(r -> r.layer().equals(layer) && r.variant().equals("bf16")).mapToDouble(r -> r.stat().median()).sum();
    }

    private static String overheadLine(Overhead o, double bf16) {
        Stat s = o.stat();
        return String.format(Locale.ROOT, "ovh   %-6s %-22s median %9.4f ms (p10 %9.4f, p90 %9.4f, min %9.4f, max %9.4f) = %6.2f %% of the 3 dense bf16 GEMMs",
                o.layer(), o.kernel(), s.median(), s.p10(), s.p90(), s.min(), s.max(), 100 * s.median() / bf16);
    }

    /** The row, or a failed placeholder when the variant did not run (its layer failed, or no cuSPARSELt plan). */
    private static Row find(List<Row> rows, String layer, String eq, String variant) {
        return rows.stream().filter(r -> r.layer().equals(layer) && r.eq().equals(eq) && r.variant().equals(variant)).findFirst()
                .orElse(new Row(layer, eq, variant, 0, 0, 0, Stat.failed(), Double.POSITIVE_INFINITY, 0, "did not run"));
    }

    private List<String> table(List<Row> rows, List<Overhead> overheads) {
        List<String> t = new ArrayList<>();
        boolean bf16Out = sparseOut != F32;
        t.add("GEMM median ms (TFLOP/s) per variant; 2:4 = cuSPARSELt bf16 (" + (bf16Out ? "bf16" : "fp32") + " out), speed-up = dense bf16 with the same "
                + "output type (" + (bf16Out ? "bf16->bf16" : "bf16->fp32") + ") / 2:4 (target >= 1.4x) or bf16 full-K / bf16 half-K (target >= 1.8x)");
        t.add(String.format(Locale.ROOT, "GEMM %-6s %-3s %17s %17s %17s %17s %17s %17s %8s %s", "layer", "eq", "fp32", "tf32", "bf16->fp32", "bf16->bf16",
                "2:4 / halfK-bf16", "halfK-fp32", "speedup", "checks"));
        for (Layer l : cfg.layers()) {
            for (String eq : List.of("Eq1", "Eq2", "Eq3")) {
                boolean eq3 = eq.equals("Eq3");
                Row f = find(rows, l.name(), eq, "fp32"), tf = find(rows, l.name(), eq, "tf32"), b = find(rows, l.name(), eq, "bf16");
                Row bb = eq3 ? null : find(rows, l.name(), eq, "bf16-bf16");
                Row sp = eq3 ? find(rows, l.name(), eq, "halfK-bf16") : find(rows, l.name(), eq, "2:4-bf16");
                Row hf = eq3 ? find(rows, l.name(), eq, "halfK-fp32") : null;
                Row base = eq3 || !bf16Out ? b : bb;   // the dense product with the 2:4 (or half-K) product's output type
                boolean ok = f.ok() && tf.ok() && b.ok() && (bb == null || bb.ok()) && sp.ok() && (hf == null || hf.ok());
                t.add(String.format(Locale.ROOT, "GEMM %-6s %-3s %17s %17s %17s %17s %17s %17s %7.2fx %s", l.name(), eq, cell(f), cell(tf), cell(b),
                        bb == null ? "-" : cell(bb), cell(sp), hf == null ? "-" : cell(hf), base.stat().median() / sp.stat().median(), ok ? "ok" : "FAIL"));
            }
            double bf = bf16Sum(rows, l.name());
            double sparseOnly = overheads.stream().filter(o -> o.layer().equals(l.name()) && !o.kernel().equals("f32->bf16 X") && !o.kernel().equals("f32->bf16 dY"))
                    .mapToDouble(o -> o.stat().median()).sum();
            double all = overheads.stream().filter(o -> o.layer().equals(l.name())).mapToDouble(o -> o.stat().median()).sum();
            t.add(String.format(Locale.ROOT, "GEMM %-6s ovh: prune+compress+gather+bf16(Gk,Xk) %.4f ms = %.1f %%, with bf16(X,dY) %.4f ms = %.1f %% of the 3 dense bf16 GEMMs (%.4f ms)",
                    l.name(), sparseOnly, 100 * sparseOnly / bf, all, 100 * all / bf, bf));
        }
        return t;
    }

    private static String cell(Row r) {
        return r.stat().reps() == 0 ? "failed" : String.format(Locale.ROOT, "%8.4f (%6.1f)", r.stat().median(), r.tflops());
    }

    /** The full results (everything printed plus the per-layer summaries), then the compact table. */
    public static String render(Report rep, String fullText) {
        StringWriter sw = new StringWriter();
        PrintWriter pw = new PrintWriter(sw);
        pw.print(fullText);
        pw.println();
        for (String s : rep.table()) pw.println(s);
        pw.flush();
        return sw.toString();
    }

    public static void main(String[] args) throws IOException {
        Config cfg = Config.full();
        Path outFile = Path.of("gemm.txt");
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--smoke" -> cfg = Config.smoke();
                case "--reps" -> { Config c = cfg; cfg = new Config(c.layers(), c.batch(), c.warmup(), Integer.parseInt(args[++i]), c.samples(), c.samplesEq3(), c.tile(), c.minChunks()); }
                case "--warmup" -> { Config c = cfg; cfg = new Config(c.layers(), c.batch(), Integer.parseInt(args[++i]), c.reps(), c.samples(), c.samplesEq3(), c.tile(), c.minChunks()); }
                case "--layers" -> {
                    List<String> names = List.of(args[++i].split(","));
                    Config c = cfg;
                    List<Layer> all = new ArrayList<>(RESNET18);
                    all.addAll(SMOKE);
                    List<Layer> chosen = all.stream().filter(x -> names.contains(x.name())).toList();
                    if (chosen.size() != names.size()) throw new IllegalArgumentException("unknown layer in " + names + "; known: " + all.stream().map(Layer::name).toList());
                    cfg = new Config(chosen, c.batch(), c.warmup(), c.reps(), c.samples(), c.samplesEq3(), c.tile(), c.minChunks());
                }
                default -> {
                    if (args[i].startsWith("--")) throw new IllegalArgumentException("unknown option " + args[i]
                            + " (usage: CudaGemmBench [--smoke] [--reps R] [--warmup W] [--layers a,b] [OUTFILE])");
                    outFile = Path.of(args[i]);
                }
            }
        }
        if (cfg.reps() < 1 || cfg.warmup() < 0) throw new IllegalArgumentException("reps must be >= 1 and warmup >= 0");
        Result res = runToFile(cfg, outFile, System.out);
        System.out.println();
        System.out.println("full results: " + outFile.toAbsolutePath() + (res.report().ok() ? "" : "  (A CHECK FAILED)"));
        for (String s : res.report().table()) System.out.println(s);
        System.exit(res.report().ok() ? 0 : 1);
    }

    /** The report and the text written to the file. */
    public record Result(Report report, String text) {}

    /** Runs, writes the full results and the table to outFile; progress lines go to log. */
    public static Result runToFile(Config cfg, Path outFile, PrintStream log) throws IOException {
        Cuda.requireDevice();
        CudaGemmBench b = new CudaGemmBench(cfg, log);
        Report rep;
        try (PrintStream ps = new PrintStream(Files.newOutputStream(outFile), true, java.nio.charset.StandardCharsets.UTF_8)) {
            b.partial = ps;
            rep = b.runAll();
        } catch (RuntimeException e) {
            b.full.append("\nFAILED: ").append(e).append('\n');
            Files.writeString(outFile, b.full.toString());
            throw e;
        } finally {
            b.partial = null;
        }
        String text = render(rep, b.full.toString());
        Files.writeString(outFile, text);
        return new Result(rep, text);
    }
}
