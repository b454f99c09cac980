package fst4j.bench;

import fst4j.autograd.Profile;
import fst4j.tensor.Blas;
import fst4j.tensor.Memory;
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

import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * One full training step (forward, cross-entropy, backward, SR-STE decay where it applies, SGD step)
 * on random data of the right shape: "cnn" (the small CNN, batch 128, 1x28x28), "resnet-small"
 * (batch 128, 1x28x28) and "resnet18" (CIFAR stem, batch 32, 3x32x32), each as DENSE / FST2 / FST3_IR.
 * Secondary results: off-heap allocations and bytes per step. The per-part breakdown (Eq. 1-3, im2col,
 * sparsification, ...) is printed at the end of each trial. Compare with jmh/peers/torch_step.py
 * (same models, same thread count) through {@code ./fst4j bench-step}.
 */
@BenchmarkMode(Mode.SampleTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 4)
@Measurement(iterations = 4, time = 4)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED", "-Xmx4g"})
@State(Scope.Benchmark)
public class StepBench {
    @Param({"cnn", "resnet-small", "resnet18"})
    public String model;

    @Param({"dense", "fst2", "fst3_ir"})
    public String method;

    @Param({"2"})
    public int threads;

    private StepCase step;
    private Map<String, Integer> switchesBefore = Map.of();
    private long steps, stepNanos;

    /**
     * Secondary results. JMH sums EVENTS counters over the measurement iterations, so each iteration reports its share
     * (its value divided by the number of measurement iterations) and the printed result is the mean over iterations:
     * native allocations and bytes allocated per step (all freed by the step's scope), and the change of off-heap bytes
     * in use over an iteration (0 = no growth). Until session 19 they were not divided, and the printed values were the
     * per-step numbers times the iteration count (4 by default). {@code steps} stays the total of timed steps.
     */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.EVENTS)
    public static class Alloc {
        public long offHeapAllocations, offHeapBytesAllocated, offHeapGrowthBytes;
        public long steps;
        private long a0, b0, u0;
        private int iterations = 1;
        @Setup(Level.Iteration) public void start(org.openjdk.jmh.infra.BenchmarkParams params) {
            iterations = Math.max(1, params.getMeasurement().getCount());
            offHeapAllocations = offHeapBytesAllocated = offHeapGrowthBytes = steps = 0;
            a0 = Memory.allocationCount(); b0 = Memory.bytesAllocated(); u0 = Memory.bytesInUse();
        }
        @TearDown(Level.Iteration) public void stop() {
            if (steps == 0) return;
            offHeapAllocations = (Memory.allocationCount() - a0) / steps / iterations;
            offHeapBytesAllocated = (Memory.bytesAllocated() - b0) / steps / iterations;
            offHeapGrowthBytes = (Memory.bytesInUse() - u0) / iterations;
        }
    }

    @Setup(Level.Trial)
    public void setUp() {
        Blas.setThreads(threads);
        // "fst3_ir:wgrad=16": bench-interleaved's switches, set for the whole trial (the per-operation profile of an A/B)
        switchesBefore = StepInterleaved.apply(StepInterleaved.settings(method));
        step = new StepCase(model, method.split(":")[0]);
        Profile.reset();
    }

    @Benchmark
    public double step(Alloc alloc) {
        long t0 = System.nanoTime();
        double l = step.step();
        stepNanos += System.nanoTime() - t0;
        steps++;
        alloc.steps++;
        return l;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        StringBuilder sb = new StringBuilder("\n[breakdown] " + model + " " + method + ", ms per step over " + steps + " steps:");
        long parts = 0;
        for (Map.Entry<Profile.Part, Long> e : Profile.snapshot().entrySet()) {
            sb.append(String.format(" %s=%.2f", e.getKey(), e.getValue() / 1e6 / Math.max(1, steps)));
            parts += e.getValue();
        }
        sb.append(String.format(" OTHER(Java-side)=%.2f STEP=%.2f", (stepNanos - parts) / 1e6 / Math.max(1, steps), stepNanos / 1e6 / Math.max(1, steps)));
        sb.append(String.format("; off-heap in use %.1f MB", Memory.bytesInUse() / 1e6));
        System.out.println(sb);
        if (Profile.byOperation()) System.out.print(Profile.table(steps));   // -Dfst4j.profile.ops=true (-jvmArgsAppend)
        step.close();
        StepInterleaved.apply(switchesBefore);
    }
}
