package fst4j.bench;

import fst4j.shim.Native;
import org.openjdk.jmh.annotations.AuxCounters;
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

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * Row-major, no-transpose SGEMM C = A B (beta = 0) on off-heap buffers of random data: fst4j's native shim
 * ({@link Native#sgemm}) against OpenBLAS's {@code cblas_sgemm}, bound through FFM here only. Shapes are
 * (M, N, K) of the conv-as-GEMM layers of a small ResNet plus a 1024^3 square.
 * <p>Read the {@code :gflop} secondary result: it is GFLOP/s (2 M N K per call, counted as operations per second).
 * On a shared machine, also look at the best per-iteration {@code gflop} values in the raw output: the mean mixes in
 * iterations that lost a core to another process. {@code -jvmArgsAppend -Dfst4j.openblas=/path/libopenblas.so}
 * compares with another OpenBLAS build.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 10, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
@State(Scope.Benchmark)
public class SgemmBench {
    @Param({"1024x1024x1024", "64x25088x576", "128x6272x1152", "256x1568x2304", "512x392x4608"})
    public String shape;

    @Param({"1", "2"})
    public int threads;

    /** fst4j ("ours") or OpenBLAS. JMH orders parameters by name, the last varying fastest: named so it sorts after
     * shape and threads, the two run back to back on each case (fairer on a machine whose load changes). */
    @Param({"ours", "openblas"})
    public String variant;

    private Arena arena;
    private MemorySegment a, b, c;
    private int m, n, k;
    private double gflopPerCall;
    private MethodHandle cblasSgemm;

    /** Per-thread operation counter: JMH reports {@code gflop} per second, i.e. GFLOP/s. */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    public static class Flops {
        public double gflop;

        @Setup(Level.Iteration)
        public void reset() { gflop = 0; }
    }

    @Setup(Level.Trial)
    public void setUp() throws Throwable {
        String[] d = shape.split("x");
        m = Integer.parseInt(d[0]); n = Integer.parseInt(d[1]); k = Integer.parseInt(d[2]);
        gflopPerCall = 2.0 * m * n * k * 1e-9;
        arena = Arena.ofShared();
        SplittableRandom r = new SplittableRandom(42);
        a = random(r, (long) m * k);
        b = random(r, (long) k * n);
        c = random(r, (long) m * n);
        if (variant.equals("openblas")) {
            cblasSgemm = OpenBlas.sgemm(arena, threads);
        } else {
            System.out.println("# host: " + fst4j.shim.Host.current().describe());   // the kernel family included
        }
    }

    private MemorySegment random(SplittableRandom r, long count) {
        MemorySegment s = arena.allocate(count * 4, 64);
        for (long i = 0; i < count; i++) s.setAtIndex(JAVA_FLOAT, i, (float) (r.nextDouble() * 2 - 1));
        return s;
    }

    @TearDown(Level.Trial)
    public void tearDown() { arena.close(); }

    private static final int ROW_MAJOR = 101, NO_TRANS = 111;

    @Benchmark
    public void sgemm(Flops f) throws Throwable {
        if (cblasSgemm == null) Native.sgemm(false, false, m, n, k, 1f, a, k, b, n, 0f, c, n, threads);
        else cblasSgemm.invokeExact(ROW_MAJOR, NO_TRANS, NO_TRANS, m, n, k, 1f, a, k, b, n, 0f, c, n);
        f.gflop += gflopPerCall;
    }
}
