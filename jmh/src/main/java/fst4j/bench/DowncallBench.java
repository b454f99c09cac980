package fst4j.bench;

import fst4j.shim.Native;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.TimeUnit;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/** Cost of one FFM downcall into the shim: a no-op ({@code fst_version}) and a 4x4x4 SGEMM on one thread. */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
@State(Scope.Thread)
public class DowncallBench {
    private Arena arena;
    private MemorySegment a, b, c;

    @Setup
    public void setUp() {
        arena = Arena.ofConfined();
        a = arena.allocate(64, 64);
        b = arena.allocate(64, 64);
        c = arena.allocate(64, 64);
        for (int i = 0; i < 16; i++) {
            a.setAtIndex(JAVA_FLOAT, i, i * 0.25f - 2);
            b.setAtIndex(JAVA_FLOAT, i, 1.5f - i * 0.125f);
        }
    }

    @TearDown
    public void tearDown() { arena.close(); }

    @Benchmark
    public int version() { return Native.version(); }

    @Benchmark
    public float sgemm4x4x4() {
        Native.sgemm(false, false, 4, 4, 4, 1f, a, 4, b, 4, 0f, c, 4, 1);
        return c.getAtIndex(JAVA_FLOAT, 5);
    }
}
